"""The ingest as a Spark job: the raw tables as parquet, each file classified in the executors.

`duel ingest --engine spark DATA` (or `spark_ingest(settings, path)` from the DAG) does what
duel.load does, with the same raw schema (src/duel/sql/raw_schema.sql, `raw.*` tables in the
Spark catalog that profiles.yml's `spark` output reads), the same identity (duel.identity) and
the same ledger, and is idempotent the same way: a version is keyed by (document_key,
content_sha256), so the same dump again stores no document, only its batch and ledger rows.

- Reading: duel's own readers (duel.sources) list the dump on the driver, with the names, skip
  reasons and defects of a Postgres ingest, and ship each window of files to the executors.
- Parsing: in the executors (`mapInArrow`), by duel.parse.classify, the function the Postgres
  ingest calls: hashing, parsing, repairs, quarantine reasons and keys are computed by the same
  code.
- Writing: set-based, in Spark SQL, with the loader's rules: in the order the files were seen, a
  document whose content equals its current version (or its previous delivery in this dump) is
  `unchanged`, and so is one in other bytes that holds the same content (reason `same-content`:
  its text as Postgres jsonb writes it, `duel.jsonb.content`, and parsed alike); every other
  delivery is a new version (stored once per key and hash) and the
  last one becomes current, unless the last is the version the document had (a document twice
  in one dump: it ends as it was, its copies of versions held before `unchanged`); a
  quarantined file is stored once per (name, hash).
- The layout guard (duel.layout): a dump whose new documents are mostly current documents under
  another folder depth is refused before anything is written, unless `allow_new_layout`.

Unlike Postgres, parquet has no transactions: the tables are appended in turn, current_versions
rewritten, and the `raw.batches` row (status succeeded) written last; a batch that dies midway
leaves rows of a batch id without a succeeded batch row (on Delta or Iceberg, in production,
the writes go in one commit each, and a MERGE replaces the rewrite). `--full` (deletes) and
shards are not done here. Spark session settings: `session_config` (profiles.yml's are the same).
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from duel import __version__, jsonb, layout
from duel.identity import CONTENT_PREFIX, KeyRule, key_rule
from duel.load import COUNTS as LOAD_COUNTS
from duel.load import SAME_CONTENT, IngestResult, refuse_without_data, repair_json
from duel.parse import Outcome, classify
from duel.settings import Settings
from duel.sources import SourceFile, iter_source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

WINDOW = 2048  # files per Arrow batch shipped to the executors
RAW = "raw"

# What the driver ships: one row per input file, in the order the readers gave them.
INPUT_SCHEMA = pa.schema(
    [
        ("file_index", pa.int64()),
        ("name", pa.string()),
        ("data", pa.binary()),
        ("size", pa.int64()),
        ("skip_reason", pa.string()),
        ("oversize", pa.bool_()),
        ("key_path", pa.string()),
        ("defect", pa.string()),
        ("continued", pa.bool_()),
    ]
)
# What the executors give back: one row per outcome (a JSON array of users is several).
OUTCOME_SCHEMA = pa.schema(
    [
        ("file_index", pa.int64()),
        ("part", pa.int32()),
        ("name", pa.string()),
        ("status", pa.string()),
        ("size", pa.int64()),
        ("sha256", pa.string()),
        ("document_key", pa.string()),
        ("parse_error", pa.string()),
        ("repair", pa.string()),
        ("document", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("content", pa.binary()),
        ("proposed_repair", pa.string()),
        ("continued", pa.bool_()),
    ]
)
# raw_schema.sql's columns, Spark types (jsonb as JSON text, bytea as binary, text as string).
TABLES = {
    "batches": "batch_id bigint, source_uri string, shard string, status string,"
    " started_at timestamp, finished_at timestamp, files_seen int, loaded int, repaired int,"
    " quarantined int, skipped int, unchanged int, deleted int, keyless int, is_full boolean,"
    " document_key_rule string, error string, duel_version string, deletes_withheld int,"
    " files_read int, same_content int",
    "user_documents": "document_key string, content_sha256 string, source_name string,"
    " batch_id bigint, loaded_at timestamp, parse_status string, parse_error string,"
    " repair string, byte_size int, document string",
    "current_versions": "document_key string, content_sha256 string, source_name string,"
    " batch_id bigint, is_deleted boolean, updated_at timestamp",
    "quarantine": "source_name string, document_key string, content_sha256 string,"
    " batch_id bigint, quarantined_at timestamp, reason string, detail string,"
    " parse_error string, byte_size bigint, content binary, proposed_repair string",
    "batch_files": "batch_id bigint, file_seq int, source_name string, status string,"
    " reason string, document_key string, content_sha256 string, byte_size bigint",
}
# what a Spark batch counts: the loader's counts but `deleted` (--full is not done on Spark)
COUNTS = tuple(name for name in LOAD_COUNTS if name != "deleted")


def spark_dir(settings: Settings) -> Path:
    """Where the Spark warehouse and its metastore live: DUEL_HOME/spark (as in profiles.yml)."""
    return settings.home.resolve() / "spark"


def session_config(settings: Settings) -> dict[str, str]:
    """The local session's settings: profiles.yml's `spark` output has the same ones, so dbt
    reads the tables this job writes."""
    home = spark_dir(settings)
    return {
        "spark.master": "local[2]",
        "spark.driver.memory": "2g",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.default": "parquet",
        "spark.sql.ansi.enabled": "false",
        "spark.sql.warehouse.dir": str(home / "warehouse"),
        "javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
    }


def spark_session(settings: Settings) -> SparkSession:
    """A local Spark session on duel's warehouse (one per process: Spark's getOrCreate)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("duel-ingest").enableHiveSupport()
    for key, value in session_config(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    # The Python workers run this interpreter, where duel is installed, not the first python3 on
    # PATH (pyspark takes it from PYSPARK_PYTHON when the context starts, else python3).
    session.sparkContext.pythonExec = sys.executable
    return session


# Columns added to a raw table later, last in its TABLES entry (an insert is by position): a
# warehouse an earlier duel made gets them, its earlier rows NULL.
ADDED_COLUMNS = {"batches": ("deletes_withheld int", "files_read int", "same_content int")}


def ensure_raw_tables(spark: SparkSession) -> None:
    """The raw schema and its tables, empty, if missing (parquet, as raw_schema.sql's columns),
    and the columns added since an earlier duel made them."""
    spark.sql(f"create database if not exists {RAW}")
    for name, columns in TABLES.items():
        spark.sql(f"create table if not exists {RAW}.{name} ({columns}) using parquet")
    for name, added in ADDED_COLUMNS.items():
        present = set(spark.table(f"{RAW}.{name}").columns)
        missing = [column for column in added if column.split()[0] not in present]
        if missing:
            spark.sql(f"alter table {RAW}.{name} add columns ({', '.join(missing)})")


def spark_ingest(
    settings: Settings,
    path: Path,
    *,
    spark: SparkSession | None = None,
    files: Iterable[SourceFile] | None = None,
    allow_new_layout: bool = False,
) -> IngestResult:
    """Ingest `path` into the Spark raw tables as one batch; returns its counts, as
    duel.load.ingest does (no deletes: `--full` is not done on Spark). A dump repackaged at
    another folder depth is refused (LayoutChanged, nothing written) unless `allow_new_layout`."""
    spark = spark or spark_session(settings)
    ensure_raw_tables(spark)
    rule = key_rule(settings)
    source_files = files if files is not None else iter_source(path, settings.max_file_bytes)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    batch_id = _next_batch_id(spark)
    outcomes = _classified(spark, source_files, settings.repair_policy, rule)
    outcomes.createOrReplaceTempView("duel_outcomes")
    spark.udf.register("duel_content", _content, "string")
    ledger = _ledger(spark, batch_id).localCheckpoint()
    ledger.createOrReplaceTempView("duel_ledger")
    _check_rule(spark, rule.text, allow=allow_new_layout)
    _check_collisions(spark)
    _check_layout(spark, allow=allow_new_layout)  # before the first write
    _check_form(spark, rule, allow=allow_new_layout)
    # the ledger view is fixed from here on: its counts are read once, before the first write
    counts, skip_reasons = _counts(spark), _reasons(spark, "skipped")
    refuse_without_data(str(path), counts, skip_reasons)
    _append(spark, "user_documents", _new_documents(spark, batch_id))
    _append(spark, "quarantine", _new_quarantine(spark, batch_id))
    _append(
        spark,
        "batch_files",
        spark.sql(
            "select batch_id, file_seq, source_name, status, reason, document_key,"
            " content_sha256, byte_size from duel_ledger"
        ),
    )
    _replace_current_versions(spark, batch_id)
    unchanged_reasons = _reasons(spark, "unchanged")
    same_content = unchanged_reasons.get(SAME_CONTENT, 0)
    row = _batch_row(spark, batch_id, str(path), started, counts, rule, same_content)
    _append(spark, "batches", row)
    return IngestResult(
        batch_id,
        str(path),
        files_read=counts["files_read"],
        files_seen=counts["files_seen"],
        loaded=counts["loaded"],
        repaired=counts["repaired"],
        quarantined=counts["quarantined"],
        skipped=counts["skipped"],
        unchanged=counts["unchanged"],
        keyless=counts["keyless"],
        quarantine_reasons=_reasons(spark, "quarantined"),
        skip_reasons=skip_reasons,
        unchanged_reasons=unchanged_reasons,
    )


def _next_batch_id(spark: SparkSession) -> int:
    row = spark.sql(f"select coalesce(max(batch_id), 0) + 1 from {RAW}.batches").first()
    return int(row[0]) if row else 1


def _classified(
    spark: SparkSession, files: Iterable[SourceFile], policy: str, rule: KeyRule
) -> DataFrame:
    """The outcomes of every file, classified in the executors by duel.parse.classify."""
    # the whole input is held on the driver here (fine for a local session; a cluster reads
    # the files in the executors, see the README's "When one machine is not enough")
    batches = [_input_batch(window, start) for start, window in _windows(files, WINDOW)]
    table = pa.Table.from_batches(batches, schema=INPUT_SCHEMA)
    inputs = spark.createDataFrame(table)

    def classify_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield _outcome_batch(batch, policy, rule)

    return inputs.mapInArrow(classify_batches, _spark_schema(OUTCOME_SCHEMA))


def _windows(files: Iterable[SourceFile], size: int) -> Iterator[tuple[int, list[SourceFile]]]:
    iterator = iter(files)
    start = 0
    while window := list(itertools.islice(iterator, size)):
        yield start, window
        start += len(window)


def _input_batch(window: list[SourceFile], start: int) -> pa.RecordBatch:
    columns = list(zip(*window, strict=True))  # SourceFile's fields, in INPUT_SCHEMA's order
    arrays = [
        pa.array(column, field.type)
        for column, field in zip(columns, list(INPUT_SCHEMA)[1:], strict=True)
    ]
    return pa.RecordBatch.from_arrays(
        [pa.array(range(start, start + len(window)), pa.int64()), *arrays], schema=INPUT_SCHEMA
    )


def _outcome_batch(batch: pa.RecordBatch, policy: str, rule: KeyRule) -> pa.RecordBatch:
    """Classify one Arrow batch of files (runs in an executor)."""
    rows: list[dict[str, Any]] = []
    for record in batch.to_pylist():
        index = record.pop("file_index")
        outcome = classify(SourceFile(**record), policy, rule)
        for part, one in enumerate(outcome if isinstance(outcome, list) else [outcome]):
            rows.append(_outcome_row(index, part, one))
    return pa.RecordBatch.from_pylist(rows, schema=OUTCOME_SCHEMA)


def _outcome_row(index: int, part: int, outcome: Outcome) -> dict[str, Any]:
    """One outcome as the loader would store it (duel.load: documents, quarantine, ledger)."""
    parsed = outcome.parsed
    row: dict[str, Any] = {
        "file_index": index,
        "part": part,
        "name": outcome.name,
        "status": outcome.status,
        "size": outcome.size,
        "sha256": outcome.sha256 or None,
        "document_key": outcome.key,
        "continued": outcome.continued,
    }
    if parsed is None:
        return {**row, "reason": outcome.skip_reason}
    repair = repair_json(parsed)
    row.update(parse_error=parsed.parse_error, repair=repair.decode() if repair else None)
    if outcome.status == "quarantined":
        proposed = None
        if parsed.repair is not None:
            proposed = orjson.dumps(
                {**parsed.repair, "document": orjson.Fragment(parsed.document or b"null")}
            ).decode()
        row.update(
            reason=parsed.reason or "unknown",
            detail=parsed.detail,
            content=outcome.content,
            proposed_repair=proposed,
            repair=None,
        )
    elif parsed.document is not None:
        row["document"] = parsed.document.decode()
    return row


def _spark_schema(schema: pa.Schema) -> str:
    kinds = {pa.int64(): "bigint", pa.int32(): "int", pa.string(): "string"}
    kinds |= {pa.binary(): "binary", pa.bool_(): "boolean"}
    return ", ".join(f"{field.name} {kinds[field.type]}" for field in schema)


def _content(document: str | None) -> str | None:
    """duel.jsonb.content, as the Spark SQL function `duel_content` (a Python UDF)."""
    return None if document is None else jsonb.content(document)


def _ledger(spark: SparkSession, batch_id: int) -> DataFrame:
    """Every outcome with its ledger status, in the order seen: the loader's rules, set-based.
    A loadable delivery is `unchanged` when its hash is its key's previous delivery's in this
    dump, or for the first delivery, the current version's, or (`same-content`, with that
    version's hash) the current version's content in other bytes, parsed alike (duel.load's
    _Batch._compare_with_current: Postgres compares the jsonb texts, here `duel_content` of both,
    computed for those deliveries only); else it is a new version. A key
    whose last delivery in this dump is its current version (not deleted) ends as it was: its
    deliveries of a version held before are `unchanged` too (load._Batch.restore_repeated),
    and its current version stays (`ends_as_it_was`, read by _replace_current_versions)."""
    return spark.sql(
        f"""
        with numbered as (
            select *, cast(row_number() over (order by file_index, part) - 1 as int) as file_seq
            from duel_outcomes
        ),
        loadable as (
            select
                numbered.file_seq,
                numbered.document_key,
                coalesce(
                    lag(numbered.sha256) over (
                        partition by numbered.document_key order by numbered.file_seq
                    ),
                    current.content_sha256
                ) as previous_sha256,
                coalesce(
                    last_value(numbered.sha256) over (
                        partition by numbered.document_key order by numbered.file_seq
                        rows between unbounded preceding and unbounded following
                    ) = current.content_sha256 and not current.is_deleted,
                    false
                ) as ends_as_it_was,
                lag(numbered.sha256) over (
                    partition by numbered.document_key order by numbered.file_seq
                ) is null as is_first
            from numbered
            left join {RAW}.current_versions as current
                on current.document_key = numbered.document_key
            where numbered.status in ('clean', 'repaired')
        ),
        -- a first delivery in other bytes than its current version's, parsed alike: its
        -- content is compared (the Python function only on these rows)
        other_bytes as (
            select
                numbered.file_seq,
                current.content_sha256 as current_sha256,
                numbered.document as delivered,
                stored.document as stored
            from numbered
            inner join loadable on loadable.file_seq = numbered.file_seq
            inner join {RAW}.current_versions as current
                on current.document_key = numbered.document_key
            inner join {RAW}.user_documents as stored
                on stored.document_key = current.document_key
                and stored.content_sha256 = current.content_sha256
            where loadable.is_first
                and not current.is_deleted
                and numbered.sha256 <> current.content_sha256
                and stored.parse_status = numbered.status
                and stored.repair <=> numbered.repair
        ),
        same_content as (
            select file_seq, current_sha256 from other_bytes
            where duel_content(delivered) = duel_content(stored)
        ),
        held as (
            select distinct stored.document_key, stored.content_sha256
            from {RAW}.user_documents as stored
            left semi join loadable
                on loadable.document_key = stored.document_key and loadable.ends_as_it_was
        )
        select
            cast({batch_id} as bigint) as batch_id,
            numbered.file_seq,
            numbered.name as source_name,
            case
                when numbered.status not in ('clean', 'repaired') then numbered.status
                when numbered.sha256 = loadable.previous_sha256 then 'unchanged'
                when same_content.file_seq is not null then 'unchanged'
                when loadable.ends_as_it_was and held.document_key is not null then 'unchanged'
                when numbered.status = 'clean' then 'loaded'
                else 'repaired'
            end as status,
            case
                when numbered.status in ('quarantined', 'skipped') then numbered.reason
                when same_content.file_seq is not null then '{SAME_CONTENT}'
            end as reason,
            numbered.document_key,
            case
                when same_content.file_seq is not null then same_content.current_sha256
                else numbered.sha256
            end as content_sha256,
            numbered.size as byte_size,
            numbered.status as parse_status,
            numbered.parse_error,
            numbered.repair,
            numbered.document,
            numbered.detail,
            numbered.content,
            numbered.proposed_repair,
            numbered.continued,
            coalesce(loadable.ends_as_it_was, false) as ends_as_it_was
        from numbered
        left join loadable on loadable.file_seq = numbered.file_seq
        left join same_content on same_content.file_seq = numbered.file_seq
        left join held
            on held.document_key = numbered.document_key
            and held.content_sha256 = numbered.sha256
        """
    )


def _check_rule(spark: SparkSession, rule: str, *, allow: bool) -> None:
    """duel.layout.check_rule on the Spark raw tables: a run keyed by another rule than the
    current documents were is refused, unless `allow`."""
    if allow:
        return
    row = spark.sql(
        f"""
        select batch_id, document_key_rule from {RAW}.batches
        where status = 'succeeded' and document_key_rule is not null
            and exists (select 1 from {RAW}.current_versions where not is_deleted)
        order by batch_id desc
        limit 1
        """
    ).first()
    if row is not None:
        layout.refuse_rule_change(int(row[0]), str(row[1]), rule)


def _check_collisions(spark: SparkSession) -> None:
    """duel.layout.check_collisions on this batch's ledger (`duel_ledger`)."""
    row = spark.sql(layout.COLLISIONS_SQL.format(ledger="duel_ledger")).first()
    if row is not None:
        layout.refuse_collision(row["first"], row["second"], row["path"])


def _check_layout(spark: SparkSession, *, allow: bool) -> int:
    """duel.layout's judgement of this batch (`duel_ledger`): its new file documents (a file key
    with no current version), the layout.SAMPLE of them with the smallest md5 (as
    layout.NewDocuments samples) checked for being a current
    document's path with folders added or taken away at the front, that document not delivered
    by the dump; returns how many are such moves (layout.refuse_moves refuses)."""
    total = _sample_new(spark, layout.FILE_PREFIX, "duel_new_keys")
    if total == 0:
        return 0
    moves = layout.MOVES_SQL.format(
        keys="duel_new_keys", current=f"{RAW}.current_versions", delivered=_DELIVERED
    )
    moved, example, checked = _moves(spark, moves, "duel_new_keys")
    layout.refuse_moves(moved, example, checked, total, allow=allow)
    return moved


def _moves(spark: SparkSession, moves: str, sample: str) -> tuple[int, list[str] | None, int]:
    """Of the (new_key, current_key) pairs `moves` finds for the keys of the view `sample`: how
    many new keys are moves, the least pair, and how many keys were checked."""
    (row,) = spark.sql(
        f"""
        with moves as ({moves})
        select
            count(distinct new_key) as moved,
            min(array(new_key, current_key)) as example,
            (select count(*) from {sample}) as checked
        from moves
        """
    ).collect()
    example = list(row["example"]) if row["example"] is not None else None
    return int(row["moved"]), example, int(row["checked"])


# what "delivered by the dump" is, in duel.layout's SQL: this batch's ledger
_DELIVERED = (
    "select 1 from duel_ledger as delivered where delivered.document_key = current.document_key"
)


def _sample_new(spark: SparkSession, prefix: str, view: str) -> int:
    """The new documents of this batch (`duel_ledger`) whose key begins with `prefix` (`file:`,
    or a field name KeyRule.parse checked and `:`, quoted as is; a key with no current version):
    how many; the layout.SAMPLE of them with the smallest md5 (as layout.NewDocuments samples)
    made the view `view` of (key, document: its first delivery's)."""
    new = spark.sql(
        f"""
        select ledger.document_key as key, min_by(ledger.document, ledger.file_seq) as document
        from duel_ledger as ledger
        left anti join {RAW}.current_versions as current
            on current.document_key = ledger.document_key
        where ledger.status in ('loaded', 'repaired')
            and startswith(ledger.document_key, '{prefix}')
        group by ledger.document_key
        """
    ).localCheckpoint()
    total = new.count()
    if total:
        new.selectExpr("key", "document", "md5(key) as sample_order").orderBy("sample_order").limit(
            layout.SAMPLE
        ).createOrReplaceTempView(view)
    return total


def _check_form(spark: SparkSession, rule: KeyRule, *, allow: bool) -> int:
    """duel.layout.check_form's judgement of this batch (`duel_ledger`), before the first
    write: its new documents of one form (files, or keyed by the rule's field) that are current
    documents of the other absent from the dump; returns how many of the samples are."""
    field = layout.form_field(rule)
    if field is None or allow:
        return 0
    moved = 0
    for prefix, other, into_lines in (
        (f"{field}:", layout.FILE_PREFIX, True),
        (layout.FILE_PREFIX, f"{field}:", False),
    ):
        held = spark.sql(
            f"select 1 from {RAW}.current_versions"
            f" where startswith(document_key, '{other}') and not is_deleted limit 1"
        ).first()
        if held is None:
            continue
        total = _sample_new(spark, prefix, "duel_form_keys")
        if total == 0:
            continue
        if into_lines:
            documents = f"""(
                select current.document_key, current.is_deleted, version.document
                from {RAW}.current_versions as current
                inner join {RAW}.user_documents as version
                    on version.document_key = current.document_key
                    and version.content_sha256 = current.content_sha256
                where startswith(current.document_key, '{layout.FILE_PREFIX}')
            )"""
            sql = layout.form_sql(
                layout.FORM_TO_LINES_SQL,
                field,
                _json_value,
                documents=documents,
                among_values=f"in (select substr(key, {len(field) + 2}) from duel_form_keys)",
            )
        else:
            sql = layout.form_sql(
                layout.FORM_TO_FILES_SQL,
                field,
                _json_value,
                keys="duel_form_keys",
                current=f"{RAW}.current_versions",
            )
        absent = (  # the candidates whose current document the dump delivers are not moves
            f"select pairs.* from ({sql}) as pairs left anti join duel_ledger as delivered"
            " on delivered.document_key = pairs.current_key"
        )
        count, example, checked = _moves(spark, absent, "duel_form_keys")
        layout.refuse_form_change(
            count, example, checked, total, field, into_lines=into_lines, allow=allow
        )
        moved += count
    return moved


def _json_value(document: str, field: str) -> str:
    """Spark SQL's text of the top-level `field` of the JSON text `document`."""
    return f"get_json_object({document}, '$.{field}')"


def _new_documents(spark: SparkSession, batch_id: int) -> DataFrame:
    """One row per new (key, hash) version, from its first delivery; none already stored."""
    return spark.sql(
        f"""
        with delivered as (
            select *, row_number() over (
                partition by document_key, content_sha256 order by file_seq
            ) as delivery
            from duel_ledger
            where status in ('loaded', 'repaired')
        )
        select
            delivered.document_key,
            delivered.content_sha256,
            delivered.source_name,
            cast({batch_id} as bigint) as batch_id,
            current_timestamp() as loaded_at,
            delivered.parse_status,
            delivered.parse_error,
            delivered.repair,
            cast(delivered.byte_size as int) as byte_size,
            delivered.document
        from delivered
        left anti join {RAW}.user_documents as stored
            on stored.document_key = delivered.document_key
            and stored.content_sha256 = delivered.content_sha256
        where delivered.delivery = 1
        """
    )


def _new_quarantine(spark: SparkSession, batch_id: int) -> DataFrame:
    """One row per quarantined (name, hash) not stored before (`on conflict do nothing`)."""
    return spark.sql(
        f"""
        with delivered as (
            select *, row_number() over (
                partition by source_name, content_sha256 order by file_seq
            ) as delivery
            from duel_ledger
            where status = 'quarantined'
        )
        select
            delivered.source_name,
            delivered.document_key,
            coalesce(delivered.content_sha256, '') as content_sha256,
            cast({batch_id} as bigint) as batch_id,
            current_timestamp() as quarantined_at,
            delivered.reason,
            delivered.detail,
            delivered.parse_error,
            delivered.byte_size,
            delivered.content,
            delivered.proposed_repair
        from delivered
        left anti join {RAW}.quarantine as stored
            on stored.source_name = delivered.source_name
            and stored.content_sha256 = coalesce(delivered.content_sha256, '')
        where delivered.delivery = 1
        """
    )


def _replace_current_versions(spark: SparkSession, batch_id: int) -> None:
    """Each key's last new delivery becomes current; other keys keep theirs, and so does a key
    that ends as it was (_ledger's `ends_as_it_was`; a full rewrite: parquet has no MERGE; Delta
    or Iceberg would merge)."""
    merged = spark.sql(
        f"""
        with as_it_was as (
            select distinct document_key from duel_ledger where ends_as_it_was
        ),
        moved as (
            select document_key, content_sha256, source_name, row_number() over (
                partition by document_key order by file_seq desc
            ) as latest
            from duel_ledger
            left anti join as_it_was on as_it_was.document_key = duel_ledger.document_key
            where status in ('loaded', 'repaired')
        )
        select document_key, content_sha256, source_name, batch_id, is_deleted, updated_at
        from {RAW}.current_versions as current
        where not exists (
            select 1 from moved where moved.document_key = current.document_key
        )
        union all
        select
            document_key, content_sha256, source_name, cast({batch_id} as bigint),
            false, current_timestamp()
        from moved
        where latest = 1
        """
    ).localCheckpoint()  # the table is read above and overwritten below
    merged.write.mode("overwrite").format("parquet").saveAsTable(f"{RAW}.current_versions")


def _counts(spark: SparkSession) -> dict[str, int]:
    row = spark.sql(
        f"""
        select
            count_if(not continued) as files_read,
            count(*) as files_seen,
            count_if(status in ('loaded', 'repaired')) as loaded,
            count_if(status = 'repaired') as repaired,
            count_if(status = 'quarantined') as quarantined,
            count_if(status = 'skipped') as skipped,
            count_if(status = 'unchanged') as unchanged,
            count_if(
                status in ('loaded', 'repaired') and startswith(document_key, '{CONTENT_PREFIX}')
            ) as keyless
        from duel_ledger
        """
    ).first()
    return {name: int(row[name]) if row else 0 for name in COUNTS}


def _reasons(spark: SparkSession, status: str) -> dict[str, int]:
    rows = spark.sql(
        "select reason, count(*) as files from duel_ledger where status = :status group by reason",
        args={"status": status},
    ).collect()
    return {row["reason"]: int(row["files"]) for row in rows if row["reason"]}


def _batch_row(
    spark: SparkSession,
    batch_id: int,
    source: str,
    started: dt.datetime,
    counts: dict[str, int],
    rule: KeyRule,
    same_content: int = 0,
) -> DataFrame:
    finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = {
        "batch_id": batch_id,
        "source_uri": source,
        "shard": None,
        "status": "succeeded",
        "started_at": started,
        "finished_at": finished,
        **counts,
        "same_content": same_content,  # of the unchanged, those in other bytes
        "deleted": 0,
        "deletes_withheld": None,  # not a complete dump (--full is not done on Spark)
        "is_full": False,
        "document_key_rule": rule.text,
        "error": None,
        "duel_version": __version__,
    }
    names = [column.split()[0] for column in TABLES["batches"].split(", ")]
    return spark.createDataFrame([tuple(row[name] for name in names)], TABLES["batches"])


def _append(spark: SparkSession, table: str, frame: DataFrame) -> None:
    columns = [column.split()[0] for column in TABLES[table].split(", ")]
    frame.select(*columns).write.mode("append").format("parquet").insertInto(f"{RAW}.{table}")
