"""The byte layer under the readers: compressed streams (gzip, bzip2, xz, told by their magic
number, not their name), zip archives read member by member, and reads bounded by a limit.

Nothing is extracted or written to disk. Every read here is bounded: a member, a document or a
line is read to at most one byte over its limit, so a member whose declared size lies (a zip
bomb) is never held beyond it. A zip needs random access and reads its directory whole, so
`zip_members` refuses one with more members, or a larger directory, than the limits below.
"""

from __future__ import annotations

import bz2
import io
import itertools
import lzma
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from isal import isal_zlib

from duel.tarstream import Member, TarFormatError, drain

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAGIC_BYTES = 10  # enough of a stream's head to tell its format
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty zip's end record
MAX_ZIP_MEMBERS = 50_000  # zipfile holds ~600 bytes per member of its directory
MAX_ZIP_DIRECTORY = 8 << 20  # bytes of central directory, read whole by zipfile
READ_SIZE = 1 << 18  # bounded reads go this far at a time
# A zip_members member for the bytes before a zip that are not one (a self-extractor's stub, a
# zip cut short before another was appended): its `problem` says why they are not read.
LEADING = "leading"
# isal's stub types the class as an instance
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)
# What a corrupt, truncated or unsupported stream raises while it is read.
READ_ERRORS = (
    TarFormatError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    zlib.error,
    # a corrupt deflate stream in a gzip dump (StreamMembers gives it as zlib.error)
    _ISAL_ERROR,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD_SIGNATURE = b"PK\x05\x06"
# The signatures at a zip's end looked at for its end record (_end_record), each with a read:
# a comment quotes the signature a few times, where bytes made of it would cost a read (a GET,
# in S3) for each.
_END_RECORD_CANDIDATES = 16
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL_HEADER_BYTES = 30
# names of the zip specification's methods (APPNOTE 4.4.5) that zips in use carry, for the
# defect of a member zipfile does not read (which ones it reads is zipfile's to say: 3.14 reads
# zstandard): AES is method 99 in WinZip's and 7-Zip's encrypted zips, deflate64 Windows' for
# large folders
_ZIP_METHOD_NAMES = {
    1: "shrink",
    6: "implode",
    9: "deflate64",
    93: "zstandard",
    95: "xz",
    98: "PPMd",
    99: "AES encryption",
}


class ArchiveLimitError(Exception):
    """An archive is beyond a documented limit (members, directory size): not read."""


# Packed formats duel does not read, by their first bytes (what a file named otherwise is).
_OTHER_MAGIC = (
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)


def packed_kind(head: bytes) -> str | None:
    """What packed data starting with `head` is ("a zip archive", "gzip-compressed data", "a
    RAR archive"...), or None: for a file whose name says something else."""
    if is_zip(head):
        return "a zip archive"
    if (packed := compression(head)) is not None:
        return f"{packed}-compressed data"
    return next((name for magic, name in _OTHER_MAGIC if head.startswith(magic)), None)


def compression(head: bytes) -> str | None:
    """The compression a stream starting with `head` uses: gzip, bzip2, xz, or None."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    # "BZh", the block size, then a block's or the end's own magic: a tar member named BZh... is
    # not bzip2
    if (
        head[:3] == b"BZh"
        and head[3:4] in b"123456789"
        and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90")
    ):
        return "bzip2"
    return None


def is_zip(head: bytes) -> bool:
    return head.startswith(ZIP_MAGIC)


# What starts a stream's next member (a stream of several: `cat a.gz b.gz`, pbzip2, xz -T).
STREAM_MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}
# Compressed bytes given to a decompressor at a time: what one call of zlib's leaves unread (its
# output is bounded) is copied into the next, so a small piece (1 MiB made the read twice as slow).
_INFLATE_INPUT = 1 << 16
_ZLIB_CODE = re.compile(r"^Error -?[0-9]+ ")


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        # ISA-L's inflate, gzip.GzipFile's checks (header, CRC-32, length), about a third of
        # zlib's time (bench/analysis.md); 31: a gzip member (16 + a 32 KiB window)
        return isal_zlib.decompressobj(31)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()  # as lzma.LZMAFile reads: .xz (and legacy .lzma)


class StreamMembers(io.RawIOBase):
    """A compressed stream's bytes (`kind`: gzip, bzip2 or xz), member after member, checked as
    gzip.GzipFile, bz2.BZ2File and lzma.LZMAFile check them, but for what follows the last
    member. Zero padding there is skipped; bytes that are not another member end the stream,
    counted in `trailing_size` and kept in `trailing` when they are `keep` bytes at most. gzip
    raised "not a gzipped file" in the read that also held the archive's last bytes (a dump
    with a few bytes appended was refused whole), bz2 and lzma dropped them without a word."""

    def __init__(self, raw: BinaryIO, kind: str, keep: int = 0) -> None:
        super().__init__()
        self.raw, self.kind, self.keep = raw, kind, keep
        self.magic = STREAM_MAGIC[kind]
        self.member = _decompressor(kind)
        self.pending = b""  # compressed bytes read and not yet given to the decompressor
        self.trailing: bytes | None = None
        self.trailing_size = 0
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` uncompressed bytes (at least one, unless the stream has ended); all of
        them without `size`. Callers read large pieces, so no buffer sits on top (it would only
        copy; `iter_lines` puts one for its lines)."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(READ_SIZE), b""))
        while not self.ended and size:
            member = self.member
            if member.eof:  # a member ended: another, padding, or what is not one
                rest, self.pending = member.unused_data + self.pending, b""
                self._after_member(rest)
                continue
            if self.kind == "gzip":  # zlib's: what it leaves unread is handed back
                self._need_input()
                try:
                    data = member.decompress(self.pending, size)
                except _ISAL_ERROR as exc:  # `Error -6 Incorrect checksum found`: the words
                    raise zlib.error(_ZLIB_CODE.sub("", str(exc))) from None
                self.pending = member.unconsumed_tail
            elif member.needs_input:  # bz2's and lzma's keep what they took
                self._need_input()
                data, self.pending = member.decompress(self.pending, size), b""
            else:
                data = member.decompress(b"", size)
            if data:
                return data
        return b""

    def _need_input(self) -> None:
        if not self.pending:
            self.pending = self.raw.read(_INFLATE_INPUT)
            if not self.pending:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    def _after_member(self, rest: bytes) -> None:
        rest = rest.lstrip(b"\x00")
        while len(rest) < len(self.magic):
            more = self.raw.read(_INFLATE_INPUT)
            if not more:
                if rest:
                    self._trail(rest)
                self.ended = True
                return
            rest = (rest + more).lstrip(b"\x00")
        if rest.startswith(self.magic):
            self.member = _decompressor(self.kind)
            self.pending = rest
        else:
            self._trail(rest)
            self.ended = True

    def _trail(self, rest: bytes) -> None:
        self.trailing, self.trailing_size = drain(rest, lambda: self.raw.read(READ_SIZE), self.keep)


def decompressed(stream: BinaryIO, head: bytes, keep: int = 0) -> BinaryIO:
    """The stream's uncompressed bytes, for the compression its `head` shows (a StreamMembers,
    which keeps `keep` bytes of what follows its end), or the stream itself."""
    kind = compression(head)
    return cast(BinaryIO, StreamMembers(stream, kind, keep)) if kind is not None else stream


def peekable(stream: BinaryIO) -> tuple[BinaryIO, bytes]:
    """A stream that reads as `stream` does, and its first bytes, read without consuming them."""
    buffered = (
        stream
        if isinstance(stream, io.BufferedReader)
        else io.BufferedReader(cast(io.RawIOBase, stream))
    )
    return cast(BinaryIO, buffered), buffered.peek(MAGIC_BYTES)[:MAGIC_BYTES]


@contextmanager
def open_archive(path: str | Path) -> Iterator[BinaryIO]:
    """A file's uncompressed byte stream (its compression told by its magic number, not its
    name)."""
    with open(path, "rb") as raw:
        head = raw.read(MAGIC_BYTES)
        raw.seek(0)
        yield decompressed(raw, head)


def read_bounded(stream: BinaryIO, limit: int) -> tuple[bytes | None, int]:
    """(the stream's bytes, their size) if it holds at most `limit` bytes, else (None, bytes read):
    never more than limit + 1 bytes are read, whatever the stream claims to hold. The bytes are
    gathered in one buffer that becomes the result, so they are held once, not twice."""
    held = io.BytesIO()
    size = 0
    while size <= limit:
        part = stream.read(min(READ_SIZE, limit + 1 - size))
        if not part:
            break
        held.write(part)
        size += len(part)
    if size > limit:
        return None, size
    return held.getvalue(), size  # the buffer itself, no copy


def hold(stream: BinaryIO | bytes, size: int, budget: int) -> tuple[BinaryIO, bytes, bytes | None]:
    """(a stream of a member, its first bytes, its bytes if held): read whole into memory when
    its size fits the budget (a zip needs that, and a corrupt member can then be kept), else
    left a stream. Bytes already read count as held only within the budget too, so that what is
    held never depends on how the member came."""
    if isinstance(stream, bytes):
        return io.BytesIO(stream), stream[:MAGIC_BYTES], stream if len(stream) <= budget else None
    if size <= budget:
        data, _length = read_bounded(stream, budget)
        if data is None:  # longer than its declared size: the readers bound that, but say so if not
            raise ArchiveLimitError(f"it holds more than its declared {size:,} bytes")
        return io.BytesIO(data), data[:MAGIC_BYTES], data
    buffered, head = peekable(stream)
    return buffered, head, None


def iter_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, the line or None when over `limit`, its size) for each non-blank line;
    a line over the limit is read through in bounded reads, never held. A line kept ends in one
    `\n` whatever ended it in the file (`\r\n`, or nothing on the last line): its bytes, hashed
    as its document's version and content key, are the same however the file ends its lines
    (`canonical_line`)."""
    if isinstance(stream, StreamMembers):  # unbuffered (for the tar reader's large reads)
        stream = cast(BinaryIO, io.BufferedReader(stream, READ_SIZE))
    readline = stream.readline
    number = 0
    while line := readline(READ_SIZE):
        number += 1
        if len(line) == READ_SIZE and not line.endswith(b"\n"):
            kept, size, blank = _rest_of_line(readline, line, limit)
        else:
            kept, size, blank = (line if len(line) <= limit else None), len(line), not line.strip()
        if not blank:  # a blank line is no document, however long
            if kept is not None:
                kept = canonical_line(kept)
                size = len(kept)
            yield number, kept, size


def canonical_line(line: bytes) -> bytes:
    """An NDJSON line ended by one `\n` (an LF file's lines as they are, so their versions are
    those stored before): CRLF's `\r` and the last line's missing end make no new version, and
    no new identity for a document keyed by its content."""
    if line.endswith(b"\r\n"):
        return line[:-2] + b"\n"
    return line if line.endswith(b"\n") else line + b"\n"


def _rest_of_line(
    readline: Callable[[int], bytes], head: bytes, limit: int
) -> tuple[bytes | None, int, bool]:
    """A line longer than one read: (its bytes if within `limit`, gathered in one buffer; its
    size; whether it is blank), read a bounded part at a time."""
    held: io.BytesIO | None = io.BytesIO()
    size, blank, part = 0, True, head
    while part:
        size += len(part)
        blank = blank and not part.strip()
        if held is not None and size <= limit:
            held.write(part)
        else:
            held = None
        if part.endswith(b"\n"):
            break
        part = readline(READ_SIZE)
    return (held.getvalue() if held is not None else None), size, blank


def _directory_bounds(handle: BinaryIO, whole: bool = False) -> tuple[int, int, int]:
    """(start, size) of a zip's central directory, from its end record (zip64 too), as zipfile
    finds them, and where the archive begins: after any data before it (a self-extractor's
    stub, or another zip put there by `cat a.zip b.zip`), which zipfile allows for and skips.
    `whole`: the end record and its comment must end the stream, as a zip's do when another
    was put after it (a signature found elsewhere is not taken for one)."""
    start, tail, at = _end_record(handle, whole)
    *_, size, offset, _comment = _EOCD.unpack_from(tail, at)
    record = start + at
    if _zip64_locator(tail, at):
        record = start + at - _EOCD64_LOCATOR.size - _EOCD64.size
        handle.seek(record)
        zip64 = handle.read(_EOCD64.size)
        if len(zip64) < _EOCD64.size or zip64[:4] != b"PK\x06\x06":
            raise zipfile.BadZipFile("corrupt zip64 end of central directory")
        size, offset = _EOCD64.unpack(zip64)[8:10]
    if size > record:
        raise zipfile.BadZipFile("the central directory is larger than the file")
    if size > MAX_ZIP_DIRECTORY:
        raise ArchiveLimitError(
            f"its directory is {size:,} bytes, over the limit of {MAX_ZIP_DIRECTORY:,}"
        )
    return record - size, size, max(0, record - size - offset)


def _end_record(handle: BinaryIO, whole: bool = False) -> tuple[int, bytes, int]:
    """A zip's last bytes (where they start, and they) and where in them its end record is.

    The record is the last signature whose record and comment end the stream, and whose
    directory starts with a directory entry's signature (or the first that lists no
    directory, when none does). A comment may hold the signature itself (it is free text: a
    note that quotes a zip's bytes, or a whole empty zip's record): zipfile takes the last
    signature it finds for the record, reads the comment's bytes as one, and cannot open the
    archive or finds it empty (zipfile_view). When no record ends the stream (bytes were added
    after the zip's comment), the record is the last signature whose directory is one, else
    the last signature (as zipfile takes it), which `whole` wants at the end. (A directory
    that does not end where the record begins, such as one followed by a signature record, is
    not checked, and its record is taken as zipfile takes it.)"""
    end = handle.seek(0, io.SEEK_END)
    start = max(0, end - _EOCD.size - 0xFFFF)
    handle.seek(start)
    tail = handle.read()
    last = at = tail.rfind(_EOCD_SIGNATURE)
    # the first record that ends the stream and lists nothing (the others are its comment's);
    # the last that lists a directory, not at the end
    empty = listed = -1
    for _ in range(_END_RECORD_CANDIDATES):
        if at < 0:
            break
        if len(tail) - at >= _EOCD.size:
            size = _EOCD.unpack_from(tail, at)[-3]
            ends = _ends(tail, at)
            if ends and size == 0:
                empty = at
            elif _zip64_locator(tail, at) or (
                size > 0 and _directory_at(handle, start + at - size)
            ):
                if ends:
                    return start, tail, at
                listed = at if listed < 0 else listed
        at = tail.rfind(_EOCD_SIGNATURE, 0, at)
    if empty >= 0:
        return start, tail, empty
    if listed >= 0 and not whole:
        return start, tail, listed
    if last < 0 or len(tail) - last < _EOCD.size:
        raise zipfile.BadZipFile("File is not a zip file")
    if whole and not _ends(tail, last):
        raise zipfile.BadZipFile("File is not a zip file: no end record at its end")
    return start, tail, last


def _ends(tail: bytes, at: int) -> bool:
    """Whether the end record at `at` and its comment end `tail`."""
    return at + _EOCD.size + _EOCD.unpack_from(tail, at)[-1] == len(tail)


def _directory_at(handle: BinaryIO, at: int) -> bool:
    """Whether a directory entry begins `at`."""
    if at < 0:
        return False
    handle.seek(at)
    return handle.read(4) == b"PK\x01\x02"


def _zip64_locator(tail: bytes, at: int) -> bool:
    """Whether a zip64 locator precedes the end record at `at` (its directory is found through
    the zip64 record, which _directory_bounds and zipfile check)."""
    locator = at - _EOCD64_LOCATOR.size
    return locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07"


def zipfile_view(handle: BinaryIO) -> BinaryIO:
    """The zip that ends where `handle` does, as zipfile can open it: the handle itself, or, when
    its comment holds the end record's signature (_end_record), a view of it without the
    comment (the record's comment length read as 0); its members' offsets are unchanged."""
    start, tail, at = _end_record(handle)
    handle.seek(0)
    if tail.rfind(_EOCD_SIGNATURE) == at:
        return handle
    record = start + at
    return cast(BinaryIO, _Head(handle, record + _EOCD.size, (record + _EOCD.size - 2, b"\0\0")))


def _count_members(handle: BinaryIO) -> int:
    """How many members a zip's central directory lists (counted as zipfile will walk it)."""
    start, size, _begins = _directory_bounds(handle)
    handle.seek(start)
    directory = handle.read(size)
    count = pos = 0
    while pos + _CENTRAL_HEADER.size <= len(directory):
        fields = _CENTRAL_HEADER.unpack_from(directory, pos)
        pos += _CENTRAL_HEADER.size + fields[12] + fields[13] + fields[14]  # name, extra, comment
        count += 1
    handle.seek(0)
    return count


class _Head(io.RawIOBase):
    """The first `size` bytes of a seekable stream, as a file of their own: what lies before a
    zip archive, opened by zipfile as the archive it may be (`cat a.zip b.zip` puts a whole zip
    there, whose directory b's does not list), or a zip without its comment (zipfile_view),
    whose `patch` (position, bytes) is read in place of the stream's bytes there. It seeks the
    shared stream before every read, as zipfile's own reads of the stream do."""

    def __init__(self, handle: BinaryIO, size: int, patch: tuple[int, bytes] | None = None) -> None:
        super().__init__()
        self.handle, self.size, self.pos, self.patch = handle, size, 0, patch

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, target: WriteableBuffer) -> int:
        view = memoryview(target).cast("B")
        want = min(len(view), self.size - self.pos)
        if want <= 0:
            return 0
        self.handle.seek(self.pos)
        data = self.handle.read(want)
        view[: len(data)] = data
        if self.patch is not None:
            at, patch = self.patch
            lo, hi = max(at, self.pos), min(at + len(patch), self.pos + len(data))
            if lo < hi:
                view[lo - self.pos : hi - self.pos] = patch[lo - at : hi - at]
        self.pos += len(data)
        return len(data)


