"""Complete dumps (`--full`): absent documents get tombstones, and the guard against wiping."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import query, run_cli
from tar_files import make_tar

from duel.exceptions import MassDelete
from duel.load import ingest
from duel.settings import Settings

RAW = (
    "raw.batches",
    "raw.user_documents",
    "raw.current_versions",
    "raw.batch_files",
    "raw.quarantine",
)


def dump(path: Path, names: range, *, top: str = "mixed") -> Path:
    (path / top).mkdir(parents=True)
    for n in names:
        (path / top / f"user_{n}.json").write_text(
            json.dumps({"user_id": None, "name": f"User {n}"})
        )
    return path


def raw_counts(settings: Settings) -> dict[str, int]:
    return {table: int(query(settings, f"select count(*) from {table}")[0][0]) for table in RAW}  # type: ignore[call-overload]


def test_ingest_full_deletes_absent_documents(settings: Settings, tmp_path: Path) -> None:
    ingest(settings, dump(tmp_path / "a", range(10)))
    result = ingest(
        settings, dump(tmp_path / "b", range(2, 10), top="export-2025-07-24"), full=True
    )
    assert result.summary() == {
        "batch_id": 2,
        "files_read": 8,
        "files_seen": 8,
        "loaded": 0,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 8,
        "deleted": 2,
        "keyless": 0,
    }
    assert query(
        settings,
        "select document_key, content_sha256, is_deleted, batch_id from raw.current_versions"
        " where is_deleted order by 1",
    ) == [("file:user_0.json", "deleted", True, 2), ("file:user_1.json", "deleted", True, 2)]
    assert query(
        settings,
        "select file_seq, source_name, status, reason, document_key from raw.batch_files"
        " where batch_id = 2 and status = 'deleted' order by 1",
    ) == [
        (8, "mixed/user_0.json", "deleted", "absent-from-full-dump", "file:user_0.json"),
        (9, "mixed/user_1.json", "deleted", "absent-from-full-dump", "file:user_1.json"),
    ]
    assert query(settings, "select deleted, is_full from raw.batches order by batch_id") == [
        (0, False),
        (2, True),
    ]


def test_ingest_full_of_the_same_export_as_a_directory_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    # a tar.gz of the export folder, then the folder itself with --full: one identity per file
    # (`eu/user_1.json` is not the folder's `user_1.json`), so nothing changed, nothing deleted
    export = tmp_path / "export"
    (export / "eu").mkdir(parents=True)
    users = {
        "user_1.json": {"user_id": "u1", "name": "Root One"},
        "eu/user_1.json": {"user_id": "e1", "name": "EU One"},
        "user_2.json": {"user_id": "u2", "name": "Root Two"},
    }
    for name, user in users.items():
        (export / name).write_text(json.dumps(user))
    tar = make_tar(
        tmp_path / "export.tar.gz",
        [(f"export/{name}", (export / name).read_bytes()) for name in users],
    )
    assert ingest(settings, tar).summary()["loaded"] == 3
    again = ingest(settings, export, full=True).summary()
    assert (again["loaded"], again["unchanged"], again["deleted"]) == (0, 3, 0)
    assert query(
        settings,
        "select current.document_key, doc.document ->> 'name' from raw.current_versions current"
        " join raw.user_documents doc using (document_key, content_sha256) order by 1",
    ) == [
        ("file:eu/user_1.json", "EU One"),
        ("file:user_1.json", "Root One"),
        ("file:user_2.json", "Root Two"),
    ]


def test_ingest_without_full_never_deletes(settings: Settings, tmp_path: Path) -> None:
    ingest(settings, dump(tmp_path / "a", range(10)))
    result = ingest(settings, dump(tmp_path / "b", range(1)))
    assert (result.deleted, raw_counts(settings)["raw.current_versions"]) == (0, 10)
    assert query(settings, "select count(*) from raw.current_versions where is_deleted") == [(0,)]


def test_ingest_full_a_deleted_document_comes_back_as_a_new_version(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, dump(tmp_path / "a", range(4)))
    ingest(settings, dump(tmp_path / "b", range(1, 4)), full=True)
    back = ingest(settings, dump(tmp_path / "c", range(4)), full=True)
    assert (back.loaded, back.unchanged, back.deleted) == (1, 3, 0)
    assert query(
        settings,
        "select is_deleted, batch_id from raw.current_versions"
        " where document_key = 'file:user_0.json'",
    ) == [(False, 3)]
    assert query(
        settings,
        "select parse_status from raw.user_documents where document_key = 'file:user_0.json'"
        " order by batch_id",
    ) == [("clean",), ("deleted",)]


def test_ingest_full_refuses_a_mass_delete_and_writes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, dump(tmp_path / "a", range(10)))
    before = raw_counts(settings)
    with pytest.raises(MassDelete) as refused:
        ingest(settings, _with_new(dump(tmp_path / "b", range(4), top="other")), full=True)
    assert str(refused.value) == (
        "refused: this complete (--full) dump would delete 6 of 10 current documents (more than "
        "half); nothing "
        "was written. If that is right, run it again with --allow-mass-delete"
    )
    assert (refused.value.deleting, refused.value.current) == (6, 10)
    assert raw_counts(settings) == before


def _with_new(path: Path) -> Path:
    (path / "other" / "user_99.json").write_text('{"user_id": null, "name": "New"}')
    return path


def test_ingest_full_allow_mass_delete_deletes(settings: Settings, tmp_path: Path) -> None:
    ingest(settings, dump(tmp_path / "a", range(10)))
    result = ingest(settings, dump(tmp_path / "b", range(4)), full=True, allow_mass_delete=True)
    assert (
        result.deleted,
        query(settings, "select count(*) from raw.current_versions where not is_deleted"),
    ) == (6, [(4,)])


def test_ingest_full_empty_dump_never_wipes_even_when_allowed(
    settings: Settings, tmp_path: Path
) -> None:
    ingest(settings, dump(tmp_path / "a", range(3)))
    before = raw_counts(settings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        MassDelete,
        match=r"^refused: this complete \(--full\) dump holds no document, so it "
        r"would delete all 3 current documents",
    ):
        ingest(settings, tmp_path / "empty", full=True, allow_mass_delete=True)
    assert raw_counts(settings) == before


def test_cli_ingest_full_mass_delete_is_one_line_exit_1(settings: Settings, tmp_path: Path) -> None:
    assert run_cli(settings, "ingest", str(dump(tmp_path / "a", range(4)))).returncode == 0
    refused = run_cli(settings, "ingest", str(dump(tmp_path / "b", range(1))), "--full", "--json")
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1,
        "",
        "error: refused: this complete (--full) dump would delete 3 of 4 current documents (more "
        "than "
        "half); nothing was written. If that is right, run it again with --allow-mass-delete\n",
    )
    allowed = run_cli(
        settings, "ingest", str(tmp_path / "b"), "--full", "--allow-mass-delete", "--json"
    )
    assert (allowed.returncode, json.loads(allowed.stdout)["deleted"]) == (0, 3)


def test_cli_ingest_document_key_flag_sets_the_identity(settings: Settings, tmp_path: Path) -> None:
    lines = tmp_path / "users.ndjson"
    lines.write_text(
        '{"user_id": "a1", "email": "X@Y.COM"}\n{"user_id": null, "email": "z@y.com"}\n'
        '{"user_id": null, "email": "invalid-email"}\n'
    )
    result = run_cli(settings, "ingest", str(lines), "--json", DUEL_DOCUMENT_KEY="nope!")
    assert (result.returncode, result.stderr) == (
        1,
        "error: DUEL_DOCUMENT_KEY: 'nope!' is neither @file nor a top-level field name\n",
    )
    result = run_cli(settings, "ingest", str(lines), "--json", "--document-key", "email,user_id")
    assert (result.returncode, json.loads(result.stdout)["keyless"]) == (0, 1)
    keys = [
        key
        for (key,) in query(settings, "select document_key from raw.current_versions order by 1")
    ]
    assert keys[0].startswith("content:") and keys[1:] == ["email:x@y.com", "email:z@y.com"]


def test_cli_ingest_full_withholds_deletes_while_a_quarantined_line_is_unidentified(
    settings: Settings, tmp_path: Path
) -> None:
    """A broken NDJSON line has no key (no file of its own, nothing read from it), so it may be
    any absent user: a complete dump holding one deletes nothing, and says so; the next
    complete dump without a broken line deletes what it lacks."""
    users = [json.dumps({"user_id": f"u{n}", "name": f"User {n}"}) for n in range(6)]
    first = tmp_path / "users.ndjson"
    first.write_text("\n".join(users) + "\n")
    assert run_cli(settings, "ingest", str(first)).returncode == 0
    broken = tmp_path / "broken.ndjson"
    broken.write_text("\n".join([*users[:3], users[3][:12], *users[4:]]) + "\n")
    result = run_cli(settings, "ingest", str(broken), "--full")
    assert result.returncode == 0
    assert (
        "  deleted              0  (a complete dump: current documents it did not hold)\n"
        "  withheld             1  (not deleted though absent: 1 quarantined document(s) of this"
        " dump could not be identified and may be any of them; a complete dump without them"
        " deletes them)\n"
    ) in result.stderr
    current = "select document_key from raw.current_versions where not is_deleted order by 1"
    assert [k for (k,) in query(settings, current)] == [f"user_id:u{n}" for n in range(6)]
    again = run_cli(settings, "ingest", str(broken), "--full", "--json")
    assert (json.loads(again.stdout)["deleted"], json.loads(again.stdout)["deletes_withheld"]) == (
        0,
        1,
    )
    without = tmp_path / "without.ndjson"
    without.write_text("\n".join([*users[:3], *users[4:]]) + "\n")
    done = json.loads(run_cli(settings, "ingest", str(without), "--full", "--json").stdout)
    assert (done["deleted"], "deletes_withheld" in done) == (1, False)
    assert [k for (k,) in query(settings, current)] == [f"user_id:u{n}" for n in range(6) if n != 3]
    # each batch keeps what it withheld: NULL where the dump was not complete, 0 where nothing was
    assert query(
        settings, "select batch_id, is_full, deleted, deletes_withheld from raw.batches order by 1"
    ) == [(1, False, 0, None), (2, True, 0, 1), (3, True, 0, 1), (4, True, 1, 0)]


def test_ingest_full_a_broken_line_whose_user_id_is_readable_is_that_users_delivery(
    settings: Settings, tmp_path: Path
) -> None:
    """A broken NDJSON line whose user_id is whole before the damage is that user's delivery
    (identity.salvaged_key): quarantined under its key, it keeps its user from being deleted and
    withholds nothing, so the complete dump deletes the user it lacks."""
    users = [json.dumps({"user_id": f"u{n}", "name": f"User {n}"}) for n in range(6)]
    first = tmp_path / "users.ndjson"
    first.write_text("\n".join(users) + "\n")
    ingest(settings, first)
    broken = tmp_path / "broken.ndjson"
    broken.write_text("\n".join([*users[:3], users[3][:24], *users[4:5]]) + "\n")
    assert users[3][:24] == '{"user_id": "u3", "name"'
    result = ingest(settings, broken, full=True)
    assert (result.quarantined, result.deleted, result.summary().get("deletes_withheld")) == (
        1,
        1,
        None,
    )
    assert query(settings, "select source_name, document_key from raw.quarantine") == [
        ("broken.ndjson:4", "user_id:u3")
    ]
    current = "select document_key from raw.current_versions where not is_deleted order by 1"
    assert [k for (k,) in query(settings, current)] == [f"user_id:u{n}" for n in range(5)]


def test_ingest_full_two_users_on_one_line_are_no_one_and_delete_neither(
    settings: Settings, tmp_path: Path
) -> None:
    """A line holding two users (a lost newline) is quarantined whole: it may be either, so it is
    no one's, and a complete dump holding it withholds its deletes (keyed by the first user, it
    deleted the second)."""
    users = [json.dumps({"user_id": f"u{n}", "name": f"User {n}"}) for n in range(6)]
    first = tmp_path / "users.ndjson"
    first.write_text("\n".join(users) + "\n")
    ingest(settings, first)
    merged = tmp_path / "merged.ndjson"
    merged.write_text("\n".join([*users[:3], users[3] + users[4], users[5]]) + "\n")
    result = ingest(settings, merged, full=True)
    assert (result.quarantined, result.deleted, result.summary()["deletes_withheld"]) == (1, 0, 2)
    current = "select document_key from raw.current_versions where not is_deleted order by 1"
    assert [k for (k,) in query(settings, current)] == [f"user_id:u{n}" for n in range(6)]


def test_ingest_full_a_broken_file_keyed_by_a_field_first_is_its_readable_users_delivery(
    settings: Settings, tmp_path: Path
) -> None:
    """Under a rule that reads a field before the path, a broken file whose user_id is whole
    before the damage is that user's delivery; one cut before its user_id is still no one, and
    a complete dump holding it withholds its deletes."""
    fields_first = dataclasses.replace(settings, document_key="user_id,@file")
    users = [json.dumps({"user_id": f"u{n}", "name": f"User {n}"}) for n in range(5)]
    files = tmp_path / "files"
    files.mkdir()
    for n, user in enumerate(users):
        (files / f"user_{n}.json").write_text(user)
    ingest(fields_first, files)
    (files / "user_4.json").write_text(users[4][:24])
    (files / "user_2.json").unlink()
    again = ingest(fields_first, files, full=True)
    assert (again.quarantined, again.deleted) == (1, 1)
    current = "select document_key from raw.current_versions where not is_deleted order by 1"
    assert [k for (k,) in query(settings, current)] == [f"user_id:u{n}" for n in (0, 1, 3, 4)]
    (files / "user_3.json").write_text(users[3][:12])  # `{"user_id": `: no one
    (files / "user_1.json").unlink()
    withheld = ingest(fields_first, files, full=True)
    # u1, and u3 itself: no delivery of it can be told
    assert (withheld.deleted, withheld.summary()["deletes_withheld"]) == (0, 2)
    assert query(settings, "select document_key from raw.quarantine order by 1") == [
        (f"content:{hashlib.sha256(users[3][:12].encode()).hexdigest()}",),
        ("user_id:u4",),
    ]


def test_ingest_full_withholds_deletes_while_an_ndjson_member_is_unreadable(
    settings: Settings, tmp_path: Path
) -> None:
    """A corrupt NDJSON member holds users it cannot name (each is keyed by its user_id): it
    is none of them, so a complete dump holding one withholds its deletes as for a broken line;
    the same holds for a broken file under a rule that reads a field before the path."""
    users = [json.dumps({"user_id": f"u{n}", "name": f"User {n}"}) for n in range(4)]
    packed = gzip.compress(("\n".join(users) + "\n").encode())
    ingest(settings, make_tar(tmp_path / "a.tar.gz", [("d/users.ndjson.gz", packed)]))
    cut = make_tar(tmp_path / "b.tar.gz", [("d/users.ndjson.gz", packed[: len(packed) // 2])])
    result = ingest(settings, cut, full=True)
    assert (result.quarantined, result.deleted, result.summary()["deletes_withheld"]) == (1, 0, 4)
    assert query(settings, "select left(document_key, 8) = 'content:' from raw.quarantine") == [
        (True,)
    ]
    assert query(settings, "select count(*) from raw.current_versions where not is_deleted") == [
        (4,)
    ]


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        # a zip of users cut in half: its members cannot be read, nor named
        ("d/inner.zip", lambda packed: packed[: len(packed) // 2]),
        # an array of users that cannot be split (cut short): none of them is the file
        ("d/users.json", lambda users: users[:-2]),
        # as is a list of users an object wraps, `{"users": [...]}`
        ("d/wrapped.json", lambda users: users[:-3]),
    ],
)
def test_ingest_full_withholds_deletes_while_a_file_of_many_users_is_unreadable(
    settings: Settings, tmp_path: Path, name: str, broken: Any
) -> None:
    """A nested archive or a JSON array of users (or one an object wraps) holds users keyed by
    their fields: quarantined, it is none of them (it was keyed by its own path, so a complete
    dump deleted its users)."""
    users = [{"user_id": f"u{n}", "name": f"User {n}"} for n in range(3)]
    if name.endswith(".zip"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for n, user in enumerate(users):
                archive.writestr(f"mixed/user_{n}.json", json.dumps(user))
        whole = buffer.getvalue()
    elif name == "d/wrapped.json":
        whole = json.dumps({"users": users}).encode()
    else:
        whole = json.dumps(users).encode()
    others = [(f"d/other_{n}.json", json.dumps({"name": f"Other {n}"}).encode()) for n in range(4)]
    ingest(settings, make_tar(tmp_path / "a.tar.gz", [(name, whole), *others]))
    result = ingest(
        settings, make_tar(tmp_path / "b.tar.gz", [(name, broken(whole)), *others]), full=True
    )
    assert (result.quarantined, result.deleted, result.summary()["deletes_withheld"]) == (1, 0, 3)
    assert query(settings, "select count(*) from raw.current_versions where not is_deleted") == [
        (7,)
    ]
