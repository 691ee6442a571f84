with

brands as (

    select * from {{ ref('brand') }}

),

programs as (

    select * from {{ ref('advocacy_programs') }}

),

tasks as (

    select * from {{ ref('tasks_completed') }}

),

program_counts as (

    select
        brand_id,
        cast(count(*) as bigint) as program_count,
        cast(count(distinct user_key) as bigint) as user_count

    from programs
    group by 1

),

task_measures as (

    select
        programs.brand_id,
        {{ engagement_measures('tasks') }}

    from programs
    inner join tasks
        on tasks.program_key = programs.program_key
    group by 1

),

final as (

    select
        brands.brand_id,
        brands.brand,
        brands.is_unknown,
        coalesce(program_counts.program_count, 0) as program_count,
        coalesce(program_counts.user_count, 0) as user_count,
        coalesce(task_measures.task_count, 0) as task_count,
        task_measures.likes,
        task_measures.comments,
        task_measures.shares,
        task_measures.engagement,
        coalesce(task_measures.tasks_with_unknown_engagement, 0) as tasks_with_unknown_engagement,
        task_measures.reach,
        coalesce(task_measures.tasks_with_unknown_reach, 0) as tasks_with_unknown_reach,
        task_measures.engagement_rate

    from brands
    left join program_counts
        on program_counts.brand_id = brands.brand_id
    left join task_measures
        on task_measures.brand_id = brands.brand_id

)

select * from final
