{#
    How Postgres creates a table whose contract is enforced (the core, lookup and analysis models).

    dbt-postgres creates such a table with its columns and constraints, then fills it with
    INSERT ... SELECT. Postgres never runs an INSERT's SELECT in parallel workers, only a CREATE
    TABLE AS, so on two cores a full build of the core models used one. Here the table is
    created by CREATE TABLE AS from the model's select with every column cast to its declared
    type, in the declared order, with the database's default collation for text (what the
    INSERT into the declared columns gave: a value's collation, e.g. the "pg_c_utf8" the
    cleaning rules use to fold case, is not the column's), and its NOT NULL constraints follow in
    one ALTER TABLE (one scan of the new table). dbt's contract check runs first, as before:
    a column missing, added or of another type fails the build before anything is created.
    The keys are added by the post-hook apply_keys (macros/keys.sql); any other constraint
    type in a contract stops the compilation here rather than being left out.

    Temporary tables (an incremental build's new rows) and tables without a contract are
    created as dbt-postgres creates them. Spark builds with dbt-spark's own macros.
#}
{% macro postgres__create_table_as(temporary, relation, sql) -%}
    {%- set contract_config = config.get('contract') -%}
    {%- set enforced = contract_config.enforced and not temporary -%}
    {%- set sql_header = config.get('sql_header', none) -%}
    {{ sql_header if sql_header is not none }}
    {%- if contract_config.enforced %}
    {{ get_assert_columns_equivalent(sql) }}
    {%- endif %}
    create {% if temporary -%}
        temporary
    {%- elif config.get('unlogged', default=false) -%}
        unlogged
    {%- endif %} table {{ relation }}
    as
    {%- if enforced %}
    select
        {%- for name, column in model['columns'].items() %}
        cast(model_subq.{{ adapter.quote(name) }} as {{ column['data_type'] }})
        {%- if column['data_type'].split('(')[0] | trim | lower in collatable_types() %} collate "default"{% endif %}
            as {{ adapter.quote(name) }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        {{ sql }}
    ) as model_subq;
    {%- set not_null = contract_not_null_columns() %}
    {%- if not_null %}
    alter table {{ relation }}
        {%- for name in not_null %}
        alter column {{ adapter.quote(name) }} set not null{{ ',' if not loop.last }}
        {%- endfor %}
    {%- endif %}
    {%- else %}
    (
        {{ sql }}
    );
    {%- endif %}
{%- endmacro %}

{#
    The model's columns with a not_null constraint. The keys are apply_keys' (without_keys,
    macros/keys.sql); any other constraint is refused rather than left out.
#}
{% macro contract_not_null_columns() -%}
    {%- set names = [] -%}
    {%- for name, column in model['columns'].items() -%}
        {%- for constraint in without_keys(column.get('constraints', [])) -%}
            {%- if constraint['type'] != 'not_null' -%}
                {{ exceptions.raise_compiler_error(
                    "column " ~ name ~ ": a '" ~ constraint['type']
                    ~ "' constraint is not supported (macros/tables.sql)") }}
            {%- endif -%}
            {%- do names.append(name) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for constraint in without_keys(model.get('constraints', [])) -%}
        {{ exceptions.raise_compiler_error(
            "a model-level '" ~ constraint['type'] ~ "' constraint is not supported (macros/tables.sql)") }}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}

{# The types whose columns have a collation (a text column is created with the default one). #}
{% macro collatable_types() -%}
    {{ return(['text', 'varchar', 'character varying', 'char', 'character', 'bpchar']) }}
{%- endmacro %}
