with

tasks as (

    select * from {{ ref('tasks_completed') }}

),

measures as (

    select
        tasks.platform,
        tasks.platform is null as is_unknown_platform,
        {{ task_measures('tasks') }}

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
        {{ task_measure_columns('measures') }}

    from measures
    inner join platform_users
        on measures.platform is not distinct from platform_users.platform

)

select * from final
