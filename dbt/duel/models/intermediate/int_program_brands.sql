with

documents as (

    select * from {{ ref('stg_user_documents') }}

),

-- every version ever delivered, not only current ones: the brand lookup keeps its history
programs as (

    select
        documents.document_key,
        documents.content_sha256,
        documents.loaded_at,
        {{ json_get('program.program_json', 'brand') }} as brand_json

    from documents
    {{ unnest_json_array(
        json_get('documents.document', 'advocacy_programs'),
        'program', 'program_json', 'program_position'
    ) }}

),

-- the brand's JSON kind and trimmed text, computed once per row (macros/cleaning.sql,
-- field_scalar_columns)
scalars as (

    {{ select_computed_once(
        'programs', 'field_scalars', field_scalar_columns('program', ['brand'])
    ) }}

),

classified as (

    select
        *,
        {{ field_defect('program', 'brand') }} as brand_defect

    from scalars

),

cleaned as (

    select
        document_key,
        content_sha256,
        loaded_at,
        {{ field_value('program', 'brand') }} as brand

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
