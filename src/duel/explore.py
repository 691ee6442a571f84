"""Look at a dump before loading it: what the files are, what repair does, how clean every field is.

The functions behind `data_debugging.ipynb`. Each one streams the source once through the same
readers and parser the ingest uses (`duel.sources.iter_source`, `duel.parse.iter_outcomes`, which calls
`duel.repair.parse_document`), so what the notebook shows is what `duel ingest` will do. Nothing is
written anywhere; memory holds counts, the list of malformed files and the numeric values of the
distributions, never the documents.

A field value is *usable*, or has exactly one defect: `missing` (key absent), `null`, `sentinel`
(a placeholder string such as "???" or "no-data", see SENTINELS), `wrong_type` (e.g. a number
where a brand name belongs) or `invalid` (right type, impossible value: a malformed uuid, email or
date, a negative count).

    from duel import explore
    explore.count_files(settings, Path("data.tar.gz"))
"""

from __future__ import annotations

import difflib
import math
import re
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import fmean, median
from typing import Any

import orjson

from duel import parse
from duel.exceptions import SourceError
from duel.identity import key_rule
from duel.parse import Outcome
from duel.repair import parse_document
from duel.settings import Settings
from duel.sources import iter_source

SENTINELS = frozenset(
    {
        "",
        "???",
        "NaN",
        "nan",
        "N/A",
        "n/a",
        "null",
        "None",
        "no-data",
        "not-a-date",
        "invalid-email",
        "broken_link",
        "#error_handle",
    }
)
DEFECTS = ("missing", "null", "sentinel", "wrong_type", "invalid")
STATUSES = ("clean", "repaired", "quarantined", "skipped")
ENTITIES = ("user", "program", "task")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_uuid(value: Any) -> str | None:
    if not isinstance(value, str):
        return "wrong_type"
    try:
        uuid.UUID(value)
    except ValueError:
        return "invalid"
    return None


def _check_text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "wrong_type"


def _check_pattern(pattern: Callable[[str], bool]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "wrong_type"
        return None if pattern(value) else "invalid"

    return check


def _parses_as_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _check_count(value: Any) -> str | None:
    if not _is_number(value) or (isinstance(value, float) and not value.is_integer()):
        return "wrong_type"
    return None if value >= 0 else "invalid"


def _check_amount(value: Any) -> str | None:
    if not _is_number(value):
        return "wrong_type"
    return None if value >= 0 else "invalid"


# Every field of the dump, as entity.field, with the check its non-null, non-sentinel values pass.
FIELD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "user.user_id": _check_uuid,
    "user.name": _check_text,
    "user.email": _check_pattern(lambda v: bool(_EMAIL.match(v))),
    "user.instagram_handle": _check_pattern(lambda v: v.startswith("@") and len(v) > 1),
    "user.tiktok_handle": _check_pattern(lambda v: v.startswith("@") and len(v) > 1),
    "user.joined_at": _check_pattern(_parses_as_time),
    "program.program_id": _check_uuid,
    "program.brand": _check_text,
    "program.total_sales_attributed": _check_amount,
    "task.task_id": _check_uuid,
    "task.platform": _check_text,
    "task.post_url": _check_pattern(lambda v: v.startswith(("http://", "https://"))),
    "task.likes": _check_count,
    "task.comments": _check_count,
    "task.shares": _check_count,
    "task.reach": _check_count,
}
DISTRIBUTION_FIELDS = {
    "likes": "task.likes",
    "comments": "task.comments",
    "shares": "task.shares",
    "reach": "task.reach",
    "sales": "program.total_sales_attributed",
}
_MISSING = object()


