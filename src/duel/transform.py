"""The dbt stage: `duel transform` builds the models (dbt build), `duel docs` serves their docs.

dbt runs as a child process of this interpreter (`python -m duel.transform --dbt`: dbt's own
command line, its connections kept between nodes, `keep_connections`), so its environment
is exactly what we give it: the PG* variables from the settings (profiles.yml reads them with
env_var()), DBT_PROFILES_DIR pointing at the project, and logs/ and a target/ per database under
`settings.home` (`target_dir`). A failed build raises StepFailed naming the failed models and
tests, read from dbt's run_results.json.

`duel run` starts its dbt process ahead of the build (`Prestarted`): it imports dbt and parses
the project while the ingest runs, then waits for the build's arguments, so the build does not
wait for dbt's start (2.5-3 s of this machine's 4 s before a first node).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from duel.exceptions import ConfigError, DatabaseUnavailable, ServerError, StepFailed
from duel.settings import Settings

STEP = "dbt build"
FAILED = ("error", "fail", "runtime error")
# Passed through to dbt from our own environment: what a child process needs to run at all.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT")
# "3 of 161 OK ...": a node done (not "1 of 1 OK hook: ...", on-run-start's)
_PROGRESS = re.compile(r"\b(\d+) of (\d+) (?:OK|PASS|WARN|ERROR|FAIL|SKIP|NO-OP)\b(?! hook:)")
MAX_NAMED = 3
KINDS = ("models", "snapshots", "tests", "unit tests")
# profiles.yml's outputs: `local` (the default: Postgres, from the PG* variables) and `spark` (a
# local Spark session; `make spark` installs dbt-spark and pyspark).
POSTGRES_TARGET = "local"
SPARK_TARGET = "spark"
# The nodes a scoped build (build_models' `tests_since`) leaves out: the views, with their tests
# (dbt's eager indirect selection drops a test with its model).
UNCHANGED_VIEWS = "config.materialized:view"
# The session setting that scopes the data tests (dbt/duel/macros/incremental.sql).
TESTS_SINCE_SETTING = "duel.tests_written_since"
# Modules that dbt's imports pull in, never use, and pay for at every start. With the notebooks
# extra installed (`make notebooks`: JupyterLab's jupyter_events asks for
# jsonschema[format-nongpl]), jsonschema imports rfc3987_syntax, whose import builds a Lark
# grammar: dbt's import took 3.3 s instead of 1.8 (jsonschema #1428). dbt validates its schemas
# without format checkers, so the IRI formats that module checks are never asked for.
UNUSED_BY_DBT = ("rfc3987_syntax",)


@dataclass(frozen=True)
class NodeResult:
    """One model, snapshot, test or unit test that did not simply pass."""

    name: str
    kind: str
    status: str
    message: str
    unique_id: str = ""
    compiled_code: str = field(default="", repr=False)


@dataclass(frozen=True)
class BuildResult:
    """What a `dbt build` did: node counts by kind and status, the warnings, the time taken."""

    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    warnings: tuple[NodeResult, ...] = ()
    scoped: bool = False  # build_models' `tests_since`: new rows tested, views left as they were
    full_refresh: bool = False  # every model built from scratch (`--full-refresh`)
    # On Postgres, read while the build held ingests off (duel.load.ingests_held_off): the newest
    # batch it saw, every one up to it in the models, and duel.changes.tested_through after its
    # tests passed (every row written before that transaction was tested)
    batch_through: int = 0
    tested_through: tuple[str, int] = ("", 0)

    def summary(self) -> dict[str, object]:
        return {
            "seconds": round(self.seconds, 3),
            **self.counts,
            "scoped": self.scoped,
            "full_refresh": self.full_refresh,
            "warnings": [w.name for w in self.warnings],
        }

    def describe(self) -> str:
        """One line, e.g. '22 models, 1 snapshot, 90 tests passed; 1 warning
        (accepted_values...)'."""
        kinds = ", ".join(f"{n} {kind if n != 1 else kind[:-1]}" for kind, n in self.counts.items())
        text = f"{kinds or 'nothing'} built and passed in {self.seconds:.1f}s"
        if self.scoped:
            text += " (tests of the rows written since the last build; its views kept)"
        if self.full_refresh:
            text += " (full refresh: every model built from scratch)"
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s): {_names(self.warnings)}"
        return text


