"""Parse one file's bytes into a user document, repairing only what can be repaired honestly.

The rule: parse with orjson; on failure, repair, and accept the result only if it is a user
object with the expected keys. A repair is classed `closed` when the document is exactly the
original text with its missing closing brackets appended (the defect of the real dumps; done
here, exactly and cheaply), and `rewritten` when json-repair had to change or drop content
(anything closing cannot fix goes to json-repair). A rewritten
repair never passes silently: under the default `safe` policy the file is quarantined with the
proposed repair attached; under `lenient` it loads, flagged, with its diff recorded.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

USER_KEYS = ("user_id", "name", "email", "instagram_handle", "tiktok_handle", "joined_at",
             "advocacy_programs")
PROGRAM_KEYS = ("program_id", "brand", "tasks_completed", "total_sales_attributed")
TASK_KEYS = ("task_id", "platform", "post_url", "likes", "comments", "shares", "reach")

UTF8_BOM = b"\xef\xbb\xbf"
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_CLOSERS = {"{": "}", "[": "]"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
MAX_DIFF_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Parsed:
    """The verdict on one file. `document` is JSON text ready for a jsonb column."""

    status: str  # clean | repaired | quarantined
    document: bytes | None = None
    parse_error: str | None = None
    repair: dict[str, Any] | None = None
    reason: str | None = None  # quarantine reason code
    detail: str | None = None  # quarantine detail, one line


def quarantine(reason: str, detail: str, **extra: Any) -> Parsed:
    return Parsed(status="quarantined", reason=reason, detail=detail, **extra)


def closing_suffix(text: str) -> tuple[str, str] | None:
    """If `text` is valid JSON cut short only of closing brackets, return (trimmed, closers).

    `trimmed` is the text without trailing whitespace and a dangling comma; None when the text
    ends inside a string or its brackets do not nest. (Regexes, not a char loop: this runs on
    every malformed file of a million-file dump.)
    """
    outside = _STRING.sub("", text)
    if '"' in outside:
        return None  # ends inside a string
    stack: list[str] = []
    for bracket in _BRACKET.findall(outside):
        if bracket in _CLOSERS:
            stack.append(_CLOSERS[bracket])
        elif not stack or stack.pop() != bracket:
            return None
    if not stack:
        return None
    trimmed = text.rstrip()
    if trimmed.endswith(","):
        trimmed = trimmed[:-1].rstrip()
    return trimmed, "".join(reversed(stack))


def missing_keys(document: dict[str, Any]) -> list[str]:
    """Expected keys absent from a user document, as dotted paths (advocacy_programs[0].brand)."""
    missing = [key for key in USER_KEYS if key not in document]
    programs = document.get("advocacy_programs")
    for p_index, program in enumerate(programs if isinstance(programs, list) else []):
        if not isinstance(program, dict):
            missing.append(f"advocacy_programs[{p_index}]")
            continue
        missing += [f"advocacy_programs[{p_index}].{k}" for k in PROGRAM_KEYS if k not in program]
        tasks = program.get("tasks_completed")
        for t_index, task in enumerate(tasks if isinstance(tasks, list) else []):
            where = f"advocacy_programs[{p_index}].tasks_completed[{t_index}]"
            if not isinstance(task, dict):
                missing.append(where)
                continue
            missing += [f"{where}.{k}" for k in TASK_KEYS if k not in task]
    return missing


def _diff(original: str, repaired: Any) -> str:
    after = json.dumps(repaired, indent=4, ensure_ascii=False).splitlines()
    lines = difflib.unified_diff(original.splitlines(), after, "original", "repaired", lineterm="")
    text = "\n".join(lines)
    return text if len(text) <= MAX_DIFF_CHARS else text[:MAX_DIFF_CHARS] + "\n... (diff cut)"


def _close(text: str) -> tuple[dict[str, Any], str, str] | None:
    """Parse `text` closed by its missing brackets: (object, trimmed text, closers) or None."""
    closing = closing_suffix(text)
    if closing is None:
        return None
    trimmed, closers = closing
    try:
        closed = orjson.loads(trimmed + closers)
    except orjson.JSONDecodeError:
        return None
    return (closed, trimmed, closers) if isinstance(closed, dict) else None


def _repair(data: bytes, error: str, policy: str) -> Parsed:
    """Closing a truncated file is tried first (exact and cheap: the real dumps' only defect);
    anything else goes to json-repair, whose result is a rewrite and is treated as such."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return quarantine("not-utf8", f"not UTF-8 text: {exc.reason} at byte {exc.start}",
                          parse_error=error)
    closed = _close(text)
    if closed is not None:
        document, trimmed, closers = closed
        absent = missing_keys(document)
        if absent:
            return quarantine("repair-incomplete", "closed file lacks " + ", ".join(absent[:8]),
                              parse_error=error)
        record = {"kind": "closed", "appended": closers, "removed": text[len(trimmed):]}
        return Parsed("repaired", (trimmed + closers).encode(), error, record)
    import json_repair  # lazy: only files that closing cannot fix pay for the import

    try:
        repaired, log = json_repair.repair_json(text, return_objects=True, logging=True)
    except RecursionError:
        return quarantine("unparseable", "nesting too deep to repair", parse_error=error)
    if not isinstance(repaired, dict) or not repaired:
        kind = type(repaired).__name__ if repaired not in ("", None) else "nothing"
        return quarantine("unrepairable", f"repair yields {kind}, not a user object", parse_error=error)
    absent = missing_keys(repaired)
    if absent:
        return quarantine("repair-incomplete", "repaired object lacks " + ", ".join(absent[:8]),
                          parse_error=error)
    record = {"kind": "rewritten", "log": log, "diff": _diff(text, repaired)}
    document = orjson.dumps(repaired, option=orjson.OPT_NON_STR_KEYS)
    if policy != "lenient":
        return quarantine("repair-rewrites-content",
                          "repair would change content, not only close it (DUEL_REPAIR=lenient loads it)",
                          parse_error=error, repair=record, document=document)
    return Parsed("repaired", document, error, record)


def parse_document(data: bytes, policy: str = "safe") -> Parsed:
    """Classify and parse one file's bytes (see module doc)."""
    if not data.strip():
        return quarantine("empty", "file is empty or whitespace only")
    bom = data.startswith(UTF8_BOM)
    body = data[len(UTF8_BOM):] if bom else data
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _repair(body, str(exc), policy)
    if not isinstance(obj, dict):
        return quarantine("not-an-object", f"top level is {type(obj).__name__}, not a user object")
    if b"\\u0000" in body and _NUL_ESCAPE.search(body):
        return quarantine("nul-character", "contains \\u0000, which Postgres jsonb cannot store")
    if bom:
        return Parsed("repaired", body, "UTF-8 byte order mark", {"kind": "bom-stripped"})
    return Parsed("clean", body)
