{#
    Snapshot times as timestamptz, like every other time in the project (dbt-postgres defaults
    to timestamp without time zone, which would not match `updated_at`).
#}
{% macro postgres__snapshot_get_time() -%}
    {{ current_timestamp() }}
{%- endmacro %}
