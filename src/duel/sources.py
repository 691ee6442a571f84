"""Readers that turn an input path into a stream of files: archives, directories, (nd)json.

Nothing is extracted to disk and nothing is followed: archive members are streamed, links,
devices and paths escaping the archive are reported as skipped, never opened. Directory
entries are not files and are not counted. Each yielded `SourceFile` carries its bytes, or a
skip reason, or `oversize` when it is larger than the limit (its bytes are then not read), or a
`defect` when it should be data but cannot be read (the parse stage quarantines it).

Archives are tar (plain, gzip, bzip2 or xz: the compression is told by its magic number) or
zip. An archive inside an archive is read the same way, as a stream, down to MAX_NESTING
levels below the input; NDJSON and compressed JSON members are read as their top-level kind.
A nested archive (or compressed member) is held in memory when it fits MAX_HELD_BYTES (all
those held one inside another together), so that a zip can be read and a corrupt one kept in
quarantine with its bytes; a larger one is streamed, or quarantined if it is a zip.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from duel.archives import (
    LEADING,
    READ_ERRORS,
    ArchiveLimitError,
    StreamMembers,
    compression,
    decompressed,
    hold,
    is_zip,
    iter_lines,
    packed_kind,
    peekable,
    read_bounded,
    zip_after_data,
    zip_members,
)
from duel.exceptions import SourceError
from duel.tarstream import TRAILING, Member, TarFormatError, iter_members

DATA_SUFFIX = ".json"
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ARCHIVE_SUFFIXES = (*TAR_SUFFIXES, ".zip")
NDJSON_SUFFIXES = tuple(
    kind + packed for kind in (".ndjson", ".jsonl") for packed in ("", *COMPRESSED_SUFFIXES)
)
PACKED_JSON_SUFFIXES = tuple(DATA_SUFFIX + packed for packed in COMPRESSED_SUFFIXES)
NESTED_SUFFIXES = (
    *ARCHIVE_SUFFIXES,
    *NDJSON_SUFFIXES,
    *PACKED_JSON_SUFFIXES,
)  # members read as streams
WANTED = (DATA_SUFFIX,)  # archive members whose bytes are read: the others are skipped through
SUPPORTED = (
    "a directory or a .tar, .tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz, .zip, .json or "
    ".ndjson/.jsonl file (.json and .ndjson may be .gz, .bz2 or .xz compressed)"
)
MAX_NESTING = 3  # archive levels inside the input that are read; a deeper archive is quarantined
MAX_HELD_BYTES = 32 << 20  # nested archives and compressed members held in memory at once


class SourceFile(NamedTuple):  # a tuple, not a dataclass: built once per file on the hot path
    """One input file: its name inside the source, and its bytes or why it was not read.

    `name` is where it was found (lineage, shown to the user). `key_path` is the path that
    identifies it (`identity_path`: the dump's own top-level folder removed), or None for a
    document without a file of its own (an NDJSON line), which is identified by its content
    (duel.identity). A member inside a nested archive is named by its path through the
    archives (`outer/inner.tar.gz/mixed/user_1.json`) and keyed by its path in the innermost one.
    `defect` is `reason: detail` for a file that is neither data nor readable (a corrupt nested
    archive, one nested too deep): it is quarantined with its bytes, if it was small enough.
    `continued`: a document after the first of its file (an NDJSON line after the first), or a
    part of a file that is no file of its own (what follows an archive's end): a batch counts
    each file it read once (`files_read`), however many documents it held."""

    name: str
    data: bytes | None = None
    size: int = 0
    skip_reason: str | None = None
    oversize: bool = False
    key_path: str | None = None
    defect: str | None = None
    continued: bool = False


NOT_JSON = "not-json"  # the skip reason of a file that is not a data file by its name
NO_DOCUMENTS = "no-documents"  # the skip reason of an NDJSON file without a line of text


def not_data_reason(name: str) -> str | None:
    """Why a file with this (relative, posix) name is not a data file, or None if it is."""
    if (
        name.endswith(DATA_SUFFIX)
        and "/." not in name
        and not name.startswith(".")
        and "__MACOSX" not in name
    ):
        return None  # the common case, decided without splitting (hot path)
    parts = name.split("/")
    base = parts[-1]
    if "__MACOSX" in parts[:-1]:
        return "macos-metadata"
    if base.startswith("._") or base == ".DS_Store":
        return "macos-metadata"
    if not base.lower().endswith(DATA_SUFFIX):
        return NOT_JSON
    return None


def storable_name(name: str) -> str:
    """The name as text Postgres can store: bytes that are not UTF-8 (decoded by the readers with
    surrogateescape) become `\\xNN`, and a NUL becomes `\\x00`; so that no name is written
    as another, a `\\` of the name itself becomes `\\\\` (a file named `u\\xff.json` in
    letters is not the file named `u` + byte 0xFF). Only such names change."""
    if name.isascii() and "\x00" not in name and "\\" not in name:
        return name  # the common case (hot path)
    text = name.replace("\\", "\\\\")
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\x00", "\\x00")


def identity_path(relative: str) -> str:
    """The part of an archive member's (or object's) path that identifies it: without the
    dump's own top-level folder, which is named after the export (`mixed/`,
    `export-2025-07-24/`) and carries no identity. `mixed/user_17.json` and `user_17.json` are
    both `user_17.json`; deeper folders are kept (`mixed/eu/u.json` is `eu/u.json`). An
    archive is a stream, so each member's first folder is taken for the export folder; a
    directory that holds data files of its own is the export folder (iter_directory)."""
    _top, sep, rest = relative.partition("/")
    return rest if sep and rest else relative


def safe_member_name(name: str) -> str | None:
    """The normalised relative name of an archive member, or None if it escapes the archive.
    A `\\` is a character of a name, as in a folder's file names (nothing is extracted, so it
    escapes nothing; a zip's are its separators, `archives.zip_members` reads them as `/`)."""
    if (
        not name.startswith(("/", "./"))
        and ".." not in name
        and "//" not in name
        and "/./" not in name
        and ":" not in name
    ):
        return name  # the common case, already normal (checked without normpath: hot path)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    normal = posixpath.normpath(name)
    if normal == ".." or normal.startswith(("../", "/")):
        return None
    return normal.removeprefix("./")


