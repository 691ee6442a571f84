"""duel.repair: each verdict a file can get, with its exact record."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from duel.repair import MAX_LOSSLESS_BYTES, Parsed, closing_suffix, missing_keys, parse_document

USER = {
    "user_id": None,
    "name": "Ann",
    "email": "a@b.co",
    "instagram_handle": None,
    "tiktok_handle": "@ann",
    "joined_at": "2024-01-02T03:04:05.000Z",
    "advocacy_programs": [
        {
            "program_id": "",
            "brand": "Acme",
            "total_sales_attributed": 1.5,
            "tasks_completed": [
                {
                    "task_id": None,
                    "platform": "TikTok",
                    "post_url": "x",
                    "likes": 1,
                    "comments": 2,
                    "shares": 3,
                    "reach": 4,
                }
            ],
        }
    ],
}
TEXT = json.dumps(USER, indent=4)


def test_parse_document_clean_keeps_original_bytes() -> None:
    data = TEXT.encode()
    assert parse_document(data) == Parsed("clean", data)


def test_parse_document_closes_missing_final_brace() -> None:
    truncated = TEXT[:-1]  # the real dumps' defect: last `}` missing
    parsed = parse_document(truncated.encode())
    assert parsed.status == "repaired"
    assert parsed.repair == {"kind": "closed", "appended": "}", "removed": "\n"}
    assert json.loads(parsed.document) == USER
    assert parsed.parse_error == "unexpected end of data: line 26 column 1 (char 654)"


def test_parse_document_closes_dangling_comma_and_brackets() -> None:
    text = (
        '{"user_id": null, "name": "A", "email": null, "instagram_handle": null, "tiktok_handle": '
        "null,"
        ' "joined_at": null, "advocacy_programs": [],'
    )
    parsed = parse_document(text.encode())
    assert (parsed.status, parsed.repair) == (
        "repaired",
        {"kind": "closed", "appended": "}", "removed": ","},
    )


def test_parse_document_truncated_mid_record_is_quarantined() -> None:
    parsed = parse_document(TEXT[:120].rsplit(",", 1)[0].encode())
    assert (parsed.status, parsed.reason) == ("quarantined", "repair-incomplete")
    assert parsed.detail == "closed file lacks tiktok_handle, joined_at, advocacy_programs"


def test_parse_document_cut_after_a_digit_is_quarantined_not_closed() -> None:
    """Cut right after a digit, the number may have been longer (46 of 4603): closing the
    brackets would load a value nobody wrote. Cut after the whitespace that follows it, the
    number was whole and the file is closed."""
    text = json.dumps({**USER, "score": 4603}, indent=4)
    at = text.index("4603") + 2
    parsed = parse_document(text[:at].encode())
    assert (parsed.status, parsed.reason, parsed.detail, parsed.document) == (
        "quarantined",
        "repair-incomplete",
        "cut short inside a number (46...): its value cannot be known",
        None,
    )
    whole = parse_document(text[: at + 3].encode())  # "4603\n": the newline ends the number
    assert (whole.status, whole.repair) == (
        "repaired",
        {"kind": "closed", "appended": "}", "removed": "\n"},
    )
    assert json.loads(whole.document) == {**USER, "score": 4603}


@pytest.mark.parametrize("after", ['"advocacy_programs": [', '"reach": 4\n'])
def test_parse_document_cut_inside_a_list_is_quarantined_not_closed(after: str) -> None:
    """Cut inside a list (right after it opens, or after a whole task), more elements may have
    followed: closing it would load a user with fewer programs or tasks than the file had."""
    parsed = parse_document(TEXT[: TEXT.index(after) + len(after)].encode())
    assert (parsed.status, parsed.reason, parsed.detail) == (
        "quarantined",
        "repair-incomplete",
        "cut short inside a list: how many elements it held cannot be known",
    )


def test_parse_document_rewrite_is_quarantined_under_safe_policy() -> None:
    broken = TEXT.replace('"name": "Ann"', '"name": Ann')  # an unquoted word: its value is a guess
    parsed = parse_document(broken.encode())
    assert (parsed.status, parsed.reason) == ("quarantined", "repair-rewrites-content")
    assert parsed.repair is not None and parsed.repair["kind"] == "rewritten"
    assert json.loads(parsed.document) == USER


def test_parse_document_rewrite_loads_under_lenient_policy() -> None:
    broken = TEXT.replace('"name": "Ann"', '"name": Ann')
    parsed = parse_document(broken.encode(), policy="lenient")
    assert parsed.status == "repaired"
    assert json.loads(parsed.document) == USER
    assert (
        '-        "name"' not in parsed.repair["diff"]
        and '+    "name": "Ann",' in parsed.repair["diff"]
    )


def test_parse_document_rewrite_never_writes_a_number_beyond_a_double_as_null() -> None:
    # json-repair reads 1e400 as infinity, which orjson writes as null: the lenient load said
    # `missing` for a value the file holds; the repair is refused, the file quarantined
    broken = TEXT.replace('"name": "Ann"', '"name": Ann').replace('"reach": 4', '"reach": 1e400')
    assert '"reach": 1e400' in broken
    parsed = parse_document(broken.encode(), policy="lenient")
    assert (parsed.status, parsed.reason, parsed.detail) == (
        "quarantined",
        "unrepairable",
        "repair reads a number beyond a double (as infinity), which it cannot write back",
    )


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        (b"", "empty", "file is empty or whitespace only"),
        (b" \r\n\t ", "empty", "file is empty or whitespace only"),
        (b"null", "not-an-object", "top level is NoneType, not a user object"),
        (b"[1, 2]", "not-an-object", "top level is list, not a user object"),
        (b"hello there", "unrepairable", "repair yields nothing, not a user object"),
        (b'{"a": "\xe9t\xe9"', "not-utf8", "not UTF-8 text: invalid continuation byte at byte 7"),
        # packed data named .json says what it is, not what a UTF-8 decoder met
        (
            b"PK\x03\x04\x14\x00\x00\x00",
            "nul-byte",
            "contains NUL bytes: a zip archive, not JSON text",
        ),
        (b"\x1f\x8b\x08\x08\xff\xff", "not-utf8", "not UTF-8 text: gzip-compressed data"),
        (
            b"\xff\xfe\x00\x00binary",
            "nul-byte",
            "contains NUL bytes: binary, or UTF-16 without a byte order mark",
        ),
        (
            b'{"a": "x\\u0000y"}',
            "nul-character",
            "contains \\u0000, which Postgres jsonb cannot store",
        ),
    ],
)
def test_parse_document_quarantines_hopeless_input(data: bytes, reason: str, detail: str) -> None:
    parsed = parse_document(data)
    assert (parsed.status, parsed.reason, parsed.detail) == ("quarantined", reason, detail)


@pytest.mark.parametrize(
    ("data", "half", "where"),
    [
        # a whole user but for the emoji cut in two: before, "unrepairable" (a repair's verdict)
        (TEXT.replace('"Ann"', '"Ann \\ud83d"').encode(), "\\ud83d", "no low surrogate in string"),
        # a document lacking most keys: before, "repair-incomplete ... lacks user_id, ..."
        (b'{"email": "x@y.z", "name": "x\\udc00"}', "\\udc00", "invalid high surrogate in string"),
        # in a key, deep in a list, after a valid pair
        (b'{"\\ud800": 1}', "\\ud800", "no low surrogate in string"),
        (b'{"a": [{"b": ["\\ud83d\\ude00", "\\udbff"]}]}', "\\udbff", "no low surrogate in string"),
    ],
)
def test_parse_document_valid_json_with_half_a_surrogate_pair_is_quarantined_as_such(
    data: bytes, half: str, where: str
) -> None:
    parsed = parse_document(data)
    assert (parsed.status, parsed.reason, parsed.repair) == (
        "quarantined",
        "unpaired-surrogate",
        None,
    )
    assert parsed.detail is not None and parsed.detail.startswith(
        f"a string holds {half}, half of a UTF-16 surrogate pair (a character cut in two), which"
        f" Postgres jsonb cannot store ({where}: line "
    )


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "\\ud83d\\ude00"}',  # a pair: one character
        b'{"a": "\\\\ud800"}',  # an escaped backslash, then the text ud800
    ],
)
def test_parse_document_surrogate_pairs_and_escaped_backslashes_load(data: bytes) -> None:
    assert parse_document(data).status == "clean"


def test_parse_document_utf8_bom_is_an_encoding_fix() -> None:
    parsed = parse_document(b"\xef\xbb\xbf" + TEXT.encode())
    assert parsed == Parsed(
        "repaired",
        TEXT.encode(),
        "UTF-8 byte order mark",
        {"kind": "encoding", "fixes": ["utf-8-bom"]},
    )


def test_parse_document_utf16_is_an_encoding_fix() -> None:
    parsed = parse_document(TEXT.encode("utf-16"))
    assert parsed == Parsed(
        "repaired", TEXT.encode(), "UTF-16 text", {"kind": "encoding", "fixes": ["utf-16"]}
    )


LOSSLESS_DAMAGE = [
    # (what the file says instead of TEXT's, the fixes recorded)
    (('"advocacy_programs"', '// the programs\n    "advocacy_programs"'), ["comment"]),
    (('"advocacy_programs"', '# the programs\n    "advocacy_programs"'), ["comment"]),
    (('"email": "a@b.co"', '"email": /* checked */ "a@b.co"'), ["comment"]),
    (('"reach": 4', '"reach": 4,'), ["trailing-comma"]),
    (('"reach": 4\n', '"reach": 4,\n'), ["trailing-comma"]),
    (('"name": "Ann"', "'name': 'Ann'"), ["single-quotes"]),
    (('"post_url": "x"', "'post_url': 'say \"x\", it\\'s'"), ["single-quotes"]),
    (('"name": "Ann"', '"name":\u00a0\f"Ann"'), ["whitespace"]),
    (('"reach": 4', '"reach": 4, // "views": 5,'), ["comment", "trailing-comma"]),
]


@pytest.mark.parametrize(("change", "fixes"), LOSSLESS_DAMAGE)
def test_parse_document_lossless_repair_loads_the_same_content(
    change: tuple[str, str], fixes: list[str]
) -> None:
    parsed = parse_document(TEXT.replace(*change, 1).encode())
    expected = {
        **USER,
        "advocacy_programs": [
            {
                **USER["advocacy_programs"][0],
                "tasks_completed": [
                    {
                        **USER["advocacy_programs"][0]["tasks_completed"][0],
                        "post_url": 'say "x", it\'s' if "it" in change[1] else "x",
                    }
                ],
            }
        ],
    }
    assert (parsed.status, parsed.reason, parsed.repair) == (
        "repaired",
        None,
        {"kind": "lossless", "fixes": fixes},
    )
    assert json.loads(parsed.document) == expected


def test_parse_document_lossless_repair_with_bom_names_both() -> None:
    parsed = parse_document(b"\xef\xbb\xbf" + TEXT.replace('"reach": 4', '"reach": 4,').encode())
    assert (parsed.status, parsed.repair) == (
        "repaired",
        {"kind": "lossless", "fixes": ["trailing-comma", "utf-8-bom"]},
    )
    assert parsed.parse_error == "trailing comma is not allowed: line 21 column 31 (char 605)"


def test_parse_document_closed_with_bom_names_the_encoding_fix() -> None:
    parsed = parse_document(b"\xef\xbb\xbf" + TEXT[:-1].encode())
    assert (parsed.status, parsed.repair) == (
        "repaired",
        {"kind": "closed", "appended": "}", "removed": "\n", "fixes": ["utf-8-bom"]},
    )


@pytest.mark.parametrize(
    "change",
    [
        ('"name": "Ann",', '"name": "Ann"'),  # a missing comma: inserting one is a guess
        ('"name": "Ann"', '"name": "Ann",,'),  # an empty member
        ('"name": "Ann"', '"name": Ann'),  # an unquoted word
        ('"likes": 1', '"likes": NaN'),
        ('"likes": 1', '"likes": [,]'),  # a comma after nothing: in JavaScript, a hole
        ('"name": "Ann"', '"name" "Ann"'),  # a missing colon
    ],
)
def test_parse_document_content_changing_repair_is_not_lossless(change: tuple[str, str]) -> None:
    parsed = parse_document(TEXT.replace(*change, 1).encode())
    assert (parsed.status, parsed.reason, (parsed.repair or {}).get("kind")) == (
        "quarantined",
        "repair-rewrites-content",
        "rewritten",
    )


def test_closing_suffix_ignores_brackets_inside_strings() -> None:
    assert closing_suffix('{"a": ["x]}\\"", {"b": 1') == ('{"a": ["x]}\\"", {"b": 1', "}]}")
    assert closing_suffix('{"a": "unterminated') is None
    assert closing_suffix('{"a": 1}]') is None


def test_missing_keys_names_nested_paths() -> None:
    doc = {**USER, "advocacy_programs": [{"brand": "x", "tasks_completed": [{"likes": 1}, 5]}]}
    del doc["email"]
    assert missing_keys(doc) == [
        "email",
        "advocacy_programs[0].program_id",
        "advocacy_programs[0].total_sales_attributed",
        *[
            f"advocacy_programs[0].tasks_completed[0].{k}"
            for k in ("task_id", "platform", "post_url", "comments", "shares", "reach")
        ],
        "advocacy_programs[0].tasks_completed[1]",
    ]


def user_with(value: str) -> bytes:
    """A small user document holding `value` (JSON text) as a task's likes."""
    return TEXT.replace('"likes": 1', f'"likes": {value}', 1).encode()


