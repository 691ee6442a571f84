"""The `duel` CLI as a user runs it: exit codes and the exact one-line errors."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from conftest import REPO, free_port, run_cli

from duel.cli import cli
from duel.settings import Settings


def test_ingest_json_summary(settings: Settings, real_data: Path) -> None:
    result = run_cli(settings, "ingest", str(real_data), "--json")
    assert (result.returncode, json.loads(result.stdout)) == (0, {
        "batch_id": 1, "files_seen": 10000, "loaded": 10000, "repaired": 222, "quarantined": 0,
        "skipped": 0, "unchanged": 0, "deleted": 0, "keyless": 0})


def test_ingest_strict_exits_2_when_quarantined(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "user_1.json").write_bytes(b"not json at all")
    result = run_cli(settings, "ingest", str(tmp_path), "--json", "--strict")
    assert (result.returncode, json.loads(result.stdout)) == (2, {
        "batch_id": 1, "files_seen": 1, "loaded": 0, "repaired": 0, "quarantined": 1, "skipped": 0,
        "unchanged": 0, "deleted": 0, "keyless": 0})


def test_ingest_human_summary_on_stderr(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "user_1.json").write_bytes(b"[]")
    (tmp_path / "._user_1.json").write_bytes(b"\x00")
    result = run_cli(settings, "ingest", str(tmp_path))
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines() == [
        f"batch 1 from {tmp_path}",
        "  files seen           2",
        "  loaded               0  (repaired 0)",
        "  unchanged            0",
        "  quarantined          1  (not-an-object 1)",
        "  skipped              1  (macos-metadata 1)",
        "  quarantined files: select * from raw.quarantine where batch_id = 1;",
    ]


def test_ingest_missing_path(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, "ingest", str(tmp_path / "nope.tar.gz"))
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"error: no such file or directory: {tmp_path}/nope.tar.gz\n")


def test_ingest_unsupported_file(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = run_cli(settings, "ingest", str(tmp_path / "notes.txt"))
    assert (result.returncode, result.stderr) == (
        1, f"error: {tmp_path}/notes.txt: not a supported input; give a directory or a .tar, .tar.gz/.tgz, "
           ".tar.bz2/.tbz2, .tar.xz/.txz, .zip, .json or .ndjson/.jsonl file (.json and .ndjson may be .gz, .bz2 "
           "or .xz compressed)\n")


def test_ingest_corrupt_archive_writes_nothing(settings: Settings, tmp_path: Path, real_data: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(real_data.read_bytes()[:700_000])
    result = run_cli(settings, "ingest", str(cut))
    assert result.returncode == 1
    assert re.fullmatch(rf"error: {cut}: archive is corrupt after \d+ members \(.+\)\n", result.stderr)
    from conftest import query

    assert query(settings, "select count(*) from raw.user_documents") == [(0,)]
    assert query(settings, "select status, files_seen from raw.batches") == [("failed", None)]


def test_ingest_unreachable_database(settings: Settings, real_data: Path) -> None:
    port = free_port()
    result = run_cli(settings, "ingest", str(real_data), PGPORT=str(port), DUEL_EMBEDDED="false")
    assert (result.returncode, result.stderr) == (
        1, f"error: nothing answers at 127.0.0.1:{port}; start Postgres there or set PGHOST/PGPORT\n")


def test_ingest_wrong_password_is_named_without_leaking_it(settings: Settings, real_data: Path) -> None:
    result = run_cli(settings, "ingest", str(real_data), PGPASSWORD="s3cret-wrong")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: the Postgres at 127.0.0.1:{settings.pg_port} refused user postgres (connection failed: "
        f"connection to server at \"127.0.0.1\", port {settings.pg_port} failed: FATAL:  password "
        "authentication failed for user \"postgres\"); set PGUSER/PGPASSWORD for it, or PGPORT to a free "
        "port for the embedded server\n")
    assert "s3cret-wrong" not in result.stderr


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


def test_ingest_port_held_by_another_program(settings: Settings, real_data: Path, squatter: int) -> None:
    result = run_cli(settings, "ingest", str(real_data), PGPORT=str(squatter))
    assert (result.returncode, result.stderr) == (
        1, f"error: port {squatter} on 127.0.0.1 is held by a program that does not answer as Postgres; "
           "set PGPORT to a free port\n")


def test_bad_setting_is_one_line(settings: Settings) -> None:
    result = run_cli(settings, "db", "url", PGPORT="fifty")
    assert (result.returncode, result.stderr) == (1, "error: PGPORT must be a whole number, got 'fifty'\n")


def test_db_url_hides_password(settings: Settings) -> None:
    result = run_cli(settings, "db", "url")
    assert (result.returncode, result.stdout) == (
        0, f"postgresql://postgres:***@127.0.0.1:{settings.pg_port}/{settings.pg_database}\n")
    shown = run_cli(settings, "db", "url", "--show-password")
    assert shown.stdout == f"postgresql://postgres:pass@127.0.0.1:{settings.pg_port}/{settings.pg_database}\n"


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_command_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    undocumented = [name for name, command in _commands(cli)
                    if "Example" not in (command.help or "") or f"duel {name}" not in readme]
    assert undocumented == []
