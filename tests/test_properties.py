"""Property-based tests (hypothesis) that mutate real documents: truncate anywhere, delete or
duplicate characters, swap quotes, insert comments, trailing commas, stray bytes or numbers past
Postgres' limits, re-encode. And random documents written with random damage: lossless damage
(comments, trailing commas, single quotes, odd whitespace, a BOM) loads the identical content;
content-changing damage (a missing or extra comma or colon, a stray character, an unquoted word,
NaN) is quarantined; the lossless proof refuses any repair whose content differs.

The `ci` profile (the default) runs a fixed, derandomized set of 300 examples per property so CI
is reproducible; HYPOTHESIS_PROFILE=dev explores with fresh randomness.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
import tarfile
import uuid
from pathlib import Path
from typing import Any

import orjson
from conftest import REAL_DATA, query
from hypothesis import HealthCheck, given
from hypothesis import assume as hypothesis_assume
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from duel import jsonb, lossless
from duel.identity import KeyRule
from duel.jsonb import NUL_ESCAPE
from duel.load import ingest
from duel.parse import classify
from duel.repair import USER_FIELDS, USER_KEYS, UTF8_BOM, parse_document, wrapped_users
from duel.settings import Settings
from duel.sources import SourceFile

hsettings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
hsettings.register_profile("dev", max_examples=1000, deadline=None)
hsettings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SAMPLE = 60  # real documents to mutate (the first of the dump, clean and malformed alike)
ENCODINGS = ("latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-32")
EXTREME_NUMBERS = (
    b"1e-16383",
    b"1e-16384",
    b"1e-20000",
    b"1.00e-16383",
    b"0e-20000",
    b"0e1073741823",
    b"0e1073741824",
    b"1e131071",
    b"1e131072",
    b"-1E+131072",
    b"9" * 7000,
    b"0." + b"1" * 16384,
)


@functools.cache
def real_documents() -> tuple[bytes, ...]:
    docs = []
    with tarfile.open(REAL_DATA) as archive:
        for member in archive:
            if member.isreg() and member.name.endswith(".json"):
                docs.append(archive.extractfile(member).read())  # type: ignore[union-attr]
            if len(docs) == SAMPLE:
                break
    return tuple(docs)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from(real_documents()))


def _at(draw: st.DrawFn, data: bytes) -> int:
    return draw(st.integers(min_value=0, max_value=len(data)))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real document with one to three hostile edits."""
    data = draw(documents())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(
            st.sampled_from(
                (
                    "truncate",
                    "delete",
                    "duplicate",
                    "quotes",
                    "comment",
                    "comma",
                    "bytes",
                    "encode",
                    "nul",
                    "number",
                )
            )
        )
        i = _at(draw, data)
        if kind == "truncate":
            data = data[:i]
        elif kind == "delete":
            data = data[:i] + data[i + draw(st.integers(1, 8)) :]
        elif kind == "duplicate":
            data = data[:i] + data[i : i + draw(st.integers(1, 40))] + data[i:]
        elif kind == "quotes":
            data = data.replace(b'"', b"'", draw(st.integers(1, 50)))
        elif kind == "comment":
            data = (
                data[:i]
                + draw(st.sampled_from((b"/* note */", b"// note\n", b"#", b"<!-- -->")))
                + data[i:]
            )
        elif kind == "comma":
            j = data.rfind(b"}", 0, i)
            data = data[:j] + b"," + data[j:] if j > 0 else data + b","
        elif kind == "bytes":
            data = data[:i] + draw(st.binary(min_size=1, max_size=6)) + data[i:]
        elif kind == "nul":
            data = (
                data[:i]
                + draw(st.sampled_from((b"\x00", b"\\u0000", b"\\ud800", b"\\udc00")))
                + data[i:]
            )
        elif (
            kind == "number"
        ):  # a number at or past Postgres numeric's limits, as a value or anywhere
            number = draw(st.sampled_from(EXTREME_NUMBERS))
            data = (
                re.sub(rb"(?<=: )-?[0-9][0-9.eE+-]*", lambda _, n=number: n, data, count=1)
                if draw(st.booleans())
                else data[:i] + number + data[i:]
            )
        else:
            text = data.decode("utf-8", "replace").replace("a", "\u00e9", 1)
            data = text.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    return data


def assert_verdict_is_storable(data: bytes, policy: str) -> None:
    parsed = parse_document(data, policy)
    assert parsed.status in ("clean", "repaired", "quarantined")
    if parsed.status == "quarantined":
        assert parsed.reason and parsed.detail and "\n" not in parsed.detail
    else:
        assert parsed.document is not None and parsed.reason is None
        assert isinstance(orjson.loads(parsed.document), dict) or parsed.document == data
        assert jsonb.number_out_of_range(parsed.document) is None  # numeric holds every number
        assert NUL_ESCAPE.search(parsed.document) is None  # jsonb refuses \u0000
        parsed.document.decode("utf-8")  # jsonb text is UTF-8
    if parsed.repair is not None:
        assert (
            NUL_ESCAPE.search(orjson.dumps(parsed.repair)) is None
        )  # the record is storable in jsonb too
    if parsed.document is not None:
        assert NUL_ESCAPE.search(parsed.document) is None
    assert "\x00" not in (parsed.parse_error or "")  # text columns refuse NUL


