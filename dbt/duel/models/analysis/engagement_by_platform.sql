with

tasks as (

    select * from {{ ref('tasks_completed') }}

),

final as (

    select
        tasks.platform,
        tasks.platform is null as is_unknown_platform,
        cast(count(distinct tasks.user_key) as bigint) as user_count,
        {{ task_measures('tasks') }}

    from tasks
    group by 1, 2

)

select * from final
