"""Readers that turn an input path into a stream of files: tar archives, directories, (nd)json.

Nothing is extracted to disk and nothing is followed: archive members are streamed, links,
devices and paths escaping the archive are reported as skipped, never opened. Directory
entries are not files and are not counted. Each yielded `SourceFile` carries its bytes, or a
skip reason, or `oversize` when it is larger than the limit (its bytes are then not read).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from duel.exceptions import SourceError
from duel.tarstream import TarFormatError, iter_members, open_archive

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
DATA_SUFFIX = ".json"


class SourceFile(NamedTuple):  # a tuple, not a dataclass: built once per file on the hot path
    """One input file: its name inside the source, and its bytes or why it was not read.

    `name` is where it was found (lineage, shown to the user). `key_path` is the path that
    identifies it (`identity_path`: the dump's own top-level folder removed), or None for a
    document without a file of its own (an NDJSON line), which is identified by its content
    (duel.identity)."""

    name: str
    data: bytes | None = None
    size: int = 0
    skip_reason: str | None = None
    oversize: bool = False
    key_path: str | None = None


def not_data_reason(name: str) -> str | None:
    """Why a file with this (relative, posix) name is not a data file, or None if it is."""
    if name.endswith(DATA_SUFFIX) and "/." not in name and not name.startswith(".") \
            and "__MACOSX" not in name:
        return None  # the common case, decided without splitting (hot path)
    parts = name.split("/")
    base = parts[-1]
    if "__MACOSX" in parts[:-1]:
        return "macos-metadata"
    if base.startswith("._") or base == ".DS_Store":
        return "macos-metadata"
    if not base.lower().endswith(DATA_SUFFIX):
        return "not-json"
    return None


def storable_name(name: str) -> str:
    """The name as text Postgres can store: bytes that are not UTF-8 (decoded by the readers with
    surrogateescape) become `\\xNN`, and a NUL becomes `\\x00`. Only such names change."""
    if name.isascii() and "\x00" not in name:
        return name  # the common case (hot path)
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\x00", "\\x00")


def identity_path(relative: str) -> str:
    """The part of a file's path (relative to the dump: an archive's root or the directory given)
    that identifies it: without the dump's own top-level folder, which is named after the export
    (`mixed/`, `export-2025-07-24/`) and carries no identity. `mixed/user_17.json` and
    `user_17.json` are both `user_17.json`; deeper folders are kept (`mixed/eu/u.json` is `eu/u.json`)."""
    _top, sep, rest = relative.partition("/")
    return rest if sep and rest else relative


def safe_member_name(name: str) -> str | None:
    """The normalised relative name of an archive member, or None if it escapes the archive."""
    if not name.startswith(("/", "./")) and ".." not in name and "//" not in name and "\\" not in name \
            and "/./" not in name and ":" not in name:
        return name  # the common case, already normal (checked without normpath: hot path)
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return None
    normal = posixpath.normpath(name)
    if normal == ".." or normal.startswith("../") or normal.startswith("/"):
        return None
    return normal.removeprefix("./")


# What a file that is not a (gzip-compressed) tar is, by its first bytes.
_MAGIC = ((b"PK\x03\x04", "a zip archive"), (b"BZh", "bzip2-compressed data"), (b"\xfd7zXZ", "xz-compressed data"),
          (b"\x28\xb5\x2f\xfd", "zstd-compressed data"), (b"7z\xbc\xaf", "a 7-Zip archive"))


def not_an_archive(path: Path, error: BaseException) -> str:
    """One line for an input named like a tar archive that is not one: what it is, what to do."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        head = b""
    if head.startswith(b"\x1f\x8b"):
        return f"{path}: gzip-compressed, but not a tar archive inside ({error}); make it with `tar czf`"
    what = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if what is None:
        what = "text" if head.isascii() and head.strip() else "unrecognised bytes"
    expected = "a tar archive" if path.name.lower().endswith(".tar") else "a gzip-compressed tar archive"
    return (f"{path}: {what}, not {expected}; give a .tar.gz made by `tar czf`, a .tar, a directory or "
            ".json files")


