{#
    Every description in the yml becomes its table's or column's comment (persist_docs,
    dbt_project.yml), in one statement per model.

    dbt's own persist_docs asks the database for the relation's columns twice (once to check the
    documented columns exist, once more in alter_column_comment) and sends the table's comment and
    the columns' comments apart: four statements per model built, each costing dbt more of its
    Python (the query's bookkeeping and its log events) than Postgres its time. Here the comments
    go in one statement. A model whose contract is enforced has exactly its declared columns
    (dbt checks them before the table is created), so its columns are not asked for; any other
    relation's are asked once, and a documented column it does not have is left out with dbt's
    warning, as before. Spark keeps dbt-spark's own.
#}
{% macro postgres__persist_docs(relation, model, for_relation, for_columns) -%}
    {%- set comments = [] -%}
    {%- if for_relation and config.persist_relation_docs() and model.description -%}
        {%- do comments.append(alter_relation_comment(relation, model.description)) -%}
    {%- endif -%}
    {%- if for_columns and config.persist_column_docs() and model.columns -%}
        {%- set contract_config = config.get('contract') -%}
        {%- if contract_config and contract_config.enforced -%}
            {%- set columns = model.columns -%}
        {%- else -%}
            {%- set existing = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
            {%- set columns = validate_doc_columns(relation, model.columns, existing) -%}
        {%- endif -%}
        {%- for name, column in columns.items() -%}
            {%- do comments.append(
                'comment on column ' ~ relation ~ '.'
                ~ (adapter.quote(name) if column['quote'] else name)
                ~ ' is ' ~ postgres_escape_comment(column['description']) ~ ';'
            ) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if comments -%}
        {%- do run_query(comments | join('\n')) -%}
    {%- endif -%}
{%- endmacro %}
