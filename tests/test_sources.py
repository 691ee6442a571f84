"""duel.sources: what counts as a data file, and how each kind of input is read."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from duel.exceptions import SourceError
from duel.sources import SourceFile, identity_path, iter_source, not_data_reason, safe_member_name


def add(archive: tarfile.TarFile, name: str, data: bytes = b"{}", kind: bytes = tarfile.REGTYPE,
        linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("mixed/user_1.json", None),
        ("mixed/USER_2.JSON", None),
        ("mixed/._user_1.json", "macos-metadata"),
        ("__MACOSX/mixed/user_1.json", "macos-metadata"),
        ("mixed/.DS_Store", "macos-metadata"),
        ("mixed/notes.txt", "not-json"),
        ("mixed/user_1.json.bak", "not-json"),
    ],
)
def test_not_data_reason_classifies_names(name: str, reason: str | None) -> None:
    assert not_data_reason(name) == reason


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("mixed/user_1.json", "mixed/user_1.json"),
        ("./mixed/user_1.json", "mixed/user_1.json"),
        ("mixed//user_1.json", "mixed/user_1.json"),
        ("mixed/../user_1.json", "user_1.json"),
        ("../user_1.json", None),
        ("mixed/../../user_1.json", None),
        ("/etc/user_1.json", None),
        ("C:/user_1.json", None),
        ("mixed\\..\\user_1.json", None),
    ],
)
def test_safe_member_name_refuses_escapes(name: str, safe: str | None) -> None:
    assert safe_member_name(name) == safe


def test_iter_source_tar_skips_and_never_follows(tmp_path: Path) -> None:
    path = tmp_path / "d.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        add(archive, "mixed", kind=tarfile.DIRTYPE)
        add(archive, "mixed/user_1.json", b'{"a": 1}')
        add(archive, "mixed/._user_1.json", b"\x00\x05\x16\x07")
        add(archive, "__MACOSX/mixed/._user_1.json", b"\x00")
        add(archive, "../evil.json", b"{}")
        add(archive, "mixed/link.json", kind=tarfile.SYMTYPE, linkname="/etc/passwd")
        add(archive, "mixed/hard.json", kind=tarfile.LNKTYPE, linkname="mixed/user_1.json")
        add(archive, "mixed/big.json", b"x" * 50)
    assert list(iter_source(path, max_bytes=40)) == [
        SourceFile("mixed/user_1.json", b'{"a": 1}', 8, key_path="user_1.json"),
        SourceFile("mixed/._user_1.json", size=4, skip_reason="macos-metadata"),
        SourceFile("__MACOSX/mixed/._user_1.json", size=1, skip_reason="macos-metadata"),
        SourceFile("../evil.json", skip_reason="unsafe-path"),
        SourceFile("mixed/link.json", skip_reason="not-a-regular-file"),
        SourceFile("mixed/hard.json", skip_reason="not-a-regular-file"),
        SourceFile("mixed/big.json", size=50, oversize=True, key_path="big.json"),
    ]


def test_iter_source_directory_reports_links_and_recurses(tmp_path: Path) -> None:
    (tmp_path / "mixed" / "deeper").mkdir(parents=True)
    (tmp_path / "mixed" / "user_1.json").write_bytes(b"{}")
    (tmp_path / "mixed" / "deeper" / "user_2.json").write_bytes(b"[]")
    (tmp_path / "mixed" / "readme.md").write_text("hi")
    os.symlink("/etc/passwd", tmp_path / "mixed" / "passwd.json")
    os.symlink(tmp_path / "mixed", tmp_path / "loop")
    assert list(iter_source(tmp_path, max_bytes=100)) == [
        SourceFile("loop", skip_reason="symlink"),
        SourceFile("mixed/passwd.json", skip_reason="symlink"),
        SourceFile("mixed/readme.md", skip_reason="not-json"),
        SourceFile("mixed/user_1.json", b"{}", 2, key_path="user_1.json"),
        SourceFile("mixed/deeper/user_2.json", b"[]", 2, key_path="deeper/user_2.json"),
    ]


def test_identity_path_drops_only_the_dumps_top_folder() -> None:
    assert [identity_path(name) for name in ("mixed/user_17.json", "export-2025-07-24/user_17.json",
                                             "user_17.json", "mixed/eu/user_1.json")] == [
        "user_17.json", "user_17.json", "user_17.json", "eu/user_1.json"]


def test_iter_source_directory_given_at_or_above_the_export_folder_keys_alike(tmp_path: Path) -> None:
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "user_1.json").write_bytes(b"{}")
    above = [f.key_path for f in iter_source(tmp_path, max_bytes=100)]
    at = [f.key_path for f in iter_source(tmp_path / "mixed", max_bytes=100)]
    assert above == at == ["user_1.json"]


def test_iter_source_ndjson_names_lines(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\n')
    assert list(iter_source(path, max_bytes=100)) == [
        SourceFile("users.ndjson:1", b'{"a": 1}\n', 9),
        SourceFile("users.ndjson:3", b'{"b": 2}\n', 9),
    ]


def test_iter_source_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=f"^no such file or directory: {tmp_path}/nope.tar.gz$"):
        iter_source(tmp_path / "nope.tar.gz", 10)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match=r"notes.txt: not a .tar.gz, .tgz, .tar, .json or .ndjson file, nor a directory$"):
        iter_source(tmp_path / "notes.txt", 10)
    (tmp_path / "fake.tar.gz").write_bytes(b"not an archive at all" * 30)
    with pytest.raises(SourceError) as caught:
        list(iter_source(tmp_path / "fake.tar.gz", 10))
    assert caught.value.message == (f"{tmp_path}/fake.tar.gz: text, not a gzip-compressed tar archive; give a "
                                    ".tar.gz made by `tar czf`, a .tar, a directory or .json files")
    with tarfile.open(tmp_path / "ok.tar", "w") as archive:
        for index in range(3):
            add(archive, f"user_{index}.json", b"{}" * 300)
    (tmp_path / "cut.tar").write_bytes((tmp_path / "ok.tar").read_bytes()[:2000])
    with pytest.raises(SourceError, match=r"cut.tar: archive is corrupt after 1 member \(unexpected end of archive\)$"):
        list(iter_source(tmp_path / "cut.tar", 1000))
