"""`airflow dags test duel_pipeline` end to end on the real dataset, against the embedded Postgres.

Run with .venv-airflow's python (`make test-airflow`, called by .ci/run after `make test`). Each
test gives the DAG its own database; failures are made by the database itself (a trigger that
refuses a shard's first batch, or drops one ledger row), not by mocks. Notifications go to a
webhook served by the test, so the callbacks are seen arriving.
"""

from __future__ import annotations

import json
import re
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from airflow_harness import airflow_env, differences, explain, fingerprints, run_airflow, task_tries
from conftest import cli_env, query, run_cli
from dump_forms import readable_as_ndjson

from duel.settings import Settings

pytestmark = pytest.mark.slow
LEDGERS = {
    "raw.batches",
    "raw.batch_files",
    "dbt_staging.stg_batches",
    "dbt_staging.stg_batch_files",
    "dbt_analysis.ingest_batches",
    "raw.model_builds",
}  # they record every run (model_builds: every whole build), so a re-run adds to them
REFUSE_SHARD_ONCE = """
create sequence public.refusals;
create function public.refuse_shard_once() returns trigger language plpgsql as $$
begin
    if new.shard = '1/4' and new.status = 'running' and nextval('public.refusals') = 1 then
        raise exception 'database refuses shard % this once', new.shard;
    end if;
    return new;
end $$;
create trigger refuse_shard_once before insert on raw.batches
    for each row execute function public.refuse_shard_once();
"""
LOSE_LEDGER_ROW = """
create function public.lose_ledger_row() returns trigger language plpgsql as $$
begin
    return case when new.source_name = 'mixed/user_42.json' then null else new end;
end $$;
create trigger lose_ledger_row before insert on raw.batch_files
    for each row execute function public.lose_ledger_row();
"""


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, pg_server: Settings) -> Path:
    """One Airflow metadata DB (sqlite) for the session, migrated once."""
    home = tmp_path_factory.mktemp("airflow")
    result = run_airflow(airflow_env(cli_env(pg_server), home), "db", "migrate")
    assert result.returncode == 0, explain(result)
    return home


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver: its URL and the JSON payloads posted to it."""
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def dags_test(settings: Settings, home: Path, data: Path, *args: str, **extra: str) -> Any:
    """`airflow dags test duel_pipeline` with the DAG pointed at `settings`' database and `data`."""
    env = airflow_env(cli_env(settings, DUEL_DATA=str(data), **extra), home)
    return run_airflow(env, "dags", "test", "duel_pipeline", *args)


def last_run(home: Path) -> list[tuple[Any, ...]]:
    """(task_id, map_index, state, try_number) of the latest DAG run's task instances."""
    tries = task_tries(home)
    latest = max(run_id for run_id, *_ in tries)
    return [tuple(rest) for run_id, *rest in tries if run_id == latest]


def install(settings: Settings, ddl: str) -> None:
    """Run `ddl` in the database (no parameters: PL/pgSQL's own % placeholders stay as written)."""
    with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
        conn.execute(ddl)


def batches(settings: Settings, after: int = 0) -> list[tuple[Any, ...]]:
    return query(
        settings,
        "select shard, status, files_seen, loaded, unchanged from raw.batches"
        " where batch_id > %s order by shard, batch_id",
        (after,),
    )


