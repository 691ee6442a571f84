{#-
    Robust outliers within comparable programs. The thresholds are var `sales_outliers`
    (dbt_project.yml), the method is described in sales_outliers.yml; both repeated in every row:
    - peer group: the programs of the same brand on the same platform when there are at least
      `min_group_size` of them with known sales (the unknown brand is no brand: never a group of
      its own), else all programs on the same platform, else all programs;
    - score: Iglewicz and Hoaglin's modified z-score, 0.6745 x (sales - median) / MAD over the
      peer group (MAD: the median absolute deviation from the median; when it is 0, the mean
      absolute deviation x 1.253314 takes its place); an outlier when |score| > `threshold`;
    - bounds: median -/+ threshold x MAD / 0.6745, the lower one clipped to 0 (sales are not
      negative); a negative amount (flagged `negative` in the data) is never scored, nor counted
      in a group.
-#}
{%- set method = var('sales_outliers') -%}
{%- set threshold = method['threshold'] -%}
{%- set min_group_size = method['min_group_size'] -%}

with

-- one row per program, with its brand's name and the platform its tasks name
-- (engagement_by_program: the tasks are not aggregated again, nor the brands joined)
programs as (

    select * from {{ ref('engagement_by_program') }}

),

with_sales as (

    select
        programs.program_key,
        programs.user_key,
        programs.program_id,
        programs.brand_id,
        programs.brand,
        programs.is_unknown_brand,
        programs.platform,
        programs.is_unknown_platform,
        programs.is_without_tasks,
        programs.total_sales_attributed,
        programs.total_sales_attributed < 0 as is_negative_sales

    from programs
    where programs.total_sales_attributed is not null

),

-- the programs a distribution is computed from
pool as (

    select * from with_sales
    where not is_negative_sales

),

-- every comparable group with its size, narrowest first: a known brand on a single known
-- platform, a platform, all programs (counted from the programs: a few thousand rows, each
-- program's memberships are never listed)
peer_groups as (

    select
        1 as narrowness,
        'brand and platform' as peer_group_level,
        brand || ' on ' || platform as peer_group,
        brand_id as peer_brand_id,
        platform as peer_platform,
        count(*) as peer_group_size
    from pool
    where not is_unknown_brand and platform is not null
    group by brand_id, brand, platform

    union all

    select
        2 as narrowness,
        'platform' as peer_group_level,
        platform as peer_group,
        {{ cast_as('null', 'uuid') }} as peer_brand_id,
        platform as peer_platform,
        count(*) as peer_group_size
    from pool
    where platform is not null
    group by platform

    union all

    select
        3 as narrowness,
        'all programs' as peer_group_level,
        'all programs' as peer_group,
        {{ cast_as('null', 'uuid') }} as peer_brand_id,
        {{ cast_as('null', 'text') }} as peer_platform,
        count(*) as peer_group_size
    from pool

),

-- the groups large enough to compare a program with
comparable as (

    select
        *,
        {{ surrogate_key(['peer_group_level', 'peer_brand_id', 'peer_platform']) }}
            as peer_group_key
    from peer_groups
    where peer_group_size >= {{ min_group_size }}

),

-- each program's groups that are large enough: of its brand on its platform, of its platform,
-- of all programs (NULL where there is no such group, or it is too small)
located as (

    select
        pool.program_key,
        pool.total_sales_attributed,
        by_brand.peer_group_key as brand_group_key,
        by_platform.peer_group_key as platform_group_key,
        (
            select overall.peer_group_key
            from comparable as overall
            where overall.narrowness = 3
        ) as overall_group_key

    from pool
    left join comparable as by_brand
        on
            by_brand.narrowness = 1
            and not pool.is_unknown_brand
            and pool.brand_id = by_brand.peer_brand_id
            and pool.platform = by_brand.peer_platform
    left join comparable as by_platform
        on
            by_platform.narrowness = 2
            and pool.platform = by_platform.peer_platform

),

-- each program's peer group: the narrowest of its groups that is large enough
assigned as (

    select
        located.program_key,
        located.total_sales_attributed,
        comparable.peer_group_key,
        comparable.peer_group_level,
        comparable.peer_group,
        comparable.peer_group_size

    from located
    inner join comparable
        on
            coalesce(
                located.brand_group_key, located.platform_group_key, located.overall_group_key
            ) = comparable.peer_group_key

),

-- the distributions needed: every member of each group some program was assigned to (a
-- program's group holds the programs it is compared with, whatever their own group is)
members as (
    {%- for level in ['brand', 'platform', 'overall'] %}

    select
        comparable.peer_group_key,
        located.total_sales_attributed,
        comparable.peer_group_size
    from located
    inner join comparable
        on located.{{ level }}_group_key = comparable.peer_group_key
    where comparable.peer_group_key in (select assigned.peer_group_key from assigned)
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

),

-- exact medians (numeric, not the float of percentile_cont): the middle value, or the mean of
-- the two middle values (macros/portable.sql, group_medians)
medians as (

    {{ group_medians('members', 'peer_group_key', 'peer_group_size', 'total_sales_attributed') }}

),

deviations as (

    select
        members.peer_group_key,
        members.peer_group_size,
        abs(members.total_sales_attributed - medians.median) as deviation

    from members
    inner join medians
        on members.peer_group_key = medians.peer_group_key

),

deviation_medians as (

    {{ group_medians(
        'deviations', 'peer_group_key', 'peer_group_size', 'deviation',
        median_as='median_absolute_deviation',
        aggregates=[['avg(deviation)', 'mean_absolute_deviation']]
    ) }}

),

spreads as (

    select
        medians.peer_group_key,
        medians.median,
        deviation_medians.median_absolute_deviation,
        deviation_medians.mean_absolute_deviation

    from medians
    inner join deviation_medians
        on medians.peer_group_key = deviation_medians.peer_group_key

),

-- the programs scored in each group (those assigned to it)
scored_counts as (

    select
        peer_group_key,
        count(*) as peer_group_scored
    from assigned
    group by 1

),

-- the robust scale: MAD / 0.6745 (1.4826 x MAD, the standard deviation of a normal sample),
-- or 1.253314 x the mean absolute deviation when more than half the group shares one value
scales as (

    select
        spreads.peer_group_key,
        spreads.median,
        spreads.median_absolute_deviation,
        case
            when spreads.median_absolute_deviation > 0
                then spreads.median_absolute_deviation / 0.6745
            when spreads.mean_absolute_deviation > 0 then spreads.mean_absolute_deviation * 1.253314
        end as scale

    from spreads

),

-- what each group says of its members, computed once per group rather than once per program
-- (numeric arithmetic was a third of this model's last step at 1M programs): its bounds and the
-- distance from its median beyond which a program is an outlier
group_bounds as (

    select
        scales.peer_group_key,
        scales.median,
        scales.median_absolute_deviation,
        scales.scale,
        scored_counts.peer_group_scored,
        -- (greatest() skips NULLs: without a scale there is no bound, not a bound of 0)
        case
            when scales.scale is not null
                then round(greatest(scales.median - {{ threshold }} * scales.scale, 0), 2)
        end as lower_bound,
        round(scales.median + {{ threshold }} * scales.scale, 2) as upper_bound,
        {{ threshold }} * scales.scale as outlier_distance

    from scales
    inner join scored_counts
        on scales.peer_group_key = scored_counts.peer_group_key

),

scored as (

    select
        assigned.program_key,
        assigned.peer_group_level,
        assigned.peer_group,
        assigned.peer_group_size,
        group_bounds.peer_group_scored,
        group_bounds.median,
        group_bounds.median_absolute_deviation,
        group_bounds.scale,
        group_bounds.lower_bound,
        group_bounds.upper_bound,
        group_bounds.outlier_distance,
        assigned.total_sales_attributed

    from assigned
    inner join group_bounds
        on assigned.peer_group_key = group_bounds.peer_group_key

),

final as (

    select
        with_sales.program_key,
        with_sales.user_key,
        with_sales.program_id,
        with_sales.brand_id,
        with_sales.brand,
        with_sales.is_unknown_brand,
        with_sales.platform,
        with_sales.is_unknown_platform,
        with_sales.is_without_tasks,
        with_sales.total_sales_attributed,
        with_sales.is_negative_sales,
        scored.program_key is not null as is_scored,
        {{ cast_as('scored.peer_group_level', 'text') }} as peer_group_level,
        {{ cast_as('scored.peer_group', 'text') }} as peer_group,
        cast(scored.peer_group_size as bigint) as peer_group_size,
        cast(scored.peer_group_scored as bigint) as peer_group_scored,
        cast(scored.median as numeric(38, 4)) as peer_median,
        cast(scored.median_absolute_deviation as numeric(38, 4)) as peer_median_absolute_deviation,
        cast(scored.lower_bound as numeric(38, 2)) as lower_bound,
        cast(scored.upper_bound as numeric(38, 2)) as upper_bound,
        cast(
            round((scored.total_sales_attributed - scored.median) / scored.scale, 6)
            as numeric(18, 6)
        ) as robust_z_score,
        coalesce(
            abs(scored.total_sales_attributed - scored.median) > scored.outlier_distance,
            false
        ) as is_outlier,
        cast({{ threshold }} as numeric(6, 2)) as outlier_threshold,
        cast({{ min_group_size }} as integer) as min_group_size

    from with_sales
    left join scored
        on with_sales.program_key = scored.program_key

)

select * from final
