"""The read-and-parse pipeline: each input file hashed and parsed into an `Outcome`, in order,
and handed to the database side (`duel.load`) in chunks, read a few chunks ahead in a thread.

Parsing is a pure function of the file's bytes (no database): it runs in this process, or in
worker processes when the ingest asks for them, with only a few windows of files in flight at
once. A file is not parsed when the database already holds its bytes as its document's current
version, or has found them to hold that version's content in other bytes before (an alias,
duel.load), (`KnownVersions`, asked once per window): it is `known`, and the database side calls
it unchanged, or parses it after all (`reclassify`) when this batch moved the document since.
`read_chunks` is the whole pipeline as the ingest uses it:

    with read_chunks(files, policy, rule, workers=1, chunk_rows=5000) as chunks:
        for chunk in chunks:
            ...  # write it
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import multiprocessing.pool
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing.pool import AsyncResult
from typing import Any, NamedTuple

from duel.identity import KeyRule, document_key, file_key, readable_members, salvaged_key
from duel.repair import (
    USER_FIELDS,
    FileRepair,
    Parsed,
    array_texts,
    parse_document,
    with_file_repair,
)
from duel.sources import SourceFile

WINDOW = 2048  # files per unit of work handed to a parse worker
FIRST_CHUNK = 500  # files in the first write chunk; chunks double from there up to chunk_rows
CHUNK_BYTES = 64 << 20  # cut a write chunk early when its documents hold this much memory
KNOWN = "known"  # an Outcome's status: the current version's bytes, not parsed (see module doc)

# (key, sha256) pairs of files not yet parsed -> of those that are their key's current version,
# the version's hash: their own, or the version's whose content they hold in other bytes
KnownVersions = Callable[[list[tuple[str, str]]], dict[tuple[str, str], str]]


class Outcome(NamedTuple):  # a tuple, not a dataclass: built once per file on the hot path
    """What one input document is, before we know whether the database already has it."""

    name: str  # where it was found: the path in the dump, `file.ndjson:LINE`, `file.json[INDEX]`
    status: str  # clean | repaired | quarantined | skipped | known
    size: int
    sha256: str | None = None
    parsed: Parsed | None = None
    skip_reason: str | None = None
    content: bytes | None = None  # kept only for quarantined files
    key: str | None = None  # the document's identity (duel.identity); None for skipped files
    source: SourceFile | None = None  # kept only for a known file: parsed if it must be after all
    # a document after the first of its file (`SourceFile.continued`; an array's elements after
    # the first): the batch counts the file once, with its first
    continued: bool = False
    # a known file whose bytes hold its current version's content in other bytes (an alias):
    # its bytes' own hash (`sha256` is then the version's)
    bytes_sha256: str | None = None


def classify(
    source: SourceFile,
    policy: str,
    rule: KeyRule,
    sha256: str | None = None,
    *,
    element: bool = False,
) -> Outcome | list[Outcome]:
    """Parse (and if need be repair) one file: one outcome, or one per element when the file
    is a JSON array of users (`sha256`: its bytes' hash, if already computed; `element`: the
    source is an element of such an array, never split again: an array in it is no user). Pure:
    safe to run in a worker process. Each outcome is `continued` as its source is (a document
    after the first of its file), and an array's users after the first are (the batch counts
    the file once, with its first user)."""
    continued = source.continued
    if source.skip_reason is not None:
        return Outcome(
            source.name,
            "skipped",
            source.size,
            skip_reason=source.skip_reason,
            continued=continued,
        )
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
            _quarantine_key(source, sha256, rule),
            continued=continued,
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
            _quarantine_key(source, "", rule),
            continued=continued,
        )
    data = source.data
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    parsed = parse_document(data, policy)
    if parsed.status == "quarantined" and not element:
        body = None  # the file decoded: array_texts' first text
        for text, fix in array_texts(data, parsed):
            body = body or text
            if (elements := _users_of(text)) is not None:
                return [
                    _with_file_repair(outcome, fix)
                    for index, part in enumerate(elements)
                    for outcome in _flat(
                        classify(
                            SourceFile(
                                f"{source.name}[{index}]",
                                part,
                                len(part),
                                continued=continued or index > 0,
                            ),
                            policy,
                            rule,
                            element=True,
                        )
                    )
                ]
        if body is not None and _opens_users(body):  # users of their own, none of them the file
            source = source._replace(key_path=None)  # unidentified
    if parsed.status == "quarantined":
        return Outcome(
            source.name,
            "quarantined",
            len(data),
            sha256,
            parsed,
            None,
            data,
            salvaged_key(rule, source.key_path, data) or _quarantine_key(source, sha256, rule),
            continued=continued,
        )
    if parsed.document is None:  # parse_document gives every loadable parse its document
        raise ValueError(f"{source.name}: {parsed.status} without a document")
    key = document_key(rule, source.key_path, parsed.document, sha256)
    return Outcome(
        source.name, parsed.status, len(data), sha256, parsed, None, None, key, None, continued
    )


def _with_file_repair(outcome: Outcome, fix: FileRepair | None) -> Outcome:
    """A user of an array with the repair its file took to read (`repair.with_file_repair`)."""
    if fix is None or outcome.parsed is None or outcome.status not in ("clean", "repaired"):
        return outcome
    parsed = with_file_repair(outcome.parsed, fix)
    return outcome._replace(status=parsed.status, parsed=parsed)


def _quarantine_key(source: SourceFile, sha256: str, rule: KeyRule) -> str:
    """A quarantined file keeps its file identity when the key rule takes it from the path (so a
    stale current version can be told); a document without a file of its own, or under a rule
    that reads a field first, is identified by what of it can be read (`salvaged_key`, for a
    document that did not parse), else by its content: no one."""
    if (key := file_key(rule, source.key_path)) is not None:
        return key
    return (
        "content:" + sha256
        if sha256
        else "content:" + hashlib.sha256(source.name.encode()).hexdigest()
    )


# What splits a JSON array into its elements: the tokens that open, close or separate (and a
# string, read whole, whose contents are none of them); JSON's whitespace around an element
_TOKENS = re.compile(rb'["\[\]{},]')
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)
_CLOSERS = {ord("]"): ord("["), ord("}"): ord("{")}
_JSON_SPACE = b" \t\r\n"
# What may come before the `[` of a file that opens an array: whitespace and comments (which
# the lossless fixes would remove)
_BEFORE_ARRAY = re.compile(rb"(?:[ \t\r\n\f\v]++|//[^\n]*+|\#[^\n]*+|/\*(?:[^*]++|\*(?!/))*+\*/)*+")


# The head of a list of users wrapped in an object (`repair.wrapped_users`): the object's first
# member's name, and its value opening a list whose first element opens an object
_WRAPPER_HEAD = re.compile(
    rb'\{[ \t\r\n]*+"((?:[^"\\]++|\\.)*+)"[ \t\r\n]*+:[ \t\r\n]*+(\[)[ \t\r\n]*+(?=\{)'
)


def _opens_users(body: bytes) -> bool:
    """Whether a file's decoded text (`repair.decoded`: no byte order mark, UTF-16 transcoded)
    opens a JSON array, or an object whose first member, under a name that is no user field,
    opens a list of objects (as a list of users an object wraps does, `repair.wrapped_users`),
    past whitespace and comments: it holds users of their own (keyed by their fields), so when
    it cannot be split it is none of them, and is quarantined unidentified (a complete dump
    holding it withholds its deletes). Whether that first object has a user field is not asked
    of a text that cannot be split."""
    match = _BEFORE_ARRAY.match(body)
    start = match.end() if match else 0
    return body[start : start + 1] == b"[" or _wrapper_head(body, start) is not None


def _wrapper_head(text: bytes, start: int) -> re.Match[bytes] | None:
    """The head of a list of objects wrapped in an object at `start`, if `text` opens one there
    under a member name that is no user field."""
    head = _WRAPPER_HEAD.match(text, start)
    if head is None:
        return None
    try:
        name = json.loads(b'"' + head.group(1) + b'"')
    except ValueError:
        return None
    return None if name in USER_FIELDS else head


def _users_of(text: bytes) -> list[bytes] | None:
    """The users of a text that holds several: a JSON array's elements, or those of the list an
    object wraps (`repair.wrapped_users`: its one member, so nothing but the list and the
    object's `}` follow it, and its first element has a user field); None when it is neither,
    or cannot be split."""
    if (elements := _array_elements(text)) is not None:
        return elements
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    head = _wrapper_head(text, start)
    end = len(text.rstrip(_JSON_SPACE))
    if head is None or text[end - 1 : end] != b"}":
        return None
    elements = _array_elements(text[head.start(2) : end - 1])
    if not elements or USER_FIELDS.isdisjoint(readable_members(elements[0]) or ()):
        return None
    return elements


def _array_elements(text: bytes) -> list[bytes] | None:
    """The elements of a JSON array of users (an object among them), each as its own bytes in
    the file's text (`repair.array_texts`), not parsed and written again (a number keeps its
    every digit, an element keeps its nesting); else None, when the text is not one whole
    array. Each element is then judged as a file of its own: one that is not an object, or not
    valid, is quarantined on its own, as a broken NDJSON line is, and costs the file's other
    users nothing."""
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    if text[start : start + 1] != b"[":
        return None
    elements: list[bytes] = []
    open_brackets = bytearray()
    begin, position = start + 1, start
    while (token := _TOKENS.search(text, position)) is not None:
        at, char = token.start(), text[token.start()]
        position = at + 1
        if char == 0x22:  # '"': read the string through, escapes and all
            rest = _STRING_REST.match(text, position)
            if rest is None:
                return None  # a string never closed: not one whole array
            position = rest.end()
        elif char in b"[{":
            open_brackets.append(char)
        elif char in _CLOSERS:
            if not open_brackets or open_brackets.pop() != _CLOSERS[char]:
                return None
            if not open_brackets:  # the array's own `]`
                last = text[begin:at].strip(_JSON_SPACE)
                if last or elements:  # `[]` has no element; `[u,]` an empty last one
                    elements.append(last)
                if text[position:].strip(_JSON_SPACE):
                    return None  # more after the array
                return elements if any(e.startswith(b"{") for e in elements) else None
        elif len(open_brackets) == 1:  # a comma between two of the array's elements
            elements.append(text[begin:at].strip(_JSON_SPACE))
            begin = position
    return None


def _flat(outcome: Outcome | list[Outcome]) -> list[Outcome]:
    return outcome if isinstance(outcome, list) else [outcome]


def reclassify(outcome: Outcome, policy: str, rule: KeyRule) -> list[Outcome]:
    """A known file parsed after all (the database side found its document moved by this batch)."""
    if outcome.source is None:
        raise ValueError(f"{outcome.name}: a known file without its bytes")
    return _flat(classify(outcome.source, policy, rule, outcome.bytes_sha256 or outcome.sha256))


def _classify_window(
    files: list[tuple[SourceFile, str | None]], policy: str, rule: KeyRule
) -> list[list[Outcome]]:
    """Each file's outcomes (one, or one per element of a JSON array), in file order."""
    return [_flat(classify(source, policy, rule, sha256)) for source, sha256 in files]


