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
        {{ uuid_defect('task_id_json') }} as task_id_defect,
        {{ label_defect('platform_json', accepted=var('platforms')) }} as platform_defect,
        {{ url_defect('post_url_json', placeholders=['broken_link']) }} as post_url_defect,
        {{ count_defect('likes_json', measure_range('likes')) }} as likes_defect,
        {{ count_defect('comments_json', measure_range('comments')) }} as comments_defect,
        {{ count_defect('shares_json', measure_range('shares')) }} as shares_defect,
        {{ count_defect('reach_json', measure_range('reach')) }} as reach_defect

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
        {{ uuid_value('task_id_json', 'task_id_defect') }} as task_id,
        {{ label_value('platform_json', 'platform_defect', case_fold=true) }} as platform,
        {{ url_value('post_url_json', 'post_url_defect') }} as post_url,
        {{ count_value('likes_json', 'likes_defect') }} as likes,
        {{ count_value('comments_json', 'comments_defect') }} as comments,
        {{ count_value('shares_json', 'shares_defect') }} as shares,
        {{ count_value('reach_json', 'reach_defect') }} as reach,
        task_id_defect,
        platform_defect,
        post_url_defect,
        likes_defect,
        comments_defect,
        shares_defect,
        reach_defect,
        (
            task_id_defect is null
            and platform_defect is null
            and post_url_defect is null
            and likes_defect is null
            and comments_defect is null
            and shares_defect is null
            and reach_defect is null
        ) as has_no_defects

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
