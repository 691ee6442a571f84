"""The layout guard: a dump whose files moved to another folder depth, or whose users come in
another form (files of their own, then lines of one NDJSON file), is refused.

A file's identity is its path inside the dump without the dump's own top folder
(`duel.sources.identity_path`): `mixed/user_17.json` and `export-2025-07-24/user_17.json` are
both `user_17.json`, so a renamed folder changes nothing. A dump repackaged one folder deeper
(`day2/mixed/user_17.json`, identity `mixed/user_17.json`) or shallower has other identities for
the same users: loaded as it is, each of them would be a new document, every user counted twice
(and a `--full` run would delete the originals). The guard sees it in the batch's own
transaction, before anything is committed: the new file documents of the batch whose path is
the path of a current document with folders added or taken away at the front, where that
current document is absent from the dump. When more than half of the new documents checked are
such moves, the batch is refused (LayoutChanged, nothing written) unless the caller allows it.

A batch that adds no new file document, and the first load of a database, cost nothing here.
The check reads at most SAMPLE new documents: those whose keys have the smallest md5, a sample
spread over the whole batch that does not depend on the order of the dump's files (the first
ones the batch added were all new users when the dump listed a new folder before the moved
one). Finding the current documents they may be moves of reads each current key once (about a
second at a million).

A shard of the DAG holds part of the dump, so it cannot tell a move from a file another shard
delivers: `preflight` makes the same judgement before the shards load, from the dump's file
names alone (no file is read; the keys go to a temporary table the moves are compared with).

A dump in another form (`check_form`) is judged alike, on a sample of the new documents of one
form that are current documents of the other by the rule's field; a shard judges it in its own
batch, since its lines' user_ids are not known before they are read.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from duel import db
from duel.exceptions import IdentityCollision, KeyRuleChanged, LayoutChanged
from duel.identity import FIELD_NAME, FILE_SOURCE, KeyRule, file_key
from duel.settings import Settings
from duel.sources import SourceFile

MOVED_SHARE = 0.5  # a batch whose new documents are more than this share of moves is refused
SAMPLE = 1000  # new documents checked per batch: those whose keys have the smallest md5
FILE_PREFIX = "file:"

# A move, in the SQL both engines speak (duel.spark_ingest runs it in Spark SQL): the new keys
# (`{keys}`: a relation of `key`) that are a current document's path with folders added or taken
# away at the front (compared by file name first, then by the path's end), that document not
# delivered by the dump (`{delivered}`: a subquery on `current`); as (new_key, current_key).
MOVES_SQL = """
    with new as (
        select
            key,
            substr(key, 6) as path,
            regexp_replace(key, '^file:(.*/)?', '') as name
        from {keys}
    )
    select new.key as new_key, current.document_key as current_key
    from new
    inner join {current} as current
        on regexp_replace(current.document_key, '^file:(.*/)?', '') = new.name
    where
        left(current.document_key, 5) = 'file:'
        and not current.is_deleted
        and current.document_key <> new.key
        and (
            right(new.key, length(current.document_key) - 4)
                = concat('/', substr(current.document_key, 6))
            or right(current.document_key, length(new.path) + 1) = concat('/', new.path)
        )
        and not exists ({delivered})
"""
_MOVES = "create temporary table duel_moves on commit drop as" + MOVES_SQL.format(
    keys="unnest(%(keys)s::text[]) as key", current="raw.current_versions", delivered="{delivered}"
)

# what "delivered by the dump" is: the batch's ledger, or the dump's keys (preflight)
_BY_BATCH = """
    select 1 from raw.batch_files as delivered
    where delivered.batch_id = %(batch)s and delivered.document_key = current.document_key
"""
_BY_DUMP = """
    select 1 from duel_dump_keys as delivered where delivered.document_key = current.document_key
