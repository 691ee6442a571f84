"""duel.tarstream against archives written by the standard library in every tar format."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from duel.archives import open_archive
from duel.tarstream import TRAILING, Member, TarFormatError, iter_members

LONG = "mixed/" + "d" * 120 + "/user_1.json"


def build(fmt: int, tmp_path: Path, mode: str = "w:gz") -> Path:
    path = tmp_path / f"a{fmt}.tar" if mode == "w" else tmp_path / f"a{fmt}.tar.gz"
    with tarfile.open(path, mode, format=fmt) as archive:
        directory = tarfile.TarInfo("mixed")
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        for name, data in (
            ("mixed/user_0.json", b'{"a": 1}'),
            (LONG, b"x" * 700),
            ("big.json", b"y" * 2000),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("mixed/link.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
        fifo = tarfile.TarInfo("mixed/fifo.json")
        fifo.type = tarfile.FIFOTYPE
        archive.addfile(fifo)
        last = tarfile.TarInfo("mixed/user_2.json")
        last.size = 3
        archive.addfile(last, io.BytesIO(b"{}\n"))
    return path


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_iter_members_reads_every_format(fmt: int, mode: str, tmp_path: Path) -> None:
    path = build(fmt, tmp_path, mode)
    with open_archive(path) as stream:
        members = list(iter_members(stream, max_bytes=1000))
    assert members == [
        Member("mixed/", 0, "dir", None),
        Member("mixed/user_0.json", 8, "file", b'{"a": 1}'),
        Member(LONG, 700, "file", b"x" * 700),
        Member("big.json", 2000, "file", None),
        Member("mixed/link.json", 0, "other", None),
        Member("mixed/fifo.json", 0, "other", None),
        Member("mixed/user_2.json", 3, "file", b"{}\n"),
    ]


def test_iter_members_rejects_truncated_archive(tmp_path: Path) -> None:
    path = build(tarfile.PAX_FORMAT, tmp_path, "w")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(path.read_bytes()[:1800])
    with (
        open_archive(cut) as stream,
        pytest.raises(TarFormatError, match="unexpected end of archive"),
    ):
        list(iter_members(stream, max_bytes=10_000))


def test_iter_members_rejects_corrupt_header(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive".ljust(1024, b"!"))
    with (
        open_archive(bad) as stream,
        pytest.raises(TarFormatError, match=r"header checksum mismatch|bad number"),
    ):
        list(iter_members(stream, max_bytes=10_000))


def _header(
    name: bytes,
    size_field: bytes,
    kind: bytes = b"0",
    magic: bytes = b"ustar\x0000",
    at_345: bytes = b"",
) -> bytes:
    """A ustar header with the given raw size field and a correct checksum (`magic` and
    version; `at_345`: what the 155 bytes at 345 hold, a POSIX name prefix)."""
    header = bytearray(512)
    header[0 : len(name)] = name
    header[100:108] = b"0000644\x00"
    header[124:136] = size_field
    header[148:156] = b" " * 8
    header[156:157] = kind
    header[257:265] = magic
    header[345 : 345 + len(at_345)] = at_345
    header[148:156] = f"{sum(header):06o}\x00 ".encode()
    return bytes(header)


def test_iter_members_reads_a_name_prefix_only_in_a_posix_header(tmp_path: Path) -> None:
    """A GNU header (`tar --format=gnu -G`, --listed-incremental) keeps the access and change
    times at 345, where a POSIX header has the name's prefix: read as one, every member of such
    an archive was named `15304701011/mixed/user_1.json`, a new identity."""
    times = b"15304701011\x0015304701011\x00"
    gnu = _header(b"mixed/user_1.json", b"00000000002\x00", magic=b"ustar  \x00", at_345=times)
    posix = _header(b"user_1.json", b"00000000002\x00", at_345=b"mixed")
    body = b"{}".ljust(512, b"\x00")
    path = tmp_path / "both.tar"
    path.write_bytes(gnu + body + posix + body + bytes(1024))
    with open_archive(path) as stream:
        assert [m.name for m in iter_members(stream, max_bytes=10_000)] == [
            "mixed/user_1.json",
            "mixed/user_1.json",
        ]


def test_iter_members_rejects_a_negative_size(tmp_path: Path) -> None:
    bad = tmp_path / "negative.tar"
    bad.write_bytes(_header(b"user.json", b"-0000000001\x00") + bytes(1024))
    with open_archive(bad) as stream, pytest.raises(TarFormatError, match="bad number field"):
        list(iter_members(stream, max_bytes=10_000))


def test_iter_members_checks_non_ascii_headers_exactly(tmp_path: Path) -> None:
    """A header with non-ASCII bytes (a UTF-8 name) is summed in Python; one flipped byte fails."""
    name = "usér-ß.json".encode()
    good = _header(name, b"00000000002\x00") + b"{}".ljust(512, b"\x00") + bytes(1024)
    path = tmp_path / "utf8.tar"
    path.write_bytes(good)
    with open_archive(path) as stream:
        assert list(iter_members(stream, max_bytes=10_000)) == [
            Member("usér-ß.json", 2, "file", b"{}")
        ]
    corrupt = bytearray(good)
    corrupt[1] ^= 0x01
    path.write_bytes(bytes(corrupt))
    with (
        open_archive(path) as stream,
        pytest.raises(TarFormatError, match="header checksum mismatch"),
    ):
        list(iter_members(stream, max_bytes=10_000))


def test_iter_members_streams_the_members_named_to_be_streamed(tmp_path: Path) -> None:
    """A member named to be streamed comes as a stream over the archive, whatever its size; what
    is left unread of it is skipped, and the members after it are read as usual."""
    path = tmp_path / "nested.tar"
    nested = bytes(range(256)) * 5000  # 1.28 MB: crosses the reader's 1 MiB chunks
    with tarfile.open(path, "w") as archive:
        for name, data in (
            ("a.TAR.GZ", nested),
            ("b.json", b"{}"),
            ("c.tar.gz", nested),
            ("d.json", b"[]"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    read = []
    with open_archive(path) as stream:
        members = iter_members(stream, max_bytes=10, wanted=(".json",), streamed=(".tar.gz",))
        for member in members:
            if member.stream is not None:
                read.append(
                    member.stream.read() if member.name == "a.TAR.GZ" else member.stream.read(7)
                )
            read.append(member[:4])
    assert read == [
        nested,
        ("a.TAR.GZ", len(nested), "file", None),
        ("b.json", 2, "file", b"{}"),
        nested[:7],
        ("c.tar.gz", len(nested), "file", None),
        ("d.json", 2, "file", b"[]"),
    ]


def test_iter_members_gives_what_follows_the_end_of_archive_marker() -> None:
    """After the end-of-archive marker, zeros are its padding (nothing); anything else is one
    `trailing` member, read through: its first bytes kept and its size (it was never read)."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("a.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    plain = archive.getvalue()
    names = [(m.name, m.kind, m.data) for m in iter_members(io.BytesIO(plain + bytes(4096)), 10)]
    assert names == [("a.json", "file", b"{}")]
    after = list(iter_members(io.BytesIO(plain + b"\0" * 3 + b"appended" * 1000), 10))
    assert [(m.name, m.kind, m.size, m.data) for m in after] == [
        ("a.json", "file", 2, b"{}"),
        ("", TRAILING, 8000, None),  # over the limit (10 bytes): its size, not its bytes
    ]
    short = list(iter_members(io.BytesIO(plain + b"\0" * 3 + b"appended"), 10))
    assert [(m.kind, m.size, m.data) for m in short][1:] == [(TRAILING, 8, b"appended")]


