"""Object storage (S3 and S3-compatible stores): where a dump's objects are, and their bytes.

`s3://bucket/prefix/` is every object below the prefix, each read as a file of a directory is (a
.json) or, for an archive, NDJSON or compressed JSON object, as such a member of an archive
(`duel.sources.iter_object`): its key below the prefix is its name, so the same dump as a local
directory and as a prefix gets the same document keys. `s3://bucket/dump.tar.gz` (a key that
names an object) is that one object, read as the local file would be (`duel.sources.read_object`);
a key that names no object is a prefix (`s3://bucket/exports` is `s3://bucket/exports/`).

Bytes are streamed, never written to disk: an object is one GET read as it is consumed, and a
seek (a zip's directory, then its members) starts a ranged GET there. Every GET names the ETag
the listing saw (If-Match), so an object replaced while it is read fails the batch instead of
mixing two versions.

Configuration is only the standard AWS variables (`Settings.aws`: AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_PROFILE,
AWS_MAX_ATTEMPTS, AWS_RETRY_MODE from the environment or .env), handed to boto3; what is unset,
boto3 looks up as it always does. Every failure is one ObjectStoreError line.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from duel.exceptions import ConfigError, ObjectStoreError
from duel.settings import Settings
from duel.sources import SourceFile, iter_object, read_object

SCHEME = "s3://"
READ_BUFFER = 1 << 20  # bytes read from a GET at a time (a tar streams through this)
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "ExpiredToken",
        "InvalidToken",
        "InvalidClientTokenId",
        "403",
    }
)
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "503"}
)


@dataclass(frozen=True)
class S3Location:
    """`s3://bucket/key`, as given: `key` is "" or ends with "/" for a prefix; otherwise it names
    an object, or a prefix written without its final slash."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def is_location(text: str | Path) -> bool:
    return isinstance(text, str) and text.lower().startswith(SCHEME)


def parse_location(text: str) -> S3Location:
    """`s3://bucket/prefix/` -> S3Location("bucket", "prefix/"); ConfigError if malformed."""
    bucket, _, key = text[len(SCHEME) :].partition("/")
    if not bucket:
        raise ConfigError(
            f"{text}: no bucket; write s3://bucket/prefix/ or s3://bucket/dump.tar.gz"
        )
    return S3Location(bucket, key)


def as_input(text: str) -> Path | S3Location:
    """DATA as given on the command line or in the DAG: an s3:// location, else a local path."""
    return parse_location(text) if is_location(text) else Path(text)


class ObjectInfo(NamedTuple):
    key: str  # the full key in the bucket
    name: str  # its key below the prefix (a prefix), or its base name (a single object)
    etag: str
    size: int


@dataclass(frozen=True)
class Listing:
    """What a location holds: one object (`single`), or the objects below a prefix, by key."""

    location: S3Location
    uri: str  # the source as recorded: s3://bucket/prefix/ (with its slash) or s3://bucket/key
    objects: tuple[ObjectInfo, ...]
    single: bool


