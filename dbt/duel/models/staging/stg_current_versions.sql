with

source as (

    select * from {{ source('raw', 'current_versions') }}

),

final as (

    select
        {{ cast_as('document_key', 'text') }} as document_key,
        {{ cast_as('content_sha256', 'text') }} as content_sha256,
        {{ cast_as('source_name', 'text') }} as source_name,
        cast(batch_id as bigint) as batch_id,
        cast(is_deleted as boolean) as is_deleted,
        {{ cast_as('updated_at', 'timestamptz') }} as updated_at

    from source

)

select * from final