@pytest.mark.parametrize(
    "number",
    [
        "1" * 131072,
        "-" + "9" * 131072,
        "1e131071",
        "9.99e131071",
        "1e-16383",
        "0." + "0" * 16383,
        "0e1073741823",
        "0e-16383",
        "1e400",
        "1e-400",
        "123456789012345678901234567890",
    ],
)
def test_parse_document_number_within_numeric_loads(number: str) -> None:
    data = user_with(number)
    assert parse_document(data) == Parsed("clean", data)


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("1" * 131073, "1" * 40 + "... (131073 characters)"),
        ("1e131072", "1e131072"),
        ("1E+131072", "1E+131072"),
        ("1e-16384", "1e-16384"),
        ("1e-20000", "1e-20000"),
        ("-1.5E-20000", "-1.5E-20000"),
        ("1.00e-16383", "1.00e-16383"),  # trailing zeros count: jsonb keeps the scale as written
        ("0e-20000", "0e-20000"),
        ("0e1073741824", "0e1073741824"),
        ("0." + "0" * 16384, "0." + "0" * 38 + "... (16386 characters)"),
    ],
)
def test_parse_document_number_beyond_numeric_is_quarantined(number: str, shown: str) -> None:
    parsed = parse_document(user_with(number))
    assert (parsed.status, parsed.reason, parsed.detail) == (
        "quarantined",
        "number-out-of-range",
        (
            f"number {shown} is out of range: Postgres numeric holds at most 131072 digits before "
            "the "
            "decimal point and 16383 after"
        ),
    )


