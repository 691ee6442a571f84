"""The pipeline has one definition: `duel run` and the DAG's tasks call the same stage functions."""

from __future__ import annotations

import ast
import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, every_row, query

from duel import changes, cli, db, pipeline, transform
from duel.exceptions import ConfigError, Interrupted, StepFailed
from duel.settings import Settings
from duel.summary import render_run
from duel.transform import Prestarted

DAG = REPO / "dags" / "duel_pipeline.py"
# what a DAG task may call into: the pipeline's functions, and notifications
ALLOWED = {"duel.pipeline", "duel.notify"}


def task_imports(path: Path) -> dict[str, set[str]]:
    """Each @task function of the DAG file, with the duel modules it imports from."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    tasks: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            (isinstance(d, ast.Name) and d.id == "task")
            or (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "task")
            for d in node.decorator_list
        ):
            tasks[node.name] = {
                n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.module
            }
    return tasks


def test_pipeline_dag_tasks_call_only_stage_functions() -> None:
    tasks = task_imports(DAG)
    assert sorted(tasks) == [
        "check_shards",
        "dbt_build",
        "export",
        "ingest_shard",
        "notify",
        "prepare",
        "report",
    ]
    assert {name: modules - ALLOWED for name, modules in tasks.items()} == {
        name: set() for name in tasks
    }
    assert {name for name, modules in tasks.items() if "duel.pipeline" in modules} == {
        "prepare",
        "ingest_shard",
        "check_shards",
        "dbt_build",
        "report",
        "export",
    }


def test_pipeline_run_uses_the_stage_functions_in_order() -> None:
    source = ast.parse(Path(pipeline.__file__).read_text(encoding="utf-8"))
    functions = {n.name: n for n in ast.walk(source) if isinstance(n, ast.FunctionDef)}

    def stages(name: str) -> list[str]:
        """The stage functions `name` calls, in order, through the module's helpers."""
        calls = [
            n
            for n in ast.walk(functions[name])
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and (n.func.id.endswith("_stage") or n.func.id == "_report_and_export")
        ]
        ordered = sorted(calls, key=lambda n: (n.lineno, n.col_offset))
        return [
            stage
            for n in ordered
            for stage in (
                stages(n.func.id) if n.func.id == "_report_and_export" else [n.func.id]  # type: ignore[attr-defined]
            )
        ]

    assert stages("_run_stages") == [
        "database_stage",
        "ingest_stage",
        # nothing new: no build, the report and exports written again if they are not there
        "report_stage",
        "export_stage",
        # else the build, then the report and exports of it
        "transform_stage",
        "report_stage",
        "export_stage",
    ]
    assert (pipeline.PRODUCTION_UNIT_TESTS, pipeline.DEVELOPMENT_UNIT_TESTS) == (False, True)


def _dump(path: Path, names: range) -> Path:
    (path / "mixed").mkdir(parents=True)
    task = {
        "task_id": None,
        "platform": "tiktok",
        "post_url": None,
        "likes": 1,
        "comments": 2,
        "shares": 3,
        "reach": 10,
    }
    for n in names:
        program = {
            "program_id": None,
            "brand": "Acme",
            "tasks_completed": [task],
            "total_sales_attributed": n,
        }
        (path / "mixed" / f"user_{n}.json").write_text(
            json.dumps({"user_id": None, "name": f"User {n}", "advocacy_programs": [program]})
        )
    return path


