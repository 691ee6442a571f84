"""Exports: every `dbt_analysis` model and the three core models, as CSV or Parquet files.

The set of tables is read from the catalog (whatever `dbt_analysis` holds now), so a new model is
exported without a code change. All files come from one read-only REPEATABLE READ snapshot, read
by EXPORT_CONNECTIONS connections at once (the others import the first one's snapshot); CSV is
streamed by `COPY ... TO STDOUT`, Parquet written in record batches with pyarrow (numerics as exact
decimals). Rows are ordered by every column, so the same data gives the same bytes. A
`manifest.json` lists each file with its rows, bytes and sha256; files of an earlier export that
the new manifest does not list are removed, so the directory always matches its manifest. A file
whose bytes did not change is not rewritten, nor is a manifest that lists the same files (issue
15: an incremental run rewrites only the tables that changed).

`pseudonymize=True` replaces every personal column (name, email, *_email, *_handle, ...) with
`left(hex(HMAC-SHA256(key, value)), 32)`, computed in SQL from the key's HMAC pads: the same value
gives the same token in every file and every run with the same key, and nothing personal leaves
the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from duel import __version__, read
from duel.exceptions import ConfigError, StepFailed
from duel.settings import Settings

ANALYSIS_SCHEMA = "dbt_analysis"
CORE_MODELS = (("dbt", "base"), ("dbt", "advocacy_programs"), ("dbt", "tasks_completed"))
FORMATS = ("csv", "parquet")
MANIFEST = "manifest.json"
# `label`: the rankings' best identifier of a user (a name, an email, a handle...), personal too
PERSONAL_COLUMN = re.compile(
    r"^(name|label|email|\w*_email|\w*_handle|(first|last|full|user|display)_name)$"
)
TEXT_TYPES = frozenset(
    {"text", "varchar", "bpchar", "citext", "name"}
)  # only text is pseudonymized
TOKEN_HEX_CHARS = 32  # 128 bits of the HMAC: collisions are not a practical concern
PARQUET_BATCH_ROWS = 50_000
# Tables read at once, each on its own connection in the same snapshot: the server sorts and
# formats one table's rows while duel writes and hashes another's, so two streams use both cores
# of a small machine (bench/analysis.md has the measurement at 1M users).
EXPORT_CONNECTIONS = 2
# Sort memory of each export connection (the server's work_mem is 32 MB): every file is ordered,
# and a large table's rows sort in memory rather than in merged runs on disk. At 1M users `duel
# export` took 18.7 / 19.2 s with 32 MB and 16.5 / 15.4 s with this (runs alternating); it is a
# cap, used only by a sort that needs it, on at most EXPORT_CONNECTIONS connections at once.
EXPORT_WORK_MEM = "256MB"
UNORDERABLE_TYPES = frozenset(
    {"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"}
)

_RELATIONS_SQL = """
select n.nspname, c.relname, pg_relation_size(c.oid)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'v', 'm', 'p')
  and (n.nspname = %s or (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[])))
order by n.nspname = %s, n.nspname, c.relname
"""
_COLUMNS_SQL = """
select a.attname, t.typname
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str  # pg_type.typname: int8, numeric, text, uuid, timestamptz, ...
    pseudonymized: bool = False


@dataclass(frozen=True)
class ExportedFile:
    """One line of the manifest."""

    file: str
    schema: str
    table: str
    rows: int
    bytes: int
    sha256: str
    columns: tuple[str, ...]
    pseudonymized_columns: tuple[str, ...]


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    format: str
    pseudonymized: bool
    files: tuple[ExportedFile, ...]

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST


