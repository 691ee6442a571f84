"""What the JSON files themselves say, computed without the models (or duel's repair code).

The tests compare the dbt models against these numbers. The cleaning rules are re-implemented
here from the issue's wording, independently of the SQL in dbt/duel/macros/cleaning.sql.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

WHITESPACE = " \t\n\r\f"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
EMAIL = re.compile(r"[a-z0-9_%+-]+(\.[a-z0-9_%+-]+)*@([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}")
URL = re.compile(
    r"https?://([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(:[0-9]{1,5})?([/?#]\S*)?", re.IGNORECASE
)
ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?", re.IGNORECASE
)
PLATFORMS = ("instagram", "tiktok", "facebook")
# The plausible ranges (dbt_project.yml, var measure_ranges): counts 0..10^12, sales +-10^12.
COUNT_MAX = 10**12
SALES_BOUND = 10**12
CENT = Decimal("0.01")
# Text that stands for no value in any field (the issue: values that are sentinels of bad data)
NO_VALUE = frozenset({"n/a", "#n/a", "null", "none", "nil", "undefined", "unknown", "-", "?"})
MISSING = object()


def load_document(path: Path) -> dict[str, Any]:
    """Parse a file; a truncated one is closed by appending the brackets it still needs."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError:
        pass
    stack, in_string, escaped = [], False, False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append("]" if char == "[" else "}")
        elif char in "]}":
            stack.pop()
    body = text.rstrip(WHITESPACE).rstrip(",")
    return json.loads(body + "".join(reversed(stack)), parse_float=Decimal)


def key(*parts: object) -> uuid.UUID:
    """The surrogate key the models must produce: md5 of the parts joined by chr(31)."""
    return uuid.UUID(hashlib.md5("\x1f".join(map(str, parts)).encode()).hexdigest())


def file_key(name: str) -> str:
    """The document key of a file found at `name` in a dump: its path without the dump's folder."""
    return "file:" + (name.split("/", 1)[1] if "/" in name else name)


def fold(text: str) -> str:
    """A brand name as the lookup normalises it: the characters invisible inside a word dropped,
    NFKC, whitespace runs as one space, case-folded."""
    visible = re.sub("[\u00ad\u200b\u2060\ufeff]", "", text)
    return re.sub(r"[ \t\n\r\f\v]+", " ", unicodedata.normalize("NFKC", visible)).casefold()


def _text(value: Any) -> str | None:
    return value.strip(WHITESPACE) if isinstance(value, str) else None


def _base(value: Any) -> str | None:
    if value is None or value is MISSING:
        return "missing"
    if not isinstance(value, str):
        return "wrong-type"
    text = _text(value)
    return "empty" if text == "" else "placeholder" if text.lower() in NO_VALUE else None


def id_defect(value: Any) -> str | None:
    return _base(value) or (None if UUID.fullmatch(_text(value)) else "malformed")


def name_defect(value: Any) -> str | None:
    return _base(value) or ("placeholder" if re.fullmatch(r"\?+", _text(value)) else None)


def email_defect(value: Any) -> str | None:
    if _base(value):
        return _base(value)
    lowered = _text(value).lower()
    return (
        "placeholder"
        if lowered == "invalid-email"
        else None
        if EMAIL.fullmatch(lowered)
        else "malformed"
    )


def handle_defect(value: Any, low: int, high: int) -> str | None:
    if _base(value):
        return _base(value)
    text = _text(value).lower()
    if text.lstrip("@") == "":
        return "empty"
    if text == "#error_handle":
        return "placeholder"
    return (
        None
        if re.fullmatch(rf"@[a-z0-9._]{{{low},{high}}}", "@" + text.lstrip("@"))
        else "breaks-platform-rules"
    )


def joined_at_defect(value: Any) -> str | None:
    if _base(value):
        return _base(value)
    text = _text(value)
    if text.lower() == "not-a-date":
        return "placeholder"
    if not ISO.fullmatch(text):
        return "unparseable"
    try:  # a calendar date: 2025-13-45 has the form but is no day
        date.fromisoformat(text[:10])
    except ValueError:
        return "unparseable"
    return None


def label_defect(value: Any, accepted: tuple[str, ...] = ()) -> str | None:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return "number"
    if _base(value):
        return _base(value)
    text = _text(value)
    if text.lower() == "nan":  # a label's own placeholder
        return "placeholder"
    if re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
        return "number"
    return "unknown-value" if accepted and text.lower() not in accepted else None


def url_defect(value: Any) -> str | None:
    if _base(value):
        return _base(value)
    text = _text(value)
    return (
        "placeholder"
        if text.lower() == "broken_link"
        else None
        if URL.fullmatch(text)
        else "malformed"
    )


def _number(value: Any, placeholders: tuple[str, ...] = ()) -> tuple[str | None, Decimal | None]:
    if value is None or value is MISSING:
        return "missing", None
    if isinstance(value, str):
        text = _text(value)
        if text == "":
            return "empty", None
        if text.lower() in placeholders or text.lower() in NO_VALUE:
            return "placeholder", None
        if text.lower() in ("nan", "+nan", "-nan"):
            return "not-a-number", None
        try:
            number = Decimal(text)
        except ArithmeticError:
            return "non-numeric", None
        if not number.is_finite():
            return "non-numeric", None
        return None, number
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return "wrong-type", None
    return None, Decimal(value)


