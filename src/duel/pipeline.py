"""`duel run`: the stages in order (database, ingest, transform, report, export), timed.

Every stage is a plain function of the settings; the CLI and the Airflow DAG call these, so the
pipeline has one definition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from duel import db, state
from duel.exceptions import DuelError, SourceError, StepFailed
from duel.generate import is_demo
from duel.load import IngestResult, ingest
from duel.progress import progress
from duel.settings import DEFAULT_PG, DEMO_DATABASE, Settings
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
    settings: Settings | None = None  # as the run used them (the database follows the data)
    server: db.Connected | None = None
    demo: bool = False

    def summary(self) -> dict[str, Any]:
        where = {}
        if self.server is not None:
            where = {"database": self.server.database, "demo": self.demo,
                     "server": {"host": self.server.host, "port": self.server.port,
                                "embedded": self.server.own is not None, "started": self.server.started}}
        return {**self.ingest.summary(), **where, "steps": {s.name: round(s.seconds, 3) for s in self.steps}}


def settings_for_data(settings: Settings, data: Path) -> tuple[Settings, bool]:
    """The settings to load `data` with, and whether it is the demo (`duel generate`'s). Unless
    PGDATABASE was set (flag, environment, .env), demo data goes to its own database, duel_demo,
    and any other data to duel, whatever the last run used."""
    demo = is_demo(data)
    if settings.chose("PGDATABASE"):
        return settings, demo
    database = DEMO_DATABASE if demo else DEFAULT_PG["PGDATABASE"]
    return replace(settings, pg_database=database, origins={**settings.origins, "PGDATABASE": "data"}), demo


def prepare_database(settings: Settings, data: Path, demo: bool) -> db.Connected:
    """The database ready for `data` (server up, database and raw schema present), recorded in
    DUEL_HOME as the one later commands use; returns which server it is on."""
    connected = db.ensure_ready(settings)
    state.write_database(settings.home, settings.pg_database, demo=demo, source=data.resolve())
    return connected


def ingest_with_progress(settings: Settings, data: Path) -> IngestResult:
    """Ingest with a progress bar on stderr when it is a terminal."""
    with progress(f"ingesting {data}") as advance:
        return ingest(settings, data, on_file=advance)


def _timed(name: str, func: Callable[[], str], steps: list[StepResult]) -> None:
    started = time.perf_counter()
    try:
        detail = func()
    except DuelError:
        raise
    except Exception as error:  # a stage's unexpected failure still names the stage, in one line
        raise StepFailed(name, f"{type(error).__name__}: {error}") from error
    steps.append(StepResult(name, time.perf_counter() - started, detail))


def run_pipeline(settings: Settings, data: Path, *, notify: bool = True) -> RunOutcome:
    """Every stage in order, then the success notification (summary, report attached).

    On failure: the failure notification (the step and its one-line error), then the error is
    re-raised. A notification that cannot be sent is logged on stderr and never fails the run.
    """
    from duel.notify import notify_failure, notify_success  # jinja2, smtplib: not on `duel ingest`'s path

    steps: list[StepResult] = []
    try:
        outcome = _run_stages(settings, data, steps)
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


def _run_stages(settings: Settings, data: Path, steps: list[StepResult]) -> RunOutcome:
    """Database up, ingest, transform, report, export; raises StepFailed naming the failed stage."""
    check_source(data)  # a wrong path fails in one line before anything starts
    settings, demo = settings_for_data(settings, data)
    servers: list[db.Connected] = []

    def run_database() -> str:
        servers.append(prepare_database(settings, data, demo))
        return settings.url()

    _timed("database", run_database, steps)
    results: list[IngestResult] = []

    def run_ingest() -> str:
        results.append(ingest_with_progress(settings, data))
        return f"batch {results[0].batch_id}"

    _timed("ingest", run_ingest, steps)
    _timed("transform", lambda: _transform(settings), steps)
    _timed("report", lambda: _report(settings), steps)
    _timed("export", lambda: _export(settings), steps)
    return RunOutcome(results[0], tuple(steps), settings, servers[0], demo)


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
