{# replace_keys reads the changed users (dbt_changes) on Postgres: elsewhere a table built whole #}
{{
    config(
        materialized='incremental' if target.type == 'postgres' else 'table',
        incremental_strategy='replace_keys',
        unique_key='user_key',
        on_schema_change='fail',
        pre_hook=["{{ scans_whole_when_built_whole() }}", "{{ stage_changed_users() }}"],
        post_hook=["{{ apply_keys() }}", "{{ record_model_build() }}"],
        indexes=[
            {'columns': ['engagement']},
            {'columns': ['reach']},
            {'columns': ['sales']},
        ],
    )
}}

-- the ranked measures are indexed: top_advocates reads each ranking's greatest values in their
-- order, not every user

-- the list of changed users is read after the three core models (macros/user_changes.sql)
{{ changed_users_depends() }}

-- incremental: only the users whose rows in base, advocacy_programs or tasks_completed changed
-- since this table was written (macros/user_changes.sql; the strategy: macros/incremental.sql,
-- replace_keys), each user's row being an aggregate of that user's rows alone

with

users as (

    select * from {{ ref('base') }}

),

programs as (

    select * from {{ ref('advocacy_programs') }}

),

tasks as (

    select * from {{ ref('tasks_completed') }}

),

program_measures as (

    select
        programs.user_key,
        {{ sales_measures('programs') }}

    from programs
    {% if is_incremental() %}
    where {{ in_changed_users('programs.user_key') }}
    {% endif %}
    group by 1

),

task_measures as (

    select
        tasks.user_key,
        {{ task_measures('tasks') }}

    from tasks
    {% if is_incremental() %}
    where {{ in_changed_users('tasks.user_key') }}
    {% endif %}
    group by 1

),

final as (

    select
        users.user_key,
        users.document_key,
        users.user_id,
        users.name,
        users.email,
        users.instagram_handle,
        users.tiktok_handle,
        -- the best identifier the user has, for rankings and charts
        coalesce(
            users.name,
            users.email,
            users.instagram_handle,
            users.tiktok_handle,
            {{ cast_as('users.user_id', 'text') }},
            users.document_key
        ) as label,
        case
            when users.name is not null then 'name'
            when users.email is not null then 'email'
            when users.instagram_handle is not null then 'instagram_handle'
            when users.tiktok_handle is not null then 'tiktok_handle'
            when users.user_id is not null then 'user_id'
            else 'document_key'
        end as label_source,
        users.is_identifiable,
        {{ sales_measure_columns('program_measures') }},
        {{ task_measure_columns('task_measures') }}

    from users
    left join program_measures
        on users.user_key = program_measures.user_key
    left join task_measures
        on users.user_key = task_measures.user_key
    {% if is_incremental() %}
    where {{ in_changed_users('users.user_key') }}
    {% endif %}

)

select * from final
