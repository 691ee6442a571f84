"""The portable macros (dbt/duel/macros/portable.sql) on Postgres and on a local Spark session.

A small dbt project (tests/spark/macro_project, with the real dbt/duel/macros copied beside it)
runs every macro over the same literal inputs, built by `duel.transform.build_models` on the
default target and by dbt-spark on `--target spark` (profiles.yml's spark output, the session
method, in this process on the test session's Spark). The rows are read back from both; they
must be equal value for value, but for the differences portable.sql documents, which are pinned
here so that a new one fails. On Postgres alone, each `default__` body must render exactly the
SQL the models write today (whitespace aside).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import yaml

from duel import db
from duel.settings import Settings
from duel.transform import build_models

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[2]  # the checkout

PROJECT = Path(__file__).resolve().parent / "macro_project"
MODELS = ("cases", "elements", "aggregates", "relational")
# (model, first key value, column): where the engines differ on purpose (portable.sql's header)
KNOWN_DIFFERENCES = {
    ("cases", 30, "is_valid_numeric"),  # "1e30": numeric on Postgres, beyond decimal(38, 18)
    ("cases", 37, "folded"),  # "E\u0301COLE": Spark has no NFKC to compose the accent
}
Rows = dict[str, tuple[list[str], list[tuple[object, ...]]]]  # model -> (columns, rows)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test project with the real macros and profiles.yml beside its models."""
    target = tmp_path_factory.mktemp("macro_project") / "project"
    shutil.copytree(PROJECT, target)
    shutil.copytree(REPO / "dbt" / "duel" / "macros", target / "macros")
    shutil.copy(REPO / "dbt" / "duel" / "profiles.yml", target / "profiles.yml")
    # the macros read the real project's vars (defect patterns, field rules): the same here
    real = yaml.safe_load((REPO / "dbt" / "duel" / "dbt_project.yml").read_text(encoding="utf-8"))
    own = yaml.safe_load((target / "dbt_project.yml").read_text(encoding="utf-8"))
    (target / "dbt_project.yml").write_text(
        yaml.safe_dump({**own, "vars": real["vars"]}, sort_keys=False), encoding="utf-8"
    )
    return target


@pytest.fixture(scope="module")
def postgres_rows(pg_server: Settings, project: Path) -> Rows:
    settings = pg_server.with_overrides(pg_database="duel_portable", dbt_project_dir=project)
    db.ensure_ready(settings)
    build_models(settings, unit_tests=False)
    rows: Rows = {}
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        for name in (*MODELS, "rendered"):
            cursor = conn.execute(f"select * from dbt.{name}")
            columns = [column.name for column in cursor.description or ()]
            rows[name] = (columns, _ordered(tuple(map(_plain, row)) for row in cursor.fetchall()))
    return rows


