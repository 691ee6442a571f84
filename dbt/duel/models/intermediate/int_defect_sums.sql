{#
    Sums kept by difference on Postgres (macros/differences.sql): an incremental build adds to
    each group what its changed users' records changed. Elsewhere a table of the same sums,
    rebuilt whole.
#}
{{
    config(
        materialized='sums_by_difference' if target.type == 'postgres' else 'table',
        key='user_key',
        group_by=defect_group_columns(),
        sums=['records'],
    )
}}

-- the users in scope: those whose rows in base, advocacy_programs or tasks_completed changed
-- since the last build, deleted users among them (macros/user_changes.sql)

-- each user's contribution to a group: its own record, and its programs and tasks counted per
-- defect group (macros/cleaning.sql defect_groups)
{% set contributions %}
    with

    programs as (

        select * from {{ ref('advocacy_programs') }}
        where {{ in_difference_scope('user_key') }}

    ),

    tasks as (

        select * from {{ ref('tasks_completed') }}
        where {{ in_difference_scope('user_key') }}

    ),

    -- a record is one user document with its programs and tasks: clean when none of them has a
    -- defect
    unclean_users as (

        select user_key from programs
        where not is_clean
        union
        select user_key from tasks
        where not is_clean

    ),

    users as (

        select
            users.user_key,
            users.batch_id,
            users.is_clean,
            {%- for field in var('fields')['user'] %}
            users.{{ field }}_defect,
            {%- endfor %}
            {%- for flag in user_defect_flags('users') %}
            {{ flag[0] }} as {{ flag[1] }}{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ ref('base') }} as users
        left join unclean_users
            on users.user_key = unclean_users.user_key
        where {{ in_difference_scope('users.user_key') }}

    )

    {{ defect_groups('user', 'users', flags=true) }}

    union all

    {{ defect_groups('program', 'programs') }}

    union all

    {{ defect_groups('task', 'tasks') }}
{% endset %}

{{ sums_of(contributions) }}
