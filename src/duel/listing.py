"""Incremental object-store ingest: which objects of a listing a batch reads, and the ledger of
the others.

`raw.object_listing` keeps, per source (`s3://bucket/prefix/`) and object, the ETag and size
last listed, the batch that last listed it, where that batch's ledger holds the object's files
(`file_seq` from `first_seq`, `file_count` of them), and the batch that last read its bytes.

A batch reads only the objects that are new, or whose ETag or size changed. Every other object's
files are carried into the batch's ledger from that range without a GET (status `unchanged`,
reason `object-unchanged`; its skipped files stay skipped), so the ledger still accounts for
every file of the dump, a complete (--full) dump deletes only what is gone from the prefix, and
a second run over an unchanged prefix reads no body and stores nothing. An object whose ETag and
size are the same is read again all the same when:

- any of its files was quarantined (whether a file loads depends on settings too: DUEL_REPAIR,
  DUEL_MAX_FILE_BYTES), as a local file would be;
- a document it delivered is no longer current with that content (another delivery or a delete
  replaced it), so reading it makes it current again, as reading a local file would;
- the batch that listed it used another document key rule.

A carried object listed after a read object that delivered one of its document keys would let
the earlier object's document be current, where reading the whole listing in order (as a local
dump is read) leaves the later one current: the batch then reads every object, in order.

What is read is verified by its content: an object whose ETag changed but whose documents did
not (uploaded again, or in parts) stores nothing new, its documents `unchanged` by sha256.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from duel.objectstore import Listing, ObjectInfo
from duel.parse import Outcome

UNCHANGED_REASON = "object-unchanged"

_PREVIOUS = """
    select listed.object_key, listed.etag, listed.byte_size, listed.batch_id, listed.first_seq,
        listed.file_count, listed.read_batch_id,
        batch.document_key_rule is not distinct from %(rule)s and not exists (
            select 1 from raw.batch_files as file
            where file.batch_id = listed.batch_id
                and file.file_seq >= listed.first_seq
                and file.file_seq < listed.first_seq + listed.file_count
                and (file.status = 'quarantined' or (
                    file.status in ('loaded', 'repaired', 'unchanged') and not exists (
                        select 1 from raw.current_versions as current
                        where current.document_key = file.document_key
                            and current.content_sha256 = file.content_sha256
                            and not current.is_deleted
                    )
                ))
        ) as is_reusable
    from raw.object_listing as listed
    inner join raw.batches as batch on batch.batch_id = listed.batch_id
    where listed.source_uri = %(source)s
"""


# Ledger files looked up one by one, each on the whole primary key, from three arrays with an
# element per file (`expand`): its batch, its file_seq and a tag the query carries along. (A join
# on ranges of file_seqs is planned as a scan of the whole batch per range: over 10 minutes for a
# listing of 100,000 objects.)
_WANTED_FILES = sql.SQL("""
    from unnest(%(batches)s::bigint[], %(seqs)s::int[], %(tags)s::int[])
        as wanted (batch_id, file_seq, tag)
    inner join raw.batch_files as file
        on file.batch_id = wanted.batch_id and file.file_seq = wanted.file_seq""")

# The carried files (their tag: the file_seq each gets in this batch's ledger, after the batch's
# own files); counted by status and reason.
_CARRY = sql.SQL("""
    with carried as (
        insert into raw.batch_files (batch_id, file_seq, source_name, status, reason,
            document_key, content_sha256, byte_size)
        select %(batch)s, wanted.tag, file.source_name,
            case when file.status = 'skipped' then 'skipped' else 'unchanged' end,
            case when file.status = 'skipped' then file.reason else %(reason)s end,
            file.document_key, file.content_sha256, file.byte_size
        {files}
        returning status, reason
    )
    select status, reason, count(*) from carried group by 1, 2
