"""duel.explore on small hand-made dumps and on the real dataset (no database needed, except to
check that the exploration agrees with what the ingest records)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import query

from duel import charts, defects, explore, state
from duel.defects import Rules, load_rules, parse_json
from duel.exceptions import ConfigError, SourceError
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
        files_read=4,
    )


def test_count_files_counts_documents_and_the_files_that_hold_them(tmp_path: Path) -> None:
    (tmp_path / "users.ndjson").write_bytes(b'{"user_id": "a"}\n{"user_id": "b"}\n[1]\n')
    (tmp_path / "array.json").write_bytes(b'[{"user_id": "c"}, {"user_id": "d"}]')
    assert explore.count_files(OPTIONS, tmp_path) == explore.FileCounts(
        clean=4,
        quarantined=1,
        reasons={"quarantined: not-an-object": 1},
        files_read=2,
    )


def test_count_files_real_dataset(real_data: Path) -> None:
    assert explore.count_files(OPTIONS, real_data) == explore.FileCounts(
        clean=9778, repaired=222, files_read=10000
    )


def test_count_files_agrees_with_ingest_ledger(settings: Settings, small_dump: Path) -> None:
    counts = explore.count_files(settings, small_dump)
    ingest(settings, small_dump)
    ledger = dict(query(settings, "select status, count(*)::int from raw.batch_files group by 1"))
    assert query(settings, "select files_read from raw.batches") == [(counts.files_read,)]
    assert ledger == {
        "loaded": counts.clean,
        "repaired": counts.repaired,
        "quarantined": counts.quarantined,
        "skipped": counts.skipped,
    }


def test_file_counts_rows_shares() -> None:
    assert explore.FileCounts(clean=3, repaired=1).rows() == [
        {"status": "clean", "documents": 3, "share": 0.75},
        {"status": "repaired", "documents": 1, "share": 0.25},
        {"status": "quarantined", "documents": 0, "share": 0.0},
        {"status": "skipped", "documents": 0, "share": 0.0},
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
    ("entity", "field", "value", "defect"),
    [
        # the examples: the notebook now says what dbt says
        ("task", "likes", "NaN", "not-a-number"),
        ("user", "instagram_handle", None, "missing"),
        ("task", "platform", 123, "number"),
        ("task", "reach", -1000, "negative"),
        ("user", "tiktok_handle", "@ada-lovelace", "breaks-platform-rules"),
        ("user", "user_id", "not-a-uuid", "malformed"),
        ("user", "user_id", 7, "wrong-type"),
        ("user", "name", "???", "placeholder"),
        ("user", "email", " INVALID-EMAIL ", "placeholder"),
        ("user", "email", "ada@", "malformed"),
        ("user", "joined_at", "2024-13-01", "unparseable"),
        ("program", "total_sales_attributed", "no-data", "placeholder"),
        ("program", "total_sales_attributed", -12.5, "negative"),
        ("program", "total_sales_attributed", "1e400", "out-of-range"),
        ("task", "likes", 2.5, "fractional"),
        ("task", "shares", True, "wrong-type"),
        ("task", "shares", "", "empty"),
        ("task", "post_url", "ftp://x", "malformed"),
        ("task", "platform", "Threads", "unknown-value"),
        # every field's placeholders (var placeholders, every_field): no value, whatever the field
        ("task", "platform", " N/A ", "placeholder"),
        ("program", "brand", "none", "placeholder"),
        ("program", "brand", "NaN", "placeholder"),
        ("user", "name", "Nan", None),
        ("task", "likes", "NaN ", "not-a-number"),
        ("user", "name", "Unknown", "placeholder"),
        ("user", "instagram_handle", "-", "placeholder"),
        ("task", "likes", "null", "placeholder"),
        ("user", "user_id", "NULL", "placeholder"),
        ("task", "comments", 0, None),
        ("user", "joined_at", "2024-03-05", None),
    ],
)
def test_defects_field_rule_gives_dbt_classes(
    entity: str, field: str, value: object, defect: str | None
) -> None:
    rules = load_rules(OPTIONS.dbt_project_dir)
    assert rules.field(entity, field).defect(parse_json(json.dumps(value))) == defect


def test_defects_rules_are_the_dbt_projects() -> None:
    rules = load_rules(OPTIONS.dbt_project_dir)
    project = yaml.safe_load((OPTIONS.dbt_project_dir / "dbt_project.yml").read_text())["vars"]
    assert [(r.entity, r.name, r.kind) for r in rules.fields] == [
        (entity, name, spec["kind"])
        for entity, fields in project["fields"].items()
        for name, spec in fields.items()
    ]
    assert rules.classes == project["defect_classes"]
    every_field = set(project["placeholders"]["every_field"])
    assert rules.field("user", "email").placeholders == {"invalid-email"} | every_field
    assert rules.field("task", "platform").placeholders == every_field | {"nan"}


def test_defects_every_class_the_sql_names_is_in_the_vocabulary() -> None:
    """Every defect class the cleaning macros and models name goes through `defect_class`, which
    refuses (at compile time) a class that var defect_classes lacks; and docs.md describes each."""
    rules = load_rules(OPTIONS.dbt_project_dir)
    project = OPTIONS.dbt_project_dir
    sql = "".join(p.read_text() for p in (project / "macros").glob("*.sql"))
    sql += "".join(p.read_text() for p in (project / "models").rglob("*.sql"))
    named = set(re.findall(r"defect_class\('([a-z-]+)'\)", sql))
    assert named == set(rules.classes)
    bare = [c for c in re.findall(r"then '([a-z-]+)'", sql) if c in rules.classes]
    assert bare == []  # no class written as a bare literal
    described = (project / "models" / "docs.md").read_text()
    described += (project / "models" / "analysis" / "data_quality.yml").read_text()
    assert [c for c in rules.classes if f"`{c}`" not in described] == []


def _unit_tests(model: str) -> list[dict[str, Any]]:
    path = OPTIONS.dbt_project_dir / "models" / "intermediate" / f"{model}.yml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # as dbt reads it (`name: Who?`)
    unit_tests = yaml.load(path.read_text(), Loader=loader)["unit_tests"]  # noqa: S506
    return [t for t in unit_tests if t["model"] == model]


def _judged_rows(rules: Rules, given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The classes explore gives the unit test's documents, one row per record, keyed like the
    model's rows (document_key, program_position, task_position)."""
    rows = []
    for row in given:
        judged = explore.judge(rules, parse_json(row["document"]))
        positions = {"program": 0, "task": 0}
        for entity, values in judged.records:
            if entity == "program":
                positions = {"program": positions["program"] + 1, "task": 0}
            elif entity == "task":
                positions["task"] += 1
            rows.append(
                {
                    "entity": entity,
                    "document_key": row["document_key"],
                    "program_position": positions["program"],
                    "task_position": positions["task"],
                    **{f"{name}_defect": defect for name, _type, defect, _shown in values},
                }
            )
    return rows


