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
-- count on each; tasks whose platform is unknown make their own part (platform NULL,
-- is_unknown_platform), and a program without tasks keeps its whole amount in a row of its
-- own (platform NULL, is_without_tasks). The split parts add up to the programs' sales; the
-- whole amounts (program_sales) are what a per-program comparison of platforms reads: a
-- program's part on a platform shrinks with the platforms it has tasks on, its sales do not
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
        programs.is_unknown_brand,
        program_platforms.platform,
        program_platforms.program_key is not null and program_platforms.platform is null
            as is_unknown_platform,
        program_platforms.program_key is null as is_without_tasks,
        programs.total_sales_attributed * coalesce(
            {{ cast_as('program_platforms.platform_task_count', 'numeric') }}
            / nullif(programs.task_count, 0),
            1
        ) as attributed_sales,
        programs.total_sales_attributed as program_sales,
        coalesce(outliers.is_outlier, false) as is_outlier

    from programs
    left join program_platforms
        on programs.program_key = program_platforms.program_key
    left join outliers
        on programs.program_key = outliers.program_key

),

measured as (

    select
        attributed.brand_id,
        brands.brand,
        attributed.is_unknown_brand,
        attributed.platform,
        attributed.is_unknown_platform,
        attributed.is_without_tasks,
        cast(count(*) as bigint) as program_count,
        cast(count(attributed.attributed_sales) as bigint) as sales_known,
        {{ known_share('count(attributed.attributed_sales)', 'count(*)') }} as sales_known_share,
        cast(round(sum(attributed.attributed_sales), 6) as numeric(38, 6)) as attributed_sales,
        cast(round(avg(attributed.attributed_sales), 6) as numeric(38, 6))
            as average_attributed_sales,
        cast(sum(attributed.program_sales) as numeric(38, 6)) as program_sales,
        cast(round(avg(attributed.program_sales), 6) as numeric(38, 6)) as average_program_sales,
        cast(count(*) filter (where attributed.is_outlier) as bigint) as outlier_programs

    from attributed
    inner join brands
        on attributed.brand_id = brands.brand_id
    group by 1, 2, 3, 4, 5, 6

),

-- ranked by attributed sales: known brands on known platforms only
final as (

    select
        *,
        cast(
            case
                when
                    not (is_unknown_brand or is_unknown_platform or is_without_tasks)
                    and attributed_sales is not null
                then rank() over (
                    partition by not (is_unknown_brand or is_unknown_platform or is_without_tasks)
                        and attributed_sales is not null
                    order by attributed_sales desc
                )
            end
            as integer
        ) as sales_rank

    from measured

)

select * from final
