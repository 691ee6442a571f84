"""The bench inputs, made once and kept outside the repo (under the work dir, /tmp/duel-bench).

10,000 is the real dump from ../shared/data (used in place as the tar.gz, extracted once for the
directory form). Other sizes come from `duel generate --users N --seed S` as a tar.gz, extracted
with the system `tar` for the directory form, so both forms hold the same bytes. If `duel
generate` is not available, files of the real dump are replicated under new names instead (the
results then say so). A stamp file written last marks an input as complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO.parent / "shared" / "data" / "duel-original-10k.tar.gz"
REAL_SIZE = 10_000
CHANGED_SHARE = 100  # every 100th file: 1 %


@dataclass(frozen=True)
class Input:
    """One input of one size in one form."""

    size: int
    form: str  # "tar.gz" | "dir"
    path: Path
    origin: str  # "real" | "duel generate --seed S" | "replicated from the real dump"

    @property
    def label(self) -> str:
        return f"{size_label(self.size)} {self.form}"


def size_label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".stamp")


def _done(path: Path) -> str | None:
    stamp = _stamp(path)
    return stamp.read_text(encoding="utf-8") if stamp.is_file() and path.exists() else None


def _mark(path: Path, origin: str) -> None:
    _stamp(path).write_text(origin, encoding="utf-8")


def _extract(archive: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(target)], check=True)


def _generate(duel: Path, size: int, seed: int, target: Path, log: Callable[[str], None]) -> str:
    command = [str(duel), "generate", "--users", str(size), "--seed", str(seed), "-o", str(target)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=target.parent)
    if done.returncode == 0:
        return f"duel generate --seed {seed}"
    log(
        f"duel generate failed ({done.stderr.strip().splitlines()[-1:]}); replicating the real dump"
    )
    _replicate(size, target)
    return "replicated from the real dump"


def _replicate(size: int, target: Path) -> None:
    with tarfile.open(REAL_DATA) as source:
        members = [(m.name, source.extractfile(m).read()) for m in source if m.isreg()]  # type: ignore[union-attr]
    with tarfile.open(target, "w:gz", compresslevel=6) as archive:
        for index in range(size):
            data = members[index % len(members)][1]
            info = tarfile.TarInfo(f"mixed/user_{index}.json")
            info.size = len(data)
            archive.addfile(info, _Bytes(data))


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.offset + size
        chunk, self.offset = self.data[self.offset : end], min(end, len(self.data))
        return chunk


def prepare(
    size: int, forms: tuple[str, ...], root: Path, duel: Path, seed: int, log: Callable[[str], None]
) -> list[Input]:
    """The inputs of one size, in the asked forms, made if missing."""
    root.mkdir(parents=True, exist_ok=True)
    if size == REAL_SIZE:
        archive, origin = REAL_DATA, "real"
        folder = root / "real-10k"
    else:
        archive = root / f"gen-{size_label(size)}-seed{seed}.tar.gz"
        folder = root / f"gen-{size_label(size)}-seed{seed}"
        origin = _done(archive) or ""
        if not origin:
            log(f"generating {size:,} files into {archive}")
            origin = _generate(duel, size, seed, archive, log)
            _mark(archive, origin)
    inputs = []
    for form in forms:
        if form == "tar.gz":
            inputs.append(Input(size, form, archive, origin))
            continue
        if not _done(folder):
            log(f"extracting {archive.name} into {folder}")
            _extract(archive, folder)
            _mark(folder, origin)
        inputs.append(Input(size, form, folder, origin))
    return inputs


def _changed_bytes(data: bytes) -> bytes:
    """A file of a changed copy: the same document with a changed `name`."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        document = orjson.loads(data + b"}")
    document["name"] = f"{document.get('name')} (changed)"
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def prepare_changed(path: Path, log: Callable[[str], None]) -> Path:
    """A copy of the input `path` in which every 100th file, 1 %, has a changed `name`: of a
    folder, a folder of hard links; of a tar.gz, a tar.gz (prepare_changed_archive)."""
    if path.is_file():
        return prepare_changed_archive(path, log)
    folder = path
    changed = folder.with_name(folder.name + "-changed")
    if _done(changed):
        return changed
    if changed.exists():
        shutil.rmtree(changed)
    log(f"making {changed} (1 % of the files changed)")
    subprocess.run(["cp", "-al", str(folder), str(changed)], check=True)
    names = sorted(p for p in changed.rglob("*.json"))
    for file in names[::CHANGED_SHARE]:
        fresh = file.with_name(file.name + ".tmp")
        fresh.write_bytes(_changed_bytes(file.read_bytes()))
        os.replace(fresh, file)  # a new inode: the original folder keeps its bytes
    _mark(
        changed, f"{folder.name} with {len(names[::CHANGED_SHARE])} of {len(names)} files changed"
    )
    return changed


def prepare_changed_archive(archive: Path, log: Callable[[str], None]) -> Path:
    """`archive` (a tar.gz) written again with every 100th of its JSON files (in name order, as
    prepare_changed picks them in a folder) changed, the others' bytes and names as they were.
    Read and written as streams: one sequential file, so that a run's input is not a million
    small files the page cache may have dropped (read cold, those cost minutes at 1M)."""
    name = archive.name.removesuffix(".tar.gz")
    changed = archive.with_name(f"{name}-changed.tar.gz")
    if _done(changed):
        return changed
    log(f"making {changed} (1 % of the files changed)")
    with tarfile.open(archive, "r:gz") as source:
        names = sorted(m.name for m in source if m.isreg() and m.name.endswith(".json"))
    picked = set(names[::CHANGED_SHARE])
    partial = changed.with_name(changed.name + ".partial")
    with (
        tarfile.open(archive, "r|gz") as source,
        tarfile.open(partial, "w:gz", compresslevel=1) as out,
    ):
        for member in source:
            stream = source.extractfile(member) if member.isreg() else None
            data = stream.read() if stream is not None else None
            if data is not None and member.name in picked:
                data = _changed_bytes(data)
                member.size = len(data)
            out.addfile(member, _Bytes(data) if data is not None else None)
    os.replace(partial, changed)
    _mark(changed, f"{archive.name} with {len(picked)} of {len(names)} files changed")
    return changed


def warm(path: Path) -> None:
    """Read every byte of an input once (untimed), so each timed run starts from a warm page
    cache: the loads in between write gigabytes and push a million small files out of it, and
    read cold they cost about 100 s at 1M whatever reads them (measured on this machine)."""
    if path.is_file():
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass
        return
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                with open(os.path.join(folder, name), "rb") as handle:
                    handle.read()
            except OSError:
                pass