def test_dag_run_equals_duel_run_and_a_rerun_loads_nothing(
    settings: Settings, airflow_home: Path, real_data: Path, tmp_path: Path
) -> None:
    plain = run_cli(settings, "run", str(real_data))
    assert plain.returncode == 0, plain.stderr[-2000:]
    dag_db = settings.with_overrides(
        pg_database=f"{settings.pg_database}_dag", out_dir=tmp_path / "dag-out"
    )

    first = dags_test(dag_db, airflow_home, real_data)
    assert first.returncode == 0, explain(first)
    assert [(task, state, tries) for task, _, state, tries in last_run(airflow_home)] == [
        ("check_shards", "success", 1),
        ("dbt_build", "success", 1),
        ("export", "success", 1),
        *[("ingest_shard", "success", 1)] * 4,
        ("notify", "success", 1),
        ("prepare", "success", 1),
        ("report", "success", 1),
    ]
    after_first = fingerprints(dag_db)
    assert differences(fingerprints(settings), after_first) == {}
    assert [(shard, status, loaded) for shard, status, _, loaded, _ in batches(dag_db)] == [
        ("0/4", "succeeded", 2498),
        ("1/4", "succeeded", 2498),
        ("2/4", "succeeded", 2502),
        ("3/4", "succeeded", 2502),
    ]
    assert sorted(p.name for p in (tmp_path / "dag-out").iterdir()) == ["exports", "report.html"]
    assert (tmp_path / "dag-out" / "exports" / "manifest.json").is_file()

    second = dags_test(dag_db, airflow_home, real_data)
    assert second.returncode == 0, explain(second)
    assert batches(dag_db, after=4) == [
        ("0/4", "succeeded", 2498, 0, 2498),
        ("1/4", "succeeded", 2498, 0, 2498),
        ("2/4", "succeeded", 2502, 0, 2502),
        ("3/4", "succeeded", 2502, 0, 2502),
    ]
    after_second = fingerprints(dag_db)
    assert (
        differences(
            {k: v for k, v in after_first.items() if k not in LEDGERS},
            {k: v for k, v in after_second.items() if k not in LEDGERS},
        )
        == {}
    )