def _zip_parts(handle: BinaryIO) -> tuple[list[BinaryIO], int, str]:
    """The zips a file holds, first to last, each a stream that ends where that zip does (the
    last one the handle itself), and the bytes before the first that are not a zip, with why.

    A zip's end record says where its directory is and where the archive began; bytes before
    that are read as another zip when they are one, as `cat a.zip b.zip` makes (unzip reads
    only b, and a's members would be lost without a word): when they end with an end record
    and zipfile reads the directory it points to. What is not (a self-extractor's program, a
    zip cut short) is left for the caller to quarantine: `(leading bytes, the reason they are
    not a zip)`. The last zip's errors are raised, as an unreadable archive's."""
    parts: list[BinaryIO] = [handle]
    begins = _directory_bounds(handle)[2]
    while begins > 0:
        head = cast(BinaryIO, _Head(handle, begins))
        try:
            earlier = _directory_bounds(head, whole=True)[2]
            zipfile.ZipFile(zipfile_view(head)).close()  # its directory reads: not by chance
        except (*READ_ERRORS, ArchiveLimitError) as exc:
            return parts[::-1], begins, str(exc)
        head.seek(0)
        parts.append(head)
        begins = earlier
    handle.seek(0)
    return parts[::-1], 0, ""


class _ZipMember(io.RawIOBase):
    """One zip member's bytes, opened at the first read, so that an encrypted, corrupt or
    overlapping member fails where it is read, like any other read error."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, overlaps: bool) -> None:
        super().__init__()
        self.archive, self.info, self.overlaps = archive, info, overlaps
        self.opened: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:  # directly, not through readinto's copies
        if self.opened is None:
            if self.overlaps:  # several members over the same bytes: a zip bomb's trick
                raise zipfile.BadZipFile("its data overlaps the next member's")
            if self.info.flag_bits & 0x1:
                raise zipfile.BadZipFile("encrypted (no password is ever given)")
            try:
                self.opened = cast(BinaryIO, self.archive.open(self.info))
            except NotImplementedError:  # zipfile's message names no method
                method = self.info.compress_type
                raise zipfile.BadZipFile(
                    f"compression method {method} ({_ZIP_METHOD_NAMES.get(method, 'unknown')}),"
                    " which this Python's zipfile does not read"
                ) from None
        return self.opened.read(-1 if size is None else size)

    def stored_bytes(self, limit: int) -> bytes | None:
        """The member's bytes as the archive holds them (compressed, when it is), for a member
        that cannot be read (a failed CRC, a method zipfile lacks such as Deflate64): kept with
        its quarantine, as a file's are. None over `limit`, when they cannot be found, and for a
        member over another's bytes (a zip bomb's copies would each keep them)."""
        info = self.info
        if info.compress_size > limit or self.overlaps:  # another member's bytes: not its own
            return None
        handle = self.archive.fp
        if handle is None:
            return None
        try:
            handle.seek(info.header_offset)
            header = handle.read(_LOCAL_HEADER_BYTES)
            if len(header) < _LOCAL_HEADER_BYTES or header[:4] != b"PK\x03\x04":
                return None
            name_length, extra_length = struct.unpack_from("<2H", header, 26)
            handle.seek(info.header_offset + _LOCAL_HEADER_BYTES + name_length + extra_length)
            data = handle.read(info.compress_size)
        except (OSError, ValueError):
            return None
        return data if len(data) == info.compress_size else None

    def readinto(self, target: WriteableBuffer) -> int:
        view = memoryview(target).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.opened is not None:
            self.opened.close()
        super().close()


def _kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16 if info.create_system == 3 else 0  # 3: unix, with a mode
    if info.is_dir() or info.orig_filename.endswith("\\") or stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_IFMT(mode) in (0, stat.S_IFREG) else "other"  # no type bits: a file


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A member's name with `/` between its folders: the zip format's separator, which tools on
    Windows write as `\\` (`mixed\\user_1.json`, read as unzip reads it: `mixed/user_1.json`;
    `..\\x.json` is then `../x.json`, which the caller refuses as escaping the archive)."""
    return info.orig_filename.replace("\\", "/")