# What an archive's name says it is (the gzip-compressed tar otherwise), and the tar flag of
# each compression.
_EXPECTED = (
    ((".tar",), "a tar archive"),
    ((".zip",), "a zip archive"),
    ((".tar.bz2", ".tbz2"), "a bzip2-compressed tar archive"),
    ((".tar.xz", ".txz"), "an xz-compressed tar archive"),
)
_TAR_FLAG = {"gzip": "z", "bzip2": "j", "xz": "J"}


def not_an_archive(label: str, head: bytes, error: BaseException) -> str:
    """One line for an input named like a tar archive that is not one: what it is (told by its
    first bytes, `head`), what to do."""
    if not head:  # a transfer that failed, not a dump with nothing in it
        return f"{label}: empty (0 bytes), not an archive; was the dump copied completely?"
    if (packed := compression(head)) is not None:
        if not isinstance(error, TarFormatError):  # the stream itself: cut short or corrupt
            return (
                f"{label}: its {packed} stream is cut short or corrupt ({error}); nothing was"
                " read; was the dump copied completely?"
            )
        return (
            f"{label}: {packed}-compressed, but not a tar archive inside ({error}); "
            f"make it with `tar c{_TAR_FLAG[packed]}f`"
        )
    what = packed_kind(head)
    if what is None:
        what = "text" if head.isascii() and head.strip() else "unrecognised bytes"
    lowered = label.lower()
    expected = next(
        (kind for suffixes, kind in _EXPECTED if lowered.endswith(suffixes)),
        "a gzip-compressed tar archive",
    )
    return (
        f"{label}: {what}, not {expected}; give a .tar.gz made by `tar czf`, a .tar, a .zip, a "
        "directory or .json files"
    )


def iter_archive(path: Path, max_bytes: int) -> Iterator[SourceFile]:
    """Stream an archive's members (a tar, plain or compressed, or a zip), and those of the
    archives inside it; nothing touches the disk. SourceError if the archive itself is
    unreadable."""
    try:
        with open(path, "rb") as raw:
            yield from read_archive(raw, str(path), max_bytes)
    except OSError as exc:  # opening it: read errors are SourceErrors already
        raise SourceError(
            f"{path}: cannot read ({exc.strerror})", path=str(path), reason=exc.strerror
        ) from None


