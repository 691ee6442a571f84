"""Connections to Postgres, and making sure the configured database and `raw` schema exist.

`ensure_ready(settings)` is what every command that needs the database calls: it uses a server
that already answers at PGHOST:PGPORT (docker compose, a managed server), or starts the embedded
one, then creates the database and the raw schema if they are missing. It returns which server
that was (`Connected`), for the run's summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import psycopg
from psycopg import sql

from duel import server
from duel.exceptions import (
    ConfigError,
    DatabaseMisconfigured,
    DatabaseUnavailable,
    SchemaOutdated,
)
from duel.settings import Settings
from duel.state import ServerRecord


def text_list(values: Iterable[str]) -> str:
    """Many texts as one query parameter, a JSON array, read in SQL as
    `any(array(select jsonb_array_elements_text(%s::jsonb)))`: orjson writes it in C, where
    psycopg dumps a Postgres array parameter element by element in Python (the ingest's key
    lookups take half the time this way: bench/analysis.md)."""
    return orjson.dumps(list(values)).decode()


@dataclass(frozen=True)
class Connected:
    """The server a command used: duel's embedded one (`own`) or another, and whether duel
    started it."""

    host: str
    port: int
    database: str
    own: ServerRecord | None
    started: bool

    def describe(self) -> str:
        where = f"{self.host}:{self.port}"
        if self.own is None:
            return f"another Postgres at {where} (duel did not start it)"
        if self.started:
            return f"duel's embedded server at {where} (started now; data in {self.own.data_dir})"
        since = (self.own.started_at or "?").replace("T", " ").replace("+00:00", " UTC")
        return (
            f"duel's embedded server at {where} (started by duel, running since {since}; data in "
            f"{self.own.data_dir})"
        )


def first_line(error: BaseException) -> str:
    """The first meaningful line of a driver error, for one-line messages."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].strip()


def describe_failure(settings: Settings, error: BaseException, step: str | None = None) -> str:
    where = f"Postgres at {settings.pg_host}:{settings.pg_port} (database {settings.pg_database})"
    prefix = f"{step}: " if step else ""
    return f"{prefix}lost or cannot reach {where}: {first_line(error)}"


def unavailable(
    settings: Settings, error: BaseException, step: str | None = None, **context: Any
) -> DatabaseUnavailable:
    """The one-line DatabaseUnavailable for a driver error, with where and what as attributes."""
    return DatabaseUnavailable(
        describe_failure(settings, error, step),
        host=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
        step=step,
        reason=first_line(error),
        **context,
    )


def connect(
    settings: Settings,
    *,
    database: str | None = None,
    autocommit: bool = False,
    step: str | None = None,
) -> psycopg.Connection[Any]:
    """Open a connection (the only place duel does); a failure becomes a one-line
    DatabaseUnavailable whose `reason` holds the driver's own words."""
    try:
        return psycopg.connect(**settings.conninfo(database), autocommit=autocommit)
    except psycopg.OperationalError as error:
        raise unavailable(settings, error, step) from None


def _check_server(settings: Settings) -> bool:
    """Start the embedded server if nothing answers (True if it did); explain in one line if the
    port is taken or the server refuses us."""
    if not server.probe_port(settings.pg_host, settings.pg_port):
        if settings.embedded and settings.is_loopback:
            server.start(settings)
            return True
        raise DatabaseUnavailable(
            f"nothing answers at {settings.pg_host}:{settings.pg_port}; start Postgres there or "
            "set PGHOST/PGPORT",
            host=settings.pg_host,
            port=settings.pg_port,
        )
    where = {"host": settings.pg_host, "port": settings.pg_port}
    try:
        connect(settings, database="postgres", autocommit=True).close()
    except DatabaseUnavailable as error:
        message = error.reason or ""
        if "authentication" in message or "password" in message or "role" in message:
            raise DatabaseMisconfigured(
                refused_message(settings, message), setting="PGPASSWORD", reason=message, **where
            ) from None
        if "does not exist" in message:
            return False  # no "postgres" maintenance database; the target database may still exist
        if "starting up" in message or "shutting down" in message:
            raise DatabaseUnavailable(
                f"the Postgres at {settings.pg_host}:{settings.pg_port} is starting up or "
                "shutting down; try again in a moment",
                reason=message,
                **where,
            ) from None
        if not settings.is_loopback:  # another machine (or a proxy on the way) answered
            raise DatabaseMisconfigured(
                f"what answers at {settings.pg_host}:{settings.pg_port} is not Postgres "
                f"({message.strip().splitlines()[0] if message.strip() else 'no answer'}); "
                "check PGHOST and PGPORT",
                setting="PGHOST",
                reason=message,
                **where,
            ) from None
        raise DatabaseMisconfigured(
            f"port {settings.pg_port} on {settings.pg_host} is held by a program that does not "
            "answer as Postgres; set PGPORT to a free port",
            setting="PGPORT",
            reason=message,
            **where,
        ) from None
    return False


def refused_message(settings: Settings, message: str) -> str:
    """What to do when a server refuses our user or password: on duel's own server, set the
    password it has or give it ours; on another server, which variables to set."""
    where = f"{settings.pg_host}:{settings.pg_port}"
    if server.is_own(settings, server.running(settings)):
        return (
            f"duel's embedded server at {where} refused user {settings.pg_user} ({message}); set "
            "PGPASSWORD (environment or .env) to the password it was created with, or run `duel db "
            "password` to make PGPASSWORD its password"
        )
    return (
        f"the Postgres at {where} refused user {settings.pg_user} ({message}); it is not duel's "
        "embedded server: set PGUSER/PGPASSWORD for it, or PGHOST/PGPORT to another server (a free "
        "PGPORT starts duel's own there)"
    )