def iter_tar(path: Path, max_bytes: int) -> Iterator[SourceFile]:
    """Stream an archive's members (plain or gzip-compressed tar); nothing touches the disk."""
    count = 0
    try:
        with open_archive(path) as stream:
            for member_name, size, kind, data in iter_members(stream, max_bytes):
                count += 1
                if kind == "dir":
                    continue
                name = safe_member_name(member_name)
                if name is None:
                    yield SourceFile(storable_name(member_name), skip_reason="unsafe-path")
                    continue
                name = storable_name(name)  # after the check: its escapes are ours, not the archive's
                if kind != "file":
                    yield SourceFile(name, skip_reason="not-a-regular-file")
                elif (reason := not_data_reason(name)) is not None:
                    yield SourceFile(name, size=size, skip_reason=reason)
                elif data is None:
                    yield SourceFile(name, None, size, None, True, identity_path(name))
                else:  # positional: keywords cost more (hot path)
                    yield SourceFile(name, data, size, None, False, identity_path(name))
    except (TarFormatError, EOFError, OSError, zlib.error) as exc:
        if count == 0:
            raise SourceError(not_an_archive(path, exc)) from None
        plural = "" if count == 1 else "s"
        raise SourceError(f"{path}: archive is corrupt after {count} member{plural} ({exc})") from None


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


def iter_directory(root: Path, max_bytes: int) -> Iterator[SourceFile]:
    """Every file below `root`, recursively, in a stable (sorted) order; links are reported,
    never followed. Plain strings and os calls, no pathlib: this runs once per file."""
    stack = [(os.fspath(root), "")]
    while stack:
        directory, relative = stack.pop()
        try:
            entries = _listing(directory)
        except OSError as exc:
            raise SourceError(f"{directory}: cannot list directory ({exc.strerror})") from None
        prefix = os.path.join(directory, "")  # joined to each name by `+`: os.path.join costs more
        subdirs = []
        for entry in entries:
            base, kind = entry[:-2], entry[-1]  # `name\0kind`, kind one letter: slices, no split
            name = storable_name(relative + base)
            if kind == _FILE:
                reason = not_data_reason(name)
                if reason is None:
                    yield _read_file(prefix + base, name, max_bytes, identity_path(name))
                else:
                    yield SourceFile(name, skip_reason=reason)
            elif kind == _DIRECTORY:
                subdirs.append((prefix + base, f"{relative}{base}/"))
            elif kind == _SYMLINK:
                yield SourceFile(name, skip_reason="symlink")
            else:
                yield SourceFile(name, skip_reason="not-a-regular-file")
        stack.extend(reversed(subdirs))


def _read_file(path: str | Path, name: str, max_bytes: int, key_path: str | None = None) -> SourceFile:
    """One file's bytes, or `oversize` from its size alone. O_NOFOLLOW: a link swapped in after
    the listing is refused, never followed."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return SourceFile(name, skip_reason="symlink")
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
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
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
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
    """One document per non-blank line, named `file.ndjson:LINE`."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            name = f"{storable_name(path.name)}:{number}"
            if len(line) > max_bytes:
                yield SourceFile(name, size=len(line), oversize=True)
            else:
                yield SourceFile(name, data=line, size=len(line))


def check_source(path: Path) -> str:
    """The kind of input at `path` (tar, directory, ndjson, json); SourceError if unusable."""
    if not path.exists():
        raise SourceError(f"no such file or directory: {path}")
    if path.is_dir():
        return "directory"
    lowered = path.name.lower()
    if lowered.endswith(TAR_SUFFIXES):
        return "tar"
    if lowered.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if lowered.endswith(DATA_SUFFIX):
        return "json"
    raise SourceError(f"{path}: not a .tar.gz, .tgz, .tar, .json or .ndjson file, nor a directory")


def iter_source(path: Path, max_bytes: int) -> Iterator[SourceFile]:
    """Dispatch on the kind of input; raise SourceError (one line) for what we cannot read."""
    kind = check_source(path)
    if kind == "directory":
        return iter_directory(path, max_bytes)
    if kind == "tar":
        return iter_tar(path, max_bytes)
    if kind == "ndjson":
        return iter_ndjson(path, max_bytes)
    name = storable_name(path.name)
    return iter([_read_file(path, name, max_bytes, name)])
