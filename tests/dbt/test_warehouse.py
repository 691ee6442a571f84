"""The warehouse as pgAdmin shows it: keys as constraints, comments from the model docs, readable
index names, money with a scale, and a plain `dbt build` that prints no warning."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, query

from duel.exceptions import StepFailed
from duel.load import ingest
from duel.settings import Settings
from duel.transform import build_models, dbt_command, dbt_env, project_dir, target_dir

pytestmark = pytest.mark.slow

PROJECT = REPO / "dbt" / "duel"
KEYS = """
    select conrelid::regclass::text, contype, conname, confrelid::regclass::text,
           array_to_string(array(select attname from pg_attribute
                                 where attrelid = conrelid and attnum = any(conkey)), ','),
           condeferrable and condeferred
    from pg_constraint
    where connamespace::regnamespace::text in ('dbt', 'dbt_lookup', 'dbt_analysis')
      and contype in ('p', 'f')
    order by 1, 2 desc, 3
"""


def test_warehouse_tables_have_primary_and_foreign_keys(
    real_built: Settings,
) -> None:
    assert query(real_built, KEYS) == [
        ("dbt.advocacy_programs", "p", "advocacy_programs_pkey", "-", "program_key", False),
        (
            "dbt.advocacy_programs",
            "f",
            "advocacy_programs_brand_id_fkey",
            "dbt_lookup.brand",
            "brand_id",
            True,
        ),
        (
            "dbt.advocacy_programs",
            "f",
            "advocacy_programs_user_key_fkey",
            "dbt.base",
            "user_key",
            True,
        ),
        ("dbt.base", "p", "base_pkey", "-", "user_key", False),
        ("dbt.tasks_completed", "p", "tasks_completed_pkey", "-", "task_key", False),
        (
            "dbt.tasks_completed",
            "f",
            "tasks_completed_program_key_fkey",
            "dbt.advocacy_programs",
            "program_key",
            True,
        ),
        ("dbt.tasks_completed", "f", "tasks_completed_user_key_fkey", "dbt.base", "user_key", True),
        (
            "dbt_analysis.engagement_by_program",
            "p",
            "engagement_by_program_pkey",
            "-",
            "program_key",
            False,
        ),
        ("dbt_analysis.engagement_by_user", "p", "engagement_by_user_pkey", "-", "user_key", False),
        ("dbt_lookup.brand", "p", "brand_pkey", "-", "brand_id", False),
    ]


def test_warehouse_index_names_are_readable(real_built: Settings) -> None:
    names = query(
        real_built,
        "select tablename, indexname from pg_indexes"
        " where schemaname in ('dbt', 'dbt_lookup', 'dbt_analysis', 'dbt_snapshots') order by 1, 2",
    )
    assert names == [
        ("advocacy_programs", "advocacy_programs_batch_id_idx"),
        ("advocacy_programs", "advocacy_programs_brand_id_idx"),
        ("advocacy_programs", "advocacy_programs_pkey"),
        ("advocacy_programs", "advocacy_programs_user_key_idx"),
        ("base", "base_batch_id_idx"),
        ("base", "base_document_key_key"),
        ("base", "base_email_idx"),
        ("base", "base_pkey"),
        ("brand", "brand_brand_normalised_idx"),
        ("brand", "brand_pkey"),
        ("engagement_by_program", "engagement_by_program_pkey"),
        ("engagement_by_user", "engagement_by_user_engagement_idx"),
        ("engagement_by_user", "engagement_by_user_pkey"),
        ("engagement_by_user", "engagement_by_user_reach_idx"),
        ("engagement_by_user", "engagement_by_user_sales_idx"),
        ("tasks_completed", "tasks_completed_batch_id_idx"),
        ("tasks_completed", "tasks_completed_pkey"),
        ("tasks_completed", "tasks_completed_program_key_idx"),
        ("tasks_completed", "tasks_completed_user_key_idx"),
        ("users_snapshot", "users_snapshot_dbt_scd_id_idx"),
    ]


def table_scans(settings: Settings, model: str, table: str) -> set[tuple[str, str | None]]:
    """How the compiled model's query reads `table` as planned (EXPLAIN): each scan's node type
    and index."""
    (compiled,) = (target_dir(settings) / "compiled").rglob(f"{model}.sql")
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        ((plan,),) = conn.execute(f"explain (format json) {compiled.read_text()}")
    scans: set[tuple[str, str | None]] = set()
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node.get("Relation Name") == table or (
            node["Node Type"] == "Bitmap Index Scan"
            and str(node.get("Index Name", "")).startswith(f"{table}_")
        ):
            scans.add((node["Node Type"], node.get("Index Name")))
        nodes.extend(node.get("Plans", []))
    return scans


def test_warehouse_top_advocates_reads_engagement_by_user_by_its_indexes(
    real_built: Settings,
) -> None:
    """top_advocates finds each ranking's greatest values and the users at or above them by the
    measure's index, and the ranked users by key: no scan of every user (at 1M users its
    select took 2.07 s reading them all, 2.7 ms by the indexes; bench/analysis.md)."""
    scans = table_scans(real_built, "top_advocates", "engagement_by_user")
    assert {kind for kind, _ in scans} <= {
        "Index Only Scan",
        "Index Scan",
        "Bitmap Index Scan",
        "Bitmap Heap Scan",
    }
    assert {index for _, index in scans if index} == {
        "engagement_by_user_engagement_idx",
        "engagement_by_user_reach_idx",
        "engagement_by_user_sales_idx",
        "engagement_by_user_pkey",
    }


def test_warehouse_every_table_and_base_column_has_a_comment(real_built: Settings) -> None:
    uncommented = query(
        real_built,
        """
        select c.relnamespace::regnamespace::text || '.' || c.relname from pg_class c
        where c.relnamespace::regnamespace::text in ('dbt', 'dbt_lookup', 'dbt_analysis',
          'dbt_staging', 'dbt_snapshots')
          and c.relkind in ('r', 'v') and coalesce(obj_description(c.oid, 'pg_class'), '') = ''
        order by 1""",
    )
    assert uncommented == []
    columns = query(
        real_built,
        """
        select a.attname, col_description(a.attrelid, a.attnum) from pg_attribute a
        where a.attrelid = 'dbt.base'::regclass and a.attnum > 0 and not a.attisdropped order by
          a.attnum""",
    )
    assert [name for name, comment in columns if not comment] == []
    assert dict(columns)["user_key"].startswith(
        "Our key for a user document: the md5 of its `document_key`"
    )
    [(table_comment,)] = query(
        real_built, "select obj_description('dbt.base'::regclass, 'pg_class')"
    )
    assert table_comment.startswith("One row per current user document")


def test_warehouse_every_model_column_has_a_comment(real_built: Settings) -> None:
    """Every column of every relation a model or the snapshot builds carries its yml description:
    the tables whose contract is enforced (their columns not asked for, macros/docs.sql) and the
    views, the snapshot and the sums' tables (asked for once). The sums' `__contributions` side
    tables are the materialization's own, described as tables only (macros/differences.sql)."""
    uncommented = query(
        real_built,
        """
        select c.relnamespace::regnamespace::text || '.' || c.relname || '.' || a.attname
        from pg_attribute a join pg_class c on c.oid = a.attrelid
        where c.relnamespace::regnamespace::text in ('dbt', 'dbt_lookup', 'dbt_analysis',
          'dbt_staging', 'dbt_snapshots')
          and c.relkind in ('r', 'v') and right(c.relname, 15) <> '__contributions'
          and a.attnum > 0 and not a.attisdropped
          and coalesce(col_description(a.attrelid, a.attnum), '') = ''
        order by 1""",
    )
    assert uncommented == []
    # one column of each kind of relation, with its own text (a view, the snapshot, a sums table)
    described = query(
        real_built,
        """
        select c.relname || '.' || a.attname, left(col_description(a.attrelid, a.attnum), 40)
        from pg_attribute a join pg_class c on c.oid = a.attrelid
        where (c.oid, a.attname) in (('dbt_staging.stg_current_versions'::regclass,
          'document_key'), ('dbt_snapshots.users_snapshot'::regclass, 'dbt_valid_to'),
          ('dbt_staging.int_brand_sums'::regclass, 'brand_id'))
        order by 1""",
    )
    assert described == [
        ("int_brand_sums.brand_id", "The brand's id: the md5 of the normalise"),
        ("stg_current_versions.document_key", "The document's identity, as duel's inges"),
        ("users_snapshot.dbt_valid_to", "When a newer version replaced this one, "),
    ]


