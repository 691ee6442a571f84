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

{#
    Records are first counted per batch and combination of defect classes (a few hundred groups
    where there are millions of records: defects are rare and few), and the fields unpivoted from
    those groups: the same counts as unpivoting every record, for a fraction of the work.
#}
{% set user_flags = [
    'users.is_repaired',
    'users.is_duplicate_email',
    'users.has_newer_quarantined_delivery',
    text_starts_with('users.document_key', "'content:'") ~ ' as is_keyless',
] %}

-- records per batch, cleanliness and combination of defect classes (NULL when clean)
user_groups as (

    {{ defect_groups('user', 'users', user_flags) }}

),

program_groups as (

    {{ defect_groups('program', 'programs') }}

),

task_groups as (

    {{ defect_groups('task', 'tasks') }}

),

-- one row per group and field: its defect class and how many records have it
user_fields as (

    select
        user_groups.batch_id,
        user_groups.record_type,
        field.name as field,
        field.defect,
        user_groups.records

    from user_groups
    {{ lateral_values(field_defect_rows('user', 'user_groups') + [
        [
            "'email'",
            "case when user_groups.is_duplicate_email then " ~ defect_class('duplicate') ~ " end",
        ],
        [
            "'document'",
            "case when user_groups.has_newer_quarantined_delivery then "
            ~ defect_class('stale') ~ " end",
        ],
        [
            "'document'",
            "case when user_groups.is_keyless then " ~ defect_class('keyless') ~ " end",
        ],
    ], 'field', ['name', 'defect']) }}

),

program_fields as (

    select
        program_groups.batch_id,
        program_groups.record_type,
        field.name as field,
        field.defect,
        program_groups.records

    from program_groups
    {{ lateral_values(
        field_defect_rows('program', 'program_groups'), 'field', ['name', 'defect']
    ) }}

),

task_fields as (

    select
        task_groups.batch_id,
        task_groups.record_type,
        field.name as field,
        field.defect,
        task_groups.records

    from task_groups
    {{ lateral_values(field_defect_rows('task', 'task_groups'), 'field', ['name', 'defect']) }}

),

-- files: a current document whose file was truncated and closed by the loader, or a file
-- that could not be loaded at all (quarantined, by reason)
file_fields as (

    select
        user_groups.batch_id,
        'file' as record_type,
        not user_groups.is_repaired as is_clean,
        'file' as field,
        case when user_groups.is_repaired then {{ defect_class('repaired') }} end as defect,
        user_groups.records

    from user_groups

    union all

    select
        quarantine.batch_id,
        'file' as record_type,
        false as is_clean,
        'file' as field,
        'quarantined:' || quarantine.reason as defect,
        count(*) as records

    from quarantine
    group by quarantine.batch_id, quarantine.reason

),

all_fields as (

    {% for relation in ['user_fields', 'program_fields', 'task_fields', 'file_fields'] %}
    select
        batch_id,
        record_type,
        field,
        defect,
        records
    from {{ relation }}
    {{ 'union all' if not loop.last }}
    {% endfor %}

),

-- every group of records, of every type (the record totals)
groups as (

    {% for relation in ['user_groups', 'program_groups', 'task_groups', 'file_fields'] %}
    select
        batch_id,
        record_type,
        is_clean,
        records
    from {{ relation }}
    {{ 'union all' if not loop.last }}
    {% endfor %}

),

record_totals as (

    select
        batch_id,
        record_type,
        sum(records) as records,
        coalesce(sum(records) filter (where not is_clean), 0) as records_affected

    from groups
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
        sum(records) as defect_count

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
