"""Exports from the real dataset, built by dbt: files read back equal the database, whole tables."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from psycopg import sql

from duel import read
from duel.export import (
    CORE_MODELS,
    MANIFEST,
    export_models,
    is_personal,
    pseudonym,
)
from duel.settings import Settings

pytestmark = pytest.mark.slow
KEY = "test-key-not-a-secret"
PERSONAL_FIELDS = ("name", "email", "instagram_handle", "tiktok_handle")
SENTINELS = {"???", "invalid-email", "#error_handle", ""}  # defect markers, not anybody's data


def catalog(settings: Settings) -> list[tuple[str, str]]:
    """What the export must cover: every dbt_analysis relation, and the three core models."""
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        rows = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = 'dbt_analysis'"
        ).fetchall()
    return sorted([(str(s), str(t)) for s, t in rows] + list(CORE_MODELS))


def table_rows(
    settings: Settings, schema: str, table: str
) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    """Column names, type names and every row (ordered by every column), as psycopg reads them."""
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        types = conn.execute(
            "select a.attname, t.typname from pg_attribute a join pg_type t on t.oid = a.atttypid "
            "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by "
            "a.attnum",
            (f'"{schema}"."{table}"',),
        ).fetchall()
        order = sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(types) + 1))
        rows = conn.execute(
            sql.SQL("select * from {}.{} order by {}").format(
                sql.Identifier(schema), sql.Identifier(table), order
            )
        ).fetchall()
    return [str(n) for n, _ in types], [str(t) for _, t in types], rows


def from_csv_text(text: str | None, type_name: str) -> Any:
    """A CSV cell (COPY's text output) back to the value psycopg gives for that type."""
    if text is None:
        return None
    parse = {
        "int2": int,
        "int4": int,
        "int8": int,
        "numeric": Decimal,
        "float4": float,
        "float8": float,
        "bool": lambda v: {"t": True, "f": False}[v],
        "uuid": UUID,
        "date": date.fromisoformat,
        "timestamptz": datetime.fromisoformat,
        "jsonb": json.loads,
        "json": json.loads,
    }
    return parse.get(type_name, str)(text)


def read_csv(path: Path, columns: list[str]) -> list[tuple[Any, ...]]:
    """Every cell as text; an unquoted empty cell is NULL, a quoted one the empty string."""
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
        ),
    )
    assert table.column_names == columns
    return (
        list(zip(*(table.column(c).to_pylist() for c in columns), strict=True)) if columns else []
    )


def from_parquet(value: Any, type_name: str) -> Any:
    """A Parquet value back to the value psycopg gives (uuid and json are exported as text)."""
    if value is None or type_name not in ("uuid", "jsonb", "json"):
        return value
    return UUID(value) if type_name == "uuid" else json.loads(value)


