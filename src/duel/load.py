"""The ingest: every input file becomes loaded, unchanged, quarantined or skipped, in one batch.

This module is the database side. A batch is one transaction: it is visible whole or not at
all. Files come in chunks from the read-and-parse pipeline (`duel.parse.read_chunks`: read,
parsed and chunked in a thread a few chunks ahead of the writes, so memory does not grow with the
number of files); for each chunk we look up the current version of each document key, then COPY
the new document versions, move the current-version pointers, store quarantined bytes, and
record every file in the `raw.batch_files` ledger. Runs are serialised by an advisory lock, so
overlapping ingests never duplicate a row.

A file identified by its path whose bytes are already its document's current version is not
parsed (`_KnownVersions`: the read stage asks the database on a connection of its own, as the
database was before the batch); the write stage confirms it unchanged in the batch's own
transaction, and parses it after all when this batch moved its document since. The one
exception kept out of that: a current version that needed a rewriting repair (loaded under the
lenient policy) is parsed again, so a run under the safe policy quarantines it as before.

A document in other bytes than its current version's (a new hash) that holds the same document
as the models read it (compared as jsonb's text: key order, whitespace and escapes aside, every
value and number as written) and parses alike (status, repair record) is that version delivered
again: `unchanged`, with the ledger's reason `same-content` and the version's hash, and nothing
is stored or moved (`_Batch._compare_with_current`, in the query per chunk that finds the
versions stored before, for its documents of known keys only). So an exporter that writes the
same users otherwise changes no table and opens no snapshot row. The other bytes of a file of
its own are recorded (raw.content_aliases): delivered again while that version is current, they
are known by their hash (`_KnownVersions`), not parsed and compared again.

A document delivered more than once in a batch ends at its last copy; when that is the version
it had before the batch, the batch restores its pointer and counts it unchanged
(`_Batch.restore_repeated`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg import postgres, sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from duel import __version__, db, deletes, layout, listing
from duel.exceptions import (
    DatabaseRefused,
    DatabaseUnavailable,
    IdentityCollision,
    KeyRuleChanged,
    LayoutChanged,
    LockTimeout,
    MassDelete,
    SourceError,
)
from duel.identity import CONTENT_PREFIX, KeyRule, is_path_key, key_rule
from duel.parse import KNOWN, Outcome, SeenKeys, read_chunks, reclassify
from duel.repair import Parsed
from duel.settings import Settings
from duel.sources import SourceFile, iter_source

if TYPE_CHECKING:
    from duel.objectstore import S3Location

LOCK_KEY = "duel.ingest"
DOCUMENT_COLUMNS = (
    "document_key",
    "content_sha256",
    "source_name",
    "batch_id",
    "parse_status",
    "parse_error",
    "repair",
    "byte_size",
    "document",
)
DOCUMENT_TYPES = ("text", "text", "text", "int8", "text", "text", "jsonb", "int4", "jsonb")
LEDGER_COLUMNS = (
    "batch_id",
    "file_seq",
    "source_name",
    "status",
    "reason",
    "content_sha256",
    "byte_size",
    "document_key",
)
LEDGER_TYPES = ("int8", "int4", "text", "text", "text", "text", "int8", "text")
_LOADABLE = frozenset(("clean", "repaired"))
# The ledger's reason for a document delivered in other bytes than its current version's that
# hold the same document (_Batch._compare_with_current): `unchanged`, that version delivered again.
SAME_CONTENT = "same-content"
_LOOKED_UP = frozenset(("clean", "repaired", KNOWN))  # outcomes whose key's current version counts
# What a batch counts (IngestResult's fields, raw.batches' columns): files_seen = loaded +
# quarantined + skipped + unchanged counts documents (a file of many users, once per user);
# files_read the files it read, each once; repaired is part of loaded.
COUNTS = (
    "files_read",
    "files_seen",
    "loaded",
    "repaired",
    "quarantined",
    "skipped",
    "unchanged",
    "deleted",
    "keyless",
)


@dataclass(frozen=True)
class IngestResult:
    """The batch summary (`duel ingest --json`). files_seen = loaded+quarantined+skipped+unchanged
    counts documents (an NDJSON file, a JSON array or a wrapped list of users once per user, a
    file skipped as not data once); `files_read` the files (archive members included) the batch
    read, each once, however many documents it held (an object store's objects it did not read
    are not among them: `objects_read`); `deleted` counts the documents a complete (--full) dump
    tombstoned, `keyless` the loaded documents identified by their content (no usable key,
    duel.identity)."""

    batch_id: int
    source: str
    files_read: int = 0
    files_seen: int = 0
    loaded: int = 0
    repaired: int = 0
    quarantined: int = 0
    skipped: int = 0
    unchanged: int = 0
    deleted: int = 0
    keyless: int = 0
    full: bool = False
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    # the unchanged documents that came in other bytes: reason SAME_CONTENT -> how many
    unchanged_reasons: dict[str, int] = field(default_factory=dict)
    # a complete dump holding quarantined documents it could not identify: its deletes withheld
    deletes_withheld: deletes.Deletes = deletes.NONE
    objects_listed: int | None = None  # an object-store source: objects listed, and read
    objects_read: int | None = None

    @classmethod
    def of(
        cls, batch_id: int, source: str, counts: Mapping[str, int], **fields: Any
    ) -> IngestResult:
        """The result of a batch from its `counts` (every name in COUNTS) and other fields."""
        values: dict[str, Any] = {name: counts[name] for name in COUNTS}  # ints, by field name
        return cls(batch_id, source, **values, **fields)

    def summary(self) -> dict[str, int]:
        keys: tuple[str, ...] = ("batch_id", *COUNTS)
        if self.objects_listed is not None:
            keys = (*keys, "objects_listed", "objects_read")
        summary = {key: getattr(self, key) for key in keys}
        if self.deletes_withheld.withheld:
            summary["deletes_withheld"] = self.deletes_withheld.withheld
        if same := self.unchanged_reasons.get(SAME_CONTENT):
            summary["same_content"] = same
        return summary


class _JsonTextDumper(Dumper):
    """Binary COPY of ready-made JSON text (bytes) into a jsonb column: no re-serialising."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj


