"""The pipeline's one definition: its stages, and `duel run`, which runs them in order, timed.

Every stage is a plain function of the settings: `database_stage`, `ingest_stage`,
`transform_stage`, `report_stage`, `export_stage`. `duel run` calls them in order
(`run_pipeline`); the commands `duel ingest` and `duel transform` call their own stage; the
Airflow DAG's tasks (dags/duel_pipeline.py) call the same functions, its ingest fanned out as
shards of `ingest_stage` (`plan_shards`, `ingest_stage(..., shard=...)`, then `check_shards`,
which also runs a complete dump's deletes). What a dbt build includes is decided here only
(`PRODUCTION_UNIT_TESTS`).
"""

from __future__ import annotations

import importlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duel import changes, db, layout, shards, state
from duel.exceptions import (
    ConfigError,
    DuelError,
    Interrupted,
    ObjectStoreError,
    SourceError,
    StepFailed,
    file_error,
)
from duel.generate import is_demo
from duel.identity import key_rule
from duel.load import IngestResult, ingest
from duel.progress import progress
from duel.settings import DEFAULT_PG, DEMO_DATABASE, Settings
from duel.shards import ShardSpec
from duel.sources import check_source, iter_source

if TYPE_CHECKING:
    from duel.export import ExportResult
    from duel.objectstore import S3Location
    from duel.transform import BuildResult, Prestarted

STAGES = ("database", "ingest", "transform", "report", "export")
# What a dbt build includes, for every caller. A production build (`duel run`, the DAG) runs the
# models, the snapshot and the data tests, not the unit tests: they test the SQL on fixtures, not
# the data (dbt's advice). A development build (`duel transform`, CI) runs them too.
PRODUCTION_UNIT_TESTS = False
DEVELOPMENT_UNIT_TESTS = True


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
    last_build: str | None = None  # when nothing changed: the time of the build that still holds
    # when nothing changed: the report and exports were written again (out/ held none, or
    # another database's)
    outputs_rewritten: bool = False

    @property
    def nothing_changed(self) -> bool:
        return self.last_build is not None

    def summary(self) -> dict[str, Any]:
        where = {}
        if self.server is not None:
            where = {
                "database": self.server.database,
                "demo": self.demo,
                "server": {
                    "host": self.server.host,
                    "port": self.server.port,
                    "embedded": self.server.own is not None,
                    "started": self.server.started,
                },
            }
        return {
            **self.ingest.summary(),
            **where,
            "nothing_changed": self.nothing_changed,
            "steps": {s.name: round(s.seconds, 3) for s in self.steps},
        }


def settings_for_data(settings: Settings, data: Path | S3Location) -> tuple[Settings, bool]:
    """The settings to load `data` with, and whether it is the demo (`duel generate`'s). Unless
    PGDATABASE was set (flag, environment, .env), demo data goes to its own database, duel_demo,
    and any other data to duel, whatever the last run used. An object-store dump is never taken
    for the demo (telling would mean reading it): set PGDATABASE to load the demo from one."""
    demo = isinstance(data, Path) and is_demo(data)
    if settings.chose("PGDATABASE"):
        return settings, demo
    database = DEMO_DATABASE if demo else DEFAULT_PG["PGDATABASE"]
    return replace(
        settings, pg_database=database, origins={**settings.origins, "PGDATABASE": "data"}
    ), demo


def check_input(settings: Settings, data: Path | S3Location) -> None:
    """Fail in one line, before anything is written, on an input that cannot be read: a path
    that is not there or not a kind we read; a bucket that is not there, credentials refused,
    an endpoint that does not answer, or a prefix with no object."""
    if isinstance(data, Path):
        check_source(data)
        return
    from duel import objectstore

    objectstore.list_location(objectstore.open_client(settings), data)


