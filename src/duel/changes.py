"""Whether a run has anything to do: what changed since the last complete build.

After every `duel run` whose transform, report and export all succeeded, a small record is kept
in `DUEL_HOME/builds/<database>.json`: the last batch the build saw, a hash of the dbt project,
the report and export paths, and when. The next run skips the transform, the report and the
export when all of these hold, so a run with nothing new costs an ingest and nothing more:

- no batch since that one stored a new version or deleted a document, nor delivered intact a
  document the build found stale (that delivery mends it);
- every file a batch since then quarantined repeats the latest delivery of its document the
  build saw (a broken file delivered again in every daily dump: the same bytes, or for a file
  whose bytes were not read, such as one over the size limit, the same reason and size): a
  new broken file, or one that breaks a document delivered intact before, can make a current
  version stale and is counted where the build did not count it, so it is built;
- the database is the one the build wrote (not another made again under its name);
- the dbt project (models, macros, vars) is the same (when it is not, the build is a full
  refresh: duel.transform.build_models);
- the report and the export manifest it wrote are still there.

When only the last does not hold (they are gone, DUEL_OUT moved, or a run on another database,
demo or real, wrote the same `out/` since: `outputs_hold`), the report and the exports are
written again, and nothing is built.

`duel run --force` rebuilds everything anyway.

The record also says where the build's tests left off (`tested_through`: the oldest transaction
still running when they had all passed, in the cluster `cluster`), so the next incremental run
tests only the rows written since (`test_scope`; dbt/duel/macros/incremental.sql says which
tests, and how).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

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
    tested_through: int = 0  # a 64-bit transaction id: every row written before it was tested
    cluster: str = ""  # the server's system identifier and the database's oid
    outputs: str = ""  # sha256 of the report's and the manifest's bytes (outputs_digest)


# Postgres compares 32-bit transaction ids in a circle: one is "after" another within 2^31.
XID_HORIZON = 2**31


def record_path(settings: Settings) -> Path:
    return settings.home / "builds" / f"{settings.database_slug}.json"


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


def outputs_digest(report: Path, manifest: Path) -> str:
    """The report's and the export manifest's bytes, hashed ("" when one cannot be read). The
    manifest holds every exported file's sha256, so it stands for the exports."""
    digest = hashlib.sha256()
    try:
        for path in (report, manifest):
            digest.update(path.read_bytes())
            digest.update(b"\0")
    except OSError:
        return ""
    return digest.hexdigest()


def outputs_hold(settings: Settings, record: BuildRecord) -> bool:
    """Whether the report and the export manifest `record`'s build wrote are where these
    settings write them, with the bytes it wrote: not gone, not moved (DUEL_OUT), not written
    since by a run on another database (demo or real: they share `out/`)."""
    report, manifest = Path(record.report), Path(record.manifest)
    if report.parent != settings.out_dir.resolve():
        return False
    return bool(record.outputs) and outputs_digest(report, manifest) == record.outputs


