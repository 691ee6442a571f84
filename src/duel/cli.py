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
from typing import Any, TypeVar

import click

from duel import __version__
from duel.exceptions import DuelError
from duel.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])
EXIT_STRICT = 2


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn a DuelError into its one-line message and exit code; no tracebacks for user errors."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DuelError as error:
            _fail(error.message, error.exit_code)
        except OSError as error:  # a folder or file we cannot use (not writable, disk full...)
            where = f"{error.filename}: " if error.filename else ""
            _fail(f"{func.__name__.replace('_', ' ')}: cannot write or read {where}{error.strerror or error}")
        except KeyboardInterrupt:
            _fail("interrupted; nothing of the unfinished step was committed", 130)

    return wrapper  # type: ignore[return-value]


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings) or load_settings()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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

@cli.group()
def db() -> None:
    """Manage the embedded Postgres (or check the one PG* variables point to).

    \b
    Example:
      duel db start && duel db url
    """


@db.command("start")
@click.pass_context
@handle_errors
def db_start(ctx: click.Context) -> None:
    """Start the embedded server (initialises it on first use) and ensure the database.

    \b
    Example:
      duel db start
    """
    from duel import db as database
    from duel import server

    settings = _settings(ctx)
    database.ensure_ready(settings)
    click.echo(server.status(settings).detail)


@db.command("stop")
@click.pass_context
@handle_errors
def db_stop(ctx: click.Context) -> None:
    """Stop the embedded server (a server that is not ours is left alone).

    \b
    Example:
      duel db stop
    """
    from duel import server

    settings = _settings(ctx)
    before = server.status(settings)
    server.stop(settings)
    click.echo("embedded server stopped" if before.embedded_running else "embedded server was not running")


@db.command("status")
@click.pass_context
@handle_errors
def db_status(ctx: click.Context) -> None:
    """Say what answers at PGHOST:PGPORT. Exits 1 if nothing does.

    \b
    Example:
      duel db status
    """
    from duel import server

    state = server.status(_settings(ctx))
    click.echo(state.detail)
    if not state.answering:
        sys.exit(1)


@db.command("url")
@click.option("--show-password", is_flag=True, help="Print the password instead of ***.")
@click.pass_context
@handle_errors
def db_url(ctx: click.Context, show_password: bool) -> None:
    """Print the libpq URL of the configured database.

    \b
    Example:
      psql "$(duel db url --show-password)"
    """
    click.echo(_settings(ctx).url(redact=not show_password))


# --- ingest ---------------------------------------------------------------------------------

def dump_options(func: F) -> F:
    """The options that say what a dump is: complete or not, and how its documents are identified."""
    func = click.option("--document-key", metavar="SOURCES", default=None,
                        help="How documents are identified: top-level fields and/or @file, first usable "
                             "wins (default: DUEL_DOCUMENT_KEY, else @file,user_id).")(func)
    func = click.option("--allow-mass-delete", is_flag=True,
                        help="With --full: allow deleting more than half of the current documents.")(func)
    func = click.option("--full", is_flag=True,
                        help="DATA holds every document: delete current documents absent from it "
                             "(refused if more than half would go, unless --allow-mass-delete).")(func)
    return func


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--strict", is_flag=True, help="Exit 2 when any file was quarantined.")
@dump_options
@click.pass_context
@handle_errors
def ingest(ctx: click.Context, data: Path, as_json: bool, strict: bool, full: bool,
           allow_mass_delete: bool, document_key: str | None) -> None:
    """Load DATA into raw: an archive (.tar, .tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz, .zip,
    archives inside it read too), a directory of *.json, or a .json or .ndjson/.jsonl file (also
    .gz, .bz2 or .xz compressed).

    \b
    Examples:
      duel ingest data.tar.gz --json
      duel ingest export-2025-07-24.tar.gz --full      # a complete dump: absent users are deleted
      duel ingest users.ndjson --document-key user_id,email
    """
    from duel import db as database
    from duel.pipeline import ingest_with_progress
    from duel.sources import check_source
    from duel.summary import render_ingest

    settings = _settings(ctx).with_overrides(document_key=document_key)
    check_source(data)
    database.ensure_ready(settings)
    result = ingest_with_progress(settings, data, full=full, allow_mass_delete=allow_mass_delete)
    if as_json:
        click.echo(json.dumps(result.summary()))
    else:
        click.echo(render_ingest(result), err=True)
    if strict and result.quarantined:
        sys.exit(EXIT_STRICT)


# --- generate -------------------------------------------------------------------------------

@cli.command()
@click.option("--users", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="How many user files to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same bytes).")
@click.option("--varied-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of users given 0-3 programs with 0-3 tasks each (the real dump has 1 and 1).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("data.tar.gz"),
              show_default=True, help="A .tar, .tar.gz/.tgz, .tar.bz2/.tbz2 or .tar.xz/.txz file, or a directory "
              "to write into.")
