"""The ingest on the real dataset and on small hand-made inputs, against the real Postgres."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from conftest import query

from duel.load import ingest
from duel.settings import Settings


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_ingest_real_dataset_counts(settings: Settings, real_data: Path) -> None:
    result = ingest(settings, real_data)
    assert result.summary() == {"batch_id": 1, "files_seen": 10000, "loaded": 10000, "repaired": 222,
                                "quarantined": 0, "skipped": 0, "unchanged": 0}
    assert query(settings, "select parse_status, count(*) from raw.user_documents group by 1 order by 1") == [
        ("clean", 9778), ("repaired", 222)]
    assert query(settings, "select count(*) from raw.current_versions") == [(10000,)]


def test_ingest_twice_changes_nothing(settings: Settings, real_data: Path) -> None:
    ingest(settings, real_data)
    before = query(settings, "select source_name, content_sha256, batch_id from raw.user_documents order by 1")
    again = ingest(settings, real_data)
    assert again.summary() == {"batch_id": 2, "files_seen": 10000, "loaded": 0, "repaired": 0,
                               "quarantined": 0, "skipped": 0, "unchanged": 10000}
    after = query(settings, "select source_name, content_sha256, batch_id from raw.user_documents order by 1")
    assert after == before


def test_ingest_raw_rows_match_files(settings: Settings, real_dir: Path) -> None:
    ingest(settings, real_dir)
    rows = dict(query(settings, "select source_name, content_sha256 from raw.user_documents"))
    files = {p.relative_to(real_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in (real_dir / "mixed").glob("*.json")}
    assert rows == files
