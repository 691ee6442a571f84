"""bench/report.py: results.md (and results.png) rendered from a run's saved samples.

The fixture is a real `bench/run.py --end-to-end-only` run's results.json (2026-12-06, six of its
ten `duel run`s kept, each dbt summary cut to its two slowest nodes).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "bench" / "end_to_end_only.json"


def _report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_report_of_end_to_end_runs_only_has_their_targets_and_no_chart(
    tmp_path: Path,
) -> None:
    """A run without the ingest methods (--end-to-end-only) renders its targets, says the
    ingest was not measured, draws no chart and removes an earlier run's chart beside it (the
    render divided by the number of methods, none, and failed after the hour of runs)."""
    results = tmp_path / "results.json"
    shutil.copy(FIXTURE, results)
    (tmp_path / "results.png").write_bytes(b"an earlier run's chart")
    _report().write(json.loads(results.read_text(encoding="utf-8")), tmp_path)
    page = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]
    assert "![" not in page
    assert (
        "Written by `make bench` (`python bench/run.py --sizes 10000,100000,1000000 --reps 3"
        " --reps-large 2 --end-to-end-only`)" in page
    )
    assert "- Inputs: the end-to-end runs only (their table names them); warm page cache" in page
    rows = [line for line in page.splitlines() if line.startswith("| ") and "|" in line[2:]]
    assert [r for r in rows if "1/10" in r or "1 % changed <" in r or "full `duel run`" in r] == [
        "| 10k: a `duel run` with nothing changed < 1/10 of the first"
        " | 0.7 s vs 17.4 s = 0.043 | **met** |",
        "| 100k: `duel run` after 1 % changed < 1/5 of a full run"
        " | 18.5 s vs 33.0 s = 0.560 | **NOT met** |",
        "| 1M: `duel run` after 1 % changed < 1/8 of a full run"
        " | 109.3 s vs 192.0 s = 0.569 | **NOT met** |",
        "| 1M: full `duel run` < 100 s | 192.0 s | **NOT met** |",
    ]
    assert sum(r.endswith("| — | not measured |") for r in rows) == 12  # every ingest target
    ingest = page.split("## Ingest: every method on the same input, a fresh database each run")[1]
    assert ingest.split("## End to end")[0].strip() == "Not measured in this run."


def test_bench_report_header_names_the_options_that_left_parts_out() -> None:
    """results.md's command line says what a partial run left out: the committed runs of
    `--methods duel,floor_copy --forms tar.gz` were headed as if they had measured everything."""
    args = _report()._args
    whole = {
        "sizes": "10000,100000,1000000",
        "reps": 3,
        "reps_large": 2,
        "methods": "duel,notebook,dlt,floor_read,floor_parse,floor_copy",
        "forms": "tar.gz,dir",
        "stream": 4,
    }
    assert args(whole) == "--sizes 10000,100000,1000000 --reps 3 --reps-large 2"
    assert args(whole | {"methods": "duel,floor_copy", "forms": "tar.gz"}) == (
        "--sizes 10000,100000,1000000 --reps 3 --reps-large 2 --methods duel,floor_copy"
        " --forms tar.gz"
    )
    assert args(whole | {"stream": 0, "no_end_to_end": True}) == (
        "--sizes 10000,100000,1000000 --reps 3 --reps-large 2 --stream 0 --no-end-to-end"
    )
    assert args(whole | {"quick": True}) == "--quick"


def test_bench_report_says_what_duel_s_venv_holds_beyond_its_lock() -> None:
    """results.md names what duel ran from: the committed run of 2026-12-06 02:50 measured a
    .venv with the notebooks extra in it, whose rfc3987_syntax made dbt's every start 1.5 s
    slower, and nothing said so."""
    line = _report()._venv_line
    assert line({}) == "- duel's venv: not recorded"
    assert line({"venv": {"extra": [], "other_versions": []}}) == (
        "- duel's venv: requirements.txt's packages at its versions (as `make install` makes it)"
    )
    assert line({"venv_extras": []}) == (
        "- duel's venv: 0 packages that requirements.txt does not pin (versions not read)"
    )
    assert line({"venv": {"extra": ["jupyterlab", "lark"], "other_versions": []}}) == (
        "- duel's venv: **2 packages that requirements.txt does not pin (jupyterlab, lark)**,"
        " not what `make install` makes"
    )
    assert line(
        {"venv": {"extra": ["lark"], "other_versions": ["dbt-core 1.11.2, lock 1.11.16"]}}
    ) == (
        "- duel's venv: **1 packages that requirements.txt does not pin (lark) and 1 at versions"
        " it does not pin (dbt-core 1.11.2, lock 1.11.16)**, not what `make install` makes"
    )


def test_bench_venv_against_lock_names_what_the_lock_does_not_say(tmp_path: Path) -> None:
    """bench/run.py venv_against_lock: the packages of `duel`'s interpreter (its script's #!
    line) that the lock does not pin, and those at another version, names compared as PEP 503
    normalises them (`PyYAML` is pinned by `pyyaml==`, `typing_extensions` by
    `typing-extensions==`) and markers left aside; None without a `duel`."""
    import importlib.metadata
    import sys

    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    sys.modules["bench_run"] = run  # (its dataclasses look their module up)
    try:
        spec.loader.exec_module(run)  # (it puts bench/ on sys.path for its own modules)
    finally:
        sys.path[:] = path
        for name in ("bench_run", "inputs", "measure", "report"):
            sys.modules.pop(name, None)
    versions = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
    assert {"PyYAML", "psycopg", "typing_extensions", "click"} <= set(versions)
    pins = [
        f"{name.lower().replace('_', '-')}=={version} ; python_full_version >= '3.11'"
        for name, version in sorted(versions.items())
        if name not in {"psycopg", "PyYAML", "click"}
    ]
    pins.append("click==0.0.1")  # another version
    pins.append(f"click=={versions['click']} ; sys_platform == 'win32'")  # a pin for elsewhere
    lock = tmp_path / "requirements.txt"
    lock.write_text("# a lock\n" + "\n    # via x\n".join(pins) + "\n", encoding="utf-8")
    duel = Path(sys.executable).parent / "duel"
    assert run.venv_against_lock(duel, lock) == {
        "extra": ["PyYAML", "psycopg"],
        "other_versions": [],
    }
    lock.write_text("\n".join(pins[:-1]) + "\n", encoding="utf-8")
    assert run.venv_against_lock(duel, lock) == {
        "extra": ["PyYAML", "psycopg"],
        "other_versions": [f"click {versions['click']}, lock 0.0.1"],
    }
    assert run.venv_against_lock(tmp_path / "no-duel-here", lock) is None
