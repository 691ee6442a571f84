"""Sharded ingest: slice one input into N batches that workers can load independently.

A shard is the set of the source's files whose name hashes (CRC-32) to its index modulo N. By
name, not by position, so every copy of a file name lands in the same shard in source order and
"the last copy delivered is current" holds exactly as in a single-batch `duel ingest`. Each shard
is its own idempotent batch (`duel.load.ingest(..., shard="i/N")`): a failed shard rolls back
alone and retries alone, and a re-run of a shard that already loaded finds everything unchanged.
`check_shards` then proves the shards together account for every file of the source, using the
`raw.batch_files` ledger the batches wrote.

    specs = plan_shards(path, 4)
    results = [ingest_shard(settings, path, spec) for spec in specs]
    check_shards(settings, path, results)
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duel import db
from duel.exceptions import ConfigError, ShardMismatch
from duel.identity import file_key, key_rule
from duel.load import COUNTS, IngestResult, delete_absent_from, ingest
from duel.parse import Outcome
from duel.settings import Settings
from duel.sources import SourceFile, check_source, iter_source

if TYPE_CHECKING:
    from duel.objectstore import S3Location

MAX_SHARDS = 256
_ELEMENT = re.compile(r"^(.*\.json)\[[0-9]+\]$", re.IGNORECASE)
# the batch counts summed over shards (files_seen is checked against their ledger on its own)
TOTALS = tuple(name for name in COUNTS if name != "files_seen")


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """Shard `index` of `count`: the files whose name hash modulo `count` is `index`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"shard count must be between 1 and {MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard index must be between 0 and {self.count - 1}, got {self.index}"
            )

    @property
    def label(self) -> str:
        """`index/count`, as recorded in `raw.batches.shard`."""
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, label: str) -> ShardSpec:
        """The spec a `label` names, e.g. `ShardSpec.parse("1/4")`."""
        index, sep, count = label.partition("/")
        if not sep or not index.isdigit() or not count.isdigit():
            raise ConfigError(f"a shard is written index/count, e.g. 1/4; got {label!r}")
        return cls(int(index), int(count))

    def holds(self, name: str) -> bool:
        return zlib.crc32(name.encode("utf-8", "surrogateescape")) % self.count == self.index

    def holds_outcome(self, outcome: Outcome) -> bool:
        """By the document's identity, so every delivery of one document is in one shard (and
        its last one stays current); a skipped file, which has none, by its name."""
        return self.holds(outcome.key or outcome.name)


@dataclass(frozen=True)
class ShardCheck:
    """What `check_shards` verified (every source file is in exactly one shard), with the totals."""

    files: int
    shards: int
    batch_ids: tuple[int, ...]
    totals: dict[str, int] = field(default_factory=dict)  # loaded, repaired, ... summed over shards

    def summary(self) -> dict[str, Any]:
        """Shaped like `duel run --json` (for notifications); Airflow times the steps itself."""
        batches = ", ".join(map(str, self.batch_ids))
        return {
            "batch_id": batches,
            "files_seen": self.files,
            **self.totals,
            "shards": self.shards,
            "steps": {},
        }


def plan_shards(path: Path | S3Location, count: int) -> list[ShardSpec]:
    """The `count` shards of `path` (checked to exist and be a kind of input we read). An
    object-store source is one shard whatever `count`: it is read incrementally (duel.listing),
    and its listing is one record per batch."""
    if not isinstance(path, Path):
        return [ShardSpec(0, 1)]
    check_source(path)  # a missing or unreadable input fails here, once, not in every shard
    return [ShardSpec(index, count) for index in range(count)]


def shard_files(settings: Settings, path: Path, spec: ShardSpec) -> Iterator[SourceFile]:
    """The files of `path` that may belong to `spec`, in source order (streamed, never all in
    memory). A file identified by its path is decided here, before it is parsed; one whose key
    comes from its content (a field rule, an NDJSON line, an array) is parsed by every shard and
    kept by the one its key falls in (`ShardSpec.holds_outcome`)."""
    rule = key_rule(settings)
    for source in iter_source(path, settings.max_file_bytes):
        if source.skip_reason is not None:
            if spec.holds(source.name):
                yield source
        elif (key := file_key(rule, source.key_path)) is None or spec.holds(key):
            yield source


