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
        {{ uuid_defect('program_id_json') }} as program_id_defect,
        {{ label_defect('brand_json') }} as brand_defect,
        {{ amount_defect('total_sales_attributed_json', placeholders=['no-data'],
                          range=measure_range('total_sales_attributed')) }}
            as total_sales_attributed_defect,
        {{ array_defect('tasks_completed_json') }} as tasks_completed_defect

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
        {{ uuid_value('program_id_json', 'program_id_defect') }} as program_id,
        {{ label_value('brand_json', 'brand_defect') }} as brand,
        {{ amount_value('total_sales_attributed_json', 'total_sales_attributed_defect') }}
            as total_sales_attributed,
        case
            when jsonb_typeof(tasks_completed_json) = 'array'
            then jsonb_array_length(tasks_completed_json)
            else 0
        end as task_count,
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
        (
            program_id_defect is null
            and brand_defect is null
            and total_sales_attributed_defect is null
            and tasks_completed_defect is null
        ) as has_no_defects

    from cleaned

)

select * from final