def test_iter_members_reads_on_into_an_archive_appended_after_the_marker() -> None:
    """`cat a.tar b.tar`: past the first archive's end-of-archive marker (and any zero blocks),
    a block that is a tar header (ustar, GNU or v7) starts another archive, read on as `tar -i`
    reads it; what is not one is the trailing member, even when it is block-sized and after
    zero blocks."""

    def archive(name: str, data: bytes) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def v7(ustar: bytes) -> bytes:
        """The archive with its headers in v7's format as GNU tar writes it (`tar
        --format=v7`): no magic, version or owner names (its device numbers are kept)."""
        blocks = bytearray(ustar)
        for at in (0, 1024):  # the two members' headers (each with one block of data)
            header = blocks[at : at + 512]
            header[257:329] = bytes(72)
            header[329:345] = b"0000000\x000000000\x00"
            header[148:156] = b" " * 8
            header[148:156] = b"%06o\0 " % sum(header)
            blocks[at : at + 512] = header
        return bytes(blocks)

    joined = archive("a.json", b"{}") + bytes(2048) + archive("b.json", b"[1]")
    members = [(m.name, m.kind, m.data) for m in iter_members(io.BytesIO(joined), 10)]
    assert members == [("a.json", "file", b"{}"), ("b.json", "file", b"[1]")]
    # an appended archive in v7's format is read on too (it was trailing data)
    older = v7(archive("c.json", b"[2]")[:1024] + archive("d.json", b"[3]"))
    joined = archive("a.json", b"{}") + older
    members = [(m.name, m.kind, m.data) for m in iter_members(io.BytesIO(joined), 10)]
    assert members == [
        ("a.json", "file", b"{}"),
        ("c.json", "file", b"[2]"),
        ("d.json", "file", b"[3]"),
    ]
    # a block whose checksum is right but that names no tar format, or one with a wrong
    # checksum, is not a header: it and what follows are trailing
    fake = bytearray(archive("c.json", b"{}")[:512])
    fake[257:263] = b"xxxxx\0"
    fake[148:156] = b" " * 8
    fake[148:156] = b"%06o\0 " % sum(fake)
    for block in (bytes(fake), b"x" * 512):
        after = list(iter_members(io.BytesIO(archive("a.json", b"{}") + block), 1024))
        assert [(m.name, m.kind, m.size, m.data) for m in after] == [
            ("a.json", "file", 2, b"{}"),
            ("", TRAILING, 512, block),
        ]


