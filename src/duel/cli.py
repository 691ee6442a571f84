"""The `duel` command: a thin layer over the package. Logs and progress go to stderr.

Exit codes: 0 success; 1 user or data error (one line on stderr); 2 finished but files were
quarantined and --strict asked to fail on that.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from duel import __version__
from duel.exceptions import DuelError, Interrupted, file_error, one_line
from duel.settings import Settings, load_settings

if TYPE_CHECKING:
    from duel.objectstore import S3Location

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")
EXIT_STRICT = 2
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}
ENVIRONMENT = """\b
Environment (also read from a git-ignored .env; flags win over both):
  PGHOST PGPORT  the server; default: where duel's embedded server runs
                 (DUEL_HOME/server.json), else 127.0.0.1 5432
  PGUSER PGPASSWORD  default postgres, pass (the embedded server's)
  PGDATABASE     default: the last run's (DUEL_HOME/database.json), else
                 duel; demo data goes to duel_demo
  DUEL_HOME      duel's state: the embedded server's data (default .duel)
  DUEL_OUT       report and exports (default out)
.env.example lists every variable."""
ENVIRONMENT_S3 = (
    ENVIRONMENT.replace(".env.example lists every variable.", "").rstrip()
    + """
  AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
                 for s3:// DATA, as boto3 reads them (AWS_SESSION_TOKEN,
                 AWS_PROFILE, AWS_MAX_ATTEMPTS too); unset: boto3's defaults
.env.example lists every variable."""
)
NO_ENVIRONMENT = "Reads no environment variables and no .env."


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a DuelError into its one-line message and exit code; no tracebacks for user errors."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DuelError as error:
            _fail(error.message, error.exit_code)
        except OSError as error:  # a folder or file we cannot use (not writable, disk full...)
            _fail(f"{func.__name__.replace('_', ' ')}: {file_error(error)}")
        except Interrupted as error:
            _fail(error.message, 130)
        except KeyboardInterrupt:
            _fail("interrupted; nothing of the unfinished step was committed", 130)

    return wrapper


class DataParam(click.ParamType):
    """DATA: a local path, or an s3:// location (an object, or a prefix of objects)."""

    name = "data"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():  # Path("") is the current directory: never read it unasked
            self.fail("empty; give the dump's path or s3:// location", param, ctx)
        from duel.objectstore import as_input

        try:
            return as_input(value)
        except DuelError as error:
            self.fail(error.message, param, ctx)


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings) or load_settings()


