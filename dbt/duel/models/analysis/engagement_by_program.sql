{# replace_keys reads the changed users (dbt_changes) on Postgres: elsewhere a table built whole #}
{{
    config(
        materialized='incremental' if target.type == 'postgres' else 'table',
        incremental_strategy='replace_keys',
        unique_key='program_key',
        on_schema_change='fail',
        pre_hook="{{ stage_changed_users() }}",
        post_hook=["{{ apply_keys() }}", "{{ record_model_build() }}"],
    )
}}

-- the list of changed users is read after the three core models (macros/user_changes.sql)
{{ changed_users_depends() }}

-- incremental: only the programs of the users whose rows changed since this table was written
-- (macros/user_changes.sql; the strategy: macros/incremental.sql, replace_keys), or whose
-- brand's name changed, each program's row being an aggregate of that program's rows alone

with

programs as (

    select * from {{ ref('advocacy_programs') }}

),

brands as (

    select * from {{ ref('brand') }}

),

tasks as (

    select * from {{ ref('tasks_completed') }}

),

{% if is_incremental() %}

changed_programs as (

    -- the programs of the users whose rows changed (those of a deleted program are gone: the
    -- strategy deletes them)
    select changed.program_key
    from {{ ref('advocacy_programs') }} as changed
    where {{ in_changed_users('changed.user_key') }}

    union

    -- a program whose brand's name is not the one this table holds (or whose brand is gone):
    -- compared, not dated, since brand rewrites every brand a new delivery names
    select existing.program_key
    from {{ this }} as existing
    left join brands
        on existing.brand_id = brands.brand_id
    where brands.brand_id is null or existing.brand is distinct from brands.brand

),

{% endif %}

task_measures as (

    select
        programs.program_key,
        {{ program_platform_measures('tasks') }},
        {{ task_measures('tasks') }}

    from programs
    left join tasks
        on programs.program_key = tasks.program_key
    {% if is_incremental() %}
    where programs.program_key in (select changed_programs.program_key from changed_programs)
    {% endif %}
    group by 1

),

final as (

    select
        programs.program_key,
        programs.user_key,
        programs.program_id,
        programs.brand_id,
        brands.brand,
        programs.is_unknown_brand,
        programs.total_sales_attributed,
        task_measures.platform,
        task_measures.platform_count,
        task_measures.is_unknown_platform,
        task_measures.is_without_tasks,
        {{ task_measure_columns('task_measures') }}

    from programs
    inner join brands
        on programs.brand_id = brands.brand_id
    inner join task_measures
        on programs.program_key = task_measures.program_key
    {% if is_incremental() %}
    where programs.program_key in (select changed_programs.program_key from changed_programs)
    {% endif %}

)

select * from final
