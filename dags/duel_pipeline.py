"""duel_pipeline: the `duel run` stages as an Airflow DAG; the tasks call `duel.pipeline`.

    prepare ─► ingest_shard ×N (mapped) ─► check_shards ─► dbt_build ─► report, export ─► notify

- Every task calls the `duel.pipeline` functions `duel run` calls, and nothing else of duel but
  `duel.notify`: `prepare` the database stage (and `plan_shards`), `ingest_shard` the ingest
  stage for one shard, `dbt_build` the transform stage (the production build, as `duel run`:
  models, snapshot, data tests; `duel.pipeline` decides that), `report` and `export` theirs.
- Ingest fans out over N shards of the input (`shards` param, default 4). Each shard is its own
  idempotent batch, so workers share the load and a failed shard retries alone; `check_shards`
  then proves the shards together saw every file of the input, and runs a complete dump's
  deletes. An s3:// input is one batch that reads only new or changed objects (`duel.listing`).
  dbt is one task: per-model Cosmos tasks cost a dbt start-up each (measured ~25 s a model
  here, 11 minutes a run against 77 s); see the README's Airflow section.
- Connection: the PG* variables of the worker's environment, the ones duel, psql and dbt's
  profiles.yml read, else what duel recorded in DUEL_HOME (its server's address; the database
  `prepare` chose for the data); nothing is written here. Input: the run's `data` param, else
  DUEL_DATA.
- Every task retries with exponential backoff, unless its error says a retry cannot help
  (`DuelError.transient` false: a bad setting or input, a refused statement, a refused mass
  delete fail the task at once); the shard check never retries (a count that does not add up
  will not add up on a retry). Failed attempts are announced through `duel.notify`.
- Import does no work beyond reading settings from the environment.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param, dag, task

from duel.settings import Settings, load_settings

if TYPE_CHECKING:
    from duel.objectstore import S3Location


def announce_failure(context: dict[str, Any]) -> None:
    """on_failure_callback: the task failed for good (its last try, or an error no retry can
    mend: fail_fast_unless_transient); the task, its try and its error, via duel.notify."""
    _announce(context, "")


def announce_retry(context: dict[str, Any]) -> None:
    """on_retry_callback: the task failed and will be tried again."""
    _announce(context, ", will retry")


def _announce(context: dict[str, Any], retrying: str) -> None:
    from duel.notify import notify_failure

    ti = context["ti"]
    notify_failure(
        load_settings(),
        step=f"{ti.task_id} (Airflow try {ti.try_number}{retrying})",
        error=str(context.get("exception") or "failed"),
    )


def fail_fast_unless_transient(func: Callable[..., Any]) -> Callable[..., Any]:
    """A duel error that a retry cannot mend (a bad setting or input, a refused statement, a
    refused mass delete) fails the task at once; transient ones (the database unreachable, the
    ingest lock held) go through the retries (`DuelError.transient`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from airflow.exceptions import AirflowFailException

        from duel.exceptions import DuelError

        try:
            return func(*args, **kwargs)
        except DuelError as error:
            if error.transient:
                raise
            raise AirflowFailException(str(error)) from error

    return wrapper


def run_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The run's params (Airflow passes them to every task that asks for `params`)."""
    if params is None:
        raise ValueError("the task was called without the run's params")
    return params


def input_path(params: dict[str, Any]) -> Path | S3Location:
    """The run's input: a local path or an s3:// location (`data` param, else DUEL_DATA)."""
    from duel.objectstore import as_input

    return as_input(str(params["data"] or load_settings().data))


def run_settings(params: dict[str, Any]) -> Settings:
    """The settings of this run: the worker's environment, with the run's document key if given."""
    return load_settings().with_overrides(document_key=params.get("document_key") or None)


@dag(
    dag_id="duel_pipeline",
    schedule=load_settings().schedule,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["duel"],
    params={
        "data": Param(
            "",
            type="string",
            description="Input (.tar.gz, directory, s3://bucket/prefix/, ...); empty: DUEL_DATA",
        ),
        "shards": Param(
            4, type="integer", minimum=1, maximum=256, description="Ingest batches to fan out"
        ),
        "full": Param(
            False,
            type="boolean",
            description="The dump holds every document: delete current documents absent from it",
        ),
        "allow_mass_delete": Param(
            False,
            type="boolean",
            description="With full: allow deleting more than half of the current documents",
        ),
        "allow_new_layout": Param(
            False,
            type="boolean",
            description=(
                "Load a dump whose files moved to another folder depth, or delivered in "
                "another form (files, then NDJSON), as new documents"
            ),
        ),
        "document_key": Param(
            "",
            type="string",
            description=(
                "How documents are identified (e.g. @file,user_id); empty: DUEL_DOCUMENT_KEY"
            ),
        ),
        "dbt_target": Param(
            "",
            type="string",
            description="The profiles.yml output dbt builds on: empty or local (Postgres), spark",
        ),
    },
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": 2.0,  # 20-40 s, then 40-80 s, 80-160 s
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": announce_failure,
        "on_retry_callback": announce_retry,
    },
    doc_md=__doc__,
)
def duel_pipeline() -> None:
    @task
    @fail_fast_unless_transient
    def prepare(params: dict[str, Any] | None = None) -> list[str]:
        """Database up (the embedded one if nothing answers), raw schema in place; plan the shards.
        The database follows the data as in `duel run` (the demo's is duel_demo unless PGDATABASE is
        set) and is recorded in DUEL_HOME, where the later tasks' settings find it."""
        from duel.pipeline import (
            check_input,
            check_layout,
            database_stage,
            plan_shards,
            settings_for_data,
        )

        given = run_params(params)
        data = input_path(given)
        check_input(load_settings(), data)  # a wrong path or bucket: one line, nothing written
        settings, demo = settings_for_data(load_settings(), data)
        database_stage(settings, data, demo)
        if given["shards"] > 1:  # one shard checks the whole dump in its batch (duel.layout)
            check_layout(run_settings(given), data, allow_new_layout=given["allow_new_layout"])
        return plan_shards(data, given["shards"])

    @task
    @fail_fast_unless_transient
    def ingest_shard(shard: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One shard of the ingest stage, as a batch of its own."""
        from duel.pipeline import ingest_stage

        given = run_params(params)
        result = ingest_stage(
            run_settings(given),
            input_path(given),
            shard=shard,
            allow_new_layout=given["allow_new_layout"],
        )
        return dataclasses.asdict(result)

    @task(retries=0)
    def check_shards(
        results: list[dict[str, Any]], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Every file in exactly one shard; then, for a complete dump, the deletes (duel.deletes:
        a refused mass delete fails the run, the shards' loads stay)."""
        from duel.pipeline import check_shards

        given = run_params(params)
        return check_shards(
            run_settings(given),
            input_path(given),
            results,
            full=given["full"],
            allow_mass_delete=given["allow_mass_delete"],
        )

    @task
    @fail_fast_unless_transient
    def dbt_build(params: dict[str, Any] | None = None) -> str:
        from duel.pipeline import transform_stage

        target = (params or {}).get("dbt_target") or None  # empty: the default, Postgres
        return transform_stage(load_settings(), target=target).describe()

    @task
    @fail_fast_unless_transient
    def report() -> str:
        from duel.pipeline import report_stage

        return str(report_stage(load_settings()))

    @task
    @fail_fast_unless_transient
    def export() -> str:
        from duel.pipeline import export_stage

        return str(export_stage(load_settings()).manifest)

    @task
    def notify(summary: dict[str, Any], report_path: str) -> str:
        from duel.notify import notify_success

        delivery = notify_success(load_settings(), summary, attachments=[Path(report_path)])
        return f"email {delivery.email}, webhook {delivery.webhook}"

    summary = check_shards(ingest_shard.expand(shard=prepare()))
    report_path, exported = report(), export()
    summary >> dbt_build() >> [report_path, exported]
    exported >> notify(summary, report_path)


duel_pipeline()
