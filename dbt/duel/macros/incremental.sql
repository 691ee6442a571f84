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
    Pre-hook of the models with several rows per document (advocacy_programs, tasks_completed):
    delete every row of a document that has a newer current version or was deleted (a tombstone
    is a version too). delete+insert on user_key alone would keep the old rows of a document whose
    new version has no programs or tasks, and of a document that is gone. `children`: tables
    whose foreign key points at this one (macros/keys.sql); their rows of those documents go
    first, so no key is left dangling at the commit (their own build replaces them).
#}
{% macro delete_rows_of_changed_documents(children=[]) -%}
    {%- if is_incremental() -%}
    {%- set changed -%}
        select {{ surrogate_key(['document_key']) }}
        from {{ ref('stg_current_versions') }}
        where batch_id > {{ batch_watermark() }}
    {%- endset -%}
    {{ delete_children(children, changed) }}
    delete from {{ this }}
    where user_key in ({{ changed }})
    {%- endif -%}
{%- endmacro %}

{# Delete the rows of the documents `user_keys` (a query) from each existing table of `children`. #}
{% macro delete_children(children, user_keys) -%}
    {%- for child in children -%}
    {%- set relation = adapter.get_relation(database=this.database, schema=this.schema, identifier=child) -%}
    {%- if relation is not none %}
    delete from {{ relation }} where user_key in ({{ user_keys }});
    {%- endif -%}
    {%- endfor -%}
{%- endmacro %}

{#
    The body of the `current_documents` step the document staging models share: each current
    (not deleted) document's current version (raw.current_versions -> raw.user_documents), with
    its lineage. `documents` and `current_versions` name the models' import steps.
#}
{% macro current_documents(documents, current_versions) -%}
    select
        cast({{ current_versions }}.document_key as text) as document_key,
        cast({{ current_versions }}.source_name as text) as source_name,
        cast({{ current_versions }}.content_sha256 as text) as content_sha256,
        cast({{ current_versions }}.batch_id as bigint) as batch_id,
        cast(current_document.loaded_at as timestamptz) as loaded_at,
        cast({{ current_versions }}.updated_at as timestamptz) as updated_at,
        cast(current_document.parse_status as text) as parse_status,
        current_document.document

    from {{ current_versions }}
    -- one primary-key lookup per file: the limit (there is at most one row anyway) keeps the
    -- planner from misjudging the two-column join as near-empty and scanning every document
    -- when an incremental run needs only a few; document_key comes from current_versions so a
    -- filter on it uses that table's primary key
    cross join lateral (
        select * from {{ documents }}
        where {{ documents }}.document_key = {{ current_versions }}.document_key
            and {{ documents }}.content_sha256 = {{ current_versions }}.content_sha256
        limit 1
    ) as current_document
    where not {{ current_versions }}.is_deleted
{%- endmacro %}

{#
    Post-hook of `base`: remove the rows of documents that are deleted now (their current version
    is a tombstone), and first their programs and tasks (`children`), which point at them.
    delete+insert only replaces rows it has a new row for, and a deleted document has none. After
    the insert, so the build could still read their old emails.
#}
{% macro delete_rows_of_deleted_documents(children=[]) -%}
    {%- if is_incremental() -%}
    {%- set deleted -%}
        select {{ surrogate_key(['document_key']) }}
        from {{ ref('stg_current_versions') }}
        where is_deleted
    {%- endset -%}
    {{ delete_children(children, deleted) }}
    delete from {{ this }}
    where document_key in (
        select document_key from {{ ref('stg_current_versions') }} where is_deleted
    )
    {%- endif -%}
{%- endmacro %}
