"""Look at a dump before loading it: what the files are, what repair does, how clean every field is.

The functions behind `data_debugging.ipynb`. Each one streams the source once through the same
readers and parser the ingest uses (`duel.sources.iter_source`, `duel.parse.iter_outcomes`,
which calls `duel.repair.parse_document`), so what the notebook shows is what `duel ingest` will
do. Nothing is written anywhere; memory holds counts, the list of malformed files, the numeric
values of the distributions and one small judgement per document, never the documents.

Every field is judged by the dbt project's own rules (`duel.defects`, which reads the vars of
`dbt/duel/dbt_project.yml` that the dbt models read): a value is usable or has exactly one of
dbt's defect classes (`missing`, `placeholder`, `malformed`, `not-a-number`, `negative`, ...), and
`defect_counts` gives, per record type, field and class, the counts `dbt_analysis.data_quality`
will show once the dump is loaded into an empty database (each document's last delivery counts,
as in the load; `stale` needs a load history, so it never appears here).

    from duel import explore
    explore.count_files(settings, Path("data.tar.gz"))
"""

from __future__ import annotations

import difflib
import math
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from statistics import fmean, median
from typing import Any

from duel import jsonb, parse, state
from duel.defects import (
    MISSING,
    NOT_AN_OBJECT,
    Integer,
    Rules,
    load_rules,
    lower_text,
    parse_json,
    trimmed,
)
from duel.exceptions import ConfigError, SourceError
from duel.identity import CONTENT_PREFIX, key_rule
from duel.parse import Outcome
from duel.repair import parse_document
from duel.settings import Settings
from duel.sources import iter_source

STATUSES = ("clean", "repaired", "quarantined", "skipped")
ENTITIES = ("user", "program", "task")
DISTRIBUTION_FIELDS = {
    "likes": "task.likes",
    "comments": "task.comments",
    "shares": "task.shares",
    "reach": "task.reach",
    "sales": "program.total_sales_attributed",
}
JSON_TYPES = ("missing", "null", "boolean", "integer", "number", "string", "array", "object")


DEFAULT_DUMP = Path("data.tar.gz")  # `make run`'s (Settings.data's default)


def dump_to_explore(settings: Settings, data_path: str | Path | None = None) -> Path:
    """The dump `data_debugging.ipynb` looks at (and loads at its end): `data_path` when given;
    else DUEL_DATA when set; else the dump the last `duel run` loaded into the database these
    settings use (DUEL_HOME/database.json: after `make run DATA=...`, that dump, not the demo);
    else ./data.tar.gz. A run that read an object store names no local dump: ConfigError."""
    if data_path is not None:
        return Path(data_path)
    chosen: Path | str = settings.data
    if chosen == DEFAULT_DUMP:
        record = state.read_database(settings.home)
        if record is not None and record.source and record.database == settings.pg_database:
            chosen = record.source
    if isinstance(chosen, str) and chosen.lower().startswith("s3://"):
        raise ConfigError(
            f"the last run read {chosen}, an object store; set data_path to a local copy of it"
        )
    return Path(chosen)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value (integer and number kept apart)."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | Integer):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "other"


def iter_records(document: Any) -> Iterator[tuple[str, Any]]:
    """(entity, object) for the user, then each program, then each task, as dbt unnests them:
    elements of a list that is not a list give nothing, an element that is not an object is a
    record with no fields (each of them `not-an-object`: judge)."""
    yield "user", document
    programs = document.get("advocacy_programs") if isinstance(document, dict) else None
    for program in programs if isinstance(programs, list) else []:
        yield "program", program
        tasks = program.get("tasks_completed") if isinstance(program, dict) else None
        for task in tasks if isinstance(tasks, list) else []:
            yield "task", task


def field_value(record: Any, name: str) -> Any:
    """The value of a field in a record, MISSING when the key is absent."""
    return record.get(name, MISSING) if isinstance(record, dict) else MISSING


def iter_outcomes(settings: Settings, path: Path) -> Iterator[Outcome]:
    """Every file of the source classified exactly as the ingest classifies it (one pass)."""
    return parse.iter_outcomes(
        iter_source(path, settings.max_file_bytes), settings.repair_policy, key_rule(settings)
    )


def iter_documents(settings: Settings, path: Path) -> Iterator[dict[str, Any]]:
    """The parsed user documents the ingest would load (clean and repaired), one at a time."""
    for outcome in iter_outcomes(settings, path):
        if outcome.status in ("clean", "repaired") and outcome.parsed and outcome.parsed.document:
            yield jsonb.loads(outcome.parsed.document)


