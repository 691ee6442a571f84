{#
    Sums kept by difference (issue 15): a model of additive sums by group whose incremental build
    costs what changed, not what exists.

    A model of this kind states its *contributions*: one row per contribution key (`key`, e.g.
    user_key) and group (the columns `group_by`), with additive measures (`sums`: counts and
    sums, never NULL; 0 where nothing is known). Its table holds one row per group: `group_by`,
    `contributions` (how many contribution rows the group has: with one row per key and group,
    its keys) and the sum of every measure over the group's contributions. The model's SQL is
    `{{ sums_of(contributions) }}`, and it is configured with key (user_key: the users whose
    rows changed are read from dbt_changes.changed_users, macros/user_changes.sql), group_by
    and sums. A changed definition (a measure, a group column) needs a full build: duel makes
    one after any change of the project (duel.transform), `dbt build` from a terminal needs
    --full-refresh.

    On Postgres (materialized='sums_by_difference') the contributions are kept in a second
    table beside it, `<model>__contributions`, indexed by key, and an incremental build:
    1. takes the keys in scope: the users whose rows in base, advocacy_programs or
       tasks_completed were written or deleted since the sums' last build (the list of
       changed users, macros/user_changes.sql: changed, returned and deleted users alike);
    2. computes their contributions anew (the model's SQL, restricted to the scope by
       `in_difference_scope(column)`);
    3. adds to each group the difference, new contributions minus the old ones of the same keys,
       in one MERGE: a group whose contributions fall to 0 is deleted, a new one inserted;
    4. replaces the keys' contributions.
    One transaction: the sums always equal those of the contributions kept beside them, which
    always equal the model's SQL over every key. A full build (the first, --full-refresh, a
    contributions table missing, or the list saying every user changed since: a core model
    built whole) computes every contribution and groups them. Both give the same rows: sums
    of integers and of exact numerics, which addition and subtraction keep exact. Elsewhere
    (Spark) the model is a table: `sums_of` renders the grouping of the contributions itself,
    the same columns.
#}

