"""Lossless repair: make JSON of text that is JSON but for syntax, and prove no value changed.

The fixes, each one that changes no key and no value:
- `comment`: `// ...` and `# ...` to the end of the line, `/* ... */`; removed.
- `trailing-comma`: a comma after the last element of an array or object; removed.
- `single-quotes`: a 'single-quoted' key or string becomes "double-quoted" (`\\'` unescaped,
  `"` escaped; every other escape kept as written, so the parser checks it).
- `whitespace`: whitespace JSON does not allow (form feed, vertical tab, no-break and other
  Unicode spaces, a byte order mark inside the text); replaced by a space.
Everything else is copied as written. Anything that would need more (a missing comma or quote,
an unquoted word, `NaN`, an empty element `[1,,2]`, a comma that follows nothing `[,]`) is not
lossless: `repair()` returns None and the file goes on to the rewriting repair.

The proof (`prove()`), strict and independent of how the repair built its text: the repaired
text is parsed by Python's json (every key kept, in order, duplicates too, numbers as their
text) and turned back into its sequence of tokens; the original's tokens, minus the removed
comments, trailing commas and whitespace and with single-quoted strings decoded, must be
exactly that sequence: the same keys, strings (by decoded value), numbers (by text), literals,
brackets, colons and commas, in the same order. Equal token sequences are the same JSON value,
so the repaired document holds every key and scalar of the original, in order, and nothing else.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(
    r"""
    [ \t\n\r]++                                                   # JSON whitespace
  | "(?:[^"\\]++|\\.)*+"                                          # string
  | '(?:[^'\\]++|\\.)*+'                                          # single-quoted string
  | -?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][-+]?[0-9]++)?       # number
  | true | false | null
  | [{}\[\]:,]
  | //[^\n\r]*+ | \#[^\n\r]*+ | /\*(?:[^*]++|\*(?!/))*+\*/        # comments
  | [\f\v\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]++   # other whitespace
""",
    re.VERBOSE | re.DOTALL,
)
_SQ_ESCAPE = re.compile(r"""\\(.)|(")""", re.DOTALL)
# Each token as one character, so that finding what to fix is a regex over a short string:
# whitespace " ", comment "c", other whitespace "w", string "s", single-quoted string "q",
# number "n", literal "l", and punctuation as itself.
_CODE_OF_FIRST = {
    **dict.fromkeys(" \t\n\r", " "),
    '"': "s",
    "'": "q",
    "/": "c",
    "#": "c",
    **{char: char for char in "{}[]:,"},
    **dict.fromkeys("-0123456789", "n"),
    **dict.fromkeys("tfn", "l"),
}
_SYNTAX = re.compile(r"[cwq]")  # a comment, other whitespace, a single-quoted string
_TRAILING_COMMA = re.compile(
    r"[sqnl\]}][ cw]*+(,)(?=[ cw]*+[\]}])"
)  # after a value, before a closer
_FIX_OF_CODE = {"c": "comment", "w": "whitespace", "q": "single-quotes", ",": "trailing-comma"}
OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY = ("{", "{"), ("}", "}"), ("[", "["), ("]", "]")
COLON, COMMA = (":", ":"), (",", ",")


class NotLossless(ValueError):
    """The repaired text is not the original's content with only syntax changed."""


def tokens(text: str) -> list[str] | None:
    """The text cut into tokens (whitespace and comments included), or None if some character
    belongs to no token (an unquoted word, an unterminated string or comment...)."""
    found = _TOKEN.findall(text)
    return found if sum(map(len, found)) == len(text) else None


def _codes(found: list[str]) -> str:
    return "".join([_CODE_OF_FIRST.get(token[0], "w") for token in found])


def _fixes(codes: str) -> dict[int, str]:
    """The tokens a lossless repair changes: their index -> what they are (a code)."""
    fixes = {match.start(): match.group() for match in _SYNTAX.finditer(codes)}
    fixes.update((match.start(1), ",") for match in _TRAILING_COMMA.finditer(codes))
    return fixes