def open_client(settings: Settings) -> Any:
    """A boto3 S3 client from the standard AWS variables; ConfigError if boto3 is missing."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise ConfigError(
            "reading s3:// needs boto3: install duel with its s3 extra (pip install 'duel[s3]'; "
            "make install includes it)"
        ) from None
    aws = settings.aws
    retries: dict[str, Any] = {}
    if aws.get("AWS_MAX_ATTEMPTS"):
        try:
            retries["total_max_attempts"] = int(aws["AWS_MAX_ATTEMPTS"])
        except ValueError:
            raise ConfigError(
                f"AWS_MAX_ATTEMPTS must be a whole number, got {aws['AWS_MAX_ATTEMPTS']!r}"
            ) from None
    if aws.get("AWS_RETRY_MODE"):
        retries["mode"] = aws["AWS_RETRY_MODE"]
    try:
        session = boto3.session.Session(
            aws_access_key_id=aws.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=aws.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=aws.get("AWS_SESSION_TOKEN"),
            region_name=aws.get("AWS_REGION") or aws.get("AWS_DEFAULT_REGION"),
            profile_name=aws.get("AWS_PROFILE"),
        )
        return session.client(
            "s3",
            endpoint_url=aws.get("AWS_ENDPOINT_URL"),
            config=Config(connect_timeout=10, read_timeout=60, retries=retries or None),
        )
    except (BotoCoreError, ValueError) as error:  # a profile that is not there, a bad URL...
        raise ConfigError(f"S3 settings (AWS_* variables): {error}") from None


def failure(client: Any, error: Exception, where: str, **context: Any) -> ObjectStoreError:
    """One line for a boto3 error at `where` (s3://bucket/key), terminal or transient."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        ParamValidationError,
        PartialCredentialsError,
    )

    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None) or "AWS"
    context = {"endpoint": endpoint, **context}
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ObjectStoreError(
            f"{where}: no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(environment or .env)",
            **context,
        )
    if isinstance(error, ParamValidationError):  # a bucket name S3 does not allow, ...
        return ObjectStoreError(f"{where}: {_first_line(error)}", **context)
    if isinstance(error, (ConnectionError, HTTPClientError)):
        return ObjectStoreError(
            f"{where}: cannot reach the S3 endpoint {endpoint} ({_first_line(error)}); "
            "check AWS_ENDPOINT_URL",
            transient=True,
            **context,
        )
    if not isinstance(error, ClientError):  # a broken stream, a checksum mismatch...
        return ObjectStoreError(f"{where}: {_first_line(error)}", transient=True, **context)
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = details.get("Message") or code
    if code == "NoSuchBucket":
        bucket = context.get("bucket", "")
        return ObjectStoreError(f"{where}: no bucket {bucket} at {endpoint}", **context)
    if code in ("NoSuchKey", "404"):
        return ObjectStoreError(f"{where}: no such object at {endpoint}", **context)
    if code in _CREDENTIAL_CODES or status == 403:
        return ObjectStoreError(
            f"{where}: {endpoint} refused the credentials ({code}: {message}); check "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            **context,
        )
    if code in ("PreconditionFailed", "412"):
        return ObjectStoreError(
            f"{where}: the object changed while it was read; run again", transient=True, **context
        )
    transient = code in _TRANSIENT_CODES or status >= 500
    return ObjectStoreError(f"{where}: {code}: {message}", transient=transient, **context)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def list_location(client: Any, location: S3Location) -> Listing:
    """The objects at `location` (ObjectStoreError, one line, if it cannot be listed or holds
    none). Folder markers (keys ending in "/") are no objects."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = location.bucket, location.key
    try:
        if key and not key.endswith("/"):
            single = _head(client, bucket, key)
            if single is not None:
                return Listing(location, str(location), (single,), single=True)
            key += "/"
        objects = []
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        for page in pages:
            for entry in page.get("Contents", ()):
                if entry["Key"].endswith("/"):
                    continue
                name = entry["Key"][len(key) :]
                objects.append(ObjectInfo(entry["Key"], name, _etag(entry), int(entry["Size"])))
    except (BotoCoreError, ClientError) as error:
        raise failure(client, error, str(location), bucket=bucket, key=location.key) from None
    uri = f"{SCHEME}{bucket}/{key}"
    if not objects:
        raise ObjectStoreError(
            f"{uri}: no object there (an empty or mistyped prefix)", bucket=bucket, key=key
        )
    return Listing(location, uri, tuple(sorted(objects)), single=False)


def _head(client: Any, bucket: str, key: str) -> ObjectInfo | None:
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
            return None  # no such object: a prefix without its slash (or no bucket: listed next)
        raise
    return ObjectInfo(key, posixpath.basename(key), _etag(head), int(head["ContentLength"]))


def _etag(entry: dict[str, Any]) -> str:
    return str(entry.get("ETag", "")).strip('"')


class ObjectReader(io.RawIOBase):
    """An object's bytes as a seekable raw stream: one GET from the current position, kept while
    reads are sequential; a seek elsewhere drops it and the next read starts a ranged GET there."""

    def __init__(self, client: Any, bucket: str, info: ObjectInfo) -> None:
        super().__init__()
        self.client, self.bucket, self.info = client, bucket, info
        self.position = 0
        self.body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.info.size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self.position:
            self._drop()
            self.position = target
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.info.size:
            return 0
        where = f"{SCHEME}{self.bucket}/{self.info.key}"
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self.body is None:
                extra = {"Range": f"bytes={self.position}-"} if self.position else {}
                response = self.client.get_object(
                    Bucket=self.bucket, Key=self.info.key, IfMatch=f'"{self.info.etag}"', **extra
                )
                self.body = response["Body"]
            data = self.body.read(len(buffer))
        except (BotoCoreError, ClientError) as error:
            raise failure(
                self.client, error, where, bucket=self.bucket, key=self.info.key
            ) from None
        if not data:  # shorter than listed: it changed under us
            raise ObjectStoreError(
                f"{where}: ended at byte {self.position:,} of {self.info.size:,}; run again",
                transient=True,
                bucket=self.bucket,
                key=self.info.key,
            )
        size = len(data)
        buffer[:size] = data
        self.position += size
        return size

    def _drop(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self) -> None:
        self._drop()
        super().close()


def open_object(client: Any, bucket: str, info: ObjectInfo) -> BinaryIO:
    """A buffered, seekable stream of the object's bytes (nothing is fetched until it is read)."""
    reader = ObjectReader(client, bucket, info)
    return cast(BinaryIO, io.BufferedReader(reader, buffer_size=READ_BUFFER))


def iter_objects(
    client: Any, listing: Listing, objects: Sequence[ObjectInfo], max_bytes: int
) -> Iterator[SourceFile]:
    """The files of `objects` (some of the listing's), in order, streamed."""
    bucket = listing.location.bucket
    for info in objects:
        streams: list[BinaryIO] = []

        def opener(info: ObjectInfo = info, streams: list[BinaryIO] = streams) -> BinaryIO:
            streams.append(open_object(client, bucket, info))
            return streams[-1]

        try:
            if listing.single:
                label = f"{SCHEME}{bucket}/{info.key}"
                yield from read_object(opener, info.name, info.size, label, max_bytes)
            else:
                yield from iter_object(opener, info.name, info.size, max_bytes)
        finally:
            for stream in streams:
                stream.close()
