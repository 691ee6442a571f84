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
        cast(round(stddev_samp(tasks.engagement), 2) as numeric(38, 2)) as engagement_stddev,
        {{ mean_interval('tasks.engagement', 'low') }} as engagement_average_low,
        {{ mean_interval('tasks.engagement', 'high') }} as engagement_average_high,
        {%- set products = [
            ('engagement', 'engagement', 'yy'), ('engagement', 'reach', 'xy'), ('reach', 'reach', 'xx')
        ] %}
        {%- for a, b, name in products %}
        sum(
            {{ cast_as('tasks.' ~ a, 'double precision') }}
            * {{ cast_as('tasks.' ~ b, 'double precision') }}
        ) filter (where tasks.engagement is not null and tasks.reach is not null) as rate_{{ name }}
        {%- if not loop.last %},{% endif %}
        {%- endfor %}

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

final as (

    select
        measures.platform,
        measures.is_unknown_platform,
        coalesce(
            measures.platform in {{ sql_list(field_rule('task', 'platform')['accepted']) }}, false
        ) as is_accepted_platform,
        cast(platform_users.user_count as bigint) as user_count,
        {{ task_measure_columns('measures') }},
        measures.engagement_stddev,
        measures.engagement_average_low,
        measures.engagement_average_high,
        {%- for bound in ['low', 'high'] %}
        {{ ratio_interval(
            'measures.engagement_rate_tasks',
            'measures.engagement_rate_engagement',
            'measures.engagement_rate_reach',
            'measures.rate_yy',
            'measures.rate_xy',
            'measures.rate_xx',
            bound
        ) }} as engagement_rate_{{ bound }}{% if not loop.last %},{% endif %}
        {%- endfor %}

    from measures
    inner join platform_users
        on measures.platform is not distinct from platform_users.platform

)

select * from final