def test_defects_trim_the_characters_the_sql_trims() -> None:
    """duel.defects' trim and macros/portable.sql's whitespace_escapes are one list, written
    twice (Python and SQL): a character added to one is a defect class the other disagrees on."""
    macros = (OPTIONS.dbt_project_dir / "macros" / "portable.sql").read_text(encoding="utf-8")
    [body] = re.findall(r"macro whitespace_escapes\(\) -%\}\s*\{\{ return\('([^']*)'\)", macros)
    escapes = [chr(int(code, 16)) for code in re.findall(r"\\\\u([0-9a-f]{4})", body)]
    assert len(escapes) == 30 and set(escapes) == set(defects._TRIM)
    assert defects.trimmed("\u00a0\ufeffAcme\u3000\u200b") == "Acme"
    assert defects.trimmed("\u00ad\u00ad") == ""  # soft hyphens alone: nothing


@pytest.mark.parametrize(
    ("model", "entity"), [("int_users", "user"), ("int_programs", "program"), ("int_tasks", "task")]
)
def test_defects_agree_with_the_dbt_unit_tests(model: str, entity: str) -> None:
    """Every defect class a dbt unit test of the intermediate models expects is what explore
    gives the same JSON: the SQL and the Python apply one set of rules."""
    rules = load_rules(OPTIONS.dbt_project_dir)
    checked = 0
    for unit_test in _unit_tests(model):
        [given] = [
            g["rows"] for g in unit_test["given"] if g["input"] == "ref('int_current_documents')"
        ]
        judged = [r for r in _judged_rows(rules, given) if r["entity"] == entity]
        for expected in unit_test["expect"]["rows"]:
            keys = {
                k: v
                for k, v in expected.items()
                if k in ("document_key", "program_position", "task_position")
            }
            [actual] = [r for r in judged if keys.items() <= r.items()]
            defects = {k: v for k, v in expected.items() if k.endswith("_defect")}
            assert {k: actual[k] for k in defects} == defects, (unit_test["name"], keys)
            checked += len(defects)
    assert checked >= 10


