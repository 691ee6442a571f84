"""Parse one file's bytes into a user document, repairing only what can be repaired honestly.

The rule: parse with orjson; on failure, repair, and load the result only when the repair
provably changes no content. Each repair has a kind, recorded in `Parsed.repair`:
- `encoding`: the file is JSON once decoded: a UTF-8 byte order mark dropped, or UTF-16 with a
  byte order mark transcoded (`fixes`: `utf-8-bom`, `utf-16`);
- `lossless`: JSON but for syntax that holds no value: comments, trailing commas, single
  quotes, non-JSON whitespace (`fixes` lists them; `duel.lossless` repairs and proves it);
- `closed`: cut short, and exactly the original text with its missing closing brackets
  appended (the defect of the real dumps; done here, exactly and cheaply), every expected key
  present, no list closed; a file cut inside a string, right after a digit (perhaps inside a
  number) or inside a list (perhaps before more elements) is quarantined instead
  (`repair-incomplete`): that value cannot be known;
- `rewritten`: json-repair had to change or drop content. Never silent: under the default
  `safe` policy the file is quarantined with the proposed repair attached; under `lenient` it
  loads, flagged, with its diff recorded.
A file needing an encoding fix and another repair gets the other's kind, `fixes` naming both.

Hostile input never crashes the caller and never takes long. Whatever Postgres jsonb would
refuse is quarantined here, never sent to COPY, where it would fail the whole batch:
`\\u0000`, unpaired surrogates (`unpaired-surrogate` when the file is valid JSON otherwise:
not a syntax error, so not repaired), numbers beyond `numeric`, nesting deeper than
`jsonb.MAX_DEPTH` (`duel.jsonb`). Several JSON values in one file are quarantined whole (no user
is dropped silently); json-repair, which is quadratic on some inputs, only sees files up to
MAX_REWRITE_BYTES.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

from duel import jsonb, lossless
from duel.archives import MAGIC_BYTES, packed_kind

USER_KEYS = (
    "user_id",
    "name",
    "email",
    "instagram_handle",
    "tiktok_handle",
    "joined_at",
    "advocacy_programs",
)
USER_FIELDS = frozenset(USER_KEYS)
PROGRAM_KEYS = ("program_id", "brand", "tasks_completed", "total_sales_attributed")
TASK_KEYS = ("task_id", "platform", "post_url", "likes", "comments", "shares", "reach")

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
ENCODING_ERRORS = {"utf-8-bom": "UTF-8 byte order mark", "utf-16": "UTF-16 text"}
_CLOSERS = {"{": "}", "[": "]"}
# possessive: no backtracking, so an unclosed 64 MB string fails in linear time (not 30 s)
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_DIGITS = frozenset("0123456789")
_LAST_NUMBER = re.compile(r"-?[0-9][0-9.eE+-]*$")
MAX_DIFF_CHARS = 4000
# json-repair takes minutes on an unclosed 1 MB string; real user files are under 1 KB.
MAX_REWRITE_BYTES = 128 * 1024
# The lossless repair and its proof are linear, at about a microsecond a token: 0.5 s of CPU
# for 1 MiB (measured, best of 5), a thousand times a real user file.
MAX_LOSSLESS_BYTES = 1024 * 1024


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


class UnpairedSurrogate(ValueError):
    """Valid JSON whose string holds half of a UTF-16 surrogate pair (`\\ud83d` without its
    `\\ude00`: a character cut in two, often an emoji by a truncating export), which Postgres
    jsonb refuses. Not a syntax error: the file is quarantined as `unpaired-surrogate`, never
    sent to a repair, whose verdict would name what the repair did rather than this."""


def _loads_exact(data: bytes) -> Any:
    """The standard library's parse, for valid JSON that orjson refuses but jsonb stores exactly:
    numbers beyond a double's range (1e400). Raises UnpairedSurrogate for valid JSON holding an
    unpaired surrogate escape, ValueError for anything else invalid."""
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        value = json.loads(text, parse_int=str, parse_float=str, parse_constant=_refuse_constant)
        if _SURROGATE_ESCAPE.search(text):  # Python accepts unpaired surrogates; jsonb does not
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise ValueError("nesting too deep") from None
    except UnicodeEncodeError as exc:  # the first character UTF-8 cannot hold: a lone surrogate
        raise UnpairedSurrogate(
            f"a string holds \\u{ord(exc.object[exc.start]):04x}, half of a UTF-16 surrogate"
            " pair (a character cut in two), which Postgres jsonb cannot store"
        ) from None
    return value


def _loads(data: bytes) -> Any:
    """orjson's parse, else the exact one; ValueError when neither takes it."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _loads_exact(data)


