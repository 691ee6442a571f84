"""Faults: a real ingest runs in a subprocess (the CLI) and is broken while its batch is underway.

A statement trigger added to the test database slows each ledger COPY down, so "mid-batch" is a
wide, deterministic window rather than a race; the tests poll pg_stat_activity for the ingest's
COPY before they break anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, cli_env, free_port, query
from test_hostile import HANG_GUARD_S, ingest_cli, table_counts

from duel import db, server
from duel.settings import Settings, load_settings

EMPTY = {"batch_files": 0, "user_documents": 0, "current_versions": 0, "quarantine": 0}
REAL_SUMMARY = {
    "files_read": 10000,
    "files_seen": 10000,
    "loaded": 10000,
    "repaired": 222,
    "quarantined": 0,
    "skipped": 0,
    "unchanged": 0,
    "deleted": 0,
    "keyless": 0,
}
SLOW_ROWS = "500"  # 20 ledger COPYs for the real dataset, each slowed down by the trigger below


def slow_down_ledger(settings: Settings, seconds: float = 0.4) -> None:
    """Make every COPY into raw.batch_files sleep: the batch stays open for 20 x `seconds`."""
    with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(
            "create or replace function public.fault_sleep() returns trigger language plpgsql"
            f" as $$ begin perform pg_sleep({seconds}); return null; end $$"
        )
        conn.execute(
            "create trigger fault_sleep after insert on raw.batch_files"
            " for each statement execute function public.fault_sleep()"
        )


def drop_slow_down(settings: Settings) -> None:
    with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("drop trigger fault_sleep on raw.batch_files")


def start_ingest(settings: Settings, data: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "duel", "ingest", str(data), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(settings, **env),
        cwd=REPO,
        start_new_session=True,
    )


def ingest_backends(settings: Settings, copying: bool = False) -> int:
    sql = (
        "select count(*) from pg_stat_activity where datname = %s and application_name = 'duel'"
        " and pid <> pg_backend_pid()"
    )
    if copying:
        sql += " and state = 'active' and query ilike 'copy raw.batch_files%%'"
    return int(query(settings, sql, (settings.pg_database,))[0][0])  # type: ignore[call-overload]


def wait_for(condition: object, what: str, timeout: float = HANG_GUARD_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    return proc.returncode, stdout, stderr


def without_batch_id(summary: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in summary.items() if k != "batch_id"}


def test_ingest_killed_mid_batch_leaves_nothing(settings: Settings, real_data: Path) -> None:
    slow_down_ledger(settings)
    proc = start_ingest(settings, real_data, DUEL_BATCH_ROWS=SLOW_ROWS)
    wait_for(lambda: ingest_backends(settings, copying=True) > 0, "the ingest's COPY")
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and any parse workers it started
    assert finish(proc)[0] == -signal.SIGKILL
    wait_for(lambda: ingest_backends(settings) == 0, "the killed ingest's backend to go")
    assert table_counts(settings) == EMPTY
    assert query(settings, "select count(*) from raw.batches") == [(0,)]
    drop_slow_down(settings)
    rerun = ingest_cli(settings, real_data)
    assert (rerun.returncode, rerun.stderr) == (0, "")
    assert without_batch_id(json.loads(rerun.stdout)) == REAL_SUMMARY
    assert table_counts(settings) == {
        **EMPTY,
        "batch_files": 10000,
        "user_documents": 10000,
        "current_versions": 10000,
    }
    assert query(settings, "select status from raw.batches") == [("succeeded",)]


def test_ingest_overlapping_runs_are_serialised(
    settings: Settings, real_data: Path, real_dir: Path
) -> None:
    """A second run waits for the first (or says another run holds the lock); no row twice."""
    slow_down_ledger(settings)
    first = start_ingest(settings, real_data, DUEL_BATCH_ROWS=SLOW_ROWS)
    wait_for(lambda: ingest_backends(settings, copying=True) > 0, "the first ingest's COPY")
    impatient = ingest_cli(settings, real_dir, DUEL_LOCK_TIMEOUT="1")
    assert (impatient.returncode, impatient.stdout, impatient.stderr) == (
        1,
        "",
        "error: another run holds the ingest lock (waited 1s): an ingest, or a build of the "
        "models; try again when it finishes, or raise DUEL_LOCK_TIMEOUT\n",
    )
    patient = start_ingest(settings, real_dir)
    code, stdout, stderr = finish(first)
    assert (code, stderr, json.loads(stdout)) == (0, "", {"batch_id": 1, **REAL_SUMMARY})
    code, stdout, stderr = finish(patient)
    assert (code, stderr) == (0, "")
    assert json.loads(stdout) == {
        "batch_id": 2,
        "files_read": 10000,
        "files_seen": 10000,
        "loaded": 0,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 10000,
        "deleted": 0,
        "keyless": 0,
    }
    assert query(
        settings,
        "select count(*), count(distinct (source_name, content_sha256)),"
        " count(distinct source_name) from raw.user_documents",
    ) == [(10000, 10000, 10000)]
    assert query(settings, "select batch_id, status from raw.batches order by 1") == [
        (1, "succeeded"),
        (2, "succeeded"),
    ]


@pytest.mark.parametrize(
    ("errcode", "message"),
    [
        (
            "disk_full",
            'could not extend file "base/1/2": No space left on device',
        ),  # disk full (53100)
        ("raise_exception", "value out of budget"),  # any statement that fails (P0001)
    ],
)
def test_ingest_database_error_mid_copy_writes_nothing(
    settings: Settings, real_data: Path, errcode: str, message: str
) -> None:
    """The database refuses a row mid-COPY (a trigger raising, as a full disk or a failing statement
    would): one clear line, exit 1, nothing of the batch kept but its 'failed' ledger row."""
    with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(
            "create function public.refuse() returns trigger language plpgsql as $$ begin"
            f" raise exception '{message}' using errcode = '{errcode}'; end $$"
        )
        conn.execute(
            "create trigger refuse before insert on raw.user_documents for each row"
            " when (new.source_name = 'mixed/user_5000.json') execute function public.refuse()"
        )
    result = ingest_cli(settings, real_data)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "error: ingest: the database refused the batch (Postgres at 127.0.0.1:"
        f"{settings.pg_port}, database {settings.pg_database}): {message}\n"
    )
    assert table_counts(settings) == EMPTY
    assert query(settings, "select status, files_seen, error from raw.batches") == [
        ("failed", None, result.stderr.removeprefix("error: ").strip())
    ]


# --- the database stopped mid-run: a server of its own ----------------------------------------


@pytest.fixture
def own_server() -> Iterator[Settings]:
    """An embedded server for this test alone (the test stops it), with a distinctive password."""
    home = Path(tempfile.mkdtemp(prefix="duel-fault-", dir="/tmp"))
    home.chmod(0o755)
    settings = load_settings(
        {
            "PGPORT": str(free_port()),
            "PGDATABASE": "duel_fault",
            "PGPASSWORD": "fault-S3cret-pw",
            "DUEL_HOME": str(home / "state"),
        },
        dotenv=None,
    )
    server.start(settings)
    db.ensure_ready(settings)
    yield settings
    server.stop(settings)
    subprocess.run(["rm", "-rf", str(home)], check=False)


def test_ingest_database_stopped_mid_run(own_server: Settings, real_data: Path) -> None:
    settings = own_server
    slow_down_ledger(settings)
    proc = start_ingest(settings, real_data, DUEL_BATCH_ROWS=SLOW_ROWS, DUEL_EMBEDDED="false")
    wait_for(lambda: ingest_backends(settings, copying=True) > 0, "the ingest's COPY")
    server._pg("pg_ctl", "stop", "-D", str(settings.pgdata.resolve()), "-m", "immediate", "-w")
    code, stdout, stderr = finish(proc)
    assert (code, stdout) == (1, "")
    prefix = (
        f"error: ingest: lost or cannot reach Postgres at 127.0.0.1:{settings.pg_port} "
        "(database duel_fault): "
    )
    assert stderr.startswith(prefix) and stderr.count("\n") == 1, stderr
    assert "fault-S3cret-pw" not in stderr
    server.start(settings)
    assert table_counts(settings) == EMPTY
    assert query(settings, "select count(*) from raw.batches") == [(0,)]
    drop_slow_down(settings)
    rerun = ingest_cli(settings, real_data, DUEL_EMBEDDED="false")
    assert (rerun.returncode, rerun.stderr) == (0, "")
    assert without_batch_id(json.loads(rerun.stdout)) == REAL_SUMMARY
    assert query(settings, "select status from raw.batches") == [("succeeded",)]


# --- an output folder that cannot be written ---------------------------------------------------


@pytest.mark.parametrize("command", ["export", "report"])
def test_output_folder_not_writable_is_one_line(
    settings: Settings, tmp_path: Path, command: str
) -> None:
    """`--out` under a regular file (as root, permissions would not stop us): exit 1, one line
    naming the folder, no traceback, nothing written."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "out"
    result = subprocess.run(
        [sys.executable, "-m", "duel", command, "--out", str(out)],
        capture_output=True,
        text=True,
        env=cli_env(settings),
        cwd=REPO,
        timeout=HANG_GUARD_S,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert str(out) in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
