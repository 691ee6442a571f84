with

tasks as (

    select * from {{ ref('tasks_completed') }}

),

measures as (

    select
        tasks.platform,
        tasks.platform is null as is_unknown_platform,
        {{ task_measures('tasks') }},
        -- how far each platform's engagement per task and rate could be from what more tasks
        -- would show: their 95 % intervals (macros/intervals.sql), so that a platform leading
        -- over a few known tasks is not read as leading
        {{ engagement_interval_aggregates('tasks') }}

    from tasks
    group by 1, 2

),

-- each platform's users, counted from the distinct (platform, user) pairs: a count(distinct)
-- among the measures above makes Postgres sort every task, with all its columns, where it
-- hashes them here (1M tasks, the same 4 rows: 3.1-3.8 s -> 1.6-1.9 s). tasks_completed is
-- named again, not through `tasks`: a CTE read twice is materialised whole. (The same split
-- did not pay in engagement_by_join_month, whose groups Postgres sorts anyway, nor in
-- engagement_by_brand, whose 191k groups of many sums then spill their hash table.)
platform_users as (

    select
        pairs.platform,
        count(*) as user_count
    from (
        select distinct
            platform,
            user_key
        from {{ ref('tasks_completed') }}
    ) as pairs
    group by 1

),

{%- if not rate_residuals_in_one_pass() %}

-- each platform's rate residuals, sum((engagement x its reach sum - its engagement sum x
-- reach)^2) over the tasks its rate is over, for the rate's interval, where the target does
-- not sum them in the aggregate above (macros/intervals.sql, rate_squares: a second pass over
-- the tasks, against the platforms' sums; tasks_completed named again, as above)
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
        cast(platform_users.user_count as bigint) as user_count,
        {{ task_measure_columns('measures') }},
        {{ engagement_interval_columns('measures', 'rate_residuals') }}

    from measures
    inner join platform_users
        on measures.platform is not distinct from platform_users.platform
    {%- if not rate_residuals_in_one_pass() %}
    left join rate_residuals
        on measures.platform is not distinct from rate_residuals.platform
    {%- endif %}

)

select * from final
