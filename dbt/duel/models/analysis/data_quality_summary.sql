with

-- the user records per batch and defect group, with whether each whole record (the user, its
-- programs and tasks) is clean: kept by difference on Postgres (int_defect_sums)
user_groups as (

    select * from {{ ref('int_defect_sums') }}
    where record_type = 'user'

),

quarantine as (

    select * from {{ ref('stg_quarantine') }}

),

batches as (

    select * from {{ ref('stg_batches') }}

),

records as (

    select
        user_groups.batch_id,
        cast(sum(user_groups.records) as bigint) as records,
        cast(
            coalesce(sum(user_groups.records) filter (where user_groups.is_clean_record), 0)
            as bigint
        ) as clean_records,
        cast(
            coalesce(sum(user_groups.records) filter (where user_groups.is_repaired), 0) as bigint
        ) as repaired_files

    from user_groups
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
