{#
    Primary and foreign keys, and index names, as pgAdmin shows them.

    The core and lookup models, and the analysis models built incrementally by a key
    (engagement_by_user, engagement_by_program: replace_keys deletes by it), declare their keys in
    their yml as contract constraints
    (`primary_key`, `foreign_key` with `to: ref(...)` and `to_columns`). dbt would write them into
    the CREATE TABLE, so Postgres would check each foreign key row by row while the rows go in:
    measured on a million tasks, 38 s per foreign key, against 1.5 s for the one set-based check
    of ALTER TABLE ... ADD FOREIGN KEY on the filled table. So the table is created with its
    columns, types and NOT NULLs only (macros/tables.sql; `postgres__get_table_columns_and_constraints`
    below for dbt's other CREATE TABLE paths), and the post-hook `apply_keys()` adds the declared
    keys once the rows are in. The same hook runs on
    every build: it adds a key that is missing (a new table after --full-refresh, a child whose
    parent was rebuilt alone, a warehouse built before the keys existed) and gives every key and
    index its conventional name (`<table>_pkey`, `<table>_<columns>_fkey`, `<table>_<columns>_idx`,
    `<table>_<columns>_key` when unique) instead of dbt's hashed or `__dbt_tmp` ones.

    On Spark there are no keys to add: `apply_keys()` does nothing there (spark__apply_keys).

    Foreign keys are DEFERRABLE INITIALLY DEFERRED: an incremental build deletes and re-inserts a
    parent row in one transaction (delete+insert), and the check waits for the commit, when the
    row is back. Rows that go for good (a program a new version dropped, a deleted document) take
    their children with them first (macros/incremental.sql). When the hook has a key to add or
    rename, it first runs the checks still pending (`set constraints all immediate`).
#}

{% macro postgres__get_table_columns_and_constraints() -%}
    {%- set columns = {} -%}
    {%- for name, column in model['columns'].items() -%}
        {%- set column_copy = column.copy() -%}
        {%- do column_copy.update({'constraints': without_keys(column.get('constraints', []))}) -%}
        {%- do columns.update({name: column_copy}) -%}
    {%- endfor -%}
    {%- set column_constraints = adapter.render_raw_columns_constraints(raw_columns=columns) -%}
    {%- set model_constraints = adapter.render_raw_model_constraints(
        raw_constraints=without_keys(model.get('constraints', []))) -%}
    (
    {% for constraint in column_constraints + model_constraints -%}
        {{ constraint }}{{ "," if not loop.last }}
    {% endfor -%}
    )
{%- endmacro %}

{% macro without_keys(constraints) -%}
    {%- set kept = [] -%}
    {%- for constraint in constraints if constraint['type'] not in ('primary_key', 'foreign_key') -%}
        {%- do kept.append(constraint) -%}
    {%- endfor -%}
    {{- return(kept) -}}
{%- endmacro %}

{# The primary and foreign keys the model's yml declares: [{type, columns, to, to_columns}]. #}
{% macro declared_keys() -%}
    {%- set keys = [] -%}
    {%- for name, column in model['columns'].items() -%}
        {%- for constraint in column.get('constraints', []) if constraint['type'] in ('primary_key', 'foreign_key') -%}
            {%- do keys.append({'type': constraint['type'], 'columns': [name], 'to': constraint.get('to'),
                                'to_columns': constraint.get('to_columns')}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for constraint in model.get('constraints', []) if constraint['type'] in ('primary_key', 'foreign_key') -%}
        {%- do keys.append({'type': constraint['type'], 'columns': constraint['columns'], 'to': constraint.get('to'),
                            'to_columns': constraint.get('to_columns')}) -%}
    {%- endfor -%}
    {{- return(keys) -}}
{%- endmacro %}

{# A name Postgres accepts (63 bytes at most), quoted. #}
{% macro key_name(parts, suffix) -%}
    "{{ (parts | join('_'))[:59 - suffix | length] }}_{{ suffix }}"
{%- endmacro %}

{#
    Post-hook of the core and lookup models: the declared keys exist, under conventional names,
    and so do readable names for the indexes of the `indexes` config. A name is freed first when
    another relation of the schema holds it: after a --full-refresh that is the previous table
    (`<model>__dbt_backup`), which dbt drops right after the commit.
#}
{% macro apply_keys() -%}
    {{ return(adapter.dispatch('apply_keys', 'duel')()) }}
{%- endmacro %}

{#
    Spark (parquet here; Delta and Iceberg too) enforces no primary or foreign key: the keys stay
    declared in the yml (documentation, and the `unique`/`relationships` data tests check them),
    and no statement is run.
#}
{% macro spark__apply_keys() -%}
    {{ return('') }}
{%- endmacro %}

{% macro default__apply_keys() -%}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set table = this.identifier -%}
    {%- set existing = run_query(
        "select conname, contype, array_to_string(array(select a.attname from unnest(c.conkey) with ordinality k(n, i)"
        ~ " join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.i), ',')"
        ~ " from pg_constraint c where c.conrelid = '" ~ this ~ "'::regclass and c.contype in ('p', 'f')") -%}
    {%- set indexes = run_query(
        "select i.relname, x.indisunique, array_to_string(array(select a.attname from unnest(x.indkey) with ordinality k(n, i)"
        ~ " join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.n order by k.i), ',')"
        ~ " from pg_index x join pg_class i on i.oid = x.indexrelid where x.indrelid = '" ~ this ~ "'::regclass"
        ~ " and not exists (select from pg_constraint c where c.conindid = x.indexrelid and c.conrelid = x.indrelid)") -%}
    {%- set statements = [] -%}
    {%- for key in declared_keys() -%}
        {%- set columns = key['columns'] | join(',') -%}
        {%- set found = [] -%}
        {%- for row in existing.rows if row[1] == key['type'][0] and row[2] == columns -%}
            {%- do found.append(row[0]) -%}
        {%- endfor -%}
        {%- if key['type'] == 'primary_key' -%}
            {%- set name = key_name([table], 'pkey') -%}
            {%- if found and '"' ~ found[0] ~ '"' != name -%}
                {%- do statements.append(free_index_name(name)) -%}
                {%- do statements.append('alter table ' ~ this ~ ' rename constraint "' ~ found[0] ~ '" to ' ~ name) -%}
            {%- elif not found -%}
                {%- do statements.append(free_index_name(name)) -%}
                {%- do statements.append('alter table ' ~ this ~ ' add constraint ' ~ name ~ ' primary key (' ~ (key['columns'] | join(', ')) ~ ')') -%}
            {%- endif -%}
        {%- else -%}
            {%- set name = key_name([table] + key['columns'], 'fkey') -%}
            {%- if found and '"' ~ found[0] ~ '"' != name -%}
                {%- do statements.append('alter table ' ~ this ~ ' rename constraint "' ~ found[0] ~ '" to ' ~ name) -%}
            {%- elif not found -%}
                {%- do statements.append('alter table ' ~ this ~ ' add constraint ' ~ name ~ ' foreign key ('
                    ~ (key['columns'] | join(', ')) ~ ') references ' ~ key['to'] ~ ' (' ~ (key['to_columns'] | join(', '))
                    ~ ') deferrable initially deferred') -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for row in indexes.rows -%}
        {%- set name = key_name([table] + row[2].split(','), 'key' if row[1] else 'idx') -%}
        {%- if '"' ~ row[0] ~ '"' != name -%}
            {%- do statements.append(free_index_name(name)) -%}
            {%- do statements.append('alter index ' ~ this.schema ~ '."' ~ row[0] ~ '" rename to ' ~ name) -%}
        {%- endif -%}
    {%- endfor -%}
    {#- Postgres refuses to alter a table with checks still pending in this transaction (an
        incremental build's deletes queue the deferred foreign-key checks): run them now. The
        rows are back by the post-hook, so they pass as they would at the commit. -#}
    {%- if statements -%}{%- do statements.insert(0, 'set constraints all immediate') -%}{%- endif -%}
    {{ return(statements | join(';\n')) }}
{%- endmacro %}

{# Rename whatever relation of this model's schema holds `name` (quoted) to `<name>_<its oid>`. #}
{% macro free_index_name(name) -%}
    do $$
    declare
        holder oid := (
            select c.oid from pg_class c
            where c.relname = {{ "'" ~ name[1:-1] ~ "'" }} and c.relnamespace = '{{ this.schema }}'::regnamespace
        );
    begin
        if holder is not null then
            execute format('alter index %I.%I rename to %I', '{{ this.schema }}', {{ "'" ~ name[1:-1] ~ "'" }},
                left({{ "'" ~ name[1:-1] ~ "'" }}, 50) || '_' || holder);
        end if;
    end
    $$
{%- endmacro %}

{#
    Data tests the database already enforces (issue 15). A `unique` test of a column that a
    valid, non-partial unique index covers alone (a primary key, or a UNIQUE the `indexes`
    config adds), and a `relationships` test along a validated foreign key whose triggers are
    enabled, cannot fail while the constraint stands: Postgres checked every row as it went in. Their queries are gated by
    these conditions on the catalog. A condition without columns is a one-time filter: Postgres
    evaluates it before anything else and then does not read the table at all (measured on a
    million rows: 0.2 ms against 2-3 s for base's two unique tests). Drop the index or the key
    and the test reads its table again. A test whose `model` is a filtered subquery (the `where`
    config), and every test on Spark, which enforces no key, reads its table.
#}
{% macro unique_enforced(relation, column) -%}
    {{ return(adapter.dispatch('unique_enforced', 'duel')(relation, column)) }}
{%- endmacro %}

{% macro default__unique_enforced(relation, column) -%}
    {%- if relation is string -%}{{ return('false') }}{%- endif -%}
    exists (
        select from pg_index as enforcing
        where
            enforcing.indrelid = to_regclass({{ relation_literal(relation) }})
            and enforcing.indisunique
            and enforcing.indisvalid
            and enforcing.indpred is null
            and enforcing.indexprs is null
            and enforcing.indnkeyatts = 1
            and enforcing.indkey[0] = {{ attribute_number('enforcing.indrelid', column) }}
    )
{%- endmacro %}

{% macro spark__unique_enforced(relation, column) -%}
    false
{%- endmacro %}

{% macro foreign_key_enforced(relation, column, to, field) -%}
    {{ return(adapter.dispatch('foreign_key_enforced', 'duel')(relation, column, to, field)) }}
{%- endmacro %}

{% macro default__foreign_key_enforced(relation, column, to, field) -%}
    {%- if relation is string or to is string -%}{{ return('false') }}{%- endif -%}
    exists (
        select from pg_constraint as enforcing
        where
            enforcing.contype = 'f'
            and enforcing.convalidated
            and enforcing.conrelid = to_regclass({{ relation_literal(relation) }})
            and enforcing.confrelid = to_regclass({{ relation_literal(to) }})
            and enforcing.conkey = array[{{ attribute_number('enforcing.conrelid', column) }}]
            and enforcing.confkey = array[{{ attribute_number('enforcing.confrelid', field) }}]
            -- its checks fire: a key without triggers (NOT ENFORCED) or with one disabled
            -- checks nothing
            and exists (
                select from pg_trigger as checking where checking.tgconstraint = enforcing.oid
            )
            and not exists (
                select from pg_trigger as checking
                where checking.tgconstraint = enforcing.oid and checking.tgenabled not in ('O', 'A')
            )
    )
{%- endmacro %}

{% macro spark__foreign_key_enforced(relation, column, to, field) -%}
    false
{%- endmacro %}

{# `relation` ("schema"."table", without the database) as a SQL string literal. #}
{% macro relation_literal(relation) -%}
    '{{ (relation.include(database=False) | string) | replace("'", "''") }}'
{%- endmacro %}

{# The attribute number of the column named `column` (as written in the yml) of the table `table_oid`. #}
{% macro attribute_number(table_oid, column) -%}
    (
        select attribute.attnum from pg_attribute as attribute
        where attribute.attrelid = {{ table_oid }} and attribute.attname = '{{ column | replace("'", "''") }}'
    )
{%- endmacro %}