def test_warehouse_money_has_a_declared_scale(real_built: Settings) -> None:
    """No column of a money amount is an unconstrained numeric (which would print ~35 decimals)."""
    unscaled = query(
        real_built,
        """
        select table_schema || '.' || table_name || '.' || column_name from
          information_schema.columns
        where table_schema in ('dbt', 'dbt_lookup', 'dbt_analysis') and data_type = 'numeric'
          and numeric_scale is null order by 1""",
    )
    assert unscaled == []
    assert query(
        real_built,
        "select numeric_precision, numeric_scale from information_schema.columns"
        " where table_schema = 'dbt' and table_name = 'advocacy_programs'"
        " and column_name = 'total_sales_attributed'",
    ) == [(18, 2)]


def _plain_dbt_build(settings: Settings, logs: Path) -> subprocess.CompletedProcess[str]:
    """`dbt build` as a user runs it from dbt/duel (JSON log lines, so each says its level)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "DBT_TARGET_PATH": str(logs / "target"),
        "DBT_LOG_PATH": str(logs / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **settings.libpq_env(),
    }
    return subprocess.run(
        [sys.executable, "-m", "dbt.cli.main", "--log-format", "json", "build"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def test_warehouse_plain_dbt_build_prints_no_warning(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """A first build and an incremental one over 300 real files: every log line below warn level."""
    sample = tmp_path / "sample" / "mixed"
    sample.mkdir(parents=True)
    for path in sorted((real_dir / "mixed").glob("*.json"))[:300]:
        (sample / path.name).write_bytes(path.read_bytes())
    ingest(settings, sample.parent)
    for build in ("first", "incremental"):
        done = _plain_dbt_build(settings, tmp_path / build)
        events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        warnings = [e["info"]["msg"] for e in events if e["info"]["level"] in ("warn", "error")]
        assert (build, done.returncode, warnings) == (build, 0, []), done.stderr[-2000:]
        assert any("Completed successfully" in e["info"]["msg"] for e in events)


def ingest_sample(
    settings: Settings, real_dir: Path, tmp_path: Path, files: int = 50, start: int = 0
) -> None:
    """Ingest `files` files of the real dump (sorted by name) from the `start`-th, as a batch."""
    sample = tmp_path / ("sample" if start == 0 else f"sample-from-{start}") / "mixed"
    sample.mkdir(parents=True)
    for path in sorted((real_dir / "mixed").glob("*.json"))[start : start + files]:
        (sample / path.name).write_bytes(path.read_bytes())
    ingest(settings, sample.parent)


def dbt_run(settings: Settings, *args: str, command: str = "run") -> None:
    """`dbt run` (or `command`) as typed in a terminal (no duel around it), which must succeed."""
    done = subprocess.run(
        dbt_command(settings, command, *args),
        env=dbt_env(settings),
        cwd=project_dir(settings),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_warehouse_keys_survive_a_full_refresh_and_a_lone_parent_rebuild(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """--full-refresh swaps in new tables (names freed from the old ones); a parent rebuilt alone
    drops its children's foreign keys with the old table, and their next build adds them back."""
    ingest_sample(settings, real_dir, tmp_path)
    build_models(settings, unit_tests=False)
    build_models(settings, full_refresh=True, unit_tests=False)
    assert len(query(settings, KEYS)) == 10
    build_models(settings, full_refresh=True, select=["base"], unit_tests=False)
    assert [row[2] for row in query(settings, KEYS)] == [
        "advocacy_programs_pkey",
        "advocacy_programs_brand_id_fkey",
        "base_pkey",
        "tasks_completed_pkey",
        "tasks_completed_program_key_fkey",
        "engagement_by_program_pkey",
        "engagement_by_user_pkey",
        "brand_pkey",
    ]  # base's children lost their keys to it
    build_models(settings, select=["advocacy_programs", "tasks_completed"], unit_tests=False)
    assert len(query(settings, KEYS)) == 10


