with

source as (

    select * from {{ source('raw', 'batch_files') }}

),

final as (

    select
        cast(batch_id as bigint) as batch_id,
        cast(file_seq as integer) as file_seq,
        {{ cast_as('source_name', 'text') }} as source_name,
        {{ cast_as('document_key', 'text') }} as document_key,
        {{ cast_as('status', 'text') }} as status,
        {{ cast_as('reason', 'text') }} as reason,
        {{ cast_as('content_sha256', 'text') }} as content_sha256,
        cast(byte_size as bigint) as byte_size,
        status in ('loaded', 'repaired') as is_new_version

    from source

)

select * from final
