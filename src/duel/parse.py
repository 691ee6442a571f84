"""The parse stage: each input file hashed and parsed into an `Outcome`, in order.

Pure functions of the file's bytes (no database): they run in this process, or in worker
processes when the ingest asks for them, with only a few windows of files in flight at once.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.pool
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.pool import AsyncResult
from typing import NamedTuple

import orjson

from duel.identity import KeyRule, document_key
from duel.repair import Parsed, parse_document
from duel.sources import SourceFile

WINDOW = 2048  # files per unit of work handed to a parse worker


class Outcome(NamedTuple):  # a tuple, not a dataclass: built once per file on the hot path
    """What one input document is, before we know whether the database already has it."""

    name: str  # where it was found: the path in the dump, `file.ndjson:LINE`, `file.json[INDEX]`
    status: str  # clean | repaired | quarantined | skipped
    size: int
    sha256: str | None = None
    parsed: Parsed | None = None
    skip_reason: str | None = None
    content: bytes | None = None  # kept only for quarantined files
    key: str | None = None  # the document's identity (duel.identity); None for skipped files


def classify(source: SourceFile, policy: str, rule: KeyRule) -> Outcome | list[Outcome]:
    """Parse (and if need be repair) one file: one outcome, or one per element when the file
    is a JSON array of user objects. Pure: safe to run in a worker process."""
    if source.skip_reason is not None:
        return Outcome(source.name, "skipped", source.size, skip_reason=source.skip_reason)
    if source.defect is not None:  # neither data nor readable (a corrupt nested archive, ...)
        reason, _, detail = source.defect.partition(": ")
        sha256 = hashlib.sha256(source.data).hexdigest() if source.data is not None else ""
        return Outcome(
            source.name,
            "quarantined",
            source.size,
            sha256,
            Parsed("quarantined", reason=reason, detail=detail or None),
            None,
            source.data,
            _quarantine_key(source, sha256),
        )
    if source.oversize or source.data is None:
        parsed = Parsed(
            "quarantined",
            reason="too-large",
            detail=f"{source.size} bytes is over the size limit (DUEL_MAX_FILE_BYTES)",
        )
        return Outcome(
            source.name,
            "quarantined",
            source.size,
            "",
            parsed,
            None,
            None,
            _quarantine_key(source, ""),
        )
    data = source.data
    sha256 = hashlib.sha256(data).hexdigest()
    parsed = parse_document(data, policy)
    if parsed.status == "quarantined":
        if parsed.reason == "not-an-object" and (elements := _array_elements(data)) is not None:
            return [
                classify(SourceFile(f"{source.name}[{index}]", element, len(element)), policy, rule)
                for index, element in enumerate(elements)
            ]
        return Outcome(
            source.name,
            "quarantined",
            len(data),
            sha256,
            parsed,
            None,
            data,
            _quarantine_key(source, sha256),
        )
    assert parsed.document is not None
    key = document_key(rule, source.key_path, parsed.document, sha256)
    return Outcome(source.name, parsed.status, len(data), sha256, parsed, None, None, key)


def _quarantine_key(source: SourceFile, sha256: str) -> str:
    """A quarantined file keeps its file identity (so a stale current version can be told);
    a document without a file of its own cannot be identified without parsing it."""
    if source.key_path is not None:
        return "file:" + source.key_path
    return (
        "content:" + sha256
        if sha256
        else "content:" + hashlib.sha256(source.name.encode()).hexdigest()
    )


def _array_elements(data: bytes) -> list[bytes] | None:
    """The elements of a JSON array whose every element is an object, as JSON texts; else None."""
    try:
        value = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(e, dict) for e in value):
        return None
    return [orjson.dumps(element) for element in value]


def _classify_window(files: list[SourceFile], policy: str, rule: KeyRule) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for source in files:
        outcome = classify(source, policy, rule)
        if isinstance(outcome, list):
            outcomes.extend(outcome)
        else:
            outcomes.append(outcome)
    return outcomes


def _windows(files: Iterable[SourceFile], size: int) -> Iterator[list[SourceFile]]:
    window: list[SourceFile] = []
    for source in files:
        window.append(source)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def iter_outcomes(
    files: Iterable[SourceFile],
    policy: str,
    rule: KeyRule,
    pool: multiprocessing.pool.Pool | None = None,
    in_flight: int = 4,
) -> Iterator[Outcome]:
    """Classify files in order (the ledger numbers them as it writes them). With a pool, hashing
    and parsing run in its worker processes while this process reads and writes; at most
    `in_flight` windows are out at once, so memory stays flat."""
    if pool is None:  # one file at a time: the first chunk is ready as soon as it is parsed
        for source in files:
            outcome = classify(source, policy, rule)
            if isinstance(outcome, list):
                yield from outcome
            else:
                yield outcome
        return
    windows = _windows(files, WINDOW)
    pending: deque[AsyncResult[list[Outcome]]] = deque()
    for window in windows:
        pending.append(pool.apply_async(_classify_window, (window, policy, rule)))
        while len(pending) > in_flight:
            yield from pending.popleft().get()
    while pending:
        yield from pending.popleft().get()


@contextmanager
def parse_pool(workers: int) -> Iterator[multiprocessing.pool.Pool | None]:
    """`workers` parse processes (forked now, before any thread starts), or None for one."""
    if workers <= 1:
        yield None
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield pool
