"""Human-readable summaries for the terminal: what a run did, and how to look at the result."""

from __future__ import annotations

from duel.load import IngestResult
from duel.pipeline import RunOutcome
from duel.settings import Settings


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))


def render_ingest(result: IngestResult) -> str:
    lines = [
        f"batch {result.batch_id} from {result.source}",
        f"  files seen   {result.files_seen:>9,}",
        f"  loaded       {result.loaded:>9,}  (repaired {result.repaired:,})",
        f"  unchanged    {result.unchanged:>9,}",
        f"  quarantined  {result.quarantined:>9,}" + (f"  ({_reasons(result.quarantine_reasons)})"
                                                     if result.quarantine_reasons else ""),
        f"  skipped      {result.skipped:>9,}" + (f"  ({_reasons(result.skip_reasons)})"
                                                 if result.skip_reasons else ""),
    ]
    if result.full:
        lines.append(f"  deleted      {result.deleted:>9,}  (a complete dump: current documents it did not hold)")
    if result.keyless:
        lines.append(f"  keyless      {result.keyless:>9,}  (loaded with no usable key: identified by content)")
    if result.quarantined:
        lines.append("  quarantined files: select * from raw.quarantine where batch_id = "
                     f"{result.batch_id};")
    return "\n".join(lines)


def connection_help(settings: Settings) -> str:
    return "\n".join([
        "connect:",
        f"  psql     psql -h {settings.pg_host} -p {settings.pg_port} -U {settings.pg_user} {settings.pg_database}",
        f"  pgAdmin  host {settings.pg_host}, port {settings.pg_port}, maintenance database "
        f"{settings.pg_database}, username {settings.pg_user}",
        "  password PGPASSWORD (the embedded server's local default is in .env.example)",
        "  schemas  raw (as loaded), dbt (base, advocacy_programs, tasks_completed), dbt_lookup (brand),"
        " dbt_analysis (overview, reports)",
    ])


def render_run(settings: Settings, outcome: RunOutcome) -> str:
    steps = [f"  {step.name:<10} {step.seconds:>6.1f}s  {step.detail}" for step in outcome.steps]
    return "\n".join([render_ingest(outcome.ingest), "steps:", *steps, connection_help(settings)])