def read_record(settings: Settings) -> BuildRecord | None:
    """The last complete build's record, None when there is none (or it cannot be read)."""
    try:
        return BuildRecord(**json.loads(record_path(settings).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


# This database's identity, a record's `cluster`: the server's system identifier and the
# database's oid. A database dropped and made again under the same name (`duel db reset`) is
# another database, whatever a record kept under its name says.
DATABASE_IDENTITY = sql.SQL(
    "(select system_identifier from pg_control_system())::text || '/'"
    " || (select oid from pg_database where datname = current_database())::text"
)


def tested_through(settings: Settings) -> tuple[str, int]:
    """(cluster, transaction id) now, after a build whose tests all passed: every row written
    so far was written by a transaction before that id (the oldest one still running)."""
    with db.connect(settings, step="changes") as conn:
        row = conn.execute(
            sql.SQL("select {}, txid_snapshot_xmin(txid_current_snapshot())").format(
                DATABASE_IDENTITY
            )
        ).fetchone()
    if row is None:  # a select without from gives one row
        return "", 0
    return str(row[0]), int(row[1])


def test_scope(settings: Settings) -> int | None:
    """The transaction id the data tests of an incremental build start from: the last complete
    build's `tested_through`, when that build ran the same project on the same database and
    fewer than 2^31 transactions lie between (so 32-bit ids still compare); else None: test
    every row."""
    record = read_record(settings)
    if record is None or not record.tested_through or record.project_hash != project_hash(settings):
        return None
    cluster, now = tested_through(settings)
    if cluster != record.cluster or not 0 <= now - record.tested_through < XID_HORIZON:
        return None
    return record.tested_through


def unchanged_since(settings: Settings) -> BuildRecord | None:
    """The last build's record when nothing has changed since it (see the module doc), else None."""
    record = read_record(settings)
    if record is None:
        return None
    if record.project_hash != project_hash(settings):
        return None
    with db.connect(settings, step="changes") as conn:
        row = conn.execute(
            sql.SQL(
                "select {}, coalesce(bool_or(loaded > 0 or coalesce(deleted, 0) > 0), false),"
                " coalesce(bool_or(quarantined > 0), false)"
                " from raw.batches where batch_id > %(batch)s and status = 'succeeded'"
            ).format(DATABASE_IDENTITY),
            {"batch": record.batch_id},
        ).fetchone()
        if row is not None and not row[1]:
            changed = (row[2] and not _repeats_quarantined(conn, record.batch_id)) or _mends_stale(
                conn, record.batch_id
            )
            row = (row[0], changed)
    # the record is of another database of that name (dropped and made again), or something new
    # arrived since
    if row is None or row[0] != record.cluster or row[1]:
        return None
    return record


# A delivery since the build of a document the build found stale, intact (its current
# version's bytes, so `unchanged`): the next build clears the flag (only stale ones are looked up)
_MENDS_STALE = """
    select exists (
        select 1 from raw.batch_files as delivered
        where delivered.batch_id > %(batch)s
            and delivered.status = 'unchanged'
            and delivered.document_key in (
                select stale.document_key from dbt.base as stale
                where stale.has_newer_quarantined_delivery
            )
    )
"""


# The quarantined deliveries since the build that are not a repeat: a broken file whose
# document's latest delivery the build saw (up to its batch) was not this same quarantined file.
# The same file is the same bytes (its sha256); a file quarantined without its bytes read (over
# the size limit, or unreadable in its archive) is known by its reason and size, all the models
# can see of it (raw.quarantine keeps one row per name and hash, and no bytes), so its daily
# delivery is a repeat too. Each one's latest identical quarantined delivery up to the build is
# found by the ledger's partial index of quarantined rows; then no other delivery of the
# document may lie between that one and the build (a scan of those batches' ledger rows, one
# batch in a daily run of the same dump). A ledger row without a document key is never a repeat.
# (A file's identity: its hash, or `~reason~size` for one without; a hash never starts with ~.)
_NEW_QUARANTINED = """
    with redelivered as (
        select distinct
            document_key,
            coalesce(
                delivered.content_sha256, concat('~', delivered.reason, '~', delivered.byte_size)
            ) as fingerprint
        from raw.batch_files as delivered
        where batch_id > %(batch)s and status = 'quarantined'
    ),
    previous as (
        select
            redelivered.document_key,
            redelivered.fingerprint,
            (
                select max(earlier.batch_id)
                from raw.batch_files as earlier
                where earlier.status = 'quarantined'
                    and earlier.batch_id <= %(batch)s
                    and earlier.document_key = redelivered.document_key
                    and coalesce(
                        earlier.content_sha256, concat('~', earlier.reason, '~', earlier.byte_size)
                    ) = redelivered.fingerprint
            ) as batch_id
        from redelivered
    )
    select
        exists (
            select 1 from previous
            where previous.batch_id is null or previous.document_key is null
        )
        or exists (
            select 1
            from raw.batch_files as between_
            inner join previous
                on between_.document_key = previous.document_key
                and between_.batch_id >= previous.batch_id
            where between_.batch_id between (select min(batch_id) from previous) and %(batch)s
                and not (
                    between_.status = 'quarantined'
                    and coalesce(
                        between_.content_sha256,
                        concat('~', between_.reason, '~', between_.byte_size)
                    ) = previous.fingerprint
                )
        )
"""


def _repeats_quarantined(conn: psycopg.Connection[Any], batch_id: int) -> bool:
    """Whether every file quarantined after `batch_id` repeats a quarantined delivery the build
    of that batch saw as its document's latest (see _NEW_QUARANTINED)."""
    row = conn.execute(_NEW_QUARANTINED, {"batch": batch_id}).fetchone()
    return row is not None and not row[0]


def _mends_stale(conn: psycopg.Connection[Any], batch_id: int) -> bool:
    """Whether a batch after `batch_id` mended a stale document; True without the model (dropped
    since the build: there is something to build)."""
    if conn.execute("select to_regclass('dbt.base') is null").fetchone() == (True,):
        return True
    row = conn.execute(_MENDS_STALE, {"batch": batch_id}).fetchone()
    return bool(row and row[0])


def record_build(
    settings: Settings,
    batch_id: int,
    report: Path,
    manifest: Path,
    tested: tuple[str, int] = ("", 0),
) -> BuildRecord:
    """Remember a complete build (after transform, report and export all succeeded); `tested`:
    `tested_through` taken when its tests had passed."""
    record = BuildRecord(
        batch_id,
        project_hash(settings),
        str(report.resolve()),
        str(manifest.resolve()),
        datetime.now(UTC).isoformat(timespec="seconds"),
        tested_through=tested[1],
        cluster=tested[0],
        outputs=outputs_digest(report, manifest),
    )
    return _write_record(settings, record)


def record_outputs(
    settings: Settings, record: BuildRecord, report: Path, manifest: Path
) -> BuildRecord:
    """`record`'s build with its report and exports written again (no build: nothing had
    changed, but they were not there, or not this database's)."""
    return _write_record(
        settings,
        replace(
            record,
            report=str(report.resolve()),
            manifest=str(manifest.resolve()),
            outputs=outputs_digest(report, manifest),
        ),
    )


def _write_record(settings: Settings, record: BuildRecord) -> BuildRecord:
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(record)), encoding="utf-8")
    temporary.replace(path)
    return record
