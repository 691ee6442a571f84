"""Helpers for the Airflow tests: the `airflow` CLI in a subprocess, and table fingerprints.

The tests run with .venv-airflow's python (`make test-airflow`). Airflow runs only as a separate
process whose environment is built here: a throwaway AIRFLOW_HOME, this checkout's dags/, and the
PG*/DUEL_* variables of the database under test. Nothing of the developer's own setup is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from duel.settings import Settings

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SCHEMAS = ("raw", "dbt_staging", "dbt", "dbt_lookup", "dbt_analysis", "dbt_snapshots")
# Columns that name a batch, a time or a shard: they differ between one batch and N shard batches.
VOLATILE = {
    "shard",
    "seconds",
    "file_seq",
    "duel_version",
    "dbt_scd_id",
    "dbt_updated_at",
    "dbt_valid_from",
    "dbt_valid_to",
}
# Tables with rows per batch: compared by totals over their batches, which sharding must not change
# (grouped by the columns named, or, for None, by every column but batch_id and the totals).
BATCH_TOTALS = ("files_seen", "loaded", "repaired", "quarantined", "skipped", "unchanged")
PER_BATCH: dict[str, tuple[tuple[str, ...] | None, tuple[str, ...]]] = {
    "raw.batches": (("status",), BATCH_TOTALS),
    "dbt_staging.stg_batches": (("status",), BATCH_TOTALS),
    "dbt_analysis.ingest_batches": (("status",), BATCH_TOTALS),
    "dbt_analysis.data_quality": (("record_type", "field", "defect"), ("defect_count", "records")),
    "dbt_analysis.data_quality_summary": (
        (),
        ("records", "clean_records", "repaired_files", "quarantined_files"),
    ),
    # the records per batch and defect group (sums kept by difference)
    "dbt_staging.int_defect_sums": (None, ("contributions", "records")),
}


def airflow_env(base: dict[str, str], home: Path, **extra: str) -> dict[str, str]:
    """`base` (PATH, PG*, DUEL_*) plus an Airflow configured only by these variables."""
    return {
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "DO_NOT_TRACK": "1",
        **extra,
    }


def run_airflow(
    env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def explain(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    """The tail of a failed command's output, for an assertion message."""
    text = (result.stdout + result.stderr).splitlines()
    return f"exit {result.returncode}\n" + "\n".join(text[-lines:])


def task_tries(home: Path, dag_id: str = "duel_pipeline") -> list[tuple[Any, ...]]:
    """(run_id, task_id, map_index, state, try_number) of every task
    instance, from the metadata DB.
    """
    import sqlite3

    with sqlite3.connect(home / "airflow.db") as conn:
        return conn.execute(
            "select run_id, task_id, map_index, state, try_number from task_instance"
            " where dag_id = ? order by run_id, task_id, map_index",
            (dag_id,),
        ).fetchall()


def _key_columns(columns: list[str]) -> list[str]:
    """A table's `_key` columns if it has any, else every column that sharding does not change."""
    keys = [c for c in columns if c.endswith("_key")]
    stable = [c for c in columns if c not in VOLATILE and not c.endswith(("batch_id", "_at"))]
    return keys or stable


def fingerprints(settings: Settings) -> dict[str, Any]:
    """Per table: the multiset of its keys (row count included), or
    its batch totals if per batch.
    """
    prints: dict[str, Any] = {}
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        tables = conn.execute(
            "select table_schema, table_name, array_agg(column_name::text order by "
            "ordinal_position)"
            " from information_schema.columns where table_schema = any(%s) group by 1, 2 order by "
            "1, 2",
            (list(SCHEMAS),),
        ).fetchall()
        for schema, table, columns in tables:
            name = f'"{schema}"."{table}"'
            if f"{schema}.{table}" in PER_BATCH:
                named, sums = PER_BATCH[f"{schema}.{table}"]
                groups = (
                    named
                    if named is not None
                    else tuple(f'"{c}"' for c in columns if c != "batch_id" and c not in sums)
                )
                select = [*groups, *(f"sum({c})::bigint" for c in sums)]
                group_by = f" group by {', '.join(groups)}" if groups else ""
                rows = conn.execute(f"select {', '.join(select)} from {name}{group_by}").fetchall()
            else:
                keys = ", ".join(f'"{c}"::text' for c in _key_columns(columns))
                rows = conn.execute(f"select {keys} from {name}").fetchall()
            prints[f"{schema}.{table}"] = Counter(rows)
    return prints


def differences(left: dict[str, Counter], right: dict[str, Counter]) -> dict[str, str]:
    """Tables whose fingerprints differ, each with a short account (counts and an example)."""
    diff = {}
    for name in sorted(set(left) | set(right)):
        a, b = left.get(name), right.get(name)
        if a is None or b is None:
            diff[name] = "only in one database"
        elif a != b:
            only_a, only_b = a - b, b - a
            diff[name] = (
                f"{sum(a.values())} vs {sum(b.values())} rows; e.g. only left "
                f"{next(iter(only_a), None)}, only right {next(iter(only_b), None)}"
            )
    return diff


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
