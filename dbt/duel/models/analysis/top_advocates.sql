{% set limit = var('top_advocates_limit') %}

with

engagement as (

    select * from {{ ref('engagement_by_user') }}

),

programs as (

    select * from {{ ref('advocacy_programs') }}

),

sales as (

    select
        user_key,
        cast(sum(total_sales_attributed) as numeric(38, 2)) as total_sales_attributed

    from programs
    where total_sales_attributed is not null
    group by 1

),

-- identifiable users only: a user without a valid user_id cannot be named in a ranking
candidates as (

    select
        engagement.user_key,
        engagement.user_id,
        engagement.name,
        engagement.email,
        engagement.engagement,
        engagement.reach,
        sales.total_sales_attributed

    from engagement
    left join sales
        on sales.user_key = engagement.user_key
    where engagement.is_identifiable

),

ranked as (

    select
        'engagement' as ranking,
        rank() over (order by engagement desc) as rank,
        engagement as value,
        *
    from candidates
    where engagement is not null

    union all

    select
        'reach' as ranking,
        rank() over (order by reach desc) as rank,
        reach as value,
        *
    from candidates
    where reach is not null

    union all

    select
        'sales' as ranking,
        rank() over (order by total_sales_attributed desc) as rank,
        total_sales_attributed as value,
        *
    from candidates
    where total_sales_attributed is not null

),

final as (

    select
        cast(ranking as text) as ranking,
        cast(rank as integer) as rank,
        cast(value as numeric(38, 2)) as value,
        user_key,
        user_id,
        name,
        email,
        cast(engagement as numeric(38, 0)) as engagement,
        cast(reach as numeric(38, 0)) as reach,
        cast(total_sales_attributed as numeric(38, 2)) as total_sales_attributed

    from ranked
    where rank <= {{ limit }}

)

select * from final
