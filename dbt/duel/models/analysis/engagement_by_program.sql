{# replace_keys reads row versions (xmin), a Postgres column: elsewhere a table rebuilt whole #}
{{
    config(
        materialized='incremental' if target.type == 'postgres' else 'table',
        incremental_strategy='replace_keys',
        unique_key='program_key',
        key_relation='advocacy_programs',
        on_schema_change='fail',
        post_hook="{{ apply_keys() }}",
    )
}}

-- incremental: only the programs whose rows in advocacy_programs or tasks_completed were written
-- since this table was (macros/incremental.sql, replace_keys), or whose brand's name changed,
-- each program's row being an aggregate of that program's rows alone

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
    {{ keys_written_since_this('program_key', ['advocacy_programs', 'tasks_completed']) }}

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
