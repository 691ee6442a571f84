"""dags/duel_pipeline.py imports cleanly in Airflow 3's DagBag and has the expected shape.

Run with .venv-airflow's python (`make test-airflow`). The DagBag is built in a child process
whose environment is only what the test sets, with an unreachable database and a missing input:
importing the DAG must need neither (no work at import time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_harness import REPO, airflow_env, explain

PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag

def as_list(callbacks):
    return callbacks if isinstance(callbacks, list) else [callbacks] if callbacks else []

bag = DagBag(dag_folder="dags")
dag = bag.dags.get("duel_pipeline")
tasks = dag.tasks if dag else []
print(json.dumps({
    "import_errors": bag.import_errors,
    "dag_ids": sorted(bag.dags),
    "downstream": {t.task_id: sorted(t.downstream_task_ids) for t in tasks},
    "retries": {t.task_id: [t.retries, t.retry_delay.total_seconds(),
                            float(t.retry_exponential_backoff), t.max_retry_delay.total_seconds()]
                for t in tasks},
    "callbacks": sorted({f"{kind}:{callback.__name__}"
                         for t in tasks for kind in ("failure", "retry")
                         for callback in as_list(getattr(t, f"on_{kind}_callback"))}),
    "schedule": str(dag.schedule) if dag else None,
    "catchup": dag.catchup if dag else None,
    "params": {k: [p.value, p.schema, p.description]
               for k in dag.params for p in [dag.params.get_param(k)]},
    "mapped": sorted(t.task_id for t in tasks if t.is_mapped) if dag else None,
}))
"""


def probe_dag(tmp_path: Path, **extra: str) -> dict[str, object]:
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PGHOST": "192.0.2.1",
        "PGPORT": "5432",
        "DUEL_HOME": str(tmp_path / "duel"),
        "DUEL_DATA": str(tmp_path / "absent.tgz"),
    }
    env = airflow_env(base, tmp_path / "airflow", **extra)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, explain(result)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dag(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The DAG as the DagBag sees it with the default settings."""
    return probe_dag(tmp_path_factory.mktemp("dagbag"))


def test_dag_imports_with_the_expected_tasks(dag: dict[str, object]) -> None:
    assert dag["import_errors"] == {}
    assert dag["dag_ids"] == ["duel_pipeline"]
    assert dag["downstream"] == {
        "prepare": ["ingest_shard"],
        "ingest_shard": ["check_shards"],
        "check_shards": ["dbt_build", "notify"],
        "dbt_build": ["export", "report"],
        "report": ["notify"],
        "export": ["notify"],
        "notify": [],
    }
    assert dag["mapped"] == ["ingest_shard"]


def test_dag_retries_with_backoff_and_announces_failures(dag: dict[str, object]) -> None:
    backoff = [3, 20.0, 2.0, 600.0]
    assert dag["retries"] == {
        "prepare": backoff,
        "ingest_shard": backoff,
        "check_shards": [0, 20.0, 2.0, 600.0],
        "dbt_build": backoff,
        "report": backoff,
        "export": backoff,
        "notify": backoff,
    }
    assert dag["callbacks"] == ["failure:announce_failure", "retry:announce_retry"]


def test_dag_schedule_comes_from_settings(dag: dict[str, object], tmp_path: Path) -> None:
    assert dag["schedule"] == "@daily"
    assert probe_dag(tmp_path, DUEL_SCHEDULE="0 6 * * 1")["schedule"] == "0 6 * * 1"


def test_dag_params_and_catchup(dag: dict[str, object]) -> None:
    assert dag["catchup"] is False
    assert dag["params"] == {
        "data": [
            "",
            {"type": "string"},
            "Input (.tar.gz, directory, s3://bucket/prefix/, ...); empty: DUEL_DATA",
        ],
        "shards": [
            4,
            {"type": "integer", "minimum": 1, "maximum": 256},
            "Ingest batches to fan out",
        ],
        "full": [
            False,
            {"type": "boolean"},
            "The dump holds every document: delete current documents absent from it",
        ],
        "allow_mass_delete": [
            False,
            {"type": "boolean"},
            "With full: allow deleting more than half of the current documents",
        ],
        "allow_new_layout": [
            False,
            {"type": "boolean"},
            "Load a dump whose files moved to another folder depth, or delivered in another "
            "form (files, then NDJSON), as new documents",
        ],
        "document_key": [
            "",
            {"type": "string"},
            "How documents are identified (e.g. @file,user_id); empty: DUEL_DOCUMENT_KEY",
        ],
        "dbt_target": [
            "",
            {"type": "string"},
            "The profiles.yml output dbt builds on: empty or local (Postgres), spark",
        ],
    }