def count_value(value: Any) -> tuple[str | None, int | None]:
    """likes, comments, shares, reach: (defect, cleaned value)."""
    defect, number = _number(value)
    if defect or number is None:
        return defect, None
    if number < 0:
        return "negative", None
    if number != number.to_integral_value():
        return "fractional", None
    if number > COUNT_MAX:
        return "out-of-range", None
    return None, int(number)


def sales_value(value: Any) -> tuple[str | None, Decimal | None]:
    """total_sales_attributed: (defect, amount rounded to cents, half away from zero)."""
    defect, number = _number(value, ("no-data",))
    if defect or number is None:
        return defect, None
    if abs(number) > SALES_BOUND:
        return "out-of-range", None
    cents = number.quantize(CENT, rounding=ROUND_HALF_UP)
    return ("negative", cents) if number < 0 else (None, cents)


@dataclass
class Facts:
    """Counts and totals over the current version of every file."""

    files: dict[str, dict[str, Any]]
    defects: Counter[tuple[str, str, str]] = field(
        default_factory=Counter
    )  # (entity, field, class)
    totals: dict[str, Any] = field(default_factory=dict)


def _users(facts: Facts) -> list[dict[str, Any]]:
    rows = []
    for name, document in sorted(facts.files.items()):
        rules = {
            "user_id": id_defect(document.get("user_id", MISSING)),
            "name": name_defect(document.get("name", MISSING)),
            "email": email_defect(document.get("email", MISSING)),
            "instagram_handle": handle_defect(document.get("instagram_handle", MISSING), 1, 30),
            "tiktok_handle": handle_defect(document.get("tiktok_handle", MISSING), 2, 24),
            "joined_at": joined_at_defect(document.get("joined_at", MISSING)),
        }
        email = None if rules["email"] else _text(document["email"]).lower()
        rows.append(
            {
                "name": name,
                "defects": rules,
                "email": email,
                "identifiable": rules["user_id"] is None,
            }
        )
    return rows


def compute_facts(directory: Path) -> Facts:
    """Read every *.json under `directory` (names relative to it, as the loader names them)."""
    files = {
        p.relative_to(directory).as_posix(): load_document(p) for p in directory.rglob("*.json")
    }
    facts = Facts(files)
    users = _users(facts)
    emails = Counter(u["email"] for u in users if u["email"])
    totals: Counter[str] = Counter()
    platforms: Counter[str | None] = Counter()
    brands: set[str] = set()
    for user in users:
        for name, defect in user["defects"].items():
            if defect:
                facts.defects["user", name, defect] += 1
        duplicate = bool(user["email"]) and emails[user["email"]] > 1
        facts.defects.update({("user", "email", "duplicate"): 1} if duplicate else {})
        totals["users"] += 1
        totals["identifiable_users"] += user["identifiable"]
        totals["valid_emails"] += user["email"] is not None
        totals["clean_users"] += not any(user["defects"].values()) and not duplicate
        for program in facts.files[user["name"]]["advocacy_programs"]:
            brand_defect = label_defect(program.get("brand", MISSING))
            sales_defect, sales = sales_value(program.get("total_sales_attributed", MISSING))
            for name, defect in (
                ("program_id", id_defect(program.get("program_id", MISSING))),
                ("brand", brand_defect),
                ("total_sales_attributed", sales_defect),
            ):
                if defect:
                    facts.defects["program", name, defect] += 1
            if brand_defect is None:
                brands.add(fold(_text(program["brand"])))
            totals["programs"] += 1
            totals["sales"] += sales or 0
            for task in program["tasks_completed"]:
                _task(task, facts, totals, platforms)
    facts.totals = {**totals, "platforms": dict(platforms), "brands": len(brands)}
    return facts


def _task(
    task: dict[str, Any], facts: Facts, totals: Counter[str], platforms: Counter[str | None]
) -> None:
    platform_defect = label_defect(task.get("platform", MISSING), PLATFORMS)
    counts = {
        name: count_value(task.get(name, MISSING))
        for name in ("likes", "comments", "shares", "reach")
    }
    for name, defect in (
        ("task_id", id_defect(task.get("task_id", MISSING))),
        ("platform", platform_defect),
        ("post_url", url_defect(task.get("post_url", MISSING))),
        *((name, value[0]) for name, value in counts.items()),
    ):
        if defect:
            facts.defects["task", name, defect] += 1
    platforms[
        None if platform_defect not in (None, "unknown-value") else _text(task["platform"]).lower()
    ] += 1
    totals["tasks"] += 1
    for name, (_, value) in counts.items():
        totals[name] += value or 0
    parts = [counts[name][1] for name in ("likes", "comments", "shares")]
    if None not in parts:
        totals["engagement"] += sum(parts)  # type: ignore[arg-type]
        totals["tasks_with_known_engagement"] += 1
