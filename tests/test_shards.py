"""Sharded ingest (duel.shards), the library side of the Airflow
DAG's fan-out, on a real Postgres.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import query
from tar_files import make_tar

from duel import db
from duel.exceptions import ConfigError, IdentityCollision, SourceError
from duel.load import ingest
from duel.settings import Settings
from duel.shards import (
    ShardCheck,
    ShardMismatch,
    ShardSpec,
    check_shards,
    ingest_shard,
    plan_shards,
    shard_files,
)

DOCUMENTS = "select source_name, content_sha256 from raw.user_documents order by 1, 2"
CURRENT = "select source_name, content_sha256 from raw.current_versions order by 1"


def other_database(settings: Settings, suffix: str) -> Settings:
    """A second empty database beside the test's own, e.g. for a plain single-batch ingest."""
    other = settings.with_overrides(pg_database=f"{settings.pg_database}_{suffix}")
    db.ensure_ready(other)
    return other


def ingest_all(settings: Settings, path: Path, count: int) -> list:
    return [ingest_shard(settings, path, spec) for spec in plan_shards(path, count)]


def test_shard_spec_label_round_trip() -> None:
    assert [ShardSpec.parse(spec.label) for spec in plan_shards(Path("."), 3)] == [
        ShardSpec(0, 3),
        ShardSpec(1, 3),
        ShardSpec(2, 3),
    ]
    assert ShardSpec(2, 3).label == "2/3"


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("3", "a shard is written index/count, e.g. 1/4; got '3'"),
        ("a/4", "a shard is written index/count, e.g. 1/4; got 'a/4'"),
        ("4/4", "shard index must be between 0 and 3, got 4"),
        ("0/0", "shard count must be between 1 and 256, got 0"),
    ],
)
def test_shard_spec_parse_refuses_bad_labels(label: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        ShardSpec.parse(label)
    assert str(error.value) == message


def test_plan_shards_refuses_missing_input(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as error:
        plan_shards(tmp_path / "absent.tar.gz", 4)
    assert str(error.value) == f"no such file or directory: {tmp_path / 'absent.tar.gz'}"


@pytest.mark.parametrize("source", ["real_data", "real_dir"])
def test_shard_files_partition_the_source(
    settings: Settings, source: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(source)
    shards = [[f.name for f in shard_files(settings, path, spec)] for spec in plan_shards(path, 4)]
    names = sorted(name for shard in shards for name in shard)
    assert names == sorted(f"mixed/user_{n}.json" for n in range(10000))
    assert [len(shard) for shard in shards] == [
        len([f.name for f in shard_files(settings, path, spec)]) for spec in plan_shards(path, 4)
    ]
    assert min(len(shard) for shard in shards) > 2300  # a hash spreads 10,000 names about evenly


@pytest.mark.slow
def test_ingest_shards_equal_one_batch(settings: Settings, real_data: Path) -> None:
    results = ingest_all(settings, real_data, 4)
    plain = other_database(settings, "plain")
    ingest(plain, real_data)
    check = check_shards(settings, real_data, results)
    assert check.summary() == {
        "batch_id": "1, 2, 3, 4",
        "files_read": 10000,
        "files_seen": 10000,
        "loaded": 10000,
        "repaired": 222,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
        "shards": 4,
        "steps": {},
    }
    assert query(settings, DOCUMENTS) == query(plain, DOCUMENTS)
    assert query(settings, CURRENT) == query(plain, CURRENT)
    assert query(settings, "select batch_id, shard, status from raw.batches order by 1") == [
        (1, "0/4", "succeeded"),
        (2, "1/4", "succeeded"),
        (3, "2/4", "succeeded"),
        (4, "3/4", "succeeded"),
    ]


@pytest.mark.slow
def test_ingest_shards_twice_loads_nothing(settings: Settings, real_dir: Path) -> None:
    ingest_all(settings, real_dir, 4)
    before = query(settings, DOCUMENTS)
    again = ingest_all(settings, real_dir, 4)
    assert [(r.loaded, r.quarantined) for r in again] == [(0, 0)] * 4
    assert sum(r.unchanged for r in again) == 10000
    assert check_shards(settings, real_dir, again) == ShardCheck(
        10000,
        4,
        (5, 6, 7, 8),
        {
            "files_read": 10000,
            "loaded": 0,
            "repaired": 0,
            "quarantined": 0,
            "skipped": 0,
            "unchanged": 10000,
            "deleted": 0,
            "keyless": 0,
        },
    )
    assert query(settings, DOCUMENTS) == before


def test_ingest_shards_keep_the_last_copy_of_a_repeated_name(
    settings: Settings, tmp_path: Path
) -> None:
    # A tar may hold one name twice; the later member is the current version, sharded or not.
    members = [
        ("a.json", b'{"v": 1}'),
        ("b.json", b'{"v": 2}'),
        ("a.json", b'{"v": 3}'),
        ("c.json", b'{"v": 4}'),
        ("notes.txt", b"hi"),
    ]
    path = make_tar(tmp_path / "dup.tar.gz", members)
    results = ingest_all(settings, path, 3)
    plain = other_database(settings, "plain")
    ingest(plain, path)
    assert check_shards(settings, path, results) == ShardCheck(
        5,
        3,
        (1, 2, 3),
        {
            "files_read": 5,
            "loaded": 4,
            "repaired": 0,
            "quarantined": 0,
            "skipped": 1,
            "unchanged": 0,
            "deleted": 0,
            "keyless": 0,
        },
    )
    assert query(settings, CURRENT) == query(plain, CURRENT)
    assert query(
        settings,
        "select document->>'v' from raw.current_versions join raw.user_documents"
        " using (source_name, content_sha256) where source_name = 'a.json'",
    ) == [("3",)]


def test_check_shards_refuses_a_missing_shard(settings: Settings, tmp_path: Path) -> None:
    path = make_tar(tmp_path / "d.tar.gz", [(f"{n}.json", b"{}") for n in range(6)])
    results = ingest_all(settings, path, 3)
    with pytest.raises(ShardMismatch) as error:
        check_shards(settings, path, results[:2])
    assert (
        str(error.value)
        == "the batches 1, 2 are not one complete set of succeeded shards: ['0/3', '1/3']"
    )


def test_check_shards_refuses_a_source_that_changed(settings: Settings, tmp_path: Path) -> None:
    path = make_tar(tmp_path / "d.tar.gz", [(f"{n}.json", b"{}") for n in range(6)])
    results = ingest_all(settings, path, 2)
    make_tar(path, [(f"{n}.json", b"{}") for n in range(7)])
    with pytest.raises(ShardMismatch) as error:
        check_shards(settings, path, results)
    assert str(error.value) == f"the shards' ledger differs from {path}: 1 missing (e.g. 6.json)"


def test_check_shards_refuses_a_ledger_that_lost_a_file(settings: Settings, tmp_path: Path) -> None:
    path = make_tar(tmp_path / "d.tar.gz", [(f"{n}.json", b"{}") for n in range(6)])
    results = ingest_all(settings, path, 2)
    query(settings, "delete from raw.batch_files where source_name = '4.json' returning 1")
    with pytest.raises(ShardMismatch) as error:
        check_shards(settings, path, results)
    assert str(error.value) == f"the shards' ledger differs from {path}: 1 missing (e.g. 4.json)"


def test_ingest_shards_an_ndjson_user_twice_is_unchanged_when_delivered_again(
    settings: Settings, tmp_path: Path
) -> None:
    # Two records of one user_id on different lines (different names) are one document: the
    # shards keep both in the shard its key falls in, so the batch that holds them sees the last
    # copy equal the version it had, as a single batch does (duel.load, restore_repeated).
    lines = [b'{"user_id": "u%d", "name": "n%d"}' % (i, i) for i in range(8)]
    lines.insert(2, b'{"user_id": "u5", "name": "old"}')
    path = tmp_path / "dump.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    first = ingest_all(settings, path, 4)
    assert (sum(r.loaded for r in first), sum(r.unchanged for r in first)) == (9, 0)
    pointers = query(settings, "select * from raw.current_versions order by 1")
    for _ in range(2):
        again = ingest_all(settings, path, 4)
        assert [(r.loaded, r.unchanged) for r in again if r.files_seen] == [
            (0, r.files_seen) for r in again if r.files_seen
        ]
        assert sum(r.unchanged for r in again) == 9
        assert query(settings, "select * from raw.current_versions order by 1") == pointers


def test_sharded_ingest_refuses_two_folders_one_document_as_one_batch_does(
    settings: Settings, tmp_path: Path
) -> None:
    """Two files that would be one document (`eu/user_1.json` and `us/user_1.json`, their
    identity `user_1.json`) are in one shard, as a file goes by its identity: that shard's
    batch refuses them as `duel ingest` does, and writes nothing; the others load."""
    regions = tmp_path / "regions"
    for folder, names in (("eu", (0, 1)), ("us", (1, 2))):
        (regions / folder).mkdir(parents=True)
        for n in names:
            (regions / folder / f"user_{n}.json").write_text(f'{{"name": "{folder} {n}"}}')
    specs = plan_shards(regions, 4)
    holder = next(s for s in specs if s.holds("file:user_1.json"))
    with pytest.raises(IdentityCollision, match=re.escape("'eu/user_1.json' and 'us/user_1.json'")):
        ingest_shard(settings, regions, holder)
    for spec in specs:
        if spec != holder:
            ingest_shard(settings, regions, spec)
    assert query(settings, "select source_name from raw.current_versions order by 1") == [
        ("eu/user_0.json",),
        ("us/user_2.json",),
    ]


def test_ingest_shards_count_a_file_of_many_users_once(settings: Settings, tmp_path: Path) -> None:
    # an NDJSON file's lines go to the shards by their keys: the file is counted by the one
    # holding its first line, so the shards' files_read add up to one batch's
    lines = b"".join(b'{"user_id": "u%d"}\n' % n for n in range(12))
    path = make_tar(tmp_path / "dump.tar.gz", [("users.ndjson", lines), ("a.json", b"{}")])
    results = ingest_all(settings, path, 3)
    plain = other_database(settings, "plain")
    whole = ingest(plain, path)
    assert [(r.files_read, r.files_seen) for r in results] == [(0, 5), (1, 3), (1, 5)]
    assert (sum(r.files_read for r in results), sum(r.files_seen for r in results)) == (2, 13)
    assert (whole.files_read, whole.files_seen) == (2, 13)
    assert check_shards(settings, path, results).totals["files_read"] == 2
