{#
    The users whose rows changed, and when: one list per database that every incremental model
    downstream of the core models reads (issue 15), instead of each of them scanning base,
    advocacy_programs and tasks_completed for the row versions written since its own last build
    (at 1M users about 0.2 s a table, 14 such scans in a build).

    dbt_changes.changed_users holds one row per user_key that a build of a core model ever wrote
    or deleted a row of, with `changed_at`: the 64-bit id (xid8) of the newest transaction that
    did. The core models' incremental strategy (replace_documents, macros/incremental.sql)
    writes it in the same transaction as their rows, from the rows it deleted and those it
    inserted, so it cannot miss a change however a build is started or selected; `changed_at`
    only moves forward (greatest), so a slower transaction that started earlier cannot date a
    user back. A whole build of a core model (the first, --full-refresh) and the table's
    creation write the row of user_key NULL, "every user": a model whose last build is older
    builds whole. A deleted user keeps its row (the list grows with the users ever seen, not
    with the builds).

    A model that reads the list records its own builds in dbt_changes.model_builds (one row per
    model: the transaction of its last build, written by that transaction, record_model_build)
    and takes the users changed since then, by the list's index: neither it nor the core
    models are scanned for row versions (a model of 1M rows, about 0.4 s a scan). Every model
    that reads the list depends on the three core models (changed_users_depends), so all of a
    build's writes to the list are committed before the model's own transaction, whose id is
    then newer than theirs. users_snapshot reads it too, for base's changes (it depends on base:
    a later write by the other two only dates a user it has already seen, which `greatest`
    keeps from hiding a newer change). On Spark there is no list: those models build whole.
#}

