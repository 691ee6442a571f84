"""The pipeline has one definition: `duel run` and the DAG's tasks call the same stage functions."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

from duel import pipeline

DAG = REPO / "dags" / "duel_pipeline.py"
# what a DAG task may call into: the stages, the shards that fan the ingest stage out, notifications
ALLOWED = {"duel.pipeline", "duel.shards", "duel.load", "duel.notify"}


def task_imports(path: Path) -> dict[str, set[str]]:
    """Each @task function of the DAG file, with the duel modules it imports from."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    tasks: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
                (isinstance(d, ast.Name) and d.id == "task") or (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "task")
                for d in node.decorator_list):
            tasks[node.name] = {n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.module}
    return tasks


def test_pipeline_dag_tasks_call_only_stage_functions() -> None:
    tasks = task_imports(DAG)
    assert sorted(tasks) == ["check_shards", "dbt_build", "export", "ingest_shard", "notify", "prepare", "report"]
    assert {name: modules - ALLOWED for name, modules in tasks.items()} == dict.fromkeys(tasks, set())
    assert {name for name, modules in tasks.items() if "duel.pipeline" in modules} == {
        "prepare", "dbt_build", "report", "export"}


def test_pipeline_run_uses_the_stage_functions_in_order() -> None:
    source = ast.parse(Path(pipeline.__file__).read_text(encoding="utf-8"))
    run = next(n for n in ast.walk(source) if isinstance(n, ast.FunctionDef) and n.name == "_run_stages")
    calls = [n for n in ast.walk(run) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id.endswith("_stage")]
    called = [n.func.id for n in sorted(calls, key=lambda n: (n.lineno, n.col_offset))]  # type: ignore[attr-defined]
    assert called == ["database_stage", "ingest_stage", "transform_stage", "report_stage", "export_stage"]
    assert pipeline.PRODUCTION_UNIT_TESTS is False
