{#
    Engagement measures over a set of tasks (used by every engagement model, so they agree).
    Missing stays NULL, never 0: a task's engagement (likes + comments + shares) is NULL when a
    part is unknown; sums run over the known values (NULL when there is none) and
    tasks_with_unknown_* count what was left out. The rate divides the engagement of the tasks
    whose engagement and reach are both known by their reach, and is NULL unless that reach is
    above zero. Sums are numeric(38, 0) and the rate numeric(38, 6): with every count within
    its range (at most 10^12, var measure_ranges) neither can overflow, whatever the number of
    tasks.
#}
{% macro engagement_measures(tasks) -%}
        cast(count({{ tasks }}.task_key) as bigint) as task_count,
        cast(sum({{ tasks }}.likes) as numeric(38, 0)) as likes,
        cast(sum({{ tasks }}.comments) as numeric(38, 0)) as comments,
        cast(sum({{ tasks }}.shares) as numeric(38, 0)) as shares,
        cast(sum({{ tasks }}.engagement) as numeric(38, 0)) as engagement,
        cast(count({{ tasks }}.task_key) - count({{ tasks }}.engagement) as bigint) as tasks_with_unknown_engagement,
        cast(sum({{ tasks }}.reach) as numeric(38, 0)) as reach,
        cast(count({{ tasks }}.task_key) - count({{ tasks }}.reach) as bigint) as tasks_with_unknown_reach,
        cast(
            round(
                sum({{ tasks }}.engagement) filter (where {{ tasks }}.reach is not null)
                / nullif(sum({{ tasks }}.reach) filter (where {{ tasks }}.engagement is not null), 0),
                6
            )
            as numeric(38, 6)
        ) as engagement_rate
{%- endmacro %}
