with

-- the tasks' sums per join month and platform (kept by difference on Postgres): a platform's
-- are their sums, so the tasks are not read again
task_sums as (

    select * from {{ ref('int_task_sums') }}

),

measures as (

    select
        task_sums.platform,
        task_sums.platform is null as is_unknown_platform,
        -- the users, the tasks' measures and how far each platform's engagement per task and
        -- rate could be from what more tasks would show: their 95 % intervals, so that a
        -- platform leading over a few known tasks is not read as leading
        {{ task_sums_rollup('task_sums') }}

    from task_sums
    group by 1, 2

),

{%- if not rate_residuals_in_one_pass() %}

-- each platform's rate residuals, sum((engagement x its reach sum - its engagement sum x
-- reach)^2) over the tasks its rate is over, for the rate's interval, where the target does
-- not sum them in the aggregate above (macros/intervals.sql, rate_squares: a second pass over
-- the tasks, against the platforms' sums)
rate_residuals as (

    select
        residuals.platform,
        sum(residuals.residual * residuals.residual) as squares
    from (
        select
            rated.platform,
            {{ cast_as('rated.engagement', exact_number_type()) }}
            * {{ cast_as('sums.engagement_rate_reach', exact_number_type()) }}
            - {{ cast_as('sums.engagement_rate_engagement', exact_number_type()) }}
            * {{ cast_as('rated.reach', exact_number_type()) }} as residual
        from {{ ref('tasks_completed') }} as rated
        inner join measures as sums
            on rated.platform is not distinct from sums.platform
        where rated.engagement is not null and rated.reach is not null
    ) as residuals
    group by 1

),
{%- endif %}

final as (

    select
        measures.platform,
        measures.is_unknown_platform,
        coalesce(
            measures.platform in {{ sql_list(field_rule('task', 'platform')['accepted']) }}, false
        ) as is_accepted_platform,
        measures.user_count,
        {{ task_measure_columns('measures') }},
        {{ engagement_interval_columns('measures', 'rate_residuals') }}

    from measures
    {%- if not rate_residuals_in_one_pass() %}
    left join rate_residuals
        on measures.platform is not distinct from rate_residuals.platform
    {%- endif %}

)

select * from final
