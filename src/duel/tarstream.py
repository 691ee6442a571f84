"""A streaming, read-only tar reader for the ingest's hot path.

Why not `tarfile`: its pure-Python header parsing costs ~50 µs a member, 20x the cost of
everything else we do per file (a million-member archive spent most of its time there). This
reader handles what real archives contain — ustar/POSIX headers with checksum verification,
GNU long names (`L`/`K`), pax extended headers (`x`, path and size), base-256 sizes — and
reports everything else (links, devices, FIFOs, sparse files, unknown types) as non-regular
members, whose data it skips without holding it in memory. It never writes anything to disk.

The stream is read in 1 MiB chunks that headers and data are sliced out of, so most members
cost no read call; data over the size limit is skipped a chunk at a time, never held. A member
whose name the caller asks to stream (a nested archive) is handed out as a stream over the same
buffer instead, read as the caller goes, so its size does not matter. Decompression is
`duel.archives`' part.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, cast

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

BLOCK = 512
CHUNK = 1 << 20  # read size: members are sliced out of one buffer, most with no read call
REGULAR = (b"0", b"\x00", b"7")  # 7 = contiguous file, read as regular
DIRECTORY = b"5"
GNU_DUMPDIR = b"D"  # a directory with the list of its names, in GNU incremental archives (-G)
NO_DATA = frozenset((b"1", b"2", b"3", b"4", b"5", b"6"))  # links, devices, dirs, FIFOs: no data
EXTENDED = frozenset((b"L", b"x", b"g", b"K"))  # sets: every member is looked up (hot path)
MAX_EXTENDED = 1 << 20
TRAILING = "trailing"
_ZERO_BLOCK = bytes(BLOCK)
_V7_TYPES = frozenset((b"0", b"\x00", b"1", b"2", b"5"))  # file, file, link, symlink, directory
_V7_UNNAMED = bytes(329 - 257)  # a ustar header's magic, version, owner and group names
_EMPTY_PREFIX = bytes(155)
# what a stream with no byte of tar in it is called (a 0-byte file, a gzip of nothing)
EMPTY = "empty: no tar data"

# The header fields read: name, size, checksum, type flag, magic (6 bytes: `ustar\0` in a POSIX
# header, `ustar ` in a GNU one), ustar name prefix.
_HEADER = struct.Struct("100s24x12s12x8sc100x6s82x155s")
# Only a POSIX (ustar) header has a name prefix: a GNU header keeps the access and change times
# and sparse data there (`tar --format=gnu -G`, --listed-incremental), never a name.
_POSIX_MAGIC = b"ustar\x00"


class TarFormatError(Exception):
    """The archive is truncated or a header is corrupt."""


class Member(NamedTuple):  # a tuple, not a dataclass: built once per file on the hot path
    name: str
    size: int
    # file | dir | other | trailing (what follows the end-of-archive marker, not tar) | leading
    # (archives.LEADING: what comes before a zip and is not one)
    kind: str
    data: (
        bytes | None
    )  # the file's bytes; None when not read (other, dir, streamed, unwanted, over max_bytes)
    stream: BinaryIO | None = None  # a streamed member's bytes, valid until the next member
    # a trailing member's damage: an archive appended after the marker that is corrupt (its
    # members before the damage were read), "" when what follows the marker is not tar at all
    problem: str = ""


def _number(field: bytes) -> int:
    """A numeric header field: octal text (NUL- or space-terminated) or GNU base-256."""
    text = field.split(b"\x00", 1)[0]
    try:
        value = int(text, 8)  # int() ignores the surrounding whitespace itself
    except ValueError:
        if field[0] & 0x80:  # GNU base-256 (not octal text: its first byte is not ASCII)
            return int.from_bytes(field, "big", signed=False) & ~(0x80 << (8 * (len(field) - 1)))
        if text.strip():
            raise TarFormatError(f"bad number field {field!r}") from None
        return 0
    if value < 0:  # a negative size would make no sense of the offsets that follow
        raise TarFormatError(f"bad number field {field!r}")
    return value


def _checksum_ok(header: bytes, field: bytes) -> bool:
    """Whether the checksum field holds the sum of the header's bytes, itself counted as spaces.

    The sum is taken in C when it can be (`sum` over 512 bytes costs ~2 µs a member): adler32's
    low half is (1 + sum) mod 65521, the exact sum when every byte is ASCII (512 × 127 < 65521),
    as in real headers. Non-ASCII names and base-256 numbers take Python's sum."""
    try:
        stored = _number(field)
    except TarFormatError:
        return False
    if header.isascii():
        return stored == (zlib.adler32(header) & 0xFFFF) - (zlib.adler32(field) & 0xFFFF) + 8 * 32
    return stored == sum(header) - sum(field) + 8 * 32


