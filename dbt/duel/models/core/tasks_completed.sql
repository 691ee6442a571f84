{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='user_key',
        on_schema_change='fail',
        pre_hook="{{ delete_rows_of_changed_documents() }}",
        post_hook="{{ apply_keys() }}",
        indexes=[
            {'columns': ['program_key']},
            {'columns': ['user_key']},
            {'columns': ['batch_id']},
        ],
    )
}}

-- depends_on: {{ ref('stg_current_versions') }}
-- (the pre-hook deletes the rows of documents with a newer version, including those that now
-- have no programs or tasks at all)

with

tasks as (

    select * from {{ ref('stg_tasks_completed') }}

),

current_tasks as (

    select * from tasks
    {% if is_incremental() %}
    where batch_id > {{ batch_watermark() }}
    {% endif %}

),

final as (

    select
        task_key,
        program_key,
        user_key,
        program_position,
        task_position,
        task_id,
        platform,
        post_url,
        likes,
        comments,
        shares,
        reach,
        engagement,
        engagement is null as has_unknown_engagement,
        batch_id,
        task_id_defect,
        platform_defect,
        post_url_defect,
        likes_defect,
        comments_defect,
        shares_defect,
        reach_defect,
        has_no_defects as is_clean

    from current_tasks

)

select * from final
