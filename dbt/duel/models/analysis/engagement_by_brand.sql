{# built in one process: in parallel, Postgres aggregated the programs once per process #}
{{ config(pre_hook="{{ in_one_process() }}") }}

with

brands as (

    select * from {{ ref('brand') }}

),

-- one row per program with its tasks' measures: a brand's are their sums (task_measures_rollup),
-- so the tasks are not read again
programs as (

    select * from {{ ref('engagement_by_program') }}

),

brand_measures as (

    select
        programs.brand_id,
        cast(count(distinct programs.user_key) as bigint) as user_count,
        {{ sales_measures('programs') }},
        {{ task_measures_rollup('programs') }}

    from programs
    group by 1

),

measured as (

    select
        brands.brand_id,
        brands.brand,
        brands.is_unknown_brand,
        coalesce(brand_measures.user_count, 0) as user_count,
        {{ sales_measure_columns('brand_measures') }},
        {{ task_measure_columns('brand_measures') }}

    from brands
    left join brand_measures
        on brands.brand_id = brand_measures.brand_id

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