def read_archive(raw: BinaryIO, label: str, max_bytes: int) -> Iterator[SourceFile]:
    """The files of an archive read from a binary stream (one that seeks, for a zip), as
    `iter_archive` reads a file; `label` names it in errors. SourceError if it is unreadable."""
    kind, head = "tar", b""
    try:
        stream, _magic = peekable(raw)
        head = stream.peek(512)[:512]  # type: ignore[attr-defined]  # a BufferedReader
        unpacked = None
        if is_zip(head):
            kind = "zip"
            members = zip_members(stream, max_bytes)
        else:
            unpacked = decompressed(stream, head, max_bytes)
            members = _tar_members(unpacked, max_bytes)
        yield from _iter_members(members, "", 0, max_bytes, MAX_HELD_BYTES)
        yield from _after_stream(unpacked, "")
    except ArchiveLimitError as exc:
        raise SourceError(f"{label}: {kind} archive not read: {exc}") from None
    except _Broken as broken:
        cut = "; was the dump copied completely?" if isinstance(broken.error, EOFError) else ""
        raise SourceError(
            f"{label}: archive is corrupt after {_members(broken.count)} ({_why(broken.error)})"
            + cut
        ) from None
    except READ_ERRORS as exc:
        if kind == "zip":
            raise SourceError(f"{label}: not a readable zip archive ({_why(exc)})") from None
        raise SourceError(not_an_archive(label, head, exc)) from None


def _tar_members(unpacked: BinaryIO, max_bytes: int) -> Iterator[Member]:
    """A tar's members; or, when an uncompressed stream that seeks holds no tar at all but ends
    with a zip that begins after other bytes (a self-extracting zip: a program before the
    archive, as unzip reads it), that zip's members, the bytes before it quarantined."""
    members = iter_members(unpacked, max_bytes, WANTED, NESTED_SUFFIXES)
    try:
        first = next(members, None)
    except READ_ERRORS:
        if isinstance(unpacked, StreamMembers) or not zip_after_data(unpacked):
            raise
        yield from zip_members(unpacked, max_bytes)
        return
    if first is not None:
        yield first
        yield from members


class _Broken(Exception):
    """An archive failed to read after `count` members."""

    def __init__(self, count: int, error: BaseException) -> None:
        super().__init__(count, error)
        self.count, self.error = count, error


def _iter_members(
    members: Iterator[Member], prefix: str, depth: int, max_bytes: int, budget: int
) -> Iterator[SourceFile]:
    """The files of one archive's members. `prefix` is the archive's path through the archives
    ("" for the input), `depth` how many archives it is nested in, `budget` the bytes it may
    still hold in memory for the archives and compressed members inside it. A read error after
    the first member is raised as _Broken, with the count."""
    count = 0
    try:
        for member_name, size, kind, data, stream, problem in members:
            count += 1
            if kind == "dir":
                continue
            if kind == TRAILING:
                yield _defect(
                    _after(prefix, "after its end-of-archive marker"),
                    _ARCHIVE_KEY,
                    TRAILING_DATA,
                    f"an archive appended after the tar archive's end-of-archive marker is"
                    f" corrupt ({problem}): its members before the damage were read; the"
                    f" {size:,} bytes from the damage on are not"
                    if problem
                    else f"{size:,} bytes after the tar archive's end-of-archive marker that do"
                    " not begin another tar archive: not read",
                    data,
                    size,
                    continued=True,
                )
                continue
            if kind == LEADING:
                yield _defect(
                    _after(prefix, "before its zip archive"),
                    _ARCHIVE_KEY,
                    LEADING_DATA,
                    f"{size:,} bytes before the zip archive that are not a zip archive of their"
                    f" own ({problem}): not read",
                    data,
                    size,
                    continued=True,
                )
                continue
            name = safe_member_name(member_name)
            if name is None:
                yield SourceFile(storable_name(prefix + member_name), skip_reason="unsafe-path")
                continue
            name = storable_name(name)  # after the check: its escapes are ours, not the archive's
            path = prefix + name
            if kind != "file":
                yield SourceFile(path, skip_reason="not-a-regular-file")
            elif (reason := not_data_reason(name)) is None:
                if data is not None:  # positional: keywords cost more (hot path)
                    yield SourceFile(path, data, size, None, False, identity_path(name))
                elif stream is None or size > max_bytes:
                    yield SourceFile(path, None, size, None, True, identity_path(name))
                else:  # a zip member: read now, at most one byte over the limit
                    yield _read_member(stream, path, identity_path(name), size, max_bytes)
            elif (packed := stream if data is None else data) is not None and name.lower().endswith(
                NESTED_SUFFIXES
            ):  # (a small tar member comes read)
                yield from _iter_nested(packed, path, name, size, depth, max_bytes, budget)
            else:
                yield SourceFile(path, size=size, skip_reason=reason)
    except READ_ERRORS as exc:
        if count == 0:
            raise
        raise _Broken(count, exc) from exc


