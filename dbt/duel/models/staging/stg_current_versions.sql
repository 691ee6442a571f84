with

source as (

    select * from {{ source('raw', 'current_versions') }}

),

final as (

    select
        cast(document_key as text) as document_key,
        cast(content_sha256 as text) as content_sha256,
        cast(source_name as text) as source_name,
        cast(batch_id as bigint) as batch_id,
        cast(is_deleted as boolean) as is_deleted,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from final