def value_defect(field_name: str, value: Any) -> str | None:
    """The defect of one value of `field_name` (entity.field), or None when it is usable."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, str) and value.strip() in SENTINELS:
        return "sentinel"
    return FIELD_CHECKS[field_name](value)


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value (integer and number kept apart)."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "other")


def _items(obj: Any, entity: str) -> Iterator[tuple[str, Any]]:
    for name in (n for n in FIELD_CHECKS if n.startswith(entity + ".")):
        key = name.split(".", 1)[1]
        yield name, obj.get(key, _MISSING) if isinstance(obj, dict) else _MISSING


def iter_entities(document: dict[str, Any]) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """(entity, [(entity.field, value), ...]) for the user, then each program, then each task."""
    yield "user", list(_items(document, "user"))
    programs = document.get("advocacy_programs")
    for program in programs if isinstance(programs, list) else []:
        yield "program", list(_items(program, "program"))
        tasks = program.get("tasks_completed") if isinstance(program, dict) else None
        for task in tasks if isinstance(tasks, list) else []:
            yield "task", list(_items(task, "task"))


def iter_outcomes(settings: Settings, path: Path) -> Iterator[Outcome]:
    """Every file of the source classified exactly as the ingest classifies it (one pass)."""
    return parse.iter_outcomes(
        iter_source(path, settings.max_file_bytes), settings.repair_policy, key_rule(settings)
    )


def iter_documents(settings: Settings, path: Path) -> Iterator[dict[str, Any]]:
    """The parsed user documents the ingest would load (clean and repaired), one at a time."""
    for outcome in iter_outcomes(settings, path):
        if outcome.status in ("clean", "repaired") and outcome.parsed and outcome.parsed.document:
            yield orjson.loads(outcome.parsed.document)


# --- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileCounts:
    """Files by what the ingest would do with them; reasons for quarantined and skipped ones."""

    clean: int = 0
    repaired: int = 0
    quarantined: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.clean + self.repaired + self.quarantined + self.skipped

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "status": s,
                "files": getattr(self, s),
                "share": getattr(self, s) / self.total if self.total else None,
            }
            for s in STATUSES
        ]


def count_files(settings: Settings, path: Path) -> FileCounts:
    """How many files are clean, repaired, quarantined or skipped (the ingest's own verdicts)."""
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for outcome in iter_outcomes(settings, path):
        counts[outcome.status] += 1
        reason = outcome.skip_reason or (outcome.parsed.reason if outcome.parsed else None)
        if reason:
            reasons[f"{outcome.status}: {reason}"] += 1
    return FileCounts(**{s: counts[s] for s in STATUSES}, reasons=dict(sorted(reasons.items())))


@dataclass(frozen=True)
class MalformedFile:
    """A file that is not valid JSON as it stands: what is wrong, and what the ingest does."""

    name: str
    status: str  # repaired | quarantined
    byte_size: int
    parse_error: str | None
    verdict: str  # the repair kind (encoding, lossless, closed, rewritten) or the quarantine reason


def malformed_files(settings: Settings, path: Path) -> list[MalformedFile]:
    """Every file that needs a repair or is quarantined, in source order."""
    found = []
    for outcome in iter_outcomes(settings, path):
        parsed = outcome.parsed
        if parsed is None or outcome.status == "clean":
            continue
        verdict = (
            parsed.reason if outcome.status == "quarantined" else (parsed.repair or {}).get("kind")
        )
        found.append(
            MalformedFile(
                outcome.name, outcome.status, outcome.size, parsed.parse_error, str(verdict)
            )
        )
    return found


@dataclass(frozen=True)
class RepairView:
    """One file before and after repair, and what changed."""

    name: str
    status: str
    parse_error: str | None
    change: str  # one line: what the repair did
    before: str
    after: str
    diff: str  # unified diff, before -> after


def describe_repair(repair: dict[str, Any] | None) -> str:
    """One line saying what a repair record did."""
    if not repair:
        return "nothing: the file is valid JSON"
    kind = repair.get("kind")
    if kind == "closed":
        removed = repair.get("removed") or ""
        tail = f", after dropping trailing {removed!r}" if removed else ""
        return f"appended the missing closing bracket(s) {repair.get('appended')!r}{tail}"
    if kind in ("encoding", "lossless"):
        return f"{kind} fixes, no value changed: {', '.join(repair.get('fixes') or [])}"
    return f"rewritten by json-repair ({len(repair.get('log') or [])} change(s)); content differs"


def repair_view(settings: Settings, path: Path, name: str | None = None) -> RepairView:
    """The file `name` (default: the first file that needs a repair) before and after repair."""
    for source in iter_source(path, settings.max_file_bytes):
        if (
            source.data is None
            or source.defect is not None
            or (name is not None and source.name != name)
        ):
            continue
        parsed = parse_document(source.data, settings.repair_policy)
        if name is None and parsed.status == "clean":
            continue
        before = source.data.decode("utf-8", errors="replace")
        after = parsed.document.decode("utf-8") if parsed.document else ""
        diff = "\n".join(
            difflib.unified_diff(
                before.splitlines(), after.splitlines(), "before", "after", lineterm=""
            )
        )
        return RepairView(
            source.name,
            parsed.status,
            parsed.parse_error,
            describe_repair(parsed.repair),
            before,
            after,
            diff,
        )
    raise SourceError(f"{path}: no file {name!r}" if name else f"{path}: no file needs a repair")


# --- fields ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldProfile:
    """One field over every record of its entity: JSON types seen, defects, and shares."""

    field: str  # entity.field
    rows: int
    types: dict[str, int]
    defects: dict[str, int]
    sentinels: dict[str, int]  # placeholder value -> count

    @property
    def usable(self) -> int:
        return self.rows - sum(self.defects.values())

    def row(self) -> dict[str, Any]:
        """A flat row for a table or chart: counts per defect, null share, usable share."""
        share = (lambda n: n / self.rows) if self.rows else (lambda n: None)
        return {
            "field": self.field,
            "rows": self.rows,
            "types": ", ".join(
                f"{t} {n:,}" for t, n in sorted(self.types.items(), key=lambda i: -i[1])
            ),
            "usable": self.usable,
            **{d: self.defects.get(d, 0) for d in DEFECTS},
            "sentinel_values": ", ".join(f"{v!r} {n:,}" for v, n in self.sentinels.items()),
            "null_share": share(self.defects.get("null", 0) + self.defects.get("missing", 0)),
            "usable_share": share(self.usable),
        }


def profile_fields(settings: Settings, path: Path) -> list[FieldProfile]:
    """Profile every field (FIELD_CHECKS order) over the documents the ingest would load."""
    rows: Counter[str] = Counter()
    types: dict[str, Counter[str]] = {name: Counter() for name in FIELD_CHECKS}
    defects: dict[str, Counter[str]] = {name: Counter() for name in FIELD_CHECKS}
    sentinels: dict[str, Counter[str]] = {name: Counter() for name in FIELD_CHECKS}
    for document in iter_documents(settings, path):
        for _entity, values in iter_entities(document):
            for name, value in values:
                rows[name] += 1
                types[name][json_type(value)] += 1
                defect = value_defect(name, value)
                if defect:
                    defects[name][defect] += 1
                if defect == "sentinel":
                    sentinels[name][value] += 1
    return [
        FieldProfile(
            name,
            rows[name],
            dict(types[name]),
            dict(defects[name]),
            dict(sentinels[name].most_common()),
        )
        for name in FIELD_CHECKS
    ]


# --- distributions and the clean/messy split -----------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """The numeric values of one measure (negative ones included) and how many were not numbers."""

    measure: str
    values: array  # float64, in source order
    unknown: int  # missing, null, sentinel or not a number

    @property
    def negative(self) -> int:
        return sum(1 for v in self.values if v < 0)

    def row(self) -> dict[str, Any]:
        """Counts and the five-number summary, for a table."""
        ordered = sorted(self.values)
        stats = (
            {
                "min": ordered[0],
                "median": median(ordered),
                "mean": fmean(ordered),
                "max": ordered[-1],
            }
            if ordered
            else dict.fromkeys(("min", "median", "mean", "max"))
        )
        return {
            "measure": self.measure,
            "numeric": len(ordered),
            "unknown": self.unknown,
            "negative": self.negative,
            **stats,
        }


def distributions(settings: Settings, path: Path) -> dict[str, Distribution]:
    """likes, comments, shares, reach (per task) and sales (per program), streamed."""
    values = {measure: array("d") for measure in DISTRIBUTION_FIELDS}
    unknown: Counter[str] = Counter()
    by_field = {name: measure for measure, name in DISTRIBUTION_FIELDS.items()}
    for document in iter_documents(settings, path):
        for _entity, items in iter_entities(document):
            for name, value in items:
                measure = by_field.get(name)
                if measure is None:
                    continue
                if _is_number(value):
                    values[measure].append(float(value))
                else:
                    unknown[measure] += 1
    return {m: Distribution(m, values[m], unknown[m]) for m in DISTRIBUTION_FIELDS}


@dataclass(frozen=True)
class RecordSplit:
    """Clean (every field usable) against messy, per user record (with its programs and tasks)
    and per entity."""

    records: int
    clean_records: int
    entities: dict[str, tuple[int, int]]  # entity -> (rows, clean rows)
    defective_fields: dict[int, int]  # defective fields in a record -> records

    def rows(self) -> list[dict[str, Any]]:
        levels = {"record": (self.records, self.clean_records), **self.entities}
        return [
            {
                "level": level,
                "rows": total,
                "clean": clean,
                "messy": total - clean,
                "clean_share": clean / total if total else None,
            }
            for level, (total, clean) in levels.items()
        ]


def split_records(settings: Settings, path: Path) -> RecordSplit:
    """Count clean and messy records, and how many defective fields messy records carry."""
    records = clean_records = 0
    totals: Counter[str] = Counter()
    cleans: Counter[str] = Counter()
    defective: Counter[int] = Counter()
    for document in iter_documents(settings, path):
        record_defects = 0
        for entity, values in iter_entities(document):
            bad = sum(1 for name, value in values if value_defect(name, value))
            totals[entity] += 1
            cleans[entity] += bad == 0
            record_defects += bad
        records += 1
        clean_records += record_defects == 0
        defective[record_defects] += 1
    return RecordSplit(
        records,
        clean_records,
        {e: (totals[e], cleans[e]) for e in ENTITIES},
        dict(sorted(defective.items())),
    )
