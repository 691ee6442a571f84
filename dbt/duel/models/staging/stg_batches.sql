with

source as (

    select * from {{ source('raw', 'batches') }}

),

final as (

    select
        cast(batch_id as bigint) as batch_id,
        cast(source_uri as text) as source_uri,
        cast(shard as text) as shard,
        cast(status as text) as status,
        cast(started_at as timestamptz) as started_at,
        cast(finished_at as timestamptz) as finished_at,
        cast(files_seen as integer) as files_seen,
        cast(loaded as integer) as loaded,
        cast(repaired as integer) as repaired,
        cast(quarantined as integer) as quarantined,
        cast(skipped as integer) as skipped,
        cast(unchanged as integer) as unchanged,
        cast(deleted as integer) as deleted,
        cast(keyless as integer) as keyless,
        cast(is_full as boolean) as is_full,
        cast(error as text) as error

    from source

)

select * from final
