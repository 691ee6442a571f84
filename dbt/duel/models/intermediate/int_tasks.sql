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
        cast(task.task_position as integer) as task_position,
        -- the element's JSON kind: one that is not an object has no fields (field_defect_columns)
        {{ json_kind('task.task_json') }} as record_json_kind,
        {%- for field in var('fields')['task'] %}
        {{ json_field('task_fields', 'task.task_json', field) }} as {{ field }}_json
        {{- ',' if not loop.last }}
        {%- endfor %}

    from current_documents
    {{ unnest_json_array(
        json_get('current_documents.document', 'advocacy_programs'),
        'program', 'program_json', 'program_position'
    ) }}
    {{ unnest_json_array(
        json_get('program.program_json', 'tasks_completed'),
        'task', 'task_json', 'task_position'
    ) }}
    {{ json_fields_from('task.task_json', var('fields')['task'], 'task_fields') }}

),

-- each field's JSON kind and trimmed text, computed once per row (macros/cleaning.sql,
-- field_scalar_columns; macros/portable.sql, select_computed_once)
scalars as (

    {{ select_computed_once('unnested', 'field_scalars', field_scalar_columns('task')) }}

),

-- each field's defect class, computed once per row
classified as (

    {{ select_computed_once(
        'scalars', 'defects', field_defect_columns('task', 'record_json_kind')
    ) }}

),

cleaned as (

    select
        {{ surrogate_key(['document_key', 'program_position', 'task_position']) }} as task_key,
        {{ surrogate_key(['document_key', 'program_position']) }} as program_key,
        {{ surrogate_key(['document_key']) }} as user_key,
        document_key,
        source_name,
        content_sha256,
        batch_id,
        program_position,
        task_position,
        {%- for field in var('fields')['task'] %}
        {{ field_value('task', field) }} as {{ field }},
        {%- endfor %}
        {%- for field in var('fields')['task'] %}
        {{ field }}_defect,
        {%- endfor %}
        {{ has_no_defects('task') }} as has_no_defects

    from classified

),

final as (

    select
        *,
        -- NULL when any part is unknown: missing stays missing, never 0
        likes + comments + shares as engagement

    from cleaned

)

select * from final
