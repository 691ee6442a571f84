-- every field of var `fields`' user, in its order; the list's value is its length, program_count
{% set value_names = {'advocacy_programs': 'program_count'} -%}

with

current_documents as (

    select * from {{ ref('int_current_documents') }}

),

extracted as (

    select
        document_key,
        source_name,
        content_sha256,
        batch_id,
        loaded_at,
        updated_at,
        parse_status,
        {%- for field in var('fields')['user'] %}
        {{ json_field('fields', 'document', field) }} as {{ field }}_json{{ ',' if not loop.last }}
        {%- endfor %}

    from current_documents
    {{ json_fields_from('document', var('fields')['user'], 'fields') }}

),

-- each field's JSON kind and trimmed text, computed once per row (macros/cleaning.sql,
-- field_scalar_columns; macros/portable.sql, select_computed_once)
scalars as (

    {{ select_computed_once('extracted', 'field_scalars', field_scalar_columns('user')) }}

),

-- each field's defect class, computed once per row
classified as (

    {{ select_computed_once('scalars', 'defects', field_defect_columns('user')) }}

),

cleaned as (

    select
        {{ surrogate_key(['document_key']) }} as user_key,
        document_key,
        source_name,
        content_sha256,
        batch_id,
        loaded_at,
        updated_at,
        parse_status,
        {%- for field in var('fields')['user'] %}
        {{ field_value('user', field) }} as {{ value_names.get(field, field) }},
        {%- endfor %}
        {%- for field in var('fields')['user'] %}
        {{ field }}_defect{{ ',' if not loop.last }}
        {%- endfor %}

    from classified

),

final as (

    select
        *,
        {{ has_no_defects('user') }} as has_no_defects

    from cleaned

)

select * from final