def check_output(settings: Settings) -> None:
    """Fail in one line, before anything is written, when the output folder (DUEL_OUT: the
    report and exports) cannot be made or written."""
    out = settings.out_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".duel-write-check-"):
            pass
    except OSError as error:
        raise ConfigError(
            f"DUEL_OUT {out}: cannot write there ({error.strerror or error}); set DUEL_OUT to a "
            "folder you can write"
        ) from None


def database_stage(
    settings: Settings, data: Path | S3Location | None = None, demo: bool = False
) -> db.Connected:
    """The database ready (server up, the embedded one started if need be; database and raw
    schema present); with `data`, recorded in DUEL_HOME as the one later commands use. Returns
    which server it is on."""
    connected = db.ensure_ready(settings)
    if data is not None:
        source = data.resolve() if isinstance(data, Path) else str(data)
        state.write_database(settings.home, settings.pg_database, demo=demo, source=source)
    return connected


def ingest_stage(
    settings: Settings,
    data: Path | S3Location,
    *,
    full: bool = False,
    allow_mass_delete: bool = False,
    allow_new_layout: bool = False,
    shard: str | None = None,
) -> IngestResult:
    """Ingest `data` as one batch, with a progress bar on stderr when it is a terminal (`full`:
    see duel.deletes). With `shard` ("i/N", from `plan_shards`) only that shard's files, as a
    batch of its own; a complete dump's deletes then wait for `check_shards`."""
    # the loader advances it by the documents it wrote (an NDJSON file, once per user)
    with progress(
        f"ingesting {data}" + (f" shard {shard}" if shard else ""), unit="documents"
    ) as advance:
        if shard is not None:
            spec = ShardSpec.parse(shard)
            return shards.ingest_shard(
                settings, data, spec, on_file=advance, allow_new_layout=allow_new_layout
            )
        return ingest(
            settings,
            data,
            on_file=advance,
            full=full,
            allow_mass_delete=allow_mass_delete,
            allow_new_layout=allow_new_layout,
        )


def check_layout(
    settings: Settings, data: Path | S3Location, *, allow_new_layout: bool = False
) -> None:
    """Before a sharded ingest (the DAG): refuse a dump repackaged at another folder depth
    (duel.layout), judged from its file names, as `duel ingest` judges it in its batch. An
    object-store source is loaded as one shard, which its batch checks."""
    if isinstance(data, Path):
        files = iter_source(data, 0)  # names only: no file is read
        layout.preflight(settings, files, key_rule(settings), allow=allow_new_layout)


def plan_shards(data: Path | S3Location, count: int) -> list[str]:
    """The labels of the `count` shards `ingest_stage` loads `data` in ("0/4", "1/4", ...)."""
    return [spec.label for spec in shards.plan_shards(data, count)]


def check_shards(
    settings: Settings,
    data: Path | S3Location,
    results: Sequence[IngestResult | Mapping[str, Any]],
    *,
    full: bool = False,
    allow_mass_delete: bool = False,
) -> dict[str, Any]:
    """The end of a sharded ingest: every file of `data` in exactly one shard's batch (else
    ShardMismatch); then, for a complete dump, the deletes (duel.deletes: a refused mass delete
    fails, the shards' loads stay). `results` may be the IngestResults' dicts (as Airflow passes
    them between tasks). Returns the summary, shaped like `duel run --json`."""
    loaded = [r if isinstance(r, IngestResult) else IngestResult(**r) for r in results]
    summary = shards.check_shards(settings, data, loaded).summary()
    if full:
        deleted = shards.delete_absent(settings, loaded, allow_mass_delete=allow_mass_delete)
        summary["deleted"] = deleted.deleted
    return summary


