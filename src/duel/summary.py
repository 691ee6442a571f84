"""Human-readable summaries for the terminal: what a run did, and how to look at the result."""

from __future__ import annotations

from duel.load import IngestResult
from duel.pipeline import RunOutcome
from duel.settings import DEFAULT_PG, DEMO_DATABASE, Settings


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items()))


def render_ingest(result: IngestResult) -> str:
    lines = [
        f"batch {result.batch_id} from {result.source}",
        f"  files read   {result.files_read:>9,}",
        f"  documents    {result.files_seen:>9,}",
        f"  loaded       {result.loaded:>9,}  (repaired {result.repaired:,})",
        f"  unchanged    {result.unchanged:>9,}"
        + (f"  ({_reasons(result.unchanged_reasons)})" if result.unchanged_reasons else ""),
        f"  quarantined  {result.quarantined:>9,}"
        + (f"  ({_reasons(result.quarantine_reasons)})" if result.quarantine_reasons else ""),
        f"  skipped      {result.skipped:>9,}"
        + (f"  ({_reasons(result.skip_reasons)})" if result.skip_reasons else ""),
    ]
    if result.objects_listed is not None:
        read = result.objects_read or 0
        lines.append(
            f"  objects      {result.objects_listed:>9,}  listed, {read:,} read"
            + (
                f" ({result.objects_listed - read:,} unchanged by ETag and size: not read)"
                if read < result.objects_listed
                else ""
            )
        )
    if result.full:
        lines.append(
            f"  deleted      {result.deleted:>9,}"
            "  (a complete dump: current documents it did not hold)"
        )
    if (withheld := result.deletes_withheld).withheld:
        lines.append(
            f"  withheld     {withheld.withheld:>9,}  (not deleted though absent: "
            f"{withheld.unidentified:,} quarantined document(s) of this dump could not be "
            "identified and may be any of them; a complete dump without them deletes them)"
        )
    if result.keyless:
        lines.append(
            f"  keyless      {result.keyless:>9,}"
            "  (loaded with no usable key: identified by content)"
        )
    if result.quarantined:
        # a query for the user to run, printed, never executed here
        hint = f"select * from raw.quarantine where batch_id = {result.batch_id};"  # noqa: S608
        lines.append(f"  quarantined files: {hint}")
    return "\n".join(lines)


def connection_help(settings: Settings) -> str:
    return "\n".join(
        [
            "connect:",
            f"  psql     psql -h {settings.pg_host} -p {settings.pg_port} -U {settings.pg_user} "
            f"{settings.pg_database}",
            f"  pgAdmin  host {settings.pg_host}, port {settings.pg_port}, maintenance database "
            f"{settings.pg_database}, username {settings.pg_user}",
            f"  password {_password(settings)}",
            "  schemas  raw (as loaded), dbt (base, advocacy_programs, tasks_completed), "
            "dbt_lookup (brand), dbt_analysis (overview, reports)",
        ]
    )


def _password(settings: Settings) -> str:
    if settings.pg_password == DEFAULT_PG["PGPASSWORD"]:
        return (
            f"{settings.pg_password} (the default; to change it set PGPASSWORD and run "
            "`duel db password`, see the README)"
        )
    return f"the one in PGPASSWORD (from the {settings.origin('PGPASSWORD')})"


def data_line(settings: Settings, demo: bool) -> str:
    """Which data this is, and where it went: the demo is said to be the demo."""
    if demo:
        other = (
            DEFAULT_PG["PGDATABASE"]
            if settings.pg_database == DEMO_DATABASE
            else "another database"
        )
        return (
            f"data:    the DEMO (made by `duel generate`), in database {settings.pg_database}; "
            f"a real dump goes to {other}"
        )
    return f"data:    in database {settings.pg_database}"


def render_run(settings: Settings, outcome: RunOutcome) -> str:
    used = outcome.settings or settings
    steps = [f"  {step.name:<10} {step.seconds:>6.1f}s  {step.detail}" for step in outcome.steps]
    lines = [render_ingest(outcome.ingest), "steps:", *steps]
    if outcome.nothing_changed:
        line = (
            f"nothing changed: the models of the build of {outcome.last_build} still hold; "
            "its report and exports are written again (out/ held another database's, or none)"
            if outcome.outputs_rewritten
            else f"nothing changed: the models, report and exports of the build of "
            f"{outcome.last_build} still hold (duel run --force rebuilds them)"
        )
        repeated = outcome.ingest.quarantined  # a run with nothing new quarantines only repeats
        if repeated == 1:
            line += "; its quarantined file repeats a delivery that build counted"
        elif repeated:
            line += f"; its {repeated} quarantined files repeat deliveries that build counted"
        lines.append(line)
    where = (
        [f"server:  {outcome.server.describe()}", data_line(used, outcome.demo)]
        if outcome.server
        else []
    )
    return "\n".join([*lines, *where, connection_help(used)])
