"""duel.transform and the `duel transform` / `duel docs` commands: dbt run as a subprocess, or
in a process started ahead of its build (Prestarted)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from contextlib import nullcontext
from pathlib import Path

import psycopg
import pytest
import yaml
from conftest import REPO, run_cli

from duel import changes
from duel.exceptions import ServerError, StepFailed
from duel.settings import Settings
from duel.transform import (
    DBT,
    PRESTARTED,
    UNUSED_BY_DBT,
    Prestarted,
    build_models,
    dbt_command,
    dbt_env,
    docs_server,
    generate_docs,
    prepare_target,
    project_dir,
    target_dir,
)

FAILING_TEST = "select 1 as problem\n"
# A model with a generic data test that fails, and a model the database refuses to build.
ONE_ROW = "select 1 as id\n"
FAILING_GENERIC_TEST = """
version: 2
models:
  - name: one_row
    data_tests:
      - invariants:
          name: one_row__invariants
          arguments:
            rows:
              one_row__id_is_two: "id = 2"
              one_row__id_is_known: "id is not null"
            totals:
              one_row__has_two_rows:
                expected: "2"
              one_row__sums_to_one:
                expression: "sum(id)"
                expected: "1"
"""
# A table of the duel.tests_written_since setting the build's connections had.
SETTING_SEEN = (
    "{{ config(materialized='table') }}\n"
    "select current_setting('duel.tests_written_since', true) as seen\n"
)
FAILING_MODEL = (
    "{{ config(materialized='table') }}\n"
    "select cast(9223372036854775807 as bigint) + 1 as too_big\n"
)
GENERIC_TESTS = (
    "unique",
    "not_null",
    "relationships",
    "accepted_values",
    "invariants",
    "unique_combination_of_columns",
)


@pytest.fixture
def failing_project(tmp_path: Path) -> Path:
    """A copy of the dbt project with one singular test that always fails."""
    project = tmp_path / "duel-dbt"
    shutil.copytree(REPO / "dbt" / "duel", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "tests" / "always_fails.sql").write_text(FAILING_TEST)
    (project / "models" / "one_row.sql").write_text(ONE_ROW)
    (project / "models" / "one_row.yml").write_text(FAILING_GENERIC_TEST)
    (project / "models" / "always_errors.sql").write_text(FAILING_MODEL)
    (project / "models" / "setting_seen.sql").write_text(SETTING_SEEN)
    return project


def data_tests(node: dict[str, object]) -> list[object]:
    """The data tests declared on a model, source table or column, and on its columns."""
    tests = list(node.get("data_tests") or [])  # type: ignore[call-overload]
    for child in [*(node.get("columns") or []), *(node.get("tables") or [])]:  # type: ignore[misc]
        tests += data_tests(child)
    return tests


def test_transform_dbt_env_is_the_settings_connection(settings: Settings) -> None:
    env = dbt_env(settings)
    assert {k: v for k, v in env.items() if k.startswith("PG")} == settings.libpq_env()
    assert {k: v for k, v in env.items() if k.startswith("DBT_")} == {
        "DBT_PROFILES_DIR": str(REPO / "dbt" / "duel"),
        "DBT_PROJECT_DIR": str(REPO / "dbt" / "duel"),
        "DBT_TARGET_PATH": str(
            settings.home.resolve()
            / "dbt"
            / "target"
            / f"{settings.pg_host}_{settings.pg_port}_{settings.pg_database}"
        ),
        "DBT_LOG_PATH": str(settings.home.resolve() / "dbt" / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "DBT_PRINTER_WIDTH": "100",
    }
    assert env["DUEL_HOME"] == str(settings.home.resolve())  # the spark target's warehouse


def test_transform_missing_project_is_a_config_error(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, "transform", DUEL_DBT_PROJECT_DIR=str(tmp_path / "nowhere"))
    assert (result.returncode, result.stdout) == (1, "")
    assert (
        result.stderr
        == f"error: no dbt project at {tmp_path / 'nowhere'} (set DUEL_DBT_PROJECT_DIR)\n"
    )


def _build_failure(settings: Settings, project: Path, model: str) -> str:
    """The one-line message of a build of `model` in the dbt project `project`, which must fail."""
    with pytest.raises(StepFailed) as raised:
        build_models(settings.with_overrides(dbt_project_dir=project), select=[model])
    return raised.value.message


@pytest.mark.slow
def test_transform_failed_test_raises_step_failed_naming_it(
    settings: Settings, failing_project: Path
) -> None:
    assert _build_failure(settings, failing_project, "always_fails") == (
        "dbt build failed: 1 of 1 failed: always_fails; always_fails: fail (Got 1 result, "
        "configured to fail if != 0)"
    )


@pytest.mark.slow
def test_transform_cli_failure_exits_1_with_one_line(
    settings: Settings, failing_project: Path
) -> None:
    result = run_cli(
        settings, "transform", "--select", "always_fails", DUEL_DBT_PROJECT_DIR=str(failing_project)
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "error: dbt build failed: 1 of 1 failed: always_fails; always_fails: fail "
        "(Got 1 result, configured to fail if != 0)\n"
    )


def test_transform_every_data_test_has_a_readable_name() -> None:
    """A failure names the test (`base__user_key__unique`), never a hash: every generic data test
    in every yml has an explicit `name:` of the form <model>__<what it checks>, unique; so has
    every check of an invariants test (a failure names the checks that failed)."""
    names, unnamed, checks = [], [], []
    project = REPO / "dbt" / "duel"
    for path in sorted([*project.glob("models/**/*.yml"), *project.glob("snapshots/**/*.yml")]):
        document = (
            yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
        )  # as dbt reads it
        for node in [
            *document.get("models", []),
            *document.get("sources", []),
            *document.get("snapshots", []),
        ]:
            for test in data_tests(node):
                [(kind, config)] = test.items() if isinstance(test, dict) else [(test, None)]
                name = (config or {}).get("name")
                if kind not in GENERIC_TESTS or not name:
                    unnamed.append(f"{path.name}: {node['name']}: {kind}")
                names.append(name)
                if kind == "invariants":
                    arguments = config["arguments"]
                    checks += [
                        (node["name"], check)
                        for check in [*arguments.get("rows", {}), *arguments.get("totals", {})]
                    ]
    assert unnamed == []
    assert len(names) == len(set(names)) and all("__" in name for name in names)
    assert len(names) > 40
    assert [
        check
        for model, check in checks
        if not re.fullmatch(rf"{model}__[a-z][a-z0-9_]*", check) or check in names
    ] == []
    assert len(checks) == len({check for _, check in checks}) == 59


@pytest.mark.slow
def test_transform_failed_generic_test_is_named_not_hashed(
    settings: Settings, failing_project: Path
) -> None:
    assert _build_failure(settings, failing_project, "one_row") == (
        "dbt build failed: 1 of 2 failed: one_row__invariants; one_row__invariants: fail "
        "(Got 2 results, configured to fail if != 0; one_row__has_two_rows: 1 against 2, "
        "one_row__id_is_two: 1 row)"
    )


# An incremental model (each build appends a row of id 2) whose invariants test has a row check
# (read only where written since the tested build, with the setting) and a total (always whole).
SCOPED_ROWS = "{{ config(materialized='incremental') }}\nselect 2 as id\n"
SCOPED_ROWS_TESTS = """
version: 2
models:
  - name: scoped_rows
    data_tests:
      - invariants:
          name: scoped_rows__invariants
          arguments:
            rows:
              scoped_rows__id_is_two: "id = 2"
            totals:
              scoped_rows__has_no_id_one:
                expression: "count(case when id = 1 then 1 end)"
                expected: "0"