def _read_member(
    stream: BinaryIO, path: str, key_path: str, size: int, max_bytes: int
) -> SourceFile:
    try:
        data, length = read_bounded(stream, max_bytes)
    except READ_ERRORS as exc:
        # a zip member's bytes as the archive holds them, when its data cannot be read
        stored = getattr(stream, "stored_bytes", None)
        kept = stored(max_bytes) if stored is not None else None
        return _defect(path, key_path, "unreadable-member", _why(exc), kept, size)
    return SourceFile(path, data, length, None, data is None, key_path)


# The key path of an archive that cannot be read: none. It holds documents of their own (as an
# NDJSON member does), so it is none of them: quarantined unidentified, it may be any absent
# document, and a complete dump holding it withholds its deletes (duel.deletes).
_ARCHIVE_KEY = None


def _iter_nested(
    stream: BinaryIO | bytes,
    path: str,
    name: str,
    size: int,
    depth: int,
    max_bytes: int,
    budget: int,
) -> Iterator[SourceFile]:
    """A member that is an archive, an NDJSON file or a compressed JSON file (its stream, or its
    bytes if read already), read as one."""
    lowered = name.lower()
    if not lowered.endswith(ARCHIVE_SUFFIXES):
        yield from _iter_packed(stream, path, name, size, max_bytes, budget)
        return
    if depth >= MAX_NESTING:
        try:
            data, _length = read_bounded(
                io.BytesIO(stream) if isinstance(stream, bytes) else stream, max_bytes
            )
        except READ_ERRORS:
            data = None
        yield _defect(
            path,
            _ARCHIVE_KEY,
            "archive-too-deep",
            f"an archive inside {depth + 1} archives; they are read {MAX_NESTING} deep",
            data,
            size,
        )
        return
    data = unpacked = None
    try:
        source, head, data = hold(stream, size, budget)
        if is_zip(head):
            if data is None:
                raise ArchiveLimitError(
                    f"{size:,} bytes; a zip inside an archive is read in memory, where "
                    f"nested archives hold {MAX_HELD_BYTES:,} bytes at most ({budget:,} left)"
                )
            members = zip_members(source, max_bytes)
        else:
            unpacked = decompressed(source, head, max_bytes)
            members = _tar_members(unpacked, max_bytes)
        yield from _iter_members(
            members, path + "/", depth + 1, max_bytes, budget - len(data or b"")
        )
        yield from _after_stream(unpacked, path + "/")
    except ArchiveLimitError as exc:
        yield _defect(
            path, _ARCHIVE_KEY, "archive-too-large", str(exc), _kept(data, max_bytes), size
        )
    except _Broken as broken:
        yield _defect(
            path,
            _ARCHIVE_KEY,
            "unreadable-archive",
            f"corrupt after {_members(broken.count)} ({_why(broken.error)})",
            _kept(data, max_bytes),
            size,
        )
    except READ_ERRORS as exc:
        yield _defect(
            path, _ARCHIVE_KEY, "unreadable-archive", _why(exc), _kept(data, max_bytes), size
        )


def _iter_packed(
    stream: BinaryIO | bytes,
    path: str,
    name: str,
    size: int,
    max_bytes: int,
    budget: int,
    keyed: Callable[[str], str] = identity_path,
) -> Iterator[SourceFile]:
    """An NDJSON member (one document per line) or a compressed JSON member; `keyed` gives the
    latter's key path from its name without the compression suffix."""
    data, count = None, 0
    lines = name.lower().endswith(NDJSON_SUFFIXES)
    key_path = keyed(name if lines else name.rsplit(".", 1)[0])  # a .json.gz is keyed as its .json
    try:
        source, head, data = hold(stream, size, min(budget, max_bytes))
        unpacked = decompressed(source, head, max_bytes)
        if not lines:  # a compressed JSON file
            document, length = read_bounded(unpacked, max_bytes)
            yield SourceFile(path, document, length, None, document is None, key_path)
            yield from _after_stream(unpacked, path + "/")
            return
        for number, line, length in iter_lines(unpacked, max_bytes):
            count += 1
            yield SourceFile(
                f"{path}:{number}", line, length, None, line is None, continued=count > 1
            )
        if not count:
            yield _without_documents(path, size)
        yield from _after_stream(unpacked, path + "/")
    except READ_ERRORS as exc:
        detail = (
            f"corrupt after {count} line{'' if count == 1 else 's'} ({_why(exc)})"
            if count
            else _why(exc)
        )
        # an NDJSON member holds many documents, keyed by their fields: it is none of them
        yield _defect(
            path,
            None if lines else key_path,
            "unreadable-member",
            detail,
            data,
            size,
            continued=count > 0,  # the member was counted with its first line
        )


