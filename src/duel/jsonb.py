"""What a Postgres `jsonb` column refuses, found in a document's text before it reaches COPY.

A document that parses as JSON can still be refused by the database, and a refusal fails the
whole batch. Found here, it is quarantined alone:

- a number beyond `numeric` (jsonb stores every number as numeric): at most 131072 digits
  before the decimal point (weight), 16383 after it (display scale: the fraction's digits minus
  the exponent, trailing zeros included, so `0e-20000` and `1.00e-16383` are refused), and an
  exponent of at most 1073741823 even for zero. Checked on the number's text: orjson reads
  `1e-20000` as 0.0, and only the text says what Postgres will see;
- nesting deeper than MAX_DEPTH (see its comment for why that number);
- `\\u0000` (jsonb text cannot hold NUL).

And what jsonb makes of a document (`content`): two texts whose `jsonb` values Postgres writes
alike are the same content, what the loader compares a document in other bytes than its current
version's by (duel.load, `same-content`): Postgres compares them itself, the Spark ingest with
`content`.

Unpaired surrogate escapes, the last thing jsonb refuses, never get here: orjson refuses them,
and `repair._loads_exact` quarantines a document that is valid JSON but for one as
`unpaired-surrogate`.

The checks run on every file of a dump, so each starts with a scan that is nearly free when
there is nothing to find.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

# Nesting depth: containers inside containers, so `{}` is 1 and a user document is 5. Every
# parser on the way accepts 512 with room to spare: orjson refuses beyond 1024; Python's json
# (used for numbers beyond a double, and to prove lossless repairs) recurses and stops near
# 990 from a shallow stack; Postgres' jsonb parser recurses within max_stack_depth: with the
# default 2 MB it takes 14532 nested objects, with the smallest allowed setting (100 kB) 679.
MAX_DEPTH = 512

NUMERIC_MAX_INTEGER_DIGITS = 131072  # digits before the decimal point (NBASE weight <= 32767)
NUMERIC_MAX_SCALE = 16383  # digits after it, as written (the dscale field's 14 bits)
NUMERIC_MAX_EXPONENT = 1073741823  # numeric_in refuses a larger exponent (INT32_MAX / 2)
NUMERIC_LIMITS = (
    f"Postgres numeric holds at most {NUMERIC_MAX_INTEGER_DIGITS} digits before the "
    f"decimal point and {NUMERIC_MAX_SCALE} after"
)

NUL_DETAIL = "contains \\u0000, which Postgres jsonb cannot store"
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

# The scan before the precise check, for documents orjson parsed (nearly every one): orjson
# refuses a number beyond a double (1e400, or 400 digits), so what it took can be out of range
# only by a fraction of 16384 digits or more, an exponent below -9999 (`e-` and five digits) or
# a zero with an exponent over 1073741823 (`0e` and ten digits). A pattern starting with two
# literal bytes is searched for those bytes first, ten times faster than one starting with
# `[eE]`, so lowercase `e` has two, and the uppercase one runs only if the file has an `E`
# (memchr: nearly free; 14 % of real files do, in names). Without a run of LONG_RUN digits, a
# fraction has fewer, and with an exponent over -10000 its scale is at most
# (LONG_RUN - 1) + 9999 <= 16383. Runs are found by mapping digits to `0` and everything else
# to a space, then searching for LONG_RUN zeros: linear, where a regex is quadratic in a long
# run or (with a lookbehind) 40 ns a byte.
LONG_RUN = 6000
_NEGATIVE_EXPONENT, _ZERO_EXPONENT = re.compile(rb"e-[0-9]{5}"), re.compile(rb"0e\+?[0-9]{10}")
_EXPONENT_UPPER = re.compile(rb"E(?:-[0-9]{5}|\+?[0-9]{10})")  # `E` is rare: one scan, few tries
_BACKSLASH, _UPPER_E = ord("\\"), ord("E")
_DIGITS_ONLY = bytes(
    48 if 48 <= byte <= 57 else 32 for byte in range(256)
)  # digits to "0", the rest " "
_RUN = b"0" * LONG_RUN
# The precise check, on the text outside strings (there, `e` is in numbers, `true` and `false`).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_LONG_EXPONENT = re.compile(rb"[eE]([-+]?[0-9]{5,}+)")
_LONG_EXPONENT_NUMBER = re.compile(rb"(?<![0-9.])(-?[0-9]++(?:\.[0-9]++)?[eE]([-+]?[0-9]{5,}+))")
# With no run of LONG_RUN digits, every number with an exponent in this range fits: the scale is
# at most (LONG_RUN - 1) + 10383 = 16382, the first digit's power below 131072.
_SAFE_EXPONENTS = range(-(NUMERIC_MAX_SCALE - LONG_RUN), NUMERIC_MAX_INTEGER_DIGITS - LONG_RUN)
_NUMBER = re.compile(rb"-?([0-9]++)(?:\.([0-9]++))?(?:[eE]([-+]?[0-9]++))?")
_NUMBER_TOKEN = re.compile(rb"(?<![0-9.eE+-])(-?[0-9]++(?:\.[0-9]++)?(?:[eE][-+]?[0-9]++)?)")
_NUMBER_CHARS = frozenset(b"0123456789.eE+-")
# orjson writes at most this deep (pinned by a test): a document it writes needs no walk
ORJSON_WRITE_DEPTH = 254


def _long_runs(text: bytes) -> list[int]:
    """Where each run of LONG_RUN digits or more starts."""
    digits = text.translate(_DIGITS_ONLY)
    starts, at = [], digits.find(_RUN)
    while at >= 0:
        starts.append(at)
        end = digits.find(b" ", at)
        at = digits.find(_RUN, end) if end >= 0 else -1
    return starts


def numeric_fits(number: bytes) -> bool:
    """True when Postgres numeric (so jsonb) accepts the JSON number text `number`."""
    match = _NUMBER.fullmatch(number)
    if match is None:
        raise ValueError(f"not a JSON number: {number[:40]!r}")
    integer, fraction, exponent_text = match.group(1), match.group(2) or b"", match.group(3)
    exponent = 0
    if exponent_text:
        magnitude = exponent_text.lstrip(b"+-").lstrip(b"0") or b"0"
        if len(magnitude) > 10 or int(magnitude) > NUMERIC_MAX_EXPONENT:
            return False
        exponent = -int(magnitude) if exponent_text.startswith(b"-") else int(magnitude)
    if len(fraction) - exponent > NUMERIC_MAX_SCALE:
        return False
    digits = integer + fraction
    leading_zeros = len(digits) - len(digits.lstrip(b"0"))
    if leading_zeros == len(digits):
        return True  # zero: its weight is 0 whatever the exponent
    power = len(integer) - 1 - leading_zeros + exponent  # of the first nonzero digit
    return power < NUMERIC_MAX_INTEGER_DIGITS


def number_out_of_range(document: bytes) -> bytes | None:
    """The first number of a JSON document that Postgres numeric cannot hold, or None. Linear:
    only numbers with a run of LONG_RUN digits or an exponent outside _SAFE_EXPONENTS are
    checked, each distinct text once."""
    outside = _STRING.sub(b'""', document)  # strings hold no numbers
    unsafe = {
        exponent
        for exponent in set(_LONG_EXPONENT.findall(outside))
        if len(exponent) > 7 or int(exponent) not in _SAFE_EXPONENTS
    }
    runs = _long_runs(outside) if len(outside) >= LONG_RUN else []
    if not (unsafe or runs):
        return None
    at_runs = []
    for start in runs:
        while start and outside[start - 1] in _NUMBER_CHARS:
            start -= 1
        if number := _NUMBER.match(outside, start):  # a run of digits starts a number
            at_runs.append((start, number.group()))
    candidates = {number for _, number in at_runs}
    if unsafe:
        candidates.update(
            number
            for number, exponent in _LONG_EXPONENT_NUMBER.findall(outside)
            if exponent in unsafe
        )
    refused = {number for number in candidates if not numeric_fits(number)}
    if not refused:
        return None
    return next(
        match.group(1) for match in _NUMBER_TOKEN.finditer(outside) if match.group(1) in refused
    )


def describe_number(number: bytes) -> str:
    """A one-line quarantine detail naming the number, cut if long."""
    shown = number[:40].decode("ascii")
    if len(number) > 40:
        shown += f"... ({len(number)} characters)"
    return f"number {shown} is out of range: {NUMERIC_LIMITS}"


def loads(document: bytes) -> Any:
    """A loaded document's value (its text is valid JSON): orjson's parse, else the standard
    library's for what orjson refuses and jsonb stores (a number beyond a double, `1e400`, read
    as inf). Integers beyond 64 bits, which orjson reads as floats, are exact only in the
    second: `exact_loads`."""
    try:
        return orjson.loads(document)
    except orjson.JSONDecodeError:
        return exact_loads(document)


def exact_loads(document: bytes) -> Any:
    """The standard library's parse of a loaded document: every integer exact at any length."""
    return json.loads(document)


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when a parsed document nests containers more than `limit` deep. orjson writes only
    what is at most ORJSON_WRITE_DEPTH deep, in C; deeper ones are walked level by level (not
    recursively: parsers took it, and it may be deeper than Python's recursion limit)."""
    if limit >= ORJSON_WRITE_DEPTH:
        try:
            orjson.dumps(value)
            return False
        except orjson.JSONEncodeError:
            pass
    level, depth = [value], 1
    while level:
        if depth > limit:
            return True
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        depth += 1
    return False


def refusal(document: bytes, parsed: Any, parsed_by_orjson: bool = False) -> tuple[str, str] | None:
    """(reason, detail) when jsonb would refuse `document` (already parsed as `parsed`), else None.
    `parsed_by_orjson`: a quicker scan for numbers suffices (see above). This runs on every file,
    so each check starts with a test that is nearly free when there is nothing to find (`int in
    bytes` is a memchr; `b"E" in bytes` costs thirty times more)."""
    if _BACKSLASH in document and NUL_ESCAPE.search(document):
        return "nul-character", NUL_DETAIL
    if (
        len(document) > 2 * MAX_DEPTH
        and document.count(b"[") + document.count(b"{") > MAX_DEPTH
        and deeper_than(parsed)
    ):
        return "too-deep", f"nested more than {MAX_DEPTH} levels deep (the limit)"
    if parsed_by_orjson and not (
        _NEGATIVE_EXPONENT.search(document)
        or _ZERO_EXPONENT.search(document)
        or (_UPPER_E in document and _EXPONENT_UPPER.search(document))
        or (len(document) >= LONG_RUN and _RUN in document.translate(_DIGITS_ONLY))
    ):
        return None
    number = number_out_of_range(document)
    if number is not None:
        return "number-out-of-range", describe_number(number)
    return None


def content(document: bytes | str) -> str:
    """A text of `document` (valid JSON, as loaded) that is the same for two documents exactly
    when Postgres writes their `jsonb` values alike (`cast(document as jsonb)::text`): an object's
    keys sorted, the last of a repeated key kept, strings by their value (escapes, and the
    whitespace between tokens, do not reach it), and a number as `numeric` writes it: its value
    with as many decimals as it was written with, the exponent applied (`1.50` is `1.50`, not
    `1.5`; `1.5e1` is `15`, `1e2` is `100`, `-0.0` is `0.0`). tests/test_jsonb.py holds it to the
    server's text on random documents."""
    value = json.loads(document, parse_float=Decimal, parse_int=Decimal, parse_constant=_refuse)
    parts: list[str] = []
    _write(value, parts.append)
    return "".join(parts)


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON, and jsonb holds no such number")


def _write(value: Any, write: Any) -> None:
    """`value` as `content` writes it (depth: at most MAX_DEPTH, within Python's recursion)."""
    if isinstance(value, dict):
        write("{")
        for index, key in enumerate(sorted(value)):
            write("," if index else "")
            write(json.dumps(key))
            write(":")
            _write(value[key], write)
        write("}")
    elif isinstance(value, list):
        write("[")
        for index, item in enumerate(value):
            write("," if index else "")
            _write(item, write)
        write("]")
    elif isinstance(value, Decimal):
        write(format(value.copy_abs() if value.is_zero() else value, "f"))
    else:  # a string, true, false, null
        write(json.dumps(value))
