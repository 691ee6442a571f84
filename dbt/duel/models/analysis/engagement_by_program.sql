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

task_measures as (

    select
        programs.program_key,
        {{ program_platform_measures('tasks') }},
        {{ task_measures('tasks') }}

    from programs
    left join tasks
        on programs.program_key = tasks.program_key
    group by 1

),

final as (

    select
        programs.program_key,
        programs.user_key,
        programs.program_id,
        programs.brand_id,
        brands.brand,
        programs.is_unknown_brand,
        programs.total_sales_attributed,
        task_measures.platform,
        task_measures.platform_count,
        task_measures.is_unknown_platform,
        task_measures.is_without_tasks,
        {{ task_measure_columns('task_measures') }}

    from programs
    inner join brands
        on programs.brand_id = brands.brand_id
    inner join task_measures
        on programs.program_key = task_measures.program_key

)

select * from final
