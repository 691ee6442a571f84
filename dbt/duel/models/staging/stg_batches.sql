with

source as (

    select * from {{ source('raw', 'batches') }}

),

final as (

    select
        cast(batch_id as bigint) as batch_id,
        {{ cast_as('source_uri', 'text') }} as source_uri,
        {{ cast_as('shard', 'text') }} as shard,
        {{ cast_as('status', 'text') }} as status,
        {{ cast_as('started_at', 'timestamptz') }} as started_at,
        {{ cast_as('finished_at', 'timestamptz') }} as finished_at,
        cast(files_read as integer) as files_read,
        cast(files_seen as integer) as files_seen,
        cast(loaded as integer) as loaded,
        cast(repaired as integer) as repaired,
        cast(quarantined as integer) as quarantined,
        cast(skipped as integer) as skipped,
        cast(unchanged as integer) as unchanged,
        cast(same_content as integer) as same_content,
        cast(deleted as integer) as deleted,
        cast(keyless as integer) as keyless,
        cast(deletes_withheld as integer) as deletes_withheld,
        cast(is_full as boolean) as is_full,
        {{ cast_as('error', 'text') }} as error

    from source

)

select * from final