def _candidates(window: list[SourceFile], rule: KeyRule) -> list[tuple[int, str, str]]:
    """The window's files that may be known, as (index, key, sha256): only a readable file whose
    key needs no parse (`identity.file_key`) can be."""
    candidates: list[tuple[int, str, str]] = []
    for index, source in enumerate(window):
        key = file_key(rule, source.key_path)
        data = source.data
        readable = source.defect is None and source.skip_reason is None and not source.oversize
        if key is not None and data is not None and readable:
            candidates.append((index, key, hashlib.sha256(data).hexdigest()))
    return candidates


def _sort_known(
    window: list[SourceFile],
    candidates: list[tuple[int, str, str]],
    asked: Future[dict[tuple[str, str], str]] | None,
) -> tuple[list[Outcome | None], list[tuple[SourceFile, str | None]]]:
    """The window's known files as outcomes (None where a file must be parsed), and the files to
    parse with their hashes, once the database has answered (`asked`: of the candidates it
    holds as current versions, the version's hash)."""
    hits = asked.result() if asked is not None else {}
    sorted_: list[Outcome | None] = [None] * len(window)
    hashes: dict[int, str] = {}
    for index, key, sha256 in candidates:
        if (version := hits.get((key, sha256))) is not None:
            source = window[index]
            sorted_[index] = Outcome(
                source.name,
                KNOWN,
                source.size,
                version,
                key=key,
                source=source,
                continued=source.continued,
                bytes_sha256=sha256 if version != sha256 else None,
            )
        else:
            hashes[index] = sha256
    to_parse = [
        (source, hashes.get(index)) for index, source in enumerate(window) if sorted_[index] is None
    ]
    return sorted_, to_parse


