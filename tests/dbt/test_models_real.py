"""The dbt models on the real dataset, against what the JSON files say (json_facts.py).

`real_built` (tests/conftest.py) is one database with the real dump ingested and `dbt build`
run once for the session; these tests only read it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import query
from json_facts import Facts, compute_facts, file_key, key

from duel.settings import Settings

# The defect counts observed in the real dump (the list): a check on json_facts itself.
OBSERVED = {
    ("user", "user_id", "missing"): 4535,
    ("user", "name", "placeholder"): 4773,
    ("user", "email", "placeholder"): 4280,
    ("user", "instagram_handle", "missing"): 4795,
    ("user", "tiktok_handle", "placeholder"): 4788,
    ("user", "joined_at", "placeholder"): 4667,
    ("program", "program_id", "empty"): 4501,
    ("program", "brand", "number"): 4534,
    ("program", "total_sales_attributed", "placeholder"): 3985,
    ("task", "task_id", "missing"): 4524,
    ("task", "platform", "number"): 1289,
    ("task", "post_url", "placeholder"): 4057,
    ("task", "likes", "not-a-number"): 4032,
    ("task", "comments", "missing"): 3576,
    ("task", "reach", "negative"): 271,
}
DEFECTS_IN_CORE = """
    select 'user', field, defect, count(*) from dbt.base
    cross join lateral (values ('user_id', user_id_defect), ('name', name_defect),
        ('email', email_defect), ('email', case when is_duplicate_email then 'duplicate' end),
        ('instagram_handle', instagram_handle_defect), ('tiktok_handle', tiktok_handle_defect),
        ('joined_at', joined_at_defect), ('advocacy_programs', advocacy_programs_defect)) v(field,
          defect)
    where defect is not null group by 1, 2, 3
    union all
    select 'program', field, defect, count(*) from dbt.advocacy_programs
    cross join lateral (values ('program_id', program_id_defect), ('brand', brand_defect),
        ('total_sales_attributed', total_sales_attributed_defect), ('tasks_completed',
          tasks_completed_defect)
    ) v(field, defect)
    where defect is not null group by 1, 2, 3
    union all
    select 'task', field, defect, count(*) from dbt.tasks_completed
    cross join lateral (values ('task_id', task_id_defect), ('platform', platform_defect),
        ('post_url', post_url_defect), ('likes', likes_defect), ('comments', comments_defect),
        ('shares', shares_defect), ('reach', reach_defect)) v(field, defect)
    where defect is not null group by 1, 2, 3
"""


@pytest.fixture(scope="module")
def facts(real_dir: Path) -> Facts:
    return compute_facts(real_dir)


def test_json_facts_match_the_observed_defect_rates(facts: Facts) -> None:
    assert {k: facts.defects[k] for k in OBSERVED} == OBSERVED


@pytest.mark.slow
def test_models_defect_counts_match_the_files(real_built: Settings, facts: Facts) -> None:
    rows = query(real_built, DEFECTS_IN_CORE)
    assert {(entity, field, defect): n for entity, field, defect, n in rows} == dict(facts.defects)


@pytest.mark.slow
def test_models_data_quality_matches_the_files(real_built: Settings, facts: Facts) -> None:
    rows = query(
        real_built,
        "select record_type, field, defect, defect_count, records from dbt_analysis.data_quality"
        " where batch_id = 1 and record_type <> 'file' and field <> '(all fields)'",
    )
    records = {
        "user": facts.totals["users"],
        "program": facts.totals["programs"],
        "task": facts.totals["tasks"],
    }
    assert {(e, f, d): (n, total) for e, f, d, n, total in rows} == {
        k: (n, records[k[0]]) for k, n in facts.defects.items()
    }


CLEANED_TOTALS = """
    select (select count(*) from dbt.base), (select count(user_id) from dbt.base),
           (select count(email) from dbt.base), (select count(*) filter (where is_clean) from
             dbt.base),
           (select count(*) from dbt.advocacy_programs), (select sum(total_sales_attributed)
             from dbt.advocacy_programs),
           (select count(*) from dbt.tasks_completed), (select sum(likes) from
             dbt.tasks_completed),
           (select sum(comments) from dbt.tasks_completed), (select sum(shares) from
             dbt.tasks_completed),
           (select sum(reach) from dbt.tasks_completed), (select sum(engagement) from
             dbt.tasks_completed),
           (select count(engagement) from dbt.tasks_completed),
           (select count(*) from dbt_lookup.brand where not is_unknown_brand)
