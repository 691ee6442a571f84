"""Hostile archives: members that escape, links, devices and FIFOs are skipped and reported; the
ingest writes no file anywhere; gzip, bzip2, xz and zip bombs and archives nested deep are
stopped by the limits without being held; and duel.archives' bounded reads."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import query, run_cli
from test_hostile import CORPUS, ingest_cli, ledger, peak_rss_mb

from duel.archives import (
    LEADING,
    READ_ERRORS,
    StreamMembers,
    compression,
    decompressed,
    iter_lines,
    read_bounded,
    zip_members,
)
from duel.settings import Settings
from duel.sources import iter_source

USER = (CORPUS / "crlf.json").read_bytes()


def add(
    archive: tarfile.TarFile,
    name: str,
    data: bytes = b"",
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_ingest_archive_skips_escapes_links_and_devices(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "hostile.tar"
    with tarfile.open(data, "w", format=tarfile.PAX_FORMAT) as archive:
        add(archive, "ok.json", USER)
        add(archive, "../evil.json", USER)
        add(archive, "/tmp/absolute-evil.json", USER)
        add(archive, "a/../../up-evil.json", USER)
        add(archive, "a/" * 60 + "../" * 70 + "long-evil.json", USER)  # a pax long name escaping
        add(archive, "C:\\windows-evil.json", USER)
        add(archive, "symlink.json", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add(archive, "hardlink.json", kind=tarfile.LNKTYPE, link="ok.json")
        add(archive, "device.json", kind=tarfile.CHRTYPE)
        add(archive, "block.json", kind=tarfile.BLKTYPE)
        add(archive, "fifo.json", kind=tarfile.FIFOTYPE)
        add(archive, "dir", kind=tarfile.DIRTYPE)
        add(archive, "dir/./inner.json", USER)
    before = tree(tmp_path.parent)
    result = ingest_cli(settings, data)
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {
        "batch_id": 1,
        "files_read": 12,
        "files_seen": 12,
        "loaded": 2,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 10,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert ledger(settings) == {
        "ok.json": ("loaded", None),
        "dir/inner.json": ("loaded", None),
        "../evil.json": ("skipped", "unsafe-path"),
        "/tmp/absolute-evil.json": ("skipped", "unsafe-path"),
        "a/../../up-evil.json": ("skipped", "unsafe-path"),
        "a/" * 60 + "../" * 70 + "long-evil.json": ("skipped", "unsafe-path"),
        "C:\\\\windows-evil.json": ("skipped", "unsafe-path"),  # its backslash written twice
        "symlink.json": ("skipped", "not-a-regular-file"),
        "hardlink.json": ("skipped", "not-a-regular-file"),
        "device.json": ("skipped", "not-a-regular-file"),
        "block.json": ("skipped", "not-a-regular-file"),
        "fifo.json": ("skipped", "not-a-regular-file"),
    }
    assert tree(tmp_path.parent) == before  # nothing extracted, here or above
    assert not Path("/tmp/absolute-evil.json").exists()


def test_ingest_archive_with_undecodable_and_nul_names(settings: Settings, tmp_path: Path) -> None:
    """Member names that are not UTF-8 (or hold a NUL, via pax) load under an escaped name."""
    data = tmp_path / "names.tar"
    with tarfile.open(data, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as archive:
        add(archive, "caf\u00e9.json", USER)
    with tarfile.open(data, "a", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("plain.json")
        info.size = len(USER)
        info.pax_headers = {"path": "nul\x00name.json"}
        archive.addfile(info, io.BytesIO(USER))
        # a name written in letters as another's escape: a user of its own (the two were one
        # document, one of them lost), its backslash written as `\\`
        add(archive, "caf\\xe9.json", USER)
    result = ingest_cli(settings, data)
    assert (result.returncode, result.stderr) == (0, "")
    assert ledger(settings) == {
        "caf\\xe9.json": ("loaded", None),
        "nul\\x00name.json": ("loaded", None),
        "caf\\\\xe9.json": ("loaded", None),
    }
    assert query(settings, "select count(*) from raw.current_versions") == [(3,)]


def test_ingest_gzip_bomb_is_stopped_by_the_size_limit(settings: Settings, tmp_path: Path) -> None:
    """512 MiB of zeros in a 0.5 MiB archive: quarantined as too large, never held in memory;
    the members after it still load."""
    data = tmp_path / "bomb.tar.gz"
    size = 512 << 20
    with tarfile.open(data, "w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("bomb.json")
        info.size = size
        archive.addfile(info, _Zeros(size))
        add(archive, "after.json", USER)
    assert data.stat().st_size < 4 << 20
    peak, stdout = peak_rss_mb(settings, data)
    assert json.loads(stdout) == {
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
        settings, "select source_name, reason, byte_size, content from raw.quarantine"
    ) == [("bomb.json", "too-large", size, None)]
    assert peak < 128  # MB: the 512 MiB member is skipped through, never held


def test_ingest_archive_whose_header_lies_writes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """A member claiming more bytes than the archive holds: one-line error, exit 1, no batch."""
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w") as archive:
        add(archive, "first.json", USER)
        info = tarfile.TarInfo("liar.json")
        info.size = 10 << 20
        archive.addfile(info, io.BytesIO(b"{" * (10 << 20)))
    data = tmp_path / "liar.tar"
    data.write_bytes(good.getvalue()[:4096])  # cut inside the liar's data
    result = ingest_cli(settings, data)
    assert (result.returncode, result.stdout) == (1, "")
    assert (
        result.stderr
        == f"error: {data}: archive is corrupt after 1 member (unexpected end of archive)\n"
    )
    assert query(settings, "select count(*) from raw.user_documents") == [(0,)]
    assert query(settings, "select status from raw.batches") == [("failed",)]


class _Zeros(io.RawIOBase):
    """A file of `size` zero bytes that takes no memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


