-- every field of var `fields`' program, in its order; the list's value is its length, task_count
{% set value_names = {'tasks_completed': 'task_count'} -%}

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
        -- the element's JSON kind: one that is not an object has no fields (field_defect_columns)
        {{ json_kind('program.program_json') }} as record_json_kind,
        {%- for field in var('fields')['program'] %}
        {{ json_field('program_fields', 'program.program_json', field) }} as {{ field }}_json
        {{- ',' if not loop.last }}
        {%- endfor %}

    from current_documents
    {{ unnest_json_array(
        json_get('current_documents.document', 'advocacy_programs'),
        'program', 'program_json', 'program_position'
    ) }}
    {{ json_fields_from('program.program_json', var('fields')['program'], 'program_fields') }}

),

-- each field's JSON kind and trimmed text, computed once per row (macros/cleaning.sql,
-- field_scalar_columns; macros/portable.sql, select_computed_once)
scalars as (

    {{ select_computed_once('unnested', 'field_scalars', field_scalar_columns('program')) }}

),

-- each field's defect class, computed once per row
classified as (

    {{ select_computed_once(
        'scalars', 'defects', field_defect_columns('program', 'record_json_kind')
    ) }}

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
        {%- for field in var('fields')['program'] %}
        {{ field_value('program', field) }} as {{ value_names.get(field, field) }},
        {%- endfor %}
        {%- for field in var('fields')['program'] %}
        {{ field }}_defect{{ ',' if not loop.last }}
        {%- endfor %}

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
