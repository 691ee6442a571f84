"""Parse one file's bytes into a user document, repairing only what can be repaired honestly.

The rule: parse with orjson; on failure, repair, and accept the result only if it is a user
object with the expected keys. A repair is classed `closed` when the document is exactly the
original text with its missing closing brackets appended (the defect of the real dumps; done
here, exactly and cheaply), and `rewritten` when json-repair had to change or drop content
(anything closing cannot fix goes to json-repair). A rewritten
repair never passes silently: under the default `safe` policy the file is quarantined with the
proposed repair attached; under `lenient` it loads, flagged, with its diff recorded.

Hostile input never crashes the caller and never takes long: a document Postgres jsonb would
refuse (`\\u0000`, unpaired surrogates) is quarantined rather than loaded; several JSON values in
one file are quarantined whole (no user is dropped silently); UTF-16 with a byte order mark is
transcoded and loaded (flagged); json-repair, which is quadratic on some inputs, only sees files
up to MAX_REWRITE_BYTES.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, NamedTuple

import orjson

USER_KEYS = ("user_id", "name", "email", "instagram_handle", "tiktok_handle", "joined_at",
             "advocacy_programs")
PROGRAM_KEYS = ("program_id", "brand", "tasks_completed", "total_sales_attributed")
TASK_KEYS = ("task_id", "platform", "post_url", "likes", "comments", "shares", "reach")

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
NUL_DETAIL = "contains \\u0000, which Postgres jsonb cannot store"
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_CLOSERS = {"{": "}", "[": "]"}
# possessive: no backtracking, so an unclosed 64 MB string fails in linear time (not 30 s)
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
MAX_DIFF_CHARS = 4000
# json-repair takes minutes on an unclosed 1 MB string; real user files are under 1 KB.
MAX_REWRITE_BYTES = 128 * 1024


class Parsed(NamedTuple):  # a tuple, not a dataclass: built once per file on the hot path
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


def _printable(value: Any) -> Any:
    """`value` with its strings made storable in jsonb: NUL and unpaired surrogates escaped.
    For the repair record (diff, log), which quotes the broken input; the bytes stay intact."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


def _several_values(text: str) -> bool:
    """True when the text is one complete JSON value followed by another object or array."""
    start = len(text) - len(text.lstrip())
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return False
    return text[end:].lstrip()[:1] in ("{", "[")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads_exact(data: bytes) -> Any:
    """The standard library's parse, for valid JSON that orjson refuses but jsonb stores exactly:
    numbers beyond a double's range (1e400). Raises ValueError for anything else invalid."""
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if _SURROGATE_ESCAPE.search(text):  # Python accepts unpaired surrogates; jsonb does not
        raise ValueError("surrogate escape")
    try:
        return json.loads(text, parse_int=str, parse_float=str, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nesting too deep") from None


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
    if b"\x00" in data:
        return quarantine("nul-byte", "contains NUL bytes: binary, or UTF-16 without a byte order mark",
                          parse_error=error)
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
        closed_text = (trimmed + closers).encode()
        if _NUL_ESCAPE.search(closed_text):
            return quarantine("nul-character", NUL_DETAIL, parse_error=error)
        record = {"kind": "closed", "appended": closers, "removed": text[len(trimmed):]}
        return Parsed("repaired", closed_text, error, record)
    if _several_values(text):
        return quarantine("several-documents", "a JSON value followed by more; one user object per "
                          "file is expected", parse_error=error)
    if len(data) > MAX_REWRITE_BYTES:
        return quarantine("too-large-to-repair", f"{len(data)} bytes is over the {MAX_REWRITE_BYTES}-byte "
                          "limit for rewriting repairs", parse_error=error)
    try:
        return _rewrite(text, error, policy)
    except RecursionError:
        return quarantine("unparseable", "nesting too deep to repair", parse_error=error)


def _rewrite(text: str, error: str, policy: str) -> Parsed:
    """The json-repair verdict on a file that closing could not fix."""
    import json_repair  # lazy: only files that closing cannot fix pay for the import

    repaired, log = json_repair.repair_json(text, return_objects=True, logging=True)
    if not isinstance(repaired, dict) or not repaired:
        kind = type(repaired).__name__ if repaired not in ("", None) else "nothing"
        return quarantine("unrepairable", f"repair yields {kind}, not a user object", parse_error=error)
    absent = missing_keys(repaired)
    if absent:
        return quarantine("repair-incomplete", "repaired object lacks " + ", ".join(absent[:8]),
                          parse_error=error)
    try:
        document = orjson.dumps(repaired, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:  # an unpaired surrogate, or deeper than orjson writes
        return quarantine("unrepairable", f"repair yields an object Postgres cannot store ({exc})",
                          parse_error=error)
    if _NUL_ESCAPE.search(document):
        return quarantine("nul-character", NUL_DETAIL, parse_error=error)
    record = {"kind": "rewritten", "log": _printable(log), "diff": _printable(_diff(text, repaired))}
    if policy != "lenient":
        return quarantine("repair-rewrites-content",
                          "repair would change content, not only close it (DUEL_REPAIR=lenient loads it)",
                          parse_error=error, repair=record, document=document)
    return Parsed("repaired", document, error, record)


def _from_utf16(data: bytes, policy: str) -> Parsed:
    """A file with a UTF-16 byte order mark: unambiguous, so transcode it and judge the text."""
    try:
        text = data.decode("utf-16")  # the byte order mark picks the byte order and is dropped
    except UnicodeDecodeError as exc:
        return quarantine("not-utf8", f"UTF-16 byte order mark, but not UTF-16 text: {exc.reason}")
    inner = parse_document(text.encode("utf-8"), policy)
    if inner.status == "clean":
        return Parsed("repaired", inner.document, "UTF-16 text", {"kind": "transcoded", "from": "utf-16"})
    if inner.status == "repaired":
        return inner._replace(repair={**(inner.repair or {}), "transcoded_from": "utf-16"})
    return inner


def parse_document(data: bytes, policy: str = "safe") -> Parsed:
    """Classify and parse one file's bytes (see module doc)."""
    if not data or data.isspace():  # (not strip(): that copies every file)
        return quarantine("empty", "file is empty or whitespace only")
    if data.startswith(UTF16_BOMS):
        return _from_utf16(data, policy)
    bom = data.startswith(UTF8_BOM)
    body = data[len(UTF8_BOM):] if bom else data
    if bom and (not body or body.isspace()):
        return quarantine("empty", "file is empty or whitespace only")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            obj = _loads_exact(body)
        except ValueError:
            return _repair(body, str(exc), policy)
    if not isinstance(obj, dict):
        return quarantine("not-an-object", f"top level is {type(obj).__name__}, not a user object")
    if b"\\u0000" in body and _NUL_ESCAPE.search(body):
        return quarantine("nul-character", NUL_DETAIL)
    if bom:
        return Parsed("repaired", body, "UTF-8 byte order mark", {"kind": "bom-stripped"})
    return Parsed("clean", body)