def zip_after_data(stream: BinaryIO) -> bool:
    """Whether a stream that seeks, and does not begin as a zip, ends with a zip's end record:
    a self-extracting zip (a program, then the archive, its offsets adjusted to the program or
    not). Asked only of a stream that holds no tar: a tar whose last member is a zip ends the
    same way."""
    try:
        if not stream.seekable():
            return False
        _directory_bounds(stream)
    except (*READ_ERRORS, ArchiveLimitError):
        return False
    return True


def zip_members(handle: BinaryIO, keep: int = 0) -> Iterator[Member]:
    """A zip's members in directory order, each regular file with a `stream` of its bytes that
    is read only if the caller reads it (and valid until the next member); ArchiveLimitError
    beyond MAX_ZIP_MEMBERS. Names have `/` between folders (_zip_name).

    Zips put one after another (`cat a.zip b.zip`) are read in turn, each by its own directory
    (_zip_parts). Bytes before the first that are not a zip come first, as a LEADING member
    with their size, their bytes when at most `keep`, and why they are not read; so do the
    bytes before the first zip's first member when its offsets count them (`zip -A` on a
    self-extracting zip: its program is then inside the archive, where no member lists it)."""
    parts, leading, why = _zip_parts(handle)
    count = sum(_count_members(part) for part in parts)
    if count > MAX_ZIP_MEMBERS:
        raise ArchiveLimitError(f"it has {count:,} members, over the limit of {MAX_ZIP_MEMBERS:,}")
    if leading:
        yield _leading(handle, leading, keep, why)
    for number, part in enumerate(parts):
        yield from _members_of(part, keep if number == 0 and not leading else None)


