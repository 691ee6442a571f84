with

tasks as (

    select * from {{ ref('tasks_completed') }}

),

final as (

    select
        tasks.platform,
        cast(count(distinct tasks.user_key) as bigint) as user_count,
        {{ engagement_measures('tasks') }}

    from tasks
    group by 1

)

select * from final