# --- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileCounts:
    """Documents by what the ingest would do with them (a file of several users, once per
    user, as the ledger counts them); reasons for quarantined and skipped ones; `files_read` the
    files that held them, each once (`IngestResult.files_read`)."""

    clean: int = 0
    repaired: int = 0
    quarantined: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    files_read: int = 0

    @property
    def total(self) -> int:
        return self.clean + self.repaired + self.quarantined + self.skipped

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "status": s,
                "documents": getattr(self, s),
                "share": getattr(self, s) / self.total if self.total else None,
            }
            for s in STATUSES
        ]


def count_files(settings: Settings, path: Path) -> FileCounts:
    """How many documents are clean, repaired, quarantined or skipped (the ingest's own
    verdicts), and in how many files."""
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    files_read = 0
    for outcome in iter_outcomes(settings, path):
        counts[outcome.status] += 1
        files_read += not outcome.continued
        reason = outcome.skip_reason or (outcome.parsed.reason if outcome.parsed else None)
        if reason:
            reasons[f"{outcome.status}: {reason}"] += 1
    return FileCounts(
        **{s: counts[s] for s in STATUSES},
        reasons=dict(sorted(reasons.items())),
        files_read=files_read,
    )


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
class Judged:
    """One document as the load will see it: each record's fields with their JSON type, defect
    class and, for a placeholder, the value as delivered; its usable email; its lineage."""

    records: tuple[tuple[str, tuple[tuple[str, str, str | None, str | None], ...]], ...]
    email: str | None
    repaired: bool
    keyless: bool


@dataclass(frozen=True)
class Survey:
    """Every current document of a dump, judged by the dbt project's rules (the last delivery of
    each document counts, as in the load), and the files the load would quarantine."""

    rules: Rules
    documents: dict[str, Judged]  # document_key -> its last delivery
    quarantined: dict[str, int]  # reason -> distinct files

    def duplicate_emails(self) -> set[str]:
        emails = Counter(d.email for d in self.documents.values() if d.email is not None)
        return {email for email, n in emails.items() if n > 1}


def judge(rules: Rules, document: Any, repaired: bool = False, keyless: bool = False) -> Judged:
    """A parsed document (numbers as Decimal: `defects.parse_json`) judged field by field."""
    records = []
    for entity, record in iter_records(document):
        values = []
        for rule in rules.entity(entity):
            value = field_value(record, rule.name)
            # a list's element that is not an object has no fields (macros/cleaning.sql,
            # field_defect_columns); the document itself always is one (else it is quarantined)
            defect = rule.defect(value) if isinstance(record, dict) else NOT_AN_OBJECT
            shown = value if defect == "placeholder" and isinstance(value, str) else None
            values.append((rule.name, json_type(value), defect, shown))
        records.append((entity, tuple(values)))
    email_rule = rules.field("user", "email")
    email = field_value(document, "email")
    usable = email_rule.defect(email) is None
    return Judged(
        tuple(records), lower_text(trimmed(email) or "") if usable else None, repaired, keyless
    )


def survey(settings: Settings, path: Path) -> Survey:
    """Judge every document the ingest would load (one pass; memory holds one small summary per
    document, never the documents)."""
    rules = load_rules(settings.dbt_project_dir)
    documents: dict[str, Judged] = {}
    quarantined: dict[tuple[str, str], str] = {}
    for outcome in iter_outcomes(settings, path):
        parsed = outcome.parsed
        if outcome.status == "quarantined" and parsed is not None:
            quarantined[(outcome.name, outcome.sha256 or "")] = parsed.reason or "unknown"
        if outcome.status not in ("clean", "repaired") or not (parsed and parsed.document):
            continue
        key = outcome.key or outcome.name
        documents.pop(key, None)  # a later delivery of the same document replaces it
        documents[key] = judge(
            rules,
            parse_json(parsed.document),
            outcome.status == "repaired",
            key.startswith(CONTENT_PREFIX),
        )
    return Survey(rules, documents, dict(Counter(quarantined.values())))


@dataclass(frozen=True)
class FieldProfile:
    """One field over every record of its entity: JSON types seen, defect classes, placeholders."""

    field: str  # entity.field
    kind: str  # its rule's kind (vars.fields in dbt_project.yml)
    rows: int
    types: dict[str, int]
    defects: dict[str, int]  # dbt's class -> values
    placeholders: dict[str, int]  # placeholder value as delivered -> count

    @property
    def usable(self) -> int:
        """Values with no defect, or a defect that keeps them (as `breaks-platform-rules`)."""
        return self.rows - sum(self.defects.values())

    def row(self) -> dict[str, Any]:
        """A flat row for a table: types, the defects (most common first) and the usable share."""
        return {
            "field": self.field,
            "kind": self.kind,
            "rows": self.rows,
            "types": ", ".join(
                f"{t} {n:,}" for t, n in sorted(self.types.items(), key=lambda i: -i[1])
            ),
            "usable": self.usable,
            "defects": ", ".join(
                f"{d} {n:,}" for d, n in sorted(self.defects.items(), key=lambda i: -i[1])
            ),
            "placeholder_values": ", ".join(f"{v!r} {n:,}" for v, n in self.placeholders.items()),
            "usable_share": self.usable / self.rows if self.rows else None,
        }

    def defect_rows(self) -> list[dict[str, Any]]:
        """One row per part of the field (usable, then each class): field, part, values, rows."""
        parts = {"usable": self.usable, **dict(sorted(self.defects.items(), key=lambda i: -i[1]))}
        return [
            {"field": self.field, "part": part, "values": n, "rows": self.rows}
            for part, n in parts.items()
        ]