def test_parse_document_number_text_inside_strings_is_not_a_number() -> None:
    data = TEXT.replace('"Ann"', '"1e-20000 ' + "7" * 7000 + '"').encode()
    assert parse_document(data) == Parsed("clean", data)


@pytest.mark.parametrize(
    ("data", "repair"),
    [
        (user_with("1e-20000")[:-2], None),  # cut short: closed, then refused
        (
            user_with("1e-20000").replace(b'"reach": 4', b'"reach": 4,'),
            None,
        ),  # lossless, then refused
    ],
)
def test_parse_document_repaired_number_beyond_numeric_is_quarantined(
    data: bytes, repair: None
) -> None:
    parsed = parse_document(data)
    assert (parsed.status, parsed.reason, parsed.repair) == (
        "quarantined",
        "number-out-of-range",
        repair,
    )


def nested_user(depth: int) -> bytes:
    """A user object nesting `depth` containers deep (the object itself is level 1)."""
    return (
        TEXT[:-2].encode() + b',\n    "deep": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"\n}"
    )


TOO_DEEP = "nested more than 512 levels deep (the limit)"


@pytest.mark.parametrize(
    ("variant", "change"),
    [
        ("clean", lambda data: data),
        (
            "exact",
            lambda data: data.replace(b'"likes": 1', b'"likes": 1e400'),
        ),  # orjson refuses: Python's json
        ("lossless", lambda data: data.replace(b'"reach": 4', b'"reach": 4,')),
        ("closed", lambda data: data[:-2]),
    ],
)
def test_parse_document_depth_limit_loads_and_one_more_is_too_deep(
    variant: str, change: Any
) -> None:
    at_limit, over = (
        parse_document(change(nested_user(512))),
        parse_document(change(nested_user(513))),
    )
    assert at_limit.status == ("clean" if variant in ("clean", "exact") else "repaired")
    assert json.loads(at_limit.document)["deep"] == json.loads(b"[" * 511 + b"]" * 511)
    assert (over.status, over.reason, over.detail) == ("quarantined", "too-deep", TOO_DEEP)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than orjson (1024) and Python's json (about 990)
        b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b",}",  # and a trailing comma
        b'{"user_id": ' + b"[" * 100_000,  # cut short
        b'{"a":' * 100_000,
    ],
)
def test_parse_document_far_too_deep_is_quarantined(data: bytes) -> None:
    parsed = parse_document(data)
    assert (parsed.status, parsed.reason, parsed.detail) == ("quarantined", "too-deep", TOO_DEEP)