ENFORCED_TESTS = {  # test -> the table it would read
    "base__user_key__unique": "base",
    "tasks_completed__program_key__references_advocacy_programs": "tasks_completed",
}


def run_data_tests(settings: Settings, names: list[str]) -> dict[str, tuple[str, int | None]]:
    """`dbt test` of these tests: {name: (status, failures)} from run_results.json."""
    subprocess.run(
        dbt_command(settings, "test", "--select", *names),
        env=dbt_env(settings),
        cwd=project_dir(settings),
        capture_output=True,
        check=False,
        timeout=600,
    )
    results = json.loads((target_dir(settings) / "run_results.json").read_text())["results"]
    return {
        result["unique_id"].split(".")[2]: (result["status"], result["failures"])
        for result in results
        if result["unique_id"].startswith("test.")  # not on-run-start's hook
    }


def scanned_tables(settings: Settings, name: str) -> dict[str, int]:
    """How many times the compiled test's query scans each table (EXPLAIN ANALYZE's loops)."""
    (compiled,) = (target_dir(settings) / "compiled").rglob(f"{name}.sql")
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        # no parameters: the SQL's % is an operator, not a placeholder
        ((plan,),) = conn.execute(f"explain (analyze, format json) {compiled.read_text()}")
    loops: dict[str, int] = {}
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        table = node.get("Relation Name", "pg_")
        if not table.startswith("pg_"):  # the catalog's own tables are read, by design
            loops[table] = loops.get(table, 0) + node["Actual Loops"]
        nodes.extend(node.get("Plans", []))
    return loops


