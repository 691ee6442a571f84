{% set limit = var('top_advocates_limit') %}
{% set rankings = ['engagement', 'reach', 'sales'] %}

with

users as (

    select * from {{ ref('engagement_by_user') }}

),

-- the ranked measures alone: read by each ranking below, so Postgres materializes it (narrow
-- rows); `users` is read once, by the final join
measures as (

    select
        user_key,
        {{ rankings | join(',\n        ') }}
    from {{ ref('engagement_by_user') }}

),

-- every user with a known value of the ranked measure, whatever identifiers they have; the
-- value is the sum of the user's known values. Only the key is carried through the ranking:
-- the other columns are joined to the ranks kept. The value is typed in each branch: Spark
-- types a union by its first branch's scale, which would round the sales.
candidates as (

    {% for measure in rankings %}
    select
        '{{ measure }}' as ranking,
        cast({{ measure }} as numeric(38, 2)) as value,
        user_key
    from measures
    where {{ measure }} is not null
    {{ 'union all' if not loop.last }}
    {% endfor %}

),

-- each ranking's value at place {{ limit }}: the least of its {{ limit }} greatest values (a top-N,
-- not a sort of every candidate). A rank counts the greater values, so the ranks within
-- {{ limit }} are exactly the values at or above it, a tie across place {{ limit }} included whole
thresholds as (

    {% for measure in rankings %}
    select
        '{{ measure }}' as ranking,
        min(top_values.value) as threshold
    from (
        select candidates.value
        from candidates
        where candidates.ranking = '{{ measure }}'
        order by candidates.value desc
        limit {{ limit }}
    ) as top_values
    {{ 'union all' if not loop.last }}
    {% endfor %}

),

-- ties share a rank, and the next rank is skipped (1, 2, 2, 4)
ranked as (

    select
        candidates.*,
        rank() over (partition by candidates.ranking order by candidates.value desc) as rank,
        count(*) over (partition by candidates.ranking, candidates.value) > 1 as is_tied
    from candidates
    inner join thresholds
        on candidates.ranking = thresholds.ranking
    where candidates.value >= thresholds.threshold

),

final as (

    select
        {{ cast_as('ranked.ranking', 'text') }} as ranking,
        cast(ranked.rank as integer) as rank,
        ranked.is_tied,
        cast(ranked.value as numeric(38, 2)) as value,
        -- how many rows the value covers: the user's known values of it, and its tasks (or,
        -- for sales, its programs)
        case ranked.ranking
            when 'engagement' then users.engagement_known
            when 'reach' then users.reach_known
            else users.sales_known
        end as value_known,
        case ranked.ranking
            when 'sales' then users.program_count
            else users.task_count
        end as value_rows,
        users.user_key,
        users.label,
        users.label_source,
        users.document_key,
        users.user_id,
        users.name,
        users.email,
        users.engagement,
        users.reach,
        users.sales

    from ranked
    inner join users
        on ranked.user_key = users.user_key

)

select * from final