class _Batch:
    """Writes one batch inside one open transaction and keeps its counts."""

    def __init__(
        self, conn: psycopg.Connection[Any], batch_id: int, policy: str, rule: KeyRule
    ) -> None:
        self.conn = conn
        self.batch_id = batch_id
        self.policy, self.rule = policy, rule
        self.counts = dict.fromkeys(COUNTS, 0)
        self.quarantine_reasons: dict[str, int] = {}
        self.skip_reasons: dict[str, int] = {}
        self.unchanged_reasons: dict[str, int] = {}
        self.seq = 0  # the ledger's file_seq: documents in the order they were seen
        row = conn.execute("select exists (select 1 from raw.current_versions)").fetchone()
        self.seen = None if row and row[0] else SeenKeys()
        # the keys this batch moved, when it began with current versions: a known file's key
        # not among them is still as the read stage saw it (no other ingest writes meanwhile:
        # the ingest lock, and a shard's keys are its own), so it is not looked up again
        self.moved = SeenKeys() if self.seen is None else None
        # the new file documents (duel.layout): none can be a move when the database was empty
        self.new = layout.NewDocuments()
        # the new documents keyed by the rule's field (duel.layout.check_form)
        self.new_lines = layout.new_documents(rule)
        # what the file names' identities leave out (duel.layout.check_collisions)
        self.left_out = layout.LeftOut()
        # where a moved pointer's state before the batch is kept aside (_move_current)
        conn.execute(
            "create temporary table batch_previous_current"
            " (like raw.current_versions, primary key (document_key)) on commit drop"
        )

    def write_chunk(self, chunk: list[Outcome]) -> None:
        """Write a chunk under a savepoint. If the database refuses a value in it (a data
        exception, SQLSTATE class 22: something the parser let through that Postgres cannot
        store), the chunk is rolled back and written again in halves, down to the one document
        that is refused, which is quarantined with the database's reason; the rest loads."""
        state = (
            dict(self.counts),
            dict(self.quarantine_reasons),
            dict(self.skip_reasons),
            dict(self.unchanged_reasons),
            self.seq,
        )
        try:
            with self.conn.transaction():
                self._write_chunk(chunk)
        except psycopg.errors.DataError as error:
            (
                self.counts,
                self.quarantine_reasons,
                self.skip_reasons,
                self.unchanged_reasons,
                self.seq,
            ) = state
            if len(chunk) == 1:
                self._write_chunk([_refused(chunk[0], error)])
                return
            middle = len(chunk) // 2
            self.write_chunk(chunk[:middle])
            self.write_chunk(chunk[middle:])

    def _write_chunk(self, chunk: list[Outcome]) -> None:
        self.left_out.add((o.name, o.key) for o in chunk)
        keys = {o.key for o in chunk if o.status in _LOADABLE and o.key is not None}
        seen_known: dict[str, str] = {}  # known files' keys this batch has not moved: key -> sha
        for o in chunk:
            if o.status == KNOWN and o.key is not None and o.sha256 is not None:
                if self.moved is None or self.moved.may_hold(o.key):
                    keys.add(o.key)
                else:
                    seen_known[o.key] = o.sha256
        # the database started empty: only keys this batch wrote may have a current version
        lookups = keys if self.seen is None else self.seen.check_and_add(keys)
        # key -> current sha256, before this chunk
        known = {**seen_known, **self._current_hashes(lookups)}
        if stale := self._stale_known(chunk, known):
            policy, rule = self.policy, self.rule
            parsed = [
                p for o in chunk for p in (reclassify(o, policy, rule) if id(o) in stale else [o])
            ]
            self._write_chunk(parsed)  # the same lookups again, with the parsed files' keys
            return
        # the loadable documents of keys with a current version: which hold its content in
        # other bytes, and which are versions already stored (a document reverted)
        same, existing = self._compare_with_current(
            [o for o in chunk if o.status in _LOADABLE and o.key in known]
        )
        current = dict(known)
        new_docs: dict[tuple[str, str], Outcome] = {}
        moves: dict[str, Outcome] = {}
        quarantined: list[Outcome] = []
        # (key, bytes' hash, version's hash) of files found to hold their current version in
        # other bytes: known by that hash at their next delivery (raw.content_aliases)
        aliases: list[tuple[str, str, str]] = []
        ledger: list[tuple[Any, ...]] = []  # raw.batch_files rows, ready to COPY
        counts = self.counts
        batch_id = self.batch_id
        seq = self.seq
        for outcome in chunk:
            status = outcome.status
            reason = None
            key = outcome.key
            sha256 = outcome.sha256
            if status in _LOOKED_UP:  # a known file reaching here is its key's current version
                if key is None or sha256 is None:  # parse.classify gives every loadable both
                    raise ValueError(f"{outcome.name}: a loadable document without key or hash")
                if current.get(key) == sha256:
                    status = "unchanged"
                    if outcome.bytes_sha256 is not None:  # known by an alias of its bytes
                        reason = SAME_CONTENT
                        _tally(self.unchanged_reasons, reason)
                elif id(outcome) in same and current.get(key) == known[key]:
                    # its current version in other bytes: that version delivered again
                    status, reason, sha256 = "unchanged", SAME_CONTENT, known[key]
                    _tally(self.unchanged_reasons, reason)
                    if is_path_key(key) and outcome.sha256 is not None:
                        aliases.append((key, outcome.sha256, sha256))
                else:
                    new_docs[(key, sha256)] = outcome
                    moves[key] = outcome
                    current[key] = sha256  # a later copy in this batch is unchanged
                    if key.startswith(CONTENT_PREFIX):
                        counts["keyless"] += 1
                    if status == "clean":
                        status = "loaded"
                    else:  # the ledger says "repaired"; the batch counts it loaded and repaired
                        counts["repaired"] += 1
            elif status == "quarantined":
                reason = outcome.parsed.reason if outcome.parsed else "unknown"
                quarantined.append(outcome)
                _tally(self.quarantine_reasons, reason)
            else:
                status, reason = "skipped", outcome.skip_reason
                _tally(self.skip_reasons, reason)
            counts["loaded" if status == "repaired" else status] += 1
            counts["files_seen"] += 1
            if not outcome.continued:
                counts["files_read"] += 1
            ledger.append(
                (
                    batch_id,
                    seq,
                    outcome.name,
                    status,
                    reason,
                    sha256 or None,
                    outcome.size,
                    key,
                )
            )
            seq += 1
        self.seq = seq
        if self.moved is not None:
            self.moved.check_and_add(moves)
        self._copy_documents([o for key, o in new_docs.items() if key not in existing])
        inserted = [o for key, o in moves.items() if key not in known]
        self._insert_current(inserted)
        if self.seen is None:
            new_keys = [o.key for o in inserted if o.key is not None]
            self.new.add(new_keys)
            self.new_lines.add(new_keys)
        self._move_current([o for key, o in moves.items() if key in known])
        self._store_quarantine(quarantined)
        self._store_aliases(aliases)
        self._copy_ledger(ledger)

    def _stale_known(self, chunk: list[Outcome], known: dict[str, str]) -> set[int]:
        """The known files (by id) to parse after all: those whose document this batch has moved
        since the read stage looked, and those whose key another file of the chunk also has (the
        loop may move it first). Rare: a document delivered twice in one dump."""
        stale: set[int] = set()
        if not any(o.status == KNOWN for o in chunk):
            return stale
        seen: set[str] = set()
        again: set[str] = set()
        for o in chunk:
            if o.key is not None and o.status in _LOOKED_UP:
                (again if o.key in seen else seen).add(o.key)
        for o in chunk:
            if o.status == KNOWN and (known.get(o.key or "") != o.sha256 or o.key in again):
                stale.add(id(o))
        return stale

    def carry_objects(self, plan: listing.ObjectPlan) -> None:
        """The files of the objects the plan did not read, carried into this batch's ledger after
        its own files, and the listing recorded (duel.listing)."""
        counts, reasons = listing.finish_objects(self.conn, plan, self.batch_id, self.seq)
        carried = sum(counts.values())
        self.seq += carried
        self.counts["files_seen"] += carried
        self.counts["unchanged"] += counts.get("unchanged", 0)
        self.counts["skipped"] += counts.get("skipped", 0)
        for reason, count in reasons.items():
            self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + count

    def _current_hashes(self, keys: set[str]) -> dict[str, str]:
        if not keys:
            return {}
        rows = self.conn.execute(
            "select document_key, content_sha256 from raw.current_versions"
            " where document_key = any(array(select jsonb_array_elements_text(%s::jsonb)))",
            (db.text_list(keys),),
            binary=True,
        ).fetchall()
        return dict(rows)

    def _compare_with_current(
        self, outcomes: list[Outcome]
    ) -> tuple[set[int], set[tuple[str, str]]]:
        """Of these loadable documents, whose key has a current version: those (by id) in other
        bytes that hold what that version holds, the same document as the models read it (its
        jsonb, compared as jsonb's text: every key, value and number as written, key order,
        whitespace and escapes aside) parsed alike (status and repair record), which are that
        version delivered again (SAME_CONTENT); and the (key, hash) versions already stored (a
        document reverted to an earlier content), not copied again. One query."""
        if not outcomes:
            return set(), set()
        # one JSON array, each document's text in it as it is (orjson.Fragment): the server
        # parses it once, where five arrays of text were dumped element by element
        delivered = orjson.dumps(
            [
                {
                    "key": o.key,
                    "sha256": o.sha256,
                    "status": _parsed(o).status,
                    "document": orjson.Fragment(_parsed(o).document or b"null"),
                    **(
                        {"repair": orjson.Fragment(repair)}
                        if (repair := repair_json(_parsed(o))) is not None
                        else {}
                    ),
                }
                for o in outcomes
            ]
        )
        rows = self.conn.execute(_COMPARED_WITH_CURRENT, (delivered.decode(),)).fetchall()
        same = {id(outcomes[index - 1]) for index, is_same, _ in rows if is_same}
        stored = {
            (outcomes[index - 1].key or "", outcomes[index - 1].sha256 or "")
            for index, _, is_stored in rows
            if is_stored
        }
        return same, stored

    def _copy_documents(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        statement = (
            f"copy raw.user_documents ({', '.join(DOCUMENT_COLUMNS)}) from stdin (format binary)"
        )
        with self.conn.cursor().copy(statement) as copy:
            copy.set_types(list(DOCUMENT_TYPES))
            write_row, batch_id = copy.write_row, self.batch_id
            for o in outcomes:
                parsed = _parsed(o)
                repair = repair_json(parsed)
                write_row(
                    (
                        o.key,
                        o.sha256,
                        o.name,
                        batch_id,
                        parsed.status,
                        parsed.parse_error,
                        repair,
                        o.size,
                        parsed.document,
                    )
                )

    def _insert_current(self, outcomes: list[Outcome]) -> None:
        """Current-version pointers for keys the database has never seen: a plain COPY."""
        if not outcomes:
            return
        statement = (
            "copy raw.current_versions (document_key, content_sha256, source_name, batch_id)"
            " from stdin (format binary)"
        )
        with self.conn.cursor().copy(statement) as copy:
            copy.set_types(["text", "text", "text", "int8"])
            for outcome in outcomes:
                copy.write_row((outcome.key, outcome.sha256, outcome.name, self.batch_id))

    def _move_current(self, outcomes: list[Outcome]) -> None:
        """Point known keys at their new version (changed or returning documents: few, so one
        update). A pointer's state before the batch is kept aside the first time the batch
        moves it (`restore_repeated`)."""
        if not outcomes:
            return
        self.conn.execute(
            "insert into pg_temp.batch_previous_current"
            " select * from raw.current_versions"
            " where document_key = any(%s::text[]) and batch_id <> %s"
            " on conflict (document_key) do nothing",
            ([o.key for o in outcomes], self.batch_id),
        )
        self.conn.execute(
            "update raw.current_versions c set content_sha256 = m.sha, source_name = m.name,"
            " batch_id = %s, is_deleted = false, updated_at = now()"
            " from unnest(%s::text[], %s::text[], %s::text[]) as m (key, sha, name)"
            " where c.document_key = m.key",
            (
                self.batch_id,
                [o.key for o in outcomes],
                [o.sha256 for o in outcomes],
                [o.name for o in outcomes],
            ),
        )

    def restore_repeated(self) -> None:
        """A document delivered more than once in this batch whose last copy is the version it
        had before the batch: the batch changed nothing for it (its last copy is current, as
        always; here that is where it was). Its pointer gets back its state before the batch
        (which version, from which file and batch, since when), and its deliveries whose
        version was held before the batch are `unchanged`, counted so; a copy with bytes new to
        the database stays `loaded` (its version is stored). So a dump that holds a document
        twice (a tar with a repeated member, NDJSON with a user's record twice), delivered
        again, is nothing changed, and no snapshot records a change that did not happen."""
        if self.seen is not None:  # a first load moved no pointer it had before the batch
            return
        row = self.conn.execute(_RESTORE_REPEATED, {"batch": self.batch_id}).fetchone()
        loaded, repaired = row if row is not None else (0, 0)
        self.counts["loaded"] -= loaded + repaired
        self.counts["repaired"] -= repaired
        self.counts["unchanged"] += loaded + repaired

    def _store_aliases(self, aliases: list[tuple[str, str, str]]) -> None:
        """Record bytes that hold a stored version's content (few: a dump written otherwise
        once); bytes recorded before keep their first record (the same content either way)."""
        if not aliases:
            return
        keys, hashes, versions = (list(column) for column in zip(*aliases, strict=True))
        self.conn.execute(
            "insert into raw.content_aliases"
            " (document_key, alias_sha256, content_sha256, batch_id)"
            " select m.key, m.alias, m.version, %s"
            " from unnest(%s::text[], %s::text[], %s::text[]) as m (key, alias, version)"
            " on conflict (document_key, alias_sha256) do nothing",
            (self.batch_id, keys, hashes, versions),
        )

    def _store_quarantine(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        rows = []
        for o in outcomes:
            parsed = _parsed(o)
            proposed = None
            if parsed.repair is not None and parsed.document is not None:
                proposed = orjson.dumps(
                    {**parsed.repair, "document": orjson.Fragment(parsed.document)}
                )
            rows.append(
                (
                    o.name,
                    o.key,
                    o.sha256,
                    self.batch_id,
                    parsed.reason,
                    parsed.detail,
                    parsed.parse_error,
                    o.size,
                    o.content,
                    proposed.decode() if proposed else None,
                )
            )
        with self.conn.cursor() as cur:
            cur.executemany(
                "insert into raw.quarantine (source_name, document_key, content_sha256, batch_id,"
                " reason, detail, parse_error, byte_size, content, proposed_repair)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
                " on conflict ((sha256(cast(replace(source_name, '\\', '\\\\') as bytea))),"
                " content_sha256) do nothing",
                rows,
            )

    def _copy_ledger(self, rows: list[tuple[Any, ...]]) -> None:
        statement = f"copy raw.batch_files ({', '.join(LEDGER_COLUMNS)}) from stdin (format binary)"
        with self.conn.cursor().copy(statement) as copy:
            copy.set_types(list(LEDGER_TYPES))
            write_row = copy.write_row
            for row in rows:
                write_row(row)


# For each document (its 1-based index in the array): whether it holds, in other bytes, what its
# key's current version holds, compared as jsonb's text, which writes every key and value as the
# models read it (the key order, whitespace and escapes of the bytes do not reach it, a number's
# digits do: 1.50 and 1.5 are two texts; a tombstone holds no document); and whether its
# version is stored already. Each current version is looked up by its key (`offset 0` keeps the
# lookup a lookup: joined, the documents were planned against a scan of every current version,
# 50 ms a chunk at 100k documents).
_COMPARED_WITH_CURRENT = """
    select
        delivered.index,
        coalesce(
            version.parse_status = delivered.parse_status
            and version.repair is not distinct from delivered.repair
            and cast(version.document as text) = cast(delivered.document as text),
            false
        ),
        exists (
            select from raw.user_documents as stored
            where stored.document_key = delivered.document_key
                and stored.content_sha256 = delivered.content_sha256
        )
    from jsonb_array_elements(cast(%s as jsonb)) with ordinality as element (value, index)
    cross join lateral (
        select
            element.index,
            element.value ->> 'key' as document_key,
            element.value ->> 'sha256' as content_sha256,
            element.value ->> 'status' as parse_status,
            element.value -> 'repair' as repair,
            element.value -> 'document' as document
    ) as delivered
    left join lateral (
        select version.parse_status, version.repair, version.document
        from raw.current_versions as current
        inner join raw.user_documents as version
            on version.document_key = current.document_key
            and version.content_sha256 = current.content_sha256
        where current.document_key = delivered.document_key
            and current.content_sha256 <> delivered.content_sha256
            and not current.is_deleted
        offset 0
    ) as version on true
"""


# The pointers this batch moved and then moved back to the version they had before it (see
# _Batch.restore_repeated): each gets its row from before the batch again, and its document's
# deliveries in this batch of a version held before it become `unchanged`. Gives how many of
# those were `loaded` and how many `repaired`.
_RESTORE_REPEATED = """
    with restored as (
        update raw.current_versions as current
        set
            content_sha256 = previous.content_sha256,
            source_name = previous.source_name,
            batch_id = previous.batch_id,
            is_deleted = previous.is_deleted,
            updated_at = previous.updated_at
        from pg_temp.batch_previous_current as previous
        where current.document_key = previous.document_key
            and current.batch_id = %(batch)s
            and current.content_sha256 = previous.content_sha256
            and not current.is_deleted
            and not previous.is_deleted
        returning current.document_key
    ),
    held as (
        select delivered.file_seq, delivered.status
        from raw.batch_files as delivered
        inner join restored on delivered.document_key = restored.document_key
        where delivered.batch_id = %(batch)s
            and delivered.status in ('loaded', 'repaired')
            and exists (
                select from raw.user_documents as version
                where version.document_key = delivered.document_key
                    and version.content_sha256 = delivered.content_sha256
                    and version.batch_id < %(batch)s
            )
    ),
    relabelled as (
        update raw.batch_files as delivered
        set status = 'unchanged', reason = null
        from held
        where delivered.batch_id = %(batch)s and delivered.file_seq = held.file_seq
        returning delivered.file_seq
    )
    select
        count(*) filter (where held.status = 'loaded'),
        count(*) filter (where held.status = 'repaired')
    from held
    inner join relabelled on held.file_seq = relabelled.file_seq
"""


class _KnownVersions:
    """`parse.KnownVersions` on a connection of its own (the read stage runs in another thread
    than the batch's transaction): of the (key, sha256) pairs asked, those that are their key's
    current version, not deleted, and not one that needed a rewriting repair (see module doc),
    with the version's hash: their own, or, for bytes an earlier batch found to hold the
    current version's content in other bytes (raw.content_aliases), that version's. The
    aliases are asked only for the pairs the first query did not find (the changed files of a
    dump in the usual form), and not at all when there are none. It sees the database as
    committed before the batch; `_Batch` checks again in the batch."""

    # a current version that needed a rewriting repair is parsed again (see module doc)
    _NOT_REWRITTEN = sql.SQL("""
            not current.is_deleted
            and not exists (
                select 1 from raw.user_documents as version
                where version.document_key = current.document_key
                    and version.content_sha256 = current.content_sha256
                    and version.repair ->> 'kind' = 'rewritten'
            )
    """)
    _QUERY = sql.SQL("""
        select current.document_key, current.content_sha256
        from raw.current_versions as current
        where current.document_key = any(array(select jsonb_array_elements_text(%s::jsonb)))
            and {}
    """).format(_NOT_REWRITTEN)
    _ALIASES = sql.SQL("""
        select alias.document_key, alias.alias_sha256, alias.content_sha256
        from raw.content_aliases as alias
        inner join raw.current_versions as current
            on current.document_key = alias.document_key
            and current.content_sha256 = alias.content_sha256
        where alias.document_key = any(array(select jsonb_array_elements_text(%s::jsonb)))
            and {}
    """).format(_NOT_REWRITTEN)

    def __init__(self, settings: Settings) -> None:
        self.conn = db.connect(settings, autocommit=True, step="ingest")
        row = self.conn.execute("select exists (select from raw.content_aliases)").fetchone()
        self.has_aliases = bool(row and row[0])

    def __enter__(self) -> _KnownVersions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def __call__(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        rows = self.conn.execute(self._QUERY, (db.text_list(key for key, _ in pairs),), binary=True)
        asked = set(pairs)
        hits = {pair: pair[1] for pair in asked.intersection(rows.fetchall())}
        if not self.has_aliases or len(hits) == len(asked):
            return hits
        missed = {key for key, sha256 in asked if (key, sha256) not in hits}
        aliased = self.conn.execute(self._ALIASES, (db.text_list(missed),), binary=True)
        for key, alias, version in aliased.fetchall():
            if (key, alias) in asked and (key, alias) not in hits:
                hits[(key, alias)] = version
        return hits


def _parsed(outcome: Outcome) -> Parsed:
    """The parse of a loadable or quarantined outcome (parse.classify gives each of them one)."""
    if outcome.parsed is None:
        raise ValueError(f"{outcome.name}: {outcome.status} without a parse result")
    return outcome.parsed


def _refused(outcome: Outcome, error: psycopg.Error) -> Outcome:
    """A document the database refused to store, as a quarantined outcome with its reason."""
    parsed = Parsed(
        "quarantined",
        reason="database-refused",
        detail=f"Postgres refused a value: {db.first_line(error)}"[:500],
    )
    content = outcome.content
    if content is None and outcome.parsed is not None:
        content = outcome.parsed.document  # the text as it would have been stored
    return outcome._replace(status="quarantined", parsed=parsed, content=content)


def repair_json(parsed: Parsed) -> bytes | None:
    """A parse's repair record as JSON text (raw.user_documents.repair)."""
    return orjson.dumps(parsed.repair) if parsed.repair is not None else None


def _tally(counter: dict[str, int], reason: str | None) -> None:
    if reason:
        counter[reason] = counter.get(reason, 0) + 1


def _wait_for_locks(conn: psycopg.Connection[Any], lock_timeout_s: float, *, local: bool) -> None:
    """Make this connection wait up to lock_timeout_s for a lock (for the transaction when
    local, else for the session)."""
    conn.execute(
        "select set_config('lock_timeout', %s, %s)", (f"{int(lock_timeout_s * 1000)}ms", local)
    )


def _lock_busy(lock_timeout_s: float) -> LockTimeout:
    return LockTimeout(
        f"another run holds the ingest lock (waited {lock_timeout_s:g}s): an ingest, or a build "
        "of the models; try again when it finishes, or raise DUEL_LOCK_TIMEOUT"
    )


@contextmanager
def ingests_held_off(settings: Settings, step: str = "transform") -> Iterator[None]:
    """The ingest lock, held exclusively while the block runs (a session lock, on a connection
    of its own), after waiting up to lock_timeout_s for the run that holds it. What a build of
    the models holds (duel.transform.build_models): no batch commits while dbt reads the raw
    tables, so that every model of one build sees the same batches, and what the build records
    it saw and tested (the newest batch, the transaction its tests reach) is read before any
    later batch; an ingest waits for the build, as for another ingest, and a build for an
    ingest still writing."""
    with db.connect(settings, autocommit=True, step=step) as conn:
        _wait_for_locks(conn, settings.lock_timeout_s, local=False)
        try:
            conn.execute("select pg_advisory_lock(hashtext(%s))", (LOCK_KEY,))
        except psycopg.errors.LockNotAvailable:
            raise _lock_busy(settings.lock_timeout_s) from None
        try:
            yield
        finally:  # closing the connection would release it too
            with suppress(psycopg.Error):
                conn.execute("select pg_advisory_unlock(hashtext(%s))", (LOCK_KEY,))


def _open_batch(
    conn: psycopg.Connection[Any],
    source: str,
    shard: str | None,
    lock_timeout_s: float,
    *,
    full: bool = False,
    rule: str | None = None,
) -> int:
    """Take the ingest lock and open the batch row. A whole ingest holds the lock exclusively.
    A shard ("i/n", a slice of one input planned by duel.shards: disjoint by file name) holds it
    shared, plus its own shard's lock: the shards of one plan load side by side, while any
    whole ingest waits for them (and they for it)."""
    _wait_for_locks(conn, lock_timeout_s, local=True)
    try:
        if shard is None:
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (LOCK_KEY,))
        else:
            conn.execute("select pg_advisory_xact_lock_shared(hashtext(%s))", (LOCK_KEY,))
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{LOCK_KEY}:{shard}",))
    except psycopg.errors.LockNotAvailable:
        raise _lock_busy(lock_timeout_s) from None
    conn.execute("set local lock_timeout = 0")
    row = conn.execute(
        "insert into raw.batches"
        " (source_uri, shard, status, is_full, document_key_rule, duel_version)"
        " values (%s, %s, 'running', %s, %s, %s) returning batch_id",
        (source, shard, full, rule, __version__),
    ).fetchone()
    if row is None:  # insert ... returning gives its row
        raise DatabaseRefused("ingest: the database did not open the batch", step="ingest")
    return int(row[0])


def _record_failure(settings: Settings, source: str, shard: str | None, error: str) -> None:
    """Best effort: a failed batch leaves one ledger row saying so, and nothing else."""
    with (
        suppress(DatabaseUnavailable, psycopg.Error),
        db.connect(settings, step="record the failure") as conn,
    ):
        conn.execute(
            "insert into raw.batches"
            " (source_uri, shard, status, finished_at, error, duel_version)"
            " values (%s, %s, 'failed', now(), %s, %s)",
            (source, shard, error[:2000], __version__),
        )


def ingest(
    settings: Settings,
    path: Path | S3Location,
    *,
    files: Iterable[SourceFile] | None = None,
    shard: str | None = None,
    on_file: Callable[[int], None] | None = None,
    full: bool = False,
    allow_mass_delete: bool = False,
    allow_new_layout: bool = False,
    keep: Callable[[Outcome], bool] | None = None,
) -> IngestResult:
    """Ingest `path` (or the given `files` taken from it) as one atomic batch. `full`: the dump
    holds every document, so current documents absent from it are deleted (duel.deletes), within
    the same transaction; a refused mass delete writes nothing. A dump whose files moved to
    another folder depth is refused, writing nothing, unless `allow_new_layout` (duel.layout;
    a shard of several holds only part of the dump: `layout.preflight` checks before the
    shards load). `keep`: only the documents it accepts are this batch's (a shard's share)."""
    if full and shard is not None:
        raise ValueError("a shard is not a complete dump: delete with duel.shards.delete_absent")
    rule = key_rule(settings)
    store = None
    if isinstance(path, Path):
        source_files = files if files is not None else iter_source(path, settings.max_file_bytes)
    else:  # an object store: listed before anything is written; what to read is planned below
        store = _ObjectStore(settings, path)
        source_files = ()
    source = store.listing.uri if store is not None else str(path)
    plan = None
    deleted = deletes.NONE
    conn = db.connect(settings, step="ingest")
    try:
        with conn:
            conn.adapters.register_dumper(None, _JsonTextDumper)
            batch_id = _open_batch(
                conn, source, shard, settings.lock_timeout_s, full=full, rule=rule.text
            )
            layout.check_rule(conn, batch_id, rule.text, allow=allow_new_layout)
            current_before = deletes.count_current(conn) if full else 0

            def load(files: Iterable[SourceFile], plan: listing.ObjectPlan | None) -> _Batch:
                batch = _Batch(conn, batch_id, settings.repair_policy, rule)
                # a first load (no current versions) knows no file; nor a rule read from fields
                look = batch.seen is None and not rule.needs_fields
                with (
                    _KnownVersions(settings) if look else nullcontext() as known,
                    read_chunks(
                        files,
                        settings.repair_policy,
                        rule,
                        workers=settings.workers,
                        chunk_rows=settings.batch_rows,
                        keep=keep if plan is None else _both(keep, plan.track),
                        known=known,
                    ) as chunks,
                ):
                    for chunk in chunks:
                        batch.write_chunk(chunk)
                        if on_file is not None:
                            on_file(len(chunk))
                batch.restore_repeated()
                if plan is not None:
                    batch.carry_objects(plan)
                return batch

            if store is None:
                batch = load(source_files, None)
            else:
                plan = listing.plan_objects(conn, store.listing, rule.text)
                try:
                    with conn.transaction():  # a savepoint: undone if the plan must read all
                        batch = load(store.files(plan.read), plan)
                        if listing.carried_after_read(conn, plan, batch_id):
                            raise _ReadEverything
                except _ReadEverything:
                    plan = listing.read_everything(store.listing)
                    batch = load(store.files(plan.read), plan)
            layout.check_collisions(conn, batch_id, batch.left_out)
            if _holds_whole_dump(shard):
                layout.check(conn, batch_id, batch.new, allow=allow_new_layout)
            # a shard too: a user of the other form is a move unless this shard delivers it
            layout.check_form(
                conn,
                batch_id,
                rule,
                batch.new,
                batch.new_lines,
                allow=allow_new_layout,
                scope="this dump" if _holds_whole_dump(shard) else f"shard {shard} of this dump",
            )
            if full:
                counts = batch.counts
                deleted = deletes.tombstone_absent(
                    conn,
                    batch_id,
                    [batch_id],
                    current_before=current_before,
                    delivered=counts["files_seen"] - counts["skipped"],
                    allow_mass_delete=allow_mass_delete,
                    first_seq=batch.seq,
                )
                batch.counts["deleted"] = deleted.deleted
            if _holds_whole_dump(shard):
                refuse_without_data(source, batch.counts, batch.skip_reasons)
            finish_batch(
                conn,
                batch_id,
                batch.counts,
                withheld=deleted.withheld if full else None,
                same_content=batch.unchanged_reasons.get(SAME_CONTENT, 0),
            )
    except psycopg.Error as error:
        if conn.broken:  # the connection is gone: the server stopped or the network failed
            unavailable = db.unavailable(settings, error, "ingest", path=source)
            _record_failure(settings, source, shard, unavailable.message)
            raise unavailable from None
        # the server answered with an error (disk full, a constraint, a trigger...)
        message = (
            f"ingest: the database refused the batch (Postgres at {settings.pg_host}:"
            f"{settings.pg_port}, database {settings.pg_database}): {db.first_line(error)}"
        )
        _record_failure(settings, source, shard, message)
        raise DatabaseRefused(
            message,
            sqlstate=error.sqlstate,
            host=settings.pg_host,
            port=settings.pg_port,
            database=settings.pg_database,
            step="ingest",
            path=source,
            reason=db.first_line(error),
        ) from None
    except (LockTimeout, MassDelete, LayoutChanged, KeyRuleChanged, IdentityCollision):
        raise  # nothing was written, and there is nothing to record
    except Exception as error:
        _record_failure(settings, source, shard, f"{type(error).__name__}: {error}")
        raise
    finally:
        conn.close()
    return IngestResult.of(
        batch_id,
        source,
        batch.counts,
        full=full,
        quarantine_reasons=batch.quarantine_reasons,
        skip_reasons=batch.skip_reasons,
        unchanged_reasons=batch.unchanged_reasons,
        objects_listed=plan.objects_listed if plan is not None else None,
        objects_read=plan.objects_read if plan is not None else None,
        deletes_withheld=deleted,
    )


def refuse_without_data(source: str, counts: dict[str, int], skip_reasons: dict[str, int]) -> None:
    """A dump with no data file in it (an empty folder, a tar of notes) is a delivery gone
    wrong, not a day with nothing new: SourceError, before anything is committed (both
    engines). A dump of files all unchanged, quarantined or repeated holds data."""
    seen, skipped = counts["files_seen"], counts["skipped"]
    if seen > skipped:
        return
    if not seen:
        raise SourceError(
            f"{source}: holds no file; nothing was loaded (was it copied completely?)"
        )
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(skip_reasons.items()))
    raise SourceError(
        f"{source}: holds no data file (.json, .ndjson, or an archive of them): its {seen} "
        f"file{'' if seen == 1 else 's'} skipped as not data ({reasons}); nothing was loaded"
    )


def _holds_whole_dump(shard: str | None) -> bool:
    """Whether a batch holds the whole dump: not a shard, or the one shard of a plan of one
    (`index/count`, duel.shards.ShardSpec.label)."""
    return shard is None or shard.partition("/")[2] == "1"


class _ReadEverything(Exception):
    """A carried object would have been shadowed by one read before it (duel.listing)."""


class _ObjectStore:
    """An object-store source: its listing (taken at once, so a missing bucket, bad credentials
    or an endpoint that does not answer fail before anything is written) and its files."""

    def __init__(self, settings: Settings, location: S3Location) -> None:
        from duel import objectstore

        self.settings = settings
        self.client = objectstore.open_client(settings)
        self.listing = objectstore.list_location(self.client, location)

    def files(self, objects: list[Any]) -> Iterator[SourceFile]:
        from duel import objectstore

        return objectstore.iter_objects(
            self.client, self.listing, objects, self.settings.max_file_bytes
        )


def _both(
    first: Callable[[Outcome], bool] | None, second: Callable[[Outcome], bool]
) -> Callable[[Outcome], bool]:
    """A `keep` that asks `first` (if any), then `second`, in that order, for every outcome."""
    if first is None:
        return second
    return lambda outcome: first(outcome) and second(outcome)


def finish_batch(
    conn: psycopg.Connection[Any],
    batch_id: int,
    counts: dict[str, int],
    withheld: int | None = None,
    same_content: int = 0,
) -> None:
    """Mark a batch succeeded, with its counts (in the batch's own transaction); `withheld`: a
    complete dump's absent documents not deleted (deletes.Deletes), None for a partial one;
    `same_content`: of the unchanged, those in other bytes (SAME_CONTENT)."""
    conn.execute(
        "update raw.batches set status = 'succeeded', finished_at = clock_timestamp(),"
        " files_read = %(files_read)s, files_seen = %(files_seen)s, loaded = %(loaded)s,"
        " repaired = %(repaired)s,"
        " quarantined = %(quarantined)s, skipped = %(skipped)s, unchanged = %(unchanged)s,"
        " same_content = %(same_content)s,"
        " deleted = %(deleted)s, keyless = %(keyless)s, deletes_withheld = %(withheld)s"
        " where batch_id = %(batch_id)s",
        {**counts, "batch_id": batch_id, "withheld": withheld, "same_content": same_content},
    )


def delete_absent_from(
    settings: Settings, batch_ids: list[int], *, allow_mass_delete: bool = False
) -> IngestResult:
    """A batch of its own that tombstones the current documents none of `batch_ids` delivered:
    the deletes of a complete dump that was loaded as several batches (the DAG's shards)."""
    source = "deletes after batches " + ", ".join(map(str, sorted(batch_ids)))
    counts = dict.fromkeys(COUNTS, 0)
    try:
        with db.connect(settings, step="delete") as conn:
            batch_id = _open_batch(
                conn, source, None, settings.lock_timeout_s, full=True, rule=key_rule(settings).text
            )
            row = conn.execute(
                "select count(*) filter (where status <> 'skipped') from raw.batch_files"
                " where batch_id = any(%s)",
                (batch_ids,),
            ).fetchone()
            delivered = int(row[0]) if row else 0
            current_before = deletes.count_current(conn)  # the shards' new documents included
            deleted = deletes.tombstone_absent(
                conn,
                batch_id,
                batch_ids,
                current_before=current_before,
                delivered=delivered,
                allow_mass_delete=allow_mass_delete,
                first_seq=0,
            )
            counts["deleted"] = deleted.deleted
            finish_batch(conn, batch_id, counts, withheld=deleted.withheld)
    except psycopg.Error as error:
        raise DatabaseRefused(
            f"delete: the database refused the deletes: {db.first_line(error)}",
            sqlstate=error.sqlstate,
            step="delete",
            batches=batch_ids,
            reason=db.first_line(error),
        ) from None
    return IngestResult.of(batch_id, source, counts, full=True, deletes_withheld=deleted)
