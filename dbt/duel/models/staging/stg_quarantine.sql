with

source as (

    select * from {{ source('raw', 'quarantine') }}

),

final as (

    select
        {{ cast_as('source_name', 'text') }} as source_name,
        {{ cast_as('document_key', 'text') }} as document_key,
        {{ cast_as('content_sha256', 'text') }} as content_sha256,
        cast(batch_id as bigint) as batch_id,
        {{ cast_as('quarantined_at', 'timestamptz') }} as quarantined_at,
        {{ cast_as('reason', 'text') }} as reason,
        {{ cast_as('detail', 'text') }} as detail,
        cast(byte_size as bigint) as byte_size

    from source

)

select * from final