"""


@pytest.mark.slow
def test_transform_invariants_rows_are_scoped_and_totals_whole(
    settings: Settings, failing_project: Path
) -> None:
    """A row written before the tested build (`tests_since`) is not read by the row checks: it
    was there when every test passed. The totals read every row, and a build without the
    setting reads every row for both. The failure names the checks that failed."""
    (failing_project / "models" / "scoped_rows.sql").write_text(SCOPED_ROWS)
    (failing_project / "models" / "scoped_rows.yml").write_text(SCOPED_ROWS_TESTS)
    project = settings.with_overrides(dbt_project_dir=failing_project)
    assert build_models(project, select=["scoped_rows"]).counts == {"models": 1, "tests": 1}
    with psycopg.connect(**project.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("insert into dbt.scoped_rows (id) values (1)")
    tested = changes.tested_through(project)[1]  # after the insert: the old row is not read
    messages = []
    for since in (tested, None):
        with pytest.raises(StepFailed) as raised:
            build_models(project, select=["scoped_rows"], tests_since=since)
        messages.append(raised.value.message)
    failed = "dbt build failed: 1 of 2 failed: scoped_rows__invariants; scoped_rows__invariants: "
    assert messages == [
        f"{failed}fail (Got 1 result, configured to fail if != 0; "
        "scoped_rows__has_no_id_one: 1 against 0)",
        f"{failed}fail (Got 2 results, configured to fail if != 0; "
        "scoped_rows__has_no_id_one: 1 against 0, scoped_rows__id_is_two: 1 row)",
    ]
    with psycopg.connect(**project.conninfo()) as conn:  # type: ignore[arg-type]
        assert conn.execute(
            "select id, count(*) from dbt.scoped_rows group by id order by id"
        ).fetchall() == [(1, 1), (2, 3)]


# An invariants test whose check name is not an identifier: it would be quoted into the SQL.
BADLY_NAMED_CHECK = yaml.safe_dump(
    {
        "version": 2,
        "models": [
            {
                "name": "one_row",
                "data_tests": [
                    {
                        "invariants": {
                            "name": "one_row__invariants",
                            "arguments": {"rows": {"one_row__id'; drop table x; --": "id = 1"}},
                        }
                    }
                ],
            }
        ],
    }
)


@pytest.mark.slow
def test_transform_invariants_refuse_a_check_name_that_is_not_an_identifier(
    settings: Settings, failing_project: Path
) -> None:
    """A check's name is written into the test's SQL as a literal: anything but a lower-case
    identifier is refused when dbt compiles, before any node runs, in one line naming it."""
    (failing_project / "models" / "one_row.yml").write_text(BADLY_NAMED_CHECK)
    assert _build_failure(settings, failing_project, "one_row") == (
        "dbt build failed: Compilation Error in test one_row__invariants (models/one_row.yml) "
        "invariants: the check name 'one_row__id'; drop table x; --' is not a lower-case "
        "identifier > in macro test_invariants (tests/generic/invariants.sql)"
    )


@pytest.mark.slow
def test_transform_kind_macro_refuses_a_column_not_named_as_a_field_json(
    settings: Settings, failing_project: Path
) -> None:
    """The kind macros read a field's kind and text from the columns its scalars step computed
    once per row (`<field>_kind`, `<field>_text`), named after its `<field>_json` column: given
    any other name they would read columns that do not exist, so dbt refuses it when it
    compiles, in one line naming the column."""
    (failing_project / "models" / "one_row.sql").write_text(
        "select {{ json_text('likes') }} as likes from (select 1) as one_row"
    )
    assert _build_failure(settings, failing_project, "one_row") == (
        "dbt build failed: Compilation Error in model one_row (models/one_row.sql) a field's JSON"
        " column is named <field>_json, not likes > in macro field_scalar (macros/cleaning.sql)"
    )


@pytest.mark.slow
def test_transform_failed_model_gives_the_database_error(
    settings: Settings, failing_project: Path
) -> None:
    assert _build_failure(settings, failing_project, "always_errors") == (
        "dbt build failed: 1 of 1 failed: always_errors; always_errors: error (Database Error in "
        "model "
        "always_errors (models/always_errors.sql): bigint out of range)"
    )


@pytest.mark.slow
def test_transform_cli_selects_and_reports_json(settings: Settings) -> None:
    result = run_cli(settings, "transform", "--select", "stg_batches", "--json")
    summary = json.loads(result.stdout)
    assert (result.returncode, {k: v for k, v in summary.items() if k != "seconds"}) == (
        0,
        {"models": 1, "tests": 2, "scoped": False, "full_refresh": False, "warnings": []},
    )
    assert result.stderr.startswith("dbt build: 1 model, 2 tests built and passed in ")


BUSY = (
    "another run holds the ingest lock (waited 1s): an ingest, or a build of the models; "
    "try again when it finishes, or raise DUEL_LOCK_TIMEOUT"
)


@pytest.mark.slow
def test_transform_a_build_and_an_ingest_exclude_each_other(
    settings: Settings, tmp_path: Path
) -> None:
    """A build waits for an ingest still writing, and says so after DUEL_LOCK_TIMEOUT without
    starting dbt; while dbt runs it holds ingests off: an ingest tried then waits, and loads
    once the build is done. The build says the newest batch it saw (read under the lock)."""
    from duel.exceptions import LockTimeout
    from duel.load import ingest

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.json").write_bytes(b'{"user_id": null, "n": 1}')
    quick = settings.with_overrides(lock_timeout_s=1.0)
    results = target_dir(settings) / "run_results.json"
    with psycopg.connect(**settings.conninfo()) as held:  # type: ignore[arg-type]
        held.execute("select pg_advisory_xact_lock(hashtext('duel.ingest'))")  # an ingest's
        with pytest.raises(LockTimeout) as raised:
            build_models(quick, select=["stg_batches"])
    assert (raised.value.message, results.exists()) == (BUSY, False)

    refused: list[str] = []

    def ingest_meanwhile(line: str) -> None:
        if not refused:  # at dbt's first line of output
            try:
                ingest(quick, data)
            except LockTimeout as error:
                refused.append(error.message)
            else:
                refused.append("loaded during the build")

    during = build_models(quick, select=["stg_batches"], on_line=ingest_meanwhile)
    assert (refused, during.batch_through, during.counts) == (
        [BUSY],
        0,
        {"models": 1, "tests": 2},
    )
    assert ingest(quick, data).loaded == 1
    assert build_models(quick, select=["stg_batches"]).batch_through == 1


@pytest.mark.slow
def test_transform_progress_counts_the_nodes_not_the_hook(settings: Settings) -> None:
    """Progress moves once per node of the build: on-run-start's hook ("1 of 1 OK hook") is
    not one."""
    steps: list[tuple[int, int]] = []
    build_models(
        settings,
        select=["stg_batches"],
        on_progress=lambda done, total: steps.append((done, total)),
    )
    assert sorted(steps) == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.slow
def test_transform_docs_describe_every_model_and_column(real_built: Settings) -> None:
    target = generate_docs(real_built)
    assert target == target_dir(real_built) and (target / "index.html").is_file()
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    undocumented = []
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] not in ("model", "snapshot"):
            continue
        if not node["description"].strip():
            undocumented.append(unique_id)
        described = {
            name for name, column in node["columns"].items() if column["description"].strip()
        }
        built = set(catalog["nodes"][unique_id]["columns"])
        undocumented += [f"{unique_id}.{name}" for name in sorted(built - described)]
    assert undocumented == []
    assert len([n for n in manifest["nodes"].values() if n["resource_type"] == "model"]) == 29


def test_transform_commands_have_examples(settings: Settings) -> None:
    for command in ("transform", "docs"):
        result = run_cli(settings, command, "--help")
        assert result.returncode == 0 and "Example:" in result.stdout, command


@pytest.mark.slow  # real_built: the real dump loaded and dbt-built
def test_transform_build_analyzes_the_raw_tables_first(real_built: Settings) -> None:
    """The ingest leaves planner statistics to the build (dbt's on-run-start, macros/
    incremental.sql analyze_sources): ANALYZE (not autovacuum's) has run on the raw tables, and
    the planner counts the 10,000 real documents exactly."""
    with psycopg.connect(**real_built.conninfo()) as conn:  # type: ignore[arg-type]
        analyzed = conn.execute(
            "select relname, last_analyze is not null from pg_stat_user_tables"
            " where schemaname = 'raw' and relname = any(%s) order by relname",
            (["batch_files", "current_versions", "user_documents"],),
        ).fetchall()
        rows = conn.execute(
            "select reltuples::bigint from pg_class where oid = 'raw.user_documents'::regclass"
        ).fetchone()
    assert analyzed == [("batch_files", True), ("current_versions", True), ("user_documents", True)]
    assert rows == (10000,)


@pytest.mark.slow
def test_transform_each_database_keeps_its_own_parse(settings: Settings, tmp_path: Path) -> None:
    """dbt parses the whole project again when the connection is not its last parse's: with a
    target directory per database, going back to a database after a build of another parses
    only what changed (and no build reads another database's run_results.json)."""
    home = settings.with_overrides(home=tmp_path / "home")
    first, second = (home.with_overrides(pg_database=name) for name in ("duel_a", "duel_b"))
    outputs = []
    for each in (first, second, first, second):
        done = subprocess.run(
            dbt_command(each, "parse"),
            env=dbt_env(each),
            cwd=project_dir(each),
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(done.stdout + done.stderr)
    top = tmp_path.resolve() / "home" / "dbt" / "target"
    port = settings.pg_port
    assert (target_dir(first), target_dir(second)) == (
        top / f"127.0.0.1_{port}_duel_a",
        top / f"127.0.0.1_{port}_duel_b",
    )
    assert (
        sorted(p.name for p in top.glob("*/partial_parse.msgpack")) == ["partial_parse.msgpack"] * 2
    )
    whole = "Unable to do partial parsing because saved manifest not found. Starting full parse."
    assert [(whole in out, "Unable to do partial parsing" in out) for out in outputs] == [
        (True, True),
        (True, True),
        (False, False),
        (False, False),
    ]
    # no runpy warning (a module run with -m that was imported first) in dbt's output
    assert not any("RuntimeWarning" in out for out in outputs)


@pytest.mark.slow
def test_transform_prestarted_build_is_the_build_with_its_settings(
    settings: Settings, failing_project: Path
) -> None:
    """A build in a process started ahead (`duel run`'s) runs what a new process would, with
    its arguments (a scoped build leaves the views out) and on connections with the setting
    that scopes the tests, given only when the build started."""
    project = settings.with_overrides(dbt_project_dir=failing_project)
    steps: list[tuple[int, int]] = []
    lines: list[str] = []
    manifest = target_dir(project) / "manifest.json"
    manifest.unlink(missing_ok=True)
    with Prestarted(project) as prestarted:
        result = build_models(
            project,
            select=["setting_seen", "stg_batches"],
            on_line=lines.append,
            on_progress=lambda done, total: steps.append((done, total)),
            tests_since=4242,
            prestarted=prestarted,
        )
    assert prestarted.process is not None and prestarted.process.returncode == 0
    # its last line, the exit code, is not dbt's output: that ends with dbt's own last line
    # (the model and the two on-run-start hooks: analyze_sources, create_user_changes)
    assert lines[-1].endswith("Done. PASS=3 WARN=0 ERROR=0 SKIP=0 NO-OP=0 TOTAL=3")
    assert not any("\x1e" in line for line in lines)
    # scoped: the view stg_batches is left out, with its two tests
    assert (result.counts, result.scoped) == ({"models": 1}, True)
    assert steps == [(1, 1)]
    with psycopg.connect(**project.conninfo()) as conn:  # type: ignore[arg-type]
        assert conn.execute("select seen from dbt.setting_seen").fetchall() == [("4242",)]
    # the manifest a build leaves in target/ (the build wrote it, not the parse)
    assert "model.duel.setting_seen" in json.loads(manifest.read_text())["nodes"]


@pytest.mark.slow
def test_transform_prestarted_failures_read_as_a_new_process_s(
    settings: Settings, failing_project: Path
) -> None:
    """A failed test, and a project that does not parse (the build parses it again and says
    why), give the same one line as a build in a new process."""
    project = settings.with_overrides(dbt_project_dir=failing_project)
    with Prestarted(project) as prestarted, pytest.raises(StepFailed) as raised:
        build_models(project, select=["always_fails"], prestarted=prestarted)
    assert raised.value.message == (
        "dbt build failed: 1 of 1 failed: always_fails; always_fails: fail (Got 1 result, "
        "configured to fail if != 0)"
    )
    (failing_project / "models" / "one_row.yml").write_text("models: [\n")
    messages = []
    with Prestarted(project) as prestarted, pytest.raises(StepFailed) as raised:
        build_models(project, select=["one_row"], prestarted=prestarted)
    messages.append(raised.value.message)
    with pytest.raises(StepFailed) as raised:
        build_models(project, select=["one_row"])
    messages.append(raised.value.message)
    assert messages[0] == messages[1]
    assert (
        messages[0].startswith("dbt build failed: Parsing Error") and "one_row.yml" in messages[0]
    )


# A model that records its connection and what a node before it on that connection left behind,
# then leaves a session setting and a temporary table itself (post-hooks: after its select).
CHAIN_LENGTH = 6
LEAVES_STATE = """{{{{ config(materialized='table', post_hook=[
    "set duel.left_behind = 'yes'",
    "create temporary table left_behind as select 1 as x",
]) }}}}
{depends}
select
    pg_backend_pid() as pid,
    (select backend_start from pg_stat_activity where pid = pg_backend_pid()) as started,
    coalesce(nullif(current_setting('duel.left_behind', true), ''), 'nothing') as setting_found,
    to_regclass('pg_temp.left_behind') is null as no_temporary_table,
    current_setting('duel.tests_written_since', true) as tests_since
"""


@pytest.mark.slow
@pytest.mark.parametrize("ahead", [False, True], ids=["new-process", "prestarted"])
def test_transform_keeps_connections_between_nodes_as_new_ones(
    settings: Settings, tmp_path: Path, ahead: bool
) -> None:
    """duel's dbt processes keep a thread's connection from one node to the next (dbt-postgres
    opens one per node), each time made as a new one: nothing a node left in its session (a
    setting, a temporary table) reaches the next, and the setting the connection was opened with
    (the tests' scope) stays. Six models one after another on four threads: some connection
    serves two of them."""
    project_path = tmp_path / "duel-dbt"
    shutil.copytree(
        REPO / "dbt" / "duel", project_path, ignore=shutil.ignore_patterns("target", "logs")
    )
    names = [f"chain_{n}" for n in range(1, CHAIN_LENGTH + 1)]
    for before, name in zip([None, *names], names, strict=False):
        depends = f"-- depends_on: {{{{ ref('{before}') }}}}" if before else ""
        (project_path / "models" / f"{name}.sql").write_text(LEAVES_STATE.format(depends=depends))
    project = settings.with_overrides(dbt_project_dir=project_path)
    with Prestarted(project) if ahead else nullcontext() as prestarted:
        result = build_models(project, select=names, tests_since=4242, prestarted=prestarted)
    assert result.counts == {"models": CHAIN_LENGTH}
    union = " union all ".join(
        f"select pid, started, setting_found, no_temporary_table, tests_since from dbt.{name}"
        for name in names
    )
    with psycopg.connect(**project.conninfo()) as conn:  # type: ignore[arg-type]
        rows = conn.execute(union).fetchall()
    assert [row[2:] for row in rows] == [("nothing", True, "4242")] * CHAIN_LENGTH
    connections = {row[:2] for row in rows}
    assert len(connections) <= 4 < CHAIN_LENGTH


@pytest.mark.slow
def test_transform_prestarted_process_is_stopped_when_not_used(settings: Settings) -> None:
    """Cancelled (nothing changed), or not able to serve the build asked (another target):
    the process ends, and a build of the other target runs in a new process."""
    with Prestarted(settings) as prestarted:
        assert prestarted.serves(settings, None) and not prestarted.serves(settings, "spark")
    assert prestarted.process is not None and prestarted.process.returncode is not None
    assert not prestarted.serves(settings, None)
    with Prestarted(settings, target="spark") as prestarted:
        result = build_models(settings, select=["stg_batches"], prestarted=prestarted)
        assert prestarted.process is not None and prestarted.process.returncode is not None
    assert result.counts == {"models": 1, "tests": 2}


@pytest.mark.slow
def test_transform_a_changed_snapshot_file_is_parsed_whole(
    settings: Settings, tmp_path: Path
) -> None:
    """A partial parse older than a snapshot's YAML is dropped before a build (dbt then parses
    the project whole, once): after users_snapshot.yml and the models changed (an upgrade of
    duel), dbt's partial parse kept the old snapshot beside the new one and every build failed
    ("dbt found two snapshots with the name users_snapshot"). A newer one is kept."""
    project = tmp_path / "duel-dbt"
    shutil.copytree(REPO / "dbt" / "duel", project, ignore=shutil.ignore_patterns("target", "logs"))
    copy = settings.with_overrides(dbt_project_dir=project)
    build_models(copy, select=["stg_batches"], unit_tests=False)
    state = target_dir(copy) / "partial_parse.msgpack"
    parsed = state.read_bytes()
    assert prepare_target(copy) == target_dir(copy) and state.read_bytes() == parsed  # kept
    snapshot = project / "snapshots" / "users_snapshot.yml"
    later = state.stat().st_mtime + 1
    os.utime(snapshot, (later, later))  # the snapshot file changed after that parse
    assert prepare_target(copy) == target_dir(copy) and not state.exists()
    built = build_models(copy, select=["stg_batches"], unit_tests=False)
    assert (built.counts, state.is_file()) == ({"models": 1, "tests": 2}, True)


def test_transform_docs_server_serves_the_docs_and_says_when_its_port_is_taken(
    tmp_path: Path,
) -> None:
    """The docs are served in duel's own process (Ctrl-C stops it without dbt's traceback, and
    no dbt process is left serving after a SIGTERM); a taken port is one line."""
    settings = Settings(home=tmp_path)
    target_dir(settings).mkdir(parents=True)
    (target_dir(settings) / "index.html").write_text("<html>lineage</html>")
    with docs_server(settings, 0) as server:
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html") as page:
                assert (page.status, page.read()) == (200, b"<html>lineage</html>")
            with pytest.raises(ServerError) as taken:
                docs_server(settings, port)
            assert taken.value.message == (
                f"cannot serve the docs on 127.0.0.1:{port} (Address already in use); "
                "give another port with --port"
            )
        finally:
            server.shutdown()
            thread.join()


def test_transform_dbt_processes_do_not_import_what_dbt_never_uses(
    settings: Settings, tmp_path: Path
) -> None:
    """duel's dbt processes leave out UNUSED_BY_DBT: with the notebooks extra installed,
    jsonschema imported rfc3987_syntax at dbt's every start (1.5 s of a 3.3 s import). Each
    module here stands in for one installed, and says so if it is imported; dbt's own command
    line (`--dbt`) and the prestarted process both run without it."""
    modules = tmp_path / "modules"
    modules.mkdir()
    imported = tmp_path / "imported"
    for name in UNUSED_BY_DBT:
        (modules / f"{name}.py").write_text(
            f"open({str(imported / name)!r}, 'w').close()\n"
            "def is_valid_syntax(term, value):\n    return True\n"
        )
    imported.mkdir()
    env = {**dbt_env(settings), "PYTHONPATH": str(modules)}
    probe = subprocess.run(
        [sys.executable, "-c", "import jsonschema"], env=env, capture_output=True, check=True
    )
    assert (probe.returncode, sorted(p.name for p in imported.iterdir())) == (0, ["rfc3987_syntax"])
    (imported / "rfc3987_syntax").unlink()
    entries = {
        "dbt": [sys.executable, "-m", "duel.transform", DBT, "--version"],
        # it parses (here: says dbt's version), then reads no build from stdin and ends
        "prestarted": [sys.executable, "-m", "duel.transform", PRESTARTED, '["--version"]'],
    }
    for entry, command in entries.items():
        run = subprocess.run(command, env=env, input="\n", capture_output=True, text=True)
        assert (entry, run.returncode, sorted(p.name for p in imported.iterdir())) == (entry, 0, [])
