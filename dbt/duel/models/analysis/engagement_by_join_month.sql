with

-- the tasks' sums per join month and platform (kept by difference on Postgres): the tasks are
-- not read again
task_sums as (

    select * from {{ ref('int_task_sums') }}

),

measures as (

    select
        task_sums.join_month,
        task_sums.join_month is null as is_unknown_join_month,
        task_sums.platform,
        task_sums.platform is null as is_unknown_platform,
        -- the users, the tasks' measures and their 95 % intervals, as engagement_by_platform's,
        -- so that a month leading over a few known tasks is not read as leading
        {{ task_sums_rollup('task_sums') }}

    from task_sums
    group by 1, 2, 3, 4

),
{%- if not rate_residuals_in_one_pass() %}

-- each group's rate residuals, sum((engagement x its reach sum - its engagement sum x reach)^2)
-- over the tasks its rate is over, for the rate's interval, where the target does not sum them
-- in the aggregate above (macros/intervals.sql, rate_squares: a second pass over the tasks and
-- their users' join months, against the groups' sums). tasks_completed and base are named
-- again, not through `joined`: a CTE read twice is materialised whole.
rate_residuals as (

    select
        residuals.join_month,
        residuals.platform,
        sum(residuals.residual * residuals.residual) as squares
    from (
        select
            sums.join_month,
            sums.platform,
            {{ cast_as('rated.engagement', exact_number_type()) }}
            * {{ cast_as('sums.engagement_rate_reach', exact_number_type()) }}
            - {{ cast_as('sums.engagement_rate_engagement', exact_number_type()) }}
            * {{ cast_as('rated.reach', exact_number_type()) }} as residual
        from (
            select
                {{ utc_month('rated_users.joined_at') }} as join_month,
                rated_tasks.platform,
                rated_tasks.engagement,
                rated_tasks.reach
            from {{ ref('tasks_completed') }} as rated_tasks
            inner join {{ ref('base') }} as rated_users
                on rated_tasks.user_key = rated_users.user_key
            where rated_tasks.engagement is not null and rated_tasks.reach is not null
        ) as rated
        inner join measures as sums
            on
                rated.join_month is not distinct from sums.join_month
                and rated.platform is not distinct from sums.platform
    ) as residuals
    group by 1, 2

),
{%- endif %}

final as (

    select
        measures.join_month,
        measures.is_unknown_join_month,
        measures.platform,
        measures.is_unknown_platform,
        measures.user_count,
        {{ task_measure_columns('measures') }},
        {{ engagement_interval_columns('measures', 'rate_residuals') }}

    from measures
    {%- if not rate_residuals_in_one_pass() %}
    left join rate_residuals
        on
            measures.join_month is not distinct from rate_residuals.join_month
            and measures.platform is not distinct from rate_residuals.platform
    {%- endif %}

)

select * from final
