"""Test helper: a .tar.gz written from (name, bytes) members, for the tests that build dumps."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path


def make_tar(path: Path, members: Iterable[tuple[str, bytes]]) -> Path:
    """A .tar.gz of (name, bytes) members in this order; a name may repeat."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
