"""The duel dbt project built on Postgres and on Spark from the same dump gives the same tables.

The dump is conftest's (200 real files, repaired and quarantined ones among them, and one file of
each other kind). Spark: `duel ingest --engine spark`'s job (spark_ingest) into the test session's
warehouse (done already when tests/spark/test_spark_ingest.py ran first, as it does in `make
test-spark`, this file's name sorting after it: it ingests the dump twice there and needs an
empty warehouse to start), then `dbt build --target spark` of dbt/duel itself (models, data
tests, unit tests) in this process, on that session. Postgres: duel's ingest as many times as
Spark's raw holds batches (every run after the first changes nothing but the ledger), then `dbt
build`. Compared:
every row of the core tables (`dbt.base`, `dbt.advocacy_programs`, `dbt.tasks_completed`), the
lookup (`dbt_lookup.brand`) and every analysis table (`dbt_analysis.*`), ordered, value for value.

The only normalisations, each where the engines represent one value differently or where a value
is the clock's and not the data's:
- a uuid is compared as its text (Spark keeps uuids as strings);
- a timestamp is compared as UTC ISO-8601 text (psycopg gives an aware datetime, Spark a naive
  one in the session's time zone, which is UTC);
- a decimal is compared as its value, not its scale (`numeric` has no fixed scale on Postgres,
  decimal(38, 18) on Spark: 1.5 and 1.500000000000000000 are equal);
- the ingest's clock: each time an ingest wrote (a batch's start and finish, its rows' load and
  quarantine times) is replaced by the batch it belongs to (`batch 1's clock`, read from each
  engine's own raw tables: Postgres stamps one transaction time, Spark the job's and its
  queries' times), and ingest_batches' `seconds` (how long the batch took) by whether it is
  known; every other time (`joined_at`) is data and compared exactly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from duel import db
from duel.load import ingest
from duel.settings import Settings
from duel.spark_ingest import spark_ingest
from duel.transform import build_models

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[2]  # the checkout
PROJECT = REPO / "dbt" / "duel"
CORE = ("dbt.base", "dbt.advocacy_programs", "dbt.tasks_completed", "dbt_lookup.brand")
# every analysis model of the project (each is a table in dbt_analysis)
ANALYSIS = sorted(path.stem for path in (PROJECT / "models" / "analysis").glob("*.sql"))
TABLES = (*CORE, *(f"dbt_analysis.{name}" for name in ANALYSIS))
# The ingest's clock, per engine: (table, batch column, time column) of raw.
CLOCK = (
    ("batches", "batch_id", "started_at"),
    ("batches", "batch_id", "finished_at"),
    ("user_documents", "batch_id", "loaded_at"),
    ("current_versions", "batch_id", "updated_at"),
    ("quarantine", "batch_id", "quarantined_at"),
)
Table = tuple[list[str], list[tuple[Any, ...]]]  # (columns, rows)

pytestmark = pytest.mark.slow


def _clock_sql() -> str:
    return " union ".join(
        f"select distinct {batch}, {time} from raw.{table}" for table, batch, time in CLOCK
    )


@pytest.fixture(scope="module")
def spark_tables(
    spark_settings: Settings,
    spark: SparkSession,
    dump: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[int, dict[str, Table]]:
    """The dump ingested by the Spark job, the project built by dbt-spark; the number of batches
    raw holds, and every compared table, normalised."""
    from dbt.cli.main import dbtRunner

    if not spark.catalog.tableExists("raw.batches"):  # test_spark_ingest's runs, if they ran
        spark_ingest(spark_settings, dump, spark=spark)
    batches = spark.sql("select count(*) from raw.batches").collect()[0][0]
    dbt_dir = tmp_path_factory.mktemp("dbt-spark-duel")
    result = dbtRunner().invoke(
        [
            "build",
            "--target",
            "spark",
            "--project-dir",
            str(PROJECT),
            "--profiles-dir",
            str(PROJECT),
            "--target-path",
            str(dbt_dir / "target"),
            "--log-path",
            str(dbt_dir / "logs"),
        ]
    )
    assert result.success, result.exception
    clock = {row[1]: f"batch {row[0]}'s clock" for row in spark.sql(_clock_sql()).collect()}
    tables = {}
    for name in TABLES:
        frame = spark.table(name)
        rows = [tuple(row) for row in frame.collect()]
        tables[name] = _normalised(name, frame.columns, rows, clock)
    return batches, tables


@pytest.fixture(scope="module")
def postgres_tables(
    pg_server: Settings, dump: Path, spark_tables: tuple[int, dict[str, Table]]
) -> dict[str, Table]:
    """The dump ingested by duel's loader as often as Spark's raw holds batches, then built."""
    batches, _ = spark_tables
    settings = pg_server.with_overrides(pg_database="duel_cross_engine")
    db.ensure_ready(settings)
    for _ in range(batches):
        ingest(settings, dump)
    build_models(settings)
    tables = {}
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        clock = {row[1]: f"batch {row[0]}'s clock" for row in conn.execute(_clock_sql())}
        for name in TABLES:
            cursor = conn.execute(f"select * from {name}")
            columns = [column.name for column in cursor.description or ()]
            tables[name] = _normalised(name, columns, cursor.fetchall(), clock)
    return tables


def _normalised(
    table: str, columns: list[str], rows: list[tuple[Any, ...]], clock: dict[Any, str]
) -> Table:
    """Rows as the module docstring says, ordered by every column (NULLs last)."""
    times = {_value(time): name for time, name in clock.items()}
    out = []
    for row in rows:
        values = []
        for column, value in zip(columns, row, strict=True):
            if table == "dbt_analysis.ingest_batches" and column == "seconds":
                values.append(value is not None)
                continue
            plain = _value(value)
            values.append(times.get(plain, plain) if isinstance(value, dt.datetime) else plain)
        out.append(tuple(values))
    return columns, sorted(out, key=lambda r: tuple((v is None, str(v)) for v in r))


def _value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat()
    if isinstance(value, Decimal):
        return value.normalize() if value else Decimal(0)
    return value


@pytest.mark.parametrize("table", TABLES)
def test_cross_engine_tables_are_equal(
    table: str,
    spark_tables: tuple[int, dict[str, Table]],
    postgres_tables: dict[str, Table],
) -> None:
    _, spark_built = spark_tables
    assert spark_built[table] == postgres_tables[table]


def test_cross_engine_tables_hold_the_dump(postgres_tables: dict[str, Table]) -> None:
    """The compared tables are not trivially equal: the dump's users, programs and tasks."""
    counts = {name: len(postgres_tables[name][1]) for name in CORE}
    assert counts == {
        "dbt.base": 202,  # 200 real users and the two of the JSON array
        "dbt.advocacy_programs": 200,
        "dbt.tasks_completed": 200,
        "dbt_lookup.brand": 104,  # 103 brands and the unknown one
    }
