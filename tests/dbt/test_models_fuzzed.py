"""The models on a fuzzed copy of the real dump, against the independent recomputation.

The real dump holds the defects its producer made; a dump we have not seen will hold others. A
seeded copy of the real files has 40 % of them changed: values replaced by sentinels of other
tools ("N/A", "null", "-", "NaN"), wrong types, numbers as strings, at the limits and past
them, dates that are no day, free-text platforms and brands, fields taken away or added,
programs and tasks repeated. Every comparison of test_models_real and test_analysis_real that is
not a number of the real dump itself is made again here: the defect classes per field, the
cleaned totals, the tasks per platform, the coverage of the overview and of each platform, the
robust outliers and the rankings, all equal to what json_facts and analysis_facts compute from
the files.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import psycopg
import pytest
from analysis_facts import Rows, analysis_rows, by_platform, outliers, overview
from conftest import query
from json_facts import Facts, compute_facts
from test_analysis_real import (
    test_top_advocates_rank_every_user_by_user_key as rankings_match,  # not collected here
)
from test_models_real import CLEANED_TOTAL_NAMES, CLEANED_TOTALS, DEFECTS_IN_CORE

from duel import db
from duel.load import ingest
from duel.settings import Settings
from duel.transform import build_models

pytestmark = pytest.mark.slow

SEED = 20261204
SHARE_CHANGED = 0.4
# What a value may become: other tools' stand-ins for nothing, wrong types, numbers in every
# form and at every limit, dates, labels and handles of every shape
VALUES: list[Any] = [
    *(None, "", " ", "null", "NULL", "N/A", "n/a", "NaN", "-", "none", "undefined", "unknown"),
    *(0, -1, 1, 2.5, -2.5, "12", " 12 ", "1,234", "1e3", "-0", "0.0", 1e300, 1e-7, 10**15),
    *(10**19, -(10**19), 2**63 - 1, 0.005, 999999999999.99, 1000000000000.01, "$100", "1.5e2"),
    *(True, False, [], {}, [1], ["x"], {"a": 1}, "x" * 300, "Zoë", "ÉMILE", "😀", "a\nb"),
    *("2025-03-14", "2025-13-45T00:00:00Z", "2025-02-30", "1999-12-31T23:59:59+05:30", 1700000000),
    *("@", "@a", "@" + "a" * 40, "a@b", "A@B.COM", " x@y.org ", "http://x", "ftp://a.b"),
    *("https://a.b/c?d#e", "TikTok", "tiktok ", "INSTAGRAM", "twitter", "insta gram", "12345"),
    *("9F486A42-3AEE-4C74-8491-FDFACE3F72E7", "{9f486a42-3aee-4c74-8491-fdface3f72e7}"),
    *("  Ullrich and Sons ", "ullrich and sons", "Ullrich  and Sons", "100 USD"),
]
LISTS = ("advocacy_programs", "tasks_completed")


def _change_one(record: dict[str, Any], rng: random.Random) -> None:
    """Replace, remove or add one field of `record` (never its lists: the recomputation reads
    them as lists, and their other shapes have tests of their own in test_models_edges)."""
    fields = [name for name in record if name not in LISTS]
    if not fields:
        return
    name, roll = rng.choice(fields), rng.random()
    if roll < 0.15:
        del record[name]
    elif roll < 0.2:
        record[f"extra_{rng.randint(0, 9)}"] = copy.deepcopy(rng.choice(VALUES))
    else:
        record[name] = copy.deepcopy(rng.choice(VALUES))


def _mutate(document: dict[str, Any], rng: random.Random) -> None:
    """One to four changes anywhere in the document; a program or a task may be repeated."""
    for _ in range(rng.randint(1, 4)):
        programs = document.get("advocacy_programs")
        roll = rng.random()
        if roll < 0.3 or not isinstance(programs, list) or not programs:
            _change_one(document, rng)
            continue
        program = rng.choice(programs)
        if not isinstance(program, dict):
            continue
        tasks = program.get("tasks_completed")
        if roll < 0.55 or not isinstance(tasks, list) or not tasks:
            if rng.random() < 0.1:
                programs.append(copy.deepcopy(program))
            else:
                _change_one(program, rng)
            continue
        task = rng.choice(tasks)
        if rng.random() < 0.08:
            tasks.append(copy.deepcopy(task))
        elif isinstance(task, dict):
            _change_one(task, rng)


def fuzzed_copy(source: Path, target: Path, seed: int = SEED) -> int:
    """Copy every file of `source` to `target`, changing a share of the parseable ones (the
    broken ones are copied as they are); return how many were changed."""
    rng, changed = random.Random(seed), 0
    for path in sorted(source.rglob("*.json")):
        data = path.read_bytes()
        if rng.random() < SHARE_CHANGED:
            try:
                document = json.loads(data)
            except ValueError:
                document = None
            if isinstance(document, dict):
                _mutate(document, rng)
                data = json.dumps(document, ensure_ascii=rng.random() < 0.5).encode()
                changed += 1
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return changed


@pytest.fixture(scope="module")
def fuzzed_dir(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("fuzzed")
    assert fuzzed_copy(real_dir, target) > 3500  # about 40 % of the 9,778 parseable files
    return target


@pytest.fixture(scope="module")
def fuzzed_built(
    pg_server: Settings, fuzzed_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    built = pg_server.with_overrides(
        pg_database="duel_fuzzed_built", out_dir=tmp_path_factory.mktemp("fuzzed-out")
    )
    db.ensure_ready(built)
    ingest(built, fuzzed_dir)
    build_models(built, unit_tests=False)
    return built


@pytest.fixture(scope="module")
def facts(fuzzed_dir: Path) -> Facts:
    return compute_facts(fuzzed_dir)


@pytest.fixture(scope="module")
def rows(facts: Facts) -> Rows:
    return analysis_rows(facts)


def fetch(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        names = [d.name for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_fuzzed_dump_holds_the_defects_the_real_one_does_not(facts: Facts) -> None:
    """The copy exercises what the real dump never shows (so the comparisons below mean more)."""
    seen = {(entity, field, defect) for (entity, field, defect), n in facts.defects.items() if n}
    assert {
        ("program", "brand", "placeholder"),
        ("task", "platform", "placeholder"),
        ("task", "platform", "unknown-value"),
        ("user", "name", "placeholder"),
        ("user", "joined_at", "unparseable"),
        ("task", "likes", "out-of-range"),
        ("program", "total_sales_attributed", "non-numeric"),
    } <= seen
    assert facts.totals["programs"] > 10000 and facts.totals["tasks"] > 10000  # repeated ones


def test_fuzzed_defect_counts_match_the_files(fuzzed_built: Settings, facts: Facts) -> None:
    got = query(fuzzed_built, DEFECTS_IN_CORE)
    assert {(entity, field, defect): n for entity, field, defect, n in got} == {
        k: n for k, n in facts.defects.items() if n
    }


def test_fuzzed_cleaned_totals_match_the_files(fuzzed_built: Settings, facts: Facts) -> None:
    [row] = query(fuzzed_built, CLEANED_TOTALS)
    assert row == tuple(facts.totals[name] for name in CLEANED_TOTAL_NAMES)


def test_fuzzed_tasks_per_platform_match_the_files(fuzzed_built: Settings, facts: Facts) -> None:
    got = query(fuzzed_built, "select platform, count(*) from dbt.tasks_completed group by 1")
    assert dict(got) == facts.totals["platforms"]
    assert not {"n/a", "null", "-", "none", "nan", "unknown"} & set(dict(got))


def test_fuzzed_overview_and_platform_coverage_match_the_files(
    fuzzed_built: Settings, rows: Rows
) -> None:
    [row] = fetch(fuzzed_built, "select * from dbt_analysis.overview")
    [scored] = fetch(
        fuzzed_built, "select count(*) as n from dbt_analysis.sales_outliers where is_outlier"
    )
    assert row == overview(rows, scored["n"])
    model = {
        r.pop("platform"): r
        for r in fetch(fuzzed_built, "select * from dbt_analysis.engagement_by_platform")
    }
    assert model == by_platform(rows)


def test_fuzzed_sales_outliers_match_a_robust_recomputation(
    fuzzed_built: Settings, rows: Rows
) -> None:
    model = fetch(
        fuzzed_built,
        """
        select peer_group_level, peer_group, min(peer_group_size) as size, count(*) as judged,
               min(peer_median) as median, min(peer_median_absolute_deviation) as mad,
               min(lower_bound) as lower_bound, min(upper_bound) as upper_bound,
               count(*) filter (where is_outlier) as outliers
        from dbt_analysis.sales_outliers where is_scored
        group by 1, 2""",
    )
    got = {(r.pop("peer_group_level"), r.pop("peer_group")): r for r in model}
    assert got == outliers(rows)
    assert sum(r["outliers"] for r in got.values()) > 0


def test_fuzzed_top_advocates_rank_every_user(fuzzed_built: Settings, rows: Rows) -> None:
    rankings_match(fuzzed_built, rows)  # the real dump's check, on this one