# --- duel.archives: formats told by magic number, reads bounded ---------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (gzip.compress(b"{}", mtime=0), "gzip"),  # mtime 0: the same test id in every process
        (bz2.compress(b"{}"), "bzip2"),
        (bz2.compress(b""), "bzip2"),
        (lzma.compress(b"{}"), "xz"),
        (b"BZh9 is a member name, not bzip2", None),
        (b'{"a": 1}', None),
        (b"", None),
    ],
)
def test_compression_is_told_by_magic_number(data: bytes, kind: str | None) -> None:
    assert compression(data[:10]) == kind


def test_read_bounded_reads_one_byte_over_the_limit_at_most() -> None:
    stream = io.BytesIO(b"x" * 1000)
    assert read_bounded(io.BytesIO(b"x" * 10), 10) == (b"x" * 10, 10)
    assert read_bounded(stream, 10) == (None, 11)
    assert stream.tell() == 11
    assert read_bounded(io.BytesIO(b""), 10) == (b"", 0)


def test_iter_lines_skips_blank_and_bounds_long_lines() -> None:
    stream = io.BytesIO(b"{}\r\n\n" + b"y" * 40 + b"\n \t \n" + b" " * 40 + b"\n[]")
    # a line kept ends in one \n (CRLF's, and the last one's missing end, made new versions)
    assert list(iter_lines(stream, limit=10)) == [(1, b"{}\n", 3), (3, None, 41), (6, b"[]\n", 3)]


# --- gzip: ISA-L's inflate with gzip's checks -----------------------------------------------

GZIPPED = gzip.compress(bytes(range(256)) * 400, mtime=0)


def test_decompressed_gzip_reads_members_one_after_another() -> None:
    stream = decompressed(io.BytesIO(GZIPPED * 3), GZIPPED[:10])
    assert stream.read() == bytes(range(256)) * 1200


def test_decompressed_gzip_keeps_what_follows_its_last_member_when_not_gzip() -> None:
    """Bytes after a gzip stream's last member that are not another member end the stream
    there, kept and counted (gzip raised in the read that held the archive's last bytes, and a
    dump with a few bytes appended was refused whole); zero padding is skipped, as gzip does."""
    payload = bytes(range(256)) * 400

    def read(data: bytes, keep: int) -> tuple[bytes, bytes | None, int]:
        stream = decompressed(io.BytesIO(data), data[:10], keep)
        out = stream.read()
        assert isinstance(stream, StreamMembers)
        return out, stream.trailing, stream.trailing_size

    assert read(GZIPPED * 2 + b"\0" * 700 + b"<html>oops</html>", 17) == (
        payload * 2,
        b"<html>oops</html>",
        17,
    )
    # over `keep` (DUEL_MAX_FILE_BYTES): counted, not kept, as a file over the limit
    assert read(GZIPPED + b"<html>oops</html>", 16) == (payload, None, 17)
    assert read(GZIPPED + bytes(4096), 100) == (payload, None, 0)
    assert read(GZIPPED + b"\0\0\x1f", 100) == (payload, b"\x1f", 1)  # a magic's half: not gzip


