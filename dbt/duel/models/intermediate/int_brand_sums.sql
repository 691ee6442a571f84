{#
    Sums kept by difference on Postgres (macros/differences.sql): an incremental build adds to
    each brand what its changed users' programs and tasks changed. Elsewhere a table of the same
    sums, rebuilt whole.
#}
{{
    config(
        materialized='sums_by_difference' if target.type == 'postgres' else 'table',
        key='user_key',
        group_by=['brand_id'],
        sums=sales_sum_names() + task_sum_names(squares=false),
    )
}}

-- the users in scope: those whose rows in base, advocacy_programs or tasks_completed changed
-- since the last build, deleted users among them (macros/user_changes.sql)

-- each user's contribution to a brand: the additive sums of their programs of the brand, and
-- of those programs' tasks
{% set contributions %}
    with

    program_sums as (

        select
            programs.user_key,
            programs.brand_id,
            {{ sales_sums('programs') }}

        from {{ ref('advocacy_programs') }} as programs
        where {{ in_difference_scope('programs.user_key') }}
        group by 1, 2

    ),

    -- every program with its tasks (none: one row of NULLs, which the sums count as nothing)
    program_task_sums as (

        select
            programs.user_key,
            programs.brand_id,
            {{ task_sums('tasks', squares=false) }}

        from {{ ref('advocacy_programs') }} as programs
        left join {{ ref('tasks_completed') }} as tasks
            on programs.program_key = tasks.program_key
        where {{ in_difference_scope('programs.user_key') }}
        group by 1, 2

    )

    -- the same (user, brand) pairs on both sides: every pair of either is a program's
    select
        program_sums.user_key,
        program_sums.brand_id,
        {%- for name in sales_sum_names() %}
        program_sums.{{ name }},
        {%- endfor %}
        {%- for name in task_sum_names(squares=false) %}
        program_task_sums.{{ name }}{{ ',' if not loop.last }}
        {%- endfor %}

    from program_sums
    inner join program_task_sums
        on
            program_sums.user_key = program_task_sums.user_key
            and program_sums.brand_id = program_task_sums.brand_id
{% endset %}

{{ sums_of(contributions) }}