@pytest.fixture(scope="module")
def spark_rows(
    spark: SparkSession, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Rows:
    """The project built by dbt-spark (profiles.yml's spark output) in this process, on the test
    session's Spark (the session method takes the running one), read back as Arrow."""
    from dbt.cli.main import dbtRunner

    dbt_dir = tmp_path_factory.mktemp("dbt-spark")
    paths = ["--project-dir", str(project), "--profiles-dir", str(project)]
    paths += ["--target-path", str(dbt_dir / "target"), "--log-path", str(dbt_dir / "logs")]
    result = dbtRunner().invoke(["build", "--target", "spark", *paths])
    assert result.success, result.exception
    rows: Rows = {}
    for name in MODELS:
        table = spark.table(f"dbt.{name}").toArrow()
        ordered = _ordered(tuple(_plain(v) for v in row.values()) for row in table.to_pylist())
        rows[name] = (table.schema.names, ordered)
    return rows


def _ordered(rows: Iterable[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Rows in one order on both engines: by every column, NULLs last."""
    return sorted(rows, key=lambda row: tuple((v is None, str(v)) for v in row))


def _plain(value: object) -> object:
    """A value as both engines can give it: uuids as text, times as naive UTC."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _squeeze(sql: str) -> str:
    text = re.sub(r"\s+", " ", sql).strip()
    return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", text))


def test_portable_macros_render_todays_sql_on_postgres(postgres_rows: Rows) -> None:
    _, rendered = postgres_rows["rendered"]
    differing = [
        (name, today, portable)
        for name, today, portable in rendered
        if _squeeze(str(today)) != _squeeze(str(portable))
    ]
    assert differing == []
    assert len(rendered) == 30


def test_portable_macros_give_the_same_rows_on_spark(postgres_rows: Rows, spark_rows: Rows) -> None:
    differences = set()
    for name in MODELS:
        (columns, pg), (spark_columns, spark) = postgres_rows[name], spark_rows[name]
        assert (spark_columns, len(spark)) == (columns, len(pg)), name
        for pg_row, spark_row in zip(pg, spark, strict=True):
            assert pg_row[0] == spark_row[0], name
            for column, left, right in zip(columns, pg_row, spark_row, strict=True):
                if left != right:
                    differences.add((name, pg_row[0], column, left, right))
    assert {d[:3] for d in differences} == KNOWN_DIFFERENCES, sorted(differences)


def test_portable_macros_cases_are_what_postgres_says(postgres_rows: Rows) -> None:
    """A few rows in full: the engines are held to known values, not only to each other."""
    cases = {row[0]: row for row in postgres_rows["cases"][1]}
    assert cases[1][:8] == (
        1,
        "string",
        "  Hello World \t",
        None,
        "Hello World",
        None,
        "hello world",
        "hello world",
    )
    assert cases[8][1:4] == ("number", None, Decimal("100.000000"))
    # the full-width forms of ASCII fold to ASCII (NFKC on Postgres, one by one on Spark)
    assert [cases[n][7] for n in (38, 43, 44)] == ["ab", "n/a", "'\\\" 12ni~"]
    assert postgres_rows["elements"][1][:4] == [
        (1, 1, 1, "inner", None),
        (1, 1, 1, "outer", None),
        (1, 1, 2, "inner", "large"),
        (1, 1, 2, "outer", None),
    ]
    assert postgres_rows["relational"][1] == [
        ("distinct_on", "a", Decimal("11.00")),
        ("distinct_on", "b", Decimal("22.00")),
        ("group_medians", "even", Decimal("2.50")),
        ("group_medians", "odd", Decimal("2.25")),
        ("group_medians", "one", Decimal("-7.50")),
        ("group_medians", "ties", Decimal("5.00")),
        ("group_medians, aggregate", "even", Decimal("4.00")),
        ("group_medians, aggregate", "odd", Decimal("3.50")),
        ("group_medians, aggregate", "one", Decimal("-7.50")),
        ("group_medians, aggregate", "ties", Decimal("5.00")),
        ("in_computed_list", "a", Decimal("11.00")),
        ("integer_divide", "-7", Decimal("-3.00")),
        ("integer_divide", "6", Decimal("3.00")),
        ("integer_divide", "7", Decimal("3.00")),
        ("lateral_lookup", "a", Decimal("10.00")),
        ("lateral_lookup", "a", Decimal("11.00")),
        ("lateral_lookup", "b", Decimal("20.00")),
        ("lateral_lookup", "b", Decimal("22.00")),
        ("select_computed_once", "ax10", Decimal("42.00")),
        ("select_computed_once", "ax11", Decimal("45.00")),
        ("select_computed_once", "bq21", Decimal("85.00")),
        ("select_computed_once", "by20", Decimal("81.00")),
        ("select_computed_once", "by22", Decimal("89.00")),
        ("truncate_number", "-2.7", Decimal("-2.00")),
        ("truncate_number", "2.7", Decimal("2.00")),
        ("truncate_number", "3", Decimal("3.00")),
    ]
    assert postgres_rows["aggregates"][1] == [
        (1, "b", Decimal("0.666667"), dt.date(2024, 1, 1), Decimal("3600.000")),
        (2, "c", Decimal("0.333333"), dt.date(2024, 3, 1), Decimal("0.000")),
    ]
