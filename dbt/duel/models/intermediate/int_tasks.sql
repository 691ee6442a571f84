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
        task.task_json -> 'task_id' as task_id_json,
        task.task_json -> 'platform' as platform_json,
        task.task_json -> 'post_url' as post_url_json,
        task.task_json -> 'likes' as likes_json,
        task.task_json -> 'comments' as comments_json,
        task.task_json -> 'shares' as shares_json,
        task.task_json -> 'reach' as reach_json

    from current_documents
    cross join lateral {{ array_elements("current_documents.document -> 'advocacy_programs'") }}
        with ordinality as program (program_json, program_position)
    cross join lateral {{ array_elements("program.program_json -> 'tasks_completed'") }}
        with ordinality as task (task_json, task_position)

),

classified as (

    select
        *,
        {{ field_defect('task', 'task_id') }} as task_id_defect,
        {{ field_defect('task', 'platform') }} as platform_defect,
        {{ field_defect('task', 'post_url') }} as post_url_defect,
        {{ field_defect('task', 'likes') }} as likes_defect,
        {{ field_defect('task', 'comments') }} as comments_defect,
        {{ field_defect('task', 'shares') }} as shares_defect,
        {{ field_defect('task', 'reach') }} as reach_defect

    from unnested

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
        {{ field_value('task', 'task_id') }} as task_id,
        {{ field_value('task', 'platform') }} as platform,
        {{ field_value('task', 'post_url') }} as post_url,
        {{ field_value('task', 'likes') }} as likes,
        {{ field_value('task', 'comments') }} as comments,
        {{ field_value('task', 'shares') }} as shares,
        {{ field_value('task', 'reach') }} as reach,
        task_id_defect,
        platform_defect,
        post_url_defect,
        likes_defect,
        comments_defect,
        shares_defect,
        reach_defect,
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