def _requote(match: re.Match[str]) -> str:
    if match.group(2):
        return '\\"'  # a bare " inside 'single quotes'
    return "'" if match.group(1) == "'" else match.group()


def _double_quoted(token: str) -> str:
    """A single-quoted string token as a double-quoted one with the same value."""
    return '"' + _SQ_ESCAPE.sub(_requote, token[1:-1]) + '"'


def repair(text: str) -> tuple[str, list[str]] | None:
    """(repaired text, sorted fixes) when only lossless fixes are needed, else None. The caller
    still parses the result (it may not be JSON even so) and proves it with `prove()`."""
    found = tokens(text)
    if found is None:
        return None
    fixes = _fixes(_codes(found))
    if not fixes:
        return None
    out = found[:]  # every other token is kept as written
    for index, code in fixes.items():
        token = found[index]
        out[index] = (
            _double_quoted(token)
            if code == "q"
            else " "
            if code == "w" or token.startswith("/*")
            else ""
        )
    return "".join(out), sorted({_FIX_OF_CODE[code] for code in fixes.values()})


class _Number(str):
    """A number's text, told apart from a string by its type."""


class _Object(list[Any]):
    """An object's (key, value) pairs, in order, duplicates kept."""


def _refuse(name: str) -> Any:
    raise NotLossless(f"{name} is not JSON")


def _events(value: Any) -> list[tuple[str, str]]:
    """The token sequence of a parsed value (iterative: depth is checked by the caller)."""
    out: list[tuple[str, str]] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, tuple):
            out.append(item)
        elif isinstance(item, (_Object, list)):
            is_object = isinstance(item, _Object)
            out.append(OPEN_OBJECT if is_object else OPEN_ARRAY)
            sequence: list[Any] = []
            for index, element in enumerate(item):
                if index:
                    sequence.append(COMMA)
                sequence += [("s", element[0]), COLON, element[1]] if is_object else [element]
            todo.append(CLOSE_OBJECT if is_object else CLOSE_ARRAY)
            todo.extend(reversed(sequence))
        elif isinstance(item, _Number):
            out.append(("n", str(item)))
        elif isinstance(item, str):
            out.append(("s", item))
        else:
            out.append(("l", json.dumps(item)))  # true, false, null
    return out


def _original_events(found: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The original's token sequence without what the fixes remove, and the fixes it needs.
    A string is its value (without a backslash, its text is its value); any other token is
    itself, tagged with its code."""
    codes = _codes(found)
    fixes = _fixes(codes)
    removed = {index for index, code in fixes.items() if code != "q"}
    events = [
        ("s", token[1:-1] if "\\" not in token else json.loads(token))
        if code == "s"
        else ("s", json.loads(_double_quoted(token)))
        if code == "q"
        else (code, token)
        for index, (token, code) in enumerate(zip(found, codes, strict=True))
        if code != " " and index not in removed
    ]
    return events, sorted({_FIX_OF_CODE[code] for code in fixes.values()})


def prove(original: str, repaired: str) -> list[str]:
    """The fixes that turn `original` into `repaired`, or NotLossless if any key or value differs
    (see the module doc for what is compared)."""
    found = tokens(original)
    if found is None:
        raise NotLossless(
            "the original has characters that are no JSON token, comment or whitespace"
        )
    try:
        value = json.loads(
            repaired,
            object_pairs_hook=_Object,
            parse_float=_Number,
            parse_int=_Number,
            parse_constant=_refuse,
        )
        before, fixes = _original_events(found)
    except (ValueError, RecursionError) as exc:
        raise NotLossless(f"not JSON: {exc}") from None
    after = _events(value)
    if before != after:
        at = next(
            # the first difference; else the shorter one ended
            (i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
            min(len(before), len(after)),
        )
        raise NotLossless(
            f"token {at} differs: {before[at : at + 1]} in the original, "
            f"{after[at : at + 1]} repaired"
        )
    return fixes
