"""The demo-data generator: shape, defects and rates of the real dump, determinism, speed-safe
writer.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import query, run_cli

from duel.exceptions import DuelError
from duel.generate import Written, _template, is_demo, write_dataset
from duel.load import ingest
from duel.settings import Settings

USERS = 2000
SEED = 7
USER_KEYS = [
    "user_id",
    "name",
    "email",
    "instagram_handle",
    "tiktok_handle",
    "joined_at",
    "advocacy_programs",
]
PROGRAM_KEYS = ["program_id", "brand", "tasks_completed", "total_sales_attributed"]
TASK_KEYS = ["task_id", "platform", "post_url", "likes", "comments", "shares", "reach"]
DEFECT_CLASSES = {
    "user_id null",
    "name ???",
    "email invalid-email",
    "instagram_handle null",
    "tiktok_handle #error_handle",
    "joined_at not-a-date",
    "program_id empty",
    "brand 12345",
    "total_sales_attributed no-data",
    "task_id null",
    "platform 123",
    "post_url broken_link",
    "likes NaN",
    "comments null",
    "reach negative",
    "missing final brace",
}


def read_members(path: Path) -> dict[str, bytes]:
    """Every member of an archive in order: name -> bytes (b"" for the directory entry)."""
    with tarfile.open(path) as archive:
        return {
            m.name + ("/" if m.isdir() else ""): (
                archive.extractfile(m).read() if m.isfile() else b""
            )
            for m in archive
        }


def load_user(data: bytes) -> tuple[dict[str, Any], bool]:
    """The document, and whether it needed its final `}` put back."""
    try:
        return json.loads(data), False
    except json.JSONDecodeError:
        return json.loads(data + b"}"), True


def defects(document: dict[str, Any], malformed: bool) -> set[str]:
    """The defect classes one user file shows."""
    found = {
        label
        for label, hit in (
            ("user_id null", document["user_id"] is None),
            ("name ???", document["name"] == "???"),
            ("email invalid-email", document["email"] == "invalid-email"),
            ("instagram_handle null", document["instagram_handle"] is None),
            ("tiktok_handle #error_handle", document["tiktok_handle"] == "#error_handle"),
            ("joined_at not-a-date", document["joined_at"] == "not-a-date"),
            ("missing final brace", malformed),
        )
        if hit
    }
    for program in document["advocacy_programs"]:
        found |= {
            label
            for label, hit in (
                ("program_id empty", program["program_id"] == ""),
                ("brand 12345", program["brand"] == 12345),
                ("total_sales_attributed no-data", program["total_sales_attributed"] == "no-data"),
            )
            if hit
        }
        for task in program["tasks_completed"]:
            found |= {
                label
                for label, hit in (
                    ("task_id null", task["task_id"] is None),
                    ("platform 123", task["platform"] == 123),
                    ("post_url broken_link", task["post_url"] == "broken_link"),
                    ("likes NaN", task["likes"] == "NaN"),
                    ("comments null", task["comments"] is None),
                    ("reach negative", task["reach"] < 0),
                )
                if hit
            }
    return found


def defect_rates(members: dict[str, bytes]) -> dict[str, float]:
    files = [data for name, data in members.items() if name.endswith(".json")]
    counts = Counter(label for data in files for label in defects(*load_user(data)))
    return {label: counts[label] / len(files) for label in sorted(DEFECT_CLASSES)}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Written]:
    path = tmp_path_factory.mktemp("generated") / "demo.tar.gz"
    return path, write_dataset(path, users=USERS, seed=SEED)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_dataset_same_seed_same_bytes(tmp_path: Path) -> None:
    first = write_dataset(tmp_path / "a.tar.gz", users=300, seed=3)
    second = write_dataset(tmp_path / "other-name.tgz", users=300, seed=3)
    different = write_dataset(tmp_path / "c.tar.gz", users=300, seed=4)
    assert sha256(first.path) == sha256(second.path)
    assert sha256(different.path) != sha256(first.path)


def test_write_dataset_members_in_order(generated: tuple[Path, Written]) -> None:
    path, written = generated
    with tarfile.open(path) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == ["demo"] + [
        f"demo/demo_user_{i}.json" for i in range(USERS)
    ]
    assert [(m.type, m.mode) for m in members[:2]] == [
        (tarfile.DIRTYPE, 0o775),
        (tarfile.REGTYPE, 0o664),
    ]
    metadata = {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members}
    assert metadata == {(0, 0, "root", "root", 1753285082)}
    assert (written.files, written.size) == (USERS, path.stat().st_size)


def test_write_dataset_gzip_header_fixed(generated: tuple[Path, Written]) -> None:
    header = generated[0].read_bytes()[:10]
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # no name, mtime 0


def test_write_dataset_tar_stream_is_what_tarfile_writes(tmp_path: Path) -> None:
    written = write_dataset(tmp_path / "plain.tar", users=120, seed=11)
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in read_members(written.path).items():
            if name.endswith("/"):
                archive.addfile(_template(name, tarfile.DIRTYPE, 0o775))
            else:
                info = _template(name, tarfile.REGTYPE, 0o664)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    assert written.path.read_bytes() == expected.getvalue()


def test_write_dataset_malformed_exactly_as_reported(generated: tuple[Path, Written]) -> None:
    path, written = generated
    members = read_members(path)
    unparseable = []
    for name, data in members.items():
        if name.endswith(".json"):
            try:
                json.loads(data)
            except json.JSONDecodeError:
                unparseable.append(name)
                assert data.endswith(b"\n    ]\n")
                assert list(json.loads(data + b"}")) == USER_KEYS
    assert unparseable == list(written.malformed_names)
    assert written.malformed == len(unparseable) == 48


def test_write_dataset_pretty_printed_like_the_dump(generated: tuple[Path, Written]) -> None:
    for name, data in read_members(generated[0]).items():
        if name.endswith(".json"):
            document, malformed = load_user(data)
            text = json.dumps(document, indent=4)
            assert data.decode() == (text[:-1] if malformed else text), name
            assert list(document) == USER_KEYS
            assert [list(p) for p in document["advocacy_programs"]] == [PROGRAM_KEYS]
            assert [list(t) for t in document["advocacy_programs"][0]["tasks_completed"]] == [
                TASK_KEYS
            ]


def test_write_dataset_every_defect_class_present(generated: tuple[Path, Written]) -> None:
    found: set[str] = set()
    for name, data in read_members(generated[0]).items():
        if name.endswith(".json"):
            found |= defects(*load_user(data))
    assert found == DEFECT_CLASSES


def test_write_dataset_rates_match_the_real_dump(tmp_path: Path, real_data: Path) -> None:
    real = defect_rates(read_members(real_data))
    demo = defect_rates(
        read_members(write_dataset(tmp_path / "d.tar.gz", users=20_000, seed=1).path)
    )
    far = {
        label: (round(real[label], 3), round(demo[label], 3))
        for label in real
        if abs(real[label] - demo[label]) > 0.015
    }
    assert far == {}


def test_write_dataset_valid_values_shaped_like_the_dump(generated: tuple[Path, Written]) -> None:
    documents = [
        load_user(data)[0]
        for name, data in read_members(generated[0]).items()
        if name.endswith(".json")
    ]
    emails = [d["email"] for d in documents if d["email"] != "invalid-email"]
    handles = [
        h
        for d in documents
        for h in (d["instagram_handle"], d["tiktok_handle"])
        if h not in (None, "#error_handle")
    ]
    tasks = [t for d in documents for p in d["advocacy_programs"] for t in p["tasks_completed"]]
    assert {e.split("@")[1] for e in emails} == {"gmail.com", "yahoo.com", "hotmail.com"}
    assert all(e != e.lower() for e in emails)
    assert set("".join(h[1:] for h in handles)) - set("._-0123456789") <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    )
    assert any("-" in h for h in handles) and all(h.startswith("@") for h in handles)
    assert Counter(t["platform"] for t in tasks).keys() == {"TikTok", "Instagram", "Facebook", 123}
    assert all(
        t["post_url"].startswith("https://") for t in tasks if t["post_url"] != "broken_link"
    )
    joined = sorted(d["joined_at"] for d in documents if d["joined_at"] != "not-a-date")
    assert joined[0] >= "2024-03-19T10:00:00.000Z" and joined[-1] <= "2025-03-19T10:00:00.000Z"
    assert all(len(j) == 24 and j[10] == "T" and j.endswith("Z") for j in joined)


def test_write_dataset_varied_shapes(tmp_path: Path) -> None:
    written = write_dataset(
        tmp_path / "v.tar.gz", users=400, seed=5, varied_rate=1.0, malformed_rate=0.5
    )
    shapes: Counter[str] = Counter()
    for name, data in read_members(written.path).items():
        if name.endswith(".json"):
            document, malformed = load_user(data)
            assert malformed == (name in written.malformed_names)
            programs = document["advocacy_programs"]
            shapes[f"programs={min(len(programs), 2)}"] += 1
            shapes.update(f"tasks={min(len(p['tasks_completed']), 2)}" for p in programs)
    assert set(shapes) == {
        "programs=0",
        "programs=1",
        "programs=2",
        "tasks=0",
        "tasks=1",
        "tasks=2",
    }


def test_write_dataset_directory_same_files_as_archive(tmp_path: Path) -> None:
    archive = write_dataset(tmp_path / "a.tar", users=80, seed=9)
    folder = write_dataset(tmp_path / "out", users=80, seed=9)
    files = {
        p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
        for p in (tmp_path / "out" / "demo").iterdir()
    }
    members = {
        name: data for name, data in read_members(archive.path).items() if name.endswith(".json")
    }
    assert files == members
    assert (folder.files, folder.malformed_names, folder.size) == (
        80,
        archive.malformed_names,
        sum(map(len, files.values())),
    )


@pytest.mark.parametrize("suffix", [".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz"])
def test_write_dataset_every_tar_compression_same_members(tmp_path: Path, suffix: str) -> None:
    gz = write_dataset(tmp_path / "a.tar.gz", users=40, seed=9)
    other = write_dataset(tmp_path / f"b{suffix}", users=40, seed=9)
    assert read_members(other.path) == read_members(gz.path)
    assert other.malformed_names == gz.malformed_names


def test_write_dataset_refuses_a_directory_with_files(tmp_path: Path) -> None:
    write_dataset(tmp_path / "out", users=3, seed=1)
    with pytest.raises(DuelError) as error:
        write_dataset(tmp_path / "out", users=3, seed=1)
    assert (
        error.value.message
        == f"{tmp_path}/out/demo already holds files; name a new or empty directory"
    )


def test_write_dataset_refuses_a_file_name_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(DuelError) as error:
        write_dataset(tmp_path / "data.json", users=3, seed=1)
    assert error.value.message == (
        f"{tmp_path}/data.json has the extension .json: name a .tar, .tar.gz/.tgz, "
        ".tar.bz2/.tbz2 or .tar.xz/.txz archive (e.g. -o data.tar.gz), or a directory"
    )
    assert list(tmp_path.iterdir()) == []


def test_write_dataset_interrupted_leaves_nothing(tmp_path: Path) -> None:
    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "data.tar.gz", users=25_000, seed=1, on_progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_write_dataset_progress_counts_every_file(tmp_path: Path) -> None:
    steps: list[int] = []
    write_dataset(tmp_path / "data.tar", users=25_000, seed=1, on_progress=steps.append)
    assert steps == [10_000, 10_000, 5_000]


def test_ingest_generated_tarball(settings: Settings, generated: tuple[Path, Written]) -> None:
    path, written = generated
    result = ingest(settings, path)
    assert result.summary() == {
        "batch_id": 1,
        "files_read": USERS,
        "files_seen": USERS,
        "loaded": USERS,
        "repaired": written.malformed,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }


def test_cli_generate_writes_and_reports(settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "d.tar.gz"
    result = run_cli(settings, "generate", "--users", "50", "--seed", "1", "-o", str(target))
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "",
        f"wrote 50 demo files (4 malformed) to {target}\n",
    )
    assert sha256(target) == sha256(write_dataset(tmp_path / "again.tar.gz", users=50, seed=1).path)


# --- demo data is never taken for real data ----------------------------------------------------


def test_is_demo_tells_demo_data_by_its_file_names(
    tmp_path: Path, generated: tuple[Path, Written], real_data: Path, real_dir: Path
) -> None:
    plain = write_dataset(tmp_path / "d.tar", users=3, seed=1).path
    folder = write_dataset(tmp_path / "folder", users=3, seed=1).path
    (tmp_path / "fake.tar.gz").write_text("not an archive")
    (tmp_path / "demo_user_1.json").write_text("{}")
    cases = {
        "generated .tar.gz": generated[0],
        "generated .tar": plain,
        "generated directory": folder,
        "its demo/ folder": folder / "demo",
        "the real dump": real_data,
        "the real dump extracted": real_dir,
        "a corrupt archive": tmp_path / "fake.tar.gz",
        "a single .json": tmp_path / "demo_user_1.json",
    }
    assert {name: is_demo(path) for name, path in cases.items()} == {
        "generated .tar.gz": True,
        "generated .tar": True,
        "generated directory": True,
        "its demo/ folder": True,
        "the real dump": False,
        "the real dump extracted": False,
        "a corrupt archive": False,
        "a single .json": False,
    }


def test_demo_goes_to_its_own_database_and_never_meets_the_real_data(
    settings: Settings, tmp_path: Path, real_dir: Path
) -> None:
    """With PGDATABASE unset: the demo loads into duel_demo (and says so), real data (500 files of
    the real dump) into duel, later commands use the last run's database, and no real user gets a
    demo version."""
    demo = write_dataset(tmp_path / "data.tar.gz", users=50, seed=1).path
    real_slice = tmp_path / "real" / "mixed"
    real_slice.mkdir(parents=True)
    for path in sorted((real_dir / "mixed").glob("*.json"))[:500]:
        (real_slice / path.name).write_bytes(path.read_bytes())
    env = {"PGDATABASE": "", "DUEL_HOME": str(tmp_path / "home")}
    try:
        loaded = run_cli(settings, "ingest", str(demo), **env)
        assert (loaded.returncode, loaded.stderr.splitlines()[-1]) == (
            0,
            (
                "data:    the DEMO (made by `duel generate`), in database duel_demo; a real dump "
                "goes to duel"
            ),
        )
        record = json.loads((tmp_path / "home" / "database.json").read_text())
        assert (record["database"], record["demo"], record["source"]) == (
            "duel_demo",
            True,
            str(demo),
        )
        url = run_cli(settings, "db", "url", **env)
        assert url.stdout == f"postgresql://postgres:***@127.0.0.1:{settings.pg_port}/duel_demo\n"
        real = run_cli(settings, "ingest", str(real_slice.parent), "--json", **env)
        assert (real.returncode, json.loads(real.stdout)["loaded"]) == (0, 500)
        assert run_cli(settings, "db", "url", **env).stdout.endswith("/duel\n")
        count = (
            "select count(*), count(*) filter (where source_name like '%%demo_user_%%')"
            " from raw.user_documents"
        )
        assert (
            query(settings.with_overrides(pg_database="duel"), count),
            query(settings.with_overrides(pg_database="duel_demo"), count),
        ) == ([(500, 0)], [(50, 50)])
    finally:
        with psycopg.connect(**settings.conninfo("postgres"), autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute("drop database if exists duel with (force)")
            conn.execute("drop database if exists duel_demo with (force)")


def test_demo_named_explicitly_stays_in_the_chosen_database(
    settings: Settings, tmp_path: Path
) -> None:
    demo = write_dataset(tmp_path / "data.tar.gz", users=5, seed=1).path
    loaded = run_cli(settings, "ingest", str(demo), DUEL_HOME=str(tmp_path / "home"))
    assert (loaded.returncode, loaded.stderr.splitlines()[-1]) == (
        0,
        (
            f"data:    the DEMO (made by `duel generate`), in database {settings.pg_database}; a "
            "real dump goes to "
            "another database"
        ),
    )
    assert query(settings, "select count(*) from raw.user_documents") == [(5,)]
