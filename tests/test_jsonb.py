"""duel.jsonb: what Postgres jsonb refuses, checked against the real server."""

from __future__ import annotations

import json
from typing import Any

import orjson
import psycopg
import pytest

from duel.jsonb import MAX_DEPTH, ORJSON_WRITE_DEPTH, deeper_than, number_out_of_range, numeric_fits
from duel.settings import Settings

# Each limit and one past it, every way a JSON number can reach it.
NUMBERS = [
    "0",
    "-0",
    "1",
    "-1.5",
    "1e400",
    "1E-400",
    "0.5e-3",
    "1" * 131072,
    "1" * 131073,
    "-" + "9" * 131072,
    "-" + "9" * 131073,
    "1" * 131072 + ".5",
    "1" * 131073 + "e-1",
    "1" * 131073 + "e-0",
    "1e131071",
    "1e131072",
    "9.99e131071",
    "0.1e131072",
    "0.1e131073",
    "15e131070",
    "15e131071",
    "0.0001e131075",
    "0.0001e131076",
    "1e+131071",
    "1E+131072",
    "1e-16383",
    "1e-16384",
    "10e-16384",
    "1.5e-16382",
    "1.5e-16383",
    "0.1e-16382",
    "0.1e-16383",
    "1.00e-16383",
    "1.000e-16381",
    "0e-16383",
    "0e-16384",
    "-0.0e-16382",
    "-0.0e-16383",
    "0e-20000",
    "0." + "0" * 16383,
    "0." + "0" * 16384,
    "0." + "1" * 16383,
    "0." + "1" * 16384,
    "1." + "1" * 16384,
    "0e1073741823",
    "0e1073741824",
    "0e00000001073741823",
    "0.0e+1073741823",
    "0e99999999999999999999",
    "1e-1073741823",
    "1e-00016383",
    "1e-00016384",
]


@pytest.fixture(scope="module")
def server(pg_server: Settings) -> psycopg.Connection:  # type: ignore[type-arg]
    with psycopg.connect(**pg_server.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        yield conn


def postgres_accepts(conn: psycopg.Connection, text: str) -> bool:  # type: ignore[type-arg]
    try:
        conn.execute("select %s::jsonb", (text,))
    except psycopg.DataError:  # value overflows numeric format
        return False
    except psycopg.errors.StatementTooComplex:  # stack depth limit exceeded
        return False
    return True


def test_numeric_fits_agrees_with_postgres(server: psycopg.Connection) -> None:  # type: ignore[type-arg]
    verdicts = {
        number[:30] + f"...({len(number)})": (
            numeric_fits(number.encode()),
            postgres_accepts(server, number),
        )
        for number in NUMBERS
    }
    assert {k: v for k, v in verdicts.items() if v[0] != v[1]} == {}
    assert sum(ours for ours, _ in verdicts.values()) == 27  # both sides of each edge are covered


def test_number_out_of_range_finds_the_number_outside_strings() -> None:
    doc = b'{"a": "1e-20000", "b": [1, 2.5, {"c": -1.5E-20000}], "d": 1e-20000}'
    assert number_out_of_range(doc) == b"-1.5E-20000"
    assert number_out_of_range(b'{"a": "1e-20000", "b": "' + b"7" * 20000 + b'"}') is None


def test_orjson_writes_no_deeper_than_deeper_than_assumes() -> None:
    """deeper_than skips its walk when orjson.dumps succeeds: that holds only while orjson
    refuses to write anything deeper than ORJSON_WRITE_DEPTH, itself below MAX_DEPTH."""

    def nested(depth: int) -> list[Any]:
        return json.loads("[" * depth + "]" * depth)  # type: ignore[no-any-return]

    orjson.dumps(nested(ORJSON_WRITE_DEPTH))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(ORJSON_WRITE_DEPTH + 1))
    assert ORJSON_WRITE_DEPTH < MAX_DEPTH
    assert (deeper_than(nested(MAX_DEPTH)), deeper_than(nested(MAX_DEPTH + 1))) == (False, True)


def test_deeper_than_counts_containers() -> None:
    assert (
        deeper_than({}, 0),
        deeper_than({}, 1),
        deeper_than({"a": [[], {"b": []}]}, 3),
        deeper_than({"a": [[], {"b": []}]}, 4),
    ) == (True, False, True, False)


def test_postgres_stores_max_depth_even_with_its_smallest_stack(server: psycopg.Connection) -> None:  # type: ignore[type-arg]
    """The depth limit holds on any Postgres: at the default max_stack_depth (2 MB) jsonb takes
    over 10,000 levels, and at the smallest setting (100 kB) still more than MAX_DEPTH."""
    objects = '{"a":' * (MAX_DEPTH - 1) + "[]" + "}" * (MAX_DEPTH - 1)
    arrays = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    server.execute("set max_stack_depth = '100kB'")
    try:
        assert (postgres_accepts(server, objects), postgres_accepts(server, arrays)) == (True, True)
        assert (
            postgres_accepts(server, '{"a":' * 1000 + "[]" + "}" * 1000) is False
        )  # the setting took
    finally:
        server.execute("reset max_stack_depth")
    assert postgres_accepts(server, "[" * 10_000 + "]" * 10_000) is True
