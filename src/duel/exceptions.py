"""Errors a user can act on. Each carries a one-line message; the CLI prints it and exits."""

from __future__ import annotations


class DuelError(Exception):
    """Base class: a one-line, user-facing error. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(DuelError):
    """A setting is missing or has a value we cannot use."""


class SourceError(DuelError):
    """The input path does not exist or is not a kind of input we read."""


class DatabaseUnavailable(DuelError):
    """The database cannot be reached (or stopped answering) during a step."""


class SchemaOutdated(DuelError):
    """The database's raw schema was written by an earlier duel and cannot be read as it is."""


class MassDelete(DuelError):
    """A complete (--full) dump would delete too many current documents; nothing was written."""

    def __init__(self, message: str, *, deleting: int, current: int) -> None:
        super().__init__(message)
        self.deleting = deleting
        self.current = current


class ServerError(DuelError):
    """The embedded Postgres server could not be started, stopped or found."""


class LockTimeout(DuelError):
    """Another run holds the ingest lock for longer than the configured timeout."""


class StepFailed(DuelError):
    """A pipeline step (dbt build, report, export) failed; names the step."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step} failed: {message}")
        self.step = step
