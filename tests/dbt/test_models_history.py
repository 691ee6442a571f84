"""The models across deliveries: re-ingesting changes nothing, a changed file moves only its own
rows (keys stay, the snapshot keeps the old version), and an incremental build gives exactly the
tables a full refresh gives.

One database for the module, taken through four builds (see `history`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_port, query
from json_facts import file_key, key
from psycopg import sql

from duel import changes, db, server
from duel.load import ingest
from duel.settings import Settings, load_settings
from duel.transform import BuildResult, build_models

MODELS = (
    "dbt.base",
    "dbt.advocacy_programs",
    "dbt.tasks_completed",
    "dbt_lookup.brand",
    "dbt_snapshots.users_snapshot",
    "dbt_analysis.overview",
    "dbt_analysis.engagement_by_user",
    "dbt_analysis.engagement_by_platform",
    "dbt_analysis.engagement_by_program",
    "dbt_analysis.engagement_by_brand",
    "dbt_analysis.engagement_by_join_month",
    "dbt_analysis.top_advocates",
    "dbt_analysis.sales_attribution",
    "dbt_analysis.sales_outliers",
    "dbt_analysis.data_quality",
    "dbt_analysis.data_quality_summary",
    "dbt_analysis.ingest_batches",
    *(f"dbt_staging.{name}" for name in ("int_task_sums", "int_brand_sums", "int_defect_sums")),
    *(
        f"dbt_staging.{name}__contributions"
        for name in ("int_task_sums", "int_brand_sums", "int_defect_sums")
    ),
)
# the sums kept by difference (dbt/duel/macros/differences.sql), beside their contributions
SUMS = ("dbt_staging.int_task_sums", "dbt_staging.int_brand_sums", "dbt_staging.int_defect_sums")
CHANGED = "mixed/user_0.json"  # gets user_1415's email and a second program with no tasks
EMPTIED = "mixed/user_1.json"  # loses its only program
SHARES_EMAIL = "mixed/user_1415.json"
Tables = dict[str, list[tuple[object, ...]]]


@dataclass(frozen=True)
class History:
    settings: Settings
    first: Tables  # real dump ingested, built
    again: Tables  # the same dump ingested and built once more
    changed: Tables  # two changed files ingested as a new batch, built incrementally
    refreshed: Tables  # then built with --full-refresh
    built: tuple[BuildResult, BuildResult]  # the first build, and the scoped one
    # per sums model, the users whose contributions the incremental build wrote
    recomputed: dict[str, list[tuple[str, int]]]
    # dbt_changes.changed_users after each build: (source file or None for "every user", xid)
    listed: tuple[list[tuple[str | None, int]], ...]
    # the users whose engagement_by_user rows the incremental build wrote
    rewritten: list[tuple[str]]
    # the three files delivered again as they were, base alone built with --full-refresh, then
    # every model built incrementally (each reader takes every user), and then --full-refresh
    alone: Tables
    alone_refreshed: Tables
    alone_keys: list[tuple[str]]  # advocacy_programs' foreign keys then


def tables(settings: Settings) -> Tables:
    return {name: query(settings, f"select t::text from {name} t order by 1") for name in MODELS}


def recomputed_contributions(settings: Settings) -> dict[str, list[tuple[str, int]]]:
    """Per sums model, the source file of every user whose contributions the last build wrote
    (the table's newest row version) and how many rows it wrote for them."""
    return {
        table: query(
            settings,
            f"select b.source_file, count(*)::int from {table}__contributions c"
            " join dbt.base b using (user_key)"
            f" where c.xmin = (select xmin from {table}__contributions order by age(xmin) limit 1)"
            " group by 1 order by 1",
        )
        for table in SUMS
    }


def listed_users(settings: Settings) -> list[tuple[str | None, int]]:
    """The list of changed users (dbt/duel/macros/user_changes.sql): each user's source file
    (None: the row "every user") and the transaction that last listed it."""
    return query(
        settings,
        "select b.source_file, c.changed_at::text::bigint from dbt_changes.changed_users c"
        " left join dbt.base b using (user_key) order by 2, 1",
    )


def changed_delivery(real_dir: Path, target: Path) -> Path:
    (target / "mixed").mkdir(parents=True)
    for name in (CHANGED, EMPTIED, SHARES_EMAIL):
        shutil.copy(real_dir / name, target / name)
    changed = json.loads((real_dir / CHANGED).read_text())
    changed["email"] = json.loads((real_dir / SHARES_EMAIL).read_text())["email"].upper()
    changed["advocacy_programs"].append(
        {
            "program_id": "9f0dde6f-1b3b-4c29-9517-e35e97b477f9",
            "brand": "Brand New Co",
            "tasks_completed": [],
            "total_sales_attributed": 5,
        }
    )
    (target / CHANGED).write_text(json.dumps(changed, indent=4))
    emptied = json.loads((real_dir / EMPTIED).read_text())
    emptied["advocacy_programs"] = []
    (target / EMPTIED).write_text(json.dumps(emptied, indent=4))
    return target


def copied(settings: Settings, name: str) -> Settings:
    """A new database `name`, a copy of settings' database (Postgres' CREATE DATABASE ...
    TEMPLATE)."""
    with db.connect(settings, database="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(settings.pg_database)
            )
        )
    return settings.with_overrides(pg_database=name)


