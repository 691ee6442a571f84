"""The field rules of the dbt project, applied to parsed JSON values in Python.

The rules are data in `dbt/duel/dbt_project.yml`: the defect classes (`vars.defect_classes`),
the placeholders (`vars.placeholders`), each field's kind and parameters (`vars.fields`), the
measures' ranges (`vars.measure_ranges`) and the formats (`vars.defect_patterns`). The dbt
models apply them in SQL (`macros/cleaning.sql`); this module applies the same vars kind for
kind, so `duel.explore` (and `data_debugging.ipynb`) reports a dump's defects exactly as the
load will record them. Each `_<kind>` function below mirrors the macro `<kind>_defect`, case for
case; tests/test_explore.py holds them to the dbt unit tests' fixtures and, on the real dump,
to `dbt_analysis.data_quality`.

    rules = load_rules(settings.dbt_project_dir)
    rules.field("task", "likes").defect(Decimal("-3"))   # 'negative'

Values are parsed JSON with every number a Decimal (`parse_json`), as Postgres jsonb holds
numbers exactly; MISSING stands for an absent key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from duel.exceptions import ConfigError
from duel.jsonb import numeric_fits

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
# trim_whitespace in macros/portable.sql: Unicode's White_Space and the invisible characters
# that stand in for a space or for nothing (zero width space, word joiner, BOM, soft hyphen:
# whitespace_escapes, the same list)
_TRIM = (
    " \t\n\r\f\v\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u180e\u200b\u2060\ufeff\u00ad"
)
# The key of `vars.placeholders` whose values are placeholders of every field, beside its own list
EVERY_FIELD = "every_field"
# the class of every field of a list's element that is not an object (vars.defect_classes;
# macros/cleaning.sql, field_defect_columns): a record with no fields, never one "missing" them
NOT_AN_OBJECT = "not-an-object"
_FLAGS = {"case": re.IGNORECASE | re.ASCII, "exact": re.ASCII}
# the `~*` (case-insensitive) patterns of macros/cleaning.sql; the others are matched with `~`
_CASE_INSENSITIVE = frozenset({"uuid", "url", "iso_timestamp", "iso_offset", "decimal"})
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[tT ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(?:[zZ]|([+-])(\d{2})(?::?(\d{2}))?)?)?",
    re.ASCII,
)


class Integer(Decimal):
    """A JSON integer (a Decimal, so exact at any length, that remembers it had no fraction)."""


def parse_json(text: str | bytes) -> Any:
    """A document as Postgres jsonb sees it: every number exact (Decimal), never a float."""
    return json.loads(text, parse_float=Decimal, parse_int=Integer)


def lower_text(text: str) -> str:
    """Postgres `lower(text collate "pg_c_utf8")`: Unicode's simple case mapping, one character
    at a time (Python's str.lower maps İ to two characters and a final Σ to ς)."""
    return "".join("i" if char == "\u0130" else char.lower() for char in text)


def trimmed(value: Any) -> str | None:
    """A JSON string's text trimmed as macros/cleaning.sql trims it; None for another type."""
    return value.strip(_TRIM) if isinstance(value, str) else None


def _missing(value: Any) -> bool:
    return value is MISSING or value is None


def timestamp_valid(text: str) -> bool:
    """Postgres `pg_input_is_valid(text, 'timestamp')`, for text matching the ISO pattern."""
    match = _ISO.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second, fraction, _sign, tz_hour, tz_minute = match.groups()
    try:
        date(int(year), int(month), int(day))  # year 0000 and 2024-02-30 are refused, as there
    except ValueError:
        return False
    if hour is None:
        return True
    hours, minutes, seconds = int(hour), int(minute), int(second or 0)
    fractional = bool(fraction) and round(Decimal("0." + fraction), 6) > 0  # to microseconds
    if minutes > 59 or seconds > 60 or hours > 24:
        return False
    if hours == 24 and (minutes or seconds or fractional):
        return False
    return tz_hour is None or (int(tz_hour) <= 15 and int(tz_minute or 0) <= 59)


# the instants macros/cleaning.sql keeps: the years 1-9999 in UTC, in microseconds from 0001-01-01
_LAST_INSTANT = (date(9999, 12, 31).toordinal() * 86_400 - 1) * 1_000_000 + 999_999


def timestamp_in_range(text: str) -> bool:
    """Whether a valid ISO timestamp (timestamp_valid) falls within the years 1-9999 once in UTC
    (text without an offset is UTC), as macros/cleaning.sql's timestamp rule judges it."""
    match = _ISO.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second, fraction, sign, tz_hour, tz_minute = match.groups()
    seconds = (date(int(year), int(month), int(day)).toordinal() - 1) * 86_400
    seconds += int(hour or 0) * 3600 + int(minute or 0) * 60 + int(second or 0)
    if sign:
        offset = int(tz_hour) * 3600 + int(tz_minute or 0) * 60
        seconds -= offset if sign == "+" else -offset
    micros = seconds * 1_000_000 + int(round(Decimal("0." + (fraction or "0")), 6) * 1_000_000)
    return 0 <= micros <= _LAST_INSTANT


def numeric_valid(text: str) -> bool:
    """Postgres `pg_input_is_valid(text, 'numeric')`, for text matching the decimal pattern."""
    digits = text.lower().lstrip("+-")
    mantissa, _, exponent = digits.partition("e")
    integer, _, fraction = mantissa.partition(".")
    number = (integer or "0") + ("." + fraction if fraction else "")
    return numeric_fits((number + ("e" + exponent if exponent else "")).encode())


@dataclass(frozen=True)
class FieldRule:
    """One field's rule: its kind (a macro pair of macros/cleaning.sql) and parameters."""

    entity: str  # user | program | task
    name: str
    kind: str
    placeholders: frozenset[str]
    patterns: dict[str, re.Pattern[str]]  # var defect_patterns, compiled
    placeholder_pattern: re.Pattern[str] | None = None
    pattern: re.Pattern[str] | None = None  # a handle's platform rules
    accepted: frozenset[str] | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None

    def defect(self, value: Any) -> str | None:
        """The defect class of one value (MISSING for an absent key), None when it is fine."""
        return _KINDS[self.kind](self, value)

    def matches(self, name: str, text: str) -> bool:
        return self.patterns[name].fullmatch(text) is not None

    def placeholder(self, text: str) -> bool:
        return lower_text(text) in self.placeholders


def _text_cases(rule: FieldRule, value: Any) -> str | None:
    """missing, wrong-type, empty, placeholder: the first cases of every kind of text."""
    if _missing(value):
        return "missing"
    text = trimmed(value)
    if text is None:
        return "wrong-type"
    if text == "":
        return "empty"
    return "placeholder" if rule.placeholder(text) else None


def _uuid(rule: FieldRule, value: Any) -> str | None:
    first = _text_cases(rule, value)
    if first:
        return first
    return None if rule.matches("uuid", trimmed(value) or "") else "malformed"


def _free_text(rule: FieldRule, value: Any) -> str | None:
    first = _text_cases(rule, value)
    if first:
        return first
    pattern = rule.placeholder_pattern
    return "placeholder" if pattern and pattern.search(trimmed(value) or "") else None


def _email(rule: FieldRule, value: Any) -> str | None:
    first = _text_cases(rule, value)
    if first:
        return first
    return None if rule.matches("email", lower_text(trimmed(value) or "")) else "malformed"


def _handle(rule: FieldRule, value: Any) -> str | None:
    if _missing(value):
        return "missing"
    text = trimmed(value)
    if text is None:
        return "wrong-type"
    if text.lstrip("@") == "":
        return "empty"
    if rule.placeholder(text):
        return "placeholder"
    handle = "@" + lower_text(text).lstrip("@")
    return None if rule.pattern and rule.pattern.fullmatch(handle) else "breaks-platform-rules"


def _timestamp(rule: FieldRule, value: Any) -> str | None:
    first = _text_cases(rule, value)
    if first:
        return first
    text = trimmed(value) or ""
    if not (rule.matches("iso_timestamp", text) and timestamp_valid(text)):
        return "unparseable"
    return None if timestamp_in_range(text) else "out-of-range"


def _label(rule: FieldRule, value: Any) -> str | None:
    if _missing(value):
        return "missing"
    if isinstance(value, Decimal):
        return "number"
    text = trimmed(value)
    if text is None:
        return "wrong-type"
    if text == "":
        return "empty"
    if rule.placeholder(text):
        return "placeholder"
    if rule.matches("label_number", text):
        return "number"
    if rule.accepted is not None and lower_text(text) not in rule.accepted:
        return "unknown-value"
    return None


def _url(rule: FieldRule, value: Any) -> str | None:
    first = _text_cases(rule, value)
    if first:
        return first
    return None if rule.matches("url", trimmed(value) or "") else "malformed"


def _number(rule: FieldRule, value: Any) -> tuple[str | None, Decimal | None]:
    """number_defect_cases: (class, None) when the value is no usable number, else (None, value)."""
    if _missing(value):
        return "missing", None
    text = trimmed(value)
    if text is not None:
        if text == "":
            return "empty", None
        if rule.placeholder(text):
            return "placeholder", None
        if rule.matches("not_a_number", lower_text(text)):
            return "not-a-number", None
        if not rule.matches("decimal", text):
            return "non-numeric", None
        if not numeric_valid(text):
            return "out-of-range", None
        return None, Decimal(text)
    if isinstance(value, Decimal):
        return None, value
    return "wrong-type", None


def _in_range(rule: FieldRule, number: Decimal) -> bool:
    return (
        rule.minimum is not None
        and rule.maximum is not None
        and (rule.minimum <= number <= rule.maximum)
    )


def _count(rule: FieldRule, value: Any) -> str | None:
    defect, number = _number(rule, value)
    if number is None:
        return defect
    if number < 0:
        return "negative"
    if number != number.to_integral_value():
        return "fractional"
    return None if _in_range(rule, number) else "out-of-range"


def _amount(rule: FieldRule, value: Any) -> str | None:
    defect, number = _number(rule, value)
    if number is None:
        return defect
    if not _in_range(rule, number):
        return "out-of-range"
    return "negative" if number < 0 else None


def _list(rule: FieldRule, value: Any) -> str | None:
    if _missing(value):
        return "missing"
    return None if isinstance(value, list) else "wrong-type"


_KINDS: dict[str, Callable[[FieldRule, Any], str | None]] = {
    "uuid": _uuid,
    "text": _free_text,
    "email": _email,
    "handle": _handle,
    "timestamp": _timestamp,
    "label": _label,
    "url": _url,
    "count": _count,
    "amount": _amount,
    "list": _list,
}


@dataclass(frozen=True)
class Rules:
    """Every field's rule, in the project's order (user, program, task), and the vocabulary."""

    fields: tuple[FieldRule, ...]
    classes: dict[str, str]  # defect class -> what it means

    def entity(self, entity: str) -> tuple[FieldRule, ...]:
        return tuple(rule for rule in self.fields if rule.entity == entity)

    def field(self, entity: str, name: str) -> FieldRule:
        for rule in self.fields:
            if (rule.entity, rule.name) == (entity, name):
                return rule
        raise KeyError(f"{entity}.{name}")


def project_vars(dbt_project_dir: Path) -> dict[str, Any]:
    """The `vars` of the dbt project (ConfigError, one line, if it cannot be read): the one
    reader of the rules for the exploration here and for the document identity."""
    import yaml  # PyYAML comes with dbt

    path = dbt_project_dir / "dbt_project.yml"
    try:
        project = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the dbt project ({exc.strerror})") from None
    return project.get("vars") or {}


def placeholders_of(placeholders: dict[str, Any], name: str) -> list[str]:
    """The placeholders of field `name` in `vars.placeholders`: every field's and its own (as
    macros/cleaning.sql field_rule joins them)."""
    return [*(placeholders.get(EVERY_FIELD) or []), *(placeholders.get(name) or [])]


def load_rules(dbt_project_dir: Path) -> Rules:
    """The rules of the dbt project's vars (ConfigError, one line, if they cannot be read)."""
    path = dbt_project_dir / "dbt_project.yml"
    variables = project_vars(dbt_project_dir)
    try:
        return _rules(variables)
    except (KeyError, TypeError, re.error) as exc:
        raise ConfigError(f"{path}: vars fields/defect_patterns are incomplete ({exc})") from None


def _rules(variables: dict[str, Any]) -> Rules:
    patterns = {
        name: re.compile(text, _FLAGS["case" if name in _CASE_INSENSITIVE else "exact"])
        for name, text in variables["defect_patterns"].items()
    }
    placeholders = variables.get("placeholders") or {}
    ranges = variables.get("measure_ranges") or {}
    rules = []
    for entity, fields in variables["fields"].items():
        for name, spec in fields.items():
            if spec["kind"] not in _KINDS:
                raise KeyError(f"unknown kind {spec['kind']!r} of {entity}.{name}")
            measure = ranges.get(name, {}) if spec["kind"] in ("count", "amount") else {}
            accepted = spec.get("accepted")
            rules.append(
                FieldRule(
                    entity,
                    name,
                    spec["kind"],
                    frozenset(lower_text(p) for p in placeholders_of(placeholders, name)),
                    patterns,
                    _compiled(spec.get("placeholder_pattern")),
                    _compiled(spec.get("pattern")),
                    frozenset(accepted) if accepted is not None else None,
                    Decimal(str(measure["min"])) if "min" in measure else None,
                    Decimal(str(measure["max"])) if "max" in measure else None,
                )
            )
    return Rules(tuple(rules), dict(variables["defect_classes"]))


def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern, re.ASCII) if pattern else None
