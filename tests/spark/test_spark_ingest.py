"""The Spark ingest (duel.spark_ingest) against the Postgres ingest (duel.load), on one dump.

The dump: conftest's `dump` (200 real files, the malformed ones among them, and one file of each
other kind), shared with the cross-engine model test. The raw tables of both ingests must be equal
row for row (keys, hashes, statuses, repairs, the documents as JSON, quarantine reasons and bytes,
the ledger); a second Spark run of the same dump stores no document and no quarantined file, and
its ledger says unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from dump_forms import as_files, as_ndjson, users
from psycopg.types.string import TextLoader
from tar_files import make_tar

from duel import db
from duel.load import ingest
from duel.settings import Settings
from duel.spark_ingest import session_config, spark_ingest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[2]  # the checkout


@contextmanager
def own_raw(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch, name: str
) -> Iterator[Callable[[str], int]]:
    """The Spark ingest writing into a raw database of the test's own, `name`, made empty and
    dropped afterwards; yields how many rows one of its tables holds."""
    from duel import spark_ingest as job

    monkeypatch.setattr(job, "RAW", name)
    spark.sql(f"drop database if exists {name} cascade")
    spark.sql(f"create database {name}")
    try:
        yield lambda table: int(spark.sql(f"select count(*) from {name}.{table}").collect()[0][0])
    finally:
        spark.sql(f"drop database if exists {name} cascade")


@pytest.fixture(scope="module")
def postgres_raw(pg_server: Settings, dump: Path) -> dict[str, list[tuple[Any, ...]]]:
    settings = pg_server.with_overrides(pg_database="duel_spark_ingest")
    db.ensure_ready(settings)
    ingest(settings, dump)
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        conn.adapters.register_loader("jsonb", TextLoader)  # JSON as text, as Spark stores it
        return {name: conn.execute(sql).fetchall() for name, sql in QUERIES.items()}


@pytest.fixture(scope="module")
def spark_runs(
    spark_settings: Settings, spark: SparkSession, dump: Path
) -> tuple[list[Any], dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]]:
    """Two Spark ingests of the dump: their results, and the raw tables after each."""
    results, tables = [], []
    for _ in range(2):
        results.append(spark_ingest(spark_settings, dump, spark=spark))
        tables.append(
            {
                name: [tuple(row) for row in spark.sql(sql).collect()]
                for name, sql in QUERIES.items()
            }
        )
    return results, tables[0], tables[1]


# The same queries on both engines: raw as stored (Postgres gives its jsonb as text, below).
QUERIES = {
    "user_documents": "select document_key, content_sha256, source_name, batch_id, parse_status,"
    " parse_error, repair, byte_size, document"
    " from raw.user_documents order by document_key, content_sha256",
    "current_versions": "select document_key, content_sha256, source_name, batch_id, is_deleted"
    " from raw.current_versions order by document_key",
    "quarantine": "select source_name, document_key, content_sha256, batch_id, reason, detail,"
    " parse_error, byte_size, content, proposed_repair"
    " from raw.quarantine order by source_name, content_sha256",
    "batch_files": "select batch_id, file_seq, source_name, status, reason, document_key,"
    " content_sha256, byte_size from raw.batch_files order by batch_id, file_seq",
    "batches": "select batch_id, status, files_read, files_seen, loaded, repaired, quarantined,"
    " skipped, unchanged, same_content, deleted, keyless, deletes_withheld, is_full,"
    " document_key_rule from raw.batches order by batch_id",
}
JSON_COLUMNS = {"user_documents": (6, 8), "quarantine": (9,)}


def _comparable(table: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """JSON columns parsed (numbers exact), bytes as bytes: jsonb's text is normalised."""
    columns = JSON_COLUMNS.get(table, ())
    return [
        tuple(
            json.loads(value, parse_float=Decimal)
            if index in columns and value is not None
            else bytes(value)
            if isinstance(value, memoryview | bytearray)
            else value
            for index, value in enumerate(row)
        )
        for row in rows
    ]


