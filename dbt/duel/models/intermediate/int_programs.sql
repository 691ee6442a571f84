with

current_documents as (

    select * from {{ ref('int_current_documents') }}

),

unnested as (

    select
        current_documents.document_key,
        current_documents.source_name,
        current_documents.content_sha256,
        current_documents.batch_id,
        cast(program.program_position as integer) as program_position,
        program.program_json -> 'program_id' as program_id_json,
        program.program_json -> 'brand' as brand_json,
        program.program_json -> 'total_sales_attributed' as total_sales_attributed_json,
        program.program_json -> 'tasks_completed' as tasks_completed_json

    from current_documents
    cross join lateral {{ array_elements("current_documents.document -> 'advocacy_programs'") }}
        with ordinality as program (program_json, program_position)

),

classified as (

    select
        *,
        {{ field_defect('program', 'program_id') }} as program_id_defect,
        {{ field_defect('program', 'brand') }} as brand_defect,
        {{ field_defect('program', 'total_sales_attributed') }} as total_sales_attributed_defect,
        {{ field_defect('program', 'tasks_completed') }} as tasks_completed_defect

    from unnested

),

cleaned as (

    select
        {{ surrogate_key(['document_key', 'program_position']) }} as program_key,
        {{ surrogate_key(['document_key']) }} as user_key,
        document_key,
        source_name,
        content_sha256,
        batch_id,
        program_position,
        {{ field_value('program', 'program_id') }} as program_id,
        {{ field_value('program', 'brand') }} as brand,
        {{ field_value('program', 'total_sales_attributed') }} as total_sales_attributed,
        {{ field_value('program', 'tasks_completed') }} as task_count,
        program_id_defect,
        brand_defect,
        total_sales_attributed_defect,
        tasks_completed_defect

    from classified

),

final as (

    select
        program_key,
        user_key,
        document_key,
        source_name,
        content_sha256,
        batch_id,
        program_position,
        program_id,
        brand,
        {{ normalised_brand('brand') }} as brand_normalised,
        case
            when brand is null then {{ unknown_brand_id() }}
            else {{ surrogate_key([normalised_brand('brand')]) }}
        end as brand_id,
        total_sales_attributed,
        task_count,
        program_id_defect,
        brand_defect,
        total_sales_attributed_defect,
        tasks_completed_defect,
        {{ has_no_defects('program') }} as has_no_defects

    from cleaned

)

select * from final
