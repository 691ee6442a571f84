with

source as (

    select * from {{ source('raw', 'user_documents') }}

),

-- every version ever delivered, not only current ones: the brand lookup keeps its history
programs as (

    select
        cast(source.document_key as text) as document_key,
        cast(source.content_sha256 as text) as content_sha256,
        cast(source.loaded_at as timestamptz) as loaded_at,
        program.program_json -> 'brand' as brand_json

    from source
    cross join lateral {{ array_elements("source.document -> 'advocacy_programs'") }}
        with ordinality as program (program_json, program_position)

),

classified as (

    select
        *,
        {{ label_defect('brand_json') }} as brand_defect

    from programs

),

cleaned as (

    select
        document_key,
        content_sha256,
        loaded_at,
        {{ label_value('brand_json', 'brand_defect') }} as brand

    from classified

),

final as (

    select
        document_key,
        content_sha256,
        loaded_at,
        brand,
        {{ normalised_brand('brand') }} as brand_normalised,
        {{ surrogate_key([normalised_brand('brand')]) }} as brand_id

    from cleaned
    where brand is not null

)

select * from final