{# The list, dbt_changes.changed_users, and the builds of the models that read it, model_builds. #}
{% macro user_changes_relation(identifier='changed_users') -%}
    {{ return(api.Relation.create(database=target.database, schema='dbt_changes', identifier=identifier, type='table')) }}
{%- endmacro %}

{% macro model_builds_relation() -%}
    {{ return(user_changes_relation('model_builds')) }}
{%- endmacro %}

{#
    on-run-start of `dbt run`, `dbt build` and `dbt snapshot` (users_snapshot records its
    builds) on Postgres: the list, if it is missing, with the row "every user changed now"
    (what happened before it existed is not known), and the table of builds.
#}
{% macro create_user_changes() -%}
    {%- if execute and target.type == 'postgres' and flags.WHICH in ('run', 'build', 'snapshot', 'retry') -%}
        {%- set changes = user_changes_relation() -%}
        create schema if not exists {{ adapter.quote(changes.schema) }};
        do $create$
        begin
            if to_regclass({{ text_literal(changes | string) }}) is null then
                create table {{ changes }} (
                    user_key uuid unique nulls not distinct,
                    changed_at xid8 not null
                );
                create index on {{ changes }} (changed_at);
                comment on table {{ changes }} is {{ text_literal(
                    'The users whose rows in base, advocacy_programs or tasks_completed a build wrote or deleted, '
                    ~ 'each with the newest transaction that did (macros/user_changes.sql); user_key NULL: every user. '
                    ~ 'Read by the incremental models downstream.') }};
                insert into {{ changes }} values (null, pg_current_xact_id());
            end if;
            if to_regclass({{ text_literal(model_builds_relation() | string) }}) is null then
                create table {{ model_builds_relation() }} (
                    model text primary key,
                    built_at xid8 not null
                );
                comment on table {{ model_builds_relation() }} is {{ text_literal(
                    'The last build of each model that reads ' ~ changes ~ ': the transaction that wrote it '
                    ~ '(macros/user_changes.sql).') }};
            end if;
        end
        $create$
    {%- endif -%}
{%- endmacro %}

{# Record the users `keys` (a query of one column, user_key; NULL for every user) as changed now. #}
{% macro record_user_changes(keys) -%}
    {%- set changes = user_changes_relation() -%}
    insert into {{ changes }} as changes (user_key, changed_at)
    select distinct user_key, pg_current_xact_id() from ({{ keys }}) as changed (user_key)
    on conflict (user_key) do update
    set changed_at = greatest(changes.changed_at, excluded.changed_at)
{%- endmacro %}

{#
    A post_hook of the core models: when this transaction built `this` whole
    (macros/incremental.sql built_whole_here), every user changed.
    An incremental build records its users in the strategy. Elsewhere it renders nothing.
#}
{% macro record_whole_build() -%}
    {%- if execute and target.type == 'postgres' -%}
        do $record$
        begin
            if {{ built_whole_here() }} then
                {{ record_user_changes('select null::uuid') }};
            end if;
        end
        $record$
    {%- endif -%}
{%- endmacro %}

{# The core models: a model that reads the list runs after all three. #}
{% macro changed_users_depends() -%}
    {%- do ref('base') -%}
    {%- do ref('advocacy_programs') -%}
    {%- do ref('tasks_completed') -%}
{%- endmacro %}

{#
    A post_hook (inside the transaction) of a model that reads the list: this transaction built
    `this`. Elsewhere it renders nothing.
#}
{% macro record_model_build() -%}
    {%- if execute and target.type == 'postgres' -%}
        insert into {{ model_builds_relation() }} as builds (model, built_at)
        values ({{ text_literal(this | string) }}, pg_current_xact_id())
        on conflict (model) do update set built_at = excluded.built_at
    {%- endif -%}
{%- endmacro %}

{#
    The transaction since which `this` has to take the users changed, as an integer: its last
    build's. None when it must build whole instead: no build of it is recorded (or none in the
    last 2^30 transactions), the list is missing, or "every user" was recorded since. Read when
    the model runs; none when not executing.
#}
{% macro user_changes_since() -%}
    {%- if not execute or target.type != 'postgres' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set changes = user_changes_relation() -%}
    {%- set builds = model_builds_relation() -%}
    {%- if adapter.get_relation(changes.database, changes.schema, changes.identifier) is none
        or adapter.get_relation(builds.database, builds.schema, builds.identifier) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {#- (within 2^30 transactions, so that its 32-bit id compares with row versions) -#}
    {%- set found -%}
        select builds.built_at::text
        from {{ builds }} as builds
        where builds.model = {{ text_literal(this | string) }}
            and pg_snapshot_xmax(pg_current_snapshot())::text::bigint
                - builds.built_at::text::bigint < 1073741824
            and not exists (
                select from {{ changes }} as changes
                where changes.user_key is null and changes.changed_at >= builds.built_at
            )
    {%- endset -%}
    {%- set rows = run_query(found).rows -%}
    {{ return(rows[0][0] | int if rows | length > 0 else none) }}
{%- endmacro %}

{# The users changed since the transaction `since` (user_changes_since), by the list's index. #}
{% macro users_changed_since(since) -%}
    select user_key from {{ user_changes_relation() }}
    where changed_at >= {{ text_literal(since) }}::xid8
{%- endmacro %}

{#
    For an incremental model (replace_keys), a pre_hook: the users changed since `this` was last
    built, copied from the list into a temporary table of this transaction and analyzed, which
    the model's query and the strategy's delete read (changed_users_table). The planner then
    knows how many they are: reading the list itself, before autovacuum had analyzed its new
    rows, it took them for a handful and joined engagement_by_user's three 1M-row tables to
    them row by row (at 1M users, 22,208 changed: cancelled after 14 minutes, against 7.7 s).
    Nothing when the model builds whole or takes every user, and elsewhere.

    The transaction also prices a random page read at 1.1 sequential ones (`set local
    random_page_cost`, Postgres' own advice for data in memory or on SSD; its default, 4, is
    for spinning disks), so that a few percent of the users are looked up by the tables'
    user_key indexes, and a large share still scanned and hashed: the planner knows the list's
    size. At 1M users and 22,208 changed, with the default it read base, advocacy_programs and
    tasks_completed whole for engagement_by_user (2.7 s cold, 1.1 s warm) and deleted the
    changed users' rows by a scan of the model (0.39 s); looked up, 0.83 and 0.11 s
    (bench/analysis.md, 2026-12-07 19:12).
#}
{% macro stage_changed_users() -%}
    {%- if is_incremental() or model.resource_type == 'snapshot' -%}
        {%- set since = user_changes_since() -%}
        {%- if since is not none -%}
            {{ staged_users_changed_since(changed_users_table(), since) }};
            set local random_page_cost = 1.1
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#
    The users changed since `since`, copied into the temporary table `table` (quoted) of this
    transaction, one column `column`, and analyzed: the one staging of the list, for the
    readers' pre_hook above and the sums' scope (macros/differences.sql).
#}
{% macro staged_users_changed_since(table, since, column='user_key') -%}
    create temporary table {{ table }} on commit drop as
    select user_key as {{ adapter.quote(column) }} from ({{ users_changed_since(since) }}) as changed;
    analyze {{ table }}
{%- endmacro %}

{% macro changed_users_table() -%}
    {{ return(adapter.quote(this.identifier ~ '__changed_users')) }}
{%- endmacro %}

{#
    For an incremental model (replace_keys): `column` is one of the users whose rows changed
    since `this` was last built (stage_changed_users); true when it must take every user
    (user_changes_since is none), and when not executing. `depends=false` for a snapshot,
    which depends on the model it reads (base) alone.
#}
{% macro in_changed_users(column, depends=true) -%}
    {%- if depends -%}
        {{- changed_users_depends() -}}
    {%- endif -%}
    {%- if user_changes_since() is none -%}
        true
    {%- else -%}
        {{ column }} in (select user_key from {{ changed_users_table() }})
    {%- endif -%}
{%- endmacro %}