def project_dir(settings: Settings) -> Path:
    path = settings.dbt_project_dir.resolve()
    if not (path / "dbt_project.yml").is_file():
        raise ConfigError(f"no dbt project at {path} (set DUEL_DBT_PROJECT_DIR)")
    return path


def target_dir(settings: Settings) -> Path:
    """Where dbt writes manifest, run results and docs for these settings: one directory per
    server and database under DUEL_HOME (`dbt/target/<host_port_database>`). dbt parses the
    project again from scratch when the connection differs from its last parse's (the profile
    is part of its partial-parse state), so a shared directory made every switch between two
    databases (the demo's duel_demo and a dump's duel, say) pay a whole parse, 3-4 s where a
    partial one takes under 1 s; and two builds of different databases at once would each have
    read the other's run_results.json."""
    return settings.home.resolve() / "dbt" / "target" / settings.database_slug


def prepare_target(settings: Settings) -> Path:
    """The target directory, made if missing, without a partial parse that predates a change of
    a snapshot's YAML: dbt's partial parse then keeps the old snapshot beside the new one and
    every build fails with "dbt found two snapshots with the name ..." (dbt-core #10903, #15785;
    seen here with dbt 1.11 after users_snapshot.yml changed). One whole parse (3-4 s) instead."""
    target = target_dir(settings)
    target.mkdir(parents=True, exist_ok=True)
    state = target / "partial_parse.msgpack"
    try:
        parsed_at = state.stat().st_mtime
    except FileNotFoundError:
        return target
    snapshots = project_dir(settings) / "snapshots"
    if any(path.stat().st_mtime >= parsed_at for path in snapshots.rglob("*.y*ml")):
        state.unlink(missing_ok=True)
    return target


def log_dir(settings: Settings) -> Path:
    """dbt's log file (logs/dbt.log, every statement of every build), one for all databases."""
    return settings.home.resolve() / "dbt" / "logs"


