-- every field of var `fields`' user, in its order; the list's value is its length, program_count
{% set value_names = {'advocacy_programs': 'program_count'} -%}

{#-
    A build that reads every document computes each JSON value and defect class once per row
    behind a fence; an incremental one keeps its filters on the documents (macros/portable.sql,
    computed_once_fence). At 1M users base's full build went from 38.2 / 35.5 s to 26.8 / 26.6
    s. int_programs and int_tasks do not fence: built whole, their query runs in parallel
    workers, which a fence would stop (their models took 2-3 s longer fenced, on one process).
-#}
{% set whole = builds_core_whole() %}

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
        {{ json_get('document', field) }} as {{ field }}_json{{ ',' if not loop.last }}
        {%- endfor %}

    from current_documents
    {{ computed_once_fence(whole) }}

),

-- each field's defect class, computed once per row (macros/portable.sql)
classified as (

    {{ select_computed_once('extracted', 'defects', field_defect_columns('user'), fenced=whole) }}

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