@handle_errors
def generate(users: int, seed: int, varied_rate: float, output: Path) -> None:
    """Write a demo dump shaped like the real one, with its defects, deterministically.

    \b
    Example:
      duel generate --users 10000 --seed 7 -o data.tar.gz
    """
    from duel.generate import write_dataset
    from duel.progress import progress

    with progress(f"writing {output}", total=users) as advance:
        written = write_dataset(output, users=users, seed=seed, varied_rate=varied_rate,
                                on_progress=advance)
    click.echo(f"wrote {written.files} files ({written.malformed} malformed) to {output}", err=True)


# --- transform and docs ---------------------------------------------------------------------

@cli.command()
@click.option("--full-refresh", is_flag=True, help="Rebuild the incremental models from scratch.")
@click.option("--select", "select", multiple=True, metavar="SELECTOR",
              help="Only these dbt nodes (dbt selector syntax); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Show dbt's own log lines on stderr.")
@click.pass_context
@handle_errors
def transform(ctx: click.Context, full_refresh: bool, select: tuple[str, ...], as_json: bool,
              verbose: bool) -> None:
    """Build the dbt models and run their tests (dbt build) on the loaded data.

    \b
    Example:
      duel transform --select staging --select base+
    """
    from duel import db as database
    from duel.progress import progress
    from duel.transform import build_models

    settings = _settings(ctx)
    database.ensure_ready(settings)
    echo = (lambda line: click.echo(line, err=True)) if verbose else None
    with progress("dbt build", unit="nodes") as advance:
        result = build_models(settings, full_refresh=full_refresh, select=select, on_line=echo,
                              on_progress=lambda done, total: advance(1))
    if as_json:
        click.echo(json.dumps(result.summary()))
    click.echo(f"dbt build: {result.describe()}", err=True)


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Port to serve on (127.0.0.1 only).")
@click.option("--no-serve", is_flag=True, help="Only generate the docs; print where they are.")
@click.pass_context
@handle_errors
def docs(ctx: click.Context, port: int, no_serve: bool) -> None:
    """Generate the dbt docs (models, columns, lineage) and serve them on 127.0.0.1 until Ctrl-C.

    \b
    Example:
      duel docs --port 8081    # then open http://127.0.0.1:8081
    """
    from duel import db as database
    from duel.transform import generate_docs, serve_docs

    settings = _settings(ctx)
    database.ensure_ready(settings)
    where = generate_docs(settings)
    if no_serve:
        click.echo(str(where / "index.html"))
        return
    click.echo(f"serving dbt docs on http://127.0.0.1:{port} (Ctrl-C stops)", err=True)
    serve_docs(settings, port)


# --- report and export ----------------------------------------------------------------------

@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory to write report.html into  [default: DUEL_OUT, i.e. out/]")
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
    database.ensure_ready(settings)
    result = build_report(settings, out)
    click.echo(f"report: {result.charts} charts, {result.bytes / 1e6:.1f} MB", err=True)
    click.echo(str(result.path))


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True,
              help="File format of the exports.")
@click.option("--pseudonymize", is_flag=True,
              help="Replace names, emails and handles with stable keyed tokens (key: DUEL_PSEUDONYM_KEY).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory to write into  [default: DUEL_OUT/exports, i.e. out/exports/]")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest's files as JSON on stdout.")
@click.pass_context
@handle_errors
def export(ctx: click.Context, fmt: str, pseudonymize: bool, out: Path | None, as_json: bool) -> None:
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
    database.ensure_ready(settings)
    result = export_models(settings, fmt, out, pseudonymize)
    rows = sum(entry.rows for entry in result.files)
    click.echo(f"exported {len(result.files)} files, {rows:,} rows, to {result.directory}"
               + (" (pseudonymized)" if pseudonymize else ""), err=True)
    if as_json:
        click.echo(json.dumps([asdict(entry) for entry in result.files]))


# --- run ------------------------------------------------------------------------------------

@cli.command()
@click.argument("data", type=click.Path(path_type=Path), default=Path("data.tar.gz"))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--strict", is_flag=True, help="Exit 2 when any file was quarantined.")
@click.option("--force", is_flag=True,
              help="Rebuild the models, report and exports even when nothing changed since the last build.")
@dump_options
@click.pass_context
@handle_errors
def run(ctx: click.Context, data: Path, as_json: bool, strict: bool, full: bool,
        allow_mass_delete: bool, document_key: str | None, force: bool) -> None:
    """Start the database, ingest DATA, then run every later stage; print a summary.

    \b
    Examples:
      duel run data.tar.gz
      duel run export-2025-07-24.tar.gz --full         # a complete dump: absent users are deleted
    """
    from duel.pipeline import run_pipeline
    from duel.summary import render_run

    settings = _settings(ctx).with_overrides(document_key=document_key)
    outcome = run_pipeline(settings, data, full=full, allow_mass_delete=allow_mass_delete, force=force)
    if as_json:
        click.echo(json.dumps(outcome.summary()))
    click.echo(render_run(settings, outcome), err=True)
    if strict and outcome.ingest.quarantined:
        sys.exit(EXIT_STRICT)


def main() -> None:
    cli(prog_name="duel")
