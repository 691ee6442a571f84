{{
    config(
        materialized='incremental',
        incremental_strategy='replace_documents',
        on_schema_change='fail',
        pre_hook="{{ scans_whole_when_built_whole() }}",
        post_hook=["{{ apply_keys() }}", "{{ record_whole_build() }}"],
        indexes=[
            {'columns': ['document_key'], 'unique': true},
            {'columns': ['email'], 'type': 'hash'},
            {'columns': ['batch_id']},
        ],
    )
}}

-- (email has a hash index: equality lookups whatever a value's length; a btree entry stops at
-- 2,704 bytes, and one long email failed the build)

-- depends_on: {{ ref('stg_current_versions') }}
-- (the replace_documents strategy, macros/incremental.sql, replaces the rows of the documents
-- built here and removes those of deleted documents, with their programs and tasks)

with

users as (

    select * from {{ ref('int_users') }}

),

-- (stg_batch_files, every file of every delivery, is named where it is read rather than
-- through one CTE: a CTE read twice is materialised whole, 2M rows at 1M users, where each
-- read needs the rows of one delivery (its primary key) or of the quarantined files)

{% if is_incremental() %}

current_versions as (

    select * from {{ ref('stg_current_versions') }}

),

-- documents delivered quarantined since the last build, and those that are stale now (a later
-- delivery may have mended them): the only documents whose latest delivery can make them stale
-- (every other one was current and not stale at the last build, and stays so unless a
-- quarantined delivery came since)
possibly_stale_keys as (

    -- (the watermark as a number here: the ledger's quarantined rows beyond it are read by an
    -- index of those rows alone, where the subquery made the planner scan every delivery ever
    -- made; macros/incremental.sql, batch_watermark)
    select document_key from {{ ref('stg_batch_files') }}
    where batch_id > {{ batch_watermark() }} and status = 'quarantined'

    union

    select document_key from {{ this }}
    where has_newer_quarantined_delivery

),

-- documents whose current version changed since the last build (a new version, a return, a
-- tombstone), and those above
changed_keys as (

    select document_key from current_versions
    where batch_id > {{ batch_watermark(literal=false) }}

    union

    select document_key from possibly_stale_keys

),

-- an email a changed document has now or had before: who else shares it may have changed.
-- (int_users is named again here rather than through `users`: a CTE named twice is computed
-- whole, for every document, where each use needs only a few.)
touched_emails as (

    select email from {{ ref('int_users') }}
    where
        {{ in_computed_list('document_key', 'select changed_keys.document_key from changed_keys') }}
        and email is not null

    union

    select email from {{ this }}
    where document_key in (select document_key from changed_keys) and email is not null

),

-- the documents this build rebuilds: the changed ones, and the unchanged ones sharing a
-- touched email (their row stays the same but for the duplicate flag)
rebuilt_keys as (

    select document_key from changed_keys

    union

    select document_key from {{ this }}
    where email in (select email from touched_emails)

),

-- the deliveries since the last build of the documents that may be stale: the latest one says
-- whether they are. Any other changed document is not (it keeps the NULL it had, below). Only
-- these documents' rows of the new deliveries are sorted, where every changed document's were
-- (at 1M files, 1 % changed: 1.3 s -> 0.27 s, bench/analysis.md, twenty-second pass); with
-- none, the new deliveries' ledger rows are not read at all.
recent_deliveries as (

    select batch_files.*
    from {{ ref('stg_batch_files') }} as batch_files
    inner join possibly_stale_keys using (document_key)
    where batch_files.batch_id > {{ batch_watermark(literal=false) }}

),

{% else %}

-- only documents with a quarantined delivery can be stale: their deliveries, all of them
recent_deliveries as (

    select batch_files.*
    from {{ ref('stg_batch_files') }} as batch_files
    where batch_files.document_key in (
        select quarantined.document_key
        from {{ ref('stg_batch_files') }} as quarantined
        where quarantined.status = 'quarantined'
    )

),

{% endif %}

-- each document's latest delivery among those (not every document has one)
latest_delivery as (

    {%- set latest = (['document_key'], ['document_key asc', 'batch_id desc', 'file_seq desc']) %}
    select {{ distinct_on(*latest) }}
        document_key,
        batch_id,
        status
    from recent_deliveries
    where status <> 'skipped'
    {{ distinct_on_end(*latest) }}

),