TRAILING_DATA = "trailing-data"
LEADING_DATA = "leading-data"


def _after(prefix: str, what: str) -> str:
    """The name of what follows the end of an archive or a compressed file (`prefix`: its path
    and a `/`, or "" for the input itself): `inner.tar.gz (after its gzip stream)`."""
    return f"{prefix[:-1]} ({what})" if prefix else f"({what})"


def _after_stream(unpacked: BinaryIO | None, prefix: str) -> Iterator[SourceFile]:
    """What follows a compressed stream's last member when it is not another one
    (`archives.StreamMembers`), once the stream is read through: quarantined with its bytes
    (over the size limit, with its size only), and unidentified (it may hold anyone: a
    complete dump holding it withholds its deletes). What came before was read whole and
    checked, so it loads."""
    if isinstance(unpacked, StreamMembers) and unpacked.trailing_size:
        kind = unpacked.kind
        yield _defect(
            _after(prefix, f"after its {kind} stream"),
            _ARCHIVE_KEY,
            TRAILING_DATA,
            f"{unpacked.trailing_size:,} bytes after the end of the {kind} stream that are not"
            f" {kind}: not read (what came before them was read whole)",
            unpacked.trailing,
            unpacked.trailing_size,
            continued=True,
        )


def _without_documents(name: str, size: int) -> SourceFile:
    """An NDJSON file with no line of text (empty, or blank lines only): no document, so nothing
    to load or quarantine, and nobody it could be; counted as skipped, as a file that is not data
    is, so that every file of a dump is accounted for."""
    return SourceFile(name, size=size, skip_reason=NO_DOCUMENTS)


def _stream_size(raw: BinaryIO) -> int:
    """The bytes a stream has given so far (its size once read through), or 0 when unknown."""
    try:
        return raw.tell()
    except (OSError, ValueError):
        return 0


def _defect(
    path: str,
    key_path: str | None,
    reason: str,
    detail: str,
    data: bytes | None = None,
    size: int = 0,
    *,
    continued: bool = False,
) -> SourceFile:
    """A file that should be data but cannot be read: the parse stage quarantines it.
    `continued`: a part of a file, not a file (`SourceFile.continued`): what follows an archive
    or a compressed stream, or an NDJSON member's lines after one that could not be read."""
    one_line = " ".join(detail.split())
    return SourceFile(
        path,
        data,
        len(data) if data is not None else size,
        None,
        False,
        key_path,
        f"{reason}: {one_line}",
        continued,
    )


def _kept(data: bytes | None, max_bytes: int) -> bytes | None:
    return data if data is not None and len(data) <= max_bytes else None


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _members(count: int) -> str:
    return f"{count} member{'' if count == 1 else 's'}"


_SYMLINK, _DIRECTORY, _FILE, _OTHER = "l", "d", "f", "o"
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_GROWTH_READ = 1 << 20  # read size for a file that grew after its fstat


def _listing(directory: str) -> list[str]:
    """The entries of one directory as sorted `name\0kind` strings: one small string per entry
    (a million-file folder costs ~75 MB, not the ~250 MB of sorted DirEntry objects); NUL
    cannot occur in a file name, so they sort exactly by name."""
    entries = []
    with os.scandir(directory) as scan:
        for entry in scan:
            if entry.is_file(follow_symlinks=False):  # first: the common case, one call
                kind = _FILE
            elif entry.is_dir(follow_symlinks=False):
                kind = _DIRECTORY
            elif entry.is_symlink():
                kind = _SYMLINK
            else:
                kind = _OTHER
            entries.append(f"{entry.name}\0{kind}")
    entries.sort()
    return entries


def _holds_data(entries: list[str]) -> bool:
    """Whether a directory (its _listing) holds a data file of its own, not only in folders: a
    .json file, or a compressed one (a folder's .json.gz are keyed as its .json would be, so a
    copy with every file compressed keys alike)."""
    return any(
        entry[-1] == _FILE
        and (
            not_data_reason(entry[:-2]) is None or entry[:-2].lower().endswith(PACKED_JSON_SUFFIXES)
        )
        for entry in entries
    )


