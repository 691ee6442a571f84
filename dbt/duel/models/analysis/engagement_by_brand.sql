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

program_measures as (

    select
        programs.brand_id,
        cast(count(distinct programs.user_key) as bigint) as user_count,
        {{ sales_measures('programs') }}

    from programs
    group by 1

),

task_measures as (

    select
        programs.brand_id,
        {{ task_measures('tasks') }}

    from programs
    inner join tasks
        on programs.program_key = tasks.program_key
    group by 1

),

measured as (

    select
        brands.brand_id,
        brands.brand,
        brands.is_unknown_brand,
        coalesce(program_measures.user_count, 0) as user_count,
        {{ sales_measure_columns('program_measures') }},
        {{ task_measure_columns('task_measures') }}

    from brands
    left join program_measures
        on brands.brand_id = program_measures.brand_id
    left join task_measures
        on brands.brand_id = task_measures.brand_id

),

-- rankings over the known brands with a known value only: the unknown brand is never ranked
final as (

    select
        *,
        cast(
            case
                when not is_unknown_brand and sales is not null
                then rank() over (
                    partition by not is_unknown_brand and sales is not null order by sales desc
                )
            end
            as integer
        ) as sales_rank,
        cast(
            case
                when not is_unknown_brand and engagement is not null
                then rank() over (
                    partition by not is_unknown_brand and engagement is not null
                    order by engagement desc
                )
            end
            as integer
        ) as engagement_rank

    from measured

)

select * from final
