"""The ingest on the real dataset and on small hand-made inputs, against the real Postgres."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import string
import tarfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import query
from tar_files import make_tar
from test_repair import TEXT

from duel import load, parse
from duel.identity import KeyRule
from duel.load import ingest
from duel.settings import Settings


def test_ingest_real_dataset_counts(settings: Settings, real_data: Path) -> None:
    result = ingest(settings, real_data)
    assert result.summary() == {
        "batch_id": 1,
        "files_read": 10000,
        "files_seen": 10000,
        "loaded": 10000,
        "repaired": 222,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert query(
        settings, "select parse_status, count(*) from raw.user_documents group by 1 order by 1"
    ) == [("clean", 9778), ("repaired", 222)]
    assert query(settings, "select count(*) from raw.current_versions") == [(10000,)]


def test_ingest_twice_changes_nothing(settings: Settings, real_data: Path) -> None:
    ingest(settings, real_data)
    before = query(
        settings, "select source_name, content_sha256, batch_id from raw.user_documents order by 1"
    )
    again = ingest(settings, real_data)
    assert again.summary() == {
        "batch_id": 2,
        "files_read": 10000,
        "files_seen": 10000,
        "loaded": 0,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 10000,
        "deleted": 0,
        "keyless": 0,
    }
    after = query(
        settings, "select source_name, content_sha256, batch_id from raw.user_documents order by 1"
    )
    assert after == before


def test_ingest_raw_rows_match_files(settings: Settings, real_dir: Path) -> None:
    ingest(settings, real_dir)
    rows = dict(query(settings, "select source_name, content_sha256 from raw.user_documents"))
    files = {
        p.relative_to(real_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (real_dir / "mixed").glob("*.json")
    }
    assert rows == files


def test_ingest_changed_file_stores_one_new_version(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    real_data_dir = real_dir
    ingest(settings, real_data_dir)
    changed = tmp_path / "mixed"
    changed.mkdir()
    original = (real_data_dir / "mixed" / "user_1.json").read_bytes()
    new_bytes = original.replace(b'"shares": 55', b'"shares": 56')
    (changed / "user_1.json").write_bytes(new_bytes)
    result = ingest(settings, tmp_path)
    assert result.summary() == {
        "batch_id": 2,
        "files_read": 1,
        "files_seen": 1,
        "loaded": 1,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    versions = query(
        settings,
        "select content_sha256, batch_id, document->'advocacy_programs'->0"
        "->'tasks_completed'->0->>'shares' from raw.user_documents"
        " where source_name = 'mixed/user_1.json' order by batch_id",
    )
    assert versions == [
        (hashlib.sha256(original).hexdigest(), 1, "55"),
        (hashlib.sha256(new_bytes).hexdigest(), 2, "56"),
    ]
    assert query(
        settings,
        "select content_sha256, batch_id from raw.current_versions"
        " where source_name = 'mixed/user_1.json'",
    ) == [(hashlib.sha256(new_bytes).hexdigest(), 2)]
    assert query(settings, "select count(*) from raw.user_documents") == [(10001,)]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_ingest_the_same_content_in_other_bytes_is_its_current_version_again(
    settings: Settings, tmp_path: Path
) -> None:
    """An exporter that writes the same users otherwise (compact, keys in another order,
    escapes for accents, CRLF) changes nothing: each document is its current version delivered
    again, `unchanged` (reason same-content), no version stored, its pointer as it was. A
    number written otherwise (1.5 as 1.50) is what the models read, so a new version, as a
    changed value is. The other bytes are recorded (raw.content_aliases): delivered again they
    are known by their hash while their version is current, parsed again once it is not."""
    first = {
        "a": b'{\n  "user_id": "u0",\n  "name": "Jos\xc3\xa9",\n  "sales": 1.5\n}',
        "b": b'{\n  "user_id": "u1",\n  "name": "Ann",\n  "tags": [1, 2]\n}',
        "c": b'{"user_id": "u2", "name": "Bo", "sales": 1.5}',
        "d": b'{"user_id": "u3", "name": "Cy"}',
    }
    second = {
        "a": b'{"sales":1.5,"name":"Jos\\u00e9","user_id":"u0"}',  # compact, reordered, escaped
        "b": b'{\r\n"user_id" : "u1",\r\n"tags":[1,2],"name":"Ann"}\r\n',  # CRLF, reordered
        "c": b'{"user_id": "u2", "name": "Bo", "sales": 1.50}',  # a number written otherwise
        "d": b'{"user_id": "u3", "name": "Cy!"}',  # a changed value
    }
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, data in first.items():
        (folder / f"{name}.json").write_bytes(data)
    ingest(settings, tmp_path)
    pointers = query(settings, "select * from raw.current_versions order by 1")
    for name, data in second.items():
        (folder / f"{name}.json").write_bytes(data)
    result = ingest(settings, tmp_path)
    assert (result.loaded, result.unchanged, result.unchanged_reasons) == (
        2,
        2,
        {"same-content": 2},
    )
    assert result.summary()["same_content"] == 2
    ledger = "select source_name, status, reason, content_sha256, byte_size from raw.batch_files"
    assert query(settings, ledger + " where batch_id = 2 order by 1") == [
        ("mixed/a.json", "unchanged", "same-content", _sha(first["a"]), len(second["a"])),
        ("mixed/b.json", "unchanged", "same-content", _sha(first["b"]), len(second["b"])),
        ("mixed/c.json", "loaded", None, _sha(second["c"]), len(second["c"])),
        ("mixed/d.json", "loaded", None, _sha(second["d"]), len(second["d"])),
    ]
    assert query(
        settings, "select source_name, batch_id from raw.user_documents order by 1, 2"
    ) == [
        ("mixed/a.json", 1),
        ("mixed/b.json", 1),
        ("mixed/c.json", 1),
        ("mixed/c.json", 2),
        ("mixed/d.json", 1),
        ("mixed/d.json", 2),
    ]
    moved = query(settings, "select * from raw.current_versions order by 1")
    assert [row for row in moved if row[0] in ("file:a.json", "file:b.json")] == pointers[:2]
    # the other bytes are recorded as holding their version: delivered again, they are known by
    # their hash (not parsed), and the batch says the same as the first time
    assert query(settings, "select * from raw.content_aliases order by 1") == [
        ("file:a.json", _sha(second["a"]), _sha(first["a"]), 2),
        ("file:b.json", _sha(second["b"]), _sha(first["b"]), 2),
    ]
    with load._KnownVersions(settings) as known:
        asked = [(f"file:{name}.json", _sha(data)) for name, data in second.items()]
        assert known([*asked, ("file:a.json", _sha(b"other"))]) == {
            ("file:a.json", _sha(second["a"])): _sha(first["a"]),
            ("file:b.json", _sha(second["b"])): _sha(first["b"]),
            ("file:c.json", _sha(second["c"])): _sha(second["c"]),
            ("file:d.json", _sha(second["d"])): _sha(second["d"]),
        }
    again = ingest(settings, tmp_path)
    assert (again.loaded, again.unchanged, again.unchanged_reasons) == (
        0,
        4,
        {"same-content": 2},
    )
    assert query(settings, ledger + " where batch_id = 3 order by 1") == [
        ("mixed/a.json", "unchanged", "same-content", _sha(first["a"]), len(second["a"])),
        ("mixed/b.json", "unchanged", "same-content", _sha(first["b"]), len(second["b"])),
        ("mixed/c.json", "unchanged", None, _sha(second["c"]), len(second["c"])),
        ("mixed/d.json", "unchanged", None, _sha(second["d"]), len(second["d"])),
    ]
    assert query(settings, "select * from raw.current_versions order by 1") == moved
    assert query(settings, "select count(*) from raw.content_aliases") == [(2,)]
    # a.json changed: its alias no longer names the current version, so the bytes of that
    # earlier version are parsed and compared with the current one, and load as a version
    (folder / "a.json").write_bytes(b'{"user_id": "u0", "name": "Jose"}')
    ingest(settings, tmp_path)
    with load._KnownVersions(settings) as known:
        assert known([("file:a.json", _sha(second["a"]))]) == {}
    (folder / "a.json").write_bytes(second["a"])
    back = ingest(settings, tmp_path)
    assert (back.loaded, back.unchanged, back.unchanged_reasons) == (1, 3, {"same-content": 1})
    # the batches record them apart from the other unchanged documents
    assert query(
        settings, "select batch_id, loaded, unchanged, same_content from raw.batches order by 1"
    ) == [(1, 4, 0, 0), (2, 2, 2, 2), (3, 0, 4, 2), (4, 1, 3, 1), (5, 1, 3, 1)]


# JSON's whitespace outside its strings (a string is matched whole, and kept)
_BETWEEN_TOKENS = re.compile(rb'("(?:\\.|[^"\\])*")|[ \t\r\n]+')


def test_ingest_the_real_dump_written_compactly_is_unchanged(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """The real dump again, each of its well-formed files without the whitespace between its
    tokens (as an exporter that stops indenting writes it): every user is its current version
    delivered again, nothing is stored; its malformed files, as they were, are unchanged."""
    ingest(settings, real_dir)
    before = query(settings, "select * from raw.current_versions order by 1")
    (tmp_path / "mixed").mkdir()
    compacted = 0
    for path in sorted((real_dir / "mixed").glob("*.json")):
        data = path.read_bytes()
        try:
            json.loads(data)
        except ValueError:
            (tmp_path / "mixed" / path.name).write_bytes(data)
            continue
        squeezed = _BETWEEN_TOKENS.sub(lambda match: match.group(1) or b"", data)
        assert json.loads(squeezed) == json.loads(data)
        compacted += squeezed != data
        (tmp_path / "mixed" / path.name).write_bytes(squeezed)
    assert compacted == 9778
    result = ingest(settings, tmp_path)
    assert result.summary() == {
        "batch_id": 2,
        "files_read": 10000,
        "files_seen": 10000,
        "loaded": 0,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 10000,
        "deleted": 0,
        "keyless": 0,
        "same_content": compacted,
    }
    assert query(settings, "select count(*) from raw.user_documents") == [(10000,)]
    assert query(settings, "select * from raw.current_versions order by 1") == before
    assert query(
        settings, "select unchanged, same_content from raw.batches where batch_id = 2"
    ) == [(10000, 9778)]


def test_ingest_the_same_content_parsed_otherwise_or_deleted_is_a_new_version(
    settings: Settings, tmp_path: Path
) -> None:
    """The same document is not enough: a version that needed a repair (a trailing comma)
    delivered clean is a new version (the models say whether a user's file was repaired), and
    a document a complete dump deleted comes back as a version, whatever its content."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "cut.json").write_bytes(b'{"user_id": "u0", "name": "A",}')
    (folder / "gone.json").write_bytes(b'{"user_id": "u1", "name": "B"}')
    first = ingest(settings, tmp_path)
    assert (first.loaded, first.repaired) == (2, 1)
    (folder / "gone.json").unlink()
    assert ingest(settings, tmp_path, full=True).deleted == 1
    (folder / "cut.json").write_bytes(b'{"user_id": "u0", "name": "A"}')
    (folder / "gone.json").write_bytes(b'{"name": "B", "user_id": "u1"}')
    result = ingest(settings, tmp_path)
    assert (result.loaded, result.repaired, result.unchanged, result.unchanged_reasons) == (
        2,
        0,
        0,
        {},
    )
    assert query(
        settings,
        "select document_key, parse_status, is_deleted from raw.current_versions"
        " join raw.user_documents using (document_key, content_sha256) order by 1",
    ) == [("file:cut.json", "clean", False), ("file:gone.json", "clean", False)]


def test_ingest_reverted_file_becomes_current_without_a_copy(
    settings: Settings, tmp_path: Path
) -> None:
    first, second = b'{"user_id": null, "v": 1}', b'{"user_id": null, "v": 2}'
    (tmp_path / "u.json").write_bytes(first)
    ingest(settings, tmp_path)
    (tmp_path / "u.json").write_bytes(second)
    ingest(settings, tmp_path)
    (tmp_path / "u.json").write_bytes(first)
    third = ingest(settings, tmp_path)
    assert (third.loaded, third.unchanged) == (1, 0)
    assert query(settings, "select count(*) from raw.user_documents") == [(2,)]
    assert query(settings, "select content_sha256, batch_id from raw.current_versions") == [
        (hashlib.sha256(first).hexdigest(), 3)
    ]


def test_ingest_quarantines_hopeless_file_with_bytes_intact(
    settings: Settings, tmp_path: Path
) -> None:
    hopeless = b'{"user_id": "abc", "name": \xff\xfe garbage'
    archive = make_tar(
        tmp_path / "d.tar.gz",
        {"mixed/user_9.json": hopeless, "mixed/user_1.json": b'{"user_id": null}'}.items(),
    )
    result = ingest(settings, archive)
    assert result.summary() == {
        "batch_id": 1,
        "files_read": 2,
        "files_seen": 2,
        "loaded": 1,
        "repaired": 0,
        "quarantined": 1,
        "skipped": 0,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert query(
        settings,
        "select source_name, content_sha256, reason, detail, byte_size, content"
        " from raw.quarantine",
    ) == [
        (
            "mixed/user_9.json",
            hashlib.sha256(hopeless).hexdigest(),
            "not-utf8",
            "not UTF-8 text: invalid start byte at byte 27",
            len(hopeless),
            hopeless,
        )
    ]


def test_ingest_skips_macos_metadata(settings: Settings, tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "d.tar.gz",
        {
            "mixed/user_1.json": b'{"user_id": null}',
            "mixed/._user_1.json": b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X",
            "__MACOSX/mixed/._user_2.json": b"\x00\x05\x16\x07",
            "mixed/.DS_Store": b"\x00\x00\x00\x01Bud1",
        }.items(),
    )
    result = ingest(settings, archive)
    assert result.summary() == {
        "batch_id": 1,
        "files_read": 4,
        "files_seen": 4,
        "loaded": 1,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 3,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert query(
        settings, "select source_name, status, reason from raw.batch_files order by file_seq"
    ) == [
        ("mixed/user_1.json", "loaded", None),
        ("mixed/._user_1.json", "skipped", "macos-metadata"),
        ("__MACOSX/mixed/._user_2.json", "skipped", "macos-metadata"),
        ("mixed/.DS_Store", "skipped", "macos-metadata"),
    ]
    assert query(settings, "select source_name from raw.user_documents") == [("mixed/user_1.json",)]


def test_ingest_directory_and_tarball_give_same_rows(
    settings: Settings, pg_server: Settings, real_data: Path, real_dir: Path
) -> None:
    from duel import db

    other = pg_server.with_overrides(pg_database=settings.pg_database + "_dir")
    db.ensure_ready(other)
    ingest(settings, real_data)
    ingest(other, real_dir)
    rows = (
        "select source_name, content_sha256, parse_status, repair, document"
        " from raw.user_documents order by 1"
    )
    assert query(settings, rows) == query(other, rows)


def test_ingest_failed_batch_leaves_nothing_visible(
    settings: Settings, real_data: Path, tmp_path: Path
) -> None:
    import pytest

    from duel.exceptions import SourceError

    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(real_data.read_bytes()[:1_000_000])  # ~7,000 members in, then corrupt
    with pytest.raises(SourceError, match="archive is corrupt after"):
        ingest(settings, cut)
    assert query(settings, "select count(*) from raw.user_documents") == [(0,)]
    assert query(settings, "select count(*) from raw.batch_files") == [(0,)]
    assert query(settings, "select count(*) from raw.current_versions") == [(0,)]
    assert query(settings, "select status, files_seen from raw.batches") == [("failed", None)]
    assert ingest(settings, real_data).summary()["loaded"] == 10000


def test_ingest_a_dump_without_data_fails_in_one_line_and_loads_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    # an empty folder, or one of notes only, is a delivery gone wrong, not a day with nothing
    # new: both were a succeeded batch of 0 documents, exit 0
    from duel.exceptions import SourceError

    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "users.csv").write_text("user_id,name\n1,Ann\n")
    (tmp_path / "notes" / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(SourceError) as empty:
        ingest(settings, tmp_path / "empty")
    with pytest.raises(SourceError) as notes:
        ingest(settings, tmp_path / "notes")
    assert (empty.value.message, notes.value.message) == (
        f"{tmp_path}/empty: holds no file; nothing was loaded (was it copied completely?)",
        f"{tmp_path}/notes: holds no data file (.json, .ndjson, or an archive of them): its 2"
        " files skipped as not data (macos-metadata 1, not-json 1); nothing was loaded",
    )
    assert query(settings, "select status, files_seen from raw.batches order by 1") == [
        ("failed", None),
        ("failed", None),
    ]
    assert query(settings, "select count(*) from raw.batch_files") == [(0,)]


def test_ingest_ndjson_one_document_per_line(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b'{"user_id": null, "n": 1}\n\n{"user_id": null, "n": 2}\n[3]\n')
    result = ingest(settings, path)
    assert (result.loaded, result.quarantined, result.files_seen, result.files_read) == (
        2,
        1,
        3,
        1,
    )
    assert query(
        settings, "select source_name, document->>'n' from raw.user_documents order by 1"
    ) == [("users.ndjson:1", "1"), ("users.ndjson:3", "2")]


def test_ingest_counts_each_file_read_once_however_many_documents_it_holds(
    settings: Settings, tmp_path: Path
) -> None:
    """files_seen counts documents (a line, an element, a file skipped as not data), so one
    NDJSON file of thousands of users read as thousands of files; files_read counts each file
    (an archive member) once, on the first ingest and on one that finds everything unchanged,
    in the result and in raw.batches."""
    members = [
        ("mixed/users.ndjson", b'{"user_id": "a"}\n{"user_id": "b"}\n\n{"user_id": "c"}\n'),
        ("mixed/user_d.json", b'{"user_id": "d"}'),
        ("mixed/array.json", b'[{"user_id": "e"}, {"user_id": "f"}]'),
        ("mixed/export.json", b'{"users": [{"user_id": "g"}, {"user_id": "h"}]}'),
        ("mixed/notes.txt", b"not data"),
        ("mixed/blank.ndjson", b"\n\n"),
    ]
    archive = make_tar(tmp_path / "dump.tar.gz", members)
    first = ingest(settings, archive)
    again = ingest(settings, archive)
    counts = [
        (r.files_read, r.files_seen, r.loaded, r.unchanged, r.skipped) for r in (first, again)
    ]
    assert counts == [(6, 10, 8, 0, 2), (6, 10, 0, 8, 2)]
    assert query(settings, "select files_read, files_seen from raw.batches order by batch_id") == [
        (6, 10),
        (6, 10),
    ]


def test_ingest_an_object_wrapping_users_loads_each_and_counts_them(
    settings: Settings, tmp_path: Path
) -> None:
    """`{"users": [a, 42, b]}` beside a user's own file: a and b load as documents of their own,
    keyed by their user_id, 42 is quarantined alone with its bytes, and the ledger has a row for
    each (files_seen 4, files_read 2); the wrapper was one user with every field missing."""
    (tmp_path / "export.json").write_bytes(
        b'{"users": [\n  {"user_id": "a", "n": 1.50},\n  42,\n  {"user_id": "b"}\n]}\n'
    )
    (tmp_path / "user_c.json").write_bytes(b'{"user_id": "c"}')
    result = ingest(settings, tmp_path)
    assert (result.files_read, result.files_seen, result.loaded, result.quarantined) == (
        2,
        4,
        3,
        1,
    )
    assert query(
        settings,
        "select source_name, document_key, document::text from raw.user_documents order by 1",
    ) == [
        ("export.json[0]", "user_id:a", '{"n": 1.50, "user_id": "a"}'),
        ("export.json[2]", "user_id:b", '{"user_id": "b"}'),
        ("user_c.json", "file:user_c.json", '{"user_id": "c"}'),
    ]
    assert query(
        settings,
        "select source_name, status, reason from raw.batch_files order by source_name",
    ) == [
        ("export.json[0]", "loaded", None),
        ("export.json[1]", "quarantined", "not-an-object"),
        ("export.json[2]", "loaded", None),
        ("user_c.json", "loaded", None),
    ]
    assert query(settings, "select convert_from(content, 'UTF8') from raw.quarantine") == [("42",)]


def test_ingest_half_a_surrogate_pair_quarantines_its_line_or_element_alone(
    settings: Settings, tmp_path: Path
) -> None:
    """Valid JSON whose string holds half of a UTF-16 pair (an emoji cut in two): the line or the
    array element holding it is quarantined as such, with its bytes; its neighbours load."""
    (tmp_path / "users.ndjson").write_bytes(
        b'{"user_id": null, "n": 1}\n{"user_id": null, "n": 2, "name": "Bo \\ud83d"}\n'
    )
    (tmp_path / "users.json").write_bytes(
        b'[{"user_id": null, "n": 3, "x": "\\udc00"}, {"user_id": null, "n": 4}]'
    )
    result = ingest(settings, tmp_path)
    assert (result.loaded, result.quarantined) == (2, 2)
    assert query(
        settings, "select source_name, document->>'n' from raw.user_documents order by 1"
    ) == [("users.json[1]", "4"), ("users.ndjson:1", "1")]
    assert query(
        settings,
        "select source_name, reason, split_part(detail, ' (', 1), convert_from(content, 'UTF8')"
        " from raw.quarantine order by 1",
    ) == [
        (
            "users.json[0]",
            "unpaired-surrogate",
            "a string holds \\udc00, half of a UTF-16 surrogate pair",
            '{"user_id": null, "n": 3, "x": "\\udc00"}',
        ),
        (
            "users.ndjson:2",
            "unpaired-surrogate",
            "a string holds \\ud83d, half of a UTF-16 surrogate pair",
            '{"user_id": null, "n": 2, "name": "Bo \\ud83d"}\n',
        ),
    ]


def test_ingest_ndjson_line_endings_and_order_change_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """The same lines with CRLF endings, in another order, the last without its newline: the
    same versions and identities (a line's hash held its ending: every keyed user got a new
    version of the same content, and with --full every keyless one was deleted and made anew)."""
    lines = [b'{"user_id": "u1", "n": 1}', b'{"user_id": null, "n": 2}', b'{"n": 3}']
    first = tmp_path / "a.ndjson"
    first.write_bytes(b"\n".join(lines) + b"\n")
    assert ingest(settings, first, full=True).loaded == 3
    for name, text in [
        ("b.ndjson", b"\r\n".join(lines) + b"\r\n"),
        ("c.ndjson", b"\n".join(reversed(lines))),
        ("d.ndjson", b"\r\n".join([lines[1], lines[2], lines[0]])),
    ]:
        again = tmp_path / name
        again.write_bytes(text)
        result = ingest(settings, again, full=True)
        assert (result.loaded, result.unchanged, result.deleted) == (0, 3, 0), name
    assert query(settings, "select count(*), count(distinct batch_id) from raw.user_documents") == [
        (3, 1)
    ]


def test_ingest_ndjson_user_ids_that_stand_for_no_value_merge_no_one(
    settings: Settings, tmp_path: Path
) -> None:
    # "null", "N/A", "unknown" (var placeholders, every_field) identify no one: three people
    # whose records carry them stay three documents, each identified by its content (keyless),
    # where a key "user_id:null" made the last of them replace the others
    path = tmp_path / "users.ndjson"
    lines = [
        {"user_id": "null", "name": "Ada"},
        {"user_id": " N/A ", "name": "Bob"},
        {"user_id": "NULL", "name": "Cy"},
        {"user_id": "unknown", "name": "Di"},
        {"user_id": "u-7", "name": "Ed"},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    result = ingest(settings, path)
    assert (result.files_seen, result.loaded, result.keyless) == (5, 5, 4)
    assert query(
        settings,
        "select d.document->>'name', starts_with(c.document_key, 'content:')"
        " from raw.current_versions c join raw.user_documents d"
        " using (document_key, content_sha256) order by 1",
    ) == [("Ada", True), ("Bob", True), ("Cy", True), ("Di", True), ("Ed", False)]


def test_ingest_duplicate_member_names_keep_the_last(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dup.tar"
    with tarfile.open(path, "w") as archive:
        for data in (b'{"v": 1}', b'{"v": 2}'):
            info = tarfile.TarInfo("mixed/user_1.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    result = ingest(settings, path)
    assert (result.files_seen, result.loaded) == (2, 2)
    assert query(
        settings,
        "select d.document->>'v' from raw.current_versions c join raw.user_documents d"
        " using (source_name, content_sha256)",
    ) == [("2",)]


@pytest.mark.parametrize("batch_rows", [5000, 1])
@pytest.mark.parametrize("form", ["tar", "ndjson"])
def test_ingest_a_document_delivered_twice_in_one_dump_is_unchanged_when_delivered_again(
    settings: Settings, tmp_path: Path, form: str, batch_rows: int
) -> None:
    """A dump that holds a document twice (a repeated tar member; a user's NDJSON record
    twice, identified by user_id), its last copy current: delivered again, it changes nothing.
    The first copy moves the pointer and the last moves it back, so the batch restores the
    pointer as it was and counts both copies unchanged, in one write chunk or several."""
    user = "1f0e8a52-1f1b-4a8e-9a53-2d4f8d2c0b11"
    first = orjson.dumps({"user_id": user, "name": "A"})
    last = orjson.dumps({"user_id": user, "name": "B"})
    if form == "tar":
        path = tmp_path / "dup.tar"
        with tarfile.open(path, "w") as archive:
            for data in (first, last):
                info = tarfile.TarInfo("mixed/user_1.json")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    else:
        path = tmp_path / "users.ndjson"
        path.write_bytes(first + b"\n" + last + b"\n")
    chunked = settings.with_overrides(batch_rows=batch_rows)
    assert (ingest(chunked, path).loaded, ingest(chunked, path).loaded) == (2, 0)
    again = ingest(chunked, path)
    assert (again.loaded, again.unchanged, again.files_seen) == (0, 2, 2)
    assert query(
        settings, "select batch_id, status, count(*) from raw.batch_files group by 1, 2 order by 1"
    ) == [(1, "loaded", 2), (2, "unchanged", 2), (3, "unchanged", 2)]
    assert query(
        settings,
        "select c.batch_id, d.document->>'name' from raw.current_versions c"
        " join raw.user_documents d using (document_key, content_sha256)",
    ) == [(1, "B")]
    assert query(settings, "select unchanged, loaded from raw.batches order by batch_id") == [
        (0, 2),
        (2, 0),
        (2, 0),
    ]
    # each later batch moved the pointer and moved it back: it replaced nothing
    assert query(settings, "select count(*) from raw.replaced_versions") == [(0,)]


def test_ingest_records_every_state_a_pointer_replaced(settings: Settings, tmp_path: Path) -> None:
    """raw.replaced_versions: a changed document, a deleted one and its return each leave the
    state they replaced, current from the batch that made it current to the one that replaced
    it (the batches' times); a document changed twice in one batch leaves one row, and a
    document new in a batch none."""
    a1, a2, a3 = (orjson.dumps({"user_id": None, "n": n}) for n in (1, 2, 3))
    b1 = orjson.dumps({"user_id": None, "m": 1})
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "a.json").write_bytes(a1)
    (tmp_path / "d1" / "b.json").write_bytes(b1)
    ingest(settings, tmp_path / "d1")
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "a.json").write_bytes(a2)
    assert ingest(settings, tmp_path / "d2", full=True).deleted == 1
    twice = tmp_path / "twice.tar"  # a.json twice, then b.json back as it was
    with tarfile.open(twice, "w") as archive:
        for name, data in (("a.json", a3), ("a.json", a1), ("b.json", b1)):
            info = tarfile.TarInfo(f"d3/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert ingest(settings, twice).loaded == 3
    sha = {
        hashlib.sha256(data).hexdigest(): name
        for name, data in (("a1", a1), ("a2", a2), ("b1", b1))
    }
    sha["deleted"] = "tombstone"
    rows = query(
        settings,
        "select r.document_key, r.content_sha256, r.batch_id, r.is_deleted, began.batch_id,"
        " ended.batch_id, r.replaced_by_batch_id"
        " from raw.replaced_versions as r"
        " join raw.batches as began on began.started_at = r.valid_from"
        " join raw.batches as ended on ended.started_at = r.valid_to"
        " order by 1, r.valid_from",
    )
    assert [(k, sha[s], *rest) for k, s, *rest in rows] == [
        ("file:a.json", "a1", 1, False, 1, 2, 2),
        ("file:a.json", "a2", 2, False, 2, 3, 3),
        ("file:b.json", "b1", 1, False, 1, 2, 2),
        ("file:b.json", "tombstone", 2, True, 2, 3, 3),
    ]
    assert query(
        settings,
        "select c.document_key, c.batch_id, c.is_deleted, c.updated_at = b.started_at"
        " from raw.current_versions as c join raw.batches as b using (batch_id) order by 1",
    ) == [("file:a.json", 3, False, True), ("file:b.json", 3, False, True)]


def test_ingest_parallel_gives_same_rows_as_single_process(
    settings: Settings, pg_server: Settings, real_data: Path
) -> None:
    from duel import db

    parallel = pg_server.with_overrides(
        pg_database=settings.pg_database + "_par", workers=2, batch_rows=700
    )
    db.ensure_ready(parallel)
    single = settings.with_overrides(workers=1)
    assert ingest(parallel, real_data).summary() == ingest(single, real_data).summary()
    rows = (
        "select f.file_seq, f.source_name, f.status, d.content_sha256, d.parse_status, d.repair, "
        "d.document"
        " from raw.batch_files f left join raw.user_documents d using (source_name, content_sha256)"
        " order by f.file_seq"
    )
    assert query(parallel, rows) == query(single, rows)


def test_ingest_shards_load_side_by_side_but_exclude_whole_ingests(
    settings: Settings, tmp_path: Path
) -> None:
    import psycopg
    import pytest

    from duel.exceptions import LockTimeout
    from duel.sources import iter_source

    (tmp_path / "a.json").write_bytes(b'{"user_id": null, "n": 1}')
    (tmp_path / "b.json").write_bytes(b'{"user_id": null, "n": 2}')
    quick = settings.with_overrides(lock_timeout_s=1.0)
    files = {f.name: f for f in iter_source(tmp_path, 1000)}
    with psycopg.connect(**settings.conninfo()) as held:  # type: ignore[arg-type]
        # what shard 1/2 holds while it loads
        held.execute("select pg_advisory_xact_lock_shared(hashtext('duel.ingest'))")
        held.execute("select pg_advisory_xact_lock(hashtext('duel.ingest:1/2'))")
        assert ingest(quick, tmp_path, files=[files["b.json"]], shard="2/2").loaded == 1
        with pytest.raises(LockTimeout, match=r"^another run holds the ingest lock \(waited 1s\)"):
            ingest(quick, tmp_path, files=[files["a.json"]], shard="1/2")
        with pytest.raises(LockTimeout, match=r"^another run holds the ingest lock \(waited 1s\)"):
            ingest(quick, tmp_path)
    assert ingest(quick, tmp_path).summary() == {
        "batch_id": 2,
        "files_read": 2,
        "files_seen": 2,
        "loaded": 1,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 1,
        "deleted": 0,
        "keyless": 0,
    }


def test_write_chunk_quarantines_the_one_document_the_database_refuses(settings: Settings) -> None:
    """Whatever the parser let through that Postgres cannot store (here a number jsonb refuses,
    built without the parser) costs only that document: the chunk is halved down to it."""
    import psycopg

    from duel.load import _Batch, _JsonTextDumper, finish_batch
    from duel.parse import Outcome
    from duel.repair import Parsed

    def outcome(n: int, text: bytes) -> Outcome:
        sha = hashlib.sha256(text).hexdigest()
        return Outcome(
            f"mixed/u{n}.json",
            "clean",
            len(text),
            sha,
            Parsed("clean", text),
            key=f"file:u{n}.json",
        )

    chunk = [outcome(n, b'{"n": %d}' % n) for n in range(7)]
    chunk[4] = outcome(4, b'{"n": 1e-20000}')
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        conn.adapters.register_dumper(None, _JsonTextDumper)
        batch_id = conn.execute(
            "insert into raw.batches (source_uri, status, duel_version)"
            " values ('t', 'running', 't') returning batch_id"
        ).fetchone()[0]  # type: ignore[index]
        batch = _Batch(conn, batch_id, settings.repair_policy, KeyRule.parse("@file"))
        batch.write_chunk(chunk)
        finish_batch(conn, batch_id, batch.counts)
    assert (batch.counts["loaded"], batch.counts["quarantined"], batch.quarantine_reasons) == (
        6,
        1,
        {"database-refused": 1},
    )
    assert query(settings, "select source_name, reason, content from raw.quarantine") == [
        ("mixed/u4.json", "database-refused", b'{"n": 1e-20000}')
    ]
    assert query(settings, "select file_seq, status from raw.batch_files order by 1") == [
        (0, "loaded"),
        (1, "loaded"),
        (2, "loaded"),
        (3, "loaded"),
        (4, "quarantined"),
        (5, "loaded"),
        (6, "loaded"),
    ]
    assert query(settings, "select count(*) from raw.user_documents") == [(6,)]


def _counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bytes of every file the ingest parses from now on (a spy on the real parser)."""
    parsed: list[bytes] = []
    real = parse.parse_document

    def spy(data: bytes, policy: str = "safe") -> Any:
        parsed.append(data)
        return real(data, policy)

    monkeypatch.setattr(parse, "parse_document", spy)
    return parsed


def test_ingest_parses_only_files_whose_bytes_are_not_their_documents_current_version(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "mixed"
    dump.mkdir()
    for n in range(4):
        (dump / f"u{n}.json").write_bytes(b'{"user_id": "%d", "v": 1}' % n)
    ingest(settings, tmp_path)
    (dump / "u2.json").write_bytes(b'{"user_id": "2", "v": 2}')
    (dump / "u9.json").write_bytes(b'\xef\xbb\xbf{"user_id": "9"}')  # new, with a BOM
    parsed = _counting_parses(monkeypatch)
    second = ingest(settings, tmp_path)
    assert sorted(parsed) == [b'{"user_id": "2", "v": 2}', b'\xef\xbb\xbf{"user_id": "9"}']
    assert (second.loaded, second.repaired, second.unchanged, second.files_seen) == (2, 1, 3, 5)
    assert query(
        settings,
        "select file_seq, source_name, status, document_key from raw.batch_files"
        " where batch_id = 2 order by 1",
    ) == [
        (0, "mixed/u0.json", "unchanged", "file:u0.json"),
        (1, "mixed/u1.json", "unchanged", "file:u1.json"),
        (2, "mixed/u2.json", "loaded", "file:u2.json"),
        (3, "mixed/u3.json", "unchanged", "file:u3.json"),
        (4, "mixed/u9.json", "repaired", "file:u9.json"),
    ]
    parsed.clear()
    assert ingest(settings, tmp_path).unchanged == 5 and parsed == []


@pytest.mark.parametrize("batch_rows", [5000, 1])
def test_ingest_parses_a_known_file_when_the_batch_moved_its_document_first(
    settings: Settings, tmp_path: Path, batch_rows: int
) -> None:
    """x/u.json twice in a tar.gz is one document delivered twice. The second dump changes it,
    then delivers its current bytes again: that is the document's last delivery, whether both
    are in one write chunk or not, so the document is as it was."""
    v1, v2 = b'{"user_id": "u", "v": 1}', b'{"user_id": "u", "v": 2}'
    (tmp_path / "one" / "x").mkdir(parents=True)
    (tmp_path / "one" / "x" / "u.json").write_bytes(v1)
    ingest(settings, tmp_path / "one")
    two = make_tar(tmp_path / "two.tar.gz", [("x/u.json", v2), ("x/u.json", v1)])
    second = ingest(settings.with_overrides(batch_rows=batch_rows), two)
    # its last delivery is the version it had: the batch changed nothing for it, and says so
    # (v2's bytes are stored, a version delivered; v1's delivery is unchanged)
    assert (second.loaded, second.unchanged) == (1, 1)
    assert query(
        settings, "select source_name, status from raw.batch_files where batch_id = 2 order by 1"
    ) == [("x/u.json", "loaded"), ("x/u.json", "unchanged")]
    assert query(
        settings, "select content_sha256, source_name, batch_id from raw.current_versions"
    ) == [(hashlib.sha256(v1).hexdigest(), "x/u.json", 1)]
    assert query(settings, "select count(*) from raw.user_documents") == [(2,)]


def test_ingest_parses_again_a_current_version_that_needed_a_rewrite(
    settings: Settings, tmp_path: Path
) -> None:
    """A file loaded under the lenient policy with a rewriting repair is not taken as known: a
    run under the safe policy quarantines it, as it would any such file."""
    rewrite = TEXT.replace('"name": "Ann"', '"name": Ann')  # an unquoted word: a guessed value
    (tmp_path / "u.json").write_bytes(rewrite.encode())
    lenient = settings.with_overrides(repair_policy="lenient")
    assert ingest(lenient, tmp_path).repaired == 1
    assert ingest(lenient, tmp_path).unchanged == 1
    safe = ingest(settings, tmp_path)
    assert (safe.quarantined, safe.unchanged, safe.quarantine_reasons) == (
        1,
        0,
        {"repair-rewrites-content": 1},
    )


def test_ingest_a_key_of_any_length_loads(settings: Settings, tmp_path: Path) -> None:
    """A user_id of 3,000 characters (an NDJSON line) and a path of 3,000 (a file of its own) are
    keyed by their digest and load beside the others, where one such key failed the whole
    batch (a btree entry stops at 2,704 bytes)."""
    long_id = "".join(random.Random(3).choices(string.ascii_lowercase, k=3000))
    lines = [{"user_id": long_id, "name": "Long"}, {"user_id": "short-1", "name": "Short"}]
    deep_path = "d" * 2990 + "/user_9.json"  # inside the dump's top folder, `dump/`
    dump = make_tar(
        tmp_path / "dump.tar.gz",
        [
            ("dump/users.ndjson", b"\n".join(orjson.dumps(u) for u in lines)),
            (f"dump/{deep_path}", b'{"name": "Deep"}'),
        ],
    )
    result = ingest(settings, dump)
    assert (result.loaded, result.quarantined, result.skipped) == (3, 0, 0)
    digest = hashlib.sha256(long_id.encode()).hexdigest()
    deep = hashlib.sha256(deep_path.encode()).hexdigest()
    assert query(
        settings,
        "select document_key, document ->> 'name' from raw.user_documents order by 2",
    ) == [
        (f"file~sha256:{deep}", "Deep"),
        (f"user_id~sha256:{digest}", "Long"),
        ("user_id:short-1", "Short"),
    ]


def test_ingest_a_quarantined_file_of_any_name_is_stored_once(
    settings: Settings, tmp_path: Path
) -> None:
    """A broken file named by a path of 3,000 random letters is quarantined beside a file that
    loads (the quarantine's index on the name failed the whole batch), and delivered again it
    is stored once."""
    name = "dump/" + "".join(random.Random(5).choices(string.ascii_lowercase, k=3000)) + "/u.json"
    members = [(name, b'{"user_id": '), ("dump/ok.json", b'{"user_id": "ok"}')]
    for batch in ("first.tar.gz", "again.tar.gz"):
        result = ingest(settings, make_tar(tmp_path / batch, members))
        assert (result.quarantined, result.loaded + result.unchanged) == (1, 1)
    assert query(
        settings, "select source_name = %s, batch_id, reason from raw.quarantine", (name,)
    ) == [(True, 1, "repair-incomplete")]


def test_ingest_a_quarantined_file_named_with_a_backslash_is_stored(
    settings: Settings, tmp_path: Path
) -> None:
    """A broken file whose name holds a backslash, or a byte that is not UTF-8 (stored as
    `\\xNN`), is quarantined beside a file that loads: the quarantine's index cast the name to
    bytea, which reads a backslash as an escape, and the whole batch failed, every day."""
    folder = tmp_path / "dump" / "mixed"
    folder.mkdir(parents=True)
    names = [b"user_\\1.json", b"user_\xe9.json", b"\\x41.json", b"a\\\\b.json"]
    for raw_name in names:
        (folder / os.fsdecode(raw_name)).write_bytes(b'{"user_id": ')
    (folder / "ok.json").write_bytes(b'{"user_id": "ok"}')
    for _ in range(2):
        result = ingest(settings, tmp_path / "dump")
        assert (result.quarantined, result.loaded + result.unchanged) == (4, 1)
    # a name's own backslash is stored as two, so that `\\x41.json` in letters is not the
    # escape of a byte (sources.storable_name)
    assert query(settings, "select source_name, batch_id from raw.quarantine order by 1") == [
        ("mixed/\\\\x41.json", 1),
        ("mixed/a\\\\\\\\b.json", 1),
        ("mixed/user_\\\\1.json", 1),
        ("mixed/user_\\xe9.json", 1),
    ]