def _sorted_windows(
    windows: Iterable[list[SourceFile]], rule: KeyRule, known: KnownVersions | None, ahead: int
) -> Iterator[tuple[list[Outcome | None], list[tuple[SourceFile, str | None]]]]:
    """Each window sorted into known files and files to parse (`_sort_known`). The database is
    asked about a window in a thread of its own while the next ones are read and hashed, at most
    `ahead` windows at once."""
    if known is None:
        for window in windows:
            yield [None] * len(window), [(source, None) for source in window]
        return
    with ThreadPoolExecutor(1, thread_name_prefix="duel-known") as asking:
        pending: deque[tuple[list[SourceFile], list[tuple[int, str, str]], Future[Any] | None]]
        pending = deque()
        for window in windows:
            candidates = _candidates(window, rule)
            pairs = [(key, sha256) for _, key, sha256 in candidates]
            pending.append((window, candidates, asking.submit(known, pairs) if pairs else None))
            while len(pending) > ahead:
                yield _sort_known(*pending.popleft())
        while pending:
            yield _sort_known(*pending.popleft())


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
    known: KnownVersions | None = None,
) -> Iterator[Outcome]:
    """Classify files in order (the ledger numbers them as it writes them). With a pool, hashing
    and parsing run in its worker processes while this process reads and writes; at most
    `in_flight` windows are out at once, so memory stays flat. With `known`, the files whose
    bytes are their document's current version are `known` outcomes, not parsed."""
    if pool is None and known is None:  # one at a time: the first chunk is ready once parsed
        for source in files:
            outcome = classify(source, policy, rule)
            if isinstance(outcome, list):
                yield from outcome
            else:
                yield outcome
        return
    pending: deque[
        tuple[list[Outcome | None], AsyncResult[list[list[Outcome]]] | list[list[Outcome]]]
    ] = deque()
    for sorted_, to_parse in _sorted_windows(_windows(files, WINDOW), rule, known, in_flight):
        if pool is None:
            pending.append((sorted_, _classify_window(to_parse, policy, rule)))
        else:
            pending.append((sorted_, pool.apply_async(_classify_window, (to_parse, policy, rule))))
        while len(pending) > in_flight:
            yield from _merge(*pending.popleft())
    while pending:
        yield from _merge(*pending.popleft())


