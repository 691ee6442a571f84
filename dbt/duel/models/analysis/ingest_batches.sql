with

batches as (

    select * from {{ ref('stg_batches') }}

),

final as (

    select
        batch_id,
        source_uri,
        shard,
        status,
        started_at,
        finished_at,
        cast(
            round({{ seconds_between('started_at', 'finished_at') }}, 3)
            as numeric(12, 3)
        ) as seconds,
        files_read,
        files_seen,
        loaded,
        repaired,
        quarantined,
        skipped,
        unchanged,
        same_content,
        deleted,
        keyless,
        deletes_withheld,
        is_full,
        error

    from batches

)

select * from final
