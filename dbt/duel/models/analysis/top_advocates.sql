{% set limit = var('top_advocates_limit') %}

with

users as (

    select * from {{ ref('engagement_by_user') }}

),

-- every user with a known value of the ranked measure, whatever identifiers they have; the
-- value is the sum of the user's known values, with how many rows it covers (typed in each
-- branch: Spark types a union by its first branch's scale, which would round the sales)
candidates as (

    select
        'engagement' as ranking,
        cast(engagement as numeric(38, 2)) as value,
        engagement_known as value_known,
        task_count as value_rows,
        *
    from users
    where engagement is not null

    union all

    select
        'reach' as ranking,
        cast(reach as numeric(38, 2)) as value,
        reach_known as value_known,
        task_count as value_rows,
        *
    from users
    where reach is not null

    union all

    select
        'sales' as ranking,
        cast(sales as numeric(38, 2)) as value,
        sales_known as value_known,
        program_count as value_rows,
        *
    from users
    where sales is not null

),

-- ties share a rank, and the next rank is skipped (1, 2, 2, 4)
ranked as (

    select
        *,
        rank() over (partition by ranking order by value desc) as rank,
        count(*) over (partition by ranking, value) > 1 as is_tied
    from candidates

),

final as (

    select
        {{ cast_as('ranking', 'text') }} as ranking,
        cast(rank as integer) as rank,
        is_tied,
        cast(value as numeric(38, 2)) as value,
        value_known,
        value_rows,
        user_key,
        label,
        label_source,
        document_key,
        user_id,
        name,
        email,
        engagement,
        reach,
        sales

    from ranked
    where rank <= {{ limit }}

)

select * from final