""").format(files=_WANTED_FILES)


def expand(ranges: Sequence[tuple[int, int, int, int]]) -> tuple[list[int], list[int], list[int]]:
    """Ranges of ledger files (batch_id, first_seq, file_count, tag) as one element per file, in
    order: (batch ids, file_seqs, tags), each file with its range's tag."""
    batches: list[int] = []
    seqs: list[int] = []
    tags: list[int] = []
    for batch_id, first, count, tag in ranges:
        batches.extend([batch_id] * count)
        seqs.extend(range(first, first + count))
        tags.extend([tag] * count)
    return batches, seqs, tags


_UPSERT = """
    insert into raw.object_listing as listed (source_uri, object_key, etag, byte_size, batch_id,
        first_seq, file_count, read_batch_id)
    select %(source)s, object.key, object.etag, object.size, %(batch)s, object.first_seq,
        object.file_count, object.read_batch_id
    from unnest(%(keys)s::text[], %(etags)s::text[], %(sizes)s::bigint[], %(firsts)s::int[],
        %(counts)s::int[], %(reads)s::bigint[])
        as object (key, etag, size, first_seq, file_count, read_batch_id)
    on conflict (source_uri, object_key) do update set etag = excluded.etag,
        byte_size = excluded.byte_size, batch_id = excluded.batch_id,
        first_seq = excluded.first_seq, file_count = excluded.file_count,
        read_batch_id = excluded.read_batch_id
"""


@dataclass(frozen=True)
class Previous:
    """Where a listed object's files are in the ledger of the batch that last listed it."""

    batch_id: int
    first_seq: int
    file_count: int
    read_batch_id: int


@dataclass
class ObjectPlan:
    """The objects a batch reads and those it carries; `track` (the ingest's `keep`) sees every
    outcome in ledger order and records where each read object's files land."""

    listing: Listing
    read: list[ObjectInfo]
    carried: list[tuple[ObjectInfo, Previous]]
    ranges: dict[str, list[int]] = field(default_factory=dict)  # key -> [first_seq, count]
    _seq: int = 0
    _at: int = 0

    @property
    def objects_listed(self) -> int:
        return len(self.listing.objects)

    @property
    def objects_read(self) -> int:
        return len(self.read)

    def track(self, outcome: Outcome) -> bool:
        """Record `outcome` (the next ledger row) against the object it came from; keeps it."""
        while self._at < len(self.read) and not self._belongs(outcome.name, self.read[self._at]):
            self._at += 1
        if self._at < len(self.read):
            span = self.ranges.setdefault(self.read[self._at].key, [self._seq, 0])
            span[1] += 1
        self._seq += 1
        return True

    def _belongs(self, name: str, info: ObjectInfo) -> bool:
        if self.listing.single:
            return True
        object_name = info.name
        return name == object_name or (
            name.startswith(object_name) and name[len(object_name) : len(object_name) + 1] in "/:["
        )


def plan_objects(conn: psycopg.Connection[Any], listing: Listing, rule: str) -> ObjectPlan:
    """Which of the listing's objects to read (new, changed, or not reusable: see the module
    doc) and which to carry; in the batch's transaction, under the ingest lock."""
    rows = conn.execute(_PREVIOUS, {"source": listing.uri, "rule": rule}).fetchall()
    previous = {
        key: (etag, size, Previous(batch_id, first, count, read_by), reusable)
        for key, etag, size, batch_id, first, count, read_by, reusable in rows
    }
    read: list[ObjectInfo] = []
    carried: list[tuple[ObjectInfo, Previous]] = []
    for info in listing.objects:
        known = previous.get(info.key)
        if known is not None and known[0] == info.etag and known[1] == info.size and known[3]:
            carried.append((info, known[2]))
        else:
            read.append(info)
    return ObjectPlan(listing, read, carried)


# The document keys delivered by ledger files, with each file's tag (its object's position in
# the listing); `keys`: only these keys (None: all).
_DELIVERED = sql.SQL("""
    select file.document_key, wanted.tag
    {files}
    where file.status in ('loaded', 'repaired', 'unchanged')
        and (%(keys)s::text[] is null or file.document_key = any(%(keys)s::text[]))
""").format(files=_WANTED_FILES)


