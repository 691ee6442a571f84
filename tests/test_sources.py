"""duel.sources: what counts as a data file, and how each kind of input is read."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from tar_files import make_tar

from duel.archives import MAX_ZIP_DIRECTORY, MAX_ZIP_MEMBERS
from duel.exceptions import SourceError
from duel.identity import KeyRule
from duel.parse import classify
from duel.sources import (
    MAX_HELD_BYTES,
    SourceFile,
    identity_path,
    iter_json,
    iter_object,
    iter_source,
    not_data_reason,
    read_archive,
    safe_member_name,
)


def add(
    archive: tarfile.TarFile,
    name: str,
    data: bytes = b"{}",
    kind: bytes = tarfile.REGTYPE,
    linkname: str = "",
) -> None:
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
        # a tar member's `\\` is a character of its name, as a folder's file's is
        ("mixed\\..\\user_1.json", "mixed\\..\\user_1.json"),
        ("mixed/user\\1.json", "mixed/user\\1.json"),
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


def test_iter_source_directory_reads_archives_ndjson_and_compressed_json_as_members(
    tmp_path: Path,
) -> None:
    """A folder's .json.gz, .ndjson/.jsonl and archives were skipped as `not-json` (a folder of
    compressed exports loaded nothing, though the same files load from a tar.gz or a prefix):
    each is read as such a member of an archive, a .json.gz keyed as its .json would be."""
    export = tmp_path / "export"
    (export / "eu").mkdir(parents=True)
    (export / "user_1.json").write_bytes(b"{}")  # a data file of its own: the export folder
    (export / "eu" / "user_2.json.gz").write_bytes(gzip.compress(b'{"a": 2}'))
    (export / "eu" / "users.ndjson").write_bytes(b'{"a": 3}\n\n{"a": 4}\n')
    (export / "more.jsonl.xz").write_bytes(lzma.compress(b'{"a": 5}\n'))
    make_tar(export / "old.tar.gz", [("mixed/user_6.json", b'{"a": 6}')])
    with zipfile.ZipFile(export / "eu" / "new.zip", "w") as archive:
        archive.writestr("user_7.json", b'{"a": 7}')
    (export / "._old.tar.gz").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata, not an archive
    (export / "broken.tar.gz").write_bytes(b"\x1f\x8b not gzip")
    os.symlink(export / "old.tar.gz", export / "link.tar.gz")
    assert list(iter_source(export, max_bytes=100)) == [
        SourceFile("._old.tar.gz", skip_reason="macos-metadata"),
        SourceFile(
            "broken.tar.gz",
            b"\x1f\x8b not gzip",
            11,
            defect="unreadable-archive: Gzip/zlib wrapper specifies unsupported compress method",
        ),
        SourceFile("link.tar.gz", skip_reason="symlink"),
        SourceFile("more.jsonl.xz:1", b'{"a": 5}\n', 9),
        SourceFile("old.tar.gz/mixed/user_6.json", b'{"a": 6}', 8, key_path="user_6.json"),
        SourceFile("user_1.json", b"{}", 2, key_path="user_1.json"),
        SourceFile("eu/new.zip/user_7.json", b'{"a": 7}', 8, key_path="user_7.json"),
        SourceFile("eu/user_2.json.gz", b'{"a": 2}', 8, key_path="eu/user_2.json"),
        SourceFile("eu/users.ndjson:1", b'{"a": 3}\n', 9),
        SourceFile("eu/users.ndjson:3", b'{"a": 4}\n', 9, continued=True),
    ]
    # given above the export folder (a folder of folders), the first folder is left out of a
    # .json.gz's key as of a .json's
    keys = {f.name: f.key_path for f in iter_source(tmp_path, max_bytes=100)}
    assert (keys["export/user_1.json"], keys["export/eu/user_2.json.gz"]) == (
        "user_1.json",
        "eu/user_2.json",
    )
    # a copy with every file compressed is an export folder as the plain one is: the same keys
    packed = tmp_path / "packed"
    (packed / "eu").mkdir(parents=True)
    (packed / "user_1.json.gz").write_bytes(gzip.compress(b"{}"))
    (packed / "eu" / "user_2.json.gz").write_bytes(gzip.compress(b'{"a": 2}'))
    assert [f.key_path for f in iter_source(packed, max_bytes=100)] == [
        "user_1.json",
        "eu/user_2.json",
    ]


def test_iter_source_directory_file_gone_before_it_is_read_is_quarantined_alone(
    tmp_path: Path,
) -> None:
    # a file listed and then gone (or unreadable) failed the whole batch; it is quarantined
    # with the reason under its identity (its document keeps its current version: neither
    # changed nor deleted), and the others load
    (tmp_path / "mixed").mkdir()
    for name in ("user_1.json", "user_2.json", "user_3.json"):
        (tmp_path / "mixed" / name).write_bytes(b"{}")
    files = iter_source(tmp_path, max_bytes=100)
    first = next(files)  # the folder is listed now
    (tmp_path / "mixed" / "user_2.json").unlink()
    assert [first, *files] == [
        SourceFile("mixed/user_1.json", b"{}", 2, key_path="user_1.json"),
        SourceFile(
            "mixed/user_2.json",
            key_path="user_2.json",
            defect="unreadable-file: cannot open it (No such file or directory)",
        ),
        SourceFile("mixed/user_3.json", b"{}", 2, key_path="user_3.json"),
    ]
    outcome = classify(
        SourceFile("mixed/user_2.json", key_path="user_2.json", defect="unreadable-file: gone"),
        "safe",
        KeyRule.parse("@file,user_id"),
    )
    assert (outcome.status, outcome.key, outcome.content) == (
        "quarantined",
        "file:user_2.json",
        None,
    )
    # the input itself unreadable is the run's error, not a quarantined file
    with pytest.raises(SourceError, match=r"/gone.json: cannot open it \(No such file"):
        list(iter_json(tmp_path / "gone.json", 100))


def test_identity_path_drops_only_the_dumps_top_folder() -> None:
    assert [
        identity_path(name)
        for name in (
            "mixed/user_17.json",
            "export-2025-07-24/user_17.json",
            "user_17.json",
            "mixed/eu/user_1.json",
        )
    ] == ["user_17.json", "user_17.json", "user_17.json", "eu/user_1.json"]


def test_iter_source_directory_given_at_or_above_the_export_folder_keys_alike(
    tmp_path: Path,
) -> None:
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "user_1.json").write_bytes(b"{}")
    above = [f.key_path for f in iter_source(tmp_path, max_bytes=100)]
    at = [f.key_path for f in iter_source(tmp_path / "mixed", max_bytes=100)]
    assert above == at == ["user_1.json"]


def test_iter_source_directory_at_the_export_folder_keeps_its_subfolders(tmp_path: Path) -> None:
    # given at the export folder, a subfolder is part of a file's identity, as in a tar.gz of
    # that folder: `eu/user_1.json` is not the folder's own `user_1.json`
    export = tmp_path / "above" / "export"
    (export / "eu").mkdir(parents=True)
    (export / "user_1.json").write_bytes(b"{}")
    (export / "eu" / "user_1.json").write_bytes(b"{}")
    (tmp_path / "above" / "README.txt").write_bytes(b"notes")  # not data: still above it
    at = [f.key_path for f in iter_source(export, max_bytes=100)]
    above = [f.key_path for f in iter_source(tmp_path / "above", max_bytes=100)]
    tar = make_tar(
        tmp_path / "export.tar.gz",
        [("export/user_1.json", b"{}"), ("export/eu/user_1.json", b"{}")],
    )
    archived = [f.key_path for f in iter_source(tar, max_bytes=100)]
    assert sorted(at) == sorted(k for k in above if k) == sorted(archived)
    assert sorted(at) == ["eu/user_1.json", "user_1.json"]
    # a directory of folders only is taken as given above its export folder, as before
    (tmp_path / "day" / "mixed").mkdir(parents=True)
    (tmp_path / "day" / "mixed" / "user_1.json").write_bytes(b"{}")
    assert [f.key_path for f in iter_source(tmp_path / "day", max_bytes=100)] == ["user_1.json"]


def test_iter_source_zip_of_windows_paths_reads_its_folders(tmp_path: Path) -> None:
    # Windows tools write `\\` between a zip's folders: read as unzip reads it, not as names
    # that escape the archive (every user was skipped as unsafe-path); `..\\` still escapes
    path = tmp_path / "windows.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mixed\\", b"")
        archive.writestr("mixed\\user_1.json", USER)
        archive.writestr("mixed\\eu\\user_2.json", b"{}")
        archive.writestr("..\\evil.json", b"{}")
        archive.writestr("C:\\evil.json", b"{}")
    assert list(iter_source(path, max_bytes=100)) == [
        SourceFile("mixed/user_1.json", USER, len(USER), key_path="user_1.json"),
        SourceFile("mixed/eu/user_2.json", b"{}", 2, key_path="eu/user_2.json"),
        SourceFile("../evil.json", skip_reason="unsafe-path"),
        SourceFile("C:/evil.json", skip_reason="unsafe-path"),
    ]


def test_iter_source_refuses_a_pipe_given_as_the_input(tmp_path: Path) -> None:
    # a named pipe named like a dump blocked the ingest until something wrote to it
    pipe = tmp_path / "dump.json"
    os.mkfifo(pipe)
    with pytest.raises(SourceError) as caught:
        iter_source(pipe, max_bytes=100)
    assert caught.value.message == (
        f"{pipe}: not a regular file (a pipe, socket or device); give a file"
    )


def test_iter_source_ndjson_names_lines(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b'{"a": 1}\r\n\r\n{"b": 2}')
    # each line ends in one \n, whatever ended it in the file
    assert list(iter_source(path, max_bytes=100)) == [
        SourceFile("users.ndjson:1", b'{"a": 1}\n', 9),
        SourceFile("users.ndjson:3", b'{"b": 2}\n', 9, continued=True),
    ]


def test_iter_source_an_ndjson_file_without_a_line_is_skipped_and_counted(tmp_path: Path) -> None:
    # empty, blank lines only, a gzip of nothing: no document, and each is accounted for (they
    # left no trace in the ledger)
    members = {
        "mixed/a.ndjson": b"",
        "mixed/b.ndjson": b"\n \n",
        "mixed/c.ndjson.gz": gzip.compress(b""),
        "mixed/user_1.json": USER,
    }
    assert [
        (f.name, f.size, f.skip_reason)
        for f in read_archive(io.BytesIO(tar_bytes(members)), "dump.tar", max_bytes=10_000)
    ] == [
        ("mixed/a.ndjson", 0, "no-documents"),
        ("mixed/b.ndjson", 3, "no-documents"),
        ("mixed/c.ndjson.gz", len(members["mixed/c.ndjson.gz"]), "no-documents"),
        ("mixed/user_1.json", 8, None),
    ]
    path = tmp_path / "blank.ndjson"
    path.write_bytes(b"\n\n")
    assert list(iter_source(path, max_bytes=100)) == [
        SourceFile("blank.ndjson", size=2, skip_reason="no-documents")
    ]


def _errors(folder: Path, *names: str) -> dict[str, str]:
    """Each input's one-line SourceError, without the folder."""
    said = {}
    for name in names:
        with pytest.raises(SourceError) as caught:
            list(iter_source(folder / name, 1000))
        said[name] = caught.value.message.removeprefix(f"{folder}/")
    return said


