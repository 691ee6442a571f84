{# built in one process: in parallel, Postgres aggregated the defective users (1M programs and
   tasks at 1M users) once per process, 3.4 s of CPU against 1.5 s (bench/analysis.md) #}
{{ config(pre_hook="{{ in_one_process() }}") }}

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

-- a record is one user document with its programs and tasks: clean when none of them has a defect
unclean_users as (

    select user_key from programs
    where not is_clean
    union
    select user_key from tasks
    where not is_clean

),

records as (

    select
        users.batch_id,
        cast(count(*) as bigint) as records,
        cast(
            count(*) filter (where users.is_clean and unclean_users.user_key is null) as bigint
        ) as clean_records,
        cast(count(*) filter (where users.is_repaired) as bigint) as repaired_files

    from users
    left join unclean_users
        on users.user_key = unclean_users.user_key
    group by 1

),

quarantined as (

    select
        batch_id,
        cast(count(*) as bigint) as quarantined_files

    from quarantine
    group by 1

),

final as (

    select
        coalesce(records.batch_id, quarantined.batch_id) as batch_id,
        batches.source_uri,
        coalesce(records.records, 0) as records,
        coalesce(records.clean_records, 0) as clean_records,
        cast(
            round({{ cast_as('records.clean_records', 'numeric') }} / nullif(records.records, 0), 6)
            as numeric(9, 6)
        ) as clean_share,
        coalesce(records.repaired_files, 0) as repaired_files,
        coalesce(quarantined.quarantined_files, 0) as quarantined_files

    from records
    full outer join quarantined
        on records.batch_id = quarantined.batch_id
    left join batches
        on batches.batch_id = coalesce(records.batch_id, quarantined.batch_id)

)

select * from final