def _outputs(settings: Settings) -> dict[str, bytes]:
    return {
        str(p.relative_to(settings.out_dir)): p.read_bytes()
        for p in sorted(settings.out_dir.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_pipeline_second_run_with_nothing_new_rebuilds_nothing(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each run's dbt process, started with the run (transform.Prestarted), and the builds it ran
    prestarted: list[Prestarted] = []
    built: list[Prestarted] = []
    make, start = Prestarted.__init__, Prestarted.start

    def making(self: Prestarted, *args: Any, **kwargs: Any) -> None:
        make(self, *args, **kwargs)
        prestarted.append(self)

    def starting(self: Prestarted, *args: Any, **kwargs: Any) -> Any:
        built.append(self)
        return start(self, *args, **kwargs)

    monkeypatch.setattr(Prestarted, "__init__", making)
    monkeypatch.setattr(Prestarted, "start", starting)
    data = _dump(tmp_path / "d", range(3))
    first = pipeline.run_pipeline(settings, data, notify=False)
    assert first.nothing_changed is False
    # the build ran in the process started before the ingest, which then exited as dbt does
    assert len(prestarted) == 1 and built == prestarted
    assert prestarted[0].process is not None and prestarted[0].process.returncode == 0
    tables = every_row(settings)
    assert len(tables) == 17  # dbt 3, dbt_lookup 1, dbt_analysis 12, dbt_snapshots 1
    outputs = _outputs(settings)
    second = pipeline.run_pipeline(settings, data, notify=False)
    assert (second.nothing_changed, second.ingest.unchanged, [s.name for s in second.steps]) == (
        True,
        3,
        ["database", "ingest", "transform", "report", "export"],
    )
    assert all(
        s.detail.startswith("skipped: nothing changed since the build of") for s in second.steps[2:]
    )
    # nothing to build: the second run's dbt process was stopped, not left waiting
    assert len(prestarted) == 2 and built == prestarted[:1]
    assert prestarted[1].process is not None
    assert prestarted[1].process.returncode == -signal.SIGTERM
    assert second.summary()["nothing_changed"] is True
    assert every_row(settings) == tables
    assert _outputs(settings) == outputs
    forced = pipeline.run_pipeline(settings, data, notify=False, force=True)
    assert forced.nothing_changed is False and forced.steps[2].detail.endswith("s")
    # the next run's data tests read only the rows written since the forced build's tests passed
    tested = changes.read_record(settings)
    assert tested is not None and changes.test_scope(settings) == tested.tested_through > 0
    changed = pipeline.run_pipeline(settings, _dump(tmp_path / "e", range(4)), notify=False)
    assert (changed.nothing_changed, changed.ingest.loaded) == (False, 1)
    assert query(settings, "select count(*) from dbt.base") == [(4,)]


@pytest.mark.slow
def test_pipeline_a_stale_document_delivered_intact_is_built_again(
    settings: Settings, tmp_path: Path
) -> None:
    """A dump whose files are all unchanged is not "nothing changed" when one of them is a
    document the last build found stale (a quarantined delivery since its version): the build
    clears the flag. The run after that has nothing to do."""
    data = _dump(tmp_path / "d", range(3))
    pipeline.run_pipeline(settings, data, notify=False)
    broken = _dump(tmp_path / "b", range(3))
    (broken / "mixed" / "user_1.json").write_text('{"user_id": null, "name": "Us')
    assert pipeline.run_pipeline(settings, broken, notify=False).ingest.quarantined == 1
    stale = "select document_key from dbt.base where has_newer_quarantined_delivery"
    assert query(settings, stale) == [("file:user_1.json",)]
    mended = pipeline.run_pipeline(settings, data, notify=False)
    assert (mended.nothing_changed, mended.ingest.unchanged) == (False, 3)
    assert query(settings, stale) == []
    again = pipeline.run_pipeline(settings, data, notify=False)
    assert (again.nothing_changed, again.ingest.unchanged) == (True, 3)


@pytest.mark.slow
def test_pipeline_a_dump_written_otherwise_is_nothing_changed(
    settings: Settings, tmp_path: Path
) -> None:
    """The same users written otherwise (indented, keys in reverse order, accents escaped):
    each is its current version delivered again, so nothing is built, no snapshot row opens,
    and every table and output stays as it was; the summary says they came in other bytes."""
    data = _dump(tmp_path / "d", range(3))
    first = pipeline.run_pipeline(settings, data, notify=False)
    assert (first.nothing_changed, first.ingest.loaded) == (False, 3)
    tables, outputs = every_row(settings), _outputs(settings)
    for path in (data / "mixed").glob("*.json"):
        user = json.loads(path.read_bytes())
        path.write_text(json.dumps(dict(reversed(user.items())), indent=4, ensure_ascii=True))
    again = pipeline.run_pipeline(settings, data, notify=False)
    assert (again.nothing_changed, again.ingest.loaded, again.ingest.unchanged) == (True, 0, 3)
    assert again.ingest.unchanged_reasons == {"same-content": 3}
    assert every_row(settings) == tables
    assert _outputs(settings) == outputs
    assert "  unchanged            3  (same-content 3)" in render_run(settings, again)
    # delivered a third time in those bytes: known by their hash (raw.content_aliases), the same
    third = pipeline.run_pipeline(settings, data, notify=False)
    assert (third.nothing_changed, third.ingest.unchanged_reasons) == (True, {"same-content": 3})
    assert query(settings, "select count(*) from raw.content_aliases") == [(3,)]
    assert every_row(settings) == tables
    assert _outputs(settings) == outputs


def test_pipeline_a_broken_file_delivered_again_is_nothing_changed(
    settings: Settings, tmp_path: Path
) -> None:
    """A daily dump that holds the same broken file every day: its second delivery repeats,
    byte for byte, a quarantine the build already counted, so nothing is built and every table
    and output stays as it was. A broken file with other bytes, or a document broken that the
    build saw intact, is built (it may make a version stale, and is counted where it was not)."""
    data = _dump(tmp_path / "d", range(3))
    broken = data / "mixed" / "user_1.json"
    broken.write_text('{"user_id": null, "name": "Us')
    first = pipeline.run_pipeline(settings, data, notify=False)
    assert (first.nothing_changed, first.ingest.loaded, first.ingest.quarantined) == (False, 2, 1)
    tables, outputs = every_row(settings), _outputs(settings)
    for _ in range(2):
        again = pipeline.run_pipeline(settings, data, notify=False)
        assert (again.nothing_changed, again.ingest.quarantined, again.ingest.unchanged) == (
            True,
            1,
            2,
        )
    assert every_row(settings) == tables
    assert _outputs(settings) == outputs
    assert (
        "still hold (duel run --force rebuilds them); its quarantined file repeats a delivery"
        " that build counted" in render_run(settings, again)
    )
    broken.write_text('{"user_id": null, "name": "Other')
    other = pipeline.run_pipeline(settings, data, notify=False)
    assert (other.nothing_changed, other.ingest.quarantined) == (False, 1)
    assert pipeline.run_pipeline(settings, data, notify=False).nothing_changed is True
    # the first bytes again: a repeat of a delivery, but not of the latest one the build saw
    broken.write_text('{"user_id": null, "name": "Us')
    back = pipeline.run_pipeline(settings, data, notify=False)
    assert (back.nothing_changed, back.ingest.quarantined) == (False, 1)
    (data / "mixed" / "user_2.json").write_text('{"user_id": 2, "name": "Th')
    newly = pipeline.run_pipeline(settings, data, notify=False)
    assert (newly.nothing_changed, newly.ingest.quarantined) == (False, 2)
    stale = "select document_key from dbt.base where has_newer_quarantined_delivery"
    assert query(settings, stale) == [("file:user_2.json",)]


@pytest.mark.slow
def test_pipeline_a_file_over_the_size_limit_delivered_again_is_nothing_changed(
    settings: Settings, tmp_path: Path
) -> None:
    """A file over the size limit is quarantined without its bytes being read, so it has no
    hash: its daily delivery repeats the one the build counted when its reason and size do
    (all the models see of it). Another size is another delivery, and is built."""
    limited = dataclasses.replace(settings, max_file_bytes=1000)
    data = _dump(tmp_path / "d", range(3))
    pipeline.run_pipeline(limited, data, notify=False)
    big = data / "mixed" / "user_1.json"
    big.write_bytes(b" " * 2000 + big.read_bytes())
    first = pipeline.run_pipeline(limited, data, notify=False)
    assert (first.nothing_changed, first.ingest.quarantine_reasons) == (False, {"too-large": 1})
    assert query(
        settings,
        "select document_key, content_sha256, reason, byte_size from raw.batch_files"
        " where status = 'quarantined'",
    ) == [("file:user_1.json", None, "too-large", big.stat().st_size)]
    stale = "select document_key from dbt.base where has_newer_quarantined_delivery"
    assert query(settings, stale) == [("file:user_1.json",)]
    tables, outputs = every_row(settings), _outputs(settings)
    again = pipeline.run_pipeline(limited, data, notify=False)
    assert (again.nothing_changed, again.ingest.quarantined, again.ingest.unchanged) == (True, 1, 2)
    assert every_row(settings) == tables
    assert _outputs(settings) == outputs
    big.write_bytes(b" " + big.read_bytes())
    grown = pipeline.run_pipeline(limited, data, notify=False)
    assert (grown.nothing_changed, grown.ingest.quarantined) == (False, 1)
    assert pipeline.run_pipeline(limited, data, notify=False).nothing_changed is True


@pytest.mark.slow
@pytest.mark.parametrize("earlier", ["another project", "no record"])
def test_pipeline_a_changed_dbt_project_rebuilds_every_row(
    settings: Settings, tmp_path: Path, earlier: str
) -> None:
    """Rows an incremental model wrote under other definitions (duel upgraded, a model or macro
    edited) are not rows the current ones would write: the first build after the dbt project
    changed, or of models a duel before raw.model_builds built, is a full refresh; the builds
    after it are incremental again."""
    data = _dump(tmp_path / "d", range(3))
    pipeline.run_pipeline(settings, data, notify=False)
    assert query(settings, "select full_refresh from raw.model_builds") == [(False,)]
    assert not transform.built_by_another_project(settings, changes.project_hash(settings))
    # the models as an earlier project left them: a row its definitions computed otherwise
    record = changes.read_record(settings)
    assert record is not None
    changes.record_path(settings).write_text(
        json.dumps(dataclasses.asdict(record) | {"project_hash": "an earlier project"})
    )
    with db.connect(settings, step="test") as conn:
        conn.execute(
            "update dbt.base set program_count = 99 where document_key = 'file:user_1.json'"
        )
        if earlier == "no record":
            conn.execute("delete from raw.model_builds")
        else:
            conn.execute("update raw.model_builds set project_hash = 'an earlier project'")
    assert transform.built_by_another_project(settings, changes.project_hash(settings))
    upgraded = pipeline.run_pipeline(settings, data, notify=False)
    assert (upgraded.nothing_changed, upgraded.ingest.unchanged) == (False, 3)
    assert upgraded.steps[2].detail.endswith("(full refresh: every model built from scratch)")
    assert query(settings, "select document_key, program_count from dbt.base order by 1") == [
        ("file:user_0.json", 1),
        ("file:user_1.json", 1),
        ("file:user_2.json", 1),
    ]
    assert query(
        settings, "select project_hash, full_refresh from raw.model_builds order by build_id"
    )[-1] == (changes.project_hash(settings), True)
    assert not transform.built_by_another_project(settings, changes.project_hash(settings))
    changed = pipeline.run_pipeline(settings, _dump(tmp_path / "e", range(4)), notify=False)
    assert "full refresh" not in changed.steps[2].detail


@pytest.mark.slow
def test_pipeline_nothing_changed_writes_again_the_report_another_database_overwrote(
    settings: Settings, pg_server: Settings, tmp_path: Path
) -> None:
    """Two databases (the demo and the real data) share `out/`: after a run on the other one, a
    run with nothing new here builds nothing but writes this database's report and exports
    again; it said they "still hold" while out/ held the other database's."""
    data = _dump(tmp_path / "d", range(3))
    pipeline.run_pipeline(settings, data, notify=False)
    ours = _outputs(settings)
    other = pg_server.with_overrides(
        pg_database=settings.pg_database + "_other", out_dir=settings.out_dir
    )
    db.ensure_ready(other)
    pipeline.run_pipeline(other, _dump(tmp_path / "e", range(5)), notify=False)
    theirs = _outputs(settings)
    again = pipeline.run_pipeline(settings, data, notify=False)
    assert again.nothing_changed is True
    assert [(s.name, s.detail.startswith("skipped")) for s in again.steps[2:]] == [
        ("transform", True),
        ("report", False),
        ("export", False),
    ]
    rewritten = _outputs(settings)

    def exported(outputs: dict[str, bytes]) -> dict[str, bytes]:  # the manifest says when
        return {
            k: v for k, v in outputs.items() if k.startswith("exports/") and "manifest" not in k
        }

    assert exported(rewritten) == exported(ours) != exported(theirs)
    assert rewritten["report.html"] != theirs["report.html"]
    assert again.outputs_rewritten is True
    assert "its report and exports are written again" in render_run(settings, again)
    # and now they hold: the next run writes nothing
    last = pipeline.run_pipeline(settings, data, notify=False)
    assert last.outputs_rewritten is False
    assert [s.detail.startswith("skipped") for s in last.steps[2:]] == [True, True, True]
    assert _outputs(settings) == rewritten


@pytest.mark.slow
def test_pipeline_database_made_again_under_its_name_is_built_again(
    settings: Settings, tmp_path: Path
) -> None:
    """`duel db reset` (or a drop and create) keeps the name, not the database: the record of
    the last build, kept by name, must not make the next run skip the build of an empty one
    (the new database's first batch is numbered 1 again, as the record's was)."""
    pipeline.run_pipeline(settings, _dump(tmp_path / "d", range(3)), notify=False)
    before = changes.read_record(settings)
    db.reset_database(settings)
    again = pipeline.run_pipeline(settings, _dump(tmp_path / "e", range(2)), notify=False)
    assert (again.nothing_changed, again.ingest.batch_id, again.ingest.loaded) == (False, 1, 2)
    assert query(settings, "select count(*) from dbt.base") == [(2,)]
    after = changes.read_record(settings)
    assert before is not None and after is not None and after.cluster != before.cluster


def test_pipeline_output_folder_it_cannot_write_fails_before_anything_runs(
    settings: Settings, tmp_path: Path
) -> None:
    # it failed after the whole build, naming a Python class: "report failed: PermissionError"
    (tmp_path / "a-file").write_text("not a folder")
    unwritable = settings.with_overrides(out_dir=tmp_path / "a-file" / "out")
    with pytest.raises(ConfigError) as caught:
        pipeline.run_pipeline(unwritable, _dump(tmp_path / "d", range(2)), notify=False)
    assert caught.value.message == (
        f"DUEL_OUT {tmp_path}/a-file/out: cannot write there (Not a directory); set DUEL_OUT to "
        "a folder you can write"
    )
    assert query(settings, "select count(*) from raw.batches") == [(0,)]


def test_pipeline_stage_that_cannot_write_its_file_says_which_in_one_line(tmp_path: Path) -> None:
    # (a disk that fills, a folder made read-only mid-run): the file and why, as every command
    # says it (exceptions.file_error), not a Python class name
    (tmp_path / "a-file").write_text("not a folder")
    steps: list[pipeline.StepResult] = []

    def write() -> str:
        (tmp_path / "a-file" / "report.html").write_text("<html>")
        return "written"

    with pytest.raises(StepFailed) as caught:
        pipeline._timed("report", write, steps)
    assert (caught.value.message, steps) == (
        f"report failed: cannot write or read {tmp_path}/a-file/report.html: Not a directory",
        [],
    )


def test_pipeline_sharded_ingest_stage_accounts_for_every_file(
    settings: Settings, tmp_path: Path
) -> None:
    """The DAG's ingest: the stage's shards, passed on as dicts (as Airflow does), then checked."""
    data = _dump(tmp_path / "d", range(5))
    pipeline.database_stage(settings)
    labels = pipeline.plan_shards(data, 2)
    results = [
        dataclasses.asdict(pipeline.ingest_stage(settings, data, shard=label)) for label in labels
    ]
    summary = pipeline.check_shards(settings, data, results)
    assert (labels, summary["files_seen"], summary["loaded"], summary["shards"]) == (
        ["0/2", "1/2"],
        5,
        5,
        2,
    )


def _interrupt() -> str:
    raise KeyboardInterrupt


@pytest.mark.parametrize("stage", ["database", "ingest", "transform", "report", "export"])
def test_pipeline_interrupted_stage_says_what_it_left(
    stage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C in a stage: the dbt build and the export say what they had committed (the
    finished models, the files written so far); the others commit nothing until they finish,
    and say so. Either way the exit code is 130 and no stage is recorded as done."""
    steps: list[pipeline.StepResult] = []

    @cli.handle_errors
    def run() -> None:
        pipeline._timed(stage, _interrupt, steps)

    with pytest.raises(SystemExit) as exited:
        run()
    expected = {
        "transform": (
            "interrupted during the dbt build: the models it had finished are built, the one it "
            "was building is not; the next `duel run` builds again"
        ),
        "export": (
            "interrupted during the export: the files written so far are new, manifest.json is "
            "still the previous export's; the next `duel run` exports again"
        ),
    }.get(stage, "interrupted; nothing of the unfinished step was committed")
    assert (exited.value.code, capsys.readouterr().err, steps) == (130, f"error: {expected}\n", [])


def test_pipeline_interrupted_is_still_a_keyboard_interrupt() -> None:
    """run_pipeline sends its failure notification for an Exception: an interrupted run, as
    before, sends none."""
    with pytest.raises(Interrupted) as raised:
        pipeline._timed("transform", _interrupt, [])
    assert isinstance(raised.value, KeyboardInterrupt) and not isinstance(raised.value, Exception)


def test_pipeline_preload_imports_what_the_report_and_export_import() -> None:
    """The thread `duel run` starts with the build: in a fresh interpreter, none of the later
    stages' libraries before it, every one after it, and the classes of plotly's template too."""
    script = (
        "import sys\n"
        "from duel import pipeline\n"
        "names = (*pipeline.LATER_STAGES, 'pandas', 'pyarrow', 'plotly.graph_objects')\n"
        "print(sorted(n for n in names if n in sys.modules))\n"
        "pipeline.preload_later_stages().join()\n"
        "print(sorted(n for n in names if n not in sys.modules))\n"
        "print('plotly.graph_objs.layout._template' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.splitlines() == ["[]", "[]", "True"]
    assert done.stderr == ""