def carried_after_read(conn: psycopg.Connection[Any], plan: ObjectPlan, batch_id: int) -> bool:
    """Whether an object the plan carries delivers a document key that an object it read, listed
    before it, delivered too. Reading the whole listing in order, as a local dump is read, the
    later object's document is the one that ends up current; carrying it would leave the earlier
    one current. The batch must then read every object (`read_everything`)."""
    position = {info.key: index for index, info in enumerate(plan.listing.objects)}
    first_read = min((position[info.key] for info in plan.read), default=None)
    later = [
        (info, p)
        for info, p in plan.carried
        if first_read is not None and position[info.key] > first_read
    ]
    if not later:
        return False
    read = [
        (batch_id, plan.ranges[info.key][0], plan.ranges[info.key][1], position[info.key])
        for info in plan.read
        if info.key in plan.ranges
    ]
    batches, seqs, tags = expand(read)
    first_delivered: dict[str, int] = {}
    for key, at in conn.execute(
        _DELIVERED, {"batches": batches, "seqs": seqs, "tags": tags, "keys": None}, binary=True
    ):
        first_delivered[key] = min(at, first_delivered.get(key, at))
    if not first_delivered:
        return False
    batches, seqs, tags = expand(
        [(p.batch_id, p.first_seq, p.file_count, position[info.key]) for info, p in later]
    )
    keys = list(first_delivered)
    return any(
        at > first_delivered[key]
        for key, at in conn.execute(
            _DELIVERED, {"batches": batches, "seqs": seqs, "tags": tags, "keys": keys}, binary=True
        )
    )


def read_everything(listing: Listing) -> ObjectPlan:
    """A plan that reads every listed object, in listing order, and carries none."""
    return ObjectPlan(listing, list(listing.objects), [])


def finish_objects(
    conn: psycopg.Connection[Any], plan: ObjectPlan, batch_id: int, first_seq: int
) -> tuple[dict[str, int], dict[str, int]]:
    """Carry the unread objects' files into the ledger from `first_seq` on, and record the
    listing; returns (counts by status, skip reasons) of the carried files."""
    new_firsts, seq = [], first_seq
    for _info, previous in plan.carried:
        new_firsts.append(seq)
        seq += previous.file_count
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    if plan.carried:
        batches, seqs, _ = expand(
            [(p.batch_id, p.first_seq, p.file_count, 0) for _i, p in plan.carried]
        )
        rows = conn.execute(
            _CARRY,
            {
                "batch": batch_id,
                "reason": UNCHANGED_REASON,
                "batches": batches,
                "seqs": seqs,
                "tags": list(range(first_seq, first_seq + len(seqs))),  # their new file_seqs
            },
            binary=True,  # arrays of 100,000s: text quoting costs seconds
        ).fetchall()
        for status, reason, count in rows:
            counts[status] = counts.get(status, 0) + int(count)
            if status == "skipped" and reason:
                reasons[reason] = reasons.get(reason, 0) + int(count)
    _record_listing(conn, plan, batch_id, new_firsts)
    return counts, reasons


def _record_listing(
    conn: psycopg.Connection[Any], plan: ObjectPlan, batch_id: int, new_firsts: Sequence[int]
) -> None:
    """The listing as this batch saw it: gone objects dropped, the others pointing at this
    batch's ledger."""
    objects = list(plan.read) + [info for info, _previous in plan.carried]
    firsts = [plan.ranges.get(info.key, [0, 0])[0] for info in plan.read] + list(new_firsts)
    counts = [plan.ranges.get(info.key, [0, 0])[1] for info in plan.read] + [
        previous.file_count for _info, previous in plan.carried
    ]
    reads = [batch_id] * len(plan.read) + [previous.read_batch_id for _i, previous in plan.carried]
    keys = [info.key for info in objects]
    conn.execute(
        "delete from raw.object_listing where source_uri = %s and not object_key = any(%s)",
        (plan.listing.uri, keys),
        binary=True,
    )
    conn.execute(
        _UPSERT,
        {
            "source": plan.listing.uri,
            "batch": batch_id,
            "keys": keys,
            "etags": [info.etag for info in objects],
            "sizes": [info.size for info in objects],
            "firsts": firsts,
            "counts": counts,
            "reads": reads,
        },
        binary=True,
    )