def test_parse_document_lossless_repair_has_a_size_limit() -> None:
    """Up to MAX_LOSSLESS_BYTES (1 MiB) a lossless repair loads; one byte more and it is
    quarantined (the repair and its proof are linear, but a microsecond a token)."""
    base = TEXT.replace('"reach": 4', '"reach": 4,').replace(
        '"name": "Ann"', '"name": "Ann", "pad": ""'
    )
    at_limit = base.replace(
        '"pad": ""', '"pad": "' + "x" * (MAX_LOSSLESS_BYTES - len(base)) + '"'
    ).encode()
    parsed, over = (
        parse_document(at_limit),
        parse_document(at_limit.replace(b'"pad": "', b'"pad": "x')),
    )
    assert (len(at_limit), parsed.status, parsed.repair) == (
        MAX_LOSSLESS_BYTES,
        "repaired",
        {"kind": "lossless", "fixes": ["trailing-comma"]},
    )
    assert (over.status, over.reason, over.detail) == (
        "quarantined",
        "too-large-to-repair",
        "1048577 bytes is over the 1048576-byte limit for repairs",
    )


def test_parse_document_many_long_exponents_take_linear_time() -> None:
    """500,000 different numbers with five-digit exponents, each within numeric: checked in
    seconds (each distinct number once), not minutes; one past the limit is found and named."""
    numbers = b",".join(b"1.%de-10000" % i for i in range(500_000))
    started = time.monotonic()
    clean = parse_document(b'{"a": [' + numbers + b"]}")
    refused = parse_document(b'{"a": [' + numbers + b", 1.5e-16383]}")
    assert (clean.status, refused.reason, refused.detail) == (
        "clean",
        "number-out-of-range",
        (
            "number 1.5e-16383 is out of range: Postgres numeric holds at most 131072 digits "
            "before the "
            "decimal point and 16383 after"
        ),
    )
    assert time.monotonic() - started < 60  # 3 s on this project's busy 2-core machine
