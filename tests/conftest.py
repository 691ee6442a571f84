"""Shared fixtures: a real embedded Postgres per test session, a throwaway database per test.

Tests never read the developer's own environment or `.env`: settings are built from a fixed
mapping. The real dataset is read from ../shared/data beside the checkout; its absence fails
the run (it is never skipped).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from duel import db, server
from duel.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path(
    os.environ.get("DUEL_REAL_DATA", REPO.parent / "shared" / "data" / "duel-original-10k.tar.gz")
)
# tests/airflow needs Airflow: `make test-airflow` runs it with .venv-airflow's python.
collect_ignore = ["airflow"]
try:
    importlib.metadata.distribution("apache-airflow")
    collect_ignore = []
except importlib.metadata.PackageNotFoundError:
    pass
# tests/spark needs pyspark and dbt-spark: `make test-spark` runs it with .venv-spark's python.
try:
    importlib.metadata.distribution("pyspark")
except importlib.metadata.PackageNotFoundError:
    collect_ignore.append("spark")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files that hold slow tests first, each file's tests in their own order. With the
    Makefile's `--dist loadfile --no-loadscope-reorder`, the two workers start on the long files
    and end on short ones (xdist's default order, by number of tests, left a one-test file of
    70 s for the end, one worker idle)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order kept within


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_home() -> Iterator[Path]:
    """A world-searchable temp dir for the server (it runs as an unprivileged user under root)."""
    home = Path(tempfile.mkdtemp(prefix="duel-test-", dir="/tmp"))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(pg_home: Path) -> Iterator[Settings]:
    """One embedded Postgres for the whole session, on a free loopback port."""
    settings = load_settings(
        {
            "PGPORT": str(free_port()),
            "PGDATABASE": "duel_session",
            "DUEL_HOME": str(pg_home / "state"),
        },
        dotenv=None,
    )
    server.start(settings)
    db.ensure_ready(settings)
    # A throwaway server: Postgres' own non-durable settings for tests (each test creates a
    # database,
    # which otherwise waits on fsync; a crash loses nothing we keep). Tests of crashes use their
    # own.
    with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"alter system set {name} = off")
        conn.execute("select pg_reload_conf()")
    yield settings
    server.stop(settings, immediate=True)  # its data directory is deleted next: no checkpoint


@pytest.fixture
def settings(pg_server: Settings, tmp_path: Path) -> Settings:
    """Settings pointing at a fresh, empty database (with the raw schema) for this test.

    One name per worker process, `duel_t<pid>`, made anew for every test: what the worker's
    earlier tests left under it is dropped first (the database and those named after it, such
    as `<name>_other`, their build records and dbt target directories), all but dbt's partial
    parse state. dbt parses the whole project again for a database name it has not parsed for
    (the connection is part of its parse state): with a new name per test, every test that
    builds paid that whole parse, 4 s of the 7 s a small ingest-and-build takes before its
    first model. The partial parse is valid for any database of that name: dbt checks the
    project's files, vars and environment against it, as for any build."""
    fresh = pg_server.with_overrides(pg_database=f"duel_t{os.getpid()}", out_dir=tmp_path / "out")
    _forget(pg_server, fresh)
    db.ensure_ready(fresh)
    return fresh


def _forget(server: Settings, settings: Settings) -> None:
    """Drop `settings`' database and every database named `<its name>_...`, their build records
    (DUEL_HOME/builds) and their dbt target directories but for the partial parse state."""
    name = settings.pg_database
    with db.connect(server, database="postgres", autocommit=True, step="test") as conn:
        names = [
            row[0]
            for row in conn.execute(
                "select datname from pg_database where datname = %s or starts_with(datname, %s)",
                (name, name + "_"),
            )
        ]
        for each in names:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(each)))
    slug = settings.database_slug

    def named_after(name: str) -> bool:
        return name == slug or name.startswith(slug + "_")

    for record in (settings.home / "builds").glob("*.json"):
        if named_after(record.name.removesuffix(".json")):
            record.unlink()
    for target in (settings.home / "dbt" / "target").glob("*"):
        if not named_after(target.name):
            continue
        for path in target.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.name != "partial_parse.msgpack":
                path.unlink()


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `duel` subprocess gets: only what the test means it to see."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "DUEL_HOME": str(settings.home),
        "DUEL_OUT": str(settings.out_dir),
        **settings.libpq_env(),
    }
    env.update(extra)
    return env


def run_cli(
    settings: Settings, *args: str, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a separate process (python -m duel), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "duel", *args],
        capture_output=True,
        text=True,
        env=cli_env(settings, **extra),
        cwd=cwd or REPO,
        timeout=900,
        check=False,
    )


def query(
    settings: Settings, sql: str, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


# Every schema dbt builds tables in (staging and intermediate are views over raw).
BUILT_SCHEMAS = ("dbt", "dbt_lookup", "dbt_analysis", "dbt_snapshots")


def built_tables(settings: Settings, schemas: tuple[str, ...] = BUILT_SCHEMAS) -> list[str]:
    """schema.table of every table in `schemas`, sorted."""
    return [
        f"{schema}.{table}"
        for schema, table in query(
            settings,
            "select table_schema, table_name from information_schema.tables"
            " where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
            (list(schemas),),
        )
    ]


def every_row(settings: Settings, schemas: tuple[str, ...] = BUILT_SCHEMAS) -> dict[str, list[str]]:
    """Every row of every table in `schemas`, as text, sorted: equal means byte-identical."""
    return {
        table: [row for (row,) in query(settings, f"select t::text from {table} t order by 1")]
        for table in built_tables(settings, schemas)
    }


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_file():
        pytest.fail(f"the real dataset is missing: {REAL_DATA} (CI must provide ../shared/data)")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_dir(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real dataset extracted once into a directory (safe: members are checked first)."""
    target = tmp_path_factory.mktemp("real")
    with tarfile.open(real_data) as archive:
        archive.extractall(target, filter="data")
    return target


@pytest.fixture(scope="session")
def real_built(
    pg_server: Settings, real_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """One database with the real dataset ingested and the dbt project built, shared by the session.

    Read it, never write to it (tests that change data use the per-test `settings` database).
    """
    from duel.load import ingest
    from duel.transform import build_models

    built = pg_server.with_overrides(
        pg_database="duel_real_built", out_dir=tmp_path_factory.mktemp("built-out")
    )
    db.ensure_ready(built)
    ingest(built, real_data)
    # with the unit tests: the other builds of the suite's fixtures leave them out (they test the
    # SQL's logic on fixtures, whatever the data; about a quarter of a small build's time)
    build_models(built)
    return built


@pytest.fixture
def squatter() -> Iterator[int]:
    """A program that holds a port and answers with something that is not Postgres."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()