@pytest.mark.parametrize(
    ("kind", "compress"),
    [("bzip2", bz2.compress), ("xz", lzma.compress)],
)
def test_decompressed_bzip2_and_xz_keep_what_follows_their_last_stream(
    kind: str, compress: Callable[[bytes], bytes]
) -> None:
    """As gzip: two streams one after the other are read whole, zero padding skipped, and bytes
    that are not another stream kept and counted (bz2 and lzma dropped them without a word)."""
    payload = bytes(range(256)) * 400
    packed = compress(payload)
    stream = decompressed(io.BytesIO(packed * 2 + bytes(8) + b"appended"), packed[:10], 7)
    assert isinstance(stream, StreamMembers)
    assert (stream.read(), stream.trailing, stream.trailing_size) == (payload * 2, None, 8)
    plain = decompressed(io.BytesIO(packed + bytes(4)), packed[:10], 4)
    assert (plain.read(), getattr(plain, "trailing", "?")) == (payload, None)
    with pytest.raises(READ_ERRORS):  # cut short, as before
        decompressed(io.BytesIO(packed[:-10]), packed[:10]).read()


@pytest.mark.parametrize(
    ("damaged", "error"),
    [
        # ISA-L's inflate says the same of a wrong CRC-32 and a wrong length
        (GZIPPED[:-8] + b"\0\0\0\0" + GZIPPED[-4:], "Incorrect checksum found"),
        (GZIPPED[:-4] + b"\0\0\0\0", "Incorrect checksum found"),
        (GZIPPED[:40], "Compressed file ended before the end-of-stream marker was reached"),
        (GZIPPED[:10] + b"\xff" * 20 + GZIPPED[30:], "Invalid deflate block found"),
    ],
    ids=["crc", "length", "cut", "corrupt"],
)
def test_decompressed_gzip_that_is_damaged_raises_a_read_error(damaged: bytes, error: str) -> None:
    """Every damage a gzip stream can have is caught (its CRC-32, its length, a cut, a corrupt
    deflate block) as one of READ_ERRORS, which quarantine the file with this reason."""
    with pytest.raises(READ_ERRORS, match=error):
        decompressed(io.BytesIO(damaged), damaged[:10]).read()


# --- bombs: peak memory of a real `duel ingest` ----------------------------------------------

MiB = 1 << 20