def test_iter_members_ends_a_corrupt_appended_archive_as_trailing() -> None:
    """An appended archive cut short, or with a damaged header, ends as one trailing member with
    its problem and the bytes from the damage on (the damaged header included); the members
    before it stand. A corrupt first archive still raises."""

    def archive(*names: str) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = 2
                tar.addfile(info, io.BytesIO(b"{}"))
        return buffer.getvalue()

    first, second = archive("a.json"), archive("b.json", "c.json")
    cut = list(iter_members(io.BytesIO(first + second[: 1024 + 100]), 4096))
    assert [(m.name, m.kind, m.size, m.data, m.problem) for m in cut] == [
        ("a.json", "file", 2, b"{}", ""),
        ("b.json", "file", 2, b"{}", ""),
        ("", TRAILING, 100, second[1024:1124], "unexpected end of archive"),
    ]
    broken = bytearray(second)
    broken[1024 + 3] ^= 0xFF
    damaged = list(iter_members(io.BytesIO(first + bytes(broken)), 1 << 20))
    assert [(m.name, m.size, m.problem) for m in damaged] == [
        ("a.json", 2, ""),
        ("b.json", 2, ""),
        ("", len(second) - 1024, "header checksum mismatch"),
    ]
    assert damaged[-1].data == bytes(broken[1024:])
    with pytest.raises(TarFormatError, match="unexpected end of archive"):
        list(iter_members(io.BytesIO(second[: 1024 + 100]), 4096))
