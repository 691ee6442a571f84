{#
    The measures of the analysis models, defined once, so every grain (overview, platform, join
    month, brand, program, user) computes them the same way and carries its coverage.

    Missing stays NULL, never 0. For each measure over a set of rows: its sum over the known
    values (NULL when none is known), how many rows have a known value (`_known`), the share of
    the rows that is (`_known_share`, NULL when there are no rows) and the average over the known
    values (`_average`). A task's engagement is likes + comments + shares, known only when all
    three are; so `engagement` sums the fully known tasks (`engagement_known` of them), while
    `likes` sums every task with known likes (`likes_known`): the parts cover other tasks than the
    whole, and each says how many. The engagement rate divides the engagement of the tasks whose
    engagement and reach are both known by their reach; `engagement_rate_tasks`,
    `engagement_rate_engagement` and `engagement_rate_reach` say over which tasks, so the rate can
    be recomputed from its own row. Sums of counts are numeric(38, 0), money numeric(38, 2).
#}

{% macro task_measure_names() -%}
    {{ return(['likes', 'comments', 'shares', 'reach', 'engagement']) }}
{%- endmacro %}

{# Aggregates over the tasks `tasks` (a relation or CTE name; LEFT JOINed rows may be NULL). #}
{% macro task_measures(tasks) -%}
        cast(count({{ tasks }}.task_key) as bigint) as task_count,
    {%- for measure in task_measure_names() %}
        cast(sum({{ tasks }}.{{ measure }}) as numeric(38, 0)) as {{ measure }},
        cast(count({{ tasks }}.{{ measure }}) as bigint) as {{ measure }}_known,
        {{ known_share('count(' ~ tasks ~ '.' ~ measure ~ ')', 'count(' ~ tasks ~ '.task_key)') }} as {{ measure }}_known_share,
        cast(round(avg({{ tasks }}.{{ measure }}), 2) as numeric(38, 2)) as {{ measure }}_average,
    {%- endfor %}
        cast(
            round(
                sum({{ tasks }}.engagement) filter (where {{ tasks }}.reach is not null)
                / nullif(sum({{ tasks }}.reach) filter (where {{ tasks }}.engagement is not null), 0),
                6
            )
            as numeric(38, 6)
        ) as engagement_rate,
        cast(
            count({{ tasks }}.task_key) filter (where {{ tasks }}.engagement is not null and {{ tasks }}.reach is not null)
            as bigint
        ) as engagement_rate_tasks,
        cast(sum({{ tasks }}.engagement) filter (where {{ tasks }}.reach is not null) as numeric(38, 0))
            as engagement_rate_engagement,
        cast(sum({{ tasks }}.reach) filter (where {{ tasks }}.engagement is not null) as numeric(38, 0))
            as engagement_rate_reach
{%- endmacro %}

{#
    The additive parts of task_measures() over the tasks `tasks` (grouped by the caller), for
    sums kept by difference (macros/differences.sql): the counts, and every sum as 0 where no
    value is known (a difference of NULLs is no difference); task_measures_rollup() reads them
    as it reads task_measures(), a sum NULL where its known count is 0. Then the sums
    engagement_interval_rollup() needs (`squares`): the known engagements' squares and the rate's
    moments (macros/intervals.sql). task_sum_names(squares): their column names, in order.
#}
{% macro task_sums(tasks, squares=true) -%}
        cast(count({{ tasks }}.task_key) as bigint) as task_count,
    {%- for measure in task_measure_names() %}
        cast(coalesce(sum({{ tasks }}.{{ measure }}), 0) as numeric(38, 0)) as {{ measure }},
        cast(count({{ tasks }}.{{ measure }}) as bigint) as {{ measure }}_known,
    {%- endfor %}
        cast(
            count({{ tasks }}.task_key) filter (where {{ tasks }}.engagement is not null and {{ tasks }}.reach is not null)
            as bigint
        ) as engagement_rate_tasks,
        cast(coalesce(sum({{ tasks }}.engagement) filter (where {{ tasks }}.reach is not null), 0) as numeric(38, 0))
            as engagement_rate_engagement,
        cast(coalesce(sum({{ tasks }}.reach) filter (where {{ tasks }}.engagement is not null), 0) as numeric(38, 0))
            as engagement_rate_reach
    {%- if squares %},
        {{ engagement_square_sums(tasks) }}
    {%- endif -%}
{%- endmacro %}

{% macro task_sum_names(squares=true) -%}
    {%- set names = ['task_count'] -%}
    {%- for measure in task_measure_names() -%}
        {%- do names.extend([measure, measure ~ '_known']) -%}
    {%- endfor -%}
    {%- do names.extend(['engagement_rate_tasks', 'engagement_rate_engagement', 'engagement_rate_reach']) -%}
    {{ return(names + (engagement_square_names() if squares else [])) }}
{%- endmacro %}

{#
    task_measures() over groups of groups: the same columns from the rows of `partials`, each
    holding task_measures() of a finer group (engagement_by_program's programs, for a brand) or
    task_sums() (int_task_sums' groups). Sums of sums and of counts are the sums over the tasks
    (NULL where no value is known: a partial's sum may be NULL or 0 then); an average is the
    sum over the known count (as avg() computes it), a share the known count over the tasks;
    the rate divides the summed parts it is made of. `aggregate=false`: of one row of `partials`
    that is already the group's (engagement_by_brand over int_brand_sums, one row per brand),
    without aggregating it again.
#}
{% macro rollup_total(partials, column, aggregate) -%}
    {%- if aggregate -%}
        sum({{ partials }}.{{ column }})
    {%- else -%}
        {{ partials }}.{{ column }}
    {%- endif -%}
{%- endmacro %}

{% macro task_measures_rollup(partials, aggregate=true) -%}
        cast({{ rollup_total(partials, 'task_count', aggregate) }} as bigint) as task_count,
    {%- for measure in task_measure_names() %}
        cast(
            case when {{ rollup_total(partials, measure ~ '_known', aggregate) }} > 0 then {{ rollup_total(partials, measure, aggregate) }} end
            as numeric(38, 0)
        ) as {{ measure }},
        cast({{ rollup_total(partials, measure ~ '_known', aggregate) }} as bigint) as {{ measure }}_known,
        {{ known_share(rollup_total(partials, measure ~ '_known', aggregate), rollup_total(partials, 'task_count', aggregate)) }} as {{ measure }}_known_share,
        cast(
            round({{ rollup_total(partials, measure, aggregate) }} / nullif({{ rollup_total(partials, measure ~ '_known', aggregate) }}, 0), 2)
            as numeric(38, 2)
        ) as {{ measure }}_average,
    {%- endfor %}
        cast(
            round(
                {{ rollup_total(partials, 'engagement_rate_engagement', aggregate) }}
                / nullif({{ rollup_total(partials, 'engagement_rate_reach', aggregate) }}, 0),
                6
            )
            as numeric(38, 6)
        ) as engagement_rate,
        cast({{ rollup_total(partials, 'engagement_rate_tasks', aggregate) }} as bigint) as engagement_rate_tasks,
        cast(
            case when {{ rollup_total(partials, 'engagement_rate_tasks', aggregate) }} > 0 then {{ rollup_total(partials, 'engagement_rate_engagement', aggregate) }} end
            as numeric(38, 0)
        ) as engagement_rate_engagement,
        cast(
            case when {{ rollup_total(partials, 'engagement_rate_tasks', aggregate) }} > 0 then {{ rollup_total(partials, 'engagement_rate_reach', aggregate) }} end
            as numeric(38, 0)
        ) as engagement_rate_reach
{%- endmacro %}

{#
    A group's measures from rows of int_task_sums (`sums`, grouped by the caller): its users (a
    user's tasks on a platform are in one join month, so each is one contribution of the
    group's rows), task_measures_rollup() and the engagement intervals
    (engagement_interval_rollup, macros/intervals.sql).
#}
{% macro task_sums_rollup(sums) -%}
        cast(sum({{ sums }}.contributions) as bigint) as user_count,
        {{ task_measures_rollup(sums) }},
        {{ engagement_interval_rollup(sums) }}
{%- endmacro %}

{# The columns of task_measures() read from `relation`, its counts 0 where it has no row (a LEFT JOIN). #}
{% macro task_measure_columns(relation) -%}
        coalesce({{ relation }}.task_count, 0) as task_count,
    {%- for measure in task_measure_names() %}
        {{ relation }}.{{ measure }},
        coalesce({{ relation }}.{{ measure }}_known, 0) as {{ measure }}_known,
        {{ relation }}.{{ measure }}_known_share,
        {{ relation }}.{{ measure }}_average,
    {%- endfor %}
        {{ relation }}.engagement_rate,
        coalesce({{ relation }}.engagement_rate_tasks, 0) as engagement_rate_tasks,
        {{ relation }}.engagement_rate_engagement,
        {{ relation }}.engagement_rate_reach
{%- endmacro %}

{#
    Aggregates over the programs `programs`: their sales (total_sales_attributed), with the same
    coverage columns; `sales_negative` counts the known amounts below zero (kept, and summed).
#}
{% macro sales_measures(programs) -%}
        cast(count({{ programs }}.program_key) as bigint) as program_count,
        cast(sum({{ programs }}.total_sales_attributed) as numeric(38, 2)) as sales,
        cast(count({{ programs }}.total_sales_attributed) as bigint) as sales_known,
        {{ known_share('count(' ~ programs ~ '.total_sales_attributed)', 'count(' ~ programs ~ '.program_key)') }}
            as sales_known_share,
        cast(round(avg({{ programs }}.total_sales_attributed), 2) as numeric(38, 2)) as sales_average,
        cast(count({{ programs }}.program_key) filter (where {{ programs }}.total_sales_attributed < 0) as bigint)
            as sales_negative
{%- endmacro %}

{#
    The additive parts of sales_measures() over the programs `programs` (grouped by the caller),
    for sums kept by difference: the sales 0 where none is known; sales_measures_rollup() reads
    them, and sales_measures() of finer groups, as sales_measures() over their programs.
    sales_sum_names(): their column names, in order.
#}
{% macro sales_sums(programs) -%}
        cast(count({{ programs }}.program_key) as bigint) as program_count,
        cast(coalesce(sum({{ programs }}.total_sales_attributed), 0) as numeric(38, 2)) as sales,
        cast(count({{ programs }}.total_sales_attributed) as bigint) as sales_known,
        cast(count({{ programs }}.program_key) filter (where {{ programs }}.total_sales_attributed < 0) as bigint)
            as sales_negative
{%- endmacro %}

{% macro sales_sum_names() -%}
    {{ return(['program_count', 'sales', 'sales_known', 'sales_negative']) }}
{%- endmacro %}

{% macro sales_measures_rollup(partials, aggregate=true) -%}
        cast({{ rollup_total(partials, 'program_count', aggregate) }} as bigint) as program_count,
        cast(
            case when {{ rollup_total(partials, 'sales_known', aggregate) }} > 0 then {{ rollup_total(partials, 'sales', aggregate) }} end
            as numeric(38, 2)
        ) as sales,
        cast({{ rollup_total(partials, 'sales_known', aggregate) }} as bigint) as sales_known,
        {{ known_share(rollup_total(partials, 'sales_known', aggregate), rollup_total(partials, 'program_count', aggregate)) }}
            as sales_known_share,
        cast(
            round({{ rollup_total(partials, 'sales', aggregate) }} / nullif({{ rollup_total(partials, 'sales_known', aggregate) }}, 0), 2)
            as numeric(38, 2)
        ) as sales_average,
        cast({{ rollup_total(partials, 'sales_negative', aggregate) }} as bigint) as sales_negative
{%- endmacro %}

{% macro sales_measure_columns(relation) -%}
        coalesce({{ relation }}.program_count, 0) as program_count,
        {{ relation }}.sales,
        coalesce({{ relation }}.sales_known, 0) as sales_known,
        {{ relation }}.sales_known_share,
        {{ relation }}.sales_average,
        coalesce({{ relation }}.sales_negative, 0) as sales_negative
{%- endmacro %}

{# known / rows as a share with 6 decimals; NULL when there are no rows. #}
{% macro known_share(known, rows) -%}
    cast(round({{ typecast(known, 'numeric') }} / nullif({{ rows }}, 0), 6) as numeric(9, 6))
{%- endmacro %}

{#
    Per program, from its tasks (`tasks`, grouped by program): the platform when every task names
    the same usable one (NULL otherwise), how many usable platforms its tasks name, whether a task's
    platform is unknown (unusable in the data), and whether it has no task at all: an unknown
    platform and "no task" are different things.
#}
{% macro program_platform_measures(tasks) -%}
        case
            when count(distinct {{ tasks }}.platform) = 1 and count({{ tasks }}.platform) = count({{ tasks }}.task_key)
            then min({{ tasks }}.platform)
        end as platform,
        cast(count(distinct {{ tasks }}.platform) as integer) as platform_count,
        count({{ tasks }}.platform) < count({{ tasks }}.task_key) as is_unknown_platform,
        count({{ tasks }}.task_key) = 0 as is_without_tasks
{%- endmacro %}