def packed_tar(members: list[tuple[str, int | bytes]], compress: Callable[[bytes], bytes]) -> bytes:
    """A compressed tar whose members given as a size are that many zero bytes, built without
    holding them: the tar is compressed piece by piece into concatenated streams (gzip, bzip2
    and xz readers read them as one), the same 1 MiB of zeros compressed once."""
    zeros = compress(bytes(MiB))
    pieces = []
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size = data if isinstance(data, int) else len(data)
        pieces.append(compress(info.tobuf(tarfile.GNU_FORMAT)))
        if isinstance(data, int):
            assert data % MiB == 0
            pieces.extend([zeros] * (data // MiB))
        else:
            pieces.append(compress(data.ljust(-(-len(data) // 512) * 512, b"\x00")))
    pieces.append(compress(bytes(1024)))
    return b"".join(pieces)


@pytest.mark.parametrize(
    ("suffix", "compress"), [(".tar.bz2", bz2.compress), (".tar.xz", lzma.compress)]
)
def test_ingest_bzip2_and_xz_bombs_are_stopped_by_the_size_limit(
    settings: Settings, tmp_path: Path, suffix: str, compress: Callable[[bytes], bytes]
) -> None:
    """160 MiB of zeros in a few kB: quarantined as too large while streaming, never held."""
    data = tmp_path / f"bomb{suffix}"
    data.write_bytes(packed_tar([("bomb.json", 160 * MiB), ("after.json", USER)], compress))
    assert data.stat().st_size < 64 << 10
    peak, stdout = peak_rss_mb(settings, data)
    assert json.loads(stdout) == {
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
    assert query(settings, "select source_name, reason, byte_size from raw.quarantine") == [
        ("bomb.json", "too-large", 160 * MiB)
    ]
    assert peak < 128


def test_ingest_zip_bomb_is_stopped_by_the_size_limit(settings: Settings, tmp_path: Path) -> None:
    """A member declaring its 256 MiB is quarantined from its size; one declaring 16 MiB (under
    the limit) that inflates to 64 MiB is read to 16 MiB and no further, and fails its CRC;
    compressed members inflating to 512 MiB are read to one byte over the limit; none is held."""
    data = tmp_path / "bomb.zip"
    packed = gzip.compress(bytes(MiB)) * 512  # 512 MiB of zeros: gzip members, one after another
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, size in (("liar.json", 64 * MiB), ("bomb.json", 256 * MiB)):
            with archive.open(name, "w", force_zip64=True) as member:
                for _ in range(size // MiB):
                    member.write(bytes(MiB))
        archive.writestr("bomb.json.gz", packed)
        archive.writestr("bomb.ndjson.gz", packed)
        archive.writestr("after.json", USER)
    lying = bytearray(
        data.read_bytes()
    )  # the liar is the first member: zipfile reads its central size
    at = lying.index(b"PK\x01\x02")
    lying[at + 24 : at + 28] = (16 * MiB).to_bytes(4, "little")
    data.write_bytes(bytes(lying))
    assert data.stat().st_size < 4 * MiB
    with zipfile.ZipFile(data) as archive:
        stored = archive.getinfo("liar.json").compress_size
    peak, stdout = peak_rss_mb(settings, data)
    assert json.loads(stdout) == {
        "batch_id": 1,
        "files_read": 5,
        "files_seen": 5,
        "loaded": 1,
        "repaired": 0,
        "quarantined": 4,
        "skipped": 0,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert query(
        settings, "select source_name, reason, detail, byte_size from raw.quarantine order by 1"
    ) == [
        (
            "bomb.json",
            "too-large",
            f"{256 * MiB} bytes is over the size limit (DUEL_MAX_FILE_BYTES)",
            256 * MiB,
        ),
        (
            "bomb.json.gz",
            "too-large",
            f"{32 * MiB + 1} bytes is over the size limit (DUEL_MAX_FILE_BYTES)",
            32 * MiB + 1,
        ),
        (
            "bomb.ndjson.gz:1",
            "too-large",
            f"{512 * MiB} bytes is over the size limit (DUEL_MAX_FILE_BYTES)",
            512 * MiB,
        ),
        # kept with its bytes as the zip stores them (deflated: under the limit)
        ("liar.json", "unreadable-member", "Bad CRC-32 for file 'liar.json'", stored),
    ]
    assert query(
        settings,
        "select length(content) from raw.quarantine where reason = %s",
        ("unreadable-member",),
    ) == [(stored,)]
    assert peak < 128


def test_ingest_archives_nested_deep_are_bounded(settings: Settings, tmp_path: Path) -> None:
    """Three archives of 29 MiB, one inside another (held together they would take 87 MiB), a
    512 MiB bomb three archives down, and a fourth level: the first is held in memory, the others
    streamed, the bomb quarantined as too large, the fourth as too deep; under 128 MB."""
    l4 = tar_bytes({"u4.json": USER})
    l3 = tar_bytes({"zeros.txt": bytes(29 * MiB), "u3.json": USER, "l4.tar": l4})
    l2 = tar_bytes({"l3.tar": l3, "u2.json": USER})
    l1 = tar_bytes({"l2.tar": l2, "u1.json": USER})
    bomb = packed_tar([("bomb.json", 512 * MiB), ("after.json", USER)], gzip.compress)
    data = tmp_path / "deep.tar.gz"
    with tarfile.open(data, "w:gz", compresslevel=1) as archive:
        add(archive, "l1.tar", l1)
        add(archive, "b1.tar", tar_bytes({"b2.zip": zip_bytes({"b3.tar.gz": bomb})}))
    assert data.stat().st_size < 4 * MiB
    peak, stdout = peak_rss_mb(settings, data)
    assert json.loads(stdout) == {
        "batch_id": 1,
        "files_read": 7,
        "files_seen": 7,
        "loaded": 4,
        "repaired": 0,
        "quarantined": 2,
        "skipped": 1,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert ledger(settings) == {
        "l1.tar/l2.tar/l3.tar/zeros.txt": ("skipped", "not-json"),
        "l1.tar/l2.tar/l3.tar/u3.json": ("loaded", None),
        "l1.tar/l2.tar/l3.tar/l4.tar": ("quarantined", "archive-too-deep"),
        "l1.tar/l2.tar/u2.json": ("loaded", None),
        "l1.tar/u1.json": ("loaded", None),
        "b1.tar/b2.zip/b3.tar.gz/bomb.json": ("quarantined", "too-large"),
        "b1.tar/b2.zip/b3.tar.gz/after.json": ("loaded", None),
    }
    assert query(
        settings,
        "select source_name, content from raw.quarantine where reason = 'archive-too-deep'",
    ) == [("l1.tar/l2.tar/l3.tar/l4.tar", l4)]
    assert peak < 128


def test_ingest_corrupt_nested_archive_is_quarantined_and_strict_fails(
    settings: Settings, tmp_path: Path
) -> None:
    """A nested archive that cannot be read is quarantined with its bytes and the reason, never
    skipped: `--strict` exits 2 on it; what is readable around it loads."""
    garbage = b"\x1f\x8b\x08\x00 this is no gzip stream"
    data = tmp_path / "dump.zip"
    data.write_bytes(zip_bytes({"mixed/user_1.json": USER, "mixed/more.tar.gz": garbage}))
    result = run_cli(settings, "ingest", str(data), "--json", "--strict")
    assert (result.returncode, json.loads(result.stdout)) == (
        2,
        {
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
        },
    )
    assert query(
        settings, "select source_name, reason, detail, byte_size, content from raw.quarantine"
    ) == [
        (
            "mixed/more.tar.gz",
            "unreadable-archive",
            "Invalid deflate block found",
            len(garbage),
            garbage,
        )
    ]


def test_ingest_dump_with_bytes_after_its_end_loads_and_quarantines_them(
    settings: Settings, tmp_path: Path
) -> None:
    """A tar.gz with bytes appended after its gzip stream was refused whole, and a second
    archive after a tar's end-of-archive marker (`cat a.tar.gz b.tar.gz`) was lost without a
    word: the archives load, the second read on as `tar -i` reads it, and what follows them
    that is neither is quarantined with its bytes, unidentified (a complete dump holding it
    withholds its deletes); in an archive inside it too."""
    inner = gzip.compress(tar_bytes({"mixed/user_3.json": USER})) + b"junk"
    first = tar_bytes(
        {"mixed/user_1.json": USER, "mixed/user_2.json": USER, "mixed/inner.tar.gz": inner}
    )
    second = tar_bytes({"mixed/user_4.json": USER})
    stray = b"stray bytes after the second archive\n"
    dump = tmp_path / "dump.tar.gz"
    appended = b"\r\n-- appended by a mailer --\r\n"
    dump.write_bytes(gzip.compress(first) + gzip.compress(second + stray) + appended)
    result = run_cli(settings, "ingest", str(dump), "--json", "--full")
    assert (result.returncode, json.loads(result.stdout)) == (
        0,
        {
            "batch_id": 1,
            "files_read": 4,  # what follows an archive or a stream is no file of its own
            "files_seen": 7,
            "loaded": 4,
            "repaired": 0,
            "quarantined": 3,
            "skipped": 0,
            "unchanged": 0,
            "deleted": 0,
            "keyless": 0,
        },
    )
    rows = query(
        settings,
        "select source_name, reason, detail, byte_size, content from raw.quarantine order by 1",
    )
    assert [row[:4] for row in rows] == [
        (
            "(after its end-of-archive marker)",
            "trailing-data",
            f"{len(stray)} bytes after the tar archive's end-of-archive marker that do not"
            " begin another tar archive: not read",
            len(stray),
        ),
        (
            "(after its gzip stream)",
            "trailing-data",
            f"{len(appended)} bytes after the end of the gzip stream that are not gzip: not"
            " read (what came before them was read whole)",
            len(appended),
        ),
        (
            "mixed/inner.tar.gz (after its gzip stream)",
            "trailing-data",
            "4 bytes after the end of the gzip stream that are not gzip: not read (what came"
            " before them was read whole)",
            4,
        ),
    ]
    assert [bytes(row[4]) for row in rows] == [stray, appended, b"junk"]
    assert query(settings, "select source_name from raw.current_versions order by 1") == [
        ("mixed/inner.tar.gz/mixed/user_3.json",),
        ("mixed/user_1.json",),
        ("mixed/user_2.json",),
        ("mixed/user_4.json",),
    ]
    # the next complete dump holds user_1 only: the deletes wait, as its bytes may hold them
    dump.write_bytes(gzip.compress(tar_bytes({"mixed/user_1.json": USER})) + b"junk")
    again = json.loads(run_cli(settings, "ingest", str(dump), "--json", "--full").stdout)
    assert again == {
        "batch_id": 2,
        "files_read": 1,
        "files_seen": 2,
        "loaded": 0,
        "repaired": 0,
        "quarantined": 1,
        "skipped": 0,
        "unchanged": 1,
        "deleted": 0,
        "keyless": 0,
        "deletes_withheld": 3,
    }


def test_ingest_dump_with_a_corrupt_archive_appended_loads_what_came_before(
    settings: Settings, tmp_path: Path
) -> None:
    """An archive appended after the first one's end-of-archive marker, cut short or with a
    damaged header: the first archive's members and the appended one's before the damage load,
    and the rest is quarantined as trailing data, unidentified (the dump was refused whole)."""
    first = tar_bytes({"mixed/user_1.json": USER})
    second = tar_bytes({"mixed/user_2.json": USER, "mixed/user_3.json": USER})
    member = 512 + (len(USER) + 511) // 512 * 512  # user_2.json's header and data
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(gzip.compress(first) + gzip.compress(second[: member + 176]))
    damaged = tmp_path / "damaged.tar"
    broken = bytearray(second)
    broken[member + 10] ^= 0xFF  # in user_3.json's header
    damaged.write_bytes(first + bytes(broken))
    outcomes = []
    for dump in (cut, damaged):
        result = run_cli(settings, "ingest", str(dump), "--json")
        summary = json.loads(result.stdout)
        outcomes.append((result.returncode, summary["loaded"], summary["quarantined"]))
    assert outcomes == [(0, 2, 1), (0, 0, 1)]  # user_1 and user_2 load, then are unchanged
    assert query(settings, "select source_name from raw.current_versions order by 1") == [
        ("mixed/user_1.json",),
        ("mixed/user_2.json",),
    ]
    rows = query(
        settings,
        "select reason, detail, byte_size from raw.quarantine where source_name ="
        " '(after its end-of-archive marker)' order by batch_id",
    )
    assert rows == [
        (
            "trailing-data",
            "an archive appended after the tar archive's end-of-archive marker is corrupt"
            " (unexpected end of archive): its members before the damage were read; the 176"
            " bytes from the damage on are not",
            176,
        ),
        (
            "trailing-data",
            "an archive appended after the tar archive's end-of-archive marker is corrupt"
            f" (header checksum mismatch): its members before the damage were read; the"
            f" {len(second) - member:,} bytes from the damage on are not",
            len(second) - member,
        ),
    ]


def _zip_contents(data: bytes, keep: int = 0) -> list[tuple[str, int, str, bytes | None, str]]:
    """Each member of zip_members as (name, size, kind, bytes, problem), the bytes read."""
    return [
        (name, size, kind, stream.read() if stream is not None else held, problem)
        for name, size, kind, held, stream, problem in zip_members(io.BytesIO(data), keep)
    ]


def test_zip_members_reads_zips_put_one_after_another() -> None:
    """`cat a.zip b.zip c.zip`: each zip's end record says where it begins, so the ones before
    the last are read too, in file order (unzip and zipfile read only the last one's
    directory, and the others' members were lost without a word)."""
    first = zip_bytes({"mixed/user_1.json": b"1"})
    second = zip_bytes({"mixed/user_2.json": b"22", "mixed/user_3.json": b"333"})
    third = zip_bytes({"mixed/user_1.json": b"4444"})
    assert _zip_contents(first + second + third) == [
        ("mixed/user_1.json", 1, "file", b"1", ""),
        ("mixed/user_2.json", 2, "file", b"22", ""),
        ("mixed/user_3.json", 3, "file", b"333", ""),
        ("mixed/user_1.json", 4, "file", b"4444", ""),
    ]
    assert _zip_contents(first) == [("mixed/user_1.json", 1, "file", b"1", "")]


# an empty zip: its end record alone
EMPTY_ZIP = b"PK\x05\x06" + bytes(18)


@pytest.mark.parametrize(
    ("comment", "after"),
    [
        (b"see PK\x05\x06 in the spec", b""),
        (b"PK\x05\x06" + bytes(40), b""),
        (b"an empty zip: " + EMPTY_ZIP, b""),
        (b"see PK\x05\x06 in the spec", b"bytes added after the zip"),
        (b"PK\x05\x06", b"bytes added after the zip"),
    ],
)
def test_zip_members_reads_a_zip_whose_comment_holds_the_end_record_signature(
    comment: bytes, after: bytes
) -> None:
    """A zip's comment is free text, and may hold the end record's signature: zipfile takes the
    last signature for the record and could not open such a zip, or found it empty. The record
    is the one whose comment ends the zip and whose directory is one; each zip of `cat a.zip
    b.zip` is read so too."""
    first = zip_bytes({"mixed/user_1.json": b"1"}, comment)
    second = zip_bytes({"mixed/user_2.json": b"22", "mixed/user_3.json": b"333"}, comment)
    try:  # zipfile alone: an error, or no member
        names: list[str] | None = zipfile.ZipFile(io.BytesIO(second + after)).namelist()
    except zipfile.BadZipFile:
        names = None
    assert names in (None, [])
    assert _zip_contents(second + after) == [
        ("mixed/user_2.json", 2, "file", b"22", ""),
        ("mixed/user_3.json", 3, "file", b"333", ""),
    ]
    if not after:
        assert _zip_contents(first + second) == [
            ("mixed/user_1.json", 1, "file", b"1", ""),
            ("mixed/user_2.json", 2, "file", b"22", ""),
            ("mixed/user_3.json", 3, "file", b"333", ""),
        ]
    assert _zip_contents(zip_bytes({}, comment)) == []


class _CountedReads(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def test_zip_end_record_search_reads_a_bounded_number_of_candidates() -> None:
    """A comment made of end records (500 or 2,000 of them, each listing a 1-byte directory)
    costs a few dozen reads either way, not one or more per record (a GET each, from S3): the
    search looks at the last 16 signatures, and such a zip is refused as zipfile refuses it."""
    fake = b"PK\x05\x06" + bytes(8) + (1).to_bytes(4, "little") + bytes(6)
    reads = []
    for count in (500, 2000):
        stream = _CountedReads(zip_bytes({"mixed/user_1.json": b"1"}, fake * count))
        with pytest.raises(zipfile.BadZipFile, match="Truncated central directory"):
            list(zip_members(stream))
        reads.append(stream.reads)
    assert max(reads) < 100  # (one per record would be thousands)


SFX_STUB = b'#!/bin/sh\nexec unzip "$0"\n'  # what a self-extracting zip begins with


@pytest.mark.parametrize(
    ("cut", "keep", "kept", "problem"),
    [
        (False, 1 << 10, True, "File is not a zip file"),
        (False, 10, False, "File is not a zip file"),
        # a zip cut short, another appended: its members cannot be found without its directory
        (True, 1 << 10, True, "File is not a zip file"),
    ],
)
def test_zip_members_gives_the_bytes_before_a_zip_that_are_not_one(
    cut: bool, keep: int, kept: bool, problem: str
) -> None:
    """What comes before a zip and is not a zip of its own comes first, as a LEADING member
    with its size, its bytes within `keep`, and why it is not read; the zip after it loads."""
    before = zip_bytes({"mixed/user_9.json": b"9" * 50})[:60] if cut else SFX_STUB
    data = before + zip_bytes({"mixed/user_2.json": b"22"})
    assert _zip_contents(data, keep) == [
        ("", len(before), LEADING, before if kept else None, problem),
        ("mixed/user_2.json", 2, "file", b"22", ""),
    ]


@pytest.mark.parametrize(
    ("stub", "problem"),
    [
        (SFX_STUB, "File is not a zip file"),
        # the end record's signature as a constant in its code, as unzip's own code holds it
        (SFX_STUB + b"PK\x05\x06" + bytes(30), "File is not a zip file: no end record at its end"),
    ],
)
def test_zip_members_reads_the_zips_after_a_self_extractors_program(
    stub: bytes, problem: str
) -> None:
    """A program, then two zips: the program is the leading member (its own bytes only), and
    both zips' members are read; a signature inside the program is not taken for a zip."""
    first = zip_bytes({"mixed/user_1.json": b"1"})
    second = zip_bytes({"mixed/user_2.json": b"22"})
    assert _zip_contents(stub + first + second, 1 << 10) == [
        ("", len(stub), LEADING, stub, problem),
        ("mixed/user_1.json", 1, "file", b"1", ""),
        ("mixed/user_2.json", 2, "file", b"22", ""),
    ]


def test_a_self_extracting_zip_with_adjusted_offsets_is_read_and_its_program_kept(
    tmp_path: Path,
) -> None:
    """`zip -A` (or zipfile appending to a program) counts a self-extracting zip's offsets from
    the program's first byte: the program is then inside the archive, before its first member,
    where no member lists it. The dump is read as the zip it is (it was refused as
    unrecognised bytes) and the program is quarantined as leading data with its bytes."""
    dump = tmp_path / "installer.zip"
    dump.write_bytes(SFX_STUB)
    with zipfile.ZipFile(dump, "a") as archive:  # appended after the program, offsets adjusted
        archive.writestr("mixed/user_1.json", b"{}")
    assert [
        (source.name, source.size, source.data, source.defect)
        for source in iter_source(dump, 1 << 10)
    ] == [
        (
            "(before its zip archive)",
            len(SFX_STUB),
            SFX_STUB,
            f"leading-data: {len(SFX_STUB)} bytes before the zip archive that are not a zip"
            " archive of their own (its directory lists no member there): not read",
        ),
        ("mixed/user_1.json", 2, b"{}", None),
    ]


def test_ingest_zips_put_one_after_another_and_a_self_extracting_zip(
    settings: Settings, tmp_path: Path
) -> None:
    """Every file of `cat a.zip b.zip` loads (only b's did, without a word about a's), and a
    zip after a program (a self-extracting zip; the dump was refused as unrecognised bytes),
    inside a dump or as the dump, loads with the program quarantined as leading data."""
    stub = b"MZ\x90\x00 a self-extractor's program\n"
    concatenated = tmp_path / "concatenated.zip"
    concatenated.write_bytes(
        zip_bytes({"mixed/user_1.json": USER}) + zip_bytes({"mixed/user_2.json": USER})
    )
    inside = tmp_path / "inside.tar.gz"
    inside.write_bytes(
        gzip.compress(tar_bytes({"mixed/sfx.zip": stub + zip_bytes({"user_3.json": USER})}))
    )
    extracting = tmp_path / "extracting.zip"
    extracting.write_bytes(stub + zip_bytes({"mixed/user_4.json": USER}))
    outcomes = []
    for dump in (concatenated, inside, extracting):
        result = run_cli(settings, "ingest", str(dump), "--json")
        summary = json.loads(result.stdout)
        outcomes.append((result.returncode, summary["loaded"], summary["quarantined"]))
    assert outcomes == [(0, 2, 0), (0, 1, 1), (0, 1, 1)]
    assert query(settings, "select source_name from raw.current_versions order by 1") == [
        ("mixed/sfx.zip/user_3.json",),
        ("mixed/user_1.json",),
        ("mixed/user_2.json",),
        ("mixed/user_4.json",),
    ]
    rows = query(
        settings,
        "select batch_id, source_name, reason, detail, byte_size, content from raw.quarantine"
        " order by batch_id",
    )
    detail = (
        f"{len(stub)} bytes before the zip archive that are not a zip archive of their own"
        " (File is not a zip file): not read"
    )
    assert [(*row[:5], bytes(row[5])) for row in rows] == [
        (2, "mixed/sfx.zip (before its zip archive)", "leading-data", detail, len(stub), stub),
        (3, "(before its zip archive)", "leading-data", detail, len(stub), stub),
    ]


def test_ingest_zip_whose_comment_holds_the_end_record_signature(
    settings: Settings, tmp_path: Path
) -> None:
    """A zip whose comment quotes the end record's signature loads every member, as the dump and
    inside one (`duel ingest` stopped with "not a readable zip archive", as zipfile does)."""
    comment = b"exported by a tool that writes PK\x05\x06 into its note"
    dump = tmp_path / "commented.zip"
    dump.write_bytes(zip_bytes({"mixed/user_1.json": USER, "mixed/user_2.json": USER}, comment))
    inside = tmp_path / "inside.tar.gz"
    inside.write_bytes(
        gzip.compress(tar_bytes({"mixed/part.zip": zip_bytes({"user_3.json": USER}, comment)}))
    )
    outcomes = []
    for path in (dump, inside):
        result = run_cli(settings, "ingest", str(path), "--json")
        summary = json.loads(result.stdout)
        outcomes.append((result.returncode, summary["loaded"], summary["quarantined"]))
    assert outcomes == [(0, 2, 0), (0, 1, 0)]
    assert query(settings, "select source_name from raw.current_versions order by 1") == [
        ("mixed/part.zip/user_3.json",),
        ("mixed/user_1.json",),
        ("mixed/user_2.json",),
    ]


@pytest.mark.parametrize("suffix", [".zip", ".tar.xz"])
def test_ingest_real_dataset_repacked_gives_the_same_rows(
    settings: Settings, pg_server: Settings, real_data: Path, tmp_path: Path, suffix: str
) -> None:
    """The real 10,000 files repacked as a zip and as a tar.xz load exactly as from the tar.gz."""
    from duel import db
    from duel.load import ingest

    repacked = tmp_path / f"real{suffix}"
    with tarfile.open(real_data) as source:
        if suffix == ".zip":
            with zipfile.ZipFile(repacked, "w", zipfile.ZIP_DEFLATED) as archive:
                for member in source:
                    if member.isfile():
                        archive.writestr(member.name, source.extractfile(member).read())  # type: ignore[union-attr]
        else:
            with tarfile.open(repacked, "w:xz", preset=1) as archive:
                for member in source:
                    archive.addfile(member, source.extractfile(member) if member.isfile() else None)
    other = pg_server.with_overrides(pg_database=settings.pg_database + "_repacked")
    db.ensure_ready(other)
    assert (
        ingest(settings, real_data).summary()
        == ingest(other, repacked).summary()
        == {
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
    )
    rows = (
        "select source_name, content_sha256, parse_status, repair, document"
        " from raw.user_documents order by 1"
    )
    assert query(settings, rows) == query(other, rows)


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            add(archive, name, data)
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes], comment: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.comment = comment
    return buffer.getvalue()
