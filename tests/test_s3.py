"""duel.objectstore + duel.listing: dumps read from S3-compatible storage, against a real local
endpoint (moto's S3 server on 127.0.0.1, started here), into a real Postgres.

The same guarantees as local files: the same document keys and hashes as the same dump in a
directory or an archive, the ledger, quarantine with bytes, --full deletes; and incremental: a
second run over an unchanged prefix GETs no object and stores nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import logging
import os
import re
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import free_port, query, run_cli
from moto.server import ThreadedMotoServer

from duel import db
from duel.exceptions import ObjectStoreError
from duel.generate import write_dataset
from duel.listing import expand
from duel.load import IngestResult, ingest
from duel.objectstore import S3Location, parse_location
from duel.settings import Settings

USERS = 12
_buckets = itertools.count()
_GET_OBJECT = re.compile(r'"GET /([^/?\s]+)/([^?\s]+) HTTP')


class _Requests(logging.Handler):
    """The S3 server's request log (werkzeug's), kept: each GET of an object is a body read."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def object_gets(self, bucket: str) -> list[str]:
        return [
            match.group(2)
            for line in self.lines
            if (match := _GET_OBJECT.search(line)) and match.group(1) == bucket
        ]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[tuple[str, _Requests]]:
    """moto's S3 server on a free loopback port, for the session, with its request log."""
    requests = _Requests()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.INFO)
    werkzeug.addHandler(requests)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}", requests
    server.stop()
    werkzeug.removeHandler(requests)


AWS = {"AWS_ACCESS_KEY_ID": "duel-test", "AWS_SECRET_ACCESS_KEY": "duel-test-secret"}


