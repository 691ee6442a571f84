{% set limit = var('top_advocates_limit') %}
{% set rankings = ['engagement', 'reach', 'sales'] %}

with

users as (

    select * from {{ ref('engagement_by_user') }}

),

-- each ranking's value at place {{ limit }}: the least of its {{ limit }} greatest values, read
-- in the order of the measure's index on engagement_by_user ({{ limit }} rows, not a sort of every
-- user: at 1M users the model took 2.3-3.1 s of a 1 %-changed build, bench/analysis.md
-- thirty-fourth pass). The values are typed in each branch: Spark types a union by its first
-- branch's scale, which would round the sales.
thresholds as (

    {% for measure in rankings %}
    select
        '{{ measure }}' as ranking,
        min(top_values.value) as threshold
    from (
        select cast(ranked_users.{{ measure }} as numeric(38, 2)) as value
        from {{ ref('engagement_by_user') }} as ranked_users
        where ranked_users.{{ measure }} is not null
        order by ranked_users.{{ measure }} desc
        limit {{ limit }}
    ) as top_values
    {{ 'union all' if not loop.last }}
    {% endfor %}

),

-- every user whose value is at or above its ranking's threshold, found by the same index (a
-- measure's value and its numeric(38, 2) are the same number: counts are integers, sales have
-- two decimals). A rank counts the greater values, so these are exactly the ranks within
-- {{ limit }}, a tie across place {{ limit }} included whole. Only the key and the value are
-- carried through the ranking: the other columns are joined to the ranks kept.
candidates as (

    {% for measure in rankings %}
    select
        '{{ measure }}' as ranking,
        cast(ranked_users.{{ measure }} as numeric(38, 2)) as value,
        ranked_users.user_key
    from {{ ref('engagement_by_user') }} as ranked_users
    where ranked_users.{{ measure }} >= (
        select thresholds.threshold from thresholds
        where thresholds.ranking = '{{ measure }}'
    )
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
    -- the ranked users looked up by key, not every user hashed for a join with a few rows
    where {{ in_computed_list('users.user_key', 'select kept.user_key from ranked as kept') }}

)

select * from final
