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
    -- which Postgres can run in parallel workers (macros/incremental.sql, builds_core_whole)
    {{ lateral_lookup('documents', 'current_document', [
        ['document_key', 'current_versions.document_key'],
        ['content_sha256', 'current_versions.content_sha256'],
    ], '' if builds_core_whole() else 'limit 1') }}
    where not current_versions.is_deleted

)

select * from final