def _merge(
    sorted_: list[Outcome | None], parsed: AsyncResult[list[list[Outcome]]] | list[list[Outcome]]
) -> Iterator[Outcome]:
    """A window's outcomes in file order: its known files, and each parsed file's outcomes
    where that file was."""
    parsed_files = iter(parsed if isinstance(parsed, list) else parsed.get())
    for outcome in sorted_:
        if outcome is None:
            yield from next(parsed_files)
        else:
            yield outcome


@contextmanager
def parse_pool(workers: int) -> Iterator[multiprocessing.pool.Pool | None]:
    """`workers` parse processes (forked now, before any thread starts), or None for one."""
    if workers <= 1:
        yield None
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield pool


def _held_bytes(outcome: Outcome) -> int:
    document = outcome.parsed.document if outcome.parsed is not None else None
    kept = outcome.source.data if outcome.source is not None else None
    return len(outcome.content or b"") + len(document or b"") + len(kept or b"")


def chunks(
    items: Iterable[Outcome], size: int, max_bytes: int = CHUNK_BYTES
) -> Iterator[list[Outcome]]:
    """Chunks of at most `size` files and about `max_bytes` of document bytes held in memory.
    The first ones are small and double up to `size`: the database starts work early instead
    of waiting idle while the first full chunk is read and parsed."""
    chunk: list[Outcome] = []
    held = 0
    limit = min(size, FIRST_CHUNK)
    for item in items:
        chunk.append(item)
        held += _held_bytes(item)
        if len(chunk) >= limit or held >= max_bytes:
            yield chunk
            chunk, held = [], 0
            limit = min(size, limit * 2)
    if chunk:
        yield chunk