"""


def sample_order(key: str) -> int:
    """Where a key falls in the sample's order: its md5, as Postgres' and Spark's md5(key)
    order it (the hex text of the same UTF-8 bytes)."""
    digest = hashlib.md5(key.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return int.from_bytes(digest.digest(), "big")


class NewDocuments:
    """The new documents a batch adds whose keys begin with `prefix` (its file documents, by
    default; `user_id:` for check_form's): how many, and the SAMPLE of their keys with the
    smallest md5 (kept in a heap of at most SAMPLE while the batch runs)."""

    def __init__(self, prefix: str = FILE_PREFIX) -> None:
        self.prefix = prefix
        self.count = 0
        self._heap: list[tuple[int, str]] = []  # (-order, key): the largest kept on top

    @property
    def sample(self) -> list[str]:
        return [key for _order, key in sorted(self._heap, reverse=True)]

    @sample.setter
    def sample(self, keys: list[str]) -> None:
        self._heap = []
        for key in keys:
            heapq.heappush(self._heap, (-sample_order(key), key))

    def add(self, keys: list[str]) -> None:
        heap, prefix = self._heap, self.prefix
        for key in keys:
            if key.startswith(prefix):
                self.count += 1
                order = -sample_order(key)
                if len(heap) < SAMPLE:
                    heapq.heappush(heap, (order, key))
                elif order > heap[0][0]:
                    heapq.heapreplace(heap, (order, key))


def check(conn: psycopg.Connection[Any], batch_id: int, new: NewDocuments, *, allow: bool) -> int:
    """Refuse the batch (LayoutChanged) when more than MOVED_SHARE of the checked new documents
    are moves of current documents absent from it, unless `allow`; returns how many of the
    checked new documents are moves. Runs in the batch's transaction, after its files are
    written and before any delete."""
    return _judge(conn, new, _BY_BATCH, {"batch": batch_id}, allow=allow)


class LeftOut:
    """The parts of a batch's file names that their identity leaves out (the dump's top folder,
    an inner archive's path and its top folder): one for an ordinary dump (`mixed/`, or none
    for a directory given at its export folder). Two or more, and two files may be one
    document though they are two (check_collisions)."""

    def __init__(self) -> None:
        self.prefixes: set[str] = set()
        self._last: str | None = None  # the last prefix seen: nearly every name has it

    def add(self, names_and_keys: Iterable[tuple[str, str | None]]) -> None:
        last, prefixes, width = self._last, self.prefixes, len(FILE_PREFIX)
        for name, key in names_and_keys:
            if key is None or not key.startswith(FILE_PREFIX):
                continue
            cut = len(name) - len(key) + width  # where the key's path begins in the name
            if last is not None and cut == len(last) and name.startswith(last):
                continue  # the prefix of the last one (hot path: two tests, no slice)
            if cut >= 0 and name.endswith(key[width:]):
                last = name[:cut]
                prefixes.add(last)
        self._last = last


# Two files of the batch under different left-out prefixes with one file key: a file's
# identity leaves its prefix out, so they would be one document (the last one current), though
# nothing says they are one user. A key whose path is not the end of its name (a digest key, a
# name normalised to NFC) has no prefix here and is never counted as a collision.
# In the SQL both engines speak ({ledger}: the batch's ledger rows; duel.spark_ingest runs it
# on its own).
COLLISIONS_SQL = """
    select min(source_name) as first, max(source_name) as second, substr(document_key, 6) as path
    from (
        select
            source_name,
            document_key,
            case
                when right(source_name, length(document_key) - 5) = substr(document_key, 6)
                    then left(source_name, length(source_name) - length(document_key) + 5)
            end as left_out
        from {ledger}
        where left(document_key, 5) = 'file:'
    ) as files
    where left_out is not null
    group by document_key
    having count(distinct left_out) > 1
    order by 3
    limit 1
"""
_COLLISIONS = COLLISIONS_SQL.format(
    ledger="(select * from raw.batch_files where batch_id = %(batch)s) as ledger"
)


def check_collisions(conn: psycopg.Connection[Any], batch_id: int, left_out: LeftOut) -> None:
    """Refuse (IdentityCollision, one line) a batch two of whose files, under different
    folders that identity leaves out, are one document by their identity: `eu/user_1.json` and
    `us/user_1.json` in a dump of two top folders are both `user_1.json`, and one user replaced
    the other. Costs nothing unless the batch's names have two prefixes left out."""
    if len(left_out.prefixes) < 2:
        return
    row = conn.execute(_COLLISIONS, {"batch": batch_id}).fetchone()
    if row is not None:
        refuse_collision(*row)


def refuse_collision(first: str, second: str, path: str) -> None:
    """The refusal of two files (`first`, `second`) that are one document `path` (both
    engines)."""
    raise IdentityCollision(
        f"refused: {first!r} and {second!r} are both the document {path!r} (a file's identity "
        "leaves out the dump's top folder, and an inner archive's path), so one would replace "
        "the other; nothing was written. Give the dump from above its folders (a directory "
        "holding one folder with them, or an archive of that folder: tar czf dump.tar.gz "
        "export), or deliver them as separate dumps",
        first=first,
        second=second,
        key=FILE_PREFIX + path,
    )


# The rule the database's current documents were keyed by: the latest batch that loaded (a
# failed or refused one records none) while documents are current.
_LAST_RULE = """
    select batch_id, document_key_rule from raw.batches
    where status = 'succeeded' and document_key_rule is not null and batch_id <> %(batch)s
        and exists (select 1 from raw.current_versions where not is_deleted)
    order by batch_id desc
    limit 1
"""


