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
Then a second delivery (five users changed, one new) is ingested by both engines and the
incremental models are built again (`dbt run` on Spark: their incremental strategy on parquet):
the core tables are compared again.

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
import tarfile
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
import pytest
from tar_files import make_tar

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
POSTGRES_DATABASE = "duel_cross_engine"
# the incremental models (their strategy is what the second delivery exercises) and what they read
INCREMENTAL = ("+base", "+advocacy_programs", "+tasks_completed", "+brand")
CHANGED_USERS = 5

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
    if not spark.catalog.tableExists("raw.batches"):  # test_spark_ingest's runs, if they ran
        spark_ingest(spark_settings, dump, spark=spark)
    batches = spark.sql("select count(*) from raw.batches").collect()[0][0]
    _dbt_on_spark(tmp_path_factory.mktemp("dbt-spark-duel"), "build")
    return batches, _spark_tables(spark, TABLES)


def _dbt_on_spark(dbt_dir: Path, *args: str) -> None:
    """dbt (`args`: a command and its selection) on the spark target, in this process."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            *args,
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


def _spark_tables(spark: SparkSession, names: tuple[str, ...]) -> dict[str, Table]:
    clock = {row[1]: f"batch {row[0]}'s clock" for row in spark.sql(_clock_sql()).collect()}
    tables = {}
    for name in names:
        frame = spark.table(name)
        rows = [tuple(row) for row in frame.collect()]
        tables[name] = _normalised(name, frame.columns, rows, clock)
    return tables


def _postgres_tables(settings: Settings, names: tuple[str, ...]) -> dict[str, Table]:
    tables = {}
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        clock = {row[1]: f"batch {row[0]}'s clock" for row in conn.execute(_clock_sql())}
        for name in names:
            cursor = conn.execute(f"select * from {name}")
            columns = [column.name for column in cursor.description or ()]
            tables[name] = _normalised(name, columns, cursor.fetchall(), clock)
    return tables


@pytest.fixture(scope="module")
def postgres_tables(
    pg_server: Settings, dump: Path, spark_tables: tuple[int, dict[str, Table]]
) -> dict[str, Table]:
    """The dump ingested by duel's loader as often as Spark's raw holds batches, then built."""
    batches, _ = spark_tables
    settings = pg_server.with_overrides(pg_database=POSTGRES_DATABASE)
    db.ensure_ready(settings)
    for _ in range(batches):
        ingest(settings, dump)
    build_models(settings, unit_tests=False)  # compared only; make test runs the unit tests
    return _postgres_tables(settings, TABLES)


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
        "dbt.base": 204,  # 200 real users, the two of the JSON array, the two an object wraps
        "dbt.advocacy_programs": 200,
        "dbt.tasks_completed": 200,
        "dbt_lookup.brand": 104,  # 103 brands and the unknown one
    }


@pytest.fixture(scope="module")
def delivery(dump: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second delivery: five of the dump's users with programs and tasks changed (a new name,
    the first task's likes + 1000), and one new user (the first of them under a new file name
    and user_id)."""
    with tarfile.open(dump) as archive:
        members = [
            (m.name, archive.extractfile(m).read())  # type: ignore[union-attr]
            for m in archive
            if m.isfile()
        ]
    changed: list[tuple[str, bytes]] = []
    for name, data in members:
        try:
            document = orjson.loads(data)
            task = document["advocacy_programs"][0]["tasks_completed"][0]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            continue
        if not isinstance(task, dict) or not isinstance(task.get("likes"), int):
            continue
        document["name"] = f"Changed {len(changed)}"
        task["likes"] += 1000
        changed.append((name, orjson.dumps(document)))
        if len(changed) == CHANGED_USERS:
            break
    new = orjson.loads(changed[0][1])
    new.update(user_id=str(uuid.UUID(int=20261201)), name="New user", email="new.user@example.org")
    files = [*changed, ("mixed/user_new_1.json", orjson.dumps(new))]
    return make_tar(tmp_path_factory.mktemp("spark-delivery") / "delivery.tar.gz", files)


@pytest.fixture(scope="module")
def after_delivery(
    pg_server: Settings,
    spark_settings: Settings,
    spark: SparkSession,
    delivery: Path,
    spark_tables: tuple[int, dict[str, Table]],
    postgres_tables: dict[str, Table],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Table], dict[str, Table]]:
    """The delivery ingested by both engines over the first build, then the incremental models
    built again: on Spark a `dbt run` of them and what they read (replace_documents as a table
    rewrite, brand's delete+insert), on Postgres `dbt build` (delete and insert); the core
    tables of (Spark, Postgres)."""
    spark_ingest(spark_settings, delivery, spark=spark)
    selection = ("--select", *INCREMENTAL)
    _dbt_on_spark(tmp_path_factory.mktemp("dbt-spark-incremental"), "run", *selection)
    settings = pg_server.with_overrides(pg_database=POSTGRES_DATABASE)
    ingest(settings, delivery)
    # the whole project: its aggregate tests compare the analysis tables with the core ones
    build_models(settings, unit_tests=False)
    return _spark_tables(spark, CORE), _postgres_tables(settings, CORE)


@pytest.mark.parametrize("table", CORE)
def test_cross_engine_incremental_build_keeps_the_tables_equal(
    table: str, after_delivery: tuple[dict[str, Table], dict[str, Table]]
) -> None:
    spark_built, postgres_built = after_delivery
    assert spark_built[table] == postgres_built[table]


def test_cross_engine_incremental_build_holds_the_delivery(
    after_delivery: tuple[dict[str, Table], dict[str, Table]],
    postgres_tables: dict[str, Table],
) -> None:
    """The second build changed what the delivery changed: one user more, five renamed."""
    spark_built, _ = after_delivery
    columns, rows = spark_built["dbt.base"]
    names = sorted(
        str(row[columns.index("name")])
        for row in rows
        if str(row[columns.index("name")]).startswith(("Changed ", "New user"))
    )
    assert (len(rows), names) == (
        len(postgres_tables["dbt.base"][1]) + 1,
        [*(f"Changed {n}" for n in range(CHANGED_USERS)), "New user"],
    )
