"""A stream of dumps: identity that survives packaging, deletes, staleness and true history.

Two databases are taken through a sequence of dumps each (see `files_history` and
`ndjson_history`), built incrementally after every dump; the current models must then equal
those built from the last complete state alone, and the snapshot must hold exactly one closed
row per change or delete and one open row per current user.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import built_tables, query
from tar_files import make_tar

from duel import changes, db
from duel.load import IngestResult, ingest
from duel.settings import Settings
from duel.transform import build_models

pytestmark = pytest.mark.slow  # several dbt builds


Docs = dict[str, bytes]  # file name (without the dump's folder) -> bytes
# the columns that say where and when a version was loaded, not what it holds
LINEAGE = {
    "batch_id",
    "loaded_at",
    "updated_at",
    "source_file",
    "newer_quarantined_batch_id",
    "has_newer_quarantined_delivery",
    "is_clean",
}
CORE = ("dbt.base", "dbt.advocacy_programs", "dbt.tasks_completed")
# the tables a full refresh rebuilds (the snapshot keeps history, so it is not among them; the
# sums kept by difference and their contributions are in dbt_staging)
REBUILT_SCHEMAS = ("dbt", "dbt_lookup", "dbt_analysis", "dbt_staging")


def real_docs(real_dir: Path, count: int) -> Docs:
    return {
        f"user_{n}.json": (real_dir / "mixed" / f"user_{n}.json").read_bytes() for n in range(count)
    }


def parseable(docs: Docs) -> list[str]:
    names = []
    for name, data in docs.items():
        try:
            json.loads(data)
        except ValueError:
            continue
        names.append(name)
    return sorted(names, key=lambda n: int(n.split("_")[1].split(".")[0]))


def edited(data: bytes, tag: str) -> bytes:
    """A new version of a user that moves rows of every analysis model, not only the user's own:
    a new name and join month, and in the first program a brand shared with the other edits of
    the same tag (brand and engagement_by_brand), its first task's counts and platform and its
    sales (sums, rates, platforms, outliers), one task more (a child row added) and, when there
    are several programs, the last one dropped (a child row and its tasks gone)."""
    document = json.loads(data)
    document["name"] = f"Edited {tag}"
    document["joined_at"] = "2024-05-01T10:00:00Z" if tag != "twice" else "2023-11-30"
    programs = document.get("advocacy_programs")
    if not isinstance(programs, list) or not programs or not isinstance(programs[0], dict):
        programs = document["advocacy_programs"] = [{"program_id": None, "tasks_completed": []}]
    first = programs[0]
    first["brand"] = f"Edited Brand {tag}"
    first["total_sales_attributed"] = 4999.95 if tag != "twice" else "no-data"
    tasks = first.get("tasks_completed")
    if not isinstance(tasks, list):
        tasks = first["tasks_completed"] = []
    if tasks and isinstance(tasks[0], dict):
        platform = "Instagram" if tag != "twice" else "??"
        tasks[0].update({"likes": 499, "reach": 5000, "platform": platform})
    added = {"task_id": None, "platform": "facebook", "likes": 7, "comments": 1, "shares": 2}
    tasks.append({**added, "reach": 50})
    if len(programs) > 1:
        programs.pop()
    return json.dumps(document, indent=4).encode()


def without_programs(data: bytes) -> bytes:
    """A new version with no programs left: of the user, only base's row is rewritten."""
    document = json.loads(data)
    document["advocacy_programs"] = []
    return json.dumps(document, indent=4).encode()


def write_tar(path: Path, top: str, docs: Docs) -> Path:
    return make_tar(path, ((f"{top}/{name}", data) for name, data in docs.items()))


def write_dir(path: Path, top: str, docs: Docs) -> Path:
    (path / top).mkdir(parents=True)
    for name, data in docs.items():
        (path / top / name).write_bytes(data)
    return path


