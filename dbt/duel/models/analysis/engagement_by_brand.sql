with

brands as (

    select * from {{ ref('brand') }}

),

-- the sums of each brand's programs and tasks (kept by difference on Postgres): the programs
-- and tasks are not read again
brand_sums as (

    select * from {{ ref('int_brand_sums') }}

),

-- one row per brand already: its measures from its own row, not aggregated again
brand_measures as (

    select
        brand_sums.brand_id,
        -- a user's programs of a brand are one contribution
        cast(brand_sums.contributions as bigint) as user_count,
        {{ sales_measures_rollup('brand_sums', aggregate=false) }},
        {{ task_measures_rollup('brand_sums', aggregate=false) }}

    from brand_sums

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