def aws_env(endpoint: str) -> dict[str, str]:
    # no instance-metadata lookups (a network address that is not ours), one attempt per call
    return {
        **AWS,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def s3(s3_endpoint: tuple[str, _Requests], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 client on the test endpoint (boto3 never looks past what we give it)."""
    endpoint, _requests = s3_endpoint
    for name, value in aws_env(endpoint).items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"dumps-{os.getpid()}-{next(_buckets)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_settings(settings: Settings, s3_endpoint: tuple[str, _Requests]) -> Settings:
    aws = {k: v for k, v in aws_env(s3_endpoint[0]).items() if k.startswith("AWS_")}
    return settings.with_overrides(aws=aws)


@pytest.fixture(scope="session")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated dump as a directory: demo/demo_user_<N>.json."""
    target = tmp_path_factory.mktemp("s3dump")
    write_dataset(target, users=USERS, seed=11)
    return target


def upload_directory(s3: Any, bucket: str, directory: Path, prefix: str) -> list[str]:
    keys = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(directory).as_posix()
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def loaded_prefix(s3: Any, bucket: str, settings: Settings, dump: Path) -> S3Location:
    """The dump uploaded below s3://bucket/daily/ and ingested once."""
    upload_directory(s3, bucket, dump, "daily/")
    location = parse_location(f"s3://{bucket}/daily/")
    ingest(settings, location)
    return location


def other_database(pg_server: Settings, name: str) -> Settings:
    fresh = pg_server.with_overrides(pg_database=f"duel_s3_{os.getpid()}_{name}")
    db.reset_database(fresh)
    return fresh


def current(settings: Settings) -> list[tuple[object, ...]]:
    return query(
        settings,
        "select document_key, content_sha256, source_name from raw.current_versions order by 1",
    )


def counts(result: IngestResult) -> dict[str, int]:
    return result.summary() | {"batch_id": 0}


def test_s3_prefix_loads_what_the_local_directory_loads(
    s3: Any, bucket: str, s3_settings: Settings, pg_server: Settings, dump: Path
) -> None:
    upload_directory(s3, bucket, dump, "daily/")
    result = ingest(s3_settings, parse_location(f"s3://{bucket}/daily/"))
    local = other_database(pg_server, "local_dir")
    local_result = ingest(local, dump)
    assert counts(result) == {
        **counts(local_result),
        "objects_listed": USERS,
        "objects_read": USERS,
    }
    assert (result.files_seen, result.loaded, result.quarantined) == (USERS, USERS, 0)
    assert current(s3_settings) == current(local)
    assert current(s3_settings)[0][:1] == ("file:demo_user_0.json",)
    assert query(s3_settings, "select source_uri from raw.batches") == [(f"s3://{bucket}/daily/",)]


def test_s3_prefix_of_every_kind_loads_what_the_local_directory_loads(
    s3: Any,
    bucket: str,
    s3_settings: Settings,
    s3_endpoint: tuple[str, _Requests],
    pg_server: Settings,
    dump: Path,
    tmp_path: Path,
) -> None:
    """JSON, compressed JSON, NDJSON and archives side by side (a local directory skipped all
    but the JSON as `not-json`): the prefix and the directory give the same current versions,
    under the same names and keys, and the same ledger."""
    mixed = tmp_path / "mixed"
    (mixed / "demo").mkdir(parents=True)
    users = sorted((dump / "demo").iterdir())
    for path in users[:3]:
        (mixed / "demo" / path.name).write_bytes(path.read_bytes())
    for path in users[3:5]:
        (mixed / "demo" / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
    lines = [json.dumps(json.loads(path.read_bytes())) for path in users[5:8]]
    (mixed / "demo" / "more.ndjson").write_text("\n".join(lines) + "\n")
    late = tmp_path / "late"
    late.mkdir()
    for path in users[8:]:
        (late / path.name).write_bytes(path.read_bytes())
    (mixed / "late.tar.gz").write_bytes(tar_gz(late, "demo"))
    (mixed / "demo" / "._late.tar.gz").write_bytes(b"\x00\x05\x16\x07")
    upload_directory(s3, bucket, mixed, "daily/")
    result = ingest(s3_settings, parse_location(f"s3://{bucket}/daily/"))
    local = other_database(pg_server, "local_kinds")
    local_result = ingest(local, mixed)
    assert counts(result) == {**counts(local_result), "objects_listed": 8, "objects_read": 8}
    # the macOS metadata beside the archive is skipped by its name, never fetched
    assert sorted(s3_endpoint[1].object_gets(bucket)) == sorted(
        f"daily/{path.relative_to(mixed).as_posix()}"
        for path in mixed.rglob("*")
        if path.is_file() and not path.name.startswith("._")
    )
    assert (result.files_seen, result.loaded, result.skipped) == (USERS + 1, USERS, 1)
    assert current(s3_settings) == current(local)
    ledger = "select source_name, status, reason from raw.batch_files order by 1, 2"
    assert query(s3_settings, ledger) == query(local, ledger)
    assert query(local, ledger) == [
        ("demo/._late.tar.gz", "skipped", "macos-metadata"),
        *[(f"demo/{path.name}", "loaded", None) for path in users[:3]],
        *[(f"demo/{path.name}.gz", "loaded", None) for path in users[3:5]],
        *[(f"demo/more.ndjson:{line}", "loaded", None) for line in (1, 2, 3)],
        *[(f"late.tar.gz/demo/{path.name}", "loaded", None) for path in users[8:]],
    ]


def test_s3_second_run_reads_no_object_and_stores_nothing(
    s3: Any, bucket: str, s3_settings: Settings, s3_endpoint: tuple[str, _Requests], dump: Path
) -> None:
    upload_directory(s3, bucket, dump, "daily/")
    location = parse_location(f"s3://{bucket}/daily")  # no slash: the prefix all the same
    ingest(s3_settings, location)
    requests = s3_endpoint[1]
    before = len(requests.object_gets(bucket))
    assert before == USERS
    second = ingest(s3_settings, location)
    assert requests.object_gets(bucket)[before:] == []
    # the documents of the objects it did not read are counted, as unchanged; no file was read
    assert (
        second.files_read,
        second.files_seen,
        second.loaded,
        second.unchanged,
        second.objects_read,
    ) == (0, USERS, 0, USERS, 0)
    assert query(
        s3_settings,
        "select status, reason, count(*) from raw.batch_files where batch_id = %s group by 1, 2",
        (second.batch_id,),
    ) == [("unchanged", "object-unchanged", USERS)]
    assert query(s3_settings, "select count(*) from raw.user_documents") == [(USERS,)]
    third = ingest(s3_settings, location)  # carried rows are carried again
    assert (third.unchanged, third.objects_read) == (USERS, 0)


def test_s3_one_changed_object_is_exactly_one_new_version(
    s3: Any, bucket: str, s3_settings: Settings, s3_endpoint: tuple[str, _Requests], dump: Path
) -> None:
    location = loaded_prefix(s3, bucket, s3_settings, dump)
    s3.put_object(Bucket=bucket, Key="daily/demo/demo_user_3.json", Body=b'{"name": "changed"}')
    requests = s3_endpoint[1]
    before = len(requests.object_gets(bucket))
    second = ingest(s3_settings, location)
    assert requests.object_gets(bucket)[before:] == ["daily/demo/demo_user_3.json"]
    assert (second.loaded, second.unchanged, second.objects_read) == (1, USERS - 1, 1)
    assert query(
        s3_settings,
        "select document_key, count(*) from raw.user_documents group by 1 having count(*) > 1",
    ) == [("file:demo_user_3.json", 2)]


def test_s3_new_object_listed_before_an_unchanged_one_with_its_key_leaves_the_later_current(
    s3: Any,
    bucket: str,
    s3_settings: Settings,
    pg_server: Settings,
    s3_endpoint: tuple[str, _Requests],
    tmp_path: Path,
) -> None:
    """Two objects deliver one document key (file:jürgen.json: one name written composed, the
    other decomposed, which sorts first): the composed one is loaded first, then the other
    appears, listed before it. Read in listing order, as the local directory is, the composed
    one's document stays current; so the batch reads both objects (a third GET), not the new
    one alone, and its counts are the local directory's."""
    later, earlier = b'{"user_id": "u1", "name": "Later"}', b'{"user_id": "u1", "name": "Early"}'
    composed, decomposed = "j\u00fcrgen.json", "ju\u0308rgen.json"
    s3.put_object(Bucket=bucket, Key=f"in/{composed}", Body=later)
    location = parse_location(f"s3://{bucket}/in/")
    ingest(s3_settings, location)
    s3.put_object(Bucket=bucket, Key=f"in/{decomposed}", Body=earlier)
    requests = s3_endpoint[1]
    before = len(requests.object_gets(bucket))
    second = ingest(s3_settings, location)
    assert requests.object_gets(bucket)[before:] == [
        f"in/{decomposed}",
        f"in/{decomposed}",
        f"in/{composed}",
    ]

    local = other_database(pg_server, "shadowed")
    (tmp_path / composed).write_bytes(later)
    ingest(local, tmp_path)
    (tmp_path / decomposed).write_bytes(earlier)
    local_second = ingest(local, tmp_path)
    assert (
        current(s3_settings)
        == current(local)
        == [(f"file:{composed}", hashlib.sha256(later).hexdigest(), composed)]
    )
    assert counts(second) == {**counts(local_second), "objects_listed": 2, "objects_read": 2}
    # Again: the decomposed one's document is not current, so it is read (as a local read
    # reads it), and the composed one after it: the document ends where it was, so both
    # deliveries are unchanged, as the local directory's are (load._Batch.restore_repeated).
    third, local_third = ingest(s3_settings, location), ingest(local, tmp_path)
    assert counts(third) == {**counts(local_third), "objects_listed": 2, "objects_read": 2}
    assert (third.loaded, third.unchanged) == (0, 2)
    assert current(s3_settings) == current(local)


def test_s3_object_uploaded_again_in_parts_is_read_and_verified_by_its_hash(
    s3: Any, bucket: str, s3_settings: Settings, dump: Path
) -> None:
    location = loaded_prefix(s3, bucket, s3_settings, dump)
    key = "daily/demo/demo_user_2.json"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    before = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] != before  # same bytes, new ETag
    second = ingest(s3_settings, location)
    assert (second.objects_read, second.loaded, second.unchanged) == (1, 0, USERS)
    assert query(s3_settings, "select count(*) from raw.user_documents") == [(USERS,)]


def test_s3_deleted_object_with_full_is_one_tombstone(
    s3: Any, bucket: str, s3_settings: Settings, dump: Path
) -> None:
    location = loaded_prefix(s3, bucket, s3_settings, dump)
    s3.delete_object(Bucket=bucket, Key="daily/demo/demo_user_5.json")
    second = ingest(s3_settings, location, full=True)
    assert (second.files_seen, second.deleted, second.objects_read, second.loaded) == (
        USERS - 1,
        1,
        0,
        0,
    )
    assert query(
        s3_settings,
        "select document_key, parse_status from raw.user_documents where document is null",
    ) == [("file:demo_user_5.json", "deleted")]
    assert query(s3_settings, "select count(*) from raw.object_listing") == [(USERS - 1,)]


def test_s3_malformed_object_is_quarantined_with_its_bytes_and_read_again(
    s3: Any, bucket: str, s3_settings: Settings
) -> None:
    good, bad = b'{"user_id": "u1", "name": "A"}', b'["not", "a user"'
    s3.put_object(Bucket=bucket, Key="in/good.json", Body=good)
    s3.put_object(Bucket=bucket, Key="in/bad.json", Body=bad)
    s3.put_object(Bucket=bucket, Key="in/notes.txt", Body=b"hello")
    location = parse_location(f"s3://{bucket}/in/")
    first = ingest(s3_settings, location)
    assert (first.loaded, first.quarantined, first.skipped) == (1, 1, 1)
    assert query(s3_settings, "select source_name, content from raw.quarantine") == [
        ("bad.json", bad)
    ]
    second = ingest(s3_settings, location)  # quarantine depends on settings: read again
    assert (second.objects_read, second.quarantined, second.unchanged, second.skipped) == (
        1,
        1,
        1,
        1,
    )


def tar_gz(directory: Path, top: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.rglob("*.json")):
            archive.add(path, f"{top}/{path.name}")
    return buffer.getvalue()


def test_s3_single_archive_object_keys_match_the_local_archive(
    s3: Any, bucket: str, s3_settings: Settings, pg_server: Settings, dump: Path, tmp_path: Path
) -> None:
    packed = tar_gz(dump, "export-2025-07-24")
    s3.put_object(Bucket=bucket, Key="dump.tar.gz", Body=packed)
    result = ingest(s3_settings, parse_location(f"s3://{bucket}/dump.tar.gz"))
    local_file = tmp_path / "dump.tar.gz"
    local_file.write_bytes(packed)
    local = other_database(pg_server, "local_tar")
    ingest(local, local_file)
    assert (result.loaded, result.objects_listed, result.objects_read) == (USERS, 1, 1)
    assert current(s3_settings) == current(local)
    again = ingest(s3_settings, parse_location(f"s3://{bucket}/dump.tar.gz"))
    assert (again.unchanged, again.objects_read) == (USERS, 0)


def test_s3_zip_object_in_a_prefix_is_read_through_ranged_gets(
    s3: Any, bucket: str, s3_settings: Settings, s3_endpoint: tuple[str, _Requests], dump: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(dump.rglob("*.json")):
            archive.write(path, f"mixed/{path.name}")
    s3.put_object(Bucket=bucket, Key="zips/dump.zip", Body=buffer.getvalue())
    result = ingest(s3_settings, parse_location(f"s3://{bucket}/zips/"))
    assert (result.loaded, result.objects_read) == (USERS, 1)
    assert query(
        s3_settings, "select min(source_name), min(document_key) from raw.batch_files"
    ) == [("dump.zip/mixed/demo_user_0.json", "file:demo_user_0.json")]


def test_s3_zips_after_a_program_in_one_object_are_all_read(
    s3: Any, bucket: str, s3_settings: Settings
) -> None:
    """An object holding a program and two zips after it (a self-extracting zip that had more
    appended), read through ranged GETs: both zips' members load, the program is quarantined
    as leading data with its bytes."""
    stub = b'#!/bin/sh\nexec unzip "$0"\n'
    zips = []
    for name in ("user_1.json", "user_2.json"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"mixed/{name}", b'{"user_id": "%s"}' % name.encode())
        zips.append(buffer.getvalue())
    s3.put_object(Bucket=bucket, Key="zips/sfx.zip", Body=stub + b"".join(zips))
    result = ingest(s3_settings, parse_location(f"s3://{bucket}/zips/"))
    assert (result.loaded, result.quarantined, result.objects_read) == (2, 1, 1)
    assert query(s3_settings, "select source_name from raw.current_versions order by 1") == [
        ("sfx.zip/mixed/user_1.json",),
        ("sfx.zip/mixed/user_2.json",),
    ]
    rows = query(s3_settings, "select source_name, reason, byte_size, content from raw.quarantine")
    assert [(*row[:3], bytes(row[3])) for row in rows] == [
        ("sfx.zip (before its zip archive)", "leading-data", len(stub), stub)
    ]


def test_cli_ingest_s3_summary_says_what_was_read(
    s3: Any, bucket: str, settings: Settings, s3_endpoint: tuple[str, _Requests], dump: Path
) -> None:
    upload_directory(s3, bucket, dump, "daily/")
    env = aws_env(s3_endpoint[0])
    first = run_cli(settings, "ingest", f"s3://{bucket}/daily/", **env)
    assert first.returncode == 0, first.stderr
    second = run_cli(settings, "ingest", f"s3://{bucket}/daily/", **env)
    assert second.returncode == 0, second.stderr
    assert (
        f"  objects      {USERS:>9,}  listed, 0 read ({USERS} unchanged by ETag and size: not read)"
        in second.stderr.splitlines()
    )


def _nothing_written(settings: Settings) -> None:
    assert query(settings, "select count(*) from raw.batches") == [(0,)]


def test_cli_ingest_s3_missing_bucket_is_one_line_exit_1(
    settings: Settings, s3_endpoint: tuple[str, _Requests]
) -> None:
    endpoint = s3_endpoint[0]
    result = run_cli(settings, "ingest", "s3://no-such-bucket/daily/", **aws_env(endpoint))
    assert (result.returncode, result.stderr) == (
        1,
        f"error: s3://no-such-bucket/daily/: no bucket no-such-bucket at {endpoint}\n",
    )
    _nothing_written(settings)


def test_cli_ingest_s3_refused_credentials_is_one_line_exit_1(
    settings: Settings, s3_endpoint: tuple[str, _Requests], bucket: str
) -> None:
    endpoint = s3_endpoint[0]
    _moto_auth(endpoint, "0")  # from now on moto checks every request's credentials
    try:
        result = run_cli(settings, "ingest", f"s3://{bucket}/daily/", **aws_env(endpoint))
    finally:
        _moto_auth(endpoint, "inf")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: s3://{bucket}/daily/: {endpoint} refused the credentials (InvalidAccessKeyId: "
    )
    assert result.stderr.endswith("; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n")
    assert result.stderr.count("\n") == 1
    _nothing_written(settings)


def _moto_auth(endpoint: str, count: str) -> None:
    # S310: an http URL we built, to our own loopback server
    url = f"{endpoint}/moto-api/reset-auth"
    request = urllib.request.Request(  # noqa: S310
        url, data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200


def test_cli_ingest_s3_unreachable_endpoint_is_one_line_exit_1(settings: Settings) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_cli(settings, "ingest", "s3://dumps/daily/", **aws_env(closed))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: s3://dumps/daily/: cannot reach the S3 endpoint {closed} ("
    )
    assert result.stderr.count("\n") == 1
    _nothing_written(settings)


def test_s3_unreachable_endpoint_is_transient_and_missing_bucket_is_not(
    settings: Settings, s3_endpoint: tuple[str, _Requests]
) -> None:
    closed = aws_env(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ObjectStoreError) as unreachable:
        ingest(settings.with_overrides(aws=closed), parse_location("s3://dumps/daily/"))
    with pytest.raises(ObjectStoreError) as missing:
        ingest(
            settings.with_overrides(aws=aws_env(s3_endpoint[0])),
            parse_location("s3://no-such-bucket/x/"),
        )
    assert (unreachable.value.transient, missing.value.transient) == (True, False)
    assert missing.value.context["bucket"] == "no-such-bucket"
    _nothing_written(settings)


def test_s3_dag_shards_are_one_batch_checked_against_its_listing(
    s3: Any, bucket: str, s3_settings: Settings, dump: Path
) -> None:
    from duel.shards import ShardSpec, check_shards, delete_absent, ingest_shard, plan_shards

    location = loaded_prefix(s3, bucket, s3_settings, dump)
    s3.delete_object(Bucket=bucket, Key="daily/demo/demo_user_7.json")
    specs = plan_shards(location, 4)
    assert specs == [ShardSpec(0, 1)]
    results = [ingest_shard(s3_settings, location, spec) for spec in specs]
    check = check_shards(s3_settings, location, results)
    assert (check.files, check.shards, check.totals["unchanged"]) == (USERS - 1, 1, USERS - 1)
    assert delete_absent(s3_settings, results).deleted == 1


def test_ledger_ranges_expand_to_one_element_per_file() -> None:
    """duel.listing looks ledger files up one by one (a join on ranges is planned as a scan of
    the whole batch per range): each range becomes its files, in order, with its tag."""
    assert expand([(7, 0, 2, 5), (3, 10, 1, 9), (4, 2, 0, 1), (7, 4, 3, 2)]) == (
        [7, 7, 3, 7, 7, 7],
        [0, 1, 10, 4, 5, 6],
        [5, 5, 9, 2, 2, 2],
    )