@given(mutated())
def test_parse_document_never_crashes_and_is_storable(data: bytes) -> None:
    assert_verdict_is_storable(data, "safe")


@given(mutated())
def test_parse_document_lenient_never_crashes_and_is_storable(data: bytes) -> None:
    assert_verdict_is_storable(data, "lenient")


@given(documents(), st.data())
def test_parse_document_truncated_is_never_clean(document: bytes, data: st.DataObject) -> None:
    """Cut anywhere before the end, a document is closed (only brackets added) or quarantined."""
    end = len(document.rstrip())
    cut = data.draw(st.integers(min_value=0, max_value=end - 1))
    truncated = document[:cut]
    parsed = parse_document(truncated)
    assert parsed.status != "clean"
    if parsed.status == "repaired":
        record = parsed.repair or {}
        assert record["kind"] == "closed"
        assert (
            parsed.document
            == truncated[: len(truncated) - len(record["removed"].encode())]
            + record["appended"].encode()
        )
        # and loses nothing the models read: every expected field is the document's own
        closed, whole = json.loads(parsed.document), json.loads(parse_document(document).document)
        assert {k: closed[k] for k in USER_KEYS} == {k: whole[k] for k in USER_KEYS}


@given(mutated())
def test_parse_document_clean_is_the_file_itself(data: bytes) -> None:
    """What loads as clean is the file's own bytes (jsonb gets the original text, numbers exact)."""
    parsed = parse_document(data)
    if parsed.status == "clean":
        assert parsed.document == data
    if parsed.status == "repaired" and parsed.repair == {
        "kind": "encoding",
        "fixes": ["utf-8-bom"],
    }:
        assert UTF8_BOM + parsed.document == data  # type: ignore[operator]


@hsettings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_ingest_accounts_for_every_mutated_file(
    settings: Settings, tmp_path: Path, files: list[bytes]
) -> None:
    """End to end, each example a new batch of new names: the ledger, the tables and the summary
    agree with each other and with parse_document's verdict on every file."""
    key = uuid.uuid4().hex  # names never seen by the database before: no file is `unchanged`
    root = tmp_path / key
    (root / key).mkdir(parents=True)
    expected = {}
    for index, data in enumerate(files):
        name = f"{key}/{key}-f{index}.json"  # the identity is the name without the dump's folder
        (root / name).write_bytes(data)
        parsed = parse_document(data)
        status = {"clean": "loaded", "repaired": "repaired", "quarantined": "quarantined"}[
            parsed.status
        ]
        expected[name] = (status, parsed.reason, hashlib.sha256(data).hexdigest())
    result = ingest(settings, root)
    batch = result.batch_id
    rows = query(
        settings,
        "select source_name, status, reason, content_sha256 from raw.batch_files"
        " where batch_id = %s",
        (batch,),
    )
    assert {n: tuple(r) for n, *r in rows} == expected
    loaded = {n for n, (s, _, _) in expected.items() if s in ("loaded", "repaired")}
    quarantined = {n for n, (s, _, _) in expected.items() if s == "quarantined"}
    assert (
        result.files_seen,
        result.loaded,
        result.quarantined,
        result.unchanged,
        result.skipped,
    ) == (len(files), len(loaded), len(quarantined), 0, 0)
    docs = query(
        settings, "select source_name from raw.user_documents where batch_id = %s", (batch,)
    )
    assert {n for (n,) in docs} == loaded
    held = query(settings, "select source_name from raw.quarantine where batch_id = %s", (batch,))
    assert {n for (n,) in held} == quarantined


# --- lossless repair: random documents written with random damage --------------------------

TEXTS = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12
)  # jsonb: no NUL
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXTS
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXTS, inner, max_size=4),
    max_leaves=16,
)
OBJECTS = st.dictionaries(TEXTS, VALUES, max_size=6)
COMMENTS = ("/* note */", "/**/", "// note\n", "# note\n", "/* a // b # c */")
ODD_SPACES = ("\u00a0", "\f", "\v", "\u2028", "\u3000", "\ufeff")
CONTENT_DAMAGE = (
    "drop-comma",
    "double-comma",
    "leading-comma",
    "drop-colon",
    "stray-character",
    "unquoted-word",
    "nan",
)


