with

source as (

    select * from {{ source('raw', 'quarantine') }}

),

final as (

    select
        cast(source_name as text) as source_name,
        cast(document_key as text) as document_key,
        cast(content_sha256 as text) as content_sha256,
        cast(batch_id as bigint) as batch_id,
        cast(quarantined_at as timestamptz) as quarantined_at,
        cast(reason as text) as reason,
        cast(detail as text) as detail,
        cast(byte_size as bigint) as byte_size

    from source

)

select * from final
