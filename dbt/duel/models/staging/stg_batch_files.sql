with

source as (

    select * from {{ source('raw', 'batch_files') }}

),

final as (

    select
        cast(batch_id as bigint) as batch_id,
        cast(file_seq as integer) as file_seq,
        cast(source_name as text) as source_name,
        cast(document_key as text) as document_key,
        cast(status as text) as status,
        cast(reason as text) as reason,
        cast(content_sha256 as text) as content_sha256,
        cast(byte_size as bigint) as byte_size,
        status in ('loaded', 'repaired') as is_new_version

    from source

)

select * from final