PG_TIMESTAMPS = [
    "2024-05-10",
    "2024-02-29",
    "2023-02-29",
    "2024-02-30",
    "0000-01-01",
    "0001-01-01",
    "2024-13-01",
    "2024-00-10",
    "2024-05-10T03:58",
    "2024-05-10 24:00",
    "2024-05-10T24:00:00.000",
    "2024-05-10T24:00:01",
    "2024-05-10T24:00:00.0000001",
    "2024-05-10T23:59:60",
    "2024-05-10T23:59:61",
    "2024-05-10T23:60:00",
    "2024-05-10T25:00",
    "2024-05-10T03:58:44.787Z",
    "2024-05-10t03:58:44z",
    "2024-05-10T03:58:44+02:00",
    "2024-05-10T03:58:44+0200",
    "2024-05-10T03:58:44-15:59",
    "2024-05-10T03:58:44+16:00",
    "2024-05-10T03:58:44+15:60",
    "2024-05-10T03:58:44+99",
    "2024-05-10T23:59:59.9999999",
]
PG_NUMBERS = [
    "1",
    "+1",
    "-1.5",
    ".5",
    "5.",
    "1e5",
    "1E-5",
    "1e+400",
    "1e131071",
    "1e131072",
    "1e-16383",
    "1e-16384",
    "0e-20000",
    "0." + "0" * 16383,
    "0." + "0" * 16384,
]


def test_defects_postgres_input_checks_agree_with_postgres(settings: Settings) -> None:
    """The Python stand-ins for pg_input_is_valid and lower() give Postgres' own answers."""
    [(timestamps, numbers, lowered)] = query(
        settings,
        "select array(select pg_input_is_valid(t, 'timestamp') from unnest(%s::text[]) t),"
        " array(select pg_input_is_valid(n, 'numeric') from unnest(%s::text[]) n),"
        ' lower(%s collate "pg_c_utf8")',
        (PG_TIMESTAMPS, PG_NUMBERS, "İSTANBUL ΣΑΣ Straße K"),
    )
    assert [defects.timestamp_valid(t) for t in PG_TIMESTAMPS] == timestamps
    assert [defects.numeric_valid(n) for n in PG_NUMBERS] == numbers
    assert defects.lower_text("İSTANBUL ΣΑΣ Straße K") == lowered


PG_EDGE_TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:59:59-01:00",
    "0001-01-01",
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59.9999995",
    "9999-12-31T23:30:00-01:00",
    "9999-12-31T23:30:00+01:00",
    "9999-12-31 24:00",
    "2024-05-10T03:58:44+0200",
]


def test_defects_timestamp_range_agrees_with_postgres(settings: Settings) -> None:
    """The Python stand-in for the timestamp rule's range (the years 1-9999 in UTC; text without
    an offset is UTC) gives Postgres' answer at the edges."""
    [(in_range,)] = query(
        settings,
        "select array(select case when t ~* '[t ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?"
        "(z|[+-][0-9]{2}(:?[0-9]{2})?)$' then t::timestamptz"
        " else t::timestamp at time zone 'UTC' end"
        " between '0001-01-01T00:00:00Z' and '9999-12-31T23:59:59.999999Z'"
        " from unnest(%s::text[]) as t)",
        (PG_EDGE_TIMESTAMPS,),
    )
    assert [defects.timestamp_in_range(t) for t in PG_EDGE_TIMESTAMPS] == in_range


def test_profile_fields_small_dump(small_dump: Path) -> None:
    profile = {p.field: p for p in explore.profile_fields(OPTIONS, small_dump)}
    rules = load_rules(OPTIONS.dbt_project_dir)
    assert list(profile) == [f"{r.entity}.{r.name}" for r in rules.fields]
    assert profile["program.brand"].row() == {
        "field": "program.brand",
        "kind": "label",
        "rows": 2,
        "types": "string 1, integer 1",
        "usable": 1,
        "defects": "number 1",
        "placeholder_values": "",
        "usable_share": 0.5,
    }
    assert profile["task.likes"].row() == {
        "field": "task.likes",
        "kind": "count",
        "rows": 2,
        "types": "integer 1, string 1",
        "usable": 1,
        "defects": "not-a-number 1",
        "placeholder_values": "",
        "usable_share": 0.5,
    }
    assert profile["user.email"].placeholders == {"invalid-email": 1}
    assert {name: p.usable for name, p in profile.items()} == dict.fromkeys(profile, 1) | {
        "user.advocacy_programs": 2,
        "program.tasks_completed": 2,
        "task.shares": 2,
    }