@pytest.mark.slow
@pytest.mark.parametrize("table", list(QUERIES))
def test_spark_ingest_raw_tables_equal_the_postgres_ingest(
    table: str,
    postgres_raw: dict[str, list[tuple[Any, ...]]],
    spark_runs: tuple[list[Any], dict[str, list[tuple[Any, ...]]], Any],
) -> None:
    _, first, _ = spark_runs
    assert _comparable(table, first[table]) == _comparable(table, postgres_raw[table])


@pytest.mark.slow
def test_spark_ingest_dump_has_every_kind(postgres_raw: dict[str, list[tuple[Any, ...]]]) -> None:
    statuses: dict[str, int] = {}
    for row in postgres_raw["batch_files"]:
        statuses[row[3]] = statuses.get(row[3], 0) + 1
    assert statuses == {
        "loaded": 184,
        "repaired": 20,
        "unchanged": 1,
        "quarantined": 3,
        "skipped": 2,
    }
    assert sorted(row[4] for row in postgres_raw["quarantine"]) == [
        "empty",
        "not-an-object",
        "not-utf8",
    ]


@pytest.mark.slow
def test_spark_ingest_second_run_stores_nothing(
    spark_runs: tuple[
        list[Any], dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]
    ],
) -> None:
    results, first, second = spark_runs
    assert results[1].summary() == {
        "batch_id": 2,
        # 208 files: 200 of the real dump, 7 of other kinds, one twice; the pair and the
        # wrapper hold two users each
        "files_read": 208,
        "files_seen": 210,
        "loaded": 0,
        "repaired": 0,
        "quarantined": results[0].quarantined,
        "skipped": results[0].skipped,
        "unchanged": results[0].loaded + results[0].unchanged,
        "deleted": 0,
        "keyless": 0,
    }
    for table in ("user_documents", "quarantine"):
        assert second[table] == first[table]
    assert [row[:3] for row in second["current_versions"]] == [
        row[:3] for row in first["current_versions"]
    ]
    assert {row[3] for row in second["batch_files"] if row[0] == 2} == {
        "unchanged",
        "quarantined",
        "skipped",
    }


def test_spark_ingest_session_is_the_dbt_profiles(tmp_path: Path) -> None:
    """The job writes where `dbt build --target spark` reads: the same session settings (dbt-spark
    itself adds spark.sql.ansi.enabled = false)."""
    import yaml

    settings = Settings(home=tmp_path / "home")
    text = (REPO / "dbt" / "duel" / "profiles.yml").read_text(encoding="utf-8")
    text = text.replace("{{ env_var('DUEL_HOME', '../../.duel') }}", str(settings.home.resolve()))
    profile = yaml.safe_load(text)["duel"]["outputs"]["spark"]
    parameters = {k: str(v) for k, v in profile["server_side_parameters"].items()}
    assert (profile["method"], profile["schema"]) == ("session", "dbt")
    assert {**parameters, "spark.sql.ansi.enabled": "false"} == session_config(settings)