def foreign_keys(settings: Settings, table: str) -> list[tuple[str]]:
    return query(
        settings,
        "select conname from pg_constraint where conrelid = %s::regclass and contype = 'f'"
        " order by 1",
        (table,),
    )


def original_delivery(real_dir: Path, target: Path) -> Path:
    """The files changed_delivery changes, as the real dump has them."""
    (target / "mixed").mkdir(parents=True)
    for name in (CHANGED, EMPTIED, SHARES_EMAIL):
        shutil.copy(real_dir / name, target / name)
    return target


@pytest.fixture(scope="module")
def history(
    pg_server: Settings, real_data: Path, real_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> History:
    settings = pg_server.with_overrides(
        pg_database="duel_dbt_history", out_dir=tmp_path_factory.mktemp("history-out")
    )
    db.ensure_ready(settings)
    ingest(settings, real_data)
    whole = build_models(settings, unit_tests=False)
    first = tables(settings)
    listed = [listed_users(settings)]
    ingest(settings, real_data)
    build_models(settings, unit_tests=False)
    again = tables(settings)
    listed.append(listed_users(settings))
    tested = changes.tested_through(settings)[1]  # its tests read only what changes now
    ingest(settings, changed_delivery(real_dir, tmp_path_factory.mktemp("delivery")))
    scoped = build_models(settings, tests_since=tested, unit_tests=False)
    changed = tables(settings)
    listed.append(listed_users(settings))
    recomputed = recomputed_contributions(settings)
    rewritten = query(
        settings,
        "select b.source_file from dbt_analysis.engagement_by_user e"
        " join dbt.base b using (user_key) where e.xmin ="
        " (select xmin from dbt_analysis.engagement_by_user order by age(xmin) limit 1) order by 1",
    )
    build_models(settings, full_refresh=True, unit_tests=False)
    listed.append(listed_users(settings))
    refreshed = tables(settings)
    # on a copy, so the tests below read this database as the full refresh left it
    copy = copied(settings, "duel_dbt_history_alone")
    ingest(copy, original_delivery(real_dir, tmp_path_factory.mktemp("original")))
    build_models(copy, full_refresh=True, select=["base"], unit_tests=False)
    build_models(copy, unit_tests=False)
    alone = tables(copy)
    build_models(copy, full_refresh=True, unit_tests=False)
    return History(
        settings,
        first,
        again,
        changed,
        refreshed,
        (whole, scoped),
        recomputed,
        tuple(listed),
        rewritten,
        alone,
        tables(copy),
        foreign_keys(copy, "dbt.advocacy_programs"),
    )


@pytest.mark.slow
def test_models_ingest_and_build_twice_changes_nothing(history: History) -> None:
    differing = [name for name in MODELS if history.again[name] != history.first[name]]
    assert differing == [
        "dbt_analysis.ingest_batches"
    ]  # it lists every batch, one that changed nothing too
    assert (
        len(history.again["dbt_analysis.ingest_batches"])
        == len(history.first["dbt_analysis.ingest_batches"]) + 1
    )


@pytest.mark.slow
def test_models_incremental_build_equals_full_refresh(history: History) -> None:
    assert {
        name: history.changed[name] == history.refreshed[name] for name in MODELS
    } == dict.fromkeys(MODELS, True)


@pytest.mark.slow
def test_models_incremental_build_after_a_lone_full_refresh_equals_full_refresh(
    history: History,
) -> None:
    """base rebuilt whole on its own lists "every user": the next incremental build of the models
    that read the list (engagement_by_user, engagement_by_program, the sums, the snapshot) takes
    every user, and advocacy_programs gets its foreign key to the new base back."""
    differing = [name for name in MODELS if history.alone[name] != history.alone_refreshed[name]]
    assert differing == []
    # the three files are back as they were, and so are their users' and programs' measures
    for name in ("dbt_analysis.engagement_by_user", "dbt_analysis.engagement_by_program"):
        assert history.alone[name] == history.first[name], name
    assert history.alone_keys == [
        ("advocacy_programs_brand_id_fkey",),
        ("advocacy_programs_user_key_fkey",),
    ]


@pytest.mark.slow
def test_models_sums_are_kept_by_difference(history: History) -> None:
    """The incremental build of a sums model recomputed the contributions of the users it had
    to (the two changed, and the one sharing an email, whose base row is rewritten) and no
    other: the emptied user's tasks and brands were removed, none written; the others' 9,000
    and more were left as they were (and the sums equal --full-refresh's: above)."""
    assert history.recomputed == {
        # user_0: one platform in one join month; user_1415 likewise, rewritten unchanged
        "dbt_staging.int_task_sums": [(CHANGED, 1), (SHARES_EMAIL, 1)],
        # user_0's brands: its first program's and Brand New Co's
        "dbt_staging.int_brand_sums": [(CHANGED, 2), (SHARES_EMAIL, 1)],
        # each user's record; user_0's two programs in two defect groups, and its task;
        # user_1415's program and task; the emptied user_1 has its record alone
        "dbt_staging.int_defect_sums": [(CHANGED, 4), (EMPTIED, 1), (SHARES_EMAIL, 3)],
    }
    refreshed = history.refreshed["dbt_staging.int_task_sums__contributions"]
    assert len(refreshed) > 9_000


@pytest.mark.slow
def test_models_changed_users_are_listed_by_the_build_that_changed_them(history: History) -> None:
    """dbt_changes.changed_users (macros/user_changes.sql): the first build lists "every user"
    and no user; a build with nothing new lists nothing more; the incremental build lists the
    users whose rows it wrote or deleted (the two changed, the one sharing an email), each
    after the first build, and engagement_by_user rewrote those users' rows and no other; a
    --full-refresh lists "every user" again, after them."""
    first, again, changed, refreshed = history.listed
    [(every, built)] = first
    assert every is None
    assert again == first
    assert changed[0] == first[0]
    # each user dated by the last core model that wrote it (base, then its programs and tasks)
    assert sorted(file for file, _ in changed[1:]) == [CHANGED, EMPTIED, SHARES_EMAIL]
    assert all(xid > built for _, xid in changed[1:])
    assert refreshed[:-1] == changed[1:]
    assert refreshed[-1][0] is None and refreshed[-1][1] > changed[-1][1]
    assert history.rewritten == [(CHANGED,), (EMPTIED,), (SHARES_EMAIL,)]


@pytest.mark.slow
def test_models_scoped_build_leaves_the_views_and_their_tests(history: History) -> None:
    """The scoped build (the last build ran this project) neither recreates the 10 staging and
    intermediate views nor runs their 11 tests; it still equals --full-refresh (above)."""
    whole, scoped = history.built
    assert (whole.counts, whole.scoped, scoped.counts, scoped.scoped) == (
        {"models": 29, "snapshots": 1, "tests": 58},
        False,
        {"models": 19, "snapshots": 1, "tests": 47},
        True,
    )
    # the summary says why the scoped build ran fewer nodes
    assert scoped.describe().startswith("19 models, 1 snapshot, 47 tests built and passed in ")
    assert scoped.describe().endswith(
        " (tests of the rows written since the last build; its views kept)"
    )


@pytest.mark.slow
def test_models_keys_are_identical_after_changes_and_full_refresh(history: History) -> None:
    settings = history.settings
    users = dict(query(settings, "select source_file, user_key from dbt.base"))
    assert len(users) == 10000 and all(
        user_key == key(file_key(name)) for name, user_key in users.items()
    )
    programs = {
        (name, position): program_key
        for program_key, name, position in query(
            settings,
            "select p.program_key, b.source_file, p.program_position"
            " from dbt.advocacy_programs p join dbt.base b using (user_key)",
        )
    }
    assert len(programs) == 10000  # user_1 lost its program, user_0 gained one
    assert (EMPTIED, 1) not in programs and programs[(CHANGED, 2)] == key(file_key(CHANGED), 2)
    assert all(
        program_key == key(file_key(name), position)
        for (name, position), program_key in programs.items()
    )
    brands_before = set(history.first["dbt_lookup.brand"])
    brands_after = set(history.refreshed["dbt_lookup.brand"])
    assert brands_before <= brands_after and len(brands_after - brands_before) == 1  # Brand New Co


@pytest.mark.slow
def test_models_changed_file_moves_only_its_rows(history: History) -> None:
    settings = history.settings
    assert query(
        settings,
        "select source_file, program_count, batch_id from dbt.base"
        " where source_file in (%s, %s) order by 1",
        (CHANGED, EMPTIED),
    ) == [(CHANGED, 2, 3), (EMPTIED, 0, 3)]
    assert query(
        settings,
        "select count(*) from dbt.tasks_completed t join dbt.base b using (user_key)"
        " where b.source_file = %s",
        (EMPTIED,),
    ) == [(0,)]
    assert query(settings, "select count(*) from dbt.base where batch_id <> 1") == [(2,)]


@pytest.mark.slow
def test_models_shared_email_is_flagged_on_both_users(history: History) -> None:
    rows = query(
        history.settings,
        "select source_file, is_duplicate_email, is_clean from dbt.base"
        " where source_file in (%s, %s) order by 1",
        (CHANGED, SHARES_EMAIL),
    )
    assert [(name, duplicate) for name, duplicate, _ in rows] == [
        (CHANGED, True),
        (SHARES_EMAIL, True),
    ]
    assert query(
        history.settings,
        "select count(distinct email) from dbt.base where source_file in (%s, %s)",
        (CHANGED, SHARES_EMAIL),
    ) == [(1,)]


@pytest.mark.slow
def test_models_changed_file_closes_and_opens_a_snapshot_row(history: History) -> None:
    rows = query(
        history.settings,
        """
        select source_file, content_sha256, dbt_valid_to is null, dbt_valid_to =
          lead(dbt_valid_from)
               over (partition by user_key order by dbt_valid_from)
        from dbt_snapshots.users_snapshot where source_file in (%s, %s) order by 1,
          dbt_valid_from""",
        (CHANGED, EMPTIED),
    )
    current = dict(
        query(
            history.settings,
            "select source_name, content_sha256 from raw.current_versions"
            " where source_name in (%s, %s)",
            (CHANGED, EMPTIED),
        )
    )
    assert [(name, is_open, closes_into_next) for name, _, is_open, closes_into_next in rows] == [
        (CHANGED, False, True),
        (CHANGED, True, None),
        (EMPTIED, False, True),
        (EMPTIED, True, None),
    ]
    assert [sha for name, sha, is_open, _ in rows if is_open] == [
        current[CHANGED],
        current[EMPTIED],
    ]
    assert query(
        history.settings, "select count(*), count(dbt_valid_to) from dbt_snapshots.users_snapshot"
    ) == [(10002, 2)]


# --- a list older than the readers can trust: a server of its own ------------------------------


@pytest.fixture
def own_server() -> Iterator[Settings]:
    """An embedded server for this test alone: its transaction counter is moved."""
    home = Path(tempfile.mkdtemp(prefix="duel-xid-", dir="/tmp"))
    home.chmod(0o755)
    settings = load_settings(
        {"PGPORT": str(free_port()), "PGDATABASE": "duel_xid", "DUEL_HOME": str(home / "state")},
        dotenv=None,
    )
    server.start(settings)
    db.ensure_ready(settings)
    yield settings
    server.stop(settings, immediate=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_models_list_older_than_two_to_the_thirty_transactions_takes_every_user(
    own_server: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """A reader compares the 32-bit ids of row versions with its last build's, so it trusts the
    list only within 2^30 transactions of that build (macros/user_changes.sql,
    user_changes_since). Past that it takes every user: here the server's transaction epoch is
    moved on by one (2^32 transactions, pg_resetwal) between two builds, and engagement_by_user
    rewrites every row where the list would have named three users; the tables still equal
    --full-refresh."""
    settings = own_server.with_overrides(out_dir=tmp_path / "out")
    first = tmp_path / "first"
    (first / "mixed").mkdir(parents=True)
    names = {f"mixed/user_{n}.json" for n in range(200)} | {CHANGED, EMPTIED, SHARES_EMAIL}
    for name in names:
        shutil.copy(real_dir / name, first / name)
    ingest(settings, first)
    build_models(settings, unit_tests=False)
    server.stop(settings)
    server._pg("pg_resetwal", "-e", "1", "-D", str(settings.pgdata.resolve()))
    server.start(settings)
    ingest(settings, changed_delivery(real_dir, tmp_path / "changed"))
    build_models(settings, unit_tests=False)
    after = tables(settings)
    newest = query(
        settings,
        "select count(*) filter (where xmin = (select xmin from"
        " dbt_analysis.engagement_by_user order by age(xmin) limit 1)), count(*)"
        " from dbt_analysis.engagement_by_user",
    )
    assert newest == [(len(names), len(names))]
    build_models(settings, full_refresh=True, unit_tests=False)
    refreshed = tables(settings)
    assert [name for name in MODELS if after[name] != refreshed[name]] == []