def test_warehouse_tests_a_key_enforces_read_no_table_until_the_key_is_gone(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """A `unique` test of a primary key and a `relationships` test along a foreign key are gated
    by the catalog (macros/keys.sql): while the key stands Postgres never scans their tables;
    once the primary key is dropped, or the foreign key's triggers disabled, they read them and
    find the repeated key and the orphaned tasks."""
    ingest_sample(settings, real_dir, tmp_path)
    build_models(settings, unit_tests=False)
    names = sorted(ENFORCED_TESTS)
    assert run_data_tests(settings, names) == dict.fromkeys(names, ("pass", 0))
    for name, table in ENFORCED_TESTS.items():
        loops = scanned_tables(settings, name)
        assert table in loops and set(loops.values()) == {0}, (name, loops)

    ((program, orphans),) = query(
        settings,
        "select program_key, count(*) from dbt.tasks_completed"
        " group by 1 order by 2 desc, 1 limit 1",
    )
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        conn.execute("alter table dbt.base drop constraint base_pkey cascade")
        conn.execute("drop index dbt.base_document_key_key")  # the copy shares its document
        conn.execute("insert into dbt.base select * from dbt.base order by user_key limit 1")
        # the foreign key stays, validated, but checks nothing with its triggers disabled
        conn.execute("alter table dbt.advocacy_programs disable trigger all")
        conn.execute("alter table dbt.tasks_completed disable trigger all")
        conn.execute("delete from dbt.advocacy_programs where program_key = %s", (program,))
    assert run_data_tests(settings, names) == {
        "base__user_key__unique": ("fail", 1),
        "tasks_completed__program_key__references_advocacy_programs": ("fail", orphans),
    }
    assert all(scanned_tables(settings, name)[table] >= 1 for name, table in ENFORCED_TESTS.items())


# the type names the yml declares, as Postgres's format_type prints them (spaces removed)
PRINTED_TYPES = {"timestamptz": "timestampwithtimezone"}


def test_warehouse_tables_are_their_contracts(real_built: Settings) -> None:
    """Every table with an enforced contract (created by CREATE TABLE AS, macros/tables.sql) has
    the declared columns in the declared order, of the declared types, NOT NULL exactly where
    declared, and text in the database's default collation."""
    manifest = json.loads((target_dir(real_built) / "manifest.json").read_text())
    contracts = {
        (node["schema"], node["alias"]): node["columns"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"].get("contract", {}).get("enforced")
        and node["config"]["materialized"] in ("table", "incremental")
    }
    assert len(contracts) == 16
    for (schema, table), columns in sorted(contracts.items()):
        declared = [
            (
                name,
                PRINTED_TYPES.get(column["data_type"], column["data_type"].replace(" ", "")),
                any(c["type"] in ("not_null", "primary_key") for c in column["constraints"]),
                None,
            )
            for name, column in columns.items()
        ]
        built = query(
            real_built,
            """
            select a.attname, replace(format_type(a.atttypid, a.atttypmod), ' ', ''),
              a.attnotnull, nullif(co.collname, 'default')
            from pg_attribute a left join pg_collation co on co.oid = a.attcollation
            join pg_class c on c.oid = a.attrelid
            where c.relnamespace = %s::regnamespace and c.relname = %s and a.attnum > 0
              and not a.attisdropped
            order by a.attnum""",
            (schema, table),
        )
        assert (schema, table, built) == (schema, table, declared)


def _reads_documents_with_a_lookup(settings: Settings) -> bool:
    [(definition,)] = query(
        settings, "select pg_get_viewdef('dbt_staging.int_current_documents'::regclass)"
    )
    return "LIMIT 1" in definition


def test_warehouse_full_builds_join_documents_and_incremental_ones_look_them_up(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """The views the core models read are rebuilt for the build that reads them: a first build
    and --full-refresh join every current document (a plan Postgres runs in parallel), an
    incremental build looks each changed one up by key (macros/incremental.sql,
    builds_core_whole). The rows are the same either way (the incremental-equals-full tests)."""
    ingest_sample(settings, real_dir, tmp_path, files=20)
    scope = ["int_current_documents", "int_users", "int_programs", "int_tasks"]
    build_models(settings, unit_tests=False)
    first = _reads_documents_with_a_lookup(settings)
    build_models(settings, select=scope, unit_tests=False)
    incremental = _reads_documents_with_a_lookup(settings)
    build_models(settings, full_refresh=True, select=scope, unit_tests=False)
    full = _reads_documents_with_a_lookup(settings)
    assert (first, incremental, full) == (False, True, False)


def test_warehouse_full_build_estimates_every_current_document(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """In the form a full build reads, the current documents are estimated at about half of
    them or more, not at one row: matched on both keys, the planner multiplied the two keys'
    selectivities into one row whatever the size, and ran base's per-row work (extraction,
    defect classes) in one process above the parallel join (int_current_documents.sql)."""
    ingest_sample(settings, real_dir, tmp_path, files=20)
    build_models(settings, unit_tests=False)
    [(plan,)] = query(
        settings, "explain (format json) select * from dbt_staging.int_current_documents"
    )
    [(documents,)] = query(settings, "select count(*) from dbt.base")
    assert (documents, plan[0]["Plan"]["Plan Rows"] >= documents / 2) == (20, True)


WATERMARKED = {  # compiled model -> what its comparisons of batch numbers compare with
    # batch_watermark(literal=false) but for the ledger's quarantined deliveries: see the macro
    "core/base.sql": ["1", "(select", "(select"],
    "core/advocacy_programs.sql": ["1"],
    "core/tasks_completed.sql": ["1"],
    "lookup/brand.sql": ["1"],
}


def test_warehouse_incremental_builds_compare_batches_with_a_literal_on_fresh_statistics(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """A `dbt run` from a terminal right after an ingest analyzes the raw tables first
    (on-run-start), and the incremental models compare batch numbers with their watermark as a
    number (macros/incremental.sql, batch_watermark): the planner sees how few ledger rows lie
    beyond it, where a subquery left it to guess a third of the ledger and scan all of it. base
    keeps the subquery but for its filter of the ledger (see the macro)."""
    ingest_sample(settings, real_dir, tmp_path, files=20)
    build_models(settings, unit_tests=False)
    ingest_sample(settings, real_dir, tmp_path, files=10, start=20)
    [(before,)] = query(settings, "select clock_timestamp()")
    dbt_run(settings, "--select", "base", "advocacy_programs", "tasks_completed", "brand")
    assert query(
        settings,
        "select relname from pg_stat_user_tables"
        " where schemaname = 'raw' and last_analyze >= %s order by 1",
        (before,),
    ) == [
        ("batch_files",),
        ("batches",),
        ("current_versions",),
        ("quarantine",),
        ("replaced_versions",),
        ("user_documents",),
    ]
    compiled = target_dir(settings) / "compiled" / "duel" / "models"
    found = {
        name: re.findall(r"batch_id > (\S+)", (compiled / name).read_text()) for name in WATERMARKED
    }
    assert found == WATERMARKED
    # and base reads the documents' latest deliveries from one object computed once (an
    # InitPlan), not through a join the planner could rescan for every rebuilt document
    base = (compiled / "core" / "base.sql").read_text()
    assert (base.count("latest_batches as materialized"), base.count("from latest_batches)")) == (
        1,
        2,
    )
    assert query(settings, "select count(*) from dbt.base") == [(30,)]


ANALYZED = """
    select schemaname || '.' || relname, last_analyze
    from pg_stat_user_tables
    where schemaname in ('dbt', 'dbt_lookup', 'dbt_analysis', 'dbt_snapshots')
    order by 1
"""


def test_warehouse_tables_built_whole_are_analyzed_before_the_models_that_read_them(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """Every table a build creates or replaces whole and another model reads gets its planner
    statistics in the build (macros/incremental.sql, analyze_when_built_whole), not when
    autovacuum comes by (which sets last_autoanalyze, not last_analyze); an incremental build,
    which only adds and removes rows, leaves its tables' statistics as they were; the tables
    only the report, the exports and the tests read are left to autovacuum."""
    ingest_sample(settings, real_dir, tmp_path, files=20)
    build_models(settings, unit_tests=False)
    first = dict(query(settings, ANALYZED))
    ingest_sample(settings, real_dir, tmp_path, files=10, start=20)
    build_models(settings, unit_tests=False)
    second = dict(query(settings, ANALYZED))
    incremental = [
        "dbt.advocacy_programs",
        "dbt.base",
        "dbt.tasks_completed",
        "dbt_analysis.engagement_by_program",
        "dbt_analysis.engagement_by_user",
        "dbt_lookup.brand",
    ]
    assert len(first) == len(second) == 17
    assert sorted(name for name, analyzed in first.items() if analyzed is not None) == sorted(
        [*incremental, "dbt_analysis.sales_outliers"]
    )
    # sales_outliers, a table model, is a new table each build: its statistics are this build's
    assert [name for name in incremental if second[name] == first[name]] == incremental
    assert second["dbt_analysis.sales_outliers"] > first["dbt_analysis.sales_outliers"]
    assert [name for name, analyzed in second.items() if analyzed is not None] == sorted(
        [*incremental, "dbt_analysis.sales_outliers"]
    )


def test_warehouse_analyzes_the_ledger_on_a_smaller_sample_and_no_json_column(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """on-run-start's ANALYZE reads the ledger (raw.batch_files) with its source's
    `meta.statistics_target` (30: a histogram of 31 bounds where the default gives 101) and
    gathers no statistics on a JSON column (the documents), which no plan here uses and which
    cost the most to gather (macros/incremental.sql, analyze_sources)."""
    ingest_sample(settings, real_dir, tmp_path, files=120)
    with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("alter table raw.user_documents set (autovacuum_enabled = false)")
        conn.execute("alter table raw.batch_files set (autovacuum_enabled = false)")
        conn.execute(
            "delete from pg_statistic where starelid in"
            " ('raw.user_documents'::regclass, 'raw.batch_files'::regclass)"
        )
    dbt_run(settings, "--select", "stg_batches")
    bounds = (
        "select tablename, attname, cardinality(histogram_bounds::text::text[]) from pg_stats"
        " where schemaname = 'raw' and (tablename, attname) in"
        " (('batch_files', 'file_seq'), ('current_versions', 'document_key'))"
        " order by 1"
    )
    assert query(settings, bounds) == [
        ("batch_files", "file_seq", 31),
        ("current_versions", "document_key", 101),
    ]
    gathered = (
        "select attname from pg_stats where schemaname = 'raw' and tablename = 'user_documents'"
        " and attname in ('document', 'repair', 'document_key') order by 1"
    )
    assert query(settings, gathered) == [("document_key",)]


def test_warehouse_base_joins_the_latest_deliveries_when_their_object_would_be_too_large(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """base's incremental build looks the rebuilt documents' latest deliveries up in one jsonb
    object when it fits (var base_latest_deliveries_max_bytes; the test above sees the object,
    tests/dbt/test_dumps_over_time.py its staleness) and joins them otherwise; the join too
    gives the rows of a full refresh, a document whose new delivery was quarantined marked
    stale."""
    ingest_sample(settings, real_dir, tmp_path, files=20)
    build_models(settings, unit_tests=False)
    [(stale,)] = query(settings, "select source_file from dbt.base order by document_key limit 1")
    ingest_sample(settings, real_dir, tmp_path, files=10, start=20)
    broken = tmp_path / "broken" / "mixed"
    broken.mkdir(parents=True)
    # quarantined: the document's current version goes stale
    (broken / Path(stale).name).write_bytes(b'{"user_id": ')
    ingest(settings, broken.parent)
    dbt_run(settings, "--select", "base", "--vars", "{base_latest_deliveries_max_bytes: 0}")
    compiled = target_dir(settings) / "compiled" / "duel" / "models" / "core" / "base.sql"
    assert "latest_batches" not in compiled.read_text()
    rows = "select * from dbt.base order by document_key"
    joined = query(settings, rows)
    flagged = "select source_file, newer_quarantined_batch_id from dbt.base where not is_clean"
    assert (stale, 3) in query(settings, flagged)
    dbt_run(settings, "--select", "base", "--full-refresh")
    assert "latest_batches" not in compiled.read_text()
    assert (len(joined), joined) == (30, query(settings, rows))


def test_warehouse_base_mends_a_stale_document_delivered_intact(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """base's incremental build reads the new deliveries of the documents that may be stale
    (delivered quarantined since the last build, or stale then) and no other: a stale document
    delivered intact again is mended, one changed meanwhile is never marked, and the rows are
    those of a full refresh."""
    ingest_sample(settings, real_dir, tmp_path, files=20)
    build_models(settings, unit_tests=False)
    [(stale,), (changed,)] = query(
        settings, "select source_file from dbt.base order by document_key limit 2"
    )
    flagged = (
        "select source_file, newer_quarantined_batch_id from dbt.base"
        " where has_newer_quarantined_delivery order by 1"
    )
    original = (real_dir / stale).read_bytes()

    def deliver(name: str, files: dict[str, bytes]) -> None:
        folder = tmp_path / name / "mixed"
        folder.mkdir(parents=True)
        for file, data in files.items():
            (folder / Path(file).name).write_bytes(data)
        ingest(settings, folder.parent)
        dbt_run(settings, "--select", "base")

    deliver("broken", {stale: b'{"user_id": '})  # batch 2, quarantined: stale
    assert query(settings, flagged) == [(stale, 2)]
    # batch 3: another document changed (a member added; its bytes with a newline more would be
    # the same content, its current version delivered again)
    deliver("other", {changed: b'{"added": 1, ' + (real_dir / changed).read_bytes()[1:]})
    assert query(settings, flagged) == [(stale, 2)]  # nothing new for the stale one: still so
    deliver("intact", {stale: original})  # batch 4, the current version's bytes: mended
    assert query(settings, flagged) == []
    rows = "select * from dbt.base order by document_key"
    incremental = query(settings, rows)
    assert query(
        settings, "select count(*), count(*) filter (where batch_id = 3) from dbt.base"
    ) == [(20, 1)]
    dbt_run(settings, "--select", "base", "--full-refresh")
    assert incremental == query(settings, rows)


# scans_whole_when_built_whole's settings, as dbt logs the hook (its whitespace aside)
WHOLE_SCANS = re.compile(
    r"set local enable_indexscan = off;\s+set local enable_bitmapscan = off;\s+"
    r"set local enable_nestloop = off"
)


def test_warehouse_full_builds_scan_and_join_where_incremental_ones_look_up_keys(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """Built whole (first build, --full-refresh), brand joins every delivered version with its
    brands, and base and engagement_by_user run without index scans or nested loops
    (macros/incremental.sql, scans_whole_when_built_whole); built incrementally, brand looks up
    the new versions by key (offset 0) and the two models' plans are the planner's own."""
    brand = target_dir(settings) / "compiled" / "duel" / "models" / "lookup" / "brand.sql"
    builds = iter(range(3))

    def build(*flags: str) -> tuple[list[str], int]:
        # each build logs to a directory of its own: dbt rotates its log at 10 MB, and the log
        # a worker's earlier tests left could rotate in the middle of a build
        logs = tmp_path / f"logs-{next(builds)}"
        selected = ("+brand", "+engagement_by_user")
        dbt_run(settings, "--select", *selected, "--log-path", str(logs), *flags)
        logged = (logs / "dbt.log").read_text(encoding="utf-8")
        hooks = len(WHOLE_SCANS.findall(logged))
        return re.findall(r"offset 0\n", brand.read_text()), hooks

    ingest_sample(settings, real_dir, tmp_path, files=20)
    first = build()
    ingest_sample(settings, real_dir, tmp_path, files=10, start=20)
    assert (first, build(), build("--full-refresh")) == (
        ([], 2),
        (["offset 0\n"], 0),
        ([], 2),
    )
    assert query(settings, "select count(*) from dbt_analysis.engagement_by_user") == [(30,)]


# the snapshot's staging query (macros/snapshot_staging.sql) as dbt logs it: its source is
# filtered to the keys of base's rows written since the snapshot was
CHANGED_KEYS_ONLY = re.compile(
    r'create temporary table "users_snapshot__dbt_tmp\d*"[^;]*?in_scope as \([^;]*?'
    r'select document_key, false as gone from "[^"]+"\."dbt"\."base"\s+'
    r'where user_key in \(select user_key from "users_snapshot__changed_users"\)'
)


def test_warehouse_snapshot_reads_only_the_users_base_wrote_since_it(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """users_snapshot's builds after the first read, as its changes, only the users whose rows
    base wrote since the snapshot's last build (listed in dbt_changes.changed_users:
    macros/user_changes.sql; with those whose pointers moved and those deleted:
    macros/snapshot_staging.sql, user_version_changes), not every user, and close versions
    through an index on dbt_scd_id (index_snapshot_versions)."""
    ingest_sample(settings, real_dir, tmp_path, files=20)
    dbt_run(settings, "--select", "+base")
    dbt_run(settings, "--log-path", str(tmp_path / "logs-1"), command="snapshot")
    ingest_sample(settings, real_dir, tmp_path, files=10, start=20)
    dbt_run(settings, "--select", "base")
    dbt_run(settings, "--log-path", str(tmp_path / "logs-2"), command="snapshot")
    found = [
        len(CHANGED_KEYS_ONLY.findall((tmp_path / logs / "dbt.log").read_text(encoding="utf-8")))
        for logs in ("logs-1", "logs-2")
    ]
    assert found == [0, 1]  # the first build creates the snapshot from every row
    assert query(
        settings,
        "select count(*), count(dbt_valid_to) from dbt_snapshots.users_snapshot",
    ) == [(30, 0)]
    assert query(
        settings,
        "select indexname from pg_indexes where schemaname = 'dbt_snapshots'",
    ) == [("users_snapshot_dbt_scd_id_idx",)]


PROBE_YML = """
version: 2
models:
  - name: probe
    description: One row, to try a contract's constraints.
    config:
      contract:
        enforced: true
    {model_constraints}
    columns:
      - name: id
        data_type: integer
        constraints:
          - type: not_null
          {column_constraint}
"""


@pytest.mark.parametrize(
    ("model_constraints", "column_constraint", "error"),
    [
        ("", "", None),
        ("", "- type: check\n            expression: id > 0", "column id: a 'check' constraint"),
        (
            "constraints: [{type: check, expression: id > 0, columns: [id]}]",
            "",
            "a model-level 'check' constraint",
        ),
    ],
)
def test_warehouse_contract_constraints_other_than_keys_and_not_null_are_refused(
    settings: Settings,
    tmp_path: Path,
    model_constraints: str,
    column_constraint: str,
    error: str | None,
) -> None:
    """A table created by CREATE TABLE AS (macros/tables.sql) gets its NOT NULLs and, by the
    post-hook, its keys; any other contract constraint would be left out silently, so the
    build refuses it, and the one-line error says which and why."""
    project = tmp_path / "duel-dbt"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "lookup" / "probe.sql").write_text("select 1 as id\n")
    (project / "models" / "lookup" / "probe.yml").write_text(
        PROBE_YML.format(model_constraints=model_constraints, column_constraint=column_constraint)
    )
    probe = settings.with_overrides(dbt_project_dir=project)
    if error is None:
        build_models(probe, select=["probe"], unit_tests=False)
        assert query(
            settings,
            "select attnotnull from pg_attribute"
            " where attrelid = 'dbt_lookup.probe'::regclass and attname = 'id'",
        ) == [(True,)]
        return
    with pytest.raises(StepFailed) as failed:
        build_models(probe, select=["probe"], unit_tests=False)
    assert str(failed.value) == (
        "dbt build failed: 1 of 1 failed: probe; probe: error (Compilation Error in model probe"
        f" (models/lookup/probe.sql): {error} is not supported (macros/tables.sql))"
    )
    assert query(settings, "select to_regclass('dbt_lookup.probe') is null") == [(True,)]
