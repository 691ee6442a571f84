"""duel.explore on small hand-made dumps and on the real dataset (no database needed, except to
check that the exploration agrees with what the ingest records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import query

from duel import charts, explore
from duel.exceptions import SourceError
from duel.load import ingest
from duel.settings import Settings, load_settings

OPTIONS = load_settings({}, dotenv=None)  # explore reads only max_file_bytes and repair_policy

CLEAN_USER = {
    "user_id": "4f9d3c3e-8f4b-4b8e-9a57-2d6a0e0c1a11",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "instagram_handle": "@ada",
    "tiktok_handle": "@ada.t",
    "joined_at": "2024-03-05T10:00:00",
    "advocacy_programs": [
        {
            "program_id": "0b3c5f5a-3c1e-4d8e-8a3b-6f1f2b9d7c22",
            "brand": "Acme",
            "total_sales_attributed": 120.5,
            "tasks_completed": [
                {
                    "task_id": "7d1e2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
                    "platform": "TikTok",
                    "post_url": "https://t.example/1",
                    "likes": 10,
                    "comments": 2,
                    "shares": 3,
                    "reach": 500,
                }
            ],
        }
    ],
}
MESSY_USER = {
    "user_id": None,
    "name": "???",
    "email": "invalid-email",
    "instagram_handle": None,
    "tiktok_handle": "#error_handle",
    "joined_at": "not-a-date",
    "advocacy_programs": [
        {
            "program_id": "",
            "brand": 12345,
            "total_sales_attributed": "no-data",
            "tasks_completed": [
                {
                    "task_id": None,
                    "platform": 123,
                    "post_url": "broken_link",
                    "likes": "NaN",
                    "comments": None,
                    "shares": 7,
                    "reach": -1000,
                }
            ],
        }
    ],
}


@pytest.fixture
def small_dump(tmp_path: Path) -> Path:
    """A clean file, a truncated messy file (missing its final brace), a non-object, a text file."""
    root = tmp_path / "dump"
    root.mkdir()
    (root / "a.json").write_text(json.dumps(CLEAN_USER, indent=4))
    (root / "b.json").write_text(json.dumps(MESSY_USER, indent=4)[:-1])
    (root / "c.json").write_text("[1, 2]")
    (root / "notes.txt").write_text("not data")
    return root


def test_count_files_small_dump(small_dump: Path) -> None:
    assert explore.count_files(OPTIONS, small_dump) == explore.FileCounts(
        clean=1,
        repaired=1,
        quarantined=1,
        skipped=1,
        reasons={"quarantined: not-an-object": 1, "skipped: not-json": 1},
    )


def test_count_files_real_dataset(real_data: Path) -> None:
    assert explore.count_files(OPTIONS, real_data) == explore.FileCounts(clean=9778, repaired=222)


def test_count_files_agrees_with_ingest_ledger(settings: Settings, small_dump: Path) -> None:
    counts = explore.count_files(settings, small_dump)
    ingest(settings, small_dump)
    ledger = dict(query(settings, "select status, count(*)::int from raw.batch_files group by 1"))
    assert ledger == {
        "loaded": counts.clean,
        "repaired": counts.repaired,
        "quarantined": counts.quarantined,
        "skipped": counts.skipped,
    }


def test_file_counts_rows_shares() -> None:
    assert explore.FileCounts(clean=3, repaired=1).rows() == [
        {"status": "clean", "files": 3, "share": 0.75},
        {"status": "repaired", "files": 1, "share": 0.25},
        {"status": "quarantined", "files": 0, "share": 0.0},
        {"status": "skipped", "files": 0, "share": 0.0},
    ]


def test_malformed_files_small_dump(small_dump: Path) -> None:
    assert explore.malformed_files(OPTIONS, small_dump) == [
        explore.MalformedFile(
            "b.json",
            "repaired",
            677,
            "unexpected end of data: line 26 column 1 (char 677)",
            "closed",
        ),
        explore.MalformedFile("c.json", "quarantined", 6, None, "not-an-object"),
    ]


def test_malformed_files_real_dataset(real_data: Path, real_dir: Path) -> None:
    expected = set()
    for path in (real_dir / "mixed").glob("*.json"):
        try:
            json.loads(path.read_bytes())
        except ValueError:
            expected.add(path.relative_to(real_dir).as_posix())
    found = explore.malformed_files(OPTIONS, real_data)
    assert {f.name for f in found} == expected
    assert {(f.status, f.verdict) for f in found} == {("repaired", "closed")}
    assert len(found) == 222


def test_repair_view_first_repaired_file(small_dump: Path) -> None:
    view = explore.repair_view(OPTIONS, small_dump)
    before = (small_dump / "b.json").read_text()
    assert (view.name, view.status, view.change) == (
        "b.json",
        "repaired",
        "appended the missing closing bracket(s) '}', after dropping trailing '\\n'",
    )
    assert view.before == before
    assert view.after == before.rstrip() + "}"
    assert view.diff == "\n".join(
        [
            "--- before",
            "+++ after",
            "@@ -22,4 +22,4 @@",
            "                 }",
            "             ]",
            "         }",
            "-    ]",
            "+    ]}",
        ]
    )


def test_repair_view_named_clean_file_says_nothing_changed(small_dump: Path) -> None:
    view = explore.repair_view(OPTIONS, small_dump, "a.json")
    assert (view.status, view.change, view.diff, view.after == view.before) == (
        "clean",
        "nothing: the file is valid JSON",
        "",
        True,
    )


def test_repair_view_unknown_name_fails_in_one_line(small_dump: Path) -> None:
    with pytest.raises(SourceError) as error:
        explore.repair_view(OPTIONS, small_dump, "nope.json")
    assert error.value.message == f"{small_dump}: no file 'nope.json'"


@pytest.mark.parametrize(
    ("field", "value", "defect"),
    [
        ("user.user_id", None, "null"),
        ("user.user_id", "not-a-uuid", "invalid"),
        ("user.user_id", 7, "wrong_type"),
        ("user.name", "???", "sentinel"),
        ("user.email", "ada@", "invalid"),
        ("user.joined_at", "2024-13-01", "invalid"),
        ("program.brand", 12345, "wrong_type"),
        ("program.total_sales_attributed", "no-data", "sentinel"),
        ("task.likes", 2.5, "wrong_type"),
        ("task.reach", -1000, "invalid"),
        ("task.shares", True, "wrong_type"),
        ("task.post_url", "ftp://x", "invalid"),
        ("task.comments", 0, None),
        ("user.joined_at", "2024-03-05", None),
    ],
)
def test_value_defect_classes(field: str, value: object, defect: str | None) -> None:
    assert explore.value_defect(field, value) == defect


def test_profile_fields_small_dump(small_dump: Path) -> None:
    profile = {p.field: p for p in explore.profile_fields(OPTIONS, small_dump)}
    assert list(profile) == list(explore.FIELD_CHECKS)
    assert profile["program.brand"].row() == {
        "field": "program.brand",
        "rows": 2,
        "types": "string 1, integer 1",
        "usable": 1,
        "missing": 0,
        "null": 0,
        "sentinel": 0,
        "wrong_type": 1,
        "invalid": 0,
        "sentinel_values": "",
        "null_share": 0.0,
        "usable_share": 0.5,
    }
    assert profile["task.likes"].row() == {
        "field": "task.likes",
        "rows": 2,
        "types": "integer 1, string 1",
        "usable": 1,
        "missing": 0,
        "null": 0,
        "sentinel": 1,
        "wrong_type": 0,
        "invalid": 0,
        "sentinel_values": "'NaN' 1",
        "null_share": 0.0,
        "usable_share": 0.5,
    }
    assert {name: p.usable for name, p in profile.items()} == dict.fromkeys(
        explore.FIELD_CHECKS, 1
    ) | {"task.shares": 2}


def test_profile_fields_missing_key_counts_as_missing(tmp_path: Path) -> None:
    user = {k: v for k, v in CLEAN_USER.items() if k != "email"}
    (tmp_path / "u.json").write_text(json.dumps(user))
    email = explore.profile_fields(OPTIONS, tmp_path)[2]
    assert (email.field, email.types, email.defects, email.row()["null_share"]) == (
        "user.email",
        {"missing": 1},
        {"missing": 1},
        1.0,
    )


def test_profile_fields_real_dataset(real_data: Path) -> None:
    defects = {p.field: p.defects for p in explore.profile_fields(OPTIONS, real_data)}
    assert defects == {
        "user.user_id": {"null": 4535},
        "user.name": {"sentinel": 4773},
        "user.email": {"sentinel": 4280},
        "user.instagram_handle": {"null": 4795},
        "user.tiktok_handle": {"sentinel": 4788},
        "user.joined_at": {"sentinel": 4667},
        "program.program_id": {"sentinel": 4501},
        "program.brand": {"wrong_type": 4534},
        "program.total_sales_attributed": {"sentinel": 3985},
        "task.task_id": {"null": 4524},
        "task.platform": {"wrong_type": 1289},
        "task.post_url": {"sentinel": 4057},
        "task.likes": {"sentinel": 4032},
        "task.comments": {"null": 3576},
        "task.shares": {},
        "task.reach": {"invalid": 271},
    }


def test_distributions_small_dump(small_dump: Path) -> None:
    found = {
        m: (list(d.values), d.unknown, d.negative)
        for m, d in explore.distributions(OPTIONS, small_dump).items()
    }
    assert found == {
        "likes": ([10.0], 1, 0),
        "comments": ([2.0], 1, 0),
        "shares": ([3.0, 7.0], 0, 0),
        "reach": ([500.0, -1000.0], 0, 1),
        "sales": ([120.5], 1, 0),
    }


def test_distributions_real_dataset(real_data: Path) -> None:
    found = {
        m: (len(d.values), d.unknown, d.negative, min(d.values), max(d.values))
        for m, d in explore.distributions(OPTIONS, real_data).items()
    }
    assert {m: v[:4] for m, v in found.items()} == {
        "likes": (5968, 4032, 0, 10.0),
        "comments": (6424, 3576, 0, 0.0),
        "shares": (10000, 0, 0, 0.0),
        "reach": (10000, 0, 271, -1000.0),
        "sales": (6015, 3985, 0, found["sales"][3]),
    }
    assert (found["likes"][4], found["comments"][4], found["shares"][4], found["reach"][4]) == (
        500,
        50,
        100,
        9999,
    )


def test_split_records_small_dump(small_dump: Path) -> None:
    split = explore.split_records(OPTIONS, small_dump)
    assert split == explore.RecordSplit(
        records=2,
        clean_records=1,
        entities={"user": (2, 1), "program": (2, 1), "task": (2, 1)},
        defective_fields={0: 1, 15: 1},
    )
    assert split.rows()[0] == {
        "level": "record",
        "rows": 2,
        "clean": 1,
        "messy": 1,
        "clean_share": 0.5,
    }


def test_split_records_real_dataset(real_data: Path) -> None:
    split = explore.split_records(OPTIONS, real_data)
    assert (split.records, split.clean_records, split.entities) == (
        10000,
        4967,
        {"user": (10000, 4967), "program": (10000, 4975), "task": (10000, 4967)},
    )
    assert split.defective_fields == {
        0: 4967,
        7: 12,
        8: 40,
        9: 203,
        10: 646,
        11: 1265,
        12: 1550,
        13: 1044,
        14: 266,
        15: 7,
    }


# --- the exploration charts in duel.charts --------------------------------------------------


def test_field_profile_chart_one_bar_per_defect_class(small_dump: Path) -> None:
    rows = [p.row() for p in explore.profile_fields(OPTIONS, small_dump)]
    fig = charts.field_profile_chart(rows)
    assert [t.name for t in fig.data] == [
        "usable",
        "missing",
        "null",
        "sentinel",
        "wrong type",
        "invalid",
    ]
    assert list(fig.data[0].y) == list(reversed(explore.FIELD_CHECKS))
    assert list(fig.data[3].x)[-3:] == [0.5, 0.5, 0.0]  # user.email, user.name, user.user_id


def test_distributions_chart_bins_each_measure() -> None:
    fig = charts.distributions_chart({"likes": [1, 2, 2, 3], "reach": []}, bins=2)
    assert [(t.name, list(t.y)) for t in fig.data] == [("likes", [1, 3]), ("reach", [])]


def test_distributions_chart_empty_says_so() -> None:
    fig = charts.distributions_chart({})
    assert [a.text for a in fig.layout.annotations] == ["no numeric values"]


def test_record_split_chart_clean_and_messy(small_dump: Path) -> None:
    fig = charts.record_split_chart(explore.split_records(OPTIONS, small_dump).rows())
    assert [(t.name, list(t.y), list(t.x)) for t in fig.data] == [
        ("clean", ["task", "program", "user", "record"], [1, 1, 1, 1]),
        ("messy", ["task", "program", "user", "record"], [1, 1, 1, 1]),
    ]


def test_distribution_row_summarises_values() -> None:
    from array import array

    assert explore.Distribution("reach", array("d", [4, -1000, 6]), unknown=2).row() == {
        "measure": "reach",
        "numeric": 3,
        "unknown": 2,
        "negative": 1,
        "min": -1000.0,
        "median": 4.0,
        "mean": -330.0,
        "max": 6.0,
    }
    assert explore.Distribution("likes", array("d"), unknown=1).row() == {
        "measure": "likes",
        "numeric": 0,
        "unknown": 1,
        "negative": 0,
        "min": None,
        "median": None,
        "mean": None,
        "max": None,
    }