def ingest_shard(
    settings: Settings,
    path: Path | S3Location,
    spec: ShardSpec,
    *,
    on_file: Callable[[int], None] | None = None,
    allow_new_layout: bool = False,
) -> IngestResult:
    """Load one shard as its own batch (atomic; re-running it loads nothing new). The one shard
    of a single-shard plan is the whole dump, whose batch the layout guard checks
    (`allow_new_layout`, duel.layout)."""
    if not isinstance(path, Path):
        if spec.count != 1:
            raise ConfigError(
                f"{path}: an object-store source is ingested as one shard, not {spec.count}"
            )
        return ingest(settings, path, shard=spec.label, allow_new_layout=allow_new_layout)
    return ingest(
        settings,
        path,
        files=shard_files(settings, path, spec),
        shard=spec.label,
        on_file=on_file,
        allow_new_layout=allow_new_layout,
        keep=spec.holds_outcome,
    )


def delete_absent(
    settings: Settings, results: Sequence[IngestResult], *, allow_mass_delete: bool = False
) -> IngestResult:
    """After every shard of a complete (--full) dump loaded: tombstone the current documents that
    none of them delivered, as one more batch (duel.deletes; its guard applies)."""
    return delete_absent_from(
        settings, [r.batch_id for r in results], allow_mass_delete=allow_mass_delete
    )


def check_shards(
    settings: Settings, path: Path | S3Location, results: Sequence[IngestResult]
) -> ShardCheck:
    """Raise ShardMismatch unless the shards' batches saw every file of `path` exactly once (an
    object-store source: every object of its listing, in the one batch's ledger)."""
    expected = sorted(ShardSpec(index, len(results)).label for index in range(len(results)))
    labels, ledger = _ledger(settings, results)
    if not results or labels != expected:
        raise ShardMismatch(
            f"the batches {_ids(results)} are not one complete set of succeeded "
            f"shards: {labels or 'none'}"
        )
    rows = sum(ledger.values())
    if not isinstance(path, Path):
        _check_listed(settings, results[0])
        return ShardCheck(
            rows, 1, (results[0].batch_id,), {k: getattr(results[0], k) for k in TOTALS}
        )
    source = Counter(f.name for f in iter_source(path, 0))  # max_bytes 0: names only, no file read
    files = _files_of(ledger)
    if files != source:
        gaps = [
            f"{sum(names.values())} {what} (e.g. {min(names)})"
            for what, names in (("missing", source - files), ("extra", files - source))
            if names
        ]
        raise ShardMismatch(f"the shards' ledger differs from {path}: {', '.join(gaps)}")
    seen = sum(result.files_seen for result in results)
    if seen != rows:
        raise ShardMismatch(f"the shards counted {seen} files but their ledger holds {rows}")
    totals = {key: sum(getattr(r, key) for r in results) for key in TOTALS}
    return ShardCheck(seen, len(results), tuple(sorted(r.batch_id for r in results)), totals)


def _check_listed(settings: Settings, result: IngestResult) -> None:
    """The batch of an object-store source recorded every object it listed as seen by it."""
    with db.connect(settings, step="check shards") as conn:
        row = conn.execute(
            "select count(*), count(*) filter (where batch_id = %s) from raw.object_listing"
            " where source_uri = %s",
            (result.batch_id, result.source),
        ).fetchone()
    listed, seen = (int(row[0]), int(row[1])) if row else (0, 0)
    if listed != result.objects_listed or seen != listed:
        raise ShardMismatch(
            f"batch {result.batch_id} listed {result.objects_listed} objects of {result.source}; "
            f"raw.object_listing holds {listed}, {seen} of them seen by it"
        )


def _ledger(settings: Settings, results: Sequence[IngestResult]) -> tuple[list[str], Counter[str]]:
    """The shard labels of the succeeded batches among `results`, and the file names they
    recorded."""
    batch_ids = [r.batch_id for r in results]
    with db.connect(settings, step="check shards") as conn:
        labels = conn.execute(
            "select shard from raw.batches where batch_id = any(%s) and status = 'succeeded'",
            (batch_ids,),
        ).fetchall()
        names = conn.execute(
            "select source_name, count(*) from raw.batch_files"
            " where batch_id = any(%s) and status <> 'deleted' group by 1",
            (batch_ids,),
        ).fetchall()
    return sorted(str(label) for (label,) in labels), Counter(
        {str(name): int(n) for name, n in names}
    )


def _files_of(ledger: Counter[str]) -> Counter[str]:
    """Ledger names as source files: the elements of one JSON array (`users.json[3]`) are one
    file."""
    files: Counter[str] = Counter()
    arrays: set[str] = set()
    for name, count in ledger.items():
        match = _ELEMENT.match(name)
        if match:
            arrays.add(match.group(1))
        else:
            files[name] += count
    for name in arrays:
        files[name] += 1
    return files


def _ids(results: Sequence[IngestResult]) -> str:
    return ", ".join(str(r.batch_id) for r in results) or "(none)"