def hmac_pads(key: str) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer key pads (RFC 2104), so SQL can compute the HMAC itself."""
    raw = key.encode()
    if len(raw) > 64:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def pseudonym(key: str, value: str) -> str:
    """The token `duel export --pseudonymize` writes for `value` (for checks and joins in
    Python)."""
    import hmac

    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]


def is_personal(column: str) -> bool:
    """Columns that hold a person's name, email or social handle (not flags about them: is_*,
    has_*)."""
    return bool(PERSONAL_COLUMN.match(column)) and not column.startswith(("is_", "has_"))


class Relation(NamedTuple):
    schema: str
    table: str
    size: int  # bytes of its table (0 for a view): the largest are exported first


def list_relations(conn: psycopg.Connection[Any]) -> list[Relation]:
    """The core models, then every dbt_analysis relation, as they exist now."""
    schemas = [s for s, _ in CORE_MODELS]
    tables = [t for _, t in CORE_MODELS]
    rows = conn.execute(
        _RELATIONS_SQL, (ANALYSIS_SCHEMA, schemas, tables, ANALYSIS_SCHEMA)
    ).fetchall()
    found = [Relation(str(s), str(t), int(size)) for s, t, size in rows]
    names = {(r.schema, r.table) for r in found}
    missing = [f"{s}.{t}" for s, t in CORE_MODELS if (s, t) not in names]
    if missing or not any(r.schema == ANALYSIS_SCHEMA for r in found):
        absent = ", ".join(missing) if missing else f"every {ANALYSIS_SCHEMA} model"
        raise StepFailed("export", f"{absent} missing; run `duel transform` first")
    return found


def _columns(
    conn: psycopg.Connection[Any], schema: str, table: str, pseudonymize: bool
) -> list[Column]:
    rows = conn.execute(_COLUMNS_SQL, (schema, table)).fetchall()
    return [
        Column(
            str(name),
            str(kind),
            pseudonymize and str(kind) in TEXT_TYPES and is_personal(str(name)),
        )
        for name, kind in rows
    ]


def _select(
    schema: str,
    table: str,
    columns: list[Column],
    pads: tuple[bytes, bytes] | None,
    cast_for_parquet: bool = False,
) -> sql.Composed:
    """The model's rows as exported (pseudonyms computed in SQL), ordered by every column."""
    items: list[sql.Composable] = []
    for column in columns:
        ident = sql.Identifier(column.name)
        expr: sql.Composable = ident
        if column.pseudonymized and pads:
            expr = sql.SQL(
                "left(encode(sha256({} || sha256({} || convert_to({}::text, 'UTF8'))), 'hex'), {})"
            ).format(
                sql.Literal(pads[1]), sql.Literal(pads[0]), ident, sql.Literal(TOKEN_HEX_CHARS)
            )
        elif cast_for_parquet and _arrow_kind(column.type_name) == "text":
            expr = sql.SQL("{}::text").format(ident)
        items.append(sql.SQL("{} as {}").format(expr, ident))
    order = [i for i, c in enumerate(columns, 1) if c.type_name not in UNORDERABLE_TYPES]
    return read.select_model(table, schema, columns=items, order_by=order)


def _write_csv(conn: psycopg.Connection[Any], query: sql.Composed, path: Path) -> tuple[int, str]:
    """Stream the rows into `path`: (rows, sha256 of the bytes written)."""
    copy_sql = sql.SQL(
        "copy ({}) to stdout with (format csv, header true, encoding 'UTF8')"
    ).format(query)
    digest = hashlib.sha256()
    with path.open("wb") as out, conn.cursor() as cur:
        with cur.copy(copy_sql) as copy:
            for chunk in copy:
                digest.update(chunk)
                out.write(chunk)
        return cur.rowcount, digest.hexdigest()


# --- parquet --------------------------------------------------------------------------------

_ARROW_KINDS = {
    "int2": "int16",
    "int4": "int32",
    "int8": "int64",
    "float4": "float32",
    "float8": "float64",
    "bool": "bool",
    "date": "date32",
    "timestamptz": "timestamp_utc",
    "timestamp": "timestamp",
    "numeric": "decimal",
}


def _arrow_kind(type_name: str) -> str:
    return _ARROW_KINDS.get(type_name, "text")


def _decimal_type(conn: psycopg.Connection[Any], schema: str, table: str, column: str) -> Any:
    """The narrowest exact decimal that holds every value of a numeric column (text if none
    does)."""
    import pyarrow as pa

    measures = [
        "coalesce(max(scale({c})), 0) as scale",
        "coalesce(max(length(trunc(abs({c}))::text)), 1) as digits",
        "count(*) filter (where {c}::text in ('NaN', 'Infinity', '-Infinity')) as special",
    ]
    query = read.select_model(
        table,
        schema,
        columns=[sql.SQL(m).format(c=sql.Identifier(column)) for m in measures],
    )
    found = read.rows(conn, query)[0]  # aggregates: one row
    scale, digits, special = found["scale"], found["digits"], found["special"]
    precision = max(int(digits) + int(scale), 1)
    if special or precision > 76:
        return pa.string()
    return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, int(scale))


def _arrow_schema(
    conn: psycopg.Connection[Any], schema: str, table: str, columns: list[Column]
) -> Any:
    import pyarrow as pa

    simple = {
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "date32": pa.date32(),
        "timestamp_utc": pa.timestamp("us", tz="UTC"),
        "timestamp": pa.timestamp("us"),
        "text": pa.string(),
    }
    fields = []
    for column in columns:
        kind = "text" if column.pseudonymized else _arrow_kind(column.type_name)
        kind_type = (
            _decimal_type(conn, schema, table, column.name) if kind == "decimal" else simple[kind]
        )
        fields.append(pa.field(column.name, kind_type))
    return pa.schema(fields)


