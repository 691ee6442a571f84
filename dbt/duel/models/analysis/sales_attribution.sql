with

programs as (

    select * from {{ ref('advocacy_programs') }}

),

tasks as (

    select * from {{ ref('tasks_completed') }}

),

brands as (

    select * from {{ ref('brand') }}

),

outliers as (

    select * from {{ ref('sales_outliers') }}

),

-- a program's sales are split over the platforms of its tasks, in proportion to its task
-- count on each; a program without tasks keeps its whole amount under platform NULL
program_platforms as (

    select
        program_key,
        platform,
        count(*) as platform_task_count

    from tasks
    group by 1, 2

),

attributed as (

    select
        programs.program_key,
        programs.brand_id,
        program_platforms.platform,
        programs.total_sales_attributed
            * coalesce(program_platforms.platform_task_count::numeric / nullif(programs.task_count, 0), 1)
            as attributed_sales,
        outliers.is_z_score_outlier,
        outliers.is_iqr_outlier

    from programs
    left join program_platforms
        on program_platforms.program_key = programs.program_key
    left join outliers
        on outliers.program_key = programs.program_key
    where programs.total_sales_attributed is not null

),

final as (

    select
        attributed.brand_id,
        brands.brand,
        attributed.platform,
        cast(count(*) as bigint) as program_count,
        cast(round(sum(attributed.attributed_sales), 6) as numeric(38, 6)) as attributed_sales,
        cast(round(avg(attributed.attributed_sales), 6) as numeric(38, 6)) as average_attributed_sales,
        cast(count(*) filter (where attributed.is_z_score_outlier) as bigint) as z_score_outlier_programs,
        cast(count(*) filter (where attributed.is_iqr_outlier) as bigint) as iqr_outlier_programs

    from attributed
    left join brands
        on brands.brand_id = attributed.brand_id
    group by 1, 2, 3

)

select * from final
