"""`duel run`: the stages in order (database, ingest, transform, report, export), timed.

Every stage is a plain function of the settings; the CLI and the Airflow DAG call these, so the
pipeline has one definition.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duel import db
from duel.exceptions import DuelError, StepFailed
from duel.load import IngestResult, ingest
from duel.settings import Settings


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


def ingest_with_progress(settings: Settings, data: Path) -> IngestResult:
    """Ingest with a progress line on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return ingest(settings, data)
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("ingesting {task.description}"), MofNCompleteColumn(),
               TextColumn("files"), TimeElapsedColumn())
    with Progress(*columns, transient=True, console=_stderr_console()) as progress:
        task = progress.add_task(str(data), total=None)
        return ingest(settings, data, on_file=lambda n: progress.advance(task, n))


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _timed(name: str, func: Callable[[], str], steps: list[StepResult]) -> None:
    started = time.perf_counter()
    try:
        detail = func()
    except DuelError:
        raise
    except Exception as error:  # a stage's unexpected failure still names the stage, in one line
        raise StepFailed(name, f"{type(error).__name__}: {error}") from error
    steps.append(StepResult(name, time.perf_counter() - started, detail))


def run_pipeline(settings: Settings, data: Path) -> RunOutcome:
    """Database up, ingest, then the later stages; raises StepFailed naming the failed stage."""
    steps: list[StepResult] = []
    _timed("database", lambda: db.ensure_ready(settings) or settings.url(), steps)
    results: list[IngestResult] = []

    def run_ingest() -> str:
        results.append(ingest_with_progress(settings, data))
        return f"batch {results[0].batch_id}"

    _timed("ingest", run_ingest, steps)
    return RunOutcome(results[0], tuple(steps))