def read_records(path: Path) -> list[dict[str, Any]]:
    header = path.read_text().splitlines()[0].split(",")
    return [dict(zip(header, row, strict=True)) for row in read_csv(path, header)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def csv_export(real_built: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_models(real_built, "csv", tmp_path_factory.mktemp("csv")).directory


@pytest.fixture(scope="module")
def pseudonymized(real_built: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    keyed = real_built.with_overrides(pseudonym_key=KEY)
    return export_models(
        keyed, "csv", tmp_path_factory.mktemp("pseudo"), pseudonymize=True
    ).directory


def test_export_csv_reads_back_equal_to_the_database(
    real_built: Settings, csv_export: Path
) -> None:
    for schema, table in catalog(real_built):
        columns, types, rows = table_rows(real_built, schema, table)
        cells = read_csv(csv_export / f"{schema}.{table}.csv", columns)
        back = [
            tuple(from_csv_text(v, t) for v, t in zip(row, types, strict=True)) for row in cells
        ]
        assert back == rows, f"{schema}.{table}"


def test_export_parquet_reads_back_equal_to_the_database(
    real_built: Settings, tmp_path: Path
) -> None:
    export_models(real_built, "parquet", tmp_path)
    for schema, table in catalog(real_built):
        columns, types, rows = table_rows(real_built, schema, table)
        data = pq.read_table(tmp_path / f"{schema}.{table}.parquet")
        assert data.column_names == columns
        cells = zip(*(data.column(c).to_pylist() for c in columns), strict=True) if columns else []
        back = [tuple(from_parquet(v, t) for v, t in zip(row, types, strict=True)) for row in cells]
        assert back == rows, f"{schema}.{table}"


def test_export_manifest_matches_the_files(real_built: Settings, csv_export: Path) -> None:
    manifest = json.loads((csv_export / MANIFEST).read_text())
    assert (manifest["format"], manifest["pseudonymized"]) == ("csv", False)
    expected = [f"{s}.{t}.csv" for s, t in catalog(real_built)]
    assert sorted(e["file"] for e in manifest["files"]) == expected
    assert sorted(p.name for p in csv_export.iterdir()) == sorted([*expected, MANIFEST])
    for entry in manifest["files"]:
        path = csv_export / entry["file"]
        columns, _, rows = table_rows(real_built, entry["schema"], entry["table"])
        assert (entry["rows"], entry["bytes"], entry["sha256"], entry["columns"]) == (
            len(rows),
            path.stat().st_size,
            sha256(path),
            columns,
        ), entry["file"]


def test_export_is_byte_identical_when_run_again(
    real_built: Settings, csv_export: Path, tmp_path: Path
) -> None:
    again = export_models(real_built, "csv", tmp_path)
    first = {
        e["file"]: e["sha256"] for e in json.loads((csv_export / MANIFEST).read_text())["files"]
    }
    assert {e.file: e.sha256 for e in again.files} == first


def personal_values(settings: Settings) -> dict[str, set[str]]:
    """Every name, email and handle the database holds: cleaned
    (dbt.base) and as delivered (raw).
    """
    found: dict[str, set[str]] = {field: set() for field in PERSONAL_FIELDS}
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        for field in PERSONAL_FIELDS:
            for (value,) in conn.execute(
                sql.SQL("select distinct {} from dbt.base where {} is not null").format(
                    sql.Identifier(field), sql.Identifier(field)
                )
            ):
                found[field].add(str(value))
            for (value,) in conn.execute(
                "select distinct document->>%s from raw.user_documents "
                "where jsonb_typeof(document->%s) = 'string'",
                (field, field),
            ):
                found[field].add(str(value))
    return {field: values - SENTINELS for field, values in found.items()}


def found_in(text: str, values: set[str]) -> list[str]:
    """The values (each of at least 6 characters) that occur in `text` anywhere, even inside a
    longer cell: one pass over the text by the values' 6-character prefixes (testing each value
    with `in` reads the whole text once per value: minutes for the real dump's 30,000)."""
    by_prefix: dict[str, list[str]] = {}
    for value in values:
        by_prefix.setdefault(value[:6], []).append(value)
    found = set()
    for at in range(len(text) - 5):
        for value in by_prefix.get(text[at : at + 6], ()):
            if text.startswith(value, at):
                found.add(value)
    return sorted(found)


def test_found_in_finds_values_inside_longer_text() -> None:
    values = {"ann@x.org", "ann@x.organic", "bobby1", "zzzzzz"}
    assert found_in("id,mail\n1,hi ann@x.organic!\n2,bobby12", values) == [
        "ann@x.org",
        "ann@x.organic",
        "bobby1",
    ]
    assert found_in("short", values) == []


def test_export_pseudonymized_contains_no_personal_value(
    real_built: Settings, pseudonymized: Path
) -> None:
    personal = personal_values(real_built)
    assert {f: len(v) > 1000 for f, v in personal.items()} == dict.fromkeys(PERSONAL_FIELDS, True)
    everything = set().union(*personal.values())
    distinctive = {
        v.lower()
        for f in ("email", "instagram_handle", "tiktok_handle")
        for v in personal[f]
        if len(v) >= 6
    }
    for path in sorted(pseudonymized.glob("*.csv")):
        cells = {
            cell for record in read_records(path) for cell in record.values() if cell is not None
        }
        assert cells & everything == set(), path.name
        assert found_in(path.read_text().lower(), distinctive) == [], path.name


def test_export_pseudonymized_maps_a_person_to_one_token(
    real_built: Settings, pseudonymized: Path, tmp_path: Path
) -> None:
    with psycopg.connect(**real_built.conninfo()) as conn:  # type: ignore[arg-type]
        users = conn.execute(
            "select user_key, name, email, instagram_handle, tiktok_handle from dbt.base"
        ).fetchall()
    expected = {
        str(row[0]): tuple(None if v is None else pseudonym(KEY, v) for v in row[1:])
        for row in users
    }
    base = read_records(pseudonymized / "dbt.base.csv")
    assert {r["user_key"]: tuple(r[f] for f in PERSONAL_FIELDS) for r in base} == expected
    # every other file with a user_key and a personal column carries the same token for that user
    checked = 0
    for path in sorted(pseudonymized.glob("dbt_analysis.*.csv")):
        for record in read_records(path):
            for column in (c for c in PERSONAL_FIELDS if c in record and "user_key" in record):
                assert (
                    record[column] == expected[record["user_key"]][PERSONAL_FIELDS.index(column)]
                ), path.name
                checked += 1
    assert checked > 0
    again = export_models(
        real_built.with_overrides(pseudonym_key=KEY), "csv", tmp_path, pseudonymize=True
    )
    assert sha256(tmp_path / "dbt.base.csv") == sha256(pseudonymized / "dbt.base.csv")
    assert {e.file: e.pseudonymized_columns for e in again.files}["dbt.base.csv"] == PERSONAL_FIELDS


def test_export_detects_personal_columns() -> None:
    names = [
        "name",
        "email",
        "instagram_handle",
        "tiktok_handle",
        "contact_email",
        "full_name",
        "label",
        "brand",
        "source_file",
        "user_key",
        "engagement",
        "platform",
        "is_duplicate_email",
        "has_tiktok_handle",
        "label_source",
    ]
    assert [n for n in names if is_personal(n)] == names[:7]


def test_export_replaces_an_earlier_export_of_another_format(
    real_built: Settings, tmp_path: Path
) -> None:
    export_models(real_built, "csv", tmp_path)
    result = export_models(real_built, "parquet", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [e.file for e in result.files] + [MANIFEST]
    )


def test_export_cli_pseudonymize_without_key_fails_in_one_line(settings: Settings) -> None:
    done = run_cli(settings, "export", "--pseudonymize")
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "error: --pseudonymize needs DUEL_PSEUDONYM_KEY (a secret, e.g. `openssl rand -hex 32`)\n",
    )


def test_export_cli_before_transform_fails_in_one_line(settings: Settings) -> None:
    done = run_cli(settings, "export")
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "error: export failed: dbt.base, "
        "dbt.advocacy_programs, dbt.tasks_completed missing; run `duel transform` first\n",
    )


def test_export_cli_writes_into_out_and_lists_files(real_built: Settings, tmp_path: Path) -> None:
    done = run_cli(real_built, "export", "--format", "parquet", "--out", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert listed == manifest["files"]
    rows = sum(e["rows"] for e in listed)
    assert done.stderr == f"exported {len(listed)} files, {rows:,} rows, to {tmp_path}\n"


def test_export_again_rewrites_only_what_changed(real_built: Settings, tmp_path: Path) -> None:
    """Exporting unchanged tables twice leaves every file and the manifest as they were (bytes
    and modification times); a file changed by hand since is written anew, with the manifest."""
    export_models(real_built, out=tmp_path)
    stamps = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    again = export_models(real_built, out=tmp_path)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == stamps
    touched = tmp_path / "dbt_analysis.overview.csv"
    touched.write_bytes(b"edited\n")
    export_models(real_built, out=tmp_path)
    assert touched.read_bytes() == stamps[touched.name][0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != MANIFEST} == {
        name: content for name, (content, _) in stamps.items() if name != MANIFEST
    }
    assert [
        (e["file"], e["sha256"]) for e in json.loads((tmp_path / MANIFEST).read_text())["files"]
    ] == [(e.file, e.sha256) for e in again.files]


def test_export_connections_read_one_snapshot(settings: Settings) -> None:
    """The export reads with EXPORT_CONNECTIONS connections; the others import the first one's
    snapshot (read.snapshot(shared=...)), so a row committed in between is seen by none of them,
    and by a snapshot of its own."""
    with psycopg.connect(**settings.conninfo(), autocommit=True) as writer:  # type: ignore[arg-type]
        writer.execute("create table public.deliveries (n integer)")
        writer.execute("insert into public.deliveries values (1)")
        with read.snapshot(settings, "export") as first:
            shared = read.export_snapshot(first)  # its first statement: the snapshot is taken
            writer.execute("insert into public.deliveries values (2)")
            with (
                read.snapshot(settings, "export", shared=shared) as second,
                read.snapshot(settings, "export") as own,
            ):
                seen = [
                    conn.execute("select array_agg(n order by n) from public.deliveries").fetchall()
                    for conn in (first, second, own)
                ]
    assert seen == [[([1],)], [([1],)], [([1, 2],)]]


def test_export_files_all_come_from_the_first_connections_snapshot(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows committed right after the export's first connection exported its snapshot (before
    the second connection imports it) are in no file, whichever connection wrote the file."""
    tables = [*CORE_MODELS, ("dbt_analysis", "overview")]

    def insert(value: int) -> None:
        with psycopg.connect(**settings.conninfo(), autocommit=True) as writer:  # type: ignore[arg-type]
            for schema, table in tables:
                writer.execute(
                    sql.SQL("insert into {}.{} values (%s)").format(
                        sql.Identifier(schema), sql.Identifier(table)
                    ),
                    (value,),
                )

    with psycopg.connect(**settings.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        for schema, table in tables:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL("create table {}.{} (n integer)").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
    insert(1)
    exported = read.export_snapshot

    def export_then_write(conn: psycopg.Connection[Any]) -> str:
        shared = exported(conn)
        insert(2)
        return shared

    monkeypatch.setattr(read, "export_snapshot", export_then_write)
    result = export_models(settings, out=tmp_path)
    assert {entry.table: (tmp_path / entry.file).read_text() for entry in result.files} == {
        table: "n\n1\n" for _, table in tables
    }
