with

tasks as (

    select * from {{ ref('tasks_completed') }}

),

users as (

    select * from {{ ref('base') }}

),

joined as (

    select
        {{ utc_month('users.joined_at') }} as join_month,
        tasks.*

    from tasks
    inner join users
        on tasks.user_key = users.user_key

),

final as (

    select
        join_month,
        join_month is null as is_unknown_join_month,
        platform,
        platform is null as is_unknown_platform,
        cast(count(distinct user_key) as bigint) as user_count,
        {{ task_measures('joined') }}

    from joined
    group by 1, 2, 3, 4

)

select * from final
