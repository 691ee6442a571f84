"""Errors a user can act on. Each carries a one-line message; the CLI prints it and exits.

Each also carries its context as attributes (`error.path`, `error.host`, `error.batch`...; all
of it in `error.context`) and says whether a retry can help (`transient`): the DAG retries
transient errors and fails at once on the others (a wrong setting or a bad input will not mend
itself).
"""

from __future__ import annotations

from typing import Any

TERMINAL_SQLSTATE_CLASSES = frozenset({"22", "23", "28", "42"})


def one_line(text: str) -> str:
    """`text` on one line: a character that is not printable (a newline or a terminal escape in a
    file name, say) is written as its escape, `\\n`, `\\x1b`, so an error stays one line that
    says exactly which name."""
    if text.isprintable():  # the common case
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


class DuelError(Exception):
    """Base class: a one-line, user-facing error. `exit_code` is what the CLI exits with."""

    exit_code = 1
    retryable = False  # whether the same call may succeed if retried later (see `transient`)
    # The context an error may carry (None when it does not concern it); every keyword given to
    # the constructor becomes an attribute, these are the common ones.
    path: str | None = None  # the input file, archive or directory
    host: str | None = None  # the database server
    port: int | None = None
    database: str | None = None
    batch: int | None = None  # the raw.batches batch_id
    step: str | None = None  # the pipeline step: ingest, dbt build, report...
    setting: str | None = None  # the variable whose value cannot be used
    reason: str | None = None  # the underlying error's own words (the driver's, the OS's)

    def __init__(self, message: str, **context: Any) -> None:
        message = one_line(message)
        super().__init__(message)
        self.message = message
        self.context = context
        for name, value in context.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return self.message

    @property
    def transient(self) -> bool:
        """Whether a retry can help: the class's `retryable`, or what this error's context says."""
        return self.retryable


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
    def transient(self) -> bool:
        """What this error says: an unreachable endpoint is transient, a missing bucket is not."""
        return self._transient


class DatabaseUnavailable(DuelError):
    """The database cannot be reached (or stopped answering) during a step."""

    retryable = True


class DatabaseMisconfigured(DatabaseUnavailable):
    """The server answered and will not take us as configured: it refused our user or password,
    or the port is held by a program that is not Postgres. A setting must change first."""

    retryable = False


class DatabaseRefused(DuelError):
    """The database answered, and refused a statement (a constraint, disk full, a trigger...).
    Terminal when the same statement is sure to be refused again: a data exception (SQLSTATE
    class 22), an integrity constraint (23), a syntax or access rule (42), an authorization (28);
    anything else (out of resources, a deadlock, an operator or a trigger's refusal) may pass on
    a retry."""

    sqlstate: str | None = None

    def __init__(self, message: str, *, sqlstate: str | None = None, **context: Any) -> None:
        super().__init__(message, sqlstate=sqlstate, **context)

    @property
    def transient(self) -> bool:
        return (self.sqlstate or "")[:2] not in TERMINAL_SQLSTATE_CLASSES


class SchemaOutdated(DuelError):
    """The database's raw schema was written by an earlier duel and cannot be read as it is."""


class MassDelete(DuelError):
    """A complete (--full) dump would delete too many current documents; nothing was written."""

    deleting: int
    current: int

    def __init__(self, message: str, *, deleting: int, current: int, **context: Any) -> None:
        super().__init__(message, deleting=deleting, current=current, **context)


class LayoutChanged(DuelError):
    """A dump's files moved to another folder depth: most of its new documents are current
    documents under another path (duel.layout); nothing was written."""

    moved: int
    checked: int
    new: int

    def __init__(self, message: str, *, moved: int, checked: int, new: int, **context: Any) -> None:
        super().__init__(message, moved=moved, checked=checked, new=new, **context)


class IdentityCollision(DuelError):
    """Two files of a dump are one document by their identity, though under different folders
    that identity leaves out (duel.layout.check_collisions); nothing was written."""


class KeyRuleChanged(DuelError):
    """A dump is keyed by another rule than the database's documents were (DUEL_DOCUMENT_KEY):
    every document it identifies otherwise would be loaded a second time; nothing was written."""


class ServerError(DuelError):
    """The embedded Postgres server could not be started, stopped or found."""


class LockTimeout(DuelError):
    """Another run holds the ingest lock for longer than the configured timeout."""

    retryable = True


class ShardMismatch(DuelError):
    """The shards' batches do not account for exactly the files of the source."""


class StepFailed(DuelError):
    """A pipeline step (dbt build, report, export) failed; names the step."""

    step: str

    def __init__(self, step: str, message: str, **context: Any) -> None:
        super().__init__(f"{step} failed: {message}", step=step, **context)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a stage of `duel run`, with what that stage had committed (a
    KeyboardInterrupt still: the run stops and sends no failure notification)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def file_error(error: OSError) -> str:
    """One line for a folder or file that cannot be used (not writable, disk full...):
    `cannot write or read <file>: <why>`, as every command and stage says it."""
    where = f"{error.filename}: " if error.filename else ""
    return f"cannot write or read {where}{error.strerror or error}"