def _write_parquet(
    conn: psycopg.Connection[Any],
    query: sql.Composed,
    path: Path,
    arrow_schema: Any,
    cursor_name: str,
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    with (
        conn.cursor(name=cursor_name) as cur,
        pq.ParquetWriter(path, arrow_schema, compression="zstd") as out,
    ):
        cur.execute(query)
        while batch := cur.fetchmany(PARQUET_BATCH_ROWS):
            arrays = [
                pa.array([row[i] for row in batch], type=field.type)
                for i, field in enumerate(arrow_schema)
            ]
            out.write_batch(pa.RecordBatch.from_arrays(arrays, schema=arrow_schema))
            rows += len(batch)
        if rows == 0:
            out.write_table(arrow_schema.empty_table())
    return rows


# --- the export -----------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _export_one(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    fmt: str,
    directory: Path,
    pads: tuple[bytes, bytes] | None,
    seq: int,
) -> ExportedFile:
    columns = _columns(conn, schema, table, pads is not None)
    name = f"{schema}.{table}.{fmt}"
    part = directory / f".{name}.part"
    try:
        if fmt == "csv":
            rows, digest = _write_csv(conn, _select(schema, table, columns, pads), part)
        else:
            arrow_schema = _arrow_schema(conn, schema, table, columns)
            rows = _write_parquet(
                conn,
                _select(schema, table, columns, pads, cast_for_parquet=True),
                part,
                arrow_schema,
                f"duel_export_{seq}",
            )
            digest = _sha256(part)
        _keep_or_replace(part, directory / name, digest)
    finally:
        part.unlink(missing_ok=True)
    return ExportedFile(
        name,
        schema,
        table,
        rows,
        (directory / name).stat().st_size,
        digest,
        tuple(c.name for c in columns),
        tuple(c.name for c in columns if c.pseudonymized),
    )


def _keep_or_replace(part: Path, path: Path, digest: str) -> None:
    """Put the new file in place, unless the one there has the same bytes: an unchanged table's
    file is left as it was (content and modification time)."""
    if path.is_file() and path.stat().st_size == part.stat().st_size and _sha256(path) == digest:
        return
    os.replace(part, path)


def _previous_files(directory: Path) -> set[str]:
    try:
        listed = json.loads((directory / MANIFEST).read_text())["files"]
        return {str(entry["file"]) for entry in listed if "/" not in str(entry["file"])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _write_manifest(result: ExportResult) -> None:
    """Write the manifest, unless the one there lists exactly these files (same bytes, rows and
    columns) in the same format: then it stays as it was, its `generated_at` the time those
    files were first written."""
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duel_version": __version__,
        "format": result.format,
        "pseudonymized": result.pseudonymized,
        "files": [asdict(entry) for entry in result.files],
    }
    try:
        previous = json.loads(result.manifest.read_text())
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and {**previous, "generated_at": None} == {
        **json.loads(json.dumps(document)),
        "generated_at": None,
    }:
        return
    part = result.directory / f".{MANIFEST}.part"
    part.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(part, result.manifest)


def iter_exports(
    settings: Settings, fmt: str, directory: Path, pseudonymize: bool
) -> Iterator[ExportedFile]:
    """Write each file, EXPORT_CONNECTIONS at a time, and yield them in the order of
    list_relations (for progress); `export_models` is the whole, manifest included."""
    pads = hmac_pads(settings.pseudonym_key) if pseudonymize and settings.pseudonym_key else None
    with ExitStack() as stack:
        first = stack.enter_context(read.snapshot(settings, "export"))
        relations = list_relations(first)
        connections = [first]
        if len(relations) > 1 and EXPORT_CONNECTIONS > 1:
            shared = read.export_snapshot(first)
            connections += [
                stack.enter_context(read.snapshot(settings, "export", shared=shared))
                for _ in range(EXPORT_CONNECTIONS - 1)
            ]
        idle: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
        for conn in connections:
            # after `set transaction snapshot`, which must come first in its transaction
            conn.execute(sql.SQL("set local work_mem = {}").format(sql.Literal(EXPORT_WORK_MEM)))
            idle.put(conn)

        def export(seq: int, schema: str, table: str) -> ExportedFile:
            conn = idle.get()  # as many tasks run as there are connections: never waits
            try:
                return _export_one(conn, schema, table, fmt, directory, pads, seq)
            finally:
                idle.put(conn)

        # the largest tables start first, so that the last one to finish is a small one
        pool = ThreadPoolExecutor(EXPORT_CONNECTIONS, thread_name_prefix="duel-export")
        try:
            futures = {
                seq: pool.submit(export, seq, relations[seq].schema, relations[seq].table)
                for seq in sorted(range(len(relations)), key=lambda seq: -relations[seq].size)
            }
            for seq in range(len(relations)):
                yield futures[seq].result()
        finally:  # a failure (or a consumer that stops) starts no further table
            pool.shutdown(wait=True, cancel_futures=True)


def export_models(
    settings: Settings, fmt: str = "csv", out: Path | None = None, pseudonymize: bool = False
) -> ExportResult:
    """Export every dbt_analysis model and dbt.{base,advocacy_programs,tasks_completed} to `out`

    (default `<out_dir>/exports`), write `manifest.json`, and drop files an earlier export left.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if pseudonymize and not settings.pseudonym_key:
        raise ConfigError(
            "--pseudonymize needs DUEL_PSEUDONYM_KEY (a secret, e.g. `openssl rand -hex 32`)"
        )
    directory = out or settings.out_dir / "exports"
    directory.mkdir(parents=True, exist_ok=True)
    previous = _previous_files(directory)
    files = tuple(iter_exports(settings, fmt, directory, pseudonymize))
    result = ExportResult(directory, fmt, pseudonymize, files)
    _write_manifest(result)
    for stale in previous - {entry.file for entry in files}:
        (directory / stale).unlink(missing_ok=True)
    return result
