"""`duel run`: the stages in order (database, ingest, transform, report, export), timed.

Every stage is a plain function of the settings; the CLI and the Airflow DAG call these, so the
pipeline has one definition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duel import db
from duel.exceptions import DuelError, SourceError, StepFailed
from duel.load import IngestResult, ingest
from duel.progress import progress
from duel.settings import Settings
from duel.sources import check_source

STAGES = ("database", "ingest", "transform", "report", "export")


@dataclass(frozen=True)
class StepResult:
    name: str
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class RunOutcome:
    ingest: IngestResult
    steps: tuple[StepResult, ...] = field(default_factory=tuple)

    def summary(self) -> dict[str, Any]:
        return {**self.ingest.summary(), "steps": {s.name: round(s.seconds, 3) for s in self.steps}}


def ingest_with_progress(settings: Settings, data: Path, *, full: bool = False,
                         allow_mass_delete: bool = False) -> IngestResult:
    """Ingest with a progress bar on stderr when it is a terminal (`full`: see duel.deletes)."""
    with progress(f"ingesting {data}") as advance:
        return ingest(settings, data, on_file=advance, full=full, allow_mass_delete=allow_mass_delete)


def _timed(name: str, func: Callable[[], str], steps: list[StepResult]) -> None:
    started = time.perf_counter()
    try:
        detail = func()
    except DuelError:
        raise
    except Exception as error:  # a stage's unexpected failure still names the stage, in one line
        raise StepFailed(name, f"{type(error).__name__}: {error}") from error
    steps.append(StepResult(name, time.perf_counter() - started, detail))


def run_pipeline(settings: Settings, data: Path, *, notify: bool = True, full: bool = False,
                 allow_mass_delete: bool = False) -> RunOutcome:
    """Every stage in order, then the success notification (summary, report attached).

    On failure: the failure notification (the step and its one-line error), then the error is
    re-raised. A notification that cannot be sent is logged on stderr and never fails the run.
    """
    from duel.notify import notify_failure, notify_success  # jinja2, smtplib: not on `duel ingest`'s path

    steps: list[StepResult] = []
    try:
        outcome = _run_stages(settings, data, steps, full=full, allow_mass_delete=allow_mass_delete)
    except Exception as error:
        if notify:
            notify_failure(settings, failed_step(error, steps), str(error))
        raise
    if notify:
        notify_success(settings, outcome.summary(), [settings.out_dir / "report.html"])
    return outcome


def failed_step(error: Exception, steps: list[StepResult]) -> str:
    """The stage an error belongs to: the first that did not finish (a bad input path: ingest)."""
    if isinstance(error, SourceError) and not steps:
        return "ingest"
    return STAGES[min(len(steps), len(STAGES) - 1)]


def _run_stages(settings: Settings, data: Path, steps: list[StepResult], *, full: bool,
                allow_mass_delete: bool) -> RunOutcome:
    """Database up, ingest, transform, report, export; raises StepFailed naming the failed stage."""
    check_source(data)  # a wrong path fails in one line before anything starts
    _timed("database", lambda: db.ensure_ready(settings) or settings.url(), steps)
    results: list[IngestResult] = []

    def run_ingest() -> str:
        results.append(ingest_with_progress(settings, data, full=full, allow_mass_delete=allow_mass_delete))
        return f"batch {results[0].batch_id}"

    _timed("ingest", run_ingest, steps)
    _timed("transform", lambda: _transform(settings), steps)
    _timed("report", lambda: _report(settings), steps)
    _timed("export", lambda: _export(settings), steps)
    return RunOutcome(results[0], tuple(steps))


def _transform(settings: Settings) -> str:
    from duel.transform import build_models

    return build_models(settings, unit_tests=False).describe()  # unit tests: `duel transform`, CI


def _report(settings: Settings) -> str:
    from duel.report import build_report

    return str(build_report(settings).path)


def _export(settings: Settings) -> str:
    from duel.export import export_models

    result = export_models(settings)
    return f"{len(result.files)} files in {result.directory}"
