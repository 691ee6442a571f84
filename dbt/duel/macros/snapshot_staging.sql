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
        where
            snapshotted.{{ columns.dbt_valid_to }} is null
            and not exists (
                select from {{ keys }} as kept
                where kept.{{ key }} = snapshotted.{{ key }}
            )

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