def test_iter_source_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=f"^no such file or directory: {tmp_path}/nope.tar.gz$"):
        iter_source(tmp_path / "nope.tar.gz", 10)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        SourceError,
        match=(
            r"notes.txt: not a supported input; give a directory or a .tar, .tar.gz/.tgz, "
            r".tar.bz2/.tbz2, "
            r".tar.xz/.txz, .zip, .json or .ndjson/.jsonl file \(.json and .ndjson may be .gz, "
            r".bz2 or .xz "
            r"compressed\)$"
        ),
    ):
        iter_source(tmp_path / "notes.txt", 10)
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 and then nothing of a zip")
    with pytest.raises(
        SourceError, match=r"fake.zip: not a readable zip archive \(File is not a zip file\)$"
    ):
        list(iter_source(tmp_path / "fake.zip", 10))
    (tmp_path / "fake.json.gz").write_bytes(b"\x1f\x8b\x08 cut")
    with pytest.raises(SourceError, match=r"fake.json.gz: not readable \(.+\)$"):
        list(iter_source(tmp_path / "fake.json.gz", 10))
    (tmp_path / "empty.tar.gz").write_bytes(b"")
    with pytest.raises(SourceError) as caught:
        list(iter_source(tmp_path / "empty.tar.gz", 10))
    assert caught.value.message == (
        f"{tmp_path}/empty.tar.gz: empty (0 bytes), not an archive; was the dump copied completely?"
    )
    (tmp_path / "fake.tar.gz").write_bytes(b"not an archive at all" * 30)
    with pytest.raises(SourceError) as caught:
        list(iter_source(tmp_path / "fake.tar.gz", 10))
    assert caught.value.message == (
        f"{tmp_path}/fake.tar.gz: text, not a gzip-compressed tar archive; give a "
        ".tar.gz made by `tar czf`, a .tar, a .zip, a directory or .json files"
    )
    with tarfile.open(tmp_path / "ok.tar", "w") as archive:
        for index in range(3):
            add(archive, f"user_{index}.json", b"{}" * 300)
    # a gzip stream cut short or corrupt is said to be so, not "not a tar archive inside"
    packed = gzip.compress((tmp_path / "ok.tar").read_bytes())
    (tmp_path / "cut.tar.gz").write_bytes(packed[:-12])
    (tmp_path / "crc.tar.gz").write_bytes(packed[:-8] + bytes(8))
    (tmp_path / "inside.tar.gz").write_bytes(gzip.compress(b"not a tar archive"))
    assert _errors(tmp_path, "cut.tar.gz", "crc.tar.gz", "inside.tar.gz") == {
        # its members are read as the stream is inflated, so they may come before its end is
        # found cut short (the batch they are in is not committed)
        "cut.tar.gz": "cut.tar.gz: archive is corrupt after 3 members (Compressed file ended"
        " before the end-of-stream marker was reached); was the dump copied completely?",
        "crc.tar.gz": "crc.tar.gz: its gzip stream is cut short or corrupt (Incorrect checksum"
        " found); nothing was read; was the dump copied completely?",
        "inside.tar.gz": "inside.tar.gz: gzip-compressed, but not a tar archive inside"
        " (unexpected end of archive); make it with `tar czf`",
    }
    # the compression and kind the name and the first bytes say, not always gzip's
    (tmp_path / "cut.tar.xz").write_bytes(lzma.compress((tmp_path / "ok.tar").read_bytes())[:-30])
    (tmp_path / "inside.tar.bz2").write_bytes(bz2.compress(b"not a tar archive"))
    (tmp_path / "garbage.zip").write_bytes(b"garbage\n")
    assert _errors(tmp_path, "cut.tar.xz", "inside.tar.bz2", "garbage.zip") == {
        "cut.tar.xz": "cut.tar.xz: archive is corrupt after 3 members (Compressed file ended"
        " before the end-of-stream marker was reached); was the dump copied completely?",
        "inside.tar.bz2": "inside.tar.bz2: bzip2-compressed, but not a tar archive inside"
        " (unexpected end of archive); make it with `tar cjf`",
        "garbage.zip": "garbage.zip: text, not a zip archive; give a .tar.gz made by `tar czf`,"
        " a .tar, a .zip, a directory or .json files",
    }
    (tmp_path / "cut.tar").write_bytes((tmp_path / "ok.tar").read_bytes()[:2000])
    with pytest.raises(
        SourceError,
        match=r"cut.tar: archive is corrupt after 1 member \(unexpected end of archive\)$",
    ):
        list(iter_source(tmp_path / "cut.tar", 1000))


