{#
    Incremental core models rebuild only the documents whose current version arrived after
    their last build. A model's watermark is the highest `batch_id` it holds: batches are
    numbered in the order they commit (the loader serialises them), so every later change has
    a higher number. A full refresh runs the same query without the filter, so both give the
    same rows.
#}
{% macro batch_watermark() -%}
    (select coalesce(max(batch_id), 0) from {{ this }})
{%- endmacro %}

{#
    The documents an incremental build of `this` replaces, as user_keys: those whose current
    version changed since the model's watermark (a new version, a return, a tombstone) and every
    deleted document (idempotent: a deleted document has no rows left to delete).
#}
{% macro changed_documents() -%}
    select {{ surrogate_key(['document_key']) }}
    from {{ ref('stg_current_versions') }}
    where batch_id > {{ batch_watermark() }} or is_deleted
{%- endmacro %}

{#
    The one delete path of the incremental core models (base, advocacy_programs,
    tasks_completed): incremental_strategy='replace_documents'. A document is replaced whole:

    1. the rows of the tables whose foreign key points at this one (their `children`, read from
       the catalog: tasks_completed for advocacy_programs, both for base) that point at a row
       going for good (a row of a replaced document that the new rows do not bring back: a
       program a new version dropped, a deleted document) are deleted, so no key is left
       dangling at the commit; the children's own build replaces the rest of their rows;
    2. every row of the replaced documents is deleted: the documents of the new rows (the model
       decides which: base adds those sharing an email with a changed one) and those changed
       since the watermark, so a document whose new version has no programs or tasks, or that
       is gone, keeps no old rows;
    3. the new rows are inserted.

    (delete+insert on user_key alone keeps the rows of a deleted document and of a document whose
    new version has no rows; a second delete in a hook, as before, was a second path to keep in
    step with the first.)

    dbt-spark's incremental materialization accepts only its own strategies; the two macros
    at the end of this file let it take this one too (on Spark, spark__ below).
#}
{% macro get_incremental_replace_documents_sql(arg_dict) -%}
    {{ return(adapter.dispatch('get_incremental_replace_documents_sql', 'duel')(arg_dict)) }}
{%- endmacro %}

{% macro default__get_incremental_replace_documents_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set replaced -%}
        select user_key from {{ source }}
        union
        {{ changed_documents() }}
    {%- endset -%}
    {%- for child in foreign_keys_to(target) %}
    delete from {{ child['table'] }}
    where {{ child['column'] }} in (
        select {{ child['to_column'] }} from {{ target }} where user_key in ({{ replaced }})
        except
        select {{ child['to_column'] }} from {{ source }}
    );
    {%- endfor %}
    delete from {{ target }}
    where user_key in ({{ replaced }});

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}

{#
    replace_documents on Spark with parquet tables, which have no DELETE: the table is rewritten
    whole (spark_rewrite_table). No foreign key points at anything on Spark, so step 1 has nothing
    to do. On Delta or Iceberg in production, `merge` with the same replaced set (or `delete` +
    `insert`) writes only the files that hold changed rows.
#}
{% macro spark__get_incremental_replace_documents_sql(arg_dict) -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {{ return(spark_rewrite_table(arg_dict['target_relation'], source, arg_dict['dest_columns'], 'user_key',
        'select user_key from ' ~ source ~ ' union ' ~ changed_documents())) }}
{%- endmacro %}

{#
    A parquet table's incremental build on Spark: its rows whose `key` is not among `replaced` (a
    one-column query) and the new rows of `source` are written to a staging table (Spark cannot
    overwrite a table it is reading), then put back with `insert overwrite`. Every build rewrites
    the table. replace_documents and delete+insert (brand's, by unique_key) both come here.
#}
{% macro spark_rewrite_table(target, source, dest_columns, key, replaced) -%}
    {%- set columns = get_quoted_csv(dest_columns | map(attribute='name')) -%}
    {%- set staged = target.incorporate(path={'identifier': target.identifier ~ '__dbt_rewrite'}) -%}
    {%- do run_query('drop table if exists ' ~ staged) -%}
    {%- do run_query(
        'create table ' ~ staged ~ ' using parquet as select ' ~ columns ~ ' from ' ~ target
        ~ ' where ' ~ key ~ ' not in (' ~ replaced ~ ')'
        ~ ' union all select ' ~ columns ~ ' from ' ~ source) -%}
    {%- set statement -%}
        insert overwrite table {{ target }}
        select {{ columns }} from {{ staged }}
    {%- endset -%}
    {{ return(statement) }}
{%- endmacro %}

{# The single-column foreign keys that point at `relation`: [{table, column, to_column}]. #}
{% macro foreign_keys_to(relation) -%}
    {%- set found = run_query(
        "select c.conrelid::regclass::text, child.attname, parent.attname from pg_constraint c"
        ~ " join pg_attribute child on child.attrelid = c.conrelid and child.attnum = c.conkey[1]"
        ~ " join pg_attribute parent on parent.attrelid = c.confrelid and parent.attnum = c.confkey[1]"
        ~ " where c.contype = 'f' and c.confrelid = '" ~ relation ~ "'::regclass"
        ~ " and cardinality(c.conkey) = 1 order by 1") -%}
    {%- set keys = [] -%}
    {%- for row in found.rows -%}
        {%- do keys.append({'table': row[0], 'column': row[1], 'to_column': row[2]}) -%}
    {%- endfor -%}
    {{- return(keys) -}}
{%- endmacro %}

{#
    dbt-spark's incremental materialization calls these two (not dispatched: the project's copies
    take precedence); they take `replace_documents` and, on parquet, `delete+insert` (a table
    rewrite, spark_rewrite_table), and hand every other strategy to dbt-spark's own.
#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
    {%- if raw_strategy in ('replace_documents', 'delete+insert') -%}
        {{ return(raw_strategy) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{%- endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -%}
    {%- set columns = adapter.get_columns_in_relation(target) -%}
    {%- if strategy == 'replace_documents' -%}
        {{ return(spark__get_incremental_replace_documents_sql(
            {'target_relation': target, 'temp_relation': source, 'dest_columns': columns})) }}
    {%- elif strategy == 'delete+insert' -%}
        {{ return(spark_rewrite_table(target, source, columns, unique_key, 'select ' ~ unique_key ~ ' from ' ~ source)) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
{%- endmacro %}
