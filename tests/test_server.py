"""duel.server: the embedded Postgres starts, answers on loopback only, stops."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
from conftest import free_port, run_cli

from duel import db, server
from duel.settings import Settings, load_settings


def _own_server(pg_home: Path, name: str) -> Settings:
    return load_settings({"PGPORT": str(free_port()), "PGDATABASE": "duel",
                          "DUEL_HOME": str(pg_home / name)}, dotenv=None)


def test_server_lifecycle_through_cli(pg_home: Path) -> None:
    settings = _own_server(pg_home, "lifecycle")
    port, pgdata = settings.pg_port, (pg_home / "lifecycle" / "pgdata").resolve()
    status = run_cli(settings, "db", "status")
    assert (status.returncode, status.stdout) == (1, f"nothing answers at 127.0.0.1:{port}\n")
    started = run_cli(settings, "db", "start")
    assert (started.returncode, started.stdout) == (
        0, f"embedded server running at 127.0.0.1:{port}, data in {pgdata}\n")
    try:
        again = run_cli(settings, "db", "start")
        assert (again.returncode, again.stdout) == (0, started.stdout)
        with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
            assert conn.execute("select count(*) from information_schema.tables where table_schema = 'raw'"
                                ).fetchone() == (5,)
            assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
            assert conn.execute("show unix_socket_directories").fetchone() == ("",)
    finally:
        stopped = run_cli(settings, "db", "stop")
    assert (stopped.returncode, stopped.stdout) == (0, "embedded server stopped\n")
    assert run_cli(settings, "db", "stop").stdout == "embedded server was not running\n"


def test_server_is_not_reachable_off_loopback(pg_server: Settings) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outward address
    outward = probe.getsockname()[0]
    probe.close()
    assert outward != "127.0.0.1"
    assert server.probe_port(outward, pg_server.pg_port) is False


def test_ensure_ready_uses_a_running_server_and_creates_the_database(pg_server: Settings) -> None:
    fresh = pg_server.with_overrides(pg_database="created_by_ensure_ready", embedded=False)
    db.ensure_ready(fresh)
    db.ensure_ready(fresh)  # idempotent
    with psycopg.connect(**fresh.conninfo()) as conn:  # type: ignore[arg-type]
        tables = conn.execute("select table_name from information_schema.tables where table_schema = 'raw'"
                              " order by 1").fetchall()
    assert tables == [("batch_files",), ("batches",), ("current_versions",), ("quarantine",), ("user_documents",)]