def check_rule(conn: psycopg.Connection[Any], batch_id: int, rule: str, *, allow: bool) -> None:
    """Refuse (KeyRuleChanged, one line) a batch keyed by another rule than the database's
    current documents were, unless `allow`: a user keyed `user_id:...` before is `file:...`
    under `@file,user_id`, so each would be loaded a second time (and a --full run would delete
    the originals). The guard `--allow-new-layout` lifts is this one too: a new identity."""
    row = conn.execute(_LAST_RULE, {"batch": batch_id}).fetchone()
    if row is not None and not allow:
        refuse_rule_change(int(row[0]), str(row[1]), rule)


def refuse_rule_change(before: int, previous: str, rule: str) -> None:
    """The refusal of a run keyed by `rule` where batch `before` keyed by `previous` (both
    engines); nothing when the two are one."""
    if previous == rule:
        return
    raise KeyRuleChanged(
        f"refused: this database's documents are keyed by {previous!r} (batch {before}), this "
        f"run by {rule!r}: the documents it identifies otherwise would be loaded a second time; "
        f"nothing was written. Give --document-key {previous} (or DUEL_DOCUMENT_KEY) as before, "
        "or run it again with --allow-new-layout to key them anew",
        previous=previous,
        rule=rule,
    )


def preflight(
    settings: Settings, files: Iterable[SourceFile], rule: KeyRule, *, allow: bool
) -> int:
    """The same judgement on a dump before it is loaded, from its file names (`files`: the
    dump's files, their bytes unread): LayoutChanged when it would be refused. Its new documents
    are its file keys that have no current version, sampled as a batch samples them."""
    with db.connect(settings, step="layout check") as conn, conn.transaction():
        row = conn.execute("select exists (select 1 from raw.current_versions)").fetchone()
        if not (row and row[0]):
            return 0  # an empty database: nothing can have moved
        conn.execute(
            "create temporary table duel_dump_keys (seq int8, document_key text) on commit drop"
        )
        with conn.cursor().copy("copy duel_dump_keys from stdin") as copy:
            for seq, source in enumerate(files):
                key = None if source.skip_reason else file_key(rule, source.key_path)
                if key is not None:
                    copy.write_row((seq, key))
        conn.execute("create index on duel_dump_keys (document_key)")
        conn.execute("analyze duel_dump_keys")
        absent = (
            " from duel_dump_keys as dump where not exists (select 1 from raw.current_versions"
            " as current where current.document_key = dump.document_key)"
        )
        new = NewDocuments()
        row = conn.execute("select count(*)" + absent).fetchone()
        new.count = int(row[0]) if row else 0
        first = conn.execute(
            "select dump.document_key" + absent + " order by md5(dump.document_key) limit %s",
            (SAMPLE,),
        )
        new.sample = [str(key) for (key,) in first]
        return _judge(conn, new, _BY_DUMP, {}, allow=allow)


def _judge(
    conn: psycopg.Connection[Any],
    new: NewDocuments,
    delivered: str,
    params: dict[str, Any],
    *,
    allow: bool,
) -> int:
    """The moves among `new`'s sample (`delivered`: what counts as the dump delivering a
    current document), and the refusal."""
    if not new.sample:
        return 0
    conn.execute(_MOVES.format(delivered=delivered), {"keys": new.sample, **params})
    moved, example = _counted(conn, "duel_moves")
    refuse_moves(moved, example, len(new.sample), new.count, allow=allow)
    return moved


def _counted(conn: psycopg.Connection[Any], table: str) -> tuple[int, list[str] | None]:
    """Of the (new_key, current_key) pairs in the temporary table `table` (duel_moves or
    duel_form_moves, never a caller's text): how many new keys are moves, and the least pair."""
    row = conn.execute(
        sql.SQL(
            "select count(distinct new_key), (select array[new_key, current_key] from {table}"
            " order by new_key, current_key limit 1) from {table}"
        ).format(table=sql.Identifier(table))
    ).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def refuse_moves(
    moved: int, example: list[str] | None, checked: int, new: int, *, allow: bool
) -> None:
    """The refusal (LayoutChanged, one line) when more than MOVED_SHARE of the `checked` new
    documents (of `new` in all) are moves; `example`: one (new key, current key) pair. Both
    engines judge by it (duel.spark_ingest finds the moves in Spark SQL)."""
    if moved > MOVED_SHARE * checked and not allow and example is not None:
        new_path, current_path = (key.removeprefix(FILE_PREFIX) for key in example)
        of = f"a sample of {checked} of the " if checked < new else "the "
        raise LayoutChanged(
            f"refused: {moved} of {of}{new} new documents of this dump are current "
            f"documents under another folder depth (its {new_path!r} is the current "
            f"{current_path!r}; a document's identity is its path without the dump's top "
            "folder), so loading it would add those users a second time; nothing was written. "
            f"Package it as the earlier dumps were (one top folder, then {current_path}), or "
            "run it again with --allow-new-layout to load them as new documents",
            moved=moved,
            checked=checked,
            new=new,
        )


