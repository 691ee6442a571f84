{#
    Schemas are named exactly as configured (dbt, dbt_staging, dbt_lookup, dbt_analysis,
    dbt_snapshots), not prefixed with the target schema: users find them by these names.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
