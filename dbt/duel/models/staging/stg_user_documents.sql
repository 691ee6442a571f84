with

source as (

    select * from {{ source('raw', 'user_documents') }}

),

final as (

    select
        cast(document_key as text) as document_key,
        cast(content_sha256 as text) as content_sha256,
        cast(source_name as text) as source_name,
        cast(batch_id as bigint) as batch_id,
        cast(loaded_at as timestamptz) as loaded_at,
        cast(parse_status as text) as parse_status,
        cast(parse_error as text) as parse_error,
        cast(repair as jsonb) as repair,
        cast(byte_size as integer) as byte_size,
        cast(document as jsonb) as document

    from source

)

select * from final