@pytest.mark.slow
def test_spark_ingest_adds_a_column_missing_from_an_earlier_warehouse(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """raw.batches made before deletes_withheld, files_read and same_content were recorded gets
    the columns (last, in that order: an insert is by position), and a batch row then lands in
    its columns; the earlier rows keep NULL."""
    from duel import spark_ingest as job

    with own_raw(spark, monkeypatch, "raw_earlier"):
        earlier = job.TABLES["batches"].removesuffix(
            ", deletes_withheld int, files_read int, same_content int"
        )
        assert earlier != job.TABLES["batches"]
        spark.sql(f"create table raw_earlier.batches ({earlier}) using parquet")
        spark.sql(
            "insert into raw_earlier.batches (batch_id, source_uri, status, loaded)"
            " values (1, 'd.tar.gz', 'succeeded', 3)"
        )
        job.ensure_raw_tables(spark)
        rule = job.key_rule(Settings())
        started = dt.datetime(2026, 1, 1)
        counts = {**dict.fromkeys(job.COUNTS, 0), "loaded": 1, "files_read": 1}
        row = job._batch_row(spark, 2, "e.tar.gz", started, counts, rule)
        job._append(spark, "batches", row)
        columns = spark.table("raw_earlier.batches").columns
        rows = spark.sql(
            "select batch_id, source_uri, loaded, deletes_withheld, files_read, same_content,"
            " document_key_rule from raw_earlier.batches order by batch_id"
        ).collect()
    assert columns[-3:] == ["deletes_withheld", "files_read", "same_content"]
    assert [tuple(r) for r in rows] == [
        (1, "d.tar.gz", 3, None, None, None, None),
        (2, "e.tar.gz", 1, None, 1, 0, rule.text),
    ]


def _users(directory: Path, folder: str, numbers: range) -> Path:
    for n in numbers:
        path = directory / folder / f"user_{n}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"user_id": None, "name": f"User {n}"}))
    return directory


@pytest.mark.slow
def test_spark_ingest_refuses_a_dump_moved_to_another_folder_depth(
    spark_settings: Settings, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layout guard on Spark, as on Postgres (duel.layout): the same users one folder deeper
    are refused before anything is written; with allow_new_layout they load as new documents.
    Current documents the dump also delivers where they were are not moves."""
    from duel.exceptions import LayoutChanged

    with own_raw(spark, monkeypatch, "raw_layout") as table:
        first = spark_ingest(spark_settings, _users(tmp_path / "a", "mixed", range(3)), spark=spark)
        assert (first.loaded, table("batch_files")) == (3, 3)
        deeper = _users(tmp_path / "b", "day2/mixed", range(3))
        with pytest.raises(LayoutChanged) as refused:
            spark_ingest(spark_settings, deeper, spark=spark)
        assert str(refused.value).startswith(
            "refused: 3 of the 3 new documents of this dump are current documents under another"
            " folder depth (its 'mixed/user_0.json' is the current 'user_0.json';"
        )
        assert (table("batches"), table("batch_files"), table("user_documents")) == (1, 3, 3)
        allowed = spark_ingest(spark_settings, deeper, spark=spark, allow_new_layout=True)
        assert (allowed.loaded, table("current_versions")) == (3, 6)
        both = _users(_users(tmp_path / "c", "day3/eu", range(3)), "day3", range(3))
        kept = spark_ingest(spark_settings, both, spark=spark)
        assert (kept.loaded, kept.unchanged) == (3, 3)  # the originals delivered: no move
        assert table("current_versions") == 9


@pytest.mark.slow
def test_spark_ingest_refuses_a_dump_delivered_in_another_form(
    spark_settings: Settings, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """duel.layout.check_form on Spark, as on Postgres: users delivered as files, then as one
    NDJSON file (and the other way round), are refused before anything is written, in the words
    Postgres refuses them in; with allow_new_layout they load as new documents; new users in
    the other form load."""
    from duel.exceptions import LayoutChanged

    with own_raw(spark, monkeypatch, "raw_form") as table:
        spark_ingest(spark_settings, as_files(tmp_path / "a", users(range(3))), spark=spark)
        lines = as_ndjson(tmp_path / "b", users(range(3)))
        with pytest.raises(LayoutChanged) as refused:
            spark_ingest(spark_settings, lines, spark=spark)
        assert str(refused.value).startswith(
            "refused: 3 of the 3 new documents of this dump are users delivered before as files"
            " of their own (its 'user_id:u0' is the current 'u0.json', by its user_id;"
        )
        assert (table("batches"), table("batch_files"), table("user_documents")) == (1, 3, 3)
        fresh = as_ndjson(tmp_path / "c", users(range(10, 13)) + users(range(1)))
        assert spark_ingest(spark_settings, fresh, spark=spark).loaded == 4
        allowed = spark_ingest(spark_settings, lines, spark=spark, allow_new_layout=True)
        assert (allowed.loaded, table("current_versions")) == (2, 9)
        # back to files: the lines' users are current documents keyed by their user_id
        again = as_files(tmp_path / "d", users(range(10, 13)))
        with pytest.raises(LayoutChanged, match=r"^refused: 3 of the 3 new .* in a file of many"):
            spark_ingest(spark_settings, again, spark=spark)
        assert table("batches") == 3


@pytest.mark.slow
def test_spark_ingest_refuses_a_rule_change_and_two_files_of_one_identity(
    spark_settings: Settings, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """duel.layout's other two guards on Spark, as on Postgres: a run keyed by another rule than
    the current documents were, and two files under different folders that identity leaves
    out (eu/user_1.json, us/user_1.json: one document), are refused before anything is written."""
    from duel.exceptions import IdentityCollision, KeyRuleChanged

    with own_raw(spark, monkeypatch, "raw_guards") as table:
        regions = _users(_users(tmp_path / "r", "eu", range(2)), "us", range(1, 3))
        with pytest.raises(IdentityCollision, match=r"^refused: 'eu/user_1\.json' and 'us/user_1"):
            spark_ingest(spark_settings, regions, spark=spark)
        assert table("batches") == 0
        by_id = spark_settings.with_overrides(document_key="user_id,@file")
        for n in range(3):
            path = tmp_path / "a" / "mixed" / f"user_{n}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"user_id": f"u{n}", "name": f"User {n}"}))
        first = spark_ingest(by_id, tmp_path / "a", spark=spark)
        assert first.loaded == 3
        with pytest.raises(KeyRuleChanged, match=r"^refused: this database's documents are keyed"):
            spark_ingest(spark_settings, tmp_path / "a", spark=spark)
        assert (table("batches"), table("batch_files")) == (1, 3)
        again = spark_ingest(spark_settings, tmp_path / "a", spark=spark, allow_new_layout=True)
        assert again.loaded == 3


@pytest.mark.slow
def test_spark_ingest_a_document_twice_in_one_dump_ends_as_on_postgres(
    spark_settings: Settings,
    spark: SparkSession,
    pg_server: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dump holding user_1 twice (A, then B), delivered three times, then a dump holding it as
    new bytes A2 and then B: both engines count the same, and a document whose last copy is the
    version it had keeps its pointer from batch 1 (load._Batch.restore_repeated)."""
    a, b, a2, other = (
        json.dumps({"user_id": None, "name": name}).encode() for name in ("A", "B", "A2", "C")
    )
    twice = make_tar(
        tmp_path / "twice.tar.gz",
        [("mixed/user_1.json", a), ("mixed/user_2.json", other), ("mixed/user_1.json", b)],
    )
    newer = make_tar(
        tmp_path / "newer.tar.gz",
        [("mixed/user_1.json", a2), ("mixed/user_2.json", other), ("mixed/user_1.json", b)],
    )
    postgres = pg_server.with_overrides(pg_database="duel_spark_twice")
    db.ensure_ready(postgres)
    with own_raw(spark, monkeypatch, "raw_twice"):
        dumps = [twice, twice, twice, newer]
        on_spark = [spark_ingest(spark_settings, dump, spark=spark).summary() for dump in dumps]
        on_postgres = [ingest(postgres, dump).summary() for dump in dumps]
        assert on_spark == on_postgres
        assert [(run["loaded"], run["unchanged"]) for run in on_spark] == [
            (3, 0),
            (0, 3),
            (0, 3),
            (1, 2),
        ]
        current = spark.sql(
            "select document_key, batch_id from raw_twice.current_versions order by 1"
        ).collect()
        assert [tuple(row) for row in current] == [("file:user_1.json", 1), ("file:user_2.json", 1)]
        with psycopg.connect(**postgres.conninfo()) as conn:  # type: ignore[arg-type]
            assert conn.execute(
                "select document_key, batch_id from raw.current_versions order by 1"
            ).fetchall() == [("file:user_1.json", 1), ("file:user_2.json", 1)]


@pytest.mark.slow
def test_spark_ingest_the_same_content_in_other_bytes_is_unchanged_as_on_postgres(
    spark_settings: Settings,
    spark: SparkSession,
    pg_server: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same users written otherwise (compact, keys reordered, an accent escaped, CRLF): on
    both engines each is its current version delivered again (`same-content`, that version's
    hash in the ledger), and a number written otherwise or a changed value is a new version;
    the ledgers and current versions are the same row for row."""
    first = [
        ("mixed/a.json", '{\n  "user_id": "u0",\n  "name": "Jos\u00e9",\n  "sales": 1.5\n}'),
        ("mixed/b.json", '{"user_id": "u1", "tags": [1, 2]}'),
        ("mixed/c.json", '{"user_id": "u2", "sales": 1.5}'),
        ("mixed/d.json", '{"user_id": "u3", "name": "Cy"}'),
    ]
    second = [
        ("mixed/a.json", '{"sales":1.5,"name":"Jos\\u00e9","user_id":"u0"}'),
        ("mixed/b.json", '{\r\n"tags":[1,2],\r\n"user_id":"u1"}\r\n'),
        ("mixed/c.json", '{"user_id": "u2", "sales": 1.50}'),
        ("mixed/d.json", '{"user_id": "u3", "name": "Cy!"}'),
    ]
    dumps = [
        make_tar(tmp_path / f"{n}.tar.gz", [(name, text.encode()) for name, text in files])
        for n, files in enumerate((first, second))
    ]
    postgres = pg_server.with_overrides(pg_database="duel_spark_same_content")
    db.ensure_ready(postgres)
    with own_raw(spark, monkeypatch, "raw_same"):
        on_spark = [spark_ingest(spark_settings, dump, spark=spark) for dump in dumps]
        on_postgres = [ingest(postgres, dump) for dump in dumps]
        assert [r.summary() for r in on_spark] == [r.summary() for r in on_postgres]
        assert (on_spark[1].loaded, on_spark[1].unchanged, on_spark[1].unchanged_reasons) == (
            2,
            2,
            {"same-content": 2},
        )
        tables = {
            "batch_files": "select source_name, status, reason, content_sha256, byte_size"
            " from {raw}.batch_files where batch_id = 2 order by 1",
            "current_versions": "select document_key, content_sha256, batch_id"
            " from {raw}.current_versions order by 1",
            "batches": "select batch_id, loaded, unchanged, same_content"
            " from {raw}.batches order by 1",
        }
        with psycopg.connect(**postgres.conninfo()) as conn:  # type: ignore[arg-type]
            for sql in tables.values():
                spark_rows = [tuple(row) for row in spark.sql(sql.format(raw="raw_same")).collect()]
                assert spark_rows == conn.execute(sql.format(raw="raw")).fetchall()
        reasons = spark.sql(
            "select source_name, reason from raw_same.batch_files where batch_id = 2 order by 1"
        ).collect()
        assert [tuple(row) for row in reasons] == [
            ("mixed/a.json", "same-content"),
            ("mixed/b.json", "same-content"),
            ("mixed/c.json", None),
            ("mixed/d.json", None),
        ]
        batches = spark.sql("select batch_id, unchanged, same_content from raw_same.batches")
        assert sorted(tuple(row) for row in batches.collect()) == [(1, 0, 0), (2, 2, 2)]


@pytest.mark.slow
def test_spark_ingest_refuses_a_dump_without_data(
    spark_settings: Settings, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder of notes is refused on Spark as on Postgres (duel.load.refuse_without_data),
    before anything is written."""
    from duel.exceptions import SourceError

    with own_raw(spark, monkeypatch, "raw_empty") as table:
        (tmp_path / "notes").mkdir()
        (tmp_path / "notes" / "users.csv").write_text("user_id,name\n1,Ann\n")
        with pytest.raises(SourceError) as refused:
            spark_ingest(spark_settings, tmp_path / "notes", spark=spark)
        assert str(refused.value) == (
            f"{tmp_path}/notes: holds no data file (.json, .ndjson, or an archive of them): its 1"
            " file skipped as not data (not-json 1); nothing was loaded"
        )
        written = [table(name) for name in ("batches", "batch_files", "user_documents")]
        assert written == [0, 0, 0]
