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
#}
{% macro get_incremental_replace_documents_sql(arg_dict) -%}
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
