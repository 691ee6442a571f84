"""Errors a user can act on. Each carries a one-line message; the CLI prints it and exits.

Each also carries its context as attributes (`context`: the file, host, batch... it concerns)
and says whether a retry can help (`transient`): the DAG retries transient errors and fails at
once on the others (a wrong setting or a bad input will not mend itself).
"""

from __future__ import annotations

from typing import Any

TERMINAL_SQLSTATE_CLASSES = frozenset({"22", "23", "28", "42"})


class DuelError(Exception):
    """Base class: a one-line, user-facing error. `exit_code` is what the CLI exits with."""

    exit_code = 1
    transient = False  # whether the same call may succeed if retried later

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class ConfigError(DuelError):
    """A setting is missing or has a value we cannot use."""


class SourceError(DuelError):
    """The input path does not exist or is not a kind of input we read."""


class ObjectStoreError(DuelError):
    """S3-compatible storage refused or could not be reached: a missing bucket or object, bad
    credentials (terminal), or an endpoint that does not answer, a timeout, throttling or a
    server error (transient: a retry may pass). Context: bucket, key, endpoint."""

    def __init__(self, message: str, *, transient: bool = False, **context: Any) -> None:
        super().__init__(message, **context)
        self._transient = transient

    @property
    def transient(self) -> bool:  # type: ignore[override]
        return self._transient


class DatabaseUnavailable(DuelError):
    """The database cannot be reached (or stopped answering) during a step."""

    transient = True


class DatabaseRefused(DuelError):
    """The database answered, and refused a statement (a constraint, disk full, a trigger...).
    Terminal when the same statement is sure to be refused again: a data exception (SQLSTATE
    class 22), an integrity constraint (23), a syntax or access rule (42), an authorization (28);
    anything else (out of resources, a deadlock, an operator or a trigger's refusal) may pass on
    a retry."""

    def __init__(self, message: str, *, sqlstate: str | None = None, **context: Any) -> None:
        super().__init__(message, sqlstate=sqlstate, **context)
        self.sqlstate = sqlstate

    @property
    def transient(self) -> bool:  # type: ignore[override]
        return (self.sqlstate or "")[:2] not in TERMINAL_SQLSTATE_CLASSES


class SchemaOutdated(DuelError):
    """The database's raw schema was written by an earlier duel and cannot be read as it is."""


class MassDelete(DuelError):
    """A complete (--full) dump would delete too many current documents; nothing was written."""

    def __init__(self, message: str, *, deleting: int, current: int) -> None:
        super().__init__(message, deleting=deleting, current=current)
        self.deleting = deleting
        self.current = current


class ServerError(DuelError):
    """The embedded Postgres server could not be started, stopped or found."""


class LockTimeout(DuelError):
    """Another run holds the ingest lock for longer than the configured timeout."""

    transient = True


class ShardMismatch(DuelError):
    """The shards' batches do not account for exactly the files of the source."""


class StepFailed(DuelError):
    """A pipeline step (dbt build, report, export) failed; names the step."""

    def __init__(self, step: str, message: str, **context: Any) -> None:
        super().__init__(f"{step} failed: {message}", step=step, **context)
        self.step = step
