{#- Thresholds: a program's sales are an outlier when |z-score| exceeds z_score_threshold, or
    when they fall more than iqr_multiplier interquartile ranges outside the quartiles. -#}
{% set z_score_threshold = 3 %}
{% set iqr_multiplier = 1.5 %}

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

-- the platform of a program whose tasks are all on one platform (NULL when none or mixed)
program_platforms as (

    select
        program_key,
        case when count(distinct platform) = 1 and count(platform) = count(*) then min(platform) end
            as platform

    from tasks
    group by 1

),

with_sales as (

    select
        programs.program_key,
        programs.user_key,
        programs.program_id,
        programs.brand_id,
        brands.brand,
        program_platforms.platform,
        programs.total_sales_attributed

    from programs
    left join brands
        on brands.brand_id = programs.brand_id
    left join program_platforms
        on program_platforms.program_key = programs.program_key
    where programs.total_sales_attributed is not null

),

distribution as (

    select
        avg(total_sales_attributed) as mean,
        stddev_pop(total_sales_attributed) as standard_deviation,
        cast(percentile_cont(0.25) within group (order by total_sales_attributed) as numeric) as first_quartile,
        cast(percentile_cont(0.75) within group (order by total_sales_attributed) as numeric) as third_quartile

    from with_sales

),

scored as (

    select
        with_sales.*,
        case
            when distribution.standard_deviation > 0
            then (with_sales.total_sales_attributed - distribution.mean) / distribution.standard_deviation
        end as z_score,
        distribution.first_quartile,
        distribution.third_quartile,
        distribution.first_quartile
            - {{ iqr_multiplier }} * (distribution.third_quartile - distribution.first_quartile)
            as iqr_lower_bound,
        distribution.third_quartile
            + {{ iqr_multiplier }} * (distribution.third_quartile - distribution.first_quartile)
            as iqr_upper_bound

    from with_sales
    cross join distribution

),

final as (

    select
        program_key,
        user_key,
        program_id,
        brand_id,
        brand,
        platform,
        total_sales_attributed,
        cast(round(z_score, 6) as numeric(18, 6)) as z_score,
        cast(round(first_quartile, 6) as numeric(38, 6)) as q1,
        cast(round(third_quartile, 6) as numeric(38, 6)) as q3,
        cast(round(third_quartile - first_quartile, 6) as numeric(38, 6)) as iqr,
        cast(round(iqr_lower_bound, 6) as numeric(38, 6)) as iqr_lower_bound,
        cast(round(iqr_upper_bound, 6) as numeric(38, 6)) as iqr_upper_bound,
        coalesce(abs(z_score) > {{ z_score_threshold }}, false) as is_z_score_outlier,
        (
            total_sales_attributed < iqr_lower_bound
            or total_sales_attributed > iqr_upper_bound
        ) as is_iqr_outlier,
        cast({{ z_score_threshold }} as numeric(6, 2)) as z_score_threshold,
        cast({{ iqr_multiplier }} as numeric(6, 2)) as iqr_multiplier

    from scored

)

select * from final
