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

from duel.repair import Parsed, parse_document
from duel.sources import SourceFile

WINDOW = 2048  # files per unit of work handed to a parse worker


class Outcome(NamedTuple):  # a tuple, not a dataclass: built once per file on the hot path
    """What one input file is, before we know whether the database already has it."""

    seq: int
    name: str
    status: str  # clean | repaired | quarantined | skipped
    size: int
    sha256: str | None = None
    parsed: Parsed | None = None
    skip_reason: str | None = None
    content: bytes | None = None  # kept only for quarantined files


def classify(seq: int, source: SourceFile, policy: str) -> Outcome:
    """Parse (and if need be repair) one file. Pure: safe to run in a worker process."""
    if source.skip_reason is not None:
        return Outcome(seq, source.name, "skipped", source.size, skip_reason=source.skip_reason)
    if source.defect is not None:  # neither data nor readable (a corrupt nested archive, ...)
        reason, _, detail = source.defect.partition(": ")
        sha256 = hashlib.sha256(source.data).hexdigest() if source.data is not None else ""
        return Outcome(seq, source.name, "quarantined", source.size, sha256,
                       Parsed("quarantined", reason=reason, detail=detail or None), content=source.data)
    if source.oversize or source.data is None:
        parsed = Parsed("quarantined", reason="too-large",
                        detail=f"{source.size} bytes is over the size limit (DUEL_MAX_FILE_BYTES)")
        return Outcome(seq, source.name, "quarantined", source.size, sha256="", parsed=parsed)
    data = source.data
    sha256 = hashlib.sha256(data).hexdigest()
    parsed = parse_document(data, policy)
    content = data if parsed.status == "quarantined" else None
    return Outcome(seq, source.name, parsed.status, len(data), sha256, parsed, content=content)


def _classify_window(start: int, files: list[SourceFile], policy: str) -> list[Outcome]:
    return [classify(start + offset, source, policy) for offset, source in enumerate(files)]


def _windows(files: Iterable[SourceFile], size: int) -> Iterator[list[SourceFile]]:
    window: list[SourceFile] = []
    for source in files:
        window.append(source)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def iter_outcomes(files: Iterable[SourceFile], policy: str,
                  pool: multiprocessing.pool.Pool | None = None, in_flight: int = 4) -> Iterator[Outcome]:
    """Classify files in order. With a pool, hashing and parsing run in its worker processes
    while this process reads and writes; at most `in_flight` windows are out at once, so memory
    stays flat."""
    if pool is None:  # one file at a time: the first chunk is ready as soon as it is parsed
        for seq, source in enumerate(files):
            yield classify(seq, source, policy)
        return
    windows = _windows(files, WINDOW)
    seq = 0
    pending: deque[AsyncResult[list[Outcome]]] = deque()
    for window in windows:
        pending.append(pool.apply_async(_classify_window, (seq, window, policy)))
        seq += len(window)
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
