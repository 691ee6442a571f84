"""What duel remembers between commands, in DUEL_HOME (default `.duel/`), as plain JSON:

- `server.json`: where duel's embedded server runs (host, port, data directory, started-at, pid),
  written when it starts and kept when it stops (pid and started-at then null), so the next start,
  and every command, finds it at the same address.
- `database.json`: the database the last `duel run` / `duel ingest` loaded, and whether that data
  was the demo (`duel generate`), so `duel transform`, `duel report`, the notebooks and the DAG work
  on what was loaded last.

`duel.settings.load_settings` reads both, below the environment and `.env` and above the
defaults; nothing here reads the environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from duel.exceptions import ConfigError

SERVER_FILE = "server.json"
DATABASE_FILE = "database.json"


@dataclass(frozen=True)
class ServerRecord:
    """Where duel's embedded server runs (pid and started_at are None once it has stopped)."""

    host: str
    port: int
    data_dir: str
    started_at: str | None = None  # ISO 8601, UTC
    pid: int | None = None


@dataclass(frozen=True)
class DatabaseRecord:
    """The database the last run or ingest used, and whether its data was the demo."""

    database: str
    demo: bool
    source: str
    recorded_at: str


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read duel's record ({error.strerror})") from None
    try:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("not an object")
        return value
    except ValueError as error:
        raise ConfigError(
            f"{path}: not a record duel wrote ({error}); delete it, duel writes it again"
        ) from None


def _write(path: Path, value: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file); the file is readable by its owner
    only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.chmod(partial, 0o600)
    partial.replace(path)


def read_server(home: Path) -> ServerRecord | None:
    value = _read(home / SERVER_FILE)
    if value is None:
        return None
    try:
        return ServerRecord(
            host=str(value["host"]),
            port=int(value["port"]),
            data_dir=str(value["data_dir"]),
            started_at=value.get("started_at"),
            pid=value.get("pid"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"{home / SERVER_FILE}: not a record duel wrote (missing or bad {error}); delete it, "
            "duel writes it again"
        ) from None


def write_server(home: Path, record: ServerRecord) -> None:
    _write(home / SERVER_FILE, asdict(record))


def read_database(home: Path) -> DatabaseRecord | None:
    value = _read(home / DATABASE_FILE)
    if value is None:
        return None
    try:
        return DatabaseRecord(
            database=str(value["database"]),
            demo=bool(value["demo"]),
            source=str(value.get("source", "")),
            recorded_at=str(value.get("recorded_at", "")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"{home / DATABASE_FILE}: not a record duel wrote (missing or bad {error}); delete it, "
            "duel writes it again"
        ) from None


def write_database(home: Path, database: str, *, demo: bool, source: Path | str) -> None:
    _write(home / DATABASE_FILE, asdict(DatabaseRecord(database, demo, str(source), now())))