def ensure_database(settings: Settings, *, create: bool = True) -> None:
    """Create the configured database if it is missing (concurrent callers are fine); without
    `create`, DatabaseMisconfigured (one line) says nothing was loaded into it."""
    step = "create database"
    try:
        with connect(settings, database="postgres", autocommit=True, step=step) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (settings.pg_database,)
            ).fetchone()
            if not exists and not create:
                # (raised inside the try: its handler lets through every error but a missing
                # maintenance database, and this one's reason says "missing database")
                raise DatabaseMisconfigured(
                    f"database {settings.pg_database} does not exist on {settings.pg_host}:"
                    f"{settings.pg_port}: nothing was loaded into it; load a dump first (`duel run "
                    "DATA` or `duel ingest DATA`), or set PGDATABASE to the one you loaded",
                    host=settings.pg_host,
                    port=settings.pg_port,
                    database=settings.pg_database,
                    setting="PGDATABASE",
                    reason="missing database",
                )
            if not exists:
                statement = sql.SQL("create database {}").format(
                    sql.Identifier(settings.pg_database)
                )
                # created meanwhile by a concurrent caller: just as good
                with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    conn.execute(statement)
    except DatabaseUnavailable as error:
        if "does not exist" not in (error.reason or ""):
            raise
    except psycopg.OperationalError as error:  # the server went away while we were at it
        if "does not exist" not in first_line(error):
            raise unavailable(settings, error, step) from None


def reset_database(settings: Settings) -> Connected:
    """Drop the configured database (closing its connections) and create it empty, with the raw
    schema. Never the server's maintenance databases."""
    if settings.pg_database in ("postgres", "template0", "template1"):
        raise ConfigError(
            f"refusing to drop {settings.pg_database}, the server's own database; set "
            "PGDATABASE to the database duel uses",
            setting="PGDATABASE",
            database=settings.pg_database,
        )
    ensure_ready(settings)
    with connect(settings, database="postgres", autocommit=True, step="reset") as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(settings.pg_database)
            )
        )
    return ensure_ready(settings)


def raw_schema_sql() -> str:
    return resources.files("duel").joinpath("sql/raw_schema.sql").read_text(encoding="utf-8")


# A database missing any of these gets the (idempotent) DDL run once: a table or index added
# later, such as object_listing or batch_files_quarantined, is created in a database an earlier
# duel made (and what it replaces dropped: quarantine_file the quarantine's primary key, then
# quarantine_source_file quarantine_file), whose rows stay as they are.
RAW_RELATIONS = (
    "batches",
    "user_documents",
    "current_versions",
    "quarantine",
    "batch_files",
    "object_listing",
    "content_aliases",
    "replaced_versions",
    "batch_files_quarantined",
    "quarantine_source_file",
    "model_builds",
)


# Columns added to a raw table later (table, column): a database without one gets the DDL too,
# which adds it (`alter table ... add column if not exists`), its earlier rows NULL.
RAW_COLUMNS = (
    ("batches", "deletes_withheld"),
    ("batches", "files_read"),
    ("batches", "same_content"),
)


def _create_raw_schema(conn: psycopg.Connection[Any]) -> None:
    """The raw schema, its tables, indexes and columns, unless all are there (idempotent DDL,
    under a lock)."""
    tables, columns = zip(*RAW_COLUMNS, strict=True)
    row = conn.execute(
        "select (select count(to_regclass('raw.' || t)) from unnest(%s::text[]) as t) = %s"
        " and (select count(*) from unnest(%s::text[], %s::text[]) as added (t, c)"
        " join pg_attribute as a on a.attrelid = to_regclass('raw.' || added.t)"
        " and a.attname = added.c and not a.attisdropped) = %s",
        (list(RAW_RELATIONS), len(RAW_RELATIONS), list(tables), list(columns), len(RAW_COLUMNS)),
    ).fetchone()
    if row and row[0]:
        _check_raw_version(conn)
        return
    conn.execute("select pg_advisory_xact_lock(hashtext('duel.ddl'))")
    conn.execute(raw_schema_sql())
    _check_raw_version(conn)


def _check_raw_version(conn: psycopg.Connection[Any]) -> None:
    """Refuse, in one line, a raw schema written by an earlier duel (files keyed by their name)."""
    row = conn.execute(
        "select count(*) from information_schema.columns where table_schema = 'raw'"
        " and table_name = 'current_versions' and column_name = 'document_key'"
    ).fetchone()
    if not row or not row[0]:
        database = conn.info.dbname
        raise SchemaOutdated(
            f"database {database} holds a raw schema from an earlier duel (documents keyed by "
            f"file name, not identity); ingest into a new database (set PGDATABASE) or drop "
            f"{database} first",
            database=database,
        )


def ensure_ready(settings: Settings, *, create: bool = True) -> Connected:
    """Server answering, database present, raw schema in place; returns which server that is. The
    common case (the database answers) costs one connection; the checks that explain a failure in
    one line run otherwise. Without `create` (the commands that read what was loaded), a missing
    database is an error, not made empty."""
    started = False
    try:
        conn = connect(settings)
    except DatabaseUnavailable:
        started = _check_server(settings)
        ensure_database(settings, create=create)
        conn = connect(settings, step="create raw schema")
    with conn:
        _create_raw_schema(conn)
    own = server.running(settings)
    return Connected(
        settings.pg_host,
        settings.pg_port,
        settings.pg_database,
        own if server.is_own(settings, own) else None,
        started,
    )
