with

users as (

    select * from {{ ref('base') }}

),

tasks as (

    select * from {{ ref('tasks_completed') }}

),

final as (

    select
        users.user_key,
        users.user_id,
        users.name,
        users.email,
        users.is_identifiable,
        {{ engagement_measures('tasks') }}

    from users
    left join tasks
        on tasks.user_key = users.user_key
    group by 1, 2, 3, 4, 5

)

select * from final