def test_profile_fields_missing_key_counts_as_missing(tmp_path: Path) -> None:
    user = {k: v for k, v in CLEAN_USER.items() if k != "email"}
    (tmp_path / "u.json").write_text(json.dumps(user))
    email = explore.profile_fields(OPTIONS, tmp_path)[2]
    assert (email.field, email.types, email.defects, email.usable) == (
        "user.email",
        {"missing": 1},
        {"missing": 1},
        0,
    )


def test_profile_fields_later_delivery_of_a_document_counts(tmp_path: Path) -> None:
    """Two deliveries of one document (the same user_id, no file of their own): the load keeps
    the last, and so does the profile."""
    first, last = dict(CLEAN_USER, email="invalid-email"), dict(CLEAN_USER, email="ada@example.com")
    (tmp_path / "users.ndjson").write_text(json.dumps(first) + "\n" + json.dumps(last) + "\n")
    email = explore.profile_fields(OPTIONS, tmp_path / "users.ndjson")[2]
    assert (email.rows, email.defects) == (1, {})


def test_profile_fields_real_dataset(real_data: Path) -> None:
    defects = {p.field: p.defects for p in explore.profile_fields(OPTIONS, real_data)}
    assert defects == {
        "user.user_id": {"missing": 4535},
        "user.name": {"placeholder": 4773},
        "user.email": {"placeholder": 4280},
        "user.instagram_handle": {"missing": 4795, "breaks-platform-rules": 197},
        "user.tiktok_handle": {"placeholder": 4788, "breaks-platform-rules": 180},
        "user.joined_at": {"placeholder": 4667},
        "user.advocacy_programs": {},
        "program.program_id": {"empty": 4501},
        "program.brand": {"number": 4534},
        "program.total_sales_attributed": {"placeholder": 3985},
        "program.tasks_completed": {},
        "task.task_id": {"missing": 4524},
        "task.platform": {"number": 1289},
        "task.post_url": {"placeholder": 4057},
        "task.likes": {"not-a-number": 4032},
        "task.comments": {"missing": 3576},
        "task.shares": {},
        "task.reach": {"negative": 271},
    }


def test_defect_counts_small_dump(small_dump: Path) -> None:
    found = {
        (d.record_type, d.field, d.defect): (d.count, d.records)
        for d in explore.defect_counts(OPTIONS, small_dump)
    }
    assert found == {
        ("file", "(all fields)", "(any defect)"): (2, 3),
        ("file", "file", "quarantined:not-an-object"): (1, 3),
        ("file", "file", "repaired"): (1, 3),
        ("program", "(all fields)", "(any defect)"): (1, 2),
        ("program", "brand", "number"): (1, 2),
        ("program", "program_id", "empty"): (1, 2),
        ("program", "total_sales_attributed", "placeholder"): (1, 2),
        ("task", "(all fields)", "(any defect)"): (1, 2),
        ("task", "comments", "missing"): (1, 2),
        ("task", "likes", "not-a-number"): (1, 2),
        ("task", "platform", "number"): (1, 2),
        ("task", "post_url", "placeholder"): (1, 2),
        ("task", "reach", "negative"): (1, 2),
        ("task", "task_id", "missing"): (1, 2),
        ("user", "(all fields)", "(any defect)"): (1, 2),
        ("user", "email", "placeholder"): (1, 2),
        ("user", "instagram_handle", "missing"): (1, 2),
        ("user", "joined_at", "placeholder"): (1, 2),
        ("user", "name", "placeholder"): (1, 2),
        ("user", "tiktok_handle", "placeholder"): (1, 2),
        ("user", "user_id", "missing"): (1, 2),
    }


@pytest.mark.slow
def test_defect_counts_equal_dbt_data_quality_on_the_real_dump(
    real_built: Settings, real_data: Path
) -> None:
    """What the notebook shows before the load is what dbt_analysis.data_quality records after
    it: every (record type, field, defect) with its count and its records, row for row."""
    loaded = query(
        real_built,
        "select record_type, field, defect, sum(defect_count)::int, sum(records)::int"
        " from dbt_analysis.data_quality group by 1, 2, 3",
    )
    explored = [
        (d.record_type, d.field, d.defect, d.count, d.records)
        for d in explore.defect_counts(OPTIONS, real_data)
    ]
    assert explored == sorted(loaded)  # in Python's order: the database's collation may differ
    assert len(loaded) == 23


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


