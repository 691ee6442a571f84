with

users as (

    select * from {{ ref('base') }}

),

programs as (

    select * from {{ ref('advocacy_programs') }}

),

tasks as (

    select * from {{ ref('tasks_completed') }}

),

quarantine as (

    select * from {{ ref('stg_quarantine') }}

),

batches as (

    select * from {{ ref('stg_batches') }}

),

-- one row per record: its batch, kind, and each field's defect class (NULL when clean)
user_fields as (

    select
        users.batch_id,
        'user' as record_type,
        users.is_clean,
        field.name as field,
        field.defect

    from users
    {{ lateral_values(field_defect_rows('user', 'users') + [
        [
            "'email'",
            "case when users.is_duplicate_email then " ~ defect_class('duplicate') ~ " end",
        ],
        [
            "'document'",
            "case when users.has_newer_quarantined_delivery then "
            ~ defect_class('stale') ~ " end",
        ],
        [
            "'document'",
            "case when " ~ text_starts_with('users.document_key', "'content:'")
            ~ " then " ~ defect_class('keyless') ~ " end",
        ],
    ], 'field', ['name', 'defect']) }}

),

program_fields as (

    select
        programs.batch_id,
        'program' as record_type,
        programs.is_clean,
        field.name as field,
        field.defect

    from programs
    {{ lateral_values(field_defect_rows('program', 'programs'), 'field', ['name', 'defect']) }}

),

task_fields as (

    select
        tasks.batch_id,
        'task' as record_type,
        tasks.is_clean,
        field.name as field,
        field.defect

    from tasks
    {{ lateral_values(field_defect_rows('task', 'tasks'), 'field', ['name', 'defect']) }}

),

-- files: a current document whose file was truncated and closed by the loader, or a file
-- that could not be loaded at all (quarantined, by reason)
file_fields as (

    select
        users.batch_id,
        'file' as record_type,
        not users.is_repaired as is_clean,
        'file' as field,
        case when users.is_repaired then {{ defect_class('repaired') }} end as defect

    from users

    union all

    select
        quarantine.batch_id,
        'file' as record_type,
        false as is_clean,
        'file' as field,
        'quarantined:' || quarantine.reason as defect

    from quarantine

),

all_fields as (

    select * from user_fields
    union all
    select * from program_fields
    union all
    select * from task_fields
    union all
    select * from file_fields

),

records as (

    select
        batch_id,
        'user' as record_type,
        is_clean
    from users
    union all
    select
        batch_id,
        'program' as record_type,
        is_clean
    from programs
    union all
    select
        batch_id,
        'task' as record_type,
        is_clean
    from tasks
    union all
    select
        batch_id,
        record_type,
        is_clean
    from file_fields

),

record_totals as (

    select
        batch_id,
        record_type,
        count(*) as records,
        count(*) filter (where not is_clean) as records_affected

    from records
    group by 1, 2

),

-- each defect class per field, and per record kind one '(all fields)' row counting the
-- records with any defect
defect_counts as (

    select
        batch_id,
        record_type,
        field,
        defect,
        count(*) as defect_count

    from all_fields
    where defect is not null
    group by 1, 2, 3, 4

    union all

    select
        batch_id,
        record_type,
        '(all fields)' as field,
        '(any defect)' as defect,
        records_affected as defect_count

    from record_totals

),

final as (

    select
        record_totals.batch_id,
        batches.source_uri,
        {{ cast_as('record_totals.record_type', 'text') }} as record_type,
        {{ cast_as('defect_counts.field', 'text') }} as field,
        {{ cast_as('defect_counts.defect', 'text') }} as defect,
        cast(defect_counts.defect_count as bigint) as defect_count,
        cast(record_totals.records as bigint) as records,
        cast(
            round({{ cast_as('defect_counts.defect_count', 'numeric') }} / record_totals.records, 6)
            as numeric(9, 6)
        ) as defect_share,
        cast(record_totals.records_affected as bigint) as records_affected,
        cast(
            round(
                1
                - {{ cast_as('record_totals.records_affected', 'numeric') }}
                / record_totals.records,
                6
            )
            as numeric(9, 6)
        ) as clean_share

    from record_totals
    inner join defect_counts
        on record_totals.batch_id = defect_counts.batch_id
        and record_totals.record_type = defect_counts.record_type
    left join batches
        on record_totals.batch_id = batches.batch_id

)

select * from final
