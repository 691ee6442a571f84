with

tasks as (

    select * from {{ ref('tasks_completed') }}

),

users as (

    select * from {{ ref('base') }}

),

joined as (

    select
        tasks.platform,
        tasks.reach,
        users.joined_at at time zone 'UTC' as joined_at_utc

    from tasks
    inner join users
        on users.user_key = tasks.user_key

),

final as (

    select
        platform,
        cast(extract(year from joined_at_utc) as integer) as join_year,
        cast(extract(month from joined_at_utc) as integer) as join_month,
        cast(count(*) as bigint) as task_count,
        cast(count(reach) as bigint) as tasks_with_reach,
        cast(round(avg(reach), 2) as numeric(20, 2)) as average_reach,
        cast(coalesce(sum(reach), 0) as numeric(38, 0)) as total_reach

    from joined
    group by 1, 2, 3

)

select * from final