def transform_stage(
    settings: Settings,
    *,
    production: bool = True,
    full_refresh: bool = False,
    select: Iterable[str] = (),
    on_line: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    target: str | None = None,
    tests_since: int | None = None,
    prestarted: Prestarted | None = None,
) -> BuildResult:
    """The dbt build: for production (`duel run`, the DAG) or, with production=False, for
    development (`duel transform`); what each includes: PRODUCTION_UNIT_TESTS,
    DEVELOPMENT_UNIT_TESTS. `target`: a profiles.yml output (None for the default, Postgres;
    `spark` for a Spark session). The other arguments: duel.transform.build_models."""
    from duel.transform import build_models

    return build_models(
        settings,
        full_refresh=full_refresh,
        select=select,
        on_line=on_line,
        on_progress=on_progress,
        unit_tests=PRODUCTION_UNIT_TESTS if production else DEVELOPMENT_UNIT_TESTS,
        target=target,
        tests_since=tests_since,
        prestarted=prestarted,
    )


# What the report and the export import (pandas, which imports pyarrow, and plotly; plotly
# loads the classes of a figure and its template on first use): about a second, which `duel
# run` spends while dbt builds in its own process (preload_later_stages). Not pyarrow.parquet:
# `duel run` exports CSV.
LATER_STAGES = ("duel.report", "duel.export", "plotly.offline")


def preload_later_stages() -> threading.Thread:
    """Import the report's and the export's libraries in a thread, and make one styled chart
    (plotly loads its classes on first use). `duel run` starts it with the build, which
    leaves this process waiting on dbt's output, and joins it before the report. An import that
    fails is left to the stage itself, which then says what failed."""

    def preload() -> None:
        try:
            for name in LATER_STAGES:
                importlib.import_module(name)
            from duel.charts.look import empty_chart

            empty_chart()
        except Exception:  # noqa: S110  the stage imports it again and reports it
            pass

    thread = threading.Thread(target=preload, name="duel-preload", daemon=True)
    thread.start()
    return thread


def report_stage(settings: Settings) -> Path:
    from duel.report import build_report

    return build_report(settings).path


def export_stage(settings: Settings) -> ExportResult:
    from duel.export import export_models

    return export_models(settings)


# What a stage interrupted by Ctrl-C leaves (the others commit nothing until they finish: the
# ingest's batch is one transaction, report.html is replaced whole).
INTERRUPTED = {
    "transform": (
        "interrupted during the dbt build: the models it had finished are built, the one it was "
        "building is not; the next `duel run` builds again"
    ),
    "export": (
        "interrupted during the export: the files written so far are new, manifest.json is "
        "still the previous export's; the next `duel run` exports again"
    ),
}


def _timed(name: str, func: Callable[[], str], steps: list[StepResult]) -> None:
    started = time.perf_counter()
    try:
        detail = func()
    except Interrupted:
        raise
    except KeyboardInterrupt as interrupt:
        if name in INTERRUPTED:
            raise Interrupted(INTERRUPTED[name]) from interrupt
        raise
    except DuelError:
        raise
    except OSError as error:  # a folder or file it cannot use (not writable, disk full...)
        raise StepFailed(name, file_error(error)) from error
    except Exception as error:  # a stage's unexpected failure still names the stage, in one line
        raise StepFailed(name, f"{type(error).__name__}: {error}") from error
    steps.append(StepResult(name, time.perf_counter() - started, detail))


def run_pipeline(
    settings: Settings,
    data: Path | S3Location,
    *,
    notify: bool = True,
    full: bool = False,
    allow_mass_delete: bool = False,
    allow_new_layout: bool = False,
    force: bool = False,
) -> RunOutcome:
    """Every stage in order, then the success notification (summary, report attached). When the
    ingest changed nothing since the last complete build (duel.changes), the transform, report
    and export are skipped, unless `force`.

    On failure: the failure notification (the step and its one-line error), then the error is
    re-raised. A notification that cannot be sent is logged on stderr and never fails the run.
    """
    # jinja2, smtplib: not on `duel ingest`'s path
    from duel.notify import notify_failure, notify_success

    steps: list[StepResult] = []
    try:
        outcome = _run_stages(
            settings,
            data,
            steps,
            full=full,
            allow_mass_delete=allow_mass_delete,
            allow_new_layout=allow_new_layout,
            force=force,
        )
    except Exception as error:
        if notify:
            notify_failure(settings, failed_step(error, steps), str(error))
        raise
    if notify:
        notify_success(settings, outcome.summary(), [settings.out_dir / "report.html"])
    return outcome


