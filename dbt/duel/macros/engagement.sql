{#
    Engagement measures over a set of tasks (used by every engagement model, so they agree).
    Missing stays NULL, never 0: a task's engagement (likes + comments + shares) is NULL when a
    part is unknown; sums run over the known values (NULL when there is none) and
    tasks_with_unknown_* count what was left out. The rate divides the engagement of the tasks
    whose engagement and reach are both known by their reach, and is NULL unless that reach is
    above zero.
#}
{% macro engagement_measures(tasks) -%}
        cast(count({{ tasks }}.task_key) as bigint) as task_count,
        cast(sum({{ tasks }}.likes) as bigint) as likes,
        cast(sum({{ tasks }}.comments) as bigint) as comments,
        cast(sum({{ tasks }}.shares) as bigint) as shares,
        cast(sum({{ tasks }}.engagement) as bigint) as engagement,
        cast(count({{ tasks }}.task_key) - count({{ tasks }}.engagement) as bigint) as tasks_with_unknown_engagement,
        cast(sum({{ tasks }}.reach) as bigint) as reach,
        cast(count({{ tasks }}.task_key) - count({{ tasks }}.reach) as bigint) as tasks_with_unknown_reach,
        cast(
            round(
                sum({{ tasks }}.engagement) filter (where {{ tasks }}.reach is not null)
                / nullif(sum({{ tasks }}.reach) filter (where {{ tasks }}.engagement is not null), 0),
                6
            )
            as numeric(18, 6)
        ) as engagement_rate
{%- endmacro %}
