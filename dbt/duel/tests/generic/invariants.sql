{#
    A model's invariants, all checked by one test: one node of the build and one scan of the
    model for its rows, one for its totals, where a test per check was a node and a scan each
    (at 100k files a node costs about 80 ms of dbt's own time; issue 15, bench/analysis.md).

    - `rows`, {check name: expression}: the expression holds for every row (a NULL result fails
      too). Scoped like the row-level tests (macros/incremental.sql, scoped_tests): with the
      setting duel.tests_written_since, only the rows of a table written since then are read.
    - `totals`, {check name: {expression, expected, tolerance}}: an aggregate of the model
      (`expression`, by default its row count) equals `expected`, a SQL scalar expression,
      typically a subquery over another model or a source; within `tolerance` (an aggregate of
      the model too, default 0) when the values are rounded. An aggregate over no rows is NULL:
      write coalesce(sum(...), 0) where 0 is meant. Always over the whole model.

    Returns one row per check that fails: its name (`failed_check`), and how many rows break it
    (`failing_rows`) or both values (`actual_value`, `expected_value`). duel's failure message
    names the failed checks (duel.transform reads these rows back on Postgres). A check's name
    is a lower-case identifier, unique in the project (tests/test_transform.py checks both).
#}
{% test invariants(model, rows={}, totals={}) %}
{%- for name in (rows | list) + (totals | list) -%}
    {%- if not modules.re.fullmatch('[a-z][a-z0-9_]*', name) -%}
        {{ exceptions.raise_compiler_error(
            "invariants: the check name '" ~ name ~ "' is not a lower-case identifier") }}
    {%- endif -%}
{%- endfor -%}
{%- for name, check in totals.items() if 'expected' not in check -%}
    {{ exceptions.raise_compiler_error("invariants: the total '" ~ name ~ "' has no expected value") }}
{%- endfor -%}
{%- if not rows and not totals -%}
    {{ exceptions.raise_compiler_error("invariants: no rows and no totals to check") }}
{%- endif -%}
{%- set failures = [] -%}
{%- for name in rows -%}
    {%- do failures.append(
        "select '" ~ name ~ "' as failed_check, "
        ~ cast_as('row_failures_' ~ loop.index, 'numeric') ~ " as failing_rows, "
        ~ cast_as('null', 'numeric') ~ " as actual_value, "
        ~ cast_as('null', 'numeric') ~ " as expected_value\n"
        ~ "    from row_failures\n"
        ~ "    where row_failures_" ~ loop.index ~ " > 0") -%}
{%- endfor -%}
{%- for name in totals -%}
    {%- set actual, expected = 'actual_' ~ loop.index, 'expected_' ~ loop.index -%}
    {%- do failures.append(
        "select '" ~ name ~ "', " ~ cast_as('null', 'numeric') ~ ", " ~ actual ~ ", " ~ expected ~ "\n"
        ~ "    from total_values cross join expected_values\n"
        ~ "    where (" ~ actual ~ " is null) <> (" ~ expected ~ " is null)"
        ~ " or abs(" ~ actual ~ " - " ~ expected ~ ") > tolerance_" ~ loop.index) -%}
{%- endfor %}

with
{%- if rows %}

row_failures as (

    select
    {%- for name, expression in rows.items() %}
        sum(case when coalesce({{ expression }}, false) then 0 else 1 end)
            as row_failures_{{ loop.index }}{{ ',' if not loop.last }}
    {%- endfor %}

    from {{ model }}
    {%- if has_row_versions(model) %}
    where {{ written_since_tested() }}
    {%- endif %}

),
{%- endif %}
{%- if totals %}

total_values as (

    select
    {%- for name, check in totals.items() %}
        {{ cast_as(check.get('expression', 'count(*)'), 'numeric') }} as actual_{{ loop.index }},
        {{ cast_as(check.get('tolerance', '0'), 'numeric') }}
            as tolerance_{{ loop.index }}{{ ',' if not loop.last }}
    {%- endfor %}

    from {{ model }}

),

expected_values as (

    select
    {%- for name, check in totals.items() %}
        {{ cast_as(check['expected'], 'numeric') }}
            as expected_{{ loop.index }}{{ ',' if not loop.last }}
    {%- endfor %}

),
{%- endif %}

failures as (

    {{ failures | join('\n\n    union all\n\n    ') }}

)

select * from failures

{% endtest %}