{#- (Postgres, incremental) the latest deliveries as one jsonb object (below) when it surely
    fits: at most one entry per ledger row since the last build (what raw.batches counts: the
    files seen and the tombstones), each about its key's bytes + 16 (41 bytes for a 26-byte
    key, measured), the key's average width from the planner's statistics of the ledger
    (on-run-start keeps them fresh), at most var base_latest_deliveries_max_bytes (half of
    jsonb's 256 MB maximum: over 3M entries with keys of that width, where a daily dump of 1M
    files adds 1M). A larger delivery takes the join, as Spark and full builds do. Two catalog
    rows and a few batches are read, not the ledger. -#}
{%- set looked_up = namespace(value=false) -%}
{%- if execute and is_incremental() and target.type == 'postgres' -%}
    {#- (the raw tables, named from the graph, not by source(): the guard is no input of the
        model, which its unit test would then have to give, and a build of base alone need not
        have built any staging view) -#}
    {%- set ledger = graph.sources['source.' ~ project_name ~ '.raw.batch_files'] -%}
    {%- set counted = graph.sources['source.' ~ project_name ~ '.raw.batches'] -%}
    {%- set batches = api.Relation.create(
        database=counted.database, schema=counted.schema, identifier=counted.identifier) -%}
    {%- set object_bytes = single_value(
        'select coalesce(sum(files_seen + coalesce(deleted, 0)), 0) * (16 + coalesce(('
        ~ "select avg_width from pg_stats where schemaname = '" ~ ledger.schema
        ~ "' and tablename = '" ~ ledger.identifier ~ "' and attname = 'document_key'), 256))"
        ~ ' from ' ~ batches ~ ' where batch_id > ' ~ batch_watermark()) -%}
    {%- set looked_up.value = object_bytes | int <= var('base_latest_deliveries_max_bytes') -%}
{%- endif -%}
{%- set looked_up = looked_up.value %}
{% if looked_up %}

-- (Postgres, incremental) those latest deliveries as one jsonb object, computed once: each
-- document's key -> the batch of its latest delivery if that was quarantined, else 0. Joined
-- as a table they were planned, in some builds, as the inner side of a nested loop under the
-- rebuilt documents (estimated at one row: the views' key lookups) and computed again, a scan
-- and sort of the deliveries since the last build, for each document: at 100k users, on the
-- third delivery, base's select took 67 s against 0.7 s for the deliveries before and after
-- it; at 1M users 28-34 s against 3-4 s in three builds of ten (bench/analysis.md,
-- thirteenth pass). A materialised CTE of one row is computed once whatever the plan, and read
-- by a scalar subquery (an InitPlan), not joined: a joined object rode along with every row
-- into the sort below (22,208 rows, a 9 GB sort at 1M users).
latest_batches as materialized (

    select coalesce(
        jsonb_object_agg(
            document_key, case when status = 'quarantined' then batch_id else 0 end
        ),
        cast('{}' as jsonb)
    ) as by_document
    from latest_delivery

),

{% endif %}

-- the current documents to build, each with the batch of a newer quarantined delivery (a
-- document without a delivery above keeps the one it had: none, unless it was stale)
delivered as (

    select
        users.*,
        {% if looked_up %}
        case
            when ((select by_document from latest_batches) ->> users.document_key) is null
                then existing.newer_quarantined_batch_id
            else nullif(
                cast((select by_document from latest_batches) ->> users.document_key as bigint), 0
            )
        end as newer_quarantined_batch_id
        {% elif is_incremental() %}
        case
            when latest_delivery.document_key is null then existing.newer_quarantined_batch_id
            when latest_delivery.status = 'quarantined' then latest_delivery.batch_id
        end as newer_quarantined_batch_id
        {% else %}
        case when latest_delivery.status = 'quarantined' then latest_delivery.batch_id end
            as newer_quarantined_batch_id
        {% endif %}

    from users
    {% if not looked_up %}
    left join latest_delivery
        on users.document_key = latest_delivery.document_key
    {% endif %}
    {% if is_incremental() %}
    left join {{ this }} as existing
        on users.document_key = existing.document_key
    -- `= any(array(...))`, not `in (select ...)`: the array is computed first, so the filter
    -- reaches int_current_documents' scan of current_versions (its primary key) and only these
    -- documents are looked up; a semi-join is planned above the lookup, which then reads every
    -- current document (measured at 100k users, 1 % changed: 22 s against 2 s)
    where {{ in_computed_list(
        'users.document_key', 'select rebuilt_keys.document_key from rebuilt_keys'
    ) }}
    {% endif %}

),

flagged as (

    select
        *,
        coalesce(count(*) over (partition by email) > 1 and email is not null, false)
            as is_duplicate_email

    from delivered

),

final as (

    -- (macros/users.sql: the snapshot's versions between builds have the same columns)
    select
        {{ user_row_columns() }}

    from flagged

)

select * from final