def test_dag_shard_refused_once_retries_alone_and_announces_it(
    settings: Settings,
    airflow_home: Path,
    real_data: Path,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    install(settings, REFUSE_SHARD_ONCE)
    url, received = webhook
    run = dags_test(
        settings,
        airflow_home,
        real_data,
        "--mark-success-pattern",
        "dbt_build|report|export|notify",
        DUEL_NOTIFY_WEBHOOK=url,
    )
    assert run.returncode == 0, explain(run)
    assert [
        row for row in last_run(airflow_home) if row[0] in ("ingest_shard", "check_shards")
    ] == [
        ("check_shards", -1, "success", 1),
        ("ingest_shard", 0, "success", 1),
        ("ingest_shard", 1, "success", 2),
        ("ingest_shard", 2, "success", 1),
        ("ingest_shard", 3, "success", 1),
    ]
    refused = (
        f"ingest: the database refused the batch (Postgres at 127.0.0.1:{settings.pg_port}, "
        "database "
        f"{settings.pg_database}): database refuses shard 1/4 this once"
    )
    assert query(
        settings, "select shard, status, error from raw.batches order by shard, batch_id"
    ) == [
        ("0/4", "succeeded", None),
        ("1/4", "failed", refused),
        ("1/4", "succeeded", None),
        ("2/4", "succeeded", None),
        ("3/4", "succeeded", None),
    ]
    assert query(settings, "select count(*) from raw.current_versions") == [(10000,)]
    assert [message["duel"] for message in received] == [
        {"status": "failed", "step": "ingest_shard (Airflow try 1, will retry)", "error": refused}
    ]


def test_dag_shards_that_miss_a_file_fail_the_run_and_announce_it(
    settings: Settings,
    airflow_home: Path,
    real_data: Path,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    install(settings, LOSE_LEDGER_ROW)
    url, received = webhook
    run = dags_test(settings, airflow_home, real_data, DUEL_NOTIFY_WEBHOOK=url)
    assert run.returncode == 1, explain(run)
    assert [
        (task, state, tries)
        for task, _, state, tries in last_run(airflow_home)
        if task not in ("ingest_shard", "prepare")
    ] == [
        ("check_shards", "failed", 1),
        ("dbt_build", "upstream_failed", 0),
        ("export", "upstream_failed", 0),
        ("notify", "upstream_failed", 0),
        ("report", "upstream_failed", 0),
    ]
    error = f"the shards' ledger differs from {real_data}: 1 missing (e.g. mixed/user_42.json)"
    assert [message["duel"] for message in received] == [
        {"status": "failed", "step": "check_shards (Airflow try 1)", "error": error}
    ]


def test_dag_refuses_a_repackaged_dump_before_any_shard_loads(
    settings: Settings,
    airflow_home: Path,
    real_data: Path,
    tmp_path: Path,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    """The real dump loaded, then the same files one folder deeper (day2/mixed/...): prepare
    refuses it from the file names (duel.layout), no shard loads, and the failure is announced."""
    assert run_cli(settings, "ingest", str(real_data)).returncode == 0
    wrapped = tmp_path / "day2.tar.gz"
    with tarfile.open(real_data) as source, tarfile.open(wrapped, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            member.name = f"day2/{member.name}"
            target.addfile(member, data)
    before = batches(settings)
    url, received = webhook
    run = dags_test(settings, airflow_home, wrapped, DUEL_NOTIFY_WEBHOOK=url)
    assert run.returncode == 1, explain(run)
    states = {task: (state, tries) for task, _, state, tries in last_run(airflow_home)}
    assert (states["prepare"], states["check_shards"]) == (("failed", 1), ("upstream_failed", 0))
    assert batches(settings) == before == [(None, "succeeded", 10000, 10000, 0)]
    [message] = [message["duel"] for message in received]
    assert (message["status"], message["step"]) == ("failed", "prepare (Airflow try 1)")
    assert message["error"].startswith(
        "refused: 1000 of a sample of 1000 of the 10000 new documents of this dump are current "
        "documents under another folder depth (its 'mixed/user_"
    )  # the example: the sample's first move, whose new key comes first (sampled by md5)


def test_dag_refuses_the_real_dump_delivered_again_as_ndjson_in_each_shard(
    settings: Settings,
    airflow_home: Path,
    real_data: Path,
    real_dir: Path,
    tmp_path: Path,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    """The real dump loaded, then its readable users as one NDJSON file: `prepare` cannot tell
    a change of form from file names (a line's user_id is read with it), so each shard, holding
    a quarter of the lines, refuses its part in its batch (duel.layout.check_form), without
    retrying; none of the users is loaded a second time, and each failure is announced."""
    assert run_cli(settings, "ingest", str(real_data)).returncode == 0
    readable_as_ndjson(real_dir / "mixed", tmp_path / "lines")
    url, received = webhook
    run = dags_test(settings, airflow_home, tmp_path / "lines", DUEL_NOTIFY_WEBHOOK=url)
    assert run.returncode == 1, explain(run)
    assert [(task, state, tries) for task, _, state, tries in last_run(airflow_home)] == [
        ("check_shards", "upstream_failed", 0),
        ("dbt_build", "upstream_failed", 0),
        ("export", "upstream_failed", 0),
        ("ingest_shard", "failed", 1),
        ("ingest_shard", "failed", 1),
        ("ingest_shard", "failed", 1),
        ("ingest_shard", "failed", 1),
        ("notify", "upstream_failed", 0),
        ("prepare", "success", 1),
        ("report", "upstream_failed", 0),
    ]
    assert query(
        settings,
        "select count(*), count(*) filter (where left(document_key, 5) = 'file:') from"
        " raw.current_versions",
    ) == [(10000, 10000)]
    refused = re.compile(
        r"refused: 1000 of a sample of 1000 of the (\d+) new documents of shard \d/4 of this dump "
        r"are users "
        r"delivered before as files of their own \(its 'user_id:"
    )
    new = []
    for message in received:
        assert (message["duel"]["status"], message["duel"]["step"]) == (
            "failed",
            "ingest_shard (Airflow try 1)",
        )
        match = refused.match(message["duel"]["error"])
        assert match is not None, message
        new.append(int(match[1]))
    # the shards' new users add up to the dump's: the 5,441 distinct usable user_ids
    assert (len(new), sum(new)) == (4, 5441)
