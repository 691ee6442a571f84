with

programs as (

    select * from {{ ref('advocacy_programs') }}

),

brands as (

    select * from {{ ref('brand') }}

),

tasks as (

    select * from {{ ref('tasks_completed') }}

),

final as (

    select
        programs.program_key,
        programs.user_key,
        programs.program_id,
        programs.brand_id,
        brands.brand,
        programs.total_sales_attributed,
        {{ engagement_measures('tasks') }}

    from programs
    left join brands
        on brands.brand_id = programs.brand_id
    left join tasks
        on tasks.program_key = programs.program_key
    group by 1, 2, 3, 4, 5, 6

)

select * from final
