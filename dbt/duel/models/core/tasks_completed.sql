{{
    config(
        materialized='incremental',
        incremental_strategy='replace_documents',
        on_schema_change='fail',
        post_hook=["{{ apply_keys() }}", "{{ record_whole_build() }}"],
        indexes=[
            {'columns': ['program_key']},
            {'columns': ['user_key']},
            {'columns': ['batch_id']},
        ],
    )
}}

-- depends_on: {{ ref('stg_current_versions') }}
-- (the replace_documents strategy, macros/incremental.sql, replaces every row of a changed
-- document, including those of a document that now has no programs or tasks at all)

with

tasks as (

    select * from {{ ref('int_tasks') }}

),

changed_tasks as (

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

    from changed_tasks

)

select * from final