def _is_header(block: bytes) -> bool:
    """Whether a block is a tar header: its checksum holds, and it names a ustar or GNU format
    (`ustar`), as every tar since 1988 writes, or it is a v7 header (`tar --format=v7`: a name,
    a type v7 knows, and zeros where a later format names itself and the owners)."""
    if block[257:262] != b"ustar" and not (
        block[0] and block[156:157] in _V7_TYPES and block[257:329] == _V7_UNNAMED
    ):
        return False
    return _checksum_ok(block, _HEADER.unpack_from(block)[2])


def _pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("bad pax header") from None
        if length <= 0:
            raise TarFormatError("bad pax header")
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def drain(head: bytes, read: Callable[[], bytes], keep: int) -> tuple[bytes | None, int]:
    """`head` and what `read` gives until it gives nothing (what follows an archive's or a
    compressed stream's end): (their bytes when they are `keep` bytes at most, else None; their
    size). Read through, never holding more than `keep` bytes and a read's."""
    kept: list[bytes] | None = []
    size, chunk = 0, head
    while chunk:
        size += len(chunk)
        if kept is not None and size <= keep:
            kept.append(chunk)
        else:
            kept = None
        chunk = read()
    return (b"".join(kept) if kept is not None else None), size


class _Buffer:
    """The archive's bytes, read CHUNK at a time into one buffer that headers and data are sliced
    out of by offset: most members cost no read call. Skipping discards CHUNK-sized reads, so a
    huge member never sits in memory."""

    __slots__ = ("buffer", "pos", "stream")

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buffer = b""
        self.pos = 0

    def _fill(self, need: int) -> None:
        """Buffer at least `need` bytes from pos, unless the stream ends first. Data larger than
        a chunk is read in one call, so that it is held once more at most while joined."""
        parts = [self.buffer[self.pos :]] if self.pos < len(self.buffer) else []
        held = len(self.buffer) - self.pos
        while held < need:
            chunk = self.stream.read(max(need - held, CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            held += len(chunk)
        self.buffer = parts[0] if len(parts) == 1 else b"".join(parts)
        self.pos = 0

    def block(self) -> bytes:
        """The next header block, or b"" at the end of the stream."""
        if self.pos + BLOCK > len(self.buffer):
            self._fill(BLOCK)
            if 0 < len(self.buffer) < BLOCK:
                raise TarFormatError("unexpected end of archive")
        start = self.pos
        self.pos = start + BLOCK
        return self.buffer[start : self.pos]

    def take(self, size: int) -> bytes:
        """The next `size` bytes of data, past their padding to the next block."""
        start = self.pos
        end = start + (size + BLOCK - 1) // BLOCK * BLOCK
        if end <= len(self.buffer):  # the common case
            self.pos = end
            return self.buffer[start : start + size]
        self._fill(size)
        if len(self.buffer) < size:
            raise TarFormatError("unexpected end of archive")
        data = self.buffer[:size]  # no copy when the buffer is just the data
        self.pos = size
        self.skip(end - start - size)
        return data

    def read_some(self, size: int) -> bytes:
        """Up to `size` bytes (at least one) from the buffer, refilled by one read if empty."""
        if self.pos >= len(self.buffer):
            self.buffer = self.stream.read(CHUNK)
            self.pos = 0
            if not self.buffer:
                raise TarFormatError("unexpected end of archive")
        start = self.pos
        self.pos = min(start + size, len(self.buffer))
        return self.buffer[start : self.pos]

    def next_header(self) -> bytes | None:
        """After an end-of-archive marker: past the zero blocks that follow it, the header of
        another archive appended to this one (`cat a.tar b.tar`, which `tar -i` reads on), taken;
        else None, with what follows left to `rest`."""
        while True:
            if self.pos + BLOCK > len(self.buffer):
                self._fill(BLOCK)
                if len(self.buffer) < BLOCK:
                    return None
            block = self.buffer[self.pos : self.pos + BLOCK]
            if block == _ZERO_BLOCK:
                self.pos += BLOCK
                continue
            if not _is_header(block):
                return None
            self.pos += BLOCK
            return block

    def rest(self, keep: int, padded: bool = True) -> tuple[bytes | None, int] | None:
        """What follows, read through to the end of the stream, from its first byte that is not
        zero (the end-of-archive marker's padding; `padded=False`: from the next byte):
        `drain`'s (bytes, size); None when nothing (but zeros) follows (as in every archive tar
        writes)."""
        chunk = self.buffer[self.pos :]
        chunk = chunk.lstrip(b"\x00") if padded else chunk
        self.buffer, self.pos = b"", 0
        while not chunk:
            more = self.stream.read(CHUNK)
            if not more:
                return None
            chunk = more.lstrip(b"\x00") if padded else more
        return drain(chunk, lambda: self.stream.read(CHUNK), keep)

    def skip(self, size: int) -> None:
        """Discard the next `size` bytes, a chunk at a time."""
        pos = self.pos + size
        while pos > len(self.buffer):
            pos -= len(self.buffer)
            self.buffer = self.stream.read(CHUNK)
            if not self.buffer:
                raise TarFormatError("unexpected end of archive")
        self.pos = pos


class MemberStream(io.RawIOBase):
    """A streamed member's bytes, read from the archive's buffer as the caller asks: never more
    than the member holds, and each read filled whole unless the member ends (so a peek at its
    first bytes sees them all)."""

    def __init__(self, source: _Buffer, size: int) -> None:
        super().__init__()
        self.source = source
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, target: WriteableBuffer) -> int:
        view = memoryview(target).cast("B")
        wanted = min(len(view), self.left)
        got = 0
        while got < wanted:
            part = self.source.read_some(wanted - got)
            view[got : got + len(part)] = part
            got += len(part)
        self.left -= got
        return got


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _header_name(name: bytes, magic: bytes, prefix: bytes) -> str:
    name = name.split(b"\x00", 1)[0]
    if magic == _POSIX_MAGIC and prefix != _EMPTY_PREFIX:
        name = prefix.split(b"\x00", 1)[0] + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def iter_members(
    stream: BinaryIO,
    max_bytes: int,
    wanted: tuple[str, ...] = ("",),
    streamed: tuple[str, ...] = (),
) -> Iterator[Member]:
    """Yield the archive's members in order; data only for regular files up to max_bytes.

    A regular member larger than a chunk (or than max_bytes, if less) is told by its lowercased
    name; the small ones, most, are not looked at. If its name ends with one of `streamed`, it
    comes with a `stream` of its bytes, whatever its size (what the caller leaves unread of it is
    skipped); if it ends with none of `wanted` (default: any name), it is skipped, never held.

    After the end-of-archive marker, another archive appended (`cat a.tar b.tar`) is read on,
    as `tar -i` reads it; what is not one is a `trailing` member. An appended archive found
    corrupt (cut short, a damaged header) ends as a `trailing` member too, with its `problem`
    and the bytes from the damage on: its members before it stand, as the first archive's do.
    A corrupt first archive raises TarFormatError."""
    source = _Buffer(stream)
    appended: list[bool] = []  # [True] once past a marker
    try:
        yield from _members(source, max_bytes, wanted, streamed, appended)
    except TarFormatError as error:
        if not appended:
            raise
        data, size = source.rest(max_bytes, padded=False) or (b"", 0)
        yield Member("", size, TRAILING, data, None, str(error))


def _members(
    source: _Buffer,
    max_bytes: int,
    wanted: tuple[str, ...],
    streamed: tuple[str, ...],
    appended: list[bool],
) -> Iterator[Member]:
    """iter_members' reading; `appended` gets True once an archive appended after the marker
    is being read."""
    by_name = min(CHUNK, max_bytes)  # members larger than this are told by their name
    long_name: str | None = None
    pax: dict[str, str] = {}
    first = True
    while True:
        header = source.block()
        if not header and first:  # not even an end-of-archive marker: a failed transfer
            raise TarFormatError(EMPTY)
        first = False
        if header == _ZERO_BLOCK:  # end-of-archive marker: another archive may follow it
            following = source.next_header()
            if following is None:
                if (after := source.rest(max_bytes)) is not None:
                    yield Member("", after[1], TRAILING, after[0])
                return
            header = following
            appended[:] = [True]
        elif not header:  # a bare end, with no marker
            return
        name_field, size_field, checksum_field, kind, magic, prefix = _HEADER.unpack_from(header)
        if not _checksum_ok(header, checksum_field):
            source.pos -= BLOCK  # the damaged header is the first byte of what is not read
            raise TarFormatError("header checksum mismatch")
        size = _number(size_field)
        if kind in EXTENDED:
            if size > MAX_EXTENDED:
                raise TarFormatError("extended header too large")
            data = source.take(size)
            if kind == b"L":
                long_name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == b"x":
                pax = _pax_records(data)
            continue
        name = pax.get("path") or long_name or _header_name(name_field, magic, prefix)
        if "size" in pax:
            size = int(pax["size"]) if pax["size"].isascii() and pax["size"].isdigit() else -1
            if size < 0:
                raise TarFormatError(f"bad pax size {pax['size']!r}")
        long_name, pax = None, {}
        if kind in REGULAR:
            if size > by_name:  # a large member (an int comparison for the others: hot path)
                lowered = name.lower()
                if lowered.endswith(streamed):
                    member = MemberStream(source, size)
                    yield Member(name, size, "file", None, cast(BinaryIO, member))
                    source.skip(member.left + _padded(size) - size)
                    continue
                if not lowered.endswith(wanted):  # not wanted: skipped through, never held
                    source.skip(_padded(size))
                    yield Member(name, size, "file", None)
                    continue
            if size > max_bytes:
                source.skip(_padded(size))
                yield Member(name, size, "file", None)
            else:
                yield Member(name, size, "file", source.take(size))
        else:
            source.skip(0 if kind in NO_DATA else _padded(size))
            is_directory = kind in (DIRECTORY, GNU_DUMPDIR)
            yield Member(name, size, "dir" if is_directory else "other", None)