class SeenKeys:
    """A one-hash Bloom filter of the document keys this batch has written: when the database had
    no current versions at the start, only a key seen before in this batch (or a false positive,
    about 1 in 130 at a million keys) needs a lookup, so a first load of a million files makes
    almost no lookup queries. 16 MiB, whatever the number of files."""

    BITS = 1 << 27

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS // 8)

    def may_hold(self, name: str) -> bool:
        """Whether `name` may have been added (False: it certainly was not)."""
        position = hash(name) & (self.BITS - 1)
        return bool(self.bits[position >> 3] & (1 << (position & 7)))

    def check_and_add(self, names: Iterable[str]) -> set[str]:
        """The names that may have been added before; adds them all."""
        bits, mask = self.bits, self.BITS - 1
        maybe = set()
        for name in names:
            position = hash(name) & mask
            byte, bit = position >> 3, 1 << (position & 7)
            if bits[byte] & bit:
                maybe.add(name)
            else:
                bits[byte] |= bit
        return maybe


class Prefetch:
    """Runs the read and parse stage in a thread, a few chunks ahead of the writes: the
    database works on one chunk while the next is read and parsed (the GIL is released while
    we wait on the server). Its errors are raised in the consumer; closing it stops it."""

    _DONE = object()

    def __init__(self, chunks: Iterator[list[Outcome]], depth: int = 2) -> None:
        self.chunks = chunks
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, name="duel-read", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for chunk in self.chunks:
                if not self._put(chunk):
                    break
            else:
                self._put(self._DONE)
        except BaseException as error:  # handed to the consumer, raised there
            self._put(error)
        finally:
            close = getattr(self.chunks, "close", None)
            if close is not None:
                close()  # the reader's archive or file is closed now, not when collected

    def __iter__(self) -> Iterator[list[Outcome]]:
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


@contextmanager
def read_chunks(
    files: Iterable[SourceFile],
    policy: str,
    rule: KeyRule,
    *,
    workers: int,
    chunk_rows: int,
    keep: Callable[[Outcome], bool] | None = None,
    known: KnownVersions | None = None,
) -> Iterator[Iterator[list[Outcome]]]:
    """The pipeline the ingest writes from: `files` classified in order (in `workers` processes
    when more than one), those `keep` accepts (a shard's share), in chunks of up to `chunk_rows`
    files, read and parsed in a thread a few chunks ahead (`known`: see iter_outcomes; it is
    called in that thread). Leaving the block stops the reader
    thread, closes the source and ends the worker processes."""
    # Parse in this process by default: measured on 2 cores, shipping files to worker processes
    # and their outcomes back costs more than the parse it moves (bench/analysis.md).
    workers = workers or 1
    with parse_pool(workers) as pool:
        outcomes = iter_outcomes(files, policy, rule, pool, 2 * workers, known)
        if keep is not None:
            outcomes = filter(keep, outcomes)
        prefetch = Prefetch(chunks(outcomes, chunk_rows))
        try:
            yield iter(prefetch)
        finally:
            prefetch.close()