def _accept(document: bytes, value: dict[str, Any], error: str, record: dict[str, Any]) -> Parsed:
    """A repaired document loads unless Postgres jsonb would refuse it."""
    refused = jsonb.refusal(document, value)
    if refused is not None:
        return quarantine(*refused, parse_error=error)
    return Parsed("repaired", document, error, record)


def _with_encoding(record: dict[str, Any], encoding: tuple[str, ...]) -> dict[str, Any]:
    """A repair record naming the encoding fixes the file also needed."""
    return (
        {**record, "fixes": sorted({*record.get("fixes", ()), *encoding})} if encoding else record
    )


class FileRepair(NamedTuple):
    """What a file of several users took to read as JSON, recorded on each user it holds."""

    error: str  # what the file's text gave the parser
    record: dict[str, Any]  # the repair record: kind `encoding` or `lossless`, and its fixes


def _encoding_repair(encoding: tuple[str, ...]) -> FileRepair | None:
    if not encoding:
        return None
    return FileRepair(ENCODING_ERRORS[encoding[0]], {"kind": "encoding", "fixes": list(encoding)})


def wrapped_users(value: dict[str, Any]) -> str | None:
    """What makes an object a list of users wrapped in an object (an API's export,
    `{"users": [{"user_id": ...}, ...]}`), as the quarantine detail that says so; None for a
    user. It is one: its only member, under a name that is no user field, holds a list whose
    first element is an object with a user field. `{"advocacy_programs": [...]}`, or a user
    whose one field is a list of objects under another name (`{"programs": [{"brand": ...}]}`),
    is a user with its fields missing. `duel.parse` splits a wrapper into its users as it splits
    a top-level array; it was loaded as one user with every field missing, its users in no
    table."""
    if len(value) != 1:
        return None
    ((name, inner),) = value.items()
    if name in USER_FIELDS or not isinstance(inner, list) or not inner:
        return None
    if not isinstance(inner[0], dict) or USER_FIELDS.isdisjoint(inner[0]):
        return None
    member = json.dumps(name, ensure_ascii=False)
    return f"top level is an object holding a list of users under {member}"


def _parse(body: bytes, policy: str, encoding: tuple[str, ...]) -> Parsed:
    """The verdict on decoded text; `encoding` names the fixes that decoded it."""
    by_orjson = True
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            value, by_orjson = _loads_exact(body), False
        except UnpairedSurrogate as unpaired:
            return quarantine("unpaired-surrogate", f"{unpaired} ({exc})", parse_error=str(exc))
        except ValueError:
            return _repair(body, str(exc), policy, encoding)
    if not isinstance(value, dict):
        return quarantine(
            "not-an-object", f"top level is {type(value).__name__}, not a user object"
        )
    if (wrapper := wrapped_users(value)) is not None:
        return quarantine("not-an-object", wrapper)
    refused = jsonb.refusal(body, value, by_orjson)
    if refused is not None:
        return quarantine(*refused)
    if (fix := _encoding_repair(encoding)) is not None:
        return Parsed("repaired", body, fix.error, fix.record)
    return Parsed("clean", body)


def _close(text: str) -> tuple[dict[str, Any], str, str] | None:
    """Parse `text` closed by its missing brackets: (object, trimmed text, closers) or None."""
    closing = closing_suffix(text)
    if closing is None:
        return None
    trimmed, closers = closing
    try:
        closed = _loads((trimmed + closers).encode())
    except ValueError:
        return None
    return (closed, trimmed, closers) if isinstance(closed, dict) else None


def _nests_too_deep(text: str) -> bool:
    """True when the brackets outside strings nest deeper than jsonb.MAX_DEPTH (for text no
    parser took, so an approximation: it does not know single quotes or comments)."""
    outside = _STRING.sub("", text)
    if outside.count("[") + outside.count("{") <= jsonb.MAX_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKET.finditer(outside):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > jsonb.MAX_DEPTH:
            return True
    return False