{# Whether this build of the model adds differences (an incremental build on Postgres). #}
{% macro builds_by_difference() -%}
    {%- if not execute or target.type != 'postgres' or model.config.materialized != 'sums_by_difference' -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if should_full_refresh() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(this.database, this.schema, this.identifier) -%}
    {%- set kept = adapter.get_relation(this.database, this.schema, contributions_of(this).identifier) -%}
    {{ return(existing is not none and existing.type == 'table' and kept is not none
        and user_changes_since() is not none) }}
{%- endmacro %}

{# The contributions table of a sums model `relation`. #}
{% macro contributions_of(relation) -%}
    {{ return(relation.incorporate(path={'identifier': relation.identifier ~ '__contributions'}, type='table')) }}
{%- endmacro %}

{# The keys in scope of this build: a temporary table of one column, `key`. #}
{% macro difference_scope() -%}
    {{ return(adapter.quote(this.identifier ~ '__scope')) }}
{%- endmacro %}

{#
    A filter for the model's SQL: `column` among the keys in scope (true on a full build). A
    list computed first (in_computed_list), so the planner looks the keys up by an index: an
    `in (select ...)` of 22,208 users at 1M was planned as a hash of the scope against every
    row (int_defect_sums' contributions 0.49 s, its deletes 0.47 s; as a list 0.32 and 0.06 s).
#}
{% macro in_difference_scope(column) -%}
    {{- changed_users_depends() -}}
    {%- if builds_by_difference() -%}
        {{ in_scope(column) }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{% macro in_scope(column) -%}
    {{ in_computed_list(column, 'select ' ~ adapter.quote(config.get('key')) ~ ' from ' ~ difference_scope()) }}
{%- endmacro %}

{#
    The one grouping of contributions into sums: of the query or relation `source`. `types`: the
    contributions' column types by name, each sum cast to its measure's (a sum of counts is a
    count; the measures' types are sized for any sum, dbt_project.yml measure_ranges), where
    Postgres would make every sum a bare numeric.
#}
{% macro group_sums(source, types={}) -%}
    {%- set group_by = config.get('group_by') -%}
    select
        {%- for column in group_by %}
        {{ adapter.quote(column) }},
        {%- endfor %}
        cast(count(*) as bigint) as contributions
        {%- for column in config.get('sums') %},
        {%- if column in types %}
        cast(sum({{ adapter.quote(column) }}) as {{ types[column] }}) as {{ adapter.quote(column) }}
        {%- else %}
        sum({{ adapter.quote(column) }}) as {{ adapter.quote(column) }}
        {%- endif %}
        {%- endfor %}
    from {{ source }} as contributions
    group by {% for column in group_by %}{{ loop.index }}{{ ', ' if not loop.last }}{% endfor %}
{%- endmacro %}

{# The model's SQL: the contributions where the materialization groups them, else their sums. #}
{% macro sums_of(contributions) -%}
    {%- if model.config.materialized == 'sums_by_difference' -%}
        {{ contributions }}
    {%- else -%}
        {{ group_sums('(' ~ contributions ~ ')') }}
    {%- endif -%}
{%- endmacro %}

{#
    A full build: every contribution (this statement), then their sums (sums_rebuild_sql, typed
    as the contributions are); both tables replaced in one transaction.
#}
{% macro contributions_rebuild_sql(kept, sql) -%}
    {%- set new_kept = kept.incorporate(path={'identifier': kept.identifier ~ '__dbt_new'}) -%}
    drop table if exists {{ new_kept }};
    create table {{ new_kept }} as (
        {{ sql }}
    )
{%- endmacro %}

{% macro sums_rebuild_sql(target, kept) -%}
    {%- set new_kept = kept.incorporate(path={'identifier': kept.identifier ~ '__dbt_new'}) -%}
    {%- set new_target = target.incorporate(path={'identifier': target.identifier ~ '__dbt_new'}) -%}
    {%- set types = {} -%}
    {%- for column in adapter.get_columns_in_relation(new_kept) -%}
        {%- do types.update({column.name: column.data_type}) -%}
    {%- endfor -%}
    drop table if exists {{ new_target }};
    create table {{ new_target }} as (
        {{ group_sums(new_kept, types) }}
    );
    drop table if exists {{ kept }};
    alter table {{ new_kept }} rename to {{ adapter.quote(kept.identifier) }};
    drop table if exists {{ target }};
    alter table {{ new_target }} rename to {{ adapter.quote(target.identifier) }};
    create index on {{ kept }} ({{ adapter.quote(config.get('key')) }});
    comment on table {{ kept }} is {{ text_literal(
        'The contributions ' ~ target.identifier ~ ' sums, kept by difference (macros/differences.sql): '
        ~ 'one row per ' ~ config.get('key') ~ ' and ' ~ config.get('group_by') | join(', ')
        ~ ', its measures those the key adds to the group.') }};
    analyze {{ kept }};
    analyze {{ target }}
{%- endmacro %}

{#
    An incremental build (steps 1-4 above): the users changed since the model's last build
    (user_changes_since), which every build records (record_model_build, below).
#}
{% macro sums_difference_sql(target, kept, sql) -%}
    {%- set key = adapter.quote(config.get('key')) -%}
    {%- set group_by = config.get('group_by') | map('string') | list -%}
    {%- set sums = ['contributions'] + config.get('sums') | list -%}
    {%- set new = adapter.quote(target.identifier ~ '__new') -%}
    {%- set delta = adapter.quote(target.identifier ~ '__delta') -%}
    {{ staged_users_changed_since(difference_scope(), user_changes_since(), config.get('key')) }};

    create temporary table {{ new }} on commit drop as (
        {{ sql }}
    );

    create temporary table {{ delta }} on commit drop as
    select
        {%- for column in group_by %}
        {{ adapter.quote(column) }},
        {%- endfor %}
        {%- for column in sums %}
        sum({{ adapter.quote(column) }}) as {{ adapter.quote(column) }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        {%- for source, sign in [(new, ''), (kept, '-')] %}
        select
            {%- for column in group_by %}
            {{ adapter.quote(column) }},
            {%- endfor %}
            {{ sign }}1 as contributions
            {%- for column in sums[1:] %},
            {{ sign }}{{ adapter.quote(column) }} as {{ adapter.quote(column) }}
            {%- endfor %}
        from {{ source }}
        {%- if sign %}
        where {{ in_scope(key) }}
        {%- else %}

        union all
        {%- endif %}
        {%- endfor %}
    ) as changes
    group by {% for column in group_by %}{{ loop.index }}{{ ', ' if not loop.last }}{% endfor %}
    having
        {%- for column in sums %}
        sum({{ adapter.quote(column) }}) <> 0{{ ' or' if not loop.last }}
        {%- endfor %};

    merge into {{ target }} as sums
    using {{ delta }} as delta
    on
        {%- for column in group_by %}
        sums.{{ adapter.quote(column) }} is not distinct from delta.{{ adapter.quote(column) }}
        {{- ' and' if not loop.last }}
        {%- endfor %}
    when matched and sums.contributions + delta.contributions = 0 then delete
    when matched then update set
        {%- for column in sums %}
        {{ adapter.quote(column) }} = sums.{{ adapter.quote(column) }} + delta.{{ adapter.quote(column) }}
        {{- ',' if not loop.last }}
        {%- endfor %}
    when not matched then insert (
        {%- for column in group_by + sums %}{{ adapter.quote(column) }}{{ ', ' if not loop.last }}{% endfor -%}
    ) values (
        {%- for column in group_by + sums %}delta.{{ adapter.quote(column) }}{{ ', ' if not loop.last }}{% endfor -%}
    );

    delete from {{ kept }}
    where {{ in_scope(key) }};

    insert into {{ kept }}
    select * from {{ new }}
{%- endmacro %}

{% materialization sums_by_difference, adapter='postgres' %}
    {%- set target = this.incorporate(type='table') -%}
    {%- set kept = contributions_of(target) -%}
    {%- set by_difference = builds_by_difference() -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- if by_difference -%}
        {%- call statement('main') -%}
            {{ sums_difference_sql(target, kept, sql) }}
        {%- endcall -%}
    {%- else -%}
        {%- call statement('contributions') -%}
            {{ contributions_rebuild_sql(kept, sql) }}
        {%- endcall -%}
        {%- call statement('main') -%}
            {{ sums_rebuild_sql(target, kept) }}
        {%- endcall -%}
    {%- endif -%}

    {%- call statement('record_build') -%}
        {{ record_model_build() }}
    {%- endcall -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do persist_docs(target, model) %}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target]}) }}
{% endmaterialization %}