def single_quoted(value: str) -> str:
    """`value` as a 'single-quoted' JSON5 string: JSON's escapes, `"` bare, `'` escaped."""
    return "'" + json.dumps(value)[1:-1].replace('\\"', '"').replace("'", "\\'") + "'"


class Writer:
    """Writes a value as JSON text, drawing lossless damage (what a person or a lax exporter
    writes) between and in tokens, and at most one content-changing damage if asked."""

    def __init__(self, rng: random.Random, content_damage: str | None = None) -> None:
        self.rng, self.applied, self.pending = rng, set[str](), content_damage
        self.indent = rng.choice(("", " ", "\n  "))

    def chance(self, one_in: int) -> bool:
        return self.rng.randrange(one_in) == 0

    def damage(self, kind: str) -> bool:
        """Whether to apply content damage `kind` here (once, if it is the one asked for)."""
        if self.pending == kind and self.chance(2):
            self.pending = None
            return True
        return False

    def gap(self) -> str:
        if self.damage("stray-character"):
            return " @ "
        if self.chance(6):
            self.applied.add("comment")
            return self.rng.choice(COMMENTS)
        if self.chance(8):
            self.applied.add("whitespace")
            return self.rng.choice(ODD_SPACES)
        return self.indent

    def string(self, value: str, is_key: bool) -> str:
        if not is_key and self.damage("unquoted-word"):
            return "unquoted"
        if self.chance(4):
            self.applied.add("single-quotes")
            return single_quoted(value)
        return json.dumps(value, ensure_ascii=self.chance(2))

    def elements(self, parts: list[str]) -> str:
        joined = ""
        for index, part in enumerate(parts):
            if index:
                joined += (
                    " "
                    if self.damage("drop-comma")
                    else ",,"
                    if self.damage("double-comma")
                    else ","
                )
            elif self.damage("leading-comma"):
                joined += ","
            joined += part
        if parts and self.chance(3):
            self.applied.add("trailing-comma")
            joined += self.gap() + ","
        return joined + self.gap()

    def write(self, value: Any) -> str:
        if isinstance(value, dict):
            members = [
                self.gap()
                + self.string(key, True)
                + self.gap()
                + (" " if self.damage("drop-colon") else ":")
                + self.gap()
                + self.write(item)
                for key, item in value.items()
            ]
            return "{" + self.elements(members) + "}"
        if isinstance(value, list):
            return "[" + self.elements([self.gap() + self.write(item) for item in value]) + "]"
        if isinstance(value, str):
            return self.string(value, False)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and self.damage("nan"):
            return "NaN"
        return json.dumps(value)


def exact(text: str | bytes) -> Any:
    """A JSON value with its numbers as their text, so equality is equality of what jsonb gets."""
    return json.loads(text, parse_float=lambda n: ("number", n), parse_int=lambda n: ("number", n))


def assert_users_load_as_written(wrapper: dict[str, Any], data: bytes) -> None:
    """duel.parse splits a list of users an object wraps, and each of its users loads as written
    (what is no user, or an empty element a trailing comma left, is quarantined on its own)."""
    rule = KeyRule.parse("@file,user_id")
    got = classify(SourceFile("u.json", data, len(data), key_path="u.json"), "safe", rule)
    assert isinstance(got, list), got
    [inner] = wrapper.values()
    users = [e for e in inner if isinstance(e, dict) and wrapped_users(e) is None]
    loaded = [o.parsed.document for o in got if o.status != "quarantined" and o.parsed]
    assert [exact(document) for document in loaded] == [exact(json.dumps(u)) for u in users]


# A user: an object with a user field among others; a list of users an object wraps: its one
# member, under a name that is no user field, a list whose first element is a user
USERS = st.dictionaries(st.sampled_from(USER_KEYS) | TEXTS, VALUES, min_size=1, max_size=4).filter(
    lambda user: not USER_FIELDS.isdisjoint(user)
)
WRAPPERS = st.builds(
    lambda name, first, rest: {name: [first, *rest]},
    TEXTS.filter(lambda name: name not in USER_FIELDS),
    USERS,
    st.lists(USERS | VALUES, max_size=3),
)


@given(OBJECTS, st.randoms(use_true_random=False), st.booleans())
def test_parse_document_lossless_damage_loads_identical_content(
    value: dict[str, Any], rng: random.Random, bom: bool
) -> None:
    writer = Writer(rng)
    text = writer.write(value)
    data = (UTF8_BOM if bom else b"") + text.encode()
    parsed = parse_document(data)
    if wrapped_users(value) is not None:  # a list of users an object wraps is no one user
        assert (parsed.status, parsed.reason) == ("quarantined", "not-an-object")
        assert_users_load_as_written(value, data)
        return
    fixes = sorted(writer.applied | ({"utf-8-bom"} if bom else set()))
    expected = (
        ("clean", None)
        if not fixes
        else ("repaired", {"kind": "encoding", "fixes": fixes})
        if fixes == ["utf-8-bom"]
        else ("repaired", {"kind": "lossless", "fixes": fixes})
    )
    assert (parsed.status, parsed.repair) == expected
    assert exact(parsed.document) == exact(json.dumps(value))  # type: ignore[arg-type]


