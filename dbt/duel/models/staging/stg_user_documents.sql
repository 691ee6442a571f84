with

source as (

    select * from {{ source('raw', 'user_documents') }}

),

final as (

    select
        {{ cast_as('document_key', 'text') }} as document_key,
        {{ cast_as('content_sha256', 'text') }} as content_sha256,
        {{ cast_as('source_name', 'text') }} as source_name,
        cast(batch_id as bigint) as batch_id,
        {{ cast_as('loaded_at', 'timestamptz') }} as loaded_at,
        {{ cast_as('parse_status', 'text') }} as parse_status,
        {{ cast_as('parse_error', 'text') }} as parse_error,
        {{ json_parse('repair') }} as repair,
        cast(byte_size as integer) as byte_size,
        {{ json_parse('document') }} as document

    from source

)

select * from final
