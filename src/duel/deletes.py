"""Deletes: what a complete (`--full`) dump no longer holds gets a tombstone version.

Without `--full` a dump adds and updates only. With it, the dump is the whole truth: every
current document whose key the dump did not deliver (loaded, unchanged or quarantined: a
quarantined delivery still proves the document exists) gets a tombstone version in
`raw.user_documents` (parse_status `deleted`), its current pointer says deleted, and the ledger
records it (status `deleted`). Nothing is ever physically deleted from raw. A document that
comes back later is a new version of the same key.

The guard: a complete dump that would delete more than half of the current documents is refused
(MassDelete, nothing written) unless the caller allows it, and a "complete" dump holding no
document at all is always refused: an empty or truncated dump never wipes the warehouse.

A quarantined document that could not be identified (a broken NDJSON line or array element
cut before its key field, an unreadable archive inside the dump or JSON array of users: no file
of its own that is one user, and no key read from it, identity.salvaged_key) may be any of the
absent documents: while a
complete dump holds one, its deletes are withheld (counted, none written), so a broken line
never deletes its user. The next complete dump without one deletes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg

from duel.exceptions import MassDelete
from duel.identity import CONTENT_PREFIX

MASS_DELETE_SHARE = 0.5  # deleting more than this share of the current documents needs consent
TOMBSTONE = "deleted"  # a tombstone's content_sha256 (raw_schema.sql)
ABSENT_REASON = "absent-from-full-dump"

_ABSENT = """
    create temporary table duel_absent on commit drop as
    select current.document_key, current.source_name
    from raw.current_versions as current
    where not current.is_deleted
        and not exists (
            select 1 from raw.batch_files as delivered
            where delivered.batch_id = any(%(seen)s)
                and delivered.document_key = current.document_key
        )
"""


# quarantined deliveries of the batches with no identity (no file of their own, no key read)
_UNIDENTIFIED = """
    select count(*) from raw.batch_files
    where batch_id = any(%(seen)s) and status = 'quarantined'
        and left(document_key, %(width)s) = %(prefix)s
"""


class Deletes(NamedTuple):
    """What a complete dump deleted, and what it withheld (`withheld` absent documents, while
    `unidentified` quarantined documents of it may be any of them)."""

    deleted: int
    withheld: int = 0
    unidentified: int = 0


NONE = Deletes(0)


def count_current(conn: psycopg.Connection[Any]) -> int:
    """Current (not deleted) documents: the guard's measure, taken before a batch writes."""
    row = conn.execute("select count(*) from raw.current_versions where not is_deleted").fetchone()
    return int(row[0]) if row else 0


def tombstone_absent(
    conn: psycopg.Connection[Any],
    batch_id: int,
    seen_batch_ids: Sequence[int],
    *,
    current_before: int,
    delivered: int,
    allow_mass_delete: bool,
    first_seq: int,
) -> Deletes:
    """Tombstone every current document that the batches `seen_batch_ids` did not deliver, as
    batch `batch_id` (in the caller's transaction), unless they hold an unidentified quarantined
    document (then none: withheld). `delivered` counts the documents the dump held (loaded,
    unchanged or quarantined); `current_before` the current documents before it. Raises
    MassDelete, writing nothing, when the guard refuses."""
    conn.execute(_ABSENT, {"seen": list(seen_batch_ids)})
    row = conn.execute("select count(*) from duel_absent").fetchone()
    deleting = int(row[0]) if row else 0
    if deleting and delivered == 0:
        raise MassDelete(
            f"refused: this complete (--full) dump holds no document, so it would delete all "
            f"{deleting} current documents; an empty or truncated dump never wipes the warehouse",
            deleting=deleting,
            current=current_before,
        )
    if deleting:
        params = {
            "seen": list(seen_batch_ids),
            "width": len(CONTENT_PREFIX),
            "prefix": CONTENT_PREFIX,
        }
        row = conn.execute(_UNIDENTIFIED, params).fetchone()
        unidentified = int(row[0]) if row else 0
        if unidentified:
            return Deletes(0, deleting, unidentified)
    if deleting > MASS_DELETE_SHARE * current_before and not allow_mass_delete:
        raise MassDelete(
            f"refused: this complete (--full) dump would delete {deleting} of {current_before} "
            "current documents (more than half); nothing was written. If that is right, run it "
            "again with --allow-mass-delete",
            deleting=deleting,
            current=current_before,
        )
    if not deleting:
        return NONE
    params = {"batch": batch_id, "tombstone": TOMBSTONE, "seq": first_seq, "reason": ABSENT_REASON}
    conn.execute(
        "insert into raw.user_documents (document_key, content_sha256, source_name, batch_id,"
        " parse_status, byte_size, document)"
        " select document_key, %(tombstone)s, source_name, %(batch)s, 'deleted', 0, null"
        " from duel_absent"
        " on conflict (document_key, content_sha256) do nothing",
        params,
    )
    conn.execute(
        "update raw.current_versions as current"
        " set content_sha256 = %(tombstone)s, batch_id = %(batch)s,"
        " is_deleted = true, updated_at = now()"
        " from duel_absent where current.document_key = duel_absent.document_key",
        params,
    )
    conn.execute(
        "insert into raw.batch_files"
        " (batch_id, file_seq, source_name, status, reason, document_key)"
        " select %(batch)s, %(seq)s + row_number() over (order by document_key) - 1, source_name,"
        " 'deleted', %(reason)s, document_key from duel_absent",
        params,
    )
    return Deletes(deleting)
