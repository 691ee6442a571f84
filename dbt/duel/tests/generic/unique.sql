{#
    dbt's `unique`, scoped like the row-level tests (macros/incremental.sql, scoped_tests): the
    keys of the rows written since the last tested build are counted over the whole table (a
    repeated key has at least one such row, or was there when every test passed). Without the
    setting, or on a view, every key is counted, as dbt's own test does.
#}
{% test unique(model, column_name) %}

select
    {{ column_name }} as unique_field,
    count(*) as n_records

from {{ model }}
where
    {{ column_name }} is not null
    {%- if has_row_versions(model) %}
    and {{ column_name }} in (
        select {{ column_name }} from {{ model }} where {{ written_since_tested() }}
    )
    {%- endif %}
    and not {{ unique_enforced(model, column_name) }}
group by {{ column_name }}
having count(*) > 1

{% endtest %}
