with

users as (

    select * from {{ ref('base') }}

),

quarantine as (

    select * from {{ ref('stg_quarantine') }}

),

batches as (

    select * from {{ ref('stg_batches') }}

),

current_versions as (

    select * from {{ ref('stg_current_versions') }}

),

-- records per batch, cleanliness and combination of defect classes (NULL when clean), of
-- users, programs and tasks: a few hundred groups where there are millions of records (defects
-- are rare and few), kept by difference on Postgres (int_defect_sums); the fields are unpivoted
-- from those groups, the same counts as unpivoting every record for a fraction of the work
defect_sums as (

    select * from {{ ref('int_defect_sums') }}

),

user_groups as (

    select * from defect_sums
    where record_type = 'user'

),

program_groups as (

    select * from defect_sums
    where record_type = 'program'

),

task_groups as (

    select * from defect_sums
    where record_type = 'task'

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

-- each document's latest quarantined file (a file whose key is its content is its own
-- document): the one a count of files may hold
latest_quarantine as (

    {%- set document =
        "coalesce(quarantine.document_key, 'content:' || quarantine.content_sha256)" %}
    {%- set latest = (
        [document],
        [document ~ ' asc', 'quarantine.batch_id desc', 'quarantine.source_name desc'],
    ) %}
    select {{ distinct_on(*latest) }}
        {{ document }} as document_key,
        quarantine.batch_id,
        quarantine.reason
    from quarantine
    {{ distinct_on_end(*latest) }}

),

-- the quarantined files that are their document's latest delivery: a current document's newer
-- delivery (in the batch that delivered it), or a document that is not current (never loaded,
-- or deleted before this delivery). A file quarantined and then delivered intact is not one.
quarantined_files as (

    select
        coalesce(users.newer_quarantined_batch_id, latest_quarantine.batch_id) as batch_id,
        latest_quarantine.reason

    from latest_quarantine
    left join users
        on latest_quarantine.document_key = users.document_key
    left join current_versions
        on latest_quarantine.document_key = current_versions.document_key
    where
        case
            when users.document_key is not null then users.newer_quarantined_batch_id is not null
            else
                current_versions.batch_id is null
                or current_versions.batch_id <= latest_quarantine.batch_id
        end

),

-- files: one per document, its latest delivery (every delivery is in raw.batch_files): a
-- current document whose file loaded, clean or truncated and closed by the loader (in the batch
-- that made it current), or a quarantined file, by reason (quarantined_files)
file_fields as (

    select
        user_groups.batch_id,
        'file' as record_type,
        not user_groups.is_repaired as is_clean,
        'file' as field,
        case when user_groups.is_repaired then {{ defect_class('repaired') }} end as defect,
        user_groups.records

    from user_groups
    where not user_groups.has_newer_quarantined_delivery

    union all

    select
        batch_id,
        'file' as record_type,
        false as is_clean,
        'file' as field,
        'quarantined:' || reason as defect,
        count(*) as records

    from quarantined_files
    group by batch_id, reason

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
