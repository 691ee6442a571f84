"""Whether a run has anything to do: what changed since the last complete build.

After every `duel run` whose transform, report and export all succeeded, a small record is kept
in `DUEL_HOME/builds/<database>.json`: the last batch the build saw, a hash of the dbt project,
the report and export paths, and when. The next run skips the transform, the report and the
export when all of these hold, so a run with nothing new costs an ingest and nothing more:

- no batch since that one stored a new version, deleted a document or quarantined a file
  (a quarantined delivery can make a current version stale);
- the dbt project (models, macros, vars) is the same;
- the report and the export manifest it wrote are still there.

`duel run --force` rebuilds everything anyway.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from duel import db
from duel.settings import Settings

PROJECT_SUFFIXES = (".sql", ".yml", ".yaml", ".md", ".csv")


@dataclass(frozen=True)
class BuildRecord:
    """The last complete build of one database."""

    batch_id: int
    project_hash: str
    report: str
    manifest: str
    finished_at: str  # ISO 8601, UTC


def record_path(settings: Settings) -> Path:
    name = re.sub(
        r"[^A-Za-z0-9_.-]", "_", f"{settings.pg_host}_{settings.pg_port}_{settings.pg_database}"
    )
    return settings.home / "builds" / f"{name}.json"


def project_hash(settings: Settings) -> str:
    """A hash of every file of the dbt project that can change what a build produces."""
    digest = hashlib.sha256()
    root = settings.dbt_project_dir
    for path in sorted(
        p
        for p in root.rglob("*")
        if p.suffix in PROJECT_SUFFIXES
        and p.is_file()
        and not {"target", "logs", "dbt_packages"} & set(p.relative_to(root).parts)
    ):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def last_batch_id(settings: Settings) -> int:
    """The newest succeeded batch (0 when there is none)."""
    with db.connect(settings, step="changes") as conn:
        row = conn.execute(
            "select coalesce(max(batch_id), 0) from raw.batches where status = 'succeeded'"
        ).fetchone()
    return int(row[0]) if row else 0


def unchanged_since(settings: Settings) -> BuildRecord | None:
    """The last build's record when nothing has changed since it (see the module doc), else None."""
    path = record_path(settings)
    try:
        record = BuildRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    if record.project_hash != project_hash(settings):
        return None
    if not (Path(record.report).is_file() and Path(record.manifest).is_file()):
        return None
    with db.connect(settings, step="changes") as conn:
        row = conn.execute(
            "select exists (select 1 from raw.batches where batch_id > %s and status = 'succeeded'"
            " and (loaded > 0 or quarantined > 0 or coalesce(deleted, 0) > 0))",
            (record.batch_id,),
        ).fetchone()
    return None if row and row[0] else record


def record_build(settings: Settings, batch_id: int, report: Path, manifest: Path) -> BuildRecord:
    """Remember a complete build (after transform, report and export all succeeded)."""
    record = BuildRecord(
        batch_id,
        project_hash(settings),
        str(report.resolve()),
        str(manifest.resolve()),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(record)), encoding="utf-8")
    temporary.replace(path)
    return record
