"""duel.repair: each verdict a file can get, with its exact record."""

from __future__ import annotations

import json

import pytest

from duel.repair import Parsed, closing_suffix, missing_keys, parse_document

USER = {
    "user_id": None, "name": "Ann", "email": "a@b.co", "instagram_handle": None,
    "tiktok_handle": "@ann", "joined_at": "2024-01-02T03:04:05.000Z",
    "advocacy_programs": [{"program_id": "", "brand": "Acme", "total_sales_attributed": 1.5,
                           "tasks_completed": [{"task_id": None, "platform": "TikTok", "post_url": "x",
                                                "likes": 1, "comments": 2, "shares": 3, "reach": 4}]}],
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
    text = '{"user_id": null, "name": "A", "email": null, "instagram_handle": null, "tiktok_handle": null,' \
           ' "joined_at": null, "advocacy_programs": [],'
    parsed = parse_document(text.encode())
    assert (parsed.status, parsed.repair) == ("repaired", {"kind": "closed", "appended": "}", "removed": ","})


def test_parse_document_truncated_mid_record_is_quarantined() -> None:
    parsed = parse_document(TEXT[:120].rsplit(",", 1)[0].encode())
    assert (parsed.status, parsed.reason) == ("quarantined", "repair-incomplete")
    assert parsed.detail == "closed file lacks tiktok_handle, joined_at, advocacy_programs"


def test_parse_document_rewrite_is_quarantined_under_safe_policy() -> None:
    broken = TEXT.replace('"name": "Ann"', "'name': 'Ann'")
    parsed = parse_document(broken.encode())
    assert (parsed.status, parsed.reason) == ("quarantined", "repair-rewrites-content")
    assert parsed.repair is not None and parsed.repair["kind"] == "rewritten"
    assert json.loads(parsed.document) == USER


def test_parse_document_rewrite_loads_under_lenient_policy() -> None:
    broken = TEXT.replace('"name": "Ann"', "'name': 'Ann'")
    parsed = parse_document(broken.encode(), policy="lenient")
    assert parsed.status == "repaired"
    assert json.loads(parsed.document) == USER
    assert "-        \"name\"" not in parsed.repair["diff"] and "+    \"name\": \"Ann\"," in parsed.repair["diff"]


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        (b"", "empty", "file is empty or whitespace only"),
        (b" \r\n\t ", "empty", "file is empty or whitespace only"),
        (b"null", "not-an-object", "top level is NoneType, not a user object"),
        (b"[1, 2]", "not-an-object", "top level is list, not a user object"),
        (b"hello there", "unrepairable", "repair yields nothing, not a user object"),
        (b'{"a": "\xe9t\xe9"', "not-utf8", "not UTF-8 text: invalid continuation byte at byte 7"),
        (b'{"a": "x\\u0000y"}', "nul-character", "contains \\u0000, which Postgres jsonb cannot store"),
    ],
)
def test_parse_document_quarantines_hopeless_input(data: bytes, reason: str, detail: str) -> None:
    parsed = parse_document(data)
    assert (parsed.status, parsed.reason, parsed.detail) == ("quarantined", reason, detail)


def test_parse_document_strips_utf8_bom() -> None:
    parsed = parse_document(b"\xef\xbb\xbf" + TEXT.encode())
    assert (parsed.status, parsed.document, parsed.repair) == ("repaired", TEXT.encode(), {"kind": "bom-stripped"})


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
        *[f"advocacy_programs[0].tasks_completed[0].{k}" for k in
          ("task_id", "platform", "post_url", "comments", "shares", "reach")],
        "advocacy_programs[0].tasks_completed[1]",
    ]