def write_ndjson(path: Path, documents: list[bytes], seed: int) -> Path:
    lines = [json.dumps(json.loads(d)).encode() for d in documents]
    random.Random(seed).shuffle(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def rows(settings: Settings, table: str, drop: set[str] = LINEAGE) -> list[tuple[object, ...]]:
    columns = [
        c
        for (c,) in query(
            settings,
            "select column_name from information_schema.columns"
            " where table_schema || '.' || table_name = %s"
            " order by ordinal_position",
            (table,),
        )
    ]
    kept = [f'"{c}"' for c in columns if c not in drop]
    order = ", ".join(str(position) for position in range(1, len(kept) + 1))
    return query(settings, f"select {', '.join(kept)} from {table} order by {order}")


def fresh(pg_server: Settings, name: str, tmp: Path) -> Settings:
    settings = pg_server.with_overrides(pg_database=name, out_dir=tmp / name)
    db.ensure_ready(settings)
    return settings


@dataclass(frozen=True)
class FilesHistory:
    settings: Settings
    reference: Settings  # the last complete state, ingested alone into a fresh database
    results: list[IngestResult]
    changed: list[str]
    final: Docs
    incremental: dict[str, list[tuple[object, ...]]]  # REBUILT after the last incremental build
    dumps: list[tuple[Path, bool]]  # each dump in turn, and whether it is complete (--full)


@pytest.fixture(scope="module")
def files_history(
    pg_server: Settings, real_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> FilesHistory:
    """Four dumps of 60 real users: a tar.gz under mixed/, a complete directory under another
    folder (10 changed, 8 deleted, 5 new), a complete tar.gz under a third folder (2 changed
    again, a deleted user back as he was, another back changed, 3 deleted, user_5 broken so it is
    quarantined), and a partial tar.gz (1 new, 1 changed: its programs all gone)."""
    tmp = tmp_path_factory.mktemp("files-history")
    settings = fresh(pg_server, "duel_dumps_files", tmp)
    everyone = real_docs(real_dir, 66)
    d1 = {n: everyone[n] for n in list(everyone)[:60]}
    changed = parseable(d1)[:10]
    assert "user_5.json" not in changed[:2]
    d2 = {n: d for n, d in d1.items() if n not in {f"user_{i}.json" for i in range(50, 58)}}
    d2 |= {n: edited(d1[n], "once") for n in changed}
    d2 |= {f"user_{i}.json": everyone[f"user_{i}.json"] for i in range(60, 65)}
    d3 = {n: d for n, d in d2.items() if n not in {"user_40.json", "user_41.json", "user_42.json"}}
    d3 |= {n: edited(d2[n], "twice") for n in changed[:2]}
    d3["user_50.json"] = d1["user_50.json"]
    d3["user_51.json"] = (
        edited(d1["user_51.json"], "back")
        if "user_51.json" in parseable(d1)
        else b'{"user_id": null}'
    )
    d3_broken = d3 | {
        "user_5.json": d2["user_5.json"][: len(d2["user_5.json"]) // 2] + b'"unclosed'
    }
    # the fourth dump's user_2 has no programs left: the sums kept by difference must lose what
    # its programs and tasks added, though no row of them is written (int_brand_sums)
    d4 = {
        "user_65.json": everyone["user_65.json"],
        "user_2.json": without_programs(edited(d3["user_2.json"], "partial")),
    }
    dumps = [
        (write_tar(tmp / "d1.tar.gz", "mixed", d1), False),
        (write_dir(tmp / "d2", "export-2025-07-24", d2), True),
        (write_tar(tmp / "d3.tar.gz", "export-2025-07-25", d3_broken), True),
        (write_tar(tmp / "d4.tar.gz", "delta", d4), False),
    ]
    results = [ingest(settings, path, full=full) for path, full in dumps[:2]]
    build_models(
        settings, unit_tests=False
    )  # after d1 and d2 together: the snapshot sees d2 only (one build)
    # the later builds test only the rows written since the build before (as `duel run` does)
    tested = changes.tested_through(settings)[1]
    results.append(ingest(settings, dumps[2][0], full=True))
    build_models(settings, tests_since=tested, unit_tests=False)
    tested = changes.tested_through(settings)[1]
    results.append(ingest(settings, dumps[3][0]))
    build_models(settings, tests_since=tested, unit_tests=False)
    incremental = {
        table: rows(settings, table, set()) for table in built_tables(settings, REBUILT_SCHEMAS)
    }
    final = d3 | d4
    reference = fresh(pg_server, "duel_dumps_files_reference", tmp)
    ingest(reference, write_tar(tmp / "final.tar.gz", "final", final))
    build_models(reference, unit_tests=False)
    return FilesHistory(settings, reference, results, changed, final, incremental, dumps)


def test_dumps_summaries_count_changes_and_deletes(files_history: FilesHistory) -> None:
    summaries = [r.summary() for r in files_history.results]
    assert [
        {k: s[k] for k in ("files_seen", "loaded", "unchanged", "quarantined", "deleted")}
        for s in summaries
    ] == [
        {"files_seen": 60, "loaded": 60, "unchanged": 0, "quarantined": 0, "deleted": 0},
        {"files_seen": 57, "loaded": 15, "unchanged": 42, "quarantined": 0, "deleted": 8},
        {"files_seen": 56, "loaded": 4, "unchanged": 51, "quarantined": 1, "deleted": 3},
        {"files_seen": 2, "loaded": 2, "unchanged": 0, "quarantined": 0, "deleted": 0},
    ]


def test_dumps_core_models_equal_the_last_complete_state_alone(files_history: FilesHistory) -> None:
    for table in CORE:
        assert rows(files_history.settings, table) == rows(files_history.reference, table), table
    assert query(files_history.settings, "select count(*) from dbt.base") == [
        (len(files_history.final),)
    ]


def test_dumps_identity_ignores_the_dumps_folder(files_history: FilesHistory) -> None:
    keys = query(files_history.settings, "select document_key from dbt.base order by 1")
    assert keys == [(f"file:{name}",) for name in sorted(files_history.final)]


def test_dumps_incremental_build_equals_full_refresh(files_history: FilesHistory) -> None:
    """Every table of dbt, dbt_lookup and dbt_analysis, and the sums kept by difference with
    their contributions (dbt_staging), every column, after three incremental builds (changes,
    deletes, returns, a quarantined delivery, a delta, a user left without programs)."""
    settings = files_history.settings
    build_models(settings, full_refresh=True, unit_tests=False)
    tables = built_tables(settings, REBUILT_SCHEMAS)
    assert (len(tables), sorted(files_history.incremental)) == (22, tables)
    for table in tables:
        assert rows(settings, table, set()) == files_history.incremental[table], table


def test_dumps_quarantined_delivery_marks_the_previous_version_stale(
    files_history: FilesHistory,
) -> None:
    settings = files_history.settings
    assert query(
        settings,
        "select document_key, name is not distinct from %s, has_newer_quarantined_delivery,"
        " newer_quarantined_batch_id, is_clean from dbt.base"
        " where has_newer_quarantined_delivery or document_key = 'file:user_5.json'",
        (json.loads(files_history.final["user_5.json"]).get("name"),),
    ) == [("file:user_5.json", True, True, 3, False)]
    assert query(
        settings,
        "select defect_count from dbt_analysis.data_quality"
        " where field = 'document' and defect = 'stale'",
    ) == [(1,)]


def test_dumps_snapshot_closes_one_row_per_change_or_delete(files_history: FilesHistory) -> None:
    settings = files_history.settings
    # closed: the second dump's 10 changes and 8 deletes (ingested with the first before the
    # first build: the first dump's versions are recorded all the same); the third's 2 changes
    # and 3 deletes (user_50 and user_51 came back: new open rows); the fourth's user_2
    assert query(
        settings,
        "select count(*) filter (where dbt_valid_to is not null),"
        " count(*) filter (where dbt_valid_to is null) from dbt_snapshots.users_snapshot",
    ) == [(10 + 8 + 2 + 3 + 1, len(files_history.final))]
    assert (
        query(
            settings,
            "select user_key from dbt_snapshots.users_snapshot where dbt_valid_to is null"
            " except all select user_key from dbt.base",
        )
        == []
    )
    assert query(
        settings,
        "select document_key, count(*) from dbt_snapshots.users_snapshot"
        " where document_key in ('file:user_40.json', 'file:user_50.json', 'file:user_2.json')"
        " group by 1 order by 1",
    ) == [
        ("file:user_2.json", 4 if "user_2.json" in files_history.changed[:2] else 3),
        ("file:user_40.json", 1),
        ("file:user_50.json", 2),
    ]


# each snapshot row by the batches its version's interval runs between (every batch's started_at
# is its transaction's time, the pointers' updated_at), and whether its flags are unknown
SNAPSHOT_BATCHES = """
    select
        snapshot.document_key,
        snapshot.content_sha256,
        began.batch_id,
        ended.batch_id,
        snapshot.is_duplicate_email is null
    from dbt_snapshots.users_snapshot as snapshot
    inner join raw.batches as began on began.started_at = snapshot.dbt_valid_from
    left join raw.batches as ended on ended.started_at = snapshot.dbt_valid_to
    order by 1, 3
"""


def test_dumps_snapshot_history_does_not_depend_on_when_builds_ran(
    files_history: FilesHistory, pg_server: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same four dumps built after the first and the last only (files_history built after
    the second, the third and the fourth): the same versions, each from and to the same
    batches, a delete dated by the batch that deleted, not by a build, whether the snapshot's
    first build or a later one met the versions in between; the versions no build saw have
    their cross-document flags unknown (NULL), and only those."""
    twice = fresh(pg_server, "duel_dumps_files_twice", tmp_path_factory.mktemp("twice"))
    for number, (path, full) in enumerate(files_history.dumps, start=1):
        ingest(twice, path, full=full)
        if number in (1, len(files_history.dumps)):
            build_models(twice, unit_tests=False)
    built_each_time = query(files_history.settings, SNAPSHOT_BATCHES)
    built_twice = query(twice, SNAPSHOT_BATCHES)
    assert [row[:4] for row in built_twice] == [row[:4] for row in built_each_time]
    for settings in (twice, files_history.settings):
        assert query(
            settings,
            "select count(*) from dbt_snapshots.users_snapshot as snapshot"
            " where dbt_valid_to is not null and not exists"
            " (select from raw.batches where started_at = snapshot.dbt_valid_to)",
        ) == [(0,)]
    # unknown: the versions no build saw: here those of the second and third dumps replaced
    # before the last build, in files_history the first dump's replaced by the second
    assert [row[:4] for row in built_twice if row[4]] == [
        row[:4] for row in built_twice if row[2] in (2, 3) and row[3] is not None
    ]
    # user_0's and user_1's second versions (changed again by the third dump), user_2's (by
    # the fourth)
    assert [row[0] for row in built_twice if row[4]] == [
        "file:user_0.json",
        "file:user_1.json",
        "file:user_2.json",
    ]
    assert [row[:4] for row in built_each_time if row[4]] == [
        row[:4] for row in built_each_time if row[2] == 1 and row[3] == 2
    ]
    by_key = {
        k: [row[2:4] for row in built_twice if row[0] == k]
        for k in ("file:user_40.json", "file:user_50.json", "file:user_59.json")
    }
    assert by_key == {
        "file:user_40.json": [(1, 3)],  # deleted by the third dump
        "file:user_50.json": [(1, 2), (3, None)],  # deleted by the second, back in the third
        "file:user_59.json": [(1, None)],
    }


def test_dumps_deleted_documents_keep_their_versions_in_raw(files_history: FilesHistory) -> None:
    settings = files_history.settings
    assert query(
        settings,
        "select document_key, parse_status, document is null from raw.user_documents"
        " where content_sha256 = 'deleted' order by 1",
    ) == [
        (f"file:user_{n}.json", "deleted", True)
        for n in (40, 41, 42, 50, 51, 52, 53, 54, 55, 56, 57)
    ]
    assert query(settings, "select count(*) from raw.current_versions where is_deleted") == [(9,)]
    assert query(
        settings, "select status, count(*) from raw.batch_files where status = 'deleted' group by 1"
    ) == [("deleted", 11)]


@dataclass(frozen=True)
class NdjsonHistory:
    settings: Settings
    results: list[IngestResult]
    keys_before: dict[str, str]  # user_id -> user_key after the first build
    keys_after: dict[str, str]


@pytest.fixture(scope="module")
def ndjson_history(
    pg_server: Settings, real_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> NdjsonHistory:
    """40 real users as NDJSON, then a complete NDJSON dump in another order with 5 changed,
    3 gone and 2 new (all with a user_id); users without a user_id are identified by content."""
    tmp = tmp_path_factory.mktemp("ndjson-history")
    settings = fresh(pg_server, "duel_dumps_ndjson", tmp)
    docs = real_docs(real_dir, 80)
    usable = [n for n in parseable(docs) if json.loads(docs[n]).get("user_id")]
    keyless = [n for n in parseable(docs) if not json.loads(docs[n]).get("user_id")]
    first = usable[:30] + keyless[:10]
    changed, gone, new = usable[:5], usable[5:8], usable[30:32]
    second = [
        edited(docs[n], "ndjson") if n in changed else docs[n] for n in first if n not in gone
    ]
    second += [docs[n] for n in new]
    results = [ingest(settings, write_ndjson(tmp / "a.ndjson", [docs[n] for n in first], seed=1))]
    build_models(settings, unit_tests=False)
    keys_before = dict(
        query(
            settings, "select user_id::text, user_key::text from dbt.base where user_id is not null"
        )
    )
    results.append(ingest(settings, write_ndjson(tmp / "b.ndjson", second, seed=2), full=True))
    build_models(settings, unit_tests=False)
    keys_after = dict(
        query(
            settings, "select user_id::text, user_key::text from dbt.base where user_id is not null"
        )
    )
    return NdjsonHistory(settings, results, keys_before, keys_after)


def test_ndjson_identity_is_the_user_id_not_the_line(ndjson_history: NdjsonHistory) -> None:
    first, second = (r.summary() for r in ndjson_history.results)
    assert {k: first[k] for k in ("files_read", "files_seen", "loaded", "keyless")} == {
        "files_read": 1,
        "files_seen": 40,
        "loaded": 40,
        "keyless": 10,
    }
    assert {
        k: second[k]
        for k in ("files_read", "files_seen", "loaded", "unchanged", "deleted", "keyless")
    } == {
        "files_read": 1,
        "files_seen": 39,
        "loaded": 7,
        "unchanged": 32,
        "deleted": 3,
        "keyless": 0,
    }
    kept = set(ndjson_history.keys_before) & set(ndjson_history.keys_after)
    assert len(kept) == 27
    assert all(ndjson_history.keys_before[uid] == ndjson_history.keys_after[uid] for uid in kept)


def test_ndjson_snapshot_closes_changed_and_deleted_users(ndjson_history: NdjsonHistory) -> None:
    assert query(
        ndjson_history.settings,
        "select count(*) filter (where dbt_valid_to is not null), count(*) filter (where "
        "dbt_valid_to is null),"
        " count(*) filter (where dbt_valid_to is null and starts_with(document_key, 'content:'))"
        " from dbt_snapshots.users_snapshot",
    ) == [(8, 39, 10)]
    assert query(
        ndjson_history.settings,
        "select defect, sum(defect_count) from dbt_analysis.data_quality"
        " where field = 'document' group by 1",
    ) == [("keyless", 10)]


def test_ndjson_broken_line_of_a_known_user_marks_its_version_stale(
    settings: Settings, tmp_path: Path
) -> None:
    """A broken NDJSON line whose user_id is readable (identity.salvaged_key) is that user's
    newer delivery: base keeps the version it had and says it is stale, as for a broken file of
    its own; the next intact line mends it. A line broken before its user_id names no one."""
    users = [json.dumps({"user_id": f"u{n}", "name": f"User {n}"}) for n in range(3)]
    whole = tmp_path / "a.ndjson"
    whole.write_text("\n".join(users) + "\n")
    ingest(settings, whole)
    build_models(settings, unit_tests=False)
    broken = tmp_path / "b.ndjson"
    broken.write_text("\n".join([users[0], users[1][:24], users[2][:12]]) + "\n")
    assert ingest(settings, broken).quarantined == 2
    build_models(settings, unit_tests=False)
    stale = (
        "select document_key, name, newer_quarantined_batch_id, is_clean from dbt.base"
        " where has_newer_quarantined_delivery order by 1"
    )
    assert query(settings, stale) == [("user_id:u1", "User 1", 2, False)]
    assert query(
        settings,
        "select defect, sum(defect_count) from dbt_analysis.data_quality"
        " where field = 'document' and defect = 'stale' group by 1",
    ) == [("stale", 1)]
    ingest(settings, whole)
    build_models(settings, unit_tests=False)
    assert query(settings, stale) == []