@click.group(context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.version_option(__version__, prog_name="duel")
@click.pass_context
@handle_errors
def cli(ctx: click.Context) -> None:
    """duel: load messy advocacy-platform JSON dumps into Postgres, losslessly, and model them.

    \b
    Example:
      duel run data.tar.gz        # start the database, ingest, build, report
    """
    ctx.obj = load_settings()


# --- database -------------------------------------------------------------------------------


@cli.group(
    short_help="The embedded Postgres: start, stop, status, url, env, password.",
    epilog=ENVIRONMENT,
)
def db() -> None:
    """Manage duel's embedded Postgres, or check the server the PG* variables point to.

    duel records where its embedded server runs in DUEL_HOME/server.json; every command (and dbt,
    the notebooks, the DAG) uses that address unless PGHOST/PGPORT are set.

    \b
    Example:
      duel db start && duel db status
    """


@db.command(
    "start", short_help="Start the embedded server; create the database.", epilog=ENVIRONMENT
)
@click.pass_context
@handle_errors
def db_start(ctx: click.Context) -> None:
    """Start the embedded server (initialised on first use) and create the database.

    Uses the server already answering at PGHOST:PGPORT if there is one; prints which it is.

    \b
    Example:
      duel db start
    """
    from duel import db as database
    from duel import server

    settings = _settings(ctx)
    database.ensure_ready(settings)
    click.echo(server.status(settings).detail)


@db.command("stop", short_help="Stop duel's embedded server.", epilog=ENVIRONMENT)
@click.pass_context
@handle_errors
def db_stop(ctx: click.Context) -> None:
    """Stop duel's embedded server (a server duel did not start is left alone).

    \b
    Example:
      duel db stop
    """
    from duel import server

    settings = _settings(ctx)
    own = server.running(settings)
    server.stop(settings)
    click.echo(
        f"duel's embedded server at {own.host}:{own.port} stopped"
        if own
        else "duel's embedded server was not running"
    )


@db.command(
    "status", short_help="Say what answers at PGHOST:PGPORT, in one line.", epilog=ENVIRONMENT
)
@click.pass_context
@handle_errors
def db_status(ctx: click.Context) -> None:
    """Say in one line what answers at PGHOST:PGPORT: duel's embedded server (where, since when,
    its data directory), another Postgres (which, and that duel did not start it), or nothing.

    Exits 0 when a Postgres answers, 1 otherwise.

    \b
    Example:
      duel db status
    """
    from duel import server

    state = server.status(_settings(ctx))
    click.echo(state.detail)
    if not state.answering:
        sys.exit(1)


@db.command("url", short_help="Print the libpq URL of the database duel uses.", epilog=ENVIRONMENT)
@click.option("--show-password", is_flag=True, help="Print the password instead of ***.")
@click.pass_context
@handle_errors
def db_url(ctx: click.Context, show_password: bool) -> None:
    """Print the libpq URL of the database duel uses.

    \b
    Example:
      psql "$(duel db url --show-password)"
    """
    click.echo(_settings(ctx).url(redact=not show_password))


@db.command("env", short_help="Print `export PG*` lines for psql and dbt.", epilog=ENVIRONMENT)
@click.pass_context
@handle_errors
def db_env(ctx: click.Context) -> None:
    """Print `export PG...=...` lines for the server and database duel uses (password included),
    so psql and dbt in this shell reach them too.

    \b
    Example:
      eval "$(duel db env)" && cd dbt/duel && dbt build
    """
    import shlex

    for name, value in _settings(ctx).libpq_env().items():
        click.echo(f"export {name}={shlex.quote(value)}")


@db.command(
    "password", short_help="Make PGPASSWORD the embedded server's password.", epilog=ENVIRONMENT
)
@click.pass_context
@handle_errors
def db_password(ctx: click.Context) -> None:
    """Make PGPASSWORD (environment or .env) the password of PGUSER on duel's embedded server.

    The old password is not needed: the server stops, the password is changed, and the server
    starts again if it was running.

    \b
    Example:
      echo 'PGPASSWORD=a-new-secret' >> .env && duel db password
    """
    from duel import server

    settings = _settings(ctx)
    server.set_password(settings)
    click.echo(
        f"duel's embedded server: user {settings.pg_user} now has the password in PGPASSWORD "
        f"(from the {settings.origin('PGPASSWORD')})"
    )


@cli.command(
    short_help="Drop and recreate the database duel uses (asks first).", epilog=ENVIRONMENT
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@handle_errors
def reset(ctx: click.Context, yes: bool) -> None:
    """Drop the database duel uses (PGDATABASE, else the last run's, else duel) and create it
    empty, with the raw schema: every batch loaded into it and every model built from it goes.
    The server and its other databases stay. Asks first unless --yes.

    \b
    Example:
      duel reset --yes && duel run data.tar.gz
    """
    from duel import db as database

    settings = _settings(ctx)
    where = database.ensure_ready(settings).describe()
    question = f"Drop database {settings.pg_database} on {where} and create it empty?"
    try:
        confirmed = yes or click.confirm(question, default=False, err=True)
    except click.exceptions.Abort:
        confirmed = False
    if not confirmed:
        _fail(f"not confirmed; database {settings.pg_database} kept (--yes resets without asking)")
    database.reset_database(settings)
    click.echo(f"database {settings.pg_database} dropped and created empty on {where}", err=True)


# --- ingest ---------------------------------------------------------------------------------


def dump_options(func: F) -> F:
    """The options that say what a dump is: complete or not, and how its documents are
    identified."""
    func = click.option(
        "--document-key",
        metavar="SOURCES",
        default=None,
        show_default="DUEL_DOCUMENT_KEY, else @file,user_id",
        help="How documents are identified: top-level fields and/or @file, the first usable wins.",
    )(func)
    func = click.option(
        "--allow-new-layout",
        is_flag=True,
        help="Load a dump whose files moved to another folder depth, delivered in another form "
        "(files of their own, then NDJSON or a JSON array, or back), or keyed by another "
        "--document-key rule than before, as new documents (refused otherwise: its users would "
        "be loaded a second time).",
    )(func)
    func = click.option(
        "--allow-mass-delete",
        is_flag=True,
        help="With --full: allow deleting more than half of the current documents.",
    )(func)
    return click.option(
        "--full",
        is_flag=True,
        help="DATA holds every document: delete current documents absent from it "
        "(refused if more than half would go, unless --allow-mass-delete).",
    )(func)


@cli.command(short_help="Load a dump into the raw schema, as one batch.", epilog=ENVIRONMENT_S3)
@click.argument("data", type=DataParam())
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--strict", is_flag=True, help="Exit 2 when any file was quarantined.")
@click.option(
    "--engine",
    type=click.Choice(["postgres", "spark"]),
    default="postgres",
    show_default=True,
    help="Where raw goes: Postgres, or parquet tables by a local Spark job (`make spark`).",
)
@dump_options
@click.pass_context
@handle_errors
def ingest(
    ctx: click.Context,
    data: Path | S3Location,
    as_json: bool,
    strict: bool,
    engine: str,
    full: bool,
    allow_mass_delete: bool,
    allow_new_layout: bool,
    document_key: str | None,
) -> None:
    """Load DATA into raw: an archive (.tar, .tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz, .zip,
    archives inside it read too), a directory of *.json, or a .json or .ndjson/.jsonl file (also
    .gz, .bz2 or .xz compressed); or the same from S3-compatible storage: s3://bucket/prefix/
    (every object below it, each a .json file, an NDJSON or an archive) or s3://bucket/dump.tar.gz.
    From S3 only the objects new or changed since the last batch (ETag, size) are read.

    Demo data (`duel generate`) goes to the database duel_demo, anything else to duel, unless
    PGDATABASE is set; later commands use that database (recorded in DUEL_HOME/database.json).

    \b
    Example:
      duel ingest data.tar.gz --json
      duel ingest export-2025-07-24.tar.gz --full      # a complete dump: absent users are deleted
      duel ingest users.ndjson --document-key user_id,email
      duel ingest s3://dumps/daily/ --full             # AWS_* variables: see below
      duel ingest data.tar.gz --engine spark           # raw as parquet under DUEL_HOME/spark
    """
    from duel.pipeline import check_input, database_stage, ingest_stage, settings_for_data
    from duel.summary import data_line, render_ingest

    chosen = _settings(ctx).with_overrides(document_key=document_key)
    check_input(chosen, data)
    settings, demo = settings_for_data(chosen, data)
    if engine == "spark":
        from duel.exceptions import ConfigError
        from duel.spark_ingest import spark_ingest

        if full:
            raise ConfigError("--full (deletes) is not done with --engine spark yet")
        if not isinstance(data, Path):
            raise ConfigError("--engine spark reads local dumps only (not s3:// yet)")
        result = spark_ingest(settings, data, allow_new_layout=allow_new_layout)
    else:
        connected = database_stage(settings, data, demo)
        if connected.started:  # a port of its own (PGPORT) is remembered for later commands
            click.echo(f"server: {connected.describe()}", err=True)
        result = ingest_stage(
            settings,
            data,
            full=full,
            allow_mass_delete=allow_mass_delete,
            allow_new_layout=allow_new_layout,
        )
    if as_json:
        click.echo(json.dumps(result.summary()))
    else:
        click.echo(
            render_ingest(result) + ("\n" + data_line(settings, demo) if demo else ""), err=True
        )
    if strict and result.quarantined:
        sys.exit(EXIT_STRICT)


# --- generate -------------------------------------------------------------------------------


@cli.command(short_help="Write a demo dump (demo/demo_user_N.json).", epilog=NO_ENVIRONMENT)
@click.option(
    "--users",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="How many user files to write.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same bytes)."
)
@click.option(
    "--varied-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of users given 0-3 programs with 0-3 tasks each (the real dump has 1 and 1).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("data.tar.gz"),
    show_default=True,
    help="A .tar, .tar.gz/.tgz, .tar.bz2/.tbz2 or .tar.xz/.txz file, or a directory to write into.",
)
@handle_errors
def generate(users: int, seed: int, varied_rate: float, output: Path) -> None:
    """Write a demo dump shaped like the real one, with its defects, deterministically.

    Its files are demo/demo_user_<N>.json, names no real dump uses, and `duel run` / `duel ingest`
    load it into its own database, duel_demo, unless PGDATABASE is set.

    \b
    Example:
      duel generate --users 10000 --seed 7 -o data.tar.gz
    """
    from duel.generate import write_dataset
    from duel.progress import progress

    with progress(f"writing {output}", total=users) as advance:
        written = write_dataset(
            output, users=users, seed=seed, varied_rate=varied_rate, on_progress=advance
        )
    click.echo(
        f"wrote {written.files} demo files ({written.malformed} malformed) to {output}", err=True
    )


# --- transform and docs ---------------------------------------------------------------------


@cli.command(short_help="Build the dbt models and run their tests.", epilog=ENVIRONMENT)
@click.option("--full-refresh", is_flag=True, help="Rebuild the incremental models from scratch.")
@click.option(
    "--select",
    "select",
    multiple=True,
    metavar="SELECTOR",
    help="Only these dbt nodes (dbt selector syntax); repeatable.  [default: every node]",
)
@click.option(
    "--target",
    metavar="OUTPUT",
    default=None,
    show_default="local: Postgres",
    help="The profiles.yml output to build on: local (Postgres) or spark (`make spark`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Show dbt's own log lines on stderr.")
@click.pass_context
@handle_errors
def transform(
    ctx: click.Context,
    full_refresh: bool,
    select: tuple[str, ...],
    target: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Build the dbt models and run their tests (dbt build) on the loaded data.

    \b
    Example:
      duel transform --select staging --select base+
      duel transform --target spark      # a local Spark session, tables under DUEL_HOME/spark
    """
    from duel import db as database
    from duel.pipeline import transform_stage
    from duel.progress import progress
    from duel.transform import is_postgres

    settings = _settings(ctx)
    if is_postgres(target):
        database.ensure_ready(settings, create=False)
    echo = (lambda line: click.echo(line, err=True)) if verbose else None
    with progress("dbt build", unit="nodes") as advance:
        result = transform_stage(
            settings,
            production=False,  # the development build: unit tests included
            full_refresh=full_refresh,
            select=select,
            on_line=echo,
            on_progress=lambda done, total: advance(1),
            target=target,
        )
    if as_json:
        click.echo(json.dumps(result.summary()))
    click.echo(f"dbt build: {result.describe()}", err=True)


@cli.command(short_help="Serve the dbt docs and lineage on 127.0.0.1.", epilog=ENVIRONMENT)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8580,
    show_default=True,
    help="Port to serve on (127.0.0.1 only).",
)
@click.option("--no-serve", is_flag=True, help="Only generate the docs; print where they are.")
@click.pass_context
@handle_errors
def docs(ctx: click.Context, port: int, no_serve: bool) -> None:
    """Generate the dbt docs (models, columns, lineage) and serve them on 127.0.0.1 until Ctrl-C.

    \b
    Example:
      duel docs --port 8581    # then open http://127.0.0.1:8581
    """
    from duel import db as database
    from duel.transform import generate_docs, serve_docs

    settings = _settings(ctx)
    database.ensure_ready(settings, create=False)
    where = generate_docs(settings)
    if no_serve:
        click.echo(str(where / "index.html"))
        return
    click.echo(f"serving dbt docs on http://127.0.0.1:{port} (Ctrl-C stops)", err=True)
    serve_docs(settings, port)


# --- report and export ----------------------------------------------------------------------


@cli.command(short_help="Write the self-contained report.html.", epilog=ENVIRONMENT)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write report.html into  [default: DUEL_OUT, i.e. out/]",
)
@click.pass_context
@handle_errors
def report(ctx: click.Context, out: Path | None) -> None:
    """Write a self-contained report.html (charts work offline) from the dbt_analysis models.

    Prints the report's path on stdout.

    \b
    Example:
      duel report --out out/ && xdg-open out/report.html
    """
    from duel import db as database
    from duel.report import build_report

    settings = _settings(ctx)
    database.ensure_ready(settings, create=False)
    result = build_report(settings, out)
    click.echo(f"report: {result.charts} charts, {result.bytes / 1e6:.1f} MB", err=True)
    click.echo(str(result.path))


@cli.command(short_help="Export the analysis and core models (csv/parquet).", epilog=ENVIRONMENT)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    show_default=True,
    help="File format of the exports.",
)
@click.option(
    "--pseudonymize",
    is_flag=True,
    help="Replace names, emails and handles with stable keyed tokens (key: DUEL_PSEUDONYM_KEY).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write into  [default: DUEL_OUT/exports, i.e. out/exports/]",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the manifest's files as JSON on stdout."
)
@click.pass_context
@handle_errors
def export(
    ctx: click.Context, fmt: str, pseudonymize: bool, out: Path | None, as_json: bool
) -> None:
    """Export every dbt_analysis model and dbt.base, dbt.advocacy_programs, dbt.tasks_completed.

    One <schema>.<table>.csv|parquet file per model, and a manifest.json with each file's rows,
    bytes and sha256.

    \b
    Example:
      duel export --format parquet --pseudonymize --out shared-dump/
    """
    from dataclasses import asdict

    from duel import db as database
    from duel.export import export_models

    settings = _settings(ctx)
    database.ensure_ready(settings, create=False)
    result = export_models(settings, fmt, out, pseudonymize)
    rows = sum(entry.rows for entry in result.files)
    click.echo(
        f"exported {len(result.files)} files, {rows:,} rows, to {result.directory}"
        + (" (pseudonymized)" if pseudonymize else ""),
        err=True,
    )
    if as_json:
        click.echo(json.dumps([asdict(entry) for entry in result.files]))


# --- run ------------------------------------------------------------------------------------


@cli.command(short_help="Database, ingest, dbt build, report, export.", epilog=ENVIRONMENT_S3)
@click.argument("data", type=DataParam(), default="data.tar.gz")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--strict", is_flag=True, help="Exit 2 when any file was quarantined.")
@click.option(
    "--force",
    is_flag=True,
    help="Rebuild the models, report and exports even when nothing changed since the last build.",
)
@dump_options
@click.pass_context
@handle_errors
def run(
    ctx: click.Context,
    data: Path | S3Location,
    as_json: bool,
    strict: bool,
    full: bool,
    allow_mass_delete: bool,
    allow_new_layout: bool,
    document_key: str | None,
    force: bool,
) -> None:
    """Start the database, ingest DATA, then run every later stage; print a summary.

    DATA is what `duel ingest` reads (an archive: .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz, .zip;
    a directory of *.json; a .json or .ndjson/.jsonl file, also compressed)
    [default: ./data.tar.gz], or s3://bucket/prefix/ or s3://bucket/dump.tar.gz. Demo data
    (`duel generate`) goes to the database duel_demo, anything else to duel, unless PGDATABASE
    is set. The summary names the server used (duel's embedded
    one, or another Postgres) and whether duel started it.

    \b
    Example:
      duel run data.tar.gz
      duel run export-2025-07-24.tar.gz --full         # a complete dump: absent users are deleted
      duel run s3://dumps/daily/                       # only new or changed objects are read
    """
    from duel.pipeline import run_pipeline
    from duel.summary import render_run

    settings = _settings(ctx).with_overrides(document_key=document_key)
    outcome = run_pipeline(
        settings,
        data,
        full=full,
        allow_mass_delete=allow_mass_delete,
        allow_new_layout=allow_new_layout,
        force=force,
    )
    if as_json:
        click.echo(json.dumps(outcome.summary()))
    click.echo(render_run(settings, outcome), err=True)
    if strict and outcome.ingest.quarantined:
        sys.exit(EXIT_STRICT)


def main() -> None:
    cli(prog_name="duel")
