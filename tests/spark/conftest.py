"""One local Spark session for the whole Spark test set: a JVM start costs tens of seconds on two
cores, so the Spark ingest, the dbt-spark build of the macro project and the cross-engine build of
the duel project share it (dbt-spark's session method takes the running session). One small dump
for the ingest and the cross-engine tests."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
from tar_files import make_tar

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


REAL_FILES = 200
EXTRA = {
    "mixed/empty.json": b"",
    "mixed/list.json": b"[1, 2]",
    "mixed/pair.json": b'[{"user_id": "a", "name": "A"}, {"user_id": "b", "name": "B"}]',
    "mixed/wrapped.json": b'{"users": [{"user_id": "c", "name": "C"}, {"user_id": "d"}]}',
    "mixed/latin1.json": '{"name": "Zoë"}'.encode("latin-1"),
    "mixed/._user_1.json": b"\x00\x05\x16\x07",
    "mixed/notes.txt": b"not data",
}


@pytest.fixture(scope="session")
def dump(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tar.gz, built in a temp dir, never committed: 200 files of the real dataset (the
    malformed ones among its first files included) and one file of each other kind (empty, not an
    object, a JSON array of two users, two users an object wraps, not UTF-8, a macOS metadata
    file, a user file delivered twice)."""
    chosen: list[tuple[str, bytes]] = []
    malformed = 0
    with tarfile.open(real_data) as archive:
        for member in archive:
            if not member.isfile():
                continue
            data = archive.extractfile(member).read()  # type: ignore[union-attr]
            try:
                orjson.loads(data)
                if len(chosen) - malformed >= REAL_FILES - 20:
                    continue
            except orjson.JSONDecodeError:
                malformed += 1
            chosen.append((member.name, data))
            if len(chosen) >= REAL_FILES and malformed >= 20:
                break
    chosen = chosen[:REAL_FILES]
    chosen += list(EXTRA.items())
    # a user file delivered twice: its name repeated, same key and bytes (a copy under another
    # top folder is refused now: identity would make two files of two folders one document)
    chosen.append(chosen[0])
    return make_tar(tmp_path_factory.mktemp("spark-dump") / "dump.tar.gz", chosen)
