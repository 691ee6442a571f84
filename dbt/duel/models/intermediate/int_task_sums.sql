{#
    Sums kept by difference on Postgres (macros/differences.sql): an incremental build adds to
    each group what its changed users' tasks changed, so it reads the changed users' tasks only.
    Elsewhere a table of the same sums, rebuilt whole.
#}
{{
    config(
        materialized='sums_by_difference' if target.type == 'postgres' else 'table',
        key='user_key',
        group_by=['join_month', 'platform'],
        sums=task_sum_names(),
    )
}}

-- the users in scope: those whose rows in base, advocacy_programs or tasks_completed changed
-- since the last build, deleted users among them (macros/user_changes.sql)

-- each user's contribution to a group: the additive sums of their tasks on one platform (the
-- user's join month is one)
{% set contributions %}
    select
        tasks.user_key,
        {{ utc_month('users.joined_at') }} as join_month,
        tasks.platform,
        {{ task_sums('tasks') }}

    from {{ ref('tasks_completed') }} as tasks
    inner join {{ ref('base') }} as users
        on tasks.user_key = users.user_key
    where {{ in_difference_scope('tasks.user_key') }}
    group by 1, 2, 3
{% endset %}

{{ sums_of(contributions) }}