def _leading(handle: BinaryIO, size: int, keep: int, why: str) -> Member:
    """The LEADING member of a zip's first `size` bytes (held when at most `keep`)."""
    data = None
    if size <= keep:
        handle.seek(0)
        data = handle.read(size)
    return Member("", size, LEADING, data, None, why)


def _members_of(handle: BinaryIO, keep: int | None = None) -> Iterator[Member]:
    """The members of the zip that ends where `handle` does; with `keep`, first the bytes
    before its first member when there are any (_leading)."""
    with zipfile.ZipFile(zipfile_view(handle)) as archive:
        infos = archive.infolist()
        by_offset = sorted(infos, key=lambda info: info.header_offset)
        first = by_offset[0].header_offset if by_offset else archive.start_dir
        if keep is not None and first > 0:
            yield _leading(handle, first, keep, "its directory lists no member there")
        overlapping = {
            id(info)
            for info, after in itertools.pairwise(by_offset)
            if info.header_offset + _LOCAL_HEADER_BYTES + info.compress_size > after.header_offset
        }
        for info in infos:
            kind = _kind(info)
            if kind != "file":
                yield Member(_zip_name(info), info.file_size, kind, None)
                continue
            with _ZipMember(archive, info, id(info) in overlapping) as member:
                yield Member(_zip_name(info), info.file_size, "file", None, cast(BinaryIO, member))
