"""Hostile archives: members that escape, links, devices and FIFOs are skipped and reported; the
ingest writes no file anywhere; a gzip bomb is stopped by the size limit without being held."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from conftest import query
from test_hostile import CORPUS, ingest_cli, ledger, peak_rss_mb

from duel.settings import Settings

USER = (CORPUS / "crlf.json").read_bytes()


def add(archive: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
        link: str = "") -> None:
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
    assert json.loads(result.stdout) == {"batch_id": 1, "files_seen": 12, "loaded": 2, "repaired": 0,
                                         "quarantined": 0, "skipped": 10, "unchanged": 0, "deleted": 0, "keyless": 0}
    assert ledger(settings) == {
        "ok.json": ("loaded", None),
        "dir/inner.json": ("loaded", None),
        "../evil.json": ("skipped", "unsafe-path"),
        "/tmp/absolute-evil.json": ("skipped", "unsafe-path"),
        "a/../../up-evil.json": ("skipped", "unsafe-path"),
        "a/" * 60 + "../" * 70 + "long-evil.json": ("skipped", "unsafe-path"),
        "C:\\windows-evil.json": ("skipped", "unsafe-path"),
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
    result = ingest_cli(settings, data)
    assert (result.returncode, result.stderr) == (0, "")
    assert ledger(settings) == {"caf\\xe9.json": ("loaded", None), "nul\\x00name.json": ("loaded", None)}


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
    assert json.loads(stdout) == {"batch_id": 1, "files_seen": 2, "loaded": 1, "repaired": 0,
                                  "quarantined": 1, "skipped": 0, "unchanged": 0, "deleted": 0, "keyless": 0}
    assert query(settings, "select source_name, reason, byte_size, content from raw.quarantine") == [
        ("bomb.json", "too-large", size, None)]
    assert peak < 128  # MB: the 512 MiB member is skipped through, never held


def test_ingest_archive_whose_header_lies_writes_nothing(settings: Settings, tmp_path: Path) -> None:
    """A member claiming more bytes than the archive holds: one-line error, exit 1, no batch."""
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w") as archive:
        add(archive, "first.json", USER)
        info = tarfile.TarInfo("liar.json")
        info.size = 10 << 20
        archive.addfile(info, io.BytesIO(b"{" * (10 << 20)))
    data = tmp_path / "liar.tar"
    data.write_bytes(good.getvalue()[: 4096])  # cut inside the liar's data
    result = ingest_cli(settings, data)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: {data}: archive is corrupt after 1 member (unexpected end of archive)\n"
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

