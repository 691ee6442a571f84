"""One local Spark session for the whole Spark test set: a JVM start costs tens of seconds on two
cores, so the Spark ingest and the dbt-spark build of the macro project share it (dbt-spark's
session method takes the running session)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from duel.settings import Settings
from duel.spark_ingest import spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark_settings(pg_server: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose DUEL_HOME (the Spark warehouse and metastore) is a throwaway directory."""
    return pg_server.with_overrides(home=tmp_path_factory.mktemp("spark-home"))


@pytest.fixture(scope="session")
def spark(spark_settings: Settings) -> Iterator[SparkSession]:
    session = spark_session(spark_settings)
    yield session
    session.stop()