# --- formats: zip, compressed tars and JSON, archives in archives ---------------------------

USER = b'{"a": 1}'


def tar_bytes(files: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in files.items():
            add(archive, name, data)
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of `files`, the same bytes for the same files (a fixed time on every member)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(
                zipfile.ZipInfo(name, date_time=(2025, 7, 23, 15, 38, 2)),
                data,
                compress_type=method,
            )
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_iter_source_zip_skips_and_never_follows(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.mkdir("mixed")
        archive.writestr("mixed/user_1.json", USER)
        archive.writestr("mixed/._user_1.json", b"\x00\x05\x16\x07")
        archive.writestr("__MACOSX/mixed/._user_1.json", b"\x00")
        archive.writestr("../evil.json", b"{}")
        archive.writestr("/abs/evil.json", b"{}")
        link = zipfile.ZipInfo("mixed/link.json")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("mixed/notes.txt", b"hello")
        archive.writestr("mixed/big.json", b"x" * 50)
        archive.writestr("mixed/user_2.json", b"{}", compress_type=zipfile.ZIP_STORED)
    assert list(iter_source(path, max_bytes=40)) == [
        SourceFile("mixed/user_1.json", USER, 8, key_path="user_1.json"),
        SourceFile("mixed/._user_1.json", size=4, skip_reason="macos-metadata"),
        SourceFile("__MACOSX/mixed/._user_1.json", size=1, skip_reason="macos-metadata"),
        SourceFile("../evil.json", skip_reason="unsafe-path"),
        SourceFile("/abs/evil.json", skip_reason="unsafe-path"),
        SourceFile("mixed/link.json", skip_reason="not-a-regular-file"),
        SourceFile("mixed/notes.txt", size=5, skip_reason="not-json"),
        SourceFile("mixed/big.json", size=50, oversize=True, key_path="big.json"),
        SourceFile("mixed/user_2.json", b"{}", 2, key_path="user_2.json"),
    ]


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [
        (".tar", lambda data: data),
        (".tar.gz", gzip.compress),
        (".tgz", gzip.compress),
        (".tar.bz2", bz2.compress),
        (".tbz2", bz2.compress),
        (".tar.xz", lzma.compress),
        (".txz", lzma.compress),
        (".tar.gz", lzma.compress),  # the compression is told by its magic number, not the name
        (".tar.xz", bz2.compress),
        (".zip", lambda data: zip_bytes({"mixed/user_1.json": USER})),  # a zip by its magic, too
        (".tar", lambda data: zip_bytes({"mixed/user_1.json": USER})),
    ],
)
def test_iter_source_reads_every_archive_format(
    tmp_path: Path, suffix: str, compress: Callable[[bytes], bytes]
) -> None:
    path = write(tmp_path / f"dump{suffix}", compress(tar_bytes({"mixed/user_1.json": USER})))
    assert list(iter_source(path, max_bytes=100)) == [
        SourceFile("mixed/user_1.json", USER, 8, key_path="user_1.json")
    ]


def test_iter_source_compressed_json_and_ndjson(tmp_path: Path) -> None:
    lines = b'{"a": 1}\n\n{"b": 2}\n'
    assert [
        list(iter_source(write(tmp_path / name, data), max_bytes=100))
        for name, data in (
            ("user_1.json.gz", gzip.compress(USER)),
            ("user_2.json.bz2", bz2.compress(USER)),
            ("user_3.json.xz", lzma.compress(USER)),
            ("user_4.json.gz", USER),  # not compressed after all: read as it is
            ("users.ndjson.gz", gzip.compress(lines)),
            ("users.jsonl.xz", lzma.compress(lines)),
        )
    ] == [
        [SourceFile("user_1.json.gz", USER, 8, key_path="user_1.json")],
        [SourceFile("user_2.json.bz2", USER, 8, key_path="user_2.json")],
        [SourceFile("user_3.json.xz", USER, 8, key_path="user_3.json")],
        [SourceFile("user_4.json.gz", USER, 8, key_path="user_4.json")],
        [
            SourceFile("users.ndjson.gz:1", b'{"a": 1}\n', 9),
            SourceFile("users.ndjson.gz:3", b'{"b": 2}\n', 9, continued=True),
        ],
        [
            SourceFile("users.jsonl.xz:1", b'{"a": 1}\n', 9),
            SourceFile("users.jsonl.xz:3", b'{"b": 2}\n', 9, continued=True),
        ],
    ]


def test_iter_source_ndjson_line_over_the_limit_is_never_held(tmp_path: Path) -> None:
    path = write(
        tmp_path / "users.ndjson.gz",
        gzip.compress(
            b'{"a": 1}\n' + b"x" * 100_000 + b"\n" + b" " * 100_000 + b"\n{}\n" + b"y" * 50
        ),
    )
    assert list(iter_source(path, max_bytes=20)) == [
        SourceFile("users.ndjson.gz:1", b'{"a": 1}\n', 9),
        SourceFile(
            "users.ndjson.gz:2", size=100_001, oversize=True, continued=True
        ),  # line 3 is blank, however long
        SourceFile("users.ndjson.gz:4", b"{}\n", 3, continued=True),
        SourceFile("users.ndjson.gz:5", size=50, oversize=True, continued=True),
    ]


def test_iter_source_keys_a_member_by_its_path_in_the_innermost_archive(tmp_path: Path) -> None:
    """`mixed/user_1.json` is `user_1.json` in a tar.gz, a zip, a tar.gz in a zip, a zip in a
    tar.xz and a directory; its name says where it was found."""
    member = {"mixed/user_1.json": USER}
    inputs = [
        write(tmp_path / "a.tar.gz", tar_bytes(member, "w:gz")),
        write(tmp_path / "b.zip", zip_bytes(member)),
        write(tmp_path / "c.zip", zip_bytes({"outer/inner.tar.gz": tar_bytes(member, "w:gz")})),
        write(tmp_path / "d.tar.xz", tar_bytes({"inner.zip": zip_bytes(member)}, "w:xz")),
    ]
    (tmp_path / "e" / "mixed").mkdir(parents=True)
    write(tmp_path / "e" / "mixed" / "user_1.json", USER)
    assert [
        [(f.name, f.key_path) for f in iter_source(path, 100)] for path in (*inputs, tmp_path / "e")
    ] == [
        [("mixed/user_1.json", "user_1.json")],
        [("mixed/user_1.json", "user_1.json")],
        [("outer/inner.tar.gz/mixed/user_1.json", "user_1.json")],
        [("inner.zip/mixed/user_1.json", "user_1.json")],
        [("mixed/user_1.json", "user_1.json")],
    ]


def test_iter_source_nested_archives_ndjson_and_compressed_json(tmp_path: Path) -> None:
    inner = tar_bytes(
        {
            "mixed/user_1.json": USER,
            "mixed/dump.ndjson": b'{"n": 1}\n{"n": 2}\n',
            "mixed/notes.txt": b"hi",
        },
        "w:bz2",
    )
    path = write(
        tmp_path / "outer.zip",
        zip_bytes(
            {
                "outer/inner.tar.bz2": inner,
                "dump.jsonl.gz": gzip.compress(b'{"n": 3}\n'),
                "mixed/user_2.json.gz": gzip.compress(b"{}"),
                "mixed/user_3.json": b"[]",
            }
        ),
    )
    assert list(iter_source(path, max_bytes=100)) == [
        SourceFile("outer/inner.tar.bz2/mixed/user_1.json", USER, 8, key_path="user_1.json"),
        SourceFile("outer/inner.tar.bz2/mixed/dump.ndjson:1", b'{"n": 1}\n', 9),
        SourceFile("outer/inner.tar.bz2/mixed/dump.ndjson:2", b'{"n": 2}\n', 9, continued=True),
        SourceFile("outer/inner.tar.bz2/mixed/notes.txt", size=2, skip_reason="not-json"),
        SourceFile("dump.jsonl.gz:1", b'{"n": 3}\n', 9),
        SourceFile("mixed/user_2.json.gz", b"{}", 2, key_path="user_2.json"),
        SourceFile("mixed/user_3.json", b"[]", 2, key_path="user_3.json"),
    ]


def nest(levels: list[str], leaf: dict[str, bytes]) -> bytes:
    """Archives one inside another, named by `levels` outermost first: each holds `leaf`, then
    the next level."""
    data, inner = b"", ""
    for level in reversed(levels):
        files = {**leaf, inner: data} if data else dict(leaf)
        modes = {".tar": "w", ".tar.gz": "w:gz", ".tar.xz": "w:xz", ".tar.bz2": "w:bz2"}
        data = (
            zip_bytes(files)
            if level.endswith(".zip")
            else tar_bytes(files, modes[level[level.index(".") :]])
        )
        inner = level
    return data


def test_iter_source_reads_archives_three_deep_and_quarantines_the_fourth(tmp_path: Path) -> None:
    levels = ["input.tar", "l1.zip", "l2.tar.gz", "l3.tar.xz", "l4.zip"]
    path = write(tmp_path / "input.tar", nest(levels, {"u.json": b"{}"}))
    l4 = zip_bytes({"u.json": b"{}"})
    assert list(iter_source(path, max_bytes=10_000)) == [
        SourceFile("u.json", b"{}", 2, key_path="u.json"),
        SourceFile("l1.zip/u.json", b"{}", 2, key_path="u.json"),
        SourceFile("l1.zip/l2.tar.gz/u.json", b"{}", 2, key_path="u.json"),
        SourceFile("l1.zip/l2.tar.gz/l3.tar.xz/u.json", b"{}", 2, key_path="u.json"),
        SourceFile(
            "l1.zip/l2.tar.gz/l3.tar.xz/l4.zip",
            l4,
            len(l4),
            key_path=None,
            defect="archive-too-deep: an archive inside 4 archives; they are read 3 deep",
        ),
    ]


def test_iter_source_unreadable_members_are_defects_not_skips(tmp_path: Path) -> None:
    """A corrupt nested archive, a cut one, a corrupt compressed member and a member whose CRC
    fails come out as defects (quarantined by the parse stage), with their bytes; what came
    before the damage in a cut archive is read."""
    cut = tar_bytes({"mixed/user_1.json": USER, "mixed/user_2.json": b"{}" * 400})[:1600]
    bad_crc = bytearray(zip_bytes({"user.json": b'{"crc": 1}'}, zipfile.ZIP_STORED))
    bad_crc[bad_crc.index(b'{"crc": 1}') + 8] ^= 0x01
    # compressed once: gzip's header holds the time, so two calls a second apart differ
    truncated = gzip.compress(USER)[:-6]
    path = write(
        tmp_path / "outer.zip",
        zip_bytes(
            {
                "garbage.tar.gz": b"\x1f\x8b not really gzip",
                "cut.tar": cut,
                "broken.json.gz": truncated,
                "dump.ndjson.xz": b"\xfd7zXZ\x00 truncated",
                "crc.zip": bytes(bad_crc),
                "after.json": b"{}",
            },
            zipfile.ZIP_STORED,
        ),
    )
    assert list(iter_source(path, max_bytes=10_000)) == [
        SourceFile(
            "garbage.tar.gz",
            b"\x1f\x8b not really gzip",
            18,
            key_path=None,
            defect="unreadable-archive: Gzip/zlib wrapper specifies unsupported compress method",
        ),
        SourceFile("cut.tar/mixed/user_1.json", USER, 8, key_path="user_1.json"),
        SourceFile(
            "cut.tar",
            cut,
            1600,
            key_path=None,
            defect="unreadable-archive: corrupt after 1 member (unexpected end of archive)",
        ),
        SourceFile(
            "broken.json.gz",
            truncated,
            len(truncated),
            key_path="broken.json",
            defect="unreadable-member: "
            "Compressed file ended before the end-of-stream marker was reached",
        ),
        SourceFile(
            "dump.ndjson.xz",
            b"\xfd7zXZ\x00 truncated",
            16,
            key_path=None,  # many documents, keyed by their fields: none of them
            defect="unreadable-member: Corrupt input data",
        ),
        SourceFile(
            "crc.zip/user.json",
            b'{"crc": 0}',  # its bytes as the zip holds them, the flipped bit with them
            10,
            key_path="user.json",
            defect="unreadable-member: Bad CRC-32 for file 'user.json'",
        ),
        SourceFile("after.json", b"{}", 2, key_path="after.json"),
    ]


def test_iter_source_zip_member_whose_declared_size_lies(tmp_path: Path) -> None:
    """A member declaring 8 bytes that inflates to 1 MiB is read to its declared size and no
    further, and fails its CRC: a defect. One declaring more than the limit is never read."""
    honest = zip_bytes({"liar.json": b" " * (1 << 20), "big.json": b" " * (1 << 20)})
    lying = bytearray(honest)
    for header, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers
        at = lying.index(header)
        lying[at + size_at : at + size_at + 4] = (8).to_bytes(4, "little")
    path = write(tmp_path / "lies.zip", bytes(lying))
    assert list(iter_source(path, max_bytes=1000)) == [
        SourceFile(
            "liar.json",
            None,
            8,
            key_path="liar.json",
            defect="unreadable-member: Bad CRC-32 for file 'liar.json'",
        ),
        SourceFile("big.json", size=1 << 20, oversize=True, key_path="big.json"),
    ]


def test_iter_source_zip_members_over_the_same_bytes_are_defects(tmp_path: Path) -> None:
    """Two directory entries for one member's bytes (how a zip bomb multiplies itself): the one
    overlapping the other is not read."""
    data = zip_bytes({"a.json": USER})
    central = data.index(b"PK\x01\x02")
    end = data.index(b"PK\x05\x06")
    entry = data[central:end]
    record = bytearray(data[end:])
    record[8:12] = (2).to_bytes(2, "little") * 2  # entries on this disk, in total
    record[12:16] = (2 * len(entry)).to_bytes(4, "little")
    path = write(tmp_path / "twice.zip", data[:end] + entry + bytes(record))
    assert list(iter_source(path, max_bytes=1000)) == [
        SourceFile(
            "a.json",
            None,
            8,
            key_path="a.json",
            defect="unreadable-member: its data overlaps the next member's",
        ),
        SourceFile("a.json", USER, 8, key_path="a.json"),
    ]


def test_iter_source_zip_member_limit(tmp_path: Path) -> None:
    """A zip's directory is read whole: MAX_ZIP_MEMBERS members are read, one more is refused
    (the input: exit 1; a nested zip: quarantined)."""
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index in range(MAX_ZIP_MEMBERS):
            archive.writestr(f"m/{index}.txt", b"")
    assert sum(1 for _ in iter_source(path, max_bytes=100)) == MAX_ZIP_MEMBERS
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("m/one-more.txt", b"")
    with pytest.raises(
        SourceError,
        match=r"many.zip: zip archive not read: it has 50,001 members, over the "
        r"limit of 50,000$",
    ):
        list(iter_source(path, max_bytes=100))
    outer = write(tmp_path / "outer.tar.gz", tar_bytes({"many.zip": path.read_bytes()}, "w:gz"))
    assert [(f.name, f.defect) for f in iter_source(outer, max_bytes=100)] == [
        ("many.zip", "archive-too-large: it has 50,001 members, over the limit of 50,000")
    ]


def test_iter_source_zip_directory_limit(tmp_path: Path) -> None:
    """MAX_ZIP_DIRECTORY bytes of central directory are read; one byte more is refused."""

    def directory_of(comment: bytes) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for index in range(128):
                archive.writestr(f"{index:03}".ljust(65_000, "n") + ".json", b"{}")
            last = zipfile.ZipInfo("last.json")
            last.comment = comment
            archive.writestr(last, b"{}")
        return buffer.getvalue()

    def size(data: bytes) -> int:
        return int.from_bytes(data[-10:-6], "little")

    plain = directory_of(b"")
    exact = directory_of(b"c" * (MAX_ZIP_DIRECTORY - size(plain)))
    assert size(exact) == MAX_ZIP_DIRECTORY
    assert len(list(iter_source(write(tmp_path / "exact.zip", exact), 100))) == 129
    over = directory_of(b"c" * (MAX_ZIP_DIRECTORY - size(plain) + 1))
    with pytest.raises(
        SourceError,
        match=r"over.zip: zip archive not read: its directory is 8,388,609 bytes, "
        r"over the limit of 8,388,608$",
    ):
        list(iter_source(write(tmp_path / "over.zip", over), 100))


def test_iter_source_nested_archives_held_in_memory_are_bounded(tmp_path: Path) -> None:
    """Nested archives are held in memory up to MAX_HELD_BYTES together: a zip of exactly that
    size is read; one byte larger it is quarantined (a zip cannot be streamed); a tar that large
    is streamed."""
    empty = len(zip_bytes({"pad.txt": b""}, zipfile.ZIP_STORED))
    exact = zip_bytes({"pad.txt": bytes(MAX_HELD_BYTES - empty)}, zipfile.ZIP_STORED)
    over = zip_bytes({"pad.txt": bytes(MAX_HELD_BYTES - empty + 1)}, zipfile.ZIP_STORED)
    big_tar = tar_bytes({"pad.txt": bytes(MAX_HELD_BYTES), "u.json": b"{}"})
    assert len(exact) == MAX_HELD_BYTES
    path = write(
        tmp_path / "outer.tar.gz",
        tar_bytes({"exact.zip": exact, "over.zip": over, "big.tar": big_tar}, "w:gz"),
    )
    assert list(iter_source(path, max_bytes=100)) == [
        SourceFile("exact.zip/pad.txt", size=MAX_HELD_BYTES - empty, skip_reason="not-json"),
        SourceFile(
            "over.zip",
            None,
            MAX_HELD_BYTES + 1,
            key_path=None,
            defect="archive-too-large: 33,554,433 bytes; a zip inside an archive is read in "
            "memory, where nested archives hold 33,554,432 bytes at most (33,554,432 left)",
        ),
        SourceFile("big.tar/pad.txt", size=MAX_HELD_BYTES, skip_reason="not-json"),
        SourceFile("big.tar/u.json", b"{}", 2, key_path="u.json"),
    ]


def test_iter_source_encrypted_zip_member_is_a_defect(tmp_path: Path) -> None:
    data = bytearray(zip_bytes({"secret.json": USER, "open.json": b"{}"}))
    at = data.index(b"PK\x01\x02")  # the first member's central header: set its "encrypted" flag
    data[at + 8] |= 0x01
    # its bytes as the zip holds them (the encrypted ones: here the deflated text)
    stored = zlib.compress(USER)[2:-4]  # deflate's raw stream, without zlib's header and check
    assert list(iter_source(write(tmp_path / "locked.zip", bytes(data)), max_bytes=100)) == [
        SourceFile(
            "secret.json",
            stored,
            len(stored),
            key_path="secret.json",
            defect="unreadable-member: encrypted (no password is ever given)",
        ),
        SourceFile("open.json", b"{}", 2, key_path="open.json"),
    ]


# zstandard (93) only where zipfile does not read it (Python 3.14 does)
@pytest.mark.parametrize(
    ("method", "named"),
    [(99, "AES encryption"), (9, "deflate64"), (98, "PPMd"), (77, "unknown")]
    + ([] if hasattr(zipfile, "ZIP_ZSTANDARD") else [(93, "zstandard")]),
)
def test_iter_source_zip_member_of_a_method_not_read_is_a_defect_naming_it(
    tmp_path: Path, method: int, named: str
) -> None:
    """zipfile says only "That compression method is not supported": the defect names it."""
    data = bytearray(zip_bytes({"a.json": USER, "b.json": b"{}"}, zipfile.ZIP_STORED))
    for at in (data.index(b"PK\x03\x04") + 8, data.index(b"PK\x01\x02") + 10):
        data[at : at + 2] = method.to_bytes(2, "little")  # the first member's, both headers
    files = iter_source(write(tmp_path / "m.zip", bytes(data)), max_bytes=100)
    assert [(f.name, f.data, f.defect) for f in files] == [
        (
            "a.json",
            USER,  # its bytes as the zip holds them: stored
            f"unreadable-member: compression method {method} ({named}), which this Python's"
            " zipfile does not read",
        ),
        ("b.json", b"{}", None),
    ]


def test_iter_source_names_do_not_depend_on_the_size_limit(tmp_path: Path) -> None:
    """The same files, by name, whatever DUEL_MAX_FILE_BYTES (check_shards lists the input with
    a limit of 0): a small zip comes read from its tar, a large one streamed, and either is held
    only within what is left of MAX_HELD_BYTES, so a zip's fate does not depend on the limit."""
    small_zip = zip_bytes(
        {"s.json": os.urandom(16 << 10)}, zipfile.ZIP_STORED
    )  # 16 KiB: read with its tar

    def held_tar(filler: int) -> bytes:
        return tar_bytes(
            {"filler.txt": bytes(filler), "small.zip": small_zip, "dump.ndjson": b"{}\n\n[]\n"}
        )

    first = MAX_HELD_BYTES - (1 << 20)
    largest = MAX_HELD_BYTES // tarfile.RECORDSIZE * tarfile.RECORDSIZE  # a tar is whole records
    held = held_tar(first + largest - len(held_tar(first)))
    assert (
        len(held) == largest
    )  # held: MAX_HELD_BYTES - 8 KiB; the small zip does not fit in the rest
    path = write(
        tmp_path / "input.zip",
        zip_bytes(
            {
                "held.tar": held,
                "u.json.gz": gzip.compress(b"{}"),
                "deep.tar": nest(["deep.tar", "a.zip", "b.tar", "c.tar.gz"], {"u.json": b"{}"}),
            }
        ),
    )
    files = list(iter_source(path, max_bytes=100_000))
    assert (
        [f.name for f in iter_source(path, max_bytes=0)]
        == [f.name for f in files]
        == [
            "held.tar/filler.txt",
            "held.tar/small.zip",
            "held.tar/dump.ndjson:1",
            "held.tar/dump.ndjson:3",
            "u.json.gz",
            "deep.tar/u.json",
            "deep.tar/a.zip/u.json",
            "deep.tar/a.zip/b.tar/u.json",
            "deep.tar/a.zip/b.tar/c.tar.gz",
        ]
    )
    assert [f.defect for f in files if f.defect] == [
        f"archive-too-large: {len(small_zip):,} bytes; a zip inside an archive is read in memory, "
        "where nested "
        f"archives hold 33,554,432 bytes at most ({MAX_HELD_BYTES - largest:,} left)",
        "archive-too-deep: an archive inside 4 archives; they are read 3 deep",
    ]


def test_iter_source_an_empty_archive_inside_a_dump_or_a_prefix_is_quarantined() -> None:
    """A 0-byte archive (a transfer that failed) is a file to quarantine where it lies, counted
    with its reason, not an archive with nothing in it that vanishes from the ledger; an empty
    but well-formed archive holds no file. An archive that cannot be read is none of the users
    it held (key path None: quarantined unidentified, see test_deletes)."""
    nothing = gzip.compress(b"")  # a gzip of no byte: no tar in it either
    outer = tar_bytes(
        {
            "mixed/inner.tar.gz": b"",
            "mixed/nothing.tar.gz": nothing,
            "mixed/none.tar": tar_bytes({}),
            "u.json": USER,
        }
    )
    assert list(read_archive(io.BytesIO(outer), "outer.tar", max_bytes=10_000)) == [
        SourceFile(
            "mixed/inner.tar.gz",
            b"",
            0,
            key_path=None,
            defect="unreadable-archive: empty: no tar data",
        ),
        SourceFile(
            "mixed/nothing.tar.gz",
            nothing,
            len(nothing),
            key_path=None,
            defect="unreadable-archive: empty: no tar data",
        ),
        SourceFile("u.json", USER, 8, key_path="u.json"),
    ]
    assert list(iter_object(lambda: io.BytesIO(b""), "d/dump.tar.gz", 0, 10_000)) == [
        SourceFile(
            "d/dump.tar.gz",
            b"",
            0,
            key_path=None,
            defect="unreadable-archive: empty: no tar data",
        )
    ]


def test_iter_source_bytes_after_the_end_over_the_limit_keep_their_size_not_their_bytes(
    tmp_path: Path,
) -> None:
    # what follows an archive's end, larger than DUEL_MAX_FILE_BYTES, was quarantined with its
    # first bytes as if they were all of it (byte_size the limit, the detail the whole)
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as archive:
        add(archive, "mixed/user_1.json", b"{}")
    dump = tmp_path / "dump.tar.gz"
    dump.write_bytes(gzip.compress(inner.getvalue()) + b"x" * 300)
    *_, after = iter_source(dump, max_bytes=100)
    assert (after.name, after.data, after.size) == ("(after its gzip stream)", None, 300)
    assert after.defect is not None and after.defect.startswith("trailing-data: 300 bytes after")
    dump.write_bytes(gzip.compress(inner.getvalue() + b"y" * 700))
    *_, after = iter_source(dump, max_bytes=100)
    assert (after.name, after.data, after.size) == ("(after its end-of-archive marker)", None, 700)
    *_, whole = iter_source(dump, max_bytes=1000)
    assert (whole.data, whole.size) == (b"y" * 700, 700)
