"""Document identity: the key rule, usable values, the content fallback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from duel.exceptions import ConfigError
from duel.identity import (
    MAX_KEY_BYTES,
    KeyRule,
    document_key,
    key_rule,
    load_placeholders,
    salvaged_key,
)
from duel.settings import Settings, load_settings

PLACEHOLDERS = {"email": frozenset({"invalid-email"})}


def test_key_rule_parse_reads_sources_in_order() -> None:
    assert KeyRule.parse(" @file , user_id,email ").sources == ("@file", "user_id", "email")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "DUEL_DOCUMENT_KEY is empty: give top-level fields and/or @file, e.g. @file,user_id"),
        ("user id", "DUEL_DOCUMENT_KEY: 'user id' is neither @file nor a top-level field name"),
        ("@path", "DUEL_DOCUMENT_KEY: '@path' is neither @file nor a top-level field name"),
        ("email,email", "DUEL_DOCUMENT_KEY names a source twice: 'email,email'"),
    ],
)
def test_key_rule_parse_refuses_malformed_rules(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        KeyRule.parse(text)
    assert str(error.value) == message


def test_load_settings_refuses_a_malformed_document_key() -> None:
    with pytest.raises(ConfigError, match=r"^DUEL_DOCUMENT_KEY: 'a b' is neither"):
        load_settings({"DUEL_DOCUMENT_KEY": "a b"}, dotenv=None)


def test_document_key_files_by_path_without_reading_fields() -> None:
    rule = KeyRule.parse("@file,user_id")
    assert document_key(rule, "user_17.json", b"not read", "ab") == "file:user_17.json"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (b'{"user_id": " 1ED6-X ", "email": "a@b.co"}', "user_id:1ed6-x"),
        (b'{"user_id": 42}', "user_id:42"),
        (b'{"user_id": null, "email": " A@B.CO "}', "email:a@b.co"),
        (b'{"user_id": "", "email": "INVALID-EMAIL"}', "content:sha"),
        (b'{"user_id": true, "email": ["a@b.co"]}', "content:sha"),
        (b'{"user_id": "   "}', "content:sha"),
    ],
)
def test_document_key_first_usable_field_else_content(document: bytes, expected: str) -> None:
    rule = KeyRule.parse("@file,user_id,email", PLACEHOLDERS)
    assert document_key(rule, None, document, "sha") == expected


def test_document_key_fields_first_identify_files_too() -> None:
    rule = KeyRule.parse("user_id,@file")
    assert document_key(rule, "a.json", b'{"user_id": "u1"}', "sha") == "user_id:u1"
    assert document_key(rule, "a.json", b'{"user_id": null}', "sha") == "file:a.json"


def test_document_key_over_the_limit_is_its_sources_digest() -> None:
    """A key over MAX_KEY_BYTES is `source~sha256:<hex of the value>`: the same value gives the
    same key, and it fits a btree entry; a key at the limit is kept as it is."""
    rule = KeyRule.parse("@file,user_id")
    long_id = "U" * 3000
    digest = hashlib.sha256(("u" * 3000).encode()).hexdigest()  # the value as keyed: case-folded
    document = json.dumps({"user_id": long_id}).encode()
    assert document_key(rule, None, document, "sha") == f"user_id~sha256:{digest}"
    long_path = "deep/" * 600 + "user_1.json"
    path_digest = hashlib.sha256(long_path.encode()).hexdigest()
    assert document_key(rule, long_path, b"not read", "sha") == f"file~sha256:{path_digest}"
    at_limit = "é" * ((MAX_KEY_BYTES - len("user_id:")) // 2)  # 2 bytes each in UTF-8
    kept = document_key(rule, None, json.dumps({"user_id": at_limit}).encode(), "sha")
    assert (kept, len(kept.encode())) == (f"user_id:{at_limit}", MAX_KEY_BYTES)


def test_load_placeholders_reads_the_dbt_projects_single_list(settings: Settings) -> None:
    placeholders = load_placeholders(settings.dbt_project_dir)
    every_field = frozenset(
        {"n/a", "#n/a", "null", "none", "nil", "undefined", "unknown", "-", "?"}
    )
    # each field's list holds every field's: a key is checked against one set
    assert placeholders["email"] == every_field | {"invalid-email"}
    assert placeholders["user_id"] == placeholders["every_field"] == every_field
    assert key_rule(settings).placeholders == placeholders
    assert key_rule(settings).placeholders_of("email") == every_field | {"invalid-email"}
    assert key_rule(settings).placeholders_of("customer_id") == every_field


@pytest.mark.parametrize("user_id", ["null", " N/A ", "Unknown", "-", "undefined"])
def test_document_key_a_placeholder_of_every_field_identifies_no_one(
    settings: Settings, user_id: str
) -> None:
    # Two people whose records carry user_id "null" are not one user: each is its content.
    rule = KeyRule.parse("@file,user_id,email", load_placeholders(settings.dbt_project_dir))
    first = json.dumps({"user_id": user_id, "name": "Ada"}).encode()
    second = json.dumps({"user_id": user_id, "email": "B@x.org"}).encode()
    assert document_key(rule, None, first, "sha1") == "content:sha1"
    assert document_key(rule, None, second, "sha2") == "email:b@x.org"


def test_load_placeholders_missing_project_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=f"^{tmp_path}/dbt_project.yml: cannot read the dbt project"
    ):
        load_placeholders(tmp_path)


def test_document_key_of_a_name_composed_or_decomposed_is_one() -> None:
    # `jürgen.json` written by macOS tools (NFD: u + U+0308) is the file named in NFC; the two
    # were two users, so a re-delivery with --full deleted one and loaded the other
    rule = KeyRule.parse("@file")
    composed, decomposed = "eu/j\u00fcrgen.json", "eu/ju\u0308rgen.json"
    assert composed != decomposed
    keys = {document_key(rule, name, b"{}", "0" * 64) for name in (composed, decomposed)}
    assert keys == {"file:eu/j\u00fcrgen.json"}


def test_document_key_reads_a_field_beside_a_number_beyond_a_double() -> None:
    # orjson refuses 1e400 (jsonb stores it): the key was a traceback that failed the batch
    rule = KeyRule.parse("user_id")
    document = b'{"user_id": "A1", "advocacy_programs": [{"total_sales_attributed": 1e400}]}'
    assert document_key(rule, None, document, "x") == "user_id:a1"


def test_document_key_an_integer_beyond_64_bits_is_exact() -> None:
    # orjson reads it as a float (no key: the document was keyless); as written, it is one
    rule = KeyRule.parse("user_id")
    document = b'{"user_id": 18446744073709551616123}'
    assert document_key(rule, None, document, "x") == "user_id:18446744073709551616123"
    assert document_key(rule, None, b'{"user_id": 1.5}', "x") == "content:x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the field whole before the damage: the user the whole document would be
        (b'{"user_id": " U3 ", "na', "user_id:u3"),
        (b'{"user_id": 12 ,', "user_id:12"),
        (
            b'\xef\xbb\xbf {"a": {"b": [1, {"c": "]"}]}, "user_id": 18446744073709551616123, "x',
            "user_id:18446744073709551616123",
        ),
        (b'{"user\\u005fid": "q",', "user_id:q"),
        # found but no one's: the next source, as in the whole document
        (b'{"user_id": null, "email": " A@B.co ", "x', "email:a@b.co"),
        # the value, or a source before the one found, may lie past the damage: no one
        (b'{"user_id": "u3', None),
        (b'{"user_id": 12', None),
        (b'{"name": "A", "user_', None),
        (b'{"user_id": null, "na', None),
        (b'{"email": "a@b.co", "na', None),
        # read no further than the damage: a bracket that closes another kind, a bad escape
        (b'{"a": [1, 2}, "user_id": "x"}', None),
        (b'{"a": "\\q", "user_id": "x"}', None),
        # written twice (which one counts may be past the damage); no object; every source unusable
        (b'{"user_id": "a", "user_id": "b", ', None),
        (b'[{"user_id": "a"}', None),
        (b'// c\n{"user_id": "a",', None),
        (b'{"user_id": 1.5, "email": "invalid-email", "x', None),
        (b'{"user_id": "u\xff", "x', None),
        # two users on one line (a lost newline): either, so no one
        (b'{"user_id": "u3", "name": "A"}{"user_id": "u4", "name": "B"}', None),
        (b'{"user_id": "u3"} {"user_id": "u4"', None),
        # a value no text column holds: the document was refused for it
        (b'{"user_id": "a\\u0000b", "name": "x"}', None),
        (b'{"user_id": "\\ud800", "name": "x"}', None),
        (b'{"user_id": "u1", "bio": "a\\u0000b"}', "user_id:u1"),
        # a skipped value must be JSON: a lost `{` would bring a nested user_id to the top
        (b'{"profile": {"x": "a": 1}, "user_id": "evil"}, "user_id": "good"}', None),
        (b'{"a": [1 /* ], "user_id": "evil", "b": " */], "user_id": "good", "name": "A', None),
        (b"""{"a": ['"', '"], "user_id": "evil", "z": ["'], "user_id": "good", "name": "A""", None),
    ],
)
def test_salvaged_key_reads_a_broken_documents_fields_up_to_the_damage(
    text: bytes, expected: str | None
) -> None:
    rule = KeyRule.parse("@file,user_id,email", PLACEHOLDERS)
    assert salvaged_key(rule, None, text) == expected


def test_salvaged_key_of_a_file_of_its_own_is_its_path_when_the_rule_gets_to_it() -> None:
    rule = KeyRule.parse("user_id,@file")
    assert salvaged_key(rule, "a.json", b'{"user_id": true, "x') == "file:a.json"
    assert salvaged_key(rule, "a.json", b'{"user_id": "u1", "x') == "user_id:u1"
    assert salvaged_key(rule, "a.json", b'{"name": 1, "x') is None
    assert salvaged_key(KeyRule.parse("@file,user_id"), "a.json", b"[") == "file:a.json"