def test_distributions_read_a_number_beyond_a_double(tmp_path: Path) -> None:
    # a clean file with likes 1e400 (jsonb stores it): orjson refused it, and the notebook's
    # exploration failed with a traceback; it is no finite number, so unknown
    folder = tmp_path / "dump" / "mixed"
    folder.mkdir(parents=True)
    (folder / "user_1.json").write_bytes(
        b'{"advocacy_programs": [{"total_sales_attributed": 12.5, "tasks_completed":'
        b' [{"likes": 1e400, "comments": 2}]}]}'
    )
    found = explore.distributions(OPTIONS, tmp_path / "dump")
    assert (list(found["likes"].values), found["likes"].unknown) == ([], 1)
    assert list(found["comments"].values) == [2.0] and list(found["sales"].values) == [12.5]


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
        4603,
        {"user": (10000, 4603), "program": (10000, 4975), "task": (10000, 4967)},
    )
    assert split.defective_fields == {
        0: 4603,
        1: 358,
        2: 6,
        7: 12,
        8: 40,
        9: 200,
        10: 641,
        11: 1270,
        12: 1552,
        13: 1045,
        14: 266,
        15: 7,
    }


# --- the exploration charts in duel.charts --------------------------------------------------


def test_field_profile_chart_one_bar_per_defect_class(small_dump: Path) -> None:
    """One bar per class, in the vocabulary's order and in the colours of the report's defects
    chart (charts.defect_colours)."""
    profile = explore.profile_fields(OPTIONS, small_dump)
    parts = [part for p in profile for part in p.defect_rows()]
    vocabulary = load_rules(OPTIONS.dbt_project_dir).classes
    fig = charts.field_profile_chart(parts, vocabulary)
    classes = ["missing", "empty", "placeholder", "number", "not-a-number", "negative"]
    assert [t.name for t in fig.data] == ["usable", *classes]
    place = list(vocabulary)
    assert [t.marker.color for t in fig.data] == [
        charts.COLOURS["good"],
        *(charts.DEFECT_COLOURS[place.index(c)] for c in classes),
    ]
    assert list(fig.data[0].y) == [p.field for p in reversed(profile)]
    assert list(fig.data[3].x)[-3:] == [0.5, 0.5, 0.0]  # placeholder: email, name, user_id
    # without the vocabulary: the classes by name
    names = [t.name for t in charts.field_profile_chart(parts).data]
    assert names == ["usable", *sorted(classes)]


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


# --- which dump the notebook looks at --------------------------------------------------------


def test_dump_to_explore_is_the_dump_the_last_run_loaded(tmp_path: Path) -> None:
    """data_debugging.ipynb's `data_path = None`: after `make run DATA=...` the notebook looks at
    that dump (the one in the database it loads into), not at a ./data.tar.gz the user may not
    have; a path given, or DUEL_DATA, wins; a record of another database does not count."""
    env = {"DUEL_HOME": str(tmp_path / "home"), "PGDATABASE": "duel"}
    settings = load_settings(env, dotenv=None)
    assert explore.dump_to_explore(settings) == Path("data.tar.gz")
    real = tmp_path / "dumps" / "real.tar.gz"
    state.write_database(settings.home, "duel", demo=False, source=real)
    assert explore.dump_to_explore(settings) == real
    assert explore.dump_to_explore(settings, "other.tar.gz") == Path("other.tar.gz")
    given = load_settings({**env, "DUEL_DATA": str(tmp_path / "day2.tar.gz")}, dotenv=None)
    assert explore.dump_to_explore(given) == tmp_path / "day2.tar.gz"
    demo = load_settings({**env, "PGDATABASE": "duel_demo"}, dotenv=None)
    assert explore.dump_to_explore(demo) == Path("data.tar.gz")
    state.write_database(settings.home, "duel", demo=False, source="s3://bucket/dumps/day1/")
    with pytest.raises(ConfigError) as raised:
        explore.dump_to_explore(settings)
    assert raised.value.message == (
        "the last run read s3://bucket/dumps/day1/, an object store; set data_path to a local "
        "copy of it"
    )