def dbt_env(settings: Settings, tests_since: int | None = None) -> dict[str, str]:
    """The child's whole environment: the connection from the settings, dbt's paths, no
    telemetry; with `tests_since`, the setting that scopes the data tests to the rows written
    since that transaction (dbt/duel/macros/incremental.sql) on every connection dbt opens."""
    env = {name: os.environ[name] for name in PASSTHROUGH if name in os.environ}
    project = project_dir(settings)
    env.update(settings.libpq_env())
    if tests_since is not None:
        env["PGOPTIONS"] = f"-c {TESTS_SINCE_SETTING}={tests_since}"
    env.update(
        {
            "DUEL_HOME": str(settings.home.resolve()),  # the spark target's warehouse is under it
            "DBT_PROFILES_DIR": str(project),
            "DBT_PROJECT_DIR": str(project),
            "DBT_TARGET_PATH": str(target_dir(settings)),
            "DBT_LOG_PATH": str(log_dir(settings)),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_USE_COLORS": "false",
            "DBT_PRINTER_WIDTH": "100",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# The argument that makes `python -m duel.transform` dbt's command line (_dbt_main): dbt's own
# `cli`, with its connections kept between nodes (keep_connections).
DBT = "--dbt"


def dbt_command(settings: Settings, *args: str) -> list[str]:
    """The dbt command line (this interpreter's dbt, through _dbt_main), with the project and
    profiles directory."""
    return [sys.executable, "-m", "duel.transform", DBT, *args, *_project_args(settings)]


def build_models(
    settings: Settings,
    full_refresh: bool = False,
    select: Iterable[str] | None = None,
    on_line: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    unit_tests: bool = True,
    target: str | None = None,
    tests_since: int | None = None,
    prestarted: Prestarted | None = None,
) -> BuildResult:
    """Run `dbt build` (models, snapshot, tests, unit tests); raise StepFailed if anything fails.

    `select` limits the build to dbt selectors (e.g. ["staging", "base+"]); `on_line` receives
    dbt's log lines, `on_progress` (done, total) as nodes finish. `unit_tests=False` leaves out
    the unit tests, which test the SQL's logic on fixtures, not the data (dbt's advice for
    production builds; `duel run` does so, `duel transform` and CI run them). `target` is an
    output of profiles.yml (`local`, the default: Postgres; `spark`: a local Spark session).
    `tests_since` (a transaction id, duel.changes.test_scope): the row-level data tests read
    only the rows written since it; None: every test reads everything. It also says that the
    last build, whose tests all passed, ran this same project on this database: its views are
    what this project defines, so they are not recreated (UNCHANGED_VIEWS), nor are their tests
    run, which a view cannot scope (it has no row versions) and which test what the raw tables'
    own constraints hold (keys, statuses, not-null columns); the full builds test them.
    `prestarted`: a dbt process started ahead for these settings and target, which runs the
    build (one that cannot is cancelled, and a new process runs it).

    On Postgres the build holds ingests off while dbt runs (duel.load.ingests_held_off): it
    waits for an ingest still writing, up to DUEL_LOCK_TIMEOUT (then LockTimeout, before dbt
    starts), and an ingest started meanwhile waits for it; the BuildResult says which batches
    it saw and which rows its tests reached, read under that lock.

    A whole build (no `select`) on Postgres is recorded in raw.model_builds with the project's
    hash, and is a full refresh when the models were built by another project
    (`built_by_another_project`): an upgrade or an edited model never leaves rows of the earlier
    definitions in an incremental table.
    """
    # a whole build on Postgres is a full refresh when the models were built by another project;
    # the project is hashed once, before dbt reads it: the record names what this build ran
    from duel.changes import last_batch_id, project_hash, tested_through

    project = project_hash(settings) if not select and is_postgres(target) else None
    if project is not None and not full_refresh and built_by_another_project(settings, project):
        full_refresh = True
        tests_since = None  # every view is made again and every row tested
    args = ["build", *target_args(target)]
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    if tests_since is not None and is_postgres(target):
        args += ["--exclude", UNCHANGED_VIEWS]
    if full_refresh:
        args.append("--full-refresh")
    for selector in select or ():
        args += ["--select", selector]
    results = target_dir(settings) / "run_results.json"
    if prestarted is not None and not prestarted.serves(settings, target):
        prestarted.cancel()
        prestarted = None
    with _ingests_held_off(settings, target):
        batch_through = last_batch_id(settings) if is_postgres(target) else 0
        results.unlink(missing_ok=True)  # a stale file must not be read as this run's outcome
        started = time.perf_counter()
        code, output = _run(settings, args, on_line, on_progress, tests_since, prestarted)
        seconds = time.perf_counter() - started
        nodes = _read_results(results)
        failed = [n for n in nodes or () if n.status in FAILED]
        if code != 0 or failed or nodes is None:
            if is_postgres(target):
                failed = _name_failed_checks(settings, failed, tests_since)
            raise StepFailed(STEP, _failure_message(failed, nodes, output))
        if project is not None:
            _record_build(settings, project, full_refresh)
        tested = tested_through(settings) if is_postgres(target) else ("", 0)
    counts = {kind: n for kind in KINDS if (n := sum(1 for node in nodes if node.kind == kind))}
    return BuildResult(
        seconds,
        counts,
        tuple(n for n in nodes if n.status == "warn"),
        scoped=tests_since is not None and is_postgres(target),
        full_refresh=full_refresh,
        batch_through=batch_through,
        tested_through=tested,
    )


def _ingests_held_off(settings: Settings, target: str | None) -> AbstractContextManager[None]:
    """A build on Postgres holds ingests off while it runs (duel.load.ingests_held_off)."""
    if not is_postgres(target):
        return nullcontext()
    from duel.load import ingests_held_off

    return ingests_held_off(settings, step=STEP)


# The models' last whole build (raw.model_builds), and whether models exist at all: a database
# whose models a duel before the record built has them but no row. Every command that builds
# makes the raw schema first (db.ensure_ready), raw.model_builds with it.
_LAST_BUILD = """
select
    (select project_hash from raw.model_builds order by build_id desc limit 1),
    to_regclass('dbt.base') is not null
"""


def built_by_another_project(settings: Settings, project: str) -> bool:
    """Whether the database's models were built by another dbt project than `project` (its
    hash: duel upgraded; a model, macro or var edited): the last whole build recorded another
    one, or models are there with no build recorded. Their incremental rows then hold what
    other definitions computed, which an incremental build would keep beside the new ones."""
    from duel import db

    with db.connect(settings, step=STEP) as conn:
        row = conn.execute(_LAST_BUILD).fetchone()
    last, built = row if row is not None else (None, False)
    return bool(built) and last != project


def _record_build(settings: Settings, project: str, full_refresh: bool) -> None:
    from duel import __version__, db

    with db.connect(settings, step=STEP) as conn:
        conn.execute(
            "insert into raw.model_builds (project_hash, full_refresh, duel_version)"
            " values (%s, %s, %s)",
            (project, full_refresh, __version__),
        )


def target_args(target: str | None) -> list[str]:
    """dbt's `--target` for a profiles.yml output; none for the default (Postgres)."""
    return ["--target", target] if target else []


def is_postgres(target: str | None) -> bool:
    """Whether the target is the Postgres one (the default), which duel's own database serves."""
    return target in (None, POSTGRES_TARGET)


def generate_docs(settings: Settings) -> Path:
    """Run `dbt docs generate`; returns the directory holding index.html, manifest and catalog."""
    code, output = _run(settings, ["docs", "generate"], None, None)
    if code != 0:
        raise StepFailed("dbt docs generate", _last_error(output))
    return target_dir(settings)


def docs_server(settings: Settings, port: int = 8580) -> http.server.ThreadingHTTPServer:
    """A server of the generated docs (the target directory's index.html, manifest.json and
    catalog.json: what `dbt docs serve` serves) on 127.0.0.1:PORT, bound, not yet serving.
    In this process, not in a dbt one: Ctrl-C and SIGTERM stop it and leave nothing behind.
    ServerError (one line) when the port is taken."""
    handler = functools.partial(_QuietFiles, directory=str(target_dir(settings)))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as error:
        raise ServerError(
            f"cannot serve the docs on 127.0.0.1:{port} ({error.strerror or error}); "
            "give another port with --port"
        ) from None


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    """The docs' files, without a log line per request on the terminal."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve_docs(settings: Settings, port: int = 8580) -> None:
    """Serve the generated docs on http://127.0.0.1:PORT until interrupted (Ctrl-C, SIGTERM)."""
    with docs_server(settings, port) as server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            return


def _run(
    settings: Settings,
    args: list[str],
    on_line: Callable[[str], None] | None,
    on_progress: Callable[[int, int], None] | None,
    tests_since: int | None = None,
    prestarted: Prestarted | None = None,
) -> tuple[int, list[str]]:
    """Run dbt, streaming its output lines; returns (exit code, lines). `prestarted`: a dbt
    process already started for these settings, which runs it (else a new one does)."""
    prepare_target(settings)
    lines: list[str] = []
    env = dbt_env(settings, tests_since)
    if prestarted is not None:
        process = prestarted.start([*args, *_project_args(settings)], env)
    else:
        process = subprocess.Popen(
            dbt_command(settings, *args),
            env=env,
            cwd=project_dir(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    if prestarted is not None:  # it says its exit code, then finishes (Prestarted.finish)
        return _read_output(process, on_line, on_progress, lines), lines
    with process:
        return _read_output(process, on_line, on_progress, lines), lines


def _read_output(
    process: subprocess.Popen[str],
    on_line: Callable[[str], None] | None,
    on_progress: Callable[[int, int], None] | None,
    lines: list[str],
) -> int:
    """dbt's output lines, to `lines` and the callbacks, until a prestarted process says its
    exit code, or the output ends (the process's exit code then)."""
    for raw in process.stdout or ():  # stdout=PIPE: always a stream
        line = raw.rstrip("\n")
        if line.startswith(_EXITED):
            return int(line.removeprefix(_EXITED))
        lines.append(line)
        if on_line is not None:
            on_line(line)
        match = _PROGRESS.search(line)
        if match and on_progress is not None:
            on_progress(int(match.group(1)), int(match.group(2)))
    return process.wait()


# The argument that makes `python -m duel.transform` a prestarted dbt process (Prestarted).
PRESTARTED = "--prestarted-dbt"
# The prestarted process's last line: its exit code follows (a record separator first, which no
# line of dbt's begins with).
_EXITED = "\x1eduel: dbt exited "


class Prestarted:
    """A dbt process started before its build is known: `duel run` starts it with the run, and
    the ingest runs while it imports dbt and parses the project (dbt's `parse`, partially, as
    any build would); the build then reuses that parse (dbt's dbtRunner with the manifest).

    It waits on its stdin for one line: the build's arguments and the environment the build
    would have had (`start`), or nothing (`cancel`: the run needs no build). What it runs, its
    output and its exit code are those of dbt_command with the same arguments. A
    project that does not parse is parsed again by the build, which then reports it as any
    build does.

    The parse writes no manifest.json: the build writes it at its end, with its run results,
    as every dbt build does (one write of 0.5 s at 100k instead of two). The build's outcome is
    known before the process ends: it says its exit code in a last line and exits while the run
    goes on (the interpreter's teardown, 0.3 s, off the run's path). Use it as a context
    manager: leaving it cancels a process never started, and waits for one that was.
    """

    def __init__(self, settings: Settings, target: str | None = None) -> None:
        self.target = target
        self.env = dbt_env(settings)
        self.started = False
        self.process: subprocess.Popen[str] | None = None
        try:
            project = project_dir(settings)
        except ConfigError:  # no project: the build says so, in its own stage
            return
        prepare_target(settings)
        parse = ["parse", *target_args(target), *_project_args(settings)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "duel.transform", PRESTARTED, json.dumps(parse)],
            env=self.env,
            cwd=project,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )

    def serves(self, settings: Settings, target: str | None) -> bool:
        """Whether a build of `target` with these settings can run in this process."""
        return (
            self.process is not None
            and not self.started
            and self.target == target
            and dbt_env(settings) == self.env
        )

    def start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        """Run dbt with `args` (and `env`'s variables that differ from the process's own)."""
        if self.process is None or self.started:
            raise RuntimeError("this prestarted dbt process cannot run a build")
        order = {
            "args": args,
            "environ": {name: value for name, value in env.items() if self.env.get(name) != value},
            "unset": [name for name in self.env if name not in env],
        }
        self.started = True
        try:
            if self.process.stdin is not None:  # stdin=PIPE: always a stream
                self.process.stdin.write(json.dumps(order) + "\n")
                self.process.stdin.close()
        except BrokenPipeError:  # it died while parsing: its output and exit code say why
            pass
        return self.process

    def cancel(self) -> None:
        """Stop a process that was not started (it is importing, parsing or waiting)."""
        if self.process is None or self.started:
            return
        self.started = True
        if self.process.poll() is None:
            self.process.terminate()
        _reap(self.process, timeout=30)

    def __enter__(self) -> Prestarted:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.cancel()
        self.finish()

    def finish(self, timeout: float = 120) -> None:
        """Wait for a started process to end (after saying its exit code it only tears its
        interpreter down); one that does not within `timeout` seconds is killed."""
        if self.process is not None:
            _reap(self.process, timeout)


def _reap(process: subprocess.Popen[str], timeout: float) -> None:
    """Wait for `process` (killed after `timeout` seconds), then close its pipes."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def _project_args(settings: Settings) -> list[str]:
    project = str(project_dir(settings))
    return ["--project-dir", project, "--profiles-dir", project]


def skip_unused_imports() -> None:
    """Mark UNUSED_BY_DBT as not installed in this process (an import of one raises ImportError,
    which jsonschema expects of an optional module), before dbt is imported."""
    for name in UNUSED_BY_DBT:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def _prestarted_main(parse: list[str]) -> int:
    """The prestarted process (Prestarted): parse, then run the one build asked for on stdin."""
    skip_unused_imports()
    from dbt.cli.main import dbtRunner
    from dbt.contracts.graph.manifest import Manifest

    keep_connections()

    # quiet: a parse error is reported by the build, which parses again. No manifest.json: the
    # build writes it (dbt's runnable task, after the run)
    parsed = dbtRunner().invoke([*parse, "--quiet", "--log-level", "none", "--no-write-json"])
    manifest = parsed.result if parsed.success and isinstance(parsed.result, Manifest) else None
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    for name in order["unset"]:
        os.environ.pop(name, None)
    os.environ.update(order["environ"])
    result = dbtRunner(manifest=manifest).invoke(order["args"])
    if result.exception is not None:  # as the command line says it (dbt's `cli`)
        print(f"Encountered an error:\n{result.exception}", flush=True)
        return _exited(2)
    return _exited(0 if result.success else 1)


def keep_connections() -> None:
    """dbt-postgres closes a thread's connection after every node and opens a new one for the
    next: a new server process, a SCRAM authentication and empty catalog caches, 129 times in a
    build of 16 models and 101 tests. In duel's dbt processes a thread keeps its connection, made
    as a new one would be after each node: its transaction rolled back (as dbt's close does), then
    DISCARD ALL (temporary tables, session settings, prepared statements, advisory locks; the
    settings the connection was opened with stay) and the profile's `role` set again. A
    connection that cannot be reset is closed, as dbt would have. dbt's own `dbt` command, run
    from a terminal, opens one per node as before; the rows are the same either way
    (bench/analysis.md, twenty-fourth pass, has what it saves)."""
    try:
        from dbt.adapters.postgres.connections import PostgresConnectionManager
    except ImportError:  # no Postgres adapter: nothing to keep
        return

    close_after_each_node = PostgresConnectionManager.release
    if getattr(close_after_each_node, "keeps_connections", False):
        return

    def release(self: PostgresConnectionManager) -> None:
        with self.lock:
            connection = self.get_if_exists()
        if connection is None or connection.state != "open":
            return
        try:
            handle = connection.handle
            handle.rollback()
            connection.transaction_open = False
            credentials = self.get_credentials(connection.credentials)
            handle.autocommit = True
            with handle.cursor() as cursor:
                cursor.execute("discard all")
                if credentials.role:
                    cursor.execute("set role %s", (credentials.role,))
            handle.autocommit = credentials.autocommit is True
        except Exception:  # a broken connection: closed, as dbt closes every one
            close_after_each_node(self)

    release.keeps_connections = True  # type: ignore[attr-defined]
    PostgresConnectionManager.release = release  # type: ignore[method-assign,assignment]


def _dbt_main(args: list[str]) -> None:
    """dbt's command line (what the `dbt` script runs), its connections kept between nodes."""
    skip_unused_imports()
    from dbt.cli.main import cli

    keep_connections()
    cli.main(args=args, prog_name="dbt")


def _exited(code: int) -> int:
    """Say the build's exit code: the run goes on while this process ends. What follows (the
    interpreter's teardown) goes nowhere: no one reads the output now."""
    print(f"{_EXITED}{code}", flush=True)
    sys.stderr.flush()
    nowhere = os.open(os.devnull, os.O_WRONLY)
    os.dup2(nowhere, 1)
    os.dup2(nowhere, 2)
    return code


def _kind(unique_id: str) -> str:
    resource = unique_id.split(".", 1)[0]
    return {
        "model": "models",
        "snapshot": "snapshots",
        "test": "tests",
        "unit_test": "unit tests",
        "seed": "seeds",
    }.get(resource, resource)


def _node_name(unique_id: str) -> str:
    """The node's name: `test.duel.<name>.<hash>` and `model.duel.<name>` give <name>,
    `unit_test.duel.<model>.<name>` gives <name> (never the hash dbt appends to a test's id)."""
    parts = unique_id.split(".")
    if parts[0] == "unit_test" or len(parts) < 3:
        return parts[-1]
    return parts[2]


def _reason(message: str) -> str:
    """The gist of a node's message: its first line, plus the database's or the project's own
    words when the first line only says where the error was ("Database Error in model X
    (path)", "Compilation Error in model X (path)": a macro's raise_compiler_error)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if (
        len(lines) > 1
        and lines[0].startswith(("Database Error", "Compilation Error"))
        and not lines[1].startswith(("compiled code", ">"))
    ):
        return f"{lines[0]}: {lines[1]}"
    return lines[0] if lines else ""


def _read_results(path: Path) -> list[NodeResult] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    nodes = []
    for result in data.get("results", []):
        unique_id = result.get("unique_id", "")
        if unique_id.startswith("operation.") and result.get("status") == "success":
            continue  # a hook (on-run-start's analyze) that ran: not a node of the build
        nodes.append(
            NodeResult(
                _node_name(unique_id),
                _kind(unique_id),
                str(result.get("status")),
                _reason(result.get("message") or ""),
                unique_id,
                result.get("compiled_code") or "",
            )
        )
    return nodes


# The generic test whose rows name the checks that failed (tests/generic/invariants.sql).
INVARIANTS = "invariants"


def _name_failed_checks(
    settings: Settings, failed: list[NodeResult], tests_since: int | None
) -> list[NodeResult]:
    """The failed invariants tests, each with the checks that failed in its message: the test's
    own query, run again in the build's scope (`tests_since`; a failure is rare, and its rows are
    few), gives them. A test that cannot be read back keeps dbt's message."""
    tests = _generic_tests(target_dir(settings) / "manifest.json")
    named = []
    for node in failed:
        if node.status == "fail" and node.compiled_code and tests.get(node.unique_id) == INVARIANTS:
            checks = _failed_checks(settings, node.compiled_code, tests_since)
            if checks:
                node = replace(node, message=f"{node.message}; {checks}")
        named.append(node)
    return named


def _generic_tests(manifest: Path) -> dict[str, str]:
    """{test's unique id: the generic test it is} from dbt's manifest (empty if unreadable)."""
    try:
        nodes = json.loads(manifest.read_text(encoding="utf-8")).get("nodes", {})
    except (OSError, ValueError):
        return {}
    return {
        unique_id: str((node.get("test_metadata") or {}).get("name"))
        for unique_id, node in nodes.items()
        if unique_id.startswith("test.") and node.get("test_metadata")
    }


def _failed_checks(settings: Settings, compiled_code: str, tests_since: int | None) -> str:
    """ "check: 3 rows, other: 5 against 6", by name: what an invariants test's query returns."""
    import psycopg
    from psycopg import sql

    from duel import db

    query = sql.SQL(
        "select failed_check, failing_rows, actual_value, expected_value from ({}) as failures"
    ).format(sql.SQL(compiled_code))  # dbt's compiled test of this project, not user input
    try:
        with db.connect(settings, step=STEP) as connection:
            if tests_since is not None:  # as dbt_env's PGOPTIONS set it for the build
                connection.execute(
                    "select set_config(%s, %s, false)", [TESTS_SINCE_SETTING, str(tests_since)]
                )
            rows = connection.execute(query).fetchall()
    except (psycopg.Error, DatabaseUnavailable):
        return ""
    return ", ".join(
        f"{check}: {_number(rows_broken)} row{'' if rows_broken == 1 else 's'}"
        if rows_broken is not None
        else f"{check}: {_number(actual)} against {_number(expected)}"
        for check, rows_broken, actual, expected in sorted(rows)
    )


def _number(value: object) -> str:
    """A numeric value as it reads: no trailing zeros, NULL for none."""
    if value is None:
        return "NULL"
    text = str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _names(nodes: Iterable[NodeResult]) -> str:
    nodes = list(nodes)
    named = ", ".join(n.name for n in nodes[:MAX_NAMED])
    return named + (f" and {len(nodes) - MAX_NAMED} more" if len(nodes) > MAX_NAMED else "")


def _failure_message(
    failed: list[NodeResult], nodes: list[NodeResult] | None, output: list[str]
) -> str:
    """One line: which models and tests failed, and the first one's reason."""
    if not failed:
        return _last_error(output)
    first = failed[0]
    reason = f" ({first.message})" if first.message else ""
    total = f" of {len(nodes)}" if nodes else ""
    return f"{len(failed)}{total} failed: {_names(failed)}; {first.name}: {first.status}{reason}"


def _last_error(output: list[str]) -> str:
    """The gist of an error dbt printed before it could run anything (parse, connection)."""
    text = [re.sub(r"^\S*\d\d:\d\d:\d\d\s+", "", line).strip() for line in output]
    text = [line for line in text if line]
    for index, line in enumerate(text):
        if line.startswith("Encountered an error"):
            return " ".join(text[index + 1 : index + 4])[:500]
    return text[-1][:500] if text else "dbt printed nothing"


if __name__ == "__main__" and sys.argv[1:2] == [PRESTARTED]:
    sys.exit(_prestarted_main(json.loads(sys.argv[2])))
if __name__ == "__main__" and sys.argv[1:2] == [DBT]:
    _dbt_main(sys.argv[2:])