# A dump delivered in another form: the same users as files of their own one day (keyed by
# their path, `file:user_17.json`) and as lines of an NDJSON file, or elements of an array, the
# next (no path of their own: keyed by the rule's first field, `user_id:u17`), or the other way
# round. Loaded as it is, each user would be a second document. A form move is a new key of one
# form whose user is a current document of the other, absent from the dump, by the value of
# the rule's first field ({field}: a name KeyRule.parse checked, [A-Za-z_][A-Za-z0-9_]*),
# trimmed and lower-cased as a key's value is (duel.identity.usable_value). In the SQL both
# engines speak (form_sql fills in each engine's text of a document's top-level field), the
# candidates, as (new_key, current_key); each engine then drops those whose current document
# the dump delivers:
#   - into lines (FORM_TO_LINES_SQL): {documents} the current file documents' (document_key,
#     is_deleted, document), each matched with the sample's values by `{among_values}` (the
#     engine's test that a value is one of the new keys' after `field:`), a hash lookup on
#     Postgres whatever the plan: Postgres misjudges how many rows the current versions join
#     their documents in (1 of 10,000), and a join with the sample looped over it for each
#     (5 s at 10,000, 470 s at a million);
#   - into files (FORM_TO_FILES_SQL): {keys} the new file documents' (key, document),
#     {current} the current versions.
FORM_TO_LINES_SQL = """
    select concat('{field}:', current.value) as new_key, current.document_key as current_key
    from (
        select document_key, is_deleted, lower(trim({current_value})) as value
        from {documents} as current
    ) as current
    where not current.is_deleted and current.value {among_values}
"""
FORM_TO_FILES_SQL = """
    select new.key as new_key, current.document_key as current_key
    from {keys} as new
    inner join {current} as current
        on current.document_key = concat('{field}:', lower(trim({new_value})))
    where not current.is_deleted
"""


def form_field(rule: KeyRule) -> str | None:
    """The field a dump's users are keyed by when they have no file of their own, where the rule
    keys a file of its own by its path (`user_id` under `@file,user_id`): a dump may change form
    under that rule. None when it cannot (the rule has no field, or a field comes first and keys
    both forms alike)."""
    fields = [source for source in rule.sources if source != FILE_SOURCE]
    if rule.sources[0] != FILE_SOURCE or not fields:
        return None
    return fields[0]


def form_sql(template: str, field: str, value: Callable[[str, str], str], **relations: str) -> str:
    """`template` (FORM_TO_LINES_SQL or FORM_TO_FILES_SQL) for `field`, in the engine whose text
    of a document's field is `value(document, field)`."""
    if not FIELD_NAME.fullmatch(field):  # KeyRule.parse refuses any other; never into SQL
        raise ValueError(f"not a field name: {field!r}")
    return template.format(
        field=field,
        current_value=value("current.document", field),
        new_value=value("new.document", field),
        **relations,
    )


def _jsonb_value(document: str, field: str) -> str:
    return f"{document} ->> '{field}'"


# the relations of the templates on Postgres: the sample (%(keys)s; %(values)s, its values
# after `field:`, a constant array that Postgres hashes), and what it is matched with
_CURRENT_FILES = """(
    select current.document_key, current.is_deleted, version.document
    from raw.current_versions as current
    inner join raw.user_documents as version
        on version.document_key = current.document_key
        and version.content_sha256 = current.content_sha256
    where current.document_key >= 'file:' collate "C"
        and current.document_key < 'file;' collate "C"
)"""
_SAMPLE_FILES = """(
    select mine.document_key as key, version.document
    from unnest(%(keys)s::text[]) as sample (key)
    inner join raw.current_versions as mine on mine.document_key = sample.key
    inner join raw.user_documents as version
        on version.document_key = mine.document_key
        and version.content_sha256 = mine.content_sha256
)"""
_FORM_TO_LINES = "create temporary table duel_form_moves on commit drop as" + (
    FORM_TO_LINES_SQL.replace("{documents}", _CURRENT_FILES).replace(
        "{among_values}", "= any(%(values)s::text[])"
    )
)
_FORM_TO_FILES = "create temporary table duel_form_moves on commit drop as" + (
    FORM_TO_FILES_SQL.replace("{keys}", _SAMPLE_FILES).replace("{current}", "raw.current_versions")
)


