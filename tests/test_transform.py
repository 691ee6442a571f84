"""duel.transform and the `duel transform` / `duel docs` commands: dbt run as a subprocess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, run_cli

from duel.exceptions import StepFailed
from duel.settings import Settings
from duel.transform import build_models, dbt_env, generate_docs, target_dir

FAILING_TEST = "select 1 as problem\n"


@pytest.fixture
def failing_project(tmp_path: Path) -> Path:
    """A copy of the dbt project with one singular test that always fails."""
    project = tmp_path / "duel-dbt"
    shutil.copytree(REPO / "dbt" / "duel", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "tests" / "always_fails.sql").write_text(FAILING_TEST)
    return project


def test_transform_dbt_env_is_the_settings_connection(settings: Settings) -> None:
    env = dbt_env(settings)
    assert {k: v for k, v in env.items() if k.startswith("PG")} == settings.libpq_env()
    assert {k: v for k, v in env.items() if k.startswith("DBT_")} == {
        "DBT_PROFILES_DIR": str(REPO / "dbt" / "duel"),
        "DBT_PROJECT_DIR": str(REPO / "dbt" / "duel"),
        "DBT_TARGET_PATH": str(settings.home.resolve() / "dbt" / "target"),
        "DBT_LOG_PATH": str(settings.home.resolve() / "dbt" / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "DBT_PRINTER_WIDTH": "100",
    }


def test_transform_missing_project_is_a_config_error(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, "transform", DUEL_DBT_PROJECT_DIR=str(tmp_path / "nowhere"))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: no dbt project at {tmp_path / 'nowhere'} (set DUEL_DBT_PROJECT_DIR)\n"


@pytest.mark.slow
def test_transform_failed_test_raises_step_failed_naming_it(settings: Settings, failing_project: Path) -> None:
    with pytest.raises(StepFailed) as raised:
        build_models(settings.with_overrides(dbt_project_dir=failing_project), select=["always_fails"])
    assert raised.value.message == (
        "dbt build failed: 1 of 1 failed: always_fails; always_fails: fail (Got 1 result, configured to fail if != 0)")


@pytest.mark.slow
def test_transform_cli_failure_exits_1_with_one_line(settings: Settings, failing_project: Path) -> None:
    result = run_cli(settings, "transform", "--select", "always_fails", DUEL_DBT_PROJECT_DIR=str(failing_project))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("error: dbt build failed: 1 of 1 failed: always_fails; always_fails: fail "
                             "(Got 1 result, configured to fail if != 0)\n")


@pytest.mark.slow
def test_transform_cli_selects_and_reports_json(settings: Settings) -> None:
    result = run_cli(settings, "transform", "--select", "stg_batches", "--json")
    summary = json.loads(result.stdout)
    assert (result.returncode, {k: v for k, v in summary.items() if k != "seconds"}) == (
        0, {"models": 1, "tests": 2, "warnings": []})
    assert result.stderr.startswith("dbt build: 1 model, 2 tests built and passed in ")


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
        described = {name for name, column in node["columns"].items() if column["description"].strip()}
        built = set(catalog["nodes"][unique_id]["columns"])
        undocumented += [f"{unique_id}.{name}" for name in sorted(built - described)]
    assert undocumented == []
    assert len([n for n in manifest["nodes"].values() if n["resource_type"] == "model"]) == 24


def test_transform_commands_have_examples(settings: Settings) -> None:
    for command in ("transform", "docs"):
        result = run_cli(settings, command, "--help")
        assert result.returncode == 0 and "Example:" in result.stdout, command


@pytest.mark.slow  # real_built: the real dump loaded and dbt-built
def test_transform_source_freshness_passes_after_a_load(real_built: Settings) -> None:
    from duel.transform import check_freshness

    assert check_freshness(real_built) == {"raw.user_documents": "pass", "raw.current_versions": "pass"}


@pytest.mark.slow  # real_built: the real dump loaded and dbt-built
def test_transform_build_analyzes_the_raw_tables_first(real_built: Settings) -> None:
    """The ingest leaves planner statistics to the build: ANALYZE (not autovacuum's) has run on
    the raw tables, and the planner counts the 10,000 real documents exactly."""
    with psycopg.connect(**real_built.conninfo()) as conn:  # type: ignore[arg-type]
        analyzed = conn.execute(
            "select relname, last_analyze is not null from pg_stat_user_tables"
            " where schemaname = 'raw' and relname = any(%s) order by relname",
            (["batch_files", "current_versions", "user_documents"],),
        ).fetchall()
        rows = conn.execute("select reltuples::bigint from pg_class where oid = 'raw.user_documents'::regclass").fetchone()
    assert analyzed == [("batch_files", True), ("current_versions", True), ("user_documents", True)]
    assert rows == (10000,)