"""
# the totals of json_facts that CLEANED_TOTALS gives, in its order
CLEANED_TOTAL_NAMES = (
    "users",
    "identifiable_users",
    "valid_emails",
    "clean_users",
    "programs",
    "sales",
    "tasks",
    "likes",
    "comments",
    "shares",
    "reach",
    "engagement",
    "tasks_with_known_engagement",
    "brands",
)


@pytest.mark.slow
def test_models_cleaned_totals_match_the_files(real_built: Settings, facts: Facts) -> None:
    totals = facts.totals
    [row] = query(real_built, CLEANED_TOTALS)
    assert row == tuple(totals[name] for name in CLEANED_TOTAL_NAMES)
    assert (totals["users"], totals["programs"], totals["tasks"]) == (10000, 10000, 10000)


@pytest.mark.slow
def test_models_tasks_per_platform_match_the_files(real_built: Settings, facts: Facts) -> None:
    rows = query(real_built, "select platform, count(*) from dbt.tasks_completed group by 1")
    assert dict(rows) == facts.totals["platforms"]
    assert dict(rows) == {"tiktok": 3772, "instagram": 3737, "facebook": 1202, None: 1289}


@pytest.mark.slow
def test_models_engagement_by_platform_sums_the_tasks(real_built: Settings) -> None:
    rows = query(
        real_built,
        """
        select e.platform, e.task_count = t.n and e.likes = t.likes and e.engagement = t.engagement
               and e.reach = t.reach and e.engagement_known = t.known
        from dbt_analysis.engagement_by_platform e
        join (select platform, count(*) n, sum(likes) likes, sum(engagement) engagement,
          sum(reach) reach,
                     count(engagement) known
              from dbt.tasks_completed group by 1) t on t.platform is not distinct from
                e.platform""",
    )
    assert sorted(rows, key=str) == [
        ("facebook", True),
        ("instagram", True),
        ("tiktok", True),
        (None, True),
    ]


@pytest.mark.slow
def test_models_keys_derive_from_file_and_positions(real_built: Settings, facts: Facts) -> None:
    users = query(real_built, "select source_file, user_key from dbt.base")
    assert dict(users) == {name: key(file_key(name)) for name in facts.files}
    programs = query(
        real_built,
        "select p.program_key, b.source_file, p.program_position, p.user_key"
        " from dbt.advocacy_programs p join dbt.base b using (user_key)",
    )
    assert all(
        k == key(file_key(name), position) and user == key(file_key(name))
        for k, name, position, user in programs
    )
    tasks = query(
        real_built,
        "select t.task_key, t.program_key, b.source_file, t.program_position, t.task_position"
        " from dbt.tasks_completed t join dbt.base b using (user_key)",
    )
    assert all(
        k == key(file_key(name), p, t) and program == key(file_key(name), p)
        for k, program, name, p, t in tasks
    )
    assert (len(programs), len(tasks)) == (10000, 10000)


@pytest.mark.slow
def test_models_brand_ids_derive_from_normalised_names(real_built: Settings) -> None:
    rows = query(
        real_built, "select brand_id, brand_normalised, is_unknown_brand from dbt_lookup.brand"
    )
    unknown = [r for r in rows if r[2]]
    assert unknown == [(uuid.UUID(int=0), None, True)]
    assert all(brand_id == key(name) for brand_id, name, is_unknown in rows if not is_unknown)
    dangling = query(
        real_built,
        "select count(*) from dbt.advocacy_programs p"
        " left join dbt_lookup.brand b using (brand_id) where b.brand_id is null",
    )
    assert dangling == [(0,)]


@pytest.mark.slow
def test_models_top_advocates_rank_every_user(real_built: Settings) -> None:
    rows = query(
        real_built,
        "select ranking, count(*), min(rank), bool_and(label is not null),"
        " bool_or(user_id is null) from dbt_analysis.top_advocates group by 1 order by 1",
    )
    assert [
        (r, n >= 25, first, labelled, some_without_id)
        for r, n, first, labelled, some_without_id in rows
    ] == [
        ("engagement", True, 1, True, True),
        ("reach", True, 1, True, True),
        ("sales", True, 1, True, True),
    ]
    [(best_sales,)] = query(
        real_built, "select max(total_sales_attributed) from dbt.advocacy_programs"
    )
    assert query(
        real_built,
        "select value from dbt_analysis.top_advocates where ranking = 'sales' and rank = 1",
    ) == [(best_sales,)]


@pytest.mark.slow
def test_models_every_table_has_rows(real_built: Settings) -> None:
    tables = query(
        real_built,
        "select table_schema, table_name from information_schema.tables"
        " where table_schema in ('dbt', 'dbt_lookup', 'dbt_analysis') order by 1, 2",
    )
    assert [name for _, name in tables] == [
        "advocacy_programs",
        "base",
        "tasks_completed",
        "data_quality",
        "data_quality_summary",
        "engagement_by_brand",
        "engagement_by_join_month",
        "engagement_by_platform",
        "engagement_by_program",
        "engagement_by_user",
        "ingest_batches",
        "overview",
        "sales_attribution",
        "sales_outliers",
        "top_advocates",
        "brand",
    ]
    empty = [
        name
        for schema, name in tables
        if query(real_built, f"select count(*) from {schema}.{name}") == [(0,)]
    ]
    assert empty == []


def test_json_facts_sales_are_exact_decimals(facts: Facts) -> None:
    assert isinstance(facts.totals["sales"], Decimal)
    assert Counter(type(d["advocacy_programs"]).__name__ for d in facts.files.values()) == Counter(
        {"list": 10000}
    )


@pytest.mark.slow
def test_models_every_numeric_column_declares_precision_and_scale(real_built: Settings) -> None:
    """Money and every measure derived from it are numeric(p, s), never bare numeric (dbt warned
    of unintended rounding); the program's sales are numeric(18, 2), cents."""
    bare = query(
        real_built,
        "select table_schema || '.' || table_name || '.' || column_name"
        " from information_schema.columns where data_type = 'numeric'"
        " and table_schema like 'dbt%%' and numeric_precision is null",
    )
    assert bare == []
    assert query(
        real_built,
        "select table_schema, table_name, numeric_precision, numeric_scale"
        " from information_schema.columns where column_name = 'total_sales_attributed'"
        " order by 1, 2",
    ) == [
        ("dbt", "advocacy_programs", 18, 2),
        ("dbt_analysis", "engagement_by_program", 18, 2),
        ("dbt_analysis", "sales_outliers", 18, 2),
        ("dbt_staging", "int_programs", 18, 2),
    ]