def iter_directory(root: Path, max_bytes: int) -> Iterator[SourceFile]:
    """Every file below `root`, recursively, in a stable (sorted) order; links are reported,
    never followed. Plain strings and os calls, no pathlib: this runs once per file.

    A file's identity is its path below the export folder. A directory that holds data files
    of its own is the export folder: `root/eu/user_1.json` is `eu/user_1.json`, as in a tar.gz
    of that folder, never `user_1.json`, which is the folder's own `user_1.json`. One that holds
    only folders is taken as given above it: each file's first folder is left out
    (identity_path), as in an archive. An archive, NDJSON or compressed JSON file is read as
    such a member of an archive (and as such an object of a prefix, `iter_object`): its members
    `name/member`, its lines `name:LINE`, a `.json.gz` keyed as the `.json` beside it would be."""
    stack = [(os.fspath(root), "")]
    export_folder: bool | None = None  # whether `root` is the export folder (its own files)
    while stack:
        directory, relative = stack.pop()
        try:
            entries = _listing(directory)
        except OSError as exc:
            raise SourceError(f"{directory}: cannot list directory ({exc.strerror})") from None
        if export_folder is None:  # the root, listed first
            export_folder = _holds_data(entries)
        prefix = os.path.join(directory, "")  # joined to each name by `+`: os.path.join costs more
        subdirs = []
        for entry in entries:
            base, kind = entry[:-2], entry[-1]  # `name\0kind`, kind one letter: slices, no split
            name = storable_name(relative + base)
            if kind == _FILE:
                reason = not_data_reason(name)
                if reason is None:
                    key_path = name if export_folder else identity_path(name)
                    yield _read_folder_file(prefix + base, name, max_bytes, key_path)
                elif _is_nested(name, reason):
                    keyed = _as_given if export_folder else identity_path
                    yield from _iter_folder_nested(prefix + base, name, max_bytes, keyed)
                else:
                    yield SourceFile(name, skip_reason=reason)
            elif kind == _DIRECTORY:
                subdirs.append((prefix + base, f"{relative}{base}/"))
            elif kind == _SYMLINK:
                yield SourceFile(name, skip_reason="symlink")
            else:
                yield SourceFile(name, skip_reason="not-a-regular-file")
        stack.extend(reversed(subdirs))


class _Unreadable(Exception):
    """A file that cannot be opened or read; `detail` says why, in one line."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _read_folder_file(path: str, name: str, max_bytes: int, key_path: str) -> SourceFile:
    """A folder's file (`_read_file`); one that cannot be read (gone since the listing, not
    readable by us, a read error) is quarantined with the reason, under its identity: the other
    files load, and its document keeps its current version, as neither changed nor deleted."""
    try:
        return _read_file(path, name, max_bytes, key_path)
    except _Unreadable as exc:
        return _defect(name, key_path, "unreadable-file", exc.detail)


def _as_given(name: str) -> str:
    return name


def _is_nested(name: str, reason: str) -> bool:
    """Whether a file `not_data_reason` gave `reason` is an archive, NDJSON or compressed JSON
    file (read as one), not a file that is not data (macOS metadata stays that, whatever its
    suffix)."""
    return reason == NOT_JSON and name.lower().endswith(NESTED_SUFFIXES)


def _iter_folder_nested(
    path: str, name: str, max_bytes: int, keyed: Callable[[str], str]
) -> Iterator[SourceFile]:
    """A folder's archive, NDJSON or compressed JSON file (`_iter_nested_object`), opened as
    `_read_file` opens a file: a link is refused, never followed; one that cannot be opened is
    quarantined with the reason, keyed as its document when it holds one (a `.json.gz`)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            yield SourceFile(name, skip_reason="symlink")
            return
        packed = name.lower().endswith(PACKED_JSON_SUFFIXES)
        key_path = keyed(name.rsplit(".", 1)[0]) if packed else None
        yield _defect(name, key_path, "unreadable-file", f"cannot open it ({exc.strerror})")
        return
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            yield SourceFile(name, skip_reason="not-a-regular-file")
            return

        def rewound() -> BinaryIO:
            handle.seek(0)
            return handle

        yield from _iter_nested_object(rewound, name, info.st_size, max_bytes, keyed)


