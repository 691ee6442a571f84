{#
    Incremental core models rebuild only the documents whose current version arrived after
    their last build. A model's watermark is the highest `batch_id` it holds (`column`): batches
    are numbered in the order they commit (the loader serialises them), so every later change
    has a higher number. A full refresh runs the same query without the filter, so both give
    the same rows.

    The number is read when the model runs and written into its SQL as a literal, not left as a
    subquery: the planner then knows how few rows of the ledger (raw.batch_files, every file of
    every delivery) lie beyond it and reads them by the primary key. With a subquery it can only
    guess a third of the table, and scans all of it: a cost that grows with every delivery
    (brand's select at 1M files after 29 deliveries: 5.1-5.7 s with the subquery, 0.6-0.7 s
    with the literal). Only `this` is read, which no other build writes meanwhile, so the value
    is the one the subquery would give. (When not executing, parsing or documenting, the
    subquery stands in.)

    `literal=false` keeps the subquery: base's select, whose join of the rebuilt documents is
    estimated at a few rows whatever they are (the views' lookups). With the literal the
    planner saw how few documents changed, and put the changed documents' deliveries inside a
    nested loop over them, sorted again for each: at 1M files with 1 % changed, 55-68 s
    against 4.5-7.3 s (EXPLAIN ANALYZE, alternating). Its one filter of the ledger alone, the
    quarantined deliveries since the last build, takes the literal: with the subquery that
    filter scanned every delivery ever made (1M users after 17 deliveries, 17M ledger rows:
    base's select 3.1-3.4 s, 1.2-1.8 s of it that scan; with the literal 2.4-2.7 s, the new
    delivery's rows read by the primary key in 0.16 s), a cost that grew with every day's dump.
#}
{# The one value a query returns (its first row's first column), read when the model runs. #}
{% macro single_value(sql) -%}
    {{- return(run_query(sql).columns[0].values()[0]) -}}
{%- endmacro %}

{% macro batch_watermark(column='batch_id', literal=true) -%}
    {%- if execute and literal -%}
        {{- single_value('select coalesce(max(' ~ column ~ '), 0) from ' ~ this) | int -}}
    {%- else -%}
        (select coalesce(max({{ column }}), 0) from {{ this }})
    {%- endif -%}
{%- endmacro %}

{#
    Whether this build fills the core models whole: on --full-refresh, or when base (the first
    of them) does not exist yet. The intermediate views read the current documents with a
    per-row key lookup an incremental build needs (macros/portable.sql, lateral_lookup); a
    full build reads every current document, and the same rows come faster from a join Postgres
    can run in parallel workers (a fenced lateral subquery keeps a query on one process). Their
    rows are the same either way. A build that selects the views recreates them first, in the
    form it needs; `duel run`'s scoped build does not select them (duel.transform,
    UNCHANGED_VIEWS), so its incremental models read the form of the last full build: the join.
    Measured after a 1 % change (bench/analysis.md, eleventh pass), the join costs the three
    core models' selects about 0.1 s in all at 100k users and 0.5 s at 1M (base alike, the
    other two 0.2-0.3 s each): too little for a build to recreate the views it otherwise
    keeps. Outside a run (parsing, docs), in a unit test and on Spark (which joins either way)
    it is false: the lookup.
#}
{% macro builds_core_whole() -%}
    {%- if not execute or target.type != 'postgres' -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if flags.FULL_REFRESH -%}
        {{ return(true) }}
    {%- endif -%}
    {#- a unit test's graph has no nodes: the lookup -#}
    {%- set node = (graph.get('nodes') or {}).get('model.' ~ project_name ~ '.base') -%}
    {%- if node is none -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(adapter.get_relation(node.database, node.schema, node.alias) is none) }}
{%- endmacro %}

{#
    A pre_hook for a model that reads every row of its inputs when it is built whole (not
    incremental) on Postgres: no index scans and no nested-loop joins for this model's
    transaction (`set local`), so it scans and hashes. Two plans it prevents, both measured:
    - engagement_by_user at 1M users: the planner read three 1M-row tables by an index in key
      order, so that a merge join needs no sort, pricing each random heap fetch as if cached;
      scanning and hashing them is twice as fast (22.0 / 23.8 s as planned, 11.5 / 12.6 s
      without index scans, same rows).
    - base: the current documents (int_current_documents, a join on two columns the planner
      takes as independent) are estimated at one row, so the join with the documents' latest
      deliveries became a nested loop that ran the deliveries' query again for every user. On a
      database of 1M users and 31 deliveries (31M ledger rows) a --full-refresh of base had not
      finished after 18 minutes; with the hook its select takes 30 s. (The cost grows with the
      users times the ledger, so it is there at every size, and worse with many quarantined
      files.)
    An incremental build reads a few keys, by their index: untouched. Elsewhere it renders
    nothing, and dbt runs no hook.
#}
{% macro scans_whole_when_built_whole() -%}
    {%- if target.type == 'postgres' and not is_incremental() -%}
        set local enable_indexscan = off; set local enable_bitmapscan = off;
        set local enable_nestloop = off
    {%- endif -%}
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
    The users of the rows deleted in 2 and inserted in 3 are recorded as changed in the same
    transaction (macros/user_changes.sql), for the models downstream.

    (delete+insert on user_key alone keeps the rows of a deleted document and of a document whose
    new version has no rows; a second delete in a hook, as before, was a second path to keep in
    step with the first.)

    dbt-spark's incremental materialization accepts only its own strategies; the two macros
    at the end of this file let it take this one too (on Spark, spark__ below).
#}
{% macro get_incremental_replace_documents_sql(arg_dict) -%}
    {{ return(adapter.dispatch('get_incremental_replace_documents_sql', 'duel')(arg_dict)) }}
{%- endmacro %}

{% macro default__get_incremental_replace_documents_sql(arg_dict) -%}
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
    with deleted as (
        delete from {{ target }}
        where user_key in ({{ replaced }})
        returning user_key
    )
    {{ record_user_changes('select user_key from deleted union select user_key from ' ~ source) }};

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}

{#
    replace_documents on Spark with parquet tables, which have no DELETE: the table is rewritten
    whole (spark_rewrite_table). No foreign key points at anything on Spark, so step 1 has nothing
    to do. On Delta or Iceberg in production, `merge` with the same replaced set (or `delete` +
    `insert`) writes only the files that hold changed rows.
#}
{% macro spark__get_incremental_replace_documents_sql(arg_dict) -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {{ return(spark_rewrite_table(arg_dict['target_relation'], source, arg_dict['dest_columns'], 'user_key',
        'select user_key from ' ~ source ~ ' union ' ~ changed_documents())) }}
{%- endmacro %}

{#
    A parquet table's incremental build on Spark: its rows whose `key` is not among `replaced` (a
    one-column query) and the new rows of `source` are written to a staging table (Spark cannot
    overwrite a table it is reading), then put back with `insert overwrite`. Every build rewrites
    the table. replace_documents and delete+insert (brand's, by unique_key) both come here.
#}
{% macro spark_rewrite_table(target, source, dest_columns, key, replaced) -%}
    {%- set columns = get_quoted_csv(dest_columns | map(attribute='name')) -%}
    {%- set staged = target.incorporate(path={'identifier': target.identifier ~ '__dbt_rewrite'}) -%}
    {%- do run_query('drop table if exists ' ~ staged) -%}
    {%- do run_query(
        'create table ' ~ staged ~ ' using parquet as select ' ~ columns ~ ' from ' ~ target
        ~ ' where ' ~ key ~ ' not in (' ~ replaced ~ ')'
        ~ ' union all select ' ~ columns ~ ' from ' ~ source) -%}
    {%- set statement -%}
        insert overwrite table {{ target }}
        select {{ columns }} from {{ staged }}
    {%- endset -%}
    {{ return(statement) }}
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

{#
    dbt-spark's incremental materialization calls these two (not dispatched: the project's copies
    take precedence); they take `replace_documents` and, on parquet, `delete+insert` (a table
    rewrite, spark_rewrite_table), and hand every other strategy to dbt-spark's own.
#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
    {%- if raw_strategy in ('replace_documents', 'delete+insert') -%}
        {{ return(raw_strategy) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{%- endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -%}
    {%- set columns = adapter.get_columns_in_relation(target) -%}
    {%- if strategy == 'replace_documents' -%}
        {{ return(spark__get_incremental_replace_documents_sql(
            {'target_relation': target, 'temp_relation': source, 'dest_columns': columns})) }}
    {%- elif strategy == 'delete+insert' -%}
        {{ return(spark_rewrite_table(target, source, columns, unique_key, 'select ' ~ unique_key ~ ' from ' ~ source)) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
{%- endmacro %}

{#
    Rows written since a point in the database's transaction order: the rows an incremental
    build (or a test of it) has to look at, whatever model wrote them and why (a changed
    document, an email shared with one, a full refresh).

    On Postgres a row's `xmin` is the transaction that wrote it. `since` is a 32-bit
    transaction id (an expression); a row is written since it when its xmin follows or equals it
    in Postgres's circular order of transaction ids (the difference modulo 2^32 below 2^31, as
    Postgres compares them, so it holds across the wrap-around of the 32-bit counter). The caller
    makes sure fewer than 2^31 transactions lie between (duel.changes.test_scope does). An
    unknown `since` (NULL) gives NULL. `relation`: the table alias, or '' for the only one.

    Spark has no such column: every row counts as written (a full build, a whole test).
#}
{% macro written_since(since, relation='') -%}
    {{ return(adapter.dispatch('written_since')(since, relation)) }}
{%- endmacro %}

{% macro default__written_since(since, relation='') -%}
    (({{ relation ~ '.' if relation }}xmin::text::bigint - ({{ since }}) + 4294967296) % 4294967296
    < 2147483648)
{%- endmacro %}

{% macro spark__written_since(since, relation='') -%}
    true
{%- endmacro %}

{#
    The transaction that last wrote `relation` (default `this`, an incremental model), as a
    32-bit id: the newest of its rows' xmin (the one with the smallest age). NULL when it has no
    rows, or when that was more than 2^30 transactions ago (too far to compare 32-bit ids
    safely; a frozen row's raw xmin can be older than 2^31, its age then negative).
#}
{% macro last_written(relation=none) -%}
    (
        select case when age(xmin) between 0 and 1073741824 then xmin::text::bigint end
        from {{ this if relation is none else relation }}
        order by age(xmin)
        limit 1
    )
{%- endmacro %}

{#
    Data tests scoped to the rows a build wrote (issue 15).

    `duel run`, when the last complete build of this database passed all its tests and the
    project is the same (duel.changes.test_scope), sets the setting duel.tests_written_since on
    dbt's connections (PGOPTIONS) to the first transaction after that build. The row-level
    tests (`scoped_tests`) then read only the rows of a table written since then: a row written
    before was there, unchanged, when every test passed. `unique` checks the keys of those rows
    against the whole table (tests/generic/unique.sql); `invariants` reads only those rows for
    its row checks and the whole table for its totals (tests/generic/invariants.sql). Every
    other test (relationships, unique_combination_of_columns, singular tests) and every test
    of a view reads everything. Without the setting (`duel transform`, `duel run --force` or `--full`, a
    changed project, CI, the DAG) every test reads everything.
#}
{% macro scoped_tests() -%}
    {{ return(['not_null', 'accepted_values']) }}
{%- endmacro %}

{# The transaction id duel.tests_written_since holds (64 bits), NULL when it is not set. #}
{% macro tests_written_since() -%}
    nullif(current_setting('duel.tests_written_since', true), '')::bigint
{%- endmacro %}

{# The predicate "written since the last tested build"; true for every row when unset. #}
{% macro written_since_tested(relation='') -%}
    ({{ tests_written_since() }} is null
    or {{ written_since(tests_written_since() ~ ' % 4294967296', relation) }})
{%- endmacro %}

{# Whether `relation` is a table dbt builds or a source (raw tables): a row there has an xmin. #}
{% macro has_row_versions(relation) -%}
    {%- if not execute or target.type != 'postgres' -%}
        {{ return(false) }}
    {%- endif -%}
    {%- for node in graph.nodes.values() | list + graph.sources.values() | list -%}
        {%- if node.relation_name == relation | string -%}
            {{ return(node.resource_type == 'source'
                or node.config.materialized in ('table', 'incremental', 'snapshot')) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}

{# dbt's own (`where` config), and the scope above for the row-level tests of a table. #}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set scoped = (model.test_metadata or {}).get('name') in scoped_tests()
        and has_row_versions(relation) -%}
    {%- if where or scoped -%}
        {%- set filtered -%}
            (select * from {{ relation }}
            where {{ where if where else 'true' }}
            {%- if scoped %} and {{ written_since_tested() }}{% endif %}) as dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}

{#
    The changed rows of an upstream table `relation` (aliased `alias`) for an incremental
    analysis model: those written since `this` was last written (macro last_written). Every
    row when `this` is empty or was last written more than 2^30 transactions ago (so the
    32-bit comparison stays sound).
#}
{% macro written_since_this(alias, since=none) -%}
    coalesce({{ written_since(last_written() if since is none else since, alias) }}, true)
{%- endmacro %}

{#
    incremental_strategy='replace_keys', for the analysis models that aggregate by one key
    (`unique_key`: engagement_by_user by user_key, engagement_by_program by program_key), each
    row of one user (a `user_key` column): the new rows replace the rows of their keys, and the
    rows of the users changed since the model's last build (macros/user_changes.sql,
    stage_changed_users) that the new rows do not bring back (a deleted user, a dropped
    program) are deleted. The model selects the keys of those users; a full refresh runs the
    same query over every key, so both give the same rows. When the model has to take every
    user (user_changes_since is none: a core model built whole since its last build), its new
    rows are all its rows, and every old one is deleted. The model's key is its primary key
    (apply_keys), which the first delete looks its keys up by: without it that delete read the
    whole table (engagement_by_user at 1M users, 22,208 keys: 2.4 s against 0.16 s), and its
    `unique` test is then free (macros/keys.sql, unique_enforced). The rows of the users gone
    were found before by an anti-join of the model and the model it aggregates (base, 1.5 s
    at 1M users); they are now looked up by the changed users' keys.
#}
{% macro get_incremental_replace_keys_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set since = user_changes_since() %}
    {%- if since is none %}
    delete from {{ target }};
    {%- else %}
    delete from {{ target }}
    where {{ key }} in (select {{ key }} from {{ source }});

    delete from {{ target }}
    where user_key in (select user_key from {{ changed_users_table() }});
    {%- endif %}

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}

{#
    Fresh planner statistics for the raw tables, at the start of every `dbt run` and `dbt build`
    on Postgres (on-run-start), whoever starts it: `duel transform`, the DAG or a terminal. The
    incremental models compare batch numbers with their watermark as a literal
    (batch_watermark), and statistics taken before the last ingest would put none of its rows
    beyond it: planned as one row, a delivery's files get joined row by row (measured on base's
    select, a 1M-file delivery with 10,000 changed: cancelled after 10 minutes, against 3.5 s
    once analyzed). Autovacuum may not have analysed them yet. The tables the project reads as
    sources, those that exist; a role that does not own them gets Postgres' warning, not an
    error.

    What it costs is reading the sample: Postgres reads up to 300 x the statistics target
    pages of a table (30,000 at the default 100), one at a time where the page cache does not
    hold them. On a 1M-file database of 22 deliveries (a 22M-row, 3.8 GB ledger) this ANALYZE
    took 80.4 s in a build whose tables had dropped out of the cache (1.2 s minutes later,
    cached). So:
    - a source whose `meta.statistics_target` is set is analyzed with that target: the ledger,
      raw.batch_files (30: 9,000 pages, where its plans' estimates, the rows of a batch and the
      count of its keys, stay close to those of the default; _raw__sources.yml has them);
    - JSON columns are left out: no query here filters or joins on a whole document, and
      their statistics (the documents compared and sorted) cost the most to gather.
#}
{% macro analyze_sources() -%}
    {%- if execute and target.type == 'postgres' and flags.WHICH in ('run', 'build') -%}
        {%- set statements = [] -%}
        {%- for source in graph.sources.values() | sort(attribute='unique_id') -%}
            {%- set relation = adapter.get_relation(source.database, source.schema, source.identifier) -%}
            {%- if relation is not none and relation.type == 'table' -%}
                {%- set columns = [] -%}
                {%- for column in adapter.get_columns_in_relation(relation) -%}
                    {%- if column.dtype | lower not in ('json', 'jsonb') -%}
                        {%- do columns.append(adapter.quote(column.name)) -%}
                    {%- endif -%}
                {%- endfor -%}
                {%- set analyze = 'analyze ' ~ relation ~ ' (' ~ columns | join(', ') ~ ')' -%}
                {%- set sample = (source.meta or {}).get('statistics_target') -%}
                {%- if columns and sample is not none -%}
                    {%- do statements.append('set default_statistics_target = ' ~ (sample | int)) -%}
                    {%- do statements.append(analyze) -%}
                    {%- do statements.append('reset default_statistics_target') -%}
                {%- elif columns -%}
                    {%- do statements.append(analyze) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
        {{ statements | join(';\n') }}
    {%- endif -%}
{%- endmacro %}

{#
    A post_hook of every model table (dbt_project.yml) that another model or a snapshot reads
    (the snapshot itself is read by none): when this build created the table, or replaced it
    whole (a table model, the first build or a --full-refresh of an incremental one), its
    planner statistics are gathered before the models that read it are planned. Without them
    those plans depended on whether autovacuum, which analyzes a new table up to a minute or
    more after its commit, had come by yet: at 1M users a full build ran engagement_by_program
    in 16.8 s with advocacy_programs and brand analyzed (by autovacuum, 13-14 s earlier) and
    tasks_completed not yet; with autovacuum off (none of them analyzed) the same model had not
    finished after 5 minutes; with this hook and autovacuum off the whole build took its usual
    time (bench/analysis.md, nineteenth pass).

    "Created or replaced in this transaction" is built_whole_here. An incremental build inserts
    and deletes rows and writes no pg_class row, so it gathers nothing: a few changed rows
    leave the statistics as they were (autovacuum's thresholds decide, as before). A table no
    model reads (the analysis models the report and exports read) is left to autovacuum.
    Elsewhere it renders nothing, and dbt runs no hook.
#}
{% macro analyze_when_built_whole() -%}
    {%- if execute and target.type == 'postgres' and config.get('materialized') in ('table', 'incremental')
        and is_read_by_a_build(model.unique_id) -%}
        do $analyze$
        begin
            if {{ built_whole_here() }} then
                execute {{ text_literal('analyze ' ~ this) }};
            end if;
        end
        $analyze$
    {%- endif -%}
{%- endmacro %}

{#
    Whether this transaction created `this` or replaced it whole (a condition, Postgres): it
    wrote the table's pg_class row (a CREATE TABLE, or the rename of the rebuilt table into
    place); an incremental build writes rows only.
#}
{% macro built_whole_here() -%}
    (select xmin = pg_current_xact_id()::xid from pg_class where oid = {{ text_literal(this | string) }}::regclass)
{%- endmacro %}

{# Whether a model or a snapshot of the project reads the node `unique_id`. #}
{% macro is_read_by_a_build(unique_id) -%}
    {%- for node in graph.nodes.values() if node.resource_type in ('model', 'snapshot') -%}
        {%- if unique_id in node.depends_on.nodes -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}
