"""Errors carry their context and say whether a retry can help (the DAG's retries read it)."""

from __future__ import annotations

import pytest

from duel.exceptions import (
    ConfigError,
    DatabaseMisconfigured,
    DatabaseRefused,
    DatabaseUnavailable,
    LockTimeout,
    MassDelete,
    ShardMismatch,
    SourceError,
    StepFailed,
    one_line,
)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (DatabaseUnavailable("down", host="h", port=1), True),
        (DatabaseMisconfigured("wrong password", setting="PGPASSWORD"), False),
        (LockTimeout("held"), True),
        (DatabaseRefused("disk full", sqlstate="53100"), True),
        (DatabaseRefused("deadlock", sqlstate="40P01"), True),
        (DatabaseRefused("duplicate key", sqlstate="23505"), False),
        (DatabaseRefused("a trigger refused", sqlstate="P0001"), True),
        (DatabaseRefused("numeric overflow", sqlstate="22003"), False),
        (DatabaseRefused("no state"), True),
        (ConfigError("bad"), False),
        (SourceError("missing"), False),
        (ShardMismatch("counts"), False),
        (MassDelete("too many", deleting=6, current=10), False),
        (StepFailed("dbt build", "a test failed"), False),
    ],
)
def test_exceptions_say_whether_a_retry_can_help(error: Exception, transient: bool) -> None:
    assert error.transient is transient  # type: ignore[attr-defined]


def test_exceptions_carry_their_context_as_attributes() -> None:
    refused = DatabaseRefused(
        "ingest: refused", sqlstate="23505", host="127.0.0.1", port=5432, step="ingest"
    )
    assert (str(refused), refused.sqlstate, refused.context) == (
        "ingest: refused",
        "23505",
        {"sqlstate": "23505", "host": "127.0.0.1", "port": 5432, "step": "ingest"},
    )
    failed = StepFailed("report", "no such table")
    assert (str(failed), failed.step, failed.context) == (
        "report failed: no such table",
        "report",
        {"step": "report"},
    )
    mass = MassDelete("m", deleting=6, current=10)
    assert (mass.deleting, mass.current, mass.context) == (6, 10, {"deleting": 6, "current": 10})


def test_exceptions_common_context_reads_none_when_not_given() -> None:
    down = DatabaseUnavailable("down", host="db.example", port=5432, step="ingest", path="d.tgz")
    assert (down.host, down.port, down.database, down.step, down.path, down.batch) == (
        "db.example",
        5432,
        None,
        "ingest",
        "d.tgz",
        None,
    )


def test_every_error_message_is_one_line() -> None:
    """A character that is not printable is written as its escape, in the message and str()."""
    error = SourceError("day\n1/caf\u00e9\tu\x1b.json: cannot read it", path="day\n1")
    assert error.message == str(error) == "day\\n1/caf\u00e9\\tu\\x1b.json: cannot read it"
    assert error.path == "day\n1"  # the context keeps the value itself
    assert one_line("plain: as it was") == "plain: as it was"