@given(WRAPPERS, st.randoms(use_true_random=False), st.booleans())
def test_parse_a_wrapper_with_lossless_damage_loads_its_users_as_written(
    wrapper: dict[str, Any], rng: random.Random, bom: bool
) -> None:
    """`{"users": [...]}` written with random lossless damage (comments, trailing commas,
    single quotes, whitespace) and perhaps a byte order mark: split into its users, each as
    written."""
    data = (UTF8_BOM if bom else b"") + Writer(rng).write(wrapper).encode()
    assert wrapped_users(wrapper) is not None
    assert_users_load_as_written(wrapper, data)


@given(OBJECTS, st.sampled_from(CONTENT_DAMAGE), st.randoms(use_true_random=False))
def test_parse_document_content_changing_damage_is_quarantined(
    value: dict[str, Any], damage: str, rng: random.Random
) -> None:
    writer = Writer(rng, damage)
    text = writer.write(value)
    hypothesis_assume(writer.pending is None)  # the damage found a place
    parsed = parse_document(text.encode())
    assert parsed.status == "quarantined", (text, parsed)
    assert (parsed.repair or {}).get("kind") in (None, "rewritten")


def changed(value: Any, rng: random.Random) -> Any:
    """`value` with one change of content somewhere: a scalar, a key, a member or element
    added, dropped or moved."""
    if isinstance(value, dict) and value and rng.randrange(3):
        keys = list(value)
        key = rng.choice(keys)
        how = rng.choice(("inside", "drop", "add", "rename", "move"))
        if how == "inside":
            return {**value, key: changed(value[key], rng)}
        if how == "drop":
            return {k: v for k, v in value.items() if k != key}
        if how == "add":
            return {**value, key + "+": None}
        if how == "rename":
            return {(k + "+" if k == key else k): v for k, v in value.items()}
        return {k: value[k] for k in [*keys[1:], keys[0]]}
    if isinstance(value, list) and value and rng.randrange(3):
        index = rng.randrange(len(value))
        how = rng.choice(("inside", "drop", "add", "move"))
        if how == "inside":
            return [*value[:index], changed(value[index], rng), *value[index + 1 :]]
        if how == "drop":
            return value[:index] + value[index + 1 :]
        return [*value, None] if how == "add" else [*value[1:], value[0]]
    return rng.choice(
        (
            None,
            True,
            False,
            0,
            0.0,
            1.5,
            "",
            "x",
            [],
            {},
            value + "+" if isinstance(value, str) else str(value),
        )
    )


@given(OBJECTS, st.randoms(use_true_random=False))
def test_lossless_prove_refuses_a_repair_with_other_content(
    value: dict[str, Any], rng: random.Random
) -> None:
    """The proof is strict: the damaged text of a document is never proven to be another one,
    however near (one scalar, key, member or element changed, added, dropped or moved)."""
    text = Writer(rng).write(value)
    other = changed(value, rng)
    hypothesis_assume(exact(json.dumps(value)) != exact(json.dumps(other)))
    try:
        lossless.prove(text, json.dumps(other))
    except lossless.NotLossless:
        return
    raise AssertionError("proved a repair with other content")


def scalars_in_order(original: str, document: bytes) -> bool:
    """Every key and scalar of `document` appears in `original`, in order (as written, or with
    JSON's escapes): the issue's check, independent of duel.lossless."""
    position = 0
    todo: list[Any] = [
        json.loads(
            document,
            object_pairs_hook=lambda pairs: ("object", pairs),
            parse_float=lambda n: ("number", n),
            parse_int=lambda n: ("number", n),
        )
    ]
    while todo:
        item = todo.pop()
        if isinstance(item, tuple) and item[0] == "object":
            todo.extend(reversed([part for pair in item[1] for part in pair]))
            continue
        if isinstance(item, list):
            todo.extend(reversed(item))
            continue
        forms = (
            [item[1]]
            if isinstance(item, tuple)
            else [json.dumps(item)]
            if not isinstance(item, str)
            else [item, json.dumps(item)[1:-1], json.dumps(item, ensure_ascii=False)[1:-1]]
        )
        found = [at for at in (original.find(form, position) for form in forms) if at >= 0]
        if not found:
            return False
        position = min(found)
    return True


@given(mutated())
def test_parse_document_lossless_verdict_keeps_every_scalar_in_order(data: bytes) -> None:
    parsed = parse_document(data)
    if (parsed.repair or {}).get("kind") == "lossless":
        original = data.decode(
            "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
        )
        assert scalars_in_order(original, parsed.document)  # type: ignore[arg-type]