# the candidates whose current document the batch delivers: not moves
_DELIVERED_MOVES = """
    delete from duel_form_moves as moves where exists (
        select 1 from raw.batch_files as delivered
        where delivered.batch_id = %(batch)s and delivered.document_key = moves.current_key
    )
"""


def check_form(
    conn: psycopg.Connection[Any],
    batch_id: int,
    rule: KeyRule,
    files: NewDocuments,
    lines: NewDocuments,
    *,
    allow: bool,
    scope: str = "this dump",
) -> int:
    """Refuse the batch (LayoutChanged) when more than MOVED_SHARE of the checked new documents
    of one form (`files`: its new file documents; `lines`: its new documents keyed by the
    rule's field, as `new_documents` tracks them) are current documents of the other, absent
    from it, unless `allow` (`scope`: what the batch holds, in the refusal: "shard 1/4 of this
    dump"); returns how many are. Runs in the batch's transaction, after its
    files are written and before any delete. Costs nothing when the database holds no current
    document of the other form; else, into lines, a read of the current file documents."""
    field = form_field(rule)
    if field is None or allow:
        return 0
    moved = 0
    params = {"batch": batch_id}
    for new, into_lines in ((lines, True), (files, False)):
        if not new.sample or not _holds(conn, FILE_PREFIX if into_lines else f"{field}:"):
            continue
        template = _FORM_TO_LINES if into_lines else _FORM_TO_FILES
        sample = (  # into lines, the sample's values (after `field:`); into files, its keys
            {"values": [key.removeprefix(f"{field}:") for key in new.sample]}
            if into_lines
            else {"keys": new.sample}
        )
        conn.execute(form_sql(template, field, _jsonb_value), sample)
        conn.execute("analyze duel_form_moves")
        conn.execute(_DELIVERED_MOVES, params)
        count, example = _counted(conn, "duel_form_moves")
        conn.execute("drop table duel_form_moves")
        refuse_form_change(
            count,
            example,
            len(new.sample),
            new.count,
            field,
            into_lines=into_lines,
            allow=allow,
            scope=scope,
        )
        moved += count
    return moved


def new_documents(rule: KeyRule) -> NewDocuments:
    """What check_form's `lines` tracks under `rule`: the new documents keyed by its field."""
    field = form_field(rule)
    return NewDocuments(f"{field}:" if field else "\0")  # "\0": no key begins so


def _holds(conn: psycopg.Connection[Any], prefix: str) -> bool:
    """Whether a current document's key begins with `prefix`: a range of the primary key, in
    byte order (a database whose collation is not C reads the table instead of the index, and
    the answer is still right: `file:x` sorts after `file;` where punctuation is ignored)."""
    row = conn.execute(
        "select exists (select 1 from raw.current_versions where document_key >= %(low)s"
        ' collate "C" and document_key < %(high)s collate "C" and not is_deleted)',
        {"low": prefix, "high": prefix[:-1] + chr(ord(prefix[-1]) + 1)},
    ).fetchone()
    return bool(row and row[0])


def refuse_form_change(
    moved: int,
    example: list[str] | None,
    checked: int,
    new: int,
    field: str,
    *,
    into_lines: bool,
    allow: bool,
    scope: str = "this dump",
) -> None:
    """The refusal (LayoutChanged, one line) when more than MOVED_SHARE of the `checked` new
    documents of one form (of `new` in all) are current documents of the other; `example`: one
    (new key, current key) pair. Both engines judge by it."""
    if moved <= MOVED_SHARE * checked or allow or example is None:
        return
    new_key, current_key = (key.removeprefix(FILE_PREFIX) for key in example)
    of = f"a sample of {checked} of the " if checked < new else "the "
    if into_lines:
        before, again = "as files of their own", "as files of their own"
    else:
        before = "in a file of many users"
        again = "as one file of many users (NDJSON, or a JSON array)"
    raise LayoutChanged(
        f"refused: {moved} of {of}{new} new documents of {scope} are users delivered before "
        f"{before} (its {new_key!r} is the current {current_key!r}, by its {field}; a user in "
        f"a file of its own is identified by the file's path, one in a file of many users by "
        f"its {field}), so loading it would add those users a second time; nothing was "
        f"written. Deliver it {again}, as the earlier dumps were, or run it again with "
        "--allow-new-layout to load them as new documents",
        moved=moved,
        checked=checked,
        new=new,
    )