def failed_step(error: Exception, steps: list[StepResult]) -> str:
    """The stage an error belongs to: the first that did not finish (a bad input path: ingest)."""
    if isinstance(error, (SourceError, ObjectStoreError)) and not steps:
        return "ingest"
    return STAGES[min(len(steps), len(STAGES) - 1)]


def _run_stages(
    settings: Settings,
    data: Path | S3Location,
    steps: list[StepResult],
    *,
    full: bool,
    allow_mass_delete: bool,
    allow_new_layout: bool,
    force: bool,
) -> RunOutcome:
    """Database up, ingest, transform, report, export; raises StepFailed naming the failed stage.

    dbt's process starts first (duel.transform.Prestarted): it imports dbt and parses the
    project while the database starts and the ingest runs, and is stopped if nothing changed."""
    from duel.transform import Prestarted

    check_input(settings, data)  # a wrong path or bucket fails in one line before anything starts
    check_output(settings)  # so does an output folder it cannot write, before the build
    settings, demo = settings_for_data(settings, data)
    with Prestarted(settings) as prestarted:
        servers: list[db.Connected] = []

        def run_database() -> str:
            servers.append(database_stage(settings, data, demo))
            return settings.url()

        _timed("database", run_database, steps)
        results: list[IngestResult] = []

        def run_ingest() -> str:
            results.append(
                ingest_stage(
                    settings,
                    data,
                    full=full,
                    allow_mass_delete=allow_mass_delete,
                    allow_new_layout=allow_new_layout,
                )
            )
            return f"batch {results[0].batch_id}"

        _timed("ingest", run_ingest, steps)
        unchanged = None if force else changes.unchanged_since(settings)
        if unchanged is not None:
            detail = (
                f"skipped: nothing changed since the build of {unchanged.finished_at} "
                "(--force rebuilds)"
            )
            steps.append(StepResult("transform", 0.0, detail))
            rewrite = not changes.outputs_hold(settings, unchanged)
            if rewrite:  # gone, or out/ holds another database's: this one's, from its models
                report, export = _report_and_export(settings, steps)
                changes.record_outputs(settings, unchanged, report, export.manifest)
            else:
                steps.extend(StepResult(name, 0.0, detail) for name in ("report", "export"))
            return RunOutcome(
                results[0],
                tuple(steps),
                settings,
                servers[0],
                demo,
                last_build=unchanged.finished_at,
                outputs_rewritten=rewrite,
            )
        # the data tests read only the rows written since the last complete build (all of them on
        # --force and --full, or when that build is not this project's)
        tests_since = None if force or full else changes.test_scope(settings)
        preloading = preload_later_stages()
        built: list[BuildResult] = []

        def run_transform() -> str:
            built.append(transform_stage(settings, tests_since=tests_since, prestarted=prestarted))
            return built[0].describe()

        _timed("transform", run_transform, steps)
        preloading.join()  # the report imports nothing at the same time as the thread
        report, export = _report_and_export(settings, steps)
        # what the build saw and tested, read while it held ingests off (BuildResult)
        changes.record_build(
            settings, built[0].batch_through, report, export.manifest, built[0].tested_through
        )
        return RunOutcome(results[0], tuple(steps), settings, servers[0], demo)


def _report_and_export(settings: Settings, steps: list[StepResult]) -> tuple[Path, ExportResult]:
    """The report and export stages, timed into `steps`."""
    reports: list[Path] = []

    def run_report() -> str:
        reports.append(report_stage(settings))
        return str(reports[0])

    _timed("report", run_report, steps)
    exports: list[ExportResult] = []

    def run_export() -> str:
        exports.append(export_stage(settings))
        return f"{len(exports[0].files)} files in {exports[0].directory}"

    _timed("export", run_export, steps)
    return reports[0], exports[0]
