"""Property-based tests (hypothesis) that mutate real documents: truncate anywhere, delete or
duplicate characters, swap quotes, insert comments, trailing commas or stray bytes, re-encode.

The `ci` profile (the default) runs a fixed, derandomized set of 300 examples per property so CI
is reproducible; HYPOTHESIS_PROFILE=dev explores with fresh randomness.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tarfile
import uuid
from pathlib import Path

import orjson
from conftest import REAL_DATA, query
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from duel.load import ingest
from duel.jsonb import NUL_ESCAPE
from duel.repair import UTF8_BOM, parse_document
from duel.settings import Settings

hsettings.register_profile("ci", max_examples=300, derandomize=True, deadline=None, print_blob=True,
                           suppress_health_check=[HealthCheck.too_slow])
hsettings.register_profile("dev", max_examples=1000, deadline=None)
hsettings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SAMPLE = 60  # real documents to mutate (the first of the dump, clean and malformed alike)
ENCODINGS = ("latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-32")


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
        kind = draw(st.sampled_from(("truncate", "delete", "duplicate", "quotes", "comment", "comma",
                                     "bytes", "encode", "nul")))
        i = _at(draw, data)
        if kind == "truncate":
            data = data[:i]
        elif kind == "delete":
            data = data[:i] + data[i + draw(st.integers(1, 8)):]
        elif kind == "duplicate":
            data = data[:i] + data[i:i + draw(st.integers(1, 40))] + data[i:]
        elif kind == "quotes":
            data = data.replace(b'"', b"'", draw(st.integers(1, 50)))
        elif kind == "comment":
            data = data[:i] + draw(st.sampled_from((b"/* note */", b"// note\n", b"#", b"<!-- -->"))) + data[i:]
        elif kind == "comma":
            j = data.rfind(b"}", 0, i)
            data = data[:j] + b"," + data[j:] if j > 0 else data + b","
        elif kind == "bytes":
            data = data[:i] + draw(st.binary(min_size=1, max_size=6)) + data[i:]
        elif kind == "nul":
            data = data[:i] + draw(st.sampled_from((b"\x00", b"\\u0000", b"\\ud800", b"\\udc00"))) + data[i:]
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
        assert NUL_ESCAPE.search(parsed.document) is None  # jsonb refuses \u0000
        parsed.document.decode("utf-8")  # jsonb text is UTF-8
    if parsed.repair is not None:
        assert NUL_ESCAPE.search(orjson.dumps(parsed.repair)) is None  # the record is storable in jsonb too
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
        assert parsed.document == truncated[: len(truncated) - len(record["removed"].encode())] \
            + record["appended"].encode()


@given(mutated())
def test_parse_document_clean_is_the_file_itself(data: bytes) -> None:
    """What loads as clean is the file's own bytes (jsonb gets the original text, numbers exact)."""
    parsed = parse_document(data)
    if parsed.status == "clean":
        assert parsed.document == data
    if parsed.status == "repaired" and parsed.repair == {"kind": "encoding", "fixes": ["utf-8-bom"]}:
        assert UTF8_BOM + parsed.document == data  # type: ignore[operator]


@hsettings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_ingest_accounts_for_every_mutated_file(settings: Settings, tmp_path: Path, files: list[bytes]) -> None:
    """End to end, each example a new batch of new names: the ledger, the tables and the summary
    agree with each other and with parse_document's verdict on every file."""
    key = uuid.uuid4().hex  # names never seen by the database before: no file is `unchanged`
    root = tmp_path / key
    (root / key).mkdir(parents=True)
    expected = {}
    for index, data in enumerate(files):
        name = f"{key}/f{index}.json"
        (root / name).write_bytes(data)
        parsed = parse_document(data)
        status = {"clean": "loaded", "repaired": "repaired", "quarantined": "quarantined"}[parsed.status]
        expected[name] = (status, parsed.reason, hashlib.sha256(data).hexdigest())
    result = ingest(settings, root)
    batch = result.batch_id
    rows = query(settings, "select source_name, status, reason, content_sha256 from raw.batch_files"
                           " where batch_id = %s", (batch,))
    assert {n: tuple(r) for n, *r in rows} == expected
    loaded = {n for n, (s, _, _) in expected.items() if s in ("loaded", "repaired")}
    quarantined = {n for n, (s, _, _) in expected.items() if s == "quarantined"}
    assert (result.files_seen, result.loaded, result.quarantined, result.unchanged, result.skipped) == (
        len(files), len(loaded), len(quarantined), 0, 0)
    docs = query(settings, "select source_name from raw.user_documents where batch_id = %s", (batch,))
    assert {n for (n,) in docs} == loaded
    held = query(settings, "select source_name from raw.quarantine where batch_id = %s", (batch,))
    assert {n for (n,) in held} == quarantined