def _read_file(
    path: str | Path, name: str, max_bytes: int, key_path: str | None = None
) -> SourceFile:
    """One file's bytes, or `oversize` from its size alone. O_NOFOLLOW: a link swapped in after
    the listing is refused, never followed. _Unreadable if it cannot be opened or read."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return SourceFile(name, skip_reason="symlink")
        raise _Unreadable(f"cannot open it ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return SourceFile(name, skip_reason="not-a-regular-file")
        size = info.st_size
        if size > max_bytes:
            return SourceFile(name, None, size, None, True, key_path)
        data = os.read(fd, size + 1)  # one byte more than its size: a short read is the end of file
        if len(data) > size:
            data = _read_grown(fd, data, max_bytes)
    except OSError as exc:
        raise _Unreadable(f"cannot read it ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew while we read it
        return SourceFile(name, None, len(data), None, True, key_path)
    return SourceFile(name, data, len(data), None, False, key_path)  # positional: hot path


def _read_grown(fd: int, head: bytes, max_bytes: int) -> bytes:
    """A file that grew while we read it: the rest of it, up to one byte over the limit."""
    parts = [head]
    held = len(head)
    while held <= max_bytes:
        part = os.read(fd, min(_GROWTH_READ, max_bytes + 1 - held))
        parts.append(part)
        held += len(part)
        if len(part) < _GROWTH_READ:
            break
    return b"".join(parts)


def iter_ndjson(path: Path, max_bytes: int) -> Iterator[SourceFile]:
    """One document per non-blank line, named `file.ndjson:LINE` (compressed or not); a line
    over the limit is skipped through, never held."""
    try:
        with open(path, "rb") as handle:
            yield from read_ndjson(handle, storable_name(path.name), str(path), max_bytes)
    except OSError as exc:  # opening it: read errors are SourceErrors already
        raise SourceError(
            f"{path}: cannot read ({exc.strerror})", path=str(path), reason=exc.strerror
        ) from None


def read_ndjson(raw: BinaryIO, name: str, label: str, max_bytes: int) -> Iterator[SourceFile]:
    """`iter_ndjson` on a binary stream: its lines named `name:LINE`; `label` names it in errors."""
    count = 0
    try:
        stream, head = peekable(raw)
        unpacked = decompressed(stream, head, max_bytes)
        for number, line, size in iter_lines(unpacked, max_bytes):
            count += 1
            yield SourceFile(
                f"{name}:{number}", line, size, None, line is None, continued=count > 1
            )
        if not count:
            yield _without_documents(name, _stream_size(raw))
        yield from _after_stream(unpacked, name + "/")
    except READ_ERRORS as exc:
        raise SourceError(
            f"{label}: corrupt after {count} document line{'' if count == 1 else 's'} "
            f"({_why(exc)})",
            path=label,
        ) from None


def iter_json(path: Path, max_bytes: int) -> Iterator[SourceFile]:
    """A single JSON file, maybe compressed (keyed by its name without the compression suffix)."""
    name = storable_name(path.name)
    if name.lower().endswith(DATA_SUFFIX):
        try:
            yield _read_file(path, name, max_bytes, name)
        except _Unreadable as exc:  # the input itself: a run that cannot do its job
            raise SourceError(f"{path}: {exc.detail}", path=str(path)) from None
        return
    try:
        with open(path, "rb") as handle:
            yield from read_json(handle, name, str(path), max_bytes)
    except OSError as exc:  # opening it: read errors are SourceErrors already
        raise SourceError(f"{path}: not readable ({exc.strerror})") from None


def read_json(raw: BinaryIO, name: str, label: str, max_bytes: int) -> Iterator[SourceFile]:
    """A single JSON file from a binary stream, maybe compressed (`name` without its compression
    suffix is its key path), and what follows its gzip stream if that is not gzip; `label`
    names it in errors."""
    key_path = name if name.lower().endswith(DATA_SUFFIX) else name.rsplit(".", 1)[0]
    try:
        stream, head = peekable(raw)
        unpacked = decompressed(stream, head, max_bytes)
        data, size = read_bounded(unpacked, max_bytes)
    except READ_ERRORS as exc:
        raise SourceError(f"{label}: not readable ({_why(exc)})") from None
    yield SourceFile(name, data, size, None, data is None, key_path)
    yield from _after_stream(unpacked, name + "/")


def iter_object(
    open_stream: Callable[[], BinaryIO], name: str, size: int, max_bytes: int
) -> Iterator[SourceFile]:
    """One object of an object-store prefix, `name` its key below the prefix: a .json object is
    read as a file of a directory; an archive, NDJSON or compressed JSON object as such a member
    of an archive (named `name/member`, `name:LINE`), so a corrupt one is quarantined, not fatal;
    any other object is skipped as in a directory. `open_stream` is called only when its bytes
    are read (never for a skipped or oversize object); a zip needs a stream that seeks."""
    name = storable_name(name)
    reason = not_data_reason(name)
    key_path = identity_path(name)
    if reason is None:
        if size > max_bytes:
            yield SourceFile(name, None, size, None, True, key_path)
        else:
            yield _read_member(open_stream(), name, key_path, size, max_bytes)
    elif _is_nested(name, reason):
        yield from _iter_nested_object(open_stream, name, size, max_bytes)
    else:
        yield SourceFile(name, size=size, skip_reason=reason)


def _iter_nested_object(
    open_stream: Callable[[], BinaryIO],
    name: str,
    size: int,
    max_bytes: int,
    keyed: Callable[[str], str] = identity_path,
) -> Iterator[SourceFile]:
    """An archive, NDJSON or compressed JSON file of a prefix or a folder, read as such a member
    of an archive; `keyed` gives a compressed JSON file's key path from its name without the
    compression suffix."""
    if name.lower().endswith(ARCHIVE_SUFFIXES):
        yield from _iter_archive_object(open_stream, name, size, max_bytes)
    else:
        yield from _iter_packed(open_stream(), name, name, size, max_bytes, MAX_HELD_BYTES, keyed)


def _iter_archive_object(
    open_stream: Callable[[], BinaryIO], name: str, size: int, max_bytes: int
) -> Iterator[SourceFile]:
    """An archive object of a prefix, streamed (a zip through seeks); unreadable, it is one
    quarantined file with its bytes when they fit the size limit (read again for that)."""
    try:
        stream, head = peekable(open_stream())
        if is_zip(head):
            members = zip_members(stream, max_bytes)
        else:
            members = _tar_members(decompressed(stream, head), max_bytes)
        yield from _iter_members(members, name + "/", 0, max_bytes, MAX_HELD_BYTES)
        return
    except ArchiveLimitError as exc:
        reason, detail = "archive-too-large", str(exc)
    except _Broken as broken:
        reason = "unreadable-archive"
        detail = f"corrupt after {_members(broken.count)} ({_why(broken.error)})"
    except READ_ERRORS as exc:
        reason, detail = "unreadable-archive", _why(exc)
    data = None
    if size <= max_bytes:
        try:
            data, _length = read_bounded(open_stream(), max_bytes)
        except READ_ERRORS:
            data = None
    yield _defect(name, _ARCHIVE_KEY, reason, detail, data, size)


def read_object(
    open_stream: Callable[[], BinaryIO], name: str, size: int, label: str, max_bytes: int
) -> Iterator[SourceFile]:
    """A single object given as the whole input (`s3://bucket/dump.tar.gz`): read as the local
    file of that name would be (its members named as in `iter_archive`, its lines as in
    `iter_ndjson`), from a stream; SourceError (one line) for what cannot be read."""
    name = storable_name(name)
    lowered = name.lower()
    if lowered.endswith(ARCHIVE_SUFFIXES):
        yield from read_archive(open_stream(), label, max_bytes)
    elif lowered.endswith(NDJSON_SUFFIXES):
        yield from read_ndjson(open_stream(), name, label, max_bytes)
    elif lowered.endswith(DATA_SUFFIX) and size > max_bytes:
        yield SourceFile(name, None, size, None, True, name)
    elif lowered.endswith((DATA_SUFFIX, *PACKED_JSON_SUFFIXES)):
        yield from read_json(open_stream(), name, label, max_bytes)
    else:
        raise SourceError(f"{label}: not a supported input; give {SUPPORTED}")


def check_source(path: Path) -> str:
    """The kind of input at `path` (directory, archive, ndjson, json); SourceError if unusable."""
    if not path.exists():
        raise SourceError(f"no such file or directory: {path}")
    if path.is_dir():
        return "directory"
    if not path.is_file():  # a pipe would block the read until something writes to it
        raise SourceError(f"{path}: not a regular file (a pipe, socket or device); give a file")
    lowered = path.name.lower()
    if lowered.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    if lowered.endswith(NDJSON_SUFFIXES):
        return "ndjson"
    if lowered.endswith((DATA_SUFFIX, *PACKED_JSON_SUFFIXES)):
        return "json"
    raise SourceError(f"{path}: not a supported input; give {SUPPORTED}")


def iter_source(path: Path, max_bytes: int) -> Iterator[SourceFile]:
    """Dispatch on the kind of input; raise SourceError (one line) for what we cannot read."""
    kind = check_source(path)
    if kind == "directory":
        return iter_directory(path, max_bytes)
    if kind == "archive":
        return iter_archive(path, max_bytes)
    if kind == "ndjson":
        return iter_ndjson(path, max_bytes)
    return iter_json(path, max_bytes)
