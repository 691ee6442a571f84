{#
    A snapshot's staging rows (its changes: rows to insert, versions to close) from the keys that
    can have changed, not from every row of its source (issue 15).

    dbt's own staging query (default__snapshot_staging_table) joins every row of the source with
    every open row of the snapshot, three times: for new versions, for changed ones and for
    deletes. At 1M users that was users_snapshot's 19 s of a 1 %-changed build, for about 22,000
    users whose rows base rewrote. A snapshot configured with `key_relation` (the model it
    snapshots, by name: e.g. 'base') reads instead:
    - as its source, only the rows whose key has a row in `key_relation` written since the
      snapshot itself was last written (written_since_this, the row versions of
      macros/incremental.sql). A row written before then was in the source when that run read
      it (the snapshot is built after the model it reads), so it is already snapshotted;
    - as deleted, the open versions whose key is no longer in `key_relation` (an anti-join on
      the key alone, not a join of whole rows).
    The changes are those of dbt's query, row for row, in its columns and order, so dbt's
    snapshot materialization merges them as it would its own (at 1M users with 10,000 changed:
    the same 20,000 rows, in 1.4-1.6 s against 5.9-6.2 s; bench/analysis.md, twelfth pass).
    Without `key_relation`, with hard_deletes 'new_record' or a composite key, and on any other
    adapter, dbt's query runs. Like the incremental models' row versions, it assumes one build
    at a time writes the model the snapshot reads.
    An empty snapshot, or one last written more than 2^30 transactions ago, reads every row.
#}
{% macro postgres__snapshot_staging_table(strategy, source_sql, target_relation) -%}
    {%- set key_model = config.get('key_relation') -%}
    {%- if not key_model or strategy.hard_deletes == 'new_record' or strategy.unique_key is not string -%}
        {{ return(dbt.default__snapshot_staging_table(strategy, source_sql, target_relation)) }}
    {%- endif -%}
    {%- if config.get('versions_between_builds') and strategy.hard_deletes == 'invalidate' -%}
        {{ return(user_version_changes(strategy, target_relation)) }}
    {%- endif -%}
    {%- set keys = ref(key_model) -%}
    {%- set key = strategy.unique_key -%}
    {%- set columns = config.get('snapshot_table_column_names') or get_snapshot_table_column_names() -%}
    {#- the snapshot's last write as a subquery, not a literal read beforehand: dbt renders this
        query twice (and runs it once), and the subquery is read once, by the one table it
        filters -#}
    with snapshot_query as (

        select * from (
            {{ source_sql }}
        ) as source_query
        where {{ key }} in (
            select {{ key }} from {{ keys }}
            where {{ written_since_this('') }}
        )

    ),

    snapshotted_data as (

        select *, {{ unique_key_fields(key) }}
        from {{ target_relation }}
        where
            {{ columns.dbt_valid_to }} is null
            and {{ key }} in (select snapshot_query.{{ key }} from snapshot_query)

    ),

    insertions_source_data as (

        select *, {{ unique_key_fields(key) }},
            {{ strategy.updated_at }} as {{ columns.dbt_updated_at }},
            {{ strategy.updated_at }} as {{ columns.dbt_valid_from }},
            {{ get_dbt_valid_to_current(strategy, columns) }},
            {{ strategy.scd_id }} as {{ columns.dbt_scd_id }}

        from snapshot_query

    ),

    updates_source_data as (

        select *, {{ unique_key_fields(key) }},
            {{ strategy.updated_at }} as {{ columns.dbt_updated_at }},
            {{ strategy.updated_at }} as {{ columns.dbt_valid_from }},
            {{ strategy.updated_at }} as {{ columns.dbt_valid_to }}

        from snapshot_query

    ),

    {%- if strategy.hard_deletes == 'invalidate' %}

    {# the source's columns, all null: what dbt's left join gives a deleted key #}
    deletes_source_data as (

        select *, {{ unique_key_fields(key) }}
        from snapshot_query
        where false

    ),

    deleted_data as (

        select snapshotted.{{ columns.dbt_scd_id }}
        from {{ target_relation }} as snapshotted
        where {{ open_and_gone('snapshotted', keys, key, columns) }}

    ),
    {%- endif %}

    insertions as (

        select
            'insert' as dbt_change_type,
            source_data.*

        from insertions_source_data as source_data
        left outer join snapshotted_data
            on {{ unique_key_join_on(key, "snapshotted_data", "source_data") }}
        where
            {{ unique_key_is_null(key, "snapshotted_data") }}
            or (
                {{ unique_key_is_not_null(key, "snapshotted_data") }}
                and {{ strategy.row_changed }}
            )

    ),

    updates as (

        select
            'update' as dbt_change_type,
            source_data.*,
            snapshotted_data.{{ columns.dbt_scd_id }}

        from updates_source_data as source_data
        inner join snapshotted_data
            on {{ unique_key_join_on(key, "snapshotted_data", "source_data") }}
        where {{ strategy.row_changed }}

    )

    {%- if strategy.hard_deletes == 'invalidate' %},

    deletes as (

        select
            'delete' as dbt_change_type,
            source_data.*,
            {{ snapshot_get_time() }} as {{ columns.dbt_valid_from }},
            {{ snapshot_get_time() }} as {{ columns.dbt_updated_at }},
            {{ snapshot_get_time() }} as {{ columns.dbt_valid_to }},
            deleted_data.{{ columns.dbt_scd_id }}

        from deleted_data
        left outer join deletes_source_data as source_data on false

    )
    {%- endif %}

    select * from insertions
    union all
    select * from updates
    {%- if strategy.hard_deletes == 'invalidate' %}
    union all
    select * from deletes
    {%- endif %}
{%- endmacro %}

{#
    Base's rows (of alias `alias`, keyed by `key`, user_key) written since the snapshot's last
    build: those of the users listed as changed since (macros/user_changes.sql, staged by the
    snapshot's pre_hook), or, when the list cannot say (`since` none: no build of the snapshot
    recorded, or base built whole since), those whose row version is newer than the
    snapshot's last write.
#}
{% macro base_written_since(alias, key, since) -%}
    {%- if since is none -%}
        {{ written_since_this(alias, '(select xid from last_write)') }}
    {%- else -%}
        {{ in_changed_users((alias ~ '.' if alias) ~ key, depends=false) }}
    {%- endif -%}
{%- endmacro %}

{# An open version (of the snapshot row `alias`) whose key is no longer in `keys`: deleted. #}
{% macro open_and_gone(alias, keys, key, columns) -%}
    {{ alias }}.{{ columns.dbt_valid_to }} is null
            and not exists (
                select from {{ keys }} as kept
                where kept.{{ key }} = {{ alias }}.{{ key }}
            )
{%- endmacro %}

{#
    Post-hook of a snapshot: an index on its version ids (dbt_scd_id), by which dbt's merge closes
    the versions a build replaced (`update ... from staging where dbt_scd_id = ...`). Without it
    every build reads the whole history to close a few versions: at 1M users with 10,000
    changed, 0.5-1.4 s against 0.1-0.16 s. Created once, when missing (a snapshot built before
    this hook gets it at its next build).
#}
{% macro index_snapshot_versions() -%}
    {%- if target.type == 'postgres' -%}
        create index if not exists {{ key_name([this.identifier, 'dbt_scd_id'], 'idx') }}
        on {{ this }} (dbt_scd_id)
    {%- endif -%}
{%- endmacro %}

{#
    users_snapshot's changes with the versions between builds (config `versions_between_builds`,
    Postgres): every version a document has had, each from when it became current to when it
    was replaced, whether or not a build ran while it was current.

    A snapshot only sees the rows of the model it reads, as they are at each build: a document
    changed twice between two builds (two dumps ingested, then one build, as after a day whose
    build failed), or born and deleted between them, would keep no trace of its versions in
    between, and a delete would be dated by the build that saw it. raw.replaced_versions holds
    every state a document's pointer held and lost, with its interval (written by a trigger on
    raw.current_versions, src/duel/sql/raw_schema.sql). For each document whose history may
    have moved since the snapshot's last build (base's rows of the users listed as changed
    since, macros/user_changes.sql, or base's rows written since when the list cannot say;
    pointers moved since; open versions of those users whose document left base), the states that began after the snapshot
    last saw it (`seen_through`: its open version's start, or its last closed version's end):
    - its open version is closed when the next state began (a new version, or a tombstone:
      a delete is dated by the batch that deleted it);
    - each version replaced since is inserted, closed at its replacement, its columns those
      base would have given it (macros/users.sql: the same cleaning, the same columns); the
      flags that depend on other documents or later deliveries (is_duplicate_email,
      has_newer_quarantined_delivery, newer_quarantined_batch_id and is_clean, unless the
      version's own defects rule it out) are NULL: not known for a version no build saw;
    - base's row, when it began since, is inserted open, as dbt's own query would.
    Versions replaced after base's row began (a batch that committed during this build) are
    left for the next build. Without `target_relation` (the snapshot's first build,
    postgres__build_snapshot_table) every document's every state is read. Rows are those of
    dbt's staging query, in its columns, so dbt's merge applies them as its own. The snapshot's
    own query is not read: its source is `key_relation` (base), read by table and row version.
#}
{% macro user_version_changes(strategy, target_relation=none) -%}
    {%- set first_build = target_relation is none -%}
    {%- set since = none if first_build else user_changes_since() -%}
    {%- set key = strategy.unique_key -%}
    {%- set keys = ref(config.get('key_relation')) -%}
    {%- set replaced = source('raw', 'replaced_versions') -%}
    {%- set pointers = source('raw', 'current_versions') -%}
    {%- set documents = source('raw', 'user_documents') -%}
    {%- set columns = config.get('snapshot_table_column_names') or get_snapshot_table_column_names() -%}
    {%- set never = "cast('-infinity' as timestamptz)" -%}
    {%- set names = adapter.get_columns_in_relation(keys) | map(attribute='quoted') | join(', ') -%}
    with

    {%- if first_build %}

    seen as (

        select
            cast(null as text) as document_key,
            {{ never }} as seen_through,
            cast(null as text) as open_scd_id
        where false

    ),
    {%- else %}

    {%- if since is none %}

    -- the snapshot's last write, read once (macros/incremental.sql, last_written)
    last_write as materialized (

        select {{ last_written() }} as xid

    ),
    {%- else %}

    -- the snapshot's last build (macros/user_changes.sql), as a 32-bit transaction id
    last_write as materialized (

        select {{ since % 4294967296 }}::bigint as xid

    ),
    {%- endif %}

    -- the documents whose history may have moved since then, and whether each has an open
    -- version but has left base (deleted)
    in_scope as (

        select document_key, bool_or(gone) as gone
        from (
            select document_key, false as gone from {{ keys }}
            where {{ base_written_since('', key, since) }}

            union all

            select document_key, false from {{ replaced }}
            where {{ written_since_this('', '(select xid from last_write)') }}

            union all

            select open_version.document_key, true
            from {{ target_relation }} as open_version
            where {{ open_and_gone('open_version', keys, key, columns) }}
            {%- if since is not none %}
                and {{ in_changed_users('open_version.' ~ key, depends=false) }}
            {%- endif %}
        ) as scoped
        group by document_key

    ),

    -- when the snapshot last saw each of them, and its open version
    seen as (

        select
            snapshotted.document_key,
            in_scope.gone,
            max(coalesce(
                snapshotted.{{ columns.dbt_valid_to }}, snapshotted.{{ columns.dbt_valid_from }}
            )) as seen_through,
            max(snapshotted.{{ columns.dbt_scd_id }})
                filter (where snapshotted.{{ columns.dbt_valid_to }} is null) as open_scd_id
        from {{ target_relation }} as snapshotted
        inner join in_scope on in_scope.document_key = snapshotted.document_key
        group by snapshotted.document_key, in_scope.gone

    ),
    {%- endif %}

    -- base's rows that began since: of those base wrote since (a row written before was
    -- there at the last build). The snapshot's source is base itself (key_relation), read by
    -- its rows' xmin, not through the snapshot's query: matched with in_scope instead, the
    -- planner (which guesses 200 keys for it) looked every row up by its key when base was
    -- written whole (a full refresh: 1M lookups, 6.4 s)
    current_rows as (

        select source_row.*
        from {{ keys }} as source_row
        left join seen on seen.document_key = source_row.document_key
        where
            source_row.{{ strategy.updated_at }} > coalesce(seen.seen_through, {{ never }})
            {%- if not first_build %}
            and {{ base_written_since('source_row', key, since) }}
            {%- endif %}

    ),

    -- the states replaced since (before base's row began), and the tombstones since of the
    -- documents that left base (the time their open version closes)
    later_states as (

        select
            replaced.document_key,
            replaced.content_sha256,
            replaced.source_name,
            replaced.batch_id,
            replaced.is_deleted,
            replaced.valid_from as state_from,
            replaced.valid_to as state_to
        from {{ replaced }} as replaced
        left join seen on seen.document_key = replaced.document_key
        left join {{ keys }} as current_row on current_row.document_key = replaced.document_key
        where
            replaced.valid_from > coalesce(seen.seen_through, {{ never }})
            and replaced.valid_from
                < coalesce(current_row.{{ strategy.updated_at }}, cast('infinity' as timestamptz))
            {%- if not first_build %}
            and replaced.document_key in (select in_scope.document_key from in_scope)
            {%- endif %}
        {%- if not first_build %}

        union all

        select
            pointer.document_key,
            pointer.content_sha256,
            pointer.source_name,
            pointer.batch_id,
            pointer.is_deleted,
            pointer.updated_at,
            cast(null as timestamptz)
        from seen
        inner join {{ pointers }} as pointer on pointer.document_key = seen.document_key
        where
            seen.gone
            and pointer.is_deleted
            and pointer.updated_at > seen.seen_through
        {%- endif %}

    ),

    -- the versions among them, as base would have read them
    replaced_documents as (

        select
            state.document_key,
            state.source_name,
            state.content_sha256,
            state.batch_id,
            version.loaded_at,
            state.state_from as updated_at,
            version.parse_status,
            version.document
        from later_states as state
        inner join {{ documents }} as version
            on version.document_key = state.document_key
            and version.content_sha256 = state.content_sha256
        where not state.is_deleted

    ),

    replaced_users as (

        {{ clean_users('replaced_documents') }}

    ),

    -- (the columns by name: the snapshot's source is base, whose columns these are)
    versions as (

        select {{ names }}
        from (
            select
                {{ user_row_columns(flags_known=false) }}
            from replaced_users
        ) as replaced_rows

        union all

        select {{ names }} from current_rows

    ),

    insertions as (

        select
            {%- if not first_build %}
            'insert' as dbt_change_type,
            {%- endif %}
            versions.*,
            {%- if first_build %}
            {{ strategy.scd_id }} as {{ columns.dbt_scd_id }},
            {%- else %}
            versions.{{ key }} as dbt_unique_key,
            {%- endif %}
            versions.{{ strategy.updated_at }} as {{ columns.dbt_updated_at }},
            versions.{{ strategy.updated_at }} as {{ columns.dbt_valid_from }},
            state.state_to as {{ columns.dbt_valid_to }}
            {%- if not first_build %},
            {{ strategy.scd_id }} as {{ columns.dbt_scd_id }}
            {%- endif %}
        from versions
        left join later_states as state
            on state.document_key = versions.document_key
            and state.state_from = versions.{{ strategy.updated_at }}
            and not state.is_deleted

    )
    {%- if first_build %}

    select * from insertions
    {%- else %},

    -- each open version closed when the next state began (a document that left base with no
    -- state recorded since: at this build)
    closes as (

        select
            seen.open_scd_id,
            seen.gone,
            coalesce(min(state.began), {{ snapshot_get_time() }}) as closed_at
        from seen
        left join (
            select document_key, state_from as began from later_states
            union all
            select document_key, {{ strategy.updated_at }} from current_rows
        ) as state on state.document_key = seen.document_key
        where seen.open_scd_id is not null
        group by seen.open_scd_id, seen.gone
        having min(state.began) is not null or seen.gone

    ),

    updates as (

        select
            case when closes.gone then 'delete' else 'update' end as dbt_change_type,
            nothing.*,
            nothing.{{ key }} as dbt_unique_key,
            closes.closed_at as {{ columns.dbt_updated_at }},
            closes.closed_at as {{ columns.dbt_valid_from }},
            closes.closed_at as {{ columns.dbt_valid_to }},
            closes.open_scd_id as {{ columns.dbt_scd_id }}
        from closes
        left join (select * from versions where false) as nothing on false

    )

    select * from insertions
    union all
    select * from updates
    {%- endif %}
{%- endmacro %}

{#
    A snapshot's first build: with `versions_between_builds`, every version recorded so far
    (user_version_changes), not only the current ones; otherwise dbt's.
#}
{% macro postgres__build_snapshot_table(strategy, sql) -%}
    {%- if config.get('versions_between_builds') and config.get('key_relation')
        and strategy.hard_deletes == 'invalidate' -%}
        {{ return(user_version_changes(strategy)) }}
    {%- endif -%}
    {{ return(dbt.default__build_snapshot_table(strategy, sql)) }}
{%- endmacro %}