def _repair(data: bytes, error: str, policy: str, encoding: tuple[str, ...] = ()) -> Parsed:
    """Closing a truncated file is tried first (exact and cheap: the real dumps' only defect),
    then the lossless fixes; anything else goes to json-repair, whose result is a rewrite and is
    treated as such."""
    if b"\x00" in data:
        packed = packed_kind(data[:MAGIC_BYTES])
        return quarantine(
            "nul-byte",
            f"contains NUL bytes: {packed}, not JSON text"
            if packed is not None
            else "contains NUL bytes: binary, or UTF-16 without a byte order mark",
            parse_error=error,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        packed = packed_kind(data[:MAGIC_BYTES])
        return quarantine(
            "not-utf8",
            f"not UTF-8 text: {packed}"
            if packed is not None
            else f"not UTF-8 text: {exc.reason} at byte {exc.start}",
            parse_error=error,
        )
    closed = _close(text)
    if closed is not None:
        document, trimmed, closers = closed
        if text[-1:] in _DIGITS:
            # cut right after a digit, perhaps inside the number: `46` of 4603.56 (a number
            # followed by a comma or whitespace was whole)
            number = _LAST_NUMBER.search(text)
            return quarantine(
                "repair-incomplete",
                f"cut short inside a number ({number.group() if number else text[-1]}...): its"
                " value cannot be known",
                parse_error=error,
            )
        if "]" in closers:
            # a list cut short may have held more elements (programs, tasks): closing it would
            # load fewer than the file had, as if that were all
            return quarantine(
                "repair-incomplete",
                "cut short inside a list: how many elements it held cannot be known",
                parse_error=error,
            )
        absent = missing_keys(document)
        if absent:
            return quarantine(
                "repair-incomplete", "closed file lacks " + ", ".join(absent[:8]), parse_error=error
            )
        record = {"kind": "closed", "appended": closers, "removed": text[len(trimmed) :]}
        return _accept(
            (trimmed + closers).encode(), document, error, _with_encoding(record, encoding)
        )
    fixed = _lossless(text, error, encoding) if len(data) <= MAX_LOSSLESS_BYTES else None
    if fixed is not None:
        return fixed
    if _nests_too_deep(text):
        return quarantine(
            "too-deep",
            f"nested more than {jsonb.MAX_DEPTH} levels deep (the limit)",
            parse_error=error,
        )
    if _several_values(text):
        return quarantine(
            "several-documents",
            "a JSON value followed by more; one user object per file is expected",
            parse_error=error,
        )
    if len(data) > MAX_REWRITE_BYTES:
        limits = (
            f"the {MAX_REWRITE_BYTES}-byte limit for rewriting repairs"
            if len(data) <= MAX_LOSSLESS_BYTES
            else f"the {MAX_LOSSLESS_BYTES}-byte limit for repairs"
        )
        return quarantine(
            "too-large-to-repair", f"{len(data)} bytes is over {limits}", parse_error=error
        )
    try:
        return _rewrite(text, error, policy, encoding)
    except RecursionError:
        return quarantine(
            "too-deep", "nested too deep for the rewriting repair (json-repair)", parse_error=error
        )


def _lossless(text: str, error: str, encoding: tuple[str, ...]) -> Parsed | None:
    """The verdict when lossless fixes make the text JSON, proven to change no value; None when
    they do not (the file goes on to json-repair)."""
    repaired = lossless.repair(text)
    if repaired is None:
        return None
    fixed_text, fixes = repaired
    document = fixed_text.encode()
    try:
        value = _loads(document)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return quarantine(
            "not-an-object",
            f"top level is {type(value).__name__}, not a user object",
            parse_error=error,
        )
    if (wrapper := wrapped_users(value)) is not None:
        return quarantine("not-an-object", wrapper, parse_error=error)
    refused = jsonb.refusal(
        document, value
    )  # first: the proof's parser could not follow 1,000 levels
    if refused is not None:
        return quarantine(*refused, parse_error=error)
    try:
        if lossless.prove(text, fixed_text) != fixes:
            return None
    except lossless.NotLossless:
        return None
    return Parsed(
        "repaired", document, error, {"kind": "lossless", "fixes": sorted({*fixes, *encoding})}
    )


def _infinite(value: Any) -> bool:
    """Whether a parsed value holds an infinite float (walked level by level). NaN is not one:
    json-repair reads the bare token NaN, which stands for no value, as nan, written as null."""
    level = [value]
    while level:
        children: list[Any] = []
        for item in level:
            if isinstance(item, float) and math.isinf(item):
                return True
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
        level = children
    return False


def _rewrite(text: str, error: str, policy: str, encoding: tuple[str, ...]) -> Parsed:
    """The json-repair verdict on a file that closing could not fix."""
    import json_repair  # lazy: only files that closing cannot fix pay for the import

    repaired, log = json_repair.repair_json(text, return_objects=True, logging=True)
    if not isinstance(repaired, dict) or not repaired:
        kind = type(repaired).__name__ if repaired not in ("", None) else "nothing"
        return quarantine(
            "unrepairable", f"repair yields {kind}, not a user object", parse_error=error
        )
    absent = missing_keys(repaired)
    if absent:
        return quarantine(
            "repair-incomplete", "repaired object lacks " + ", ".join(absent[:8]), parse_error=error
        )
    if _infinite(repaired):  # 1e400 read as infinity: written out, it would be null (missing)
        return quarantine(
            "unrepairable",
            "repair reads a number beyond a double (as infinity), which it cannot write back",
            parse_error=error,
        )
    try:
        document = orjson.dumps(repaired, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:  # an unpaired surrogate, or deeper than orjson writes
        return quarantine(
            "unrepairable",
            f"repair yields an object Postgres cannot store ({exc})",
            parse_error=error,
        )
    refused = jsonb.refusal(
        document, repaired
    )  # the proposed document is stored even when quarantined
    if refused is not None:
        return quarantine(*refused, parse_error=error)
    record = _with_encoding(
        {"kind": "rewritten", "log": _printable(log), "diff": _printable(_diff(text, repaired))},
        encoding,
    )
    if policy != "lenient":
        return quarantine(
            "repair-rewrites-content",
            "repair would change content, not only close it (DUEL_REPAIR=lenient loads it)",
            parse_error=error,
            repair=record,
            document=document,
        )
    return Parsed("repaired", document, error, record)


def decoded(data: bytes) -> tuple[bytes, tuple[str, ...]] | Parsed:
    """A file's UTF-8 text and the encoding fixes that made it so (a UTF-8 byte order mark
    dropped; UTF-16 with a byte order mark, which is unambiguous, transcoded), or the verdict
    on a file that holds no text to parse."""
    encoding: tuple[str, ...] = ()
    if data.startswith(UTF16_BOMS):
        try:
            text = data.decode("utf-16")  # the byte order mark picks the byte order and is dropped
        except UnicodeDecodeError as exc:
            return quarantine(
                "not-utf8", f"UTF-16 byte order mark, but not UTF-16 text: {exc.reason}"
            )
        body, encoding = text.encode("utf-8"), ("utf-16",)
    elif data.startswith(UTF8_BOM):
        body, encoding = data[len(UTF8_BOM) :], ("utf-8-bom",)
    else:
        body = data
    if not body or body.isspace():  # (not strip(): that copies every file)
        return quarantine("empty", "file is empty or whitespace only")
    return body, encoding


def parse_document(data: bytes, policy: str = "safe") -> Parsed:
    """Classify and parse one file's bytes (see module doc)."""
    text = decoded(data)
    if isinstance(text, Parsed):
        return text
    return _parse(text[0], policy, text[1])


def array_texts(data: bytes, verdict: Parsed) -> Iterator[tuple[bytes, FileRepair | None]]:
    """The texts in which to look for a JSON array of users (`duel.parse` splits it into its
    users, each judged on its own), with what each took: the file decoded, then, when the
    file's verdict (`parse_document`) says the lossless fixes made JSON of it that is not one
    user, that JSON (proven to change no value). A generator: the second is made only when the
    first does not split."""
    text = decoded(data)
    if isinstance(text, Parsed):
        return
    body, encoding = text
    yield body, _encoding_repair(encoding)
    if verdict.reason != "not-an-object" or verdict.parse_error is None:
        return  # JSON as it is, or not JSON the lossless fixes could make
    original = body.decode("utf-8")  # they did: it is UTF-8
    repaired = lossless.repair(original)
    if repaired is None:
        return
    fixed, fixes = repaired
    try:
        if lossless.prove(original, fixed) != fixes:
            return
    except (lossless.NotLossless, ValueError, RecursionError):
        return
    record = {"kind": "lossless", "fixes": sorted({*fixes, *encoding})}
    yield fixed.encode(), FileRepair(verdict.parse_error, record)


def with_file_repair(parsed: Parsed, fix: FileRepair | None) -> Parsed:
    """A user's verdict with the repair its file took to read (`array_texts`): a clean user is
    repaired by it; a repaired one keeps its own kind, `fixes` naming the file's too (as a file
    needing an encoding fix and another repair does); a quarantined one is as it was."""
    if fix is None or parsed.status == "quarantined":
        return parsed
    if parsed.status == "clean" or parsed.repair is None:
        return parsed._replace(status="repaired", parse_error=fix.error, repair=fix.record)
    return parsed._replace(repair=_with_encoding(parsed.repair, tuple(fix.record["fixes"])))