def profile_fields(settings: Settings, path: Path) -> list[FieldProfile]:
    """Profile every field (the project's order) over the documents the load would keep."""
    found = survey(settings, path)
    types: dict[str, Counter[str]] = {}
    defects: dict[str, Counter[str]] = {}
    placeholders: dict[str, Counter[str]] = {}
    for document in found.documents.values():
        for entity, values in document.records:
            for name, json_kind, defect, shown in values:
                key = f"{entity}.{name}"
                types.setdefault(key, Counter())[json_kind] += 1
                if defect:
                    defects.setdefault(key, Counter())[defect] += 1
                if shown is not None:
                    placeholders.setdefault(key, Counter())[shown] += 1
    return [
        FieldProfile(
            f"{rule.entity}.{rule.name}",
            rule.kind,
            sum(types.get(f"{rule.entity}.{rule.name}", Counter()).values()),
            dict(types.get(f"{rule.entity}.{rule.name}", Counter())),
            dict(defects.get(f"{rule.entity}.{rule.name}", Counter())),
            dict(placeholders.get(f"{rule.entity}.{rule.name}", Counter()).most_common()),
        )
        for rule in found.rules.fields
    ]


@dataclass(frozen=True, order=True)
class DefectCount:
    """One row of `dbt_analysis.data_quality` as the load of this dump will give it."""

    record_type: str  # user | program | task | file
    field: str  # a field, `document`, `file`, or `(all fields)`
    defect: str  # a defect class, `quarantined:<reason>`, or `(any defect)`
    count: int
    records: int  # records of that type


def defect_counts(settings: Settings, path: Path) -> list[DefectCount]:
    """What `dbt_analysis.data_quality` will count per record type, field and defect class
    (summed over batches) once this dump is loaded into an empty database."""
    found = survey(settings, path)
    duplicates = found.duplicate_emails()
    counts: Counter[tuple[str, str, str]] = Counter()
    records: Counter[str] = Counter()
    affected: Counter[str] = Counter()
    for document in found.documents.values():
        for entity, values in document.records:
            bad = [(name, defect) for name, _type, defect, _shown in values if defect]
            if entity == "user" and document.email in duplicates:
                bad.append(("email", "duplicate"))
            counts.update((entity, name, defect) for name, defect in bad)
            records[entity] += 1
            affected[entity] += bool(bad)  # as base.is_clean: keyless is no defect of the record
        if document.keyless:
            counts["user", "document", "keyless"] += 1
        records["file"] += 1
        if document.repaired:
            counts["file", "file", "repaired"] += 1
            affected["file"] += 1
    for reason, files in found.quarantined.items():
        counts["file", "file", f"quarantined:{reason}"] += files
        records["file"] += files
        affected["file"] += files
    rows = [DefectCount(t, f, d, n, records[t]) for (t, f, d), n in counts.items()]
    rows += [
        DefectCount(t, "(all fields)", "(any defect)", affected[t], n) for t, n in records.items()
    ]
    return sorted(rows)


# --- distributions and the clean/messy split -----------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """The numeric values of one measure (negative ones included) and how many were not numbers."""

    measure: str
    values: array  # float64, in source order
    unknown: int  # missing, null, a placeholder or anything else that is not a JSON number

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
        for entity, record in iter_records(document):
            for name, measure in by_field.items():
                if not name.startswith(entity + "."):
                    continue
                value = field_value(record, name.split(".", 1)[1])
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
    """Count clean and messy records, and how many defects messy records carry. A record is
    clean as dbt's `is_clean` says: no field defect and, for a user, no email shared."""
    found = survey(settings, path)
    duplicates = found.duplicate_emails()
    records = clean_records = 0
    totals: Counter[str] = Counter()
    cleans: Counter[str] = Counter()
    defective: Counter[int] = Counter()
    for document in found.documents.values():
        record_defects = 0
        for entity, values in document.records:
            bad = sum(1 for _name, _type, defect, _shown in values if defect)
            bad += entity == "user" and document.email in duplicates
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
