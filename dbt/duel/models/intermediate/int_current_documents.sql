with

current_versions as (

    select * from {{ ref('stg_current_versions') }}

),

documents as (

    select * from {{ ref('stg_user_documents') }}

),

final as (

    select
        current_versions.document_key,
        current_versions.source_name,
        current_versions.content_sha256,
        current_versions.batch_id,
        current_document.loaded_at,
        current_versions.updated_at,
        current_document.parse_status,
        current_document.document

    from current_versions
    -- one primary-key lookup per document: the limit (there is at most one row anyway) keeps
    -- the planner from misjudging the two-column join as near-empty and scanning every
    -- version when an incremental run needs only a few; document_key comes from
    -- current_versions, so a filter on it (or on batch_id) uses that table (macros/portable.sql:
    -- on Spark, a join). A build of the core models whole reads every document: a plain join,
    -- which Postgres can run in parallel workers (macros/incremental.sql, builds_core_whole).
    {%- if builds_core_whole() %}
    -- There the version is matched by a filter the planner gives a selectivity of one half
    -- (coalesce hides the equality), not by a second join key: with both keys it multiplied
    -- their selectivities, as if independent, into an estimate of one row for a million, and
    -- ran base's per-row work (the fields' extraction and defect classes) in one process above
    -- the parallel join. At 1M users base's select took 33-58 s that way and 19-31 s with the
    -- filter, the per-row work in the parallel workers (bench/analysis.md, twenty-seventh pass)
    {{ lateral_lookup('documents', 'current_document', [
        ['document_key', 'current_versions.document_key'],
    ], '') }}
    where
        not current_versions.is_deleted
        and coalesce(current_document.content_sha256 = current_versions.content_sha256, false)
    {%- else %}
    {{ lateral_lookup('documents', 'current_document', [
        ['document_key', 'current_versions.document_key'],
        ['content_sha256', 'current_versions.content_sha256'],
    ], 'limit 1') }}
    where not current_versions.is_deleted
    {%- endif %}

)

select * from final
