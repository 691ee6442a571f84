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
    if result.quarantined:
        lines.append("  quarantined files: select * from raw.quarantine where batch_id = "
                     f"{result.batch_id};")
    return "\n".join(lines)


def connection_help(settings: Settings) -> str:
    return "\n".join([
        "connect:",
        f"  psql  psql \"{settings.url(redact=True)}\"   (password: PGPASSWORD, default in .env.example)",
        f"  pgAdmin  host {settings.pg_host}  port {settings.pg_port}  maintenance db "
        f"{settings.pg_database}  user {settings.pg_user}",
        "  schemas  raw (loaded documents), dbt, dbt_lookup, dbt_analysis",
    ])


def render_run(settings: Settings, outcome: RunOutcome) -> str:
    steps = "  ".join(f"{s.name} {s.seconds:.1f}s" for s in outcome.steps)
    return "\n".join([render_ingest(outcome.ingest), f"steps: {steps}", connection_help(settings)])
