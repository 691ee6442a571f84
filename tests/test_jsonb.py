"""duel.jsonb: what Postgres jsonb refuses, checked against the real server."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson
import psycopg
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from duel.jsonb import (
    MAX_DEPTH,
    ORJSON_WRITE_DEPTH,
    content,
    deeper_than,
    number_out_of_range,
    numeric_fits,
)
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


# --- content: what jsonb makes of a document ------------------------------------------------


class _Number(NamedTuple):
    """A JSON number as its parts: `-`, digits before and after the point, an exponent."""

    negative: bool
    whole: str
    fraction: str
    exponent: int | None

    def text(self) -> str:
        point = f".{self.fraction}" if self.fraction else ""
        power = "" if self.exponent is None else f"e{self.exponent}"
        return f"{'-' if self.negative else ''}{self.whole}{point}{power}"

    def respelled(self, how: int) -> _Number:
        """The same value written otherwise (0: a trailing zero after the point, 1: the point
        moved one digit right, the exponent one down; 2: an exponent of 0 added)."""
        if how == 0:
            return self._replace(fraction=self.fraction + "0")
        if how == 1 and self.fraction:
            whole = str(int(self.whole + self.fraction[0]))
            return _Number(self.negative, whole, self.fraction[1:], (self.exponent or 0) - 1)
        return self._replace(exponent=self.exponent or 0)


NUMBER = st.builds(
    _Number,
    st.booleans(),
    st.from_regex(r"0|[1-9][0-9]{0,4}", fullmatch=True),
    st.from_regex(r"[0-9]{0,3}", fullmatch=True),
    st.none() | st.integers(-4, 4),
)
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=4)
VALUE = st.recursive(
    st.none() | st.booleans() | TEXT | NUMBER,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)


def _render(value: Any, style: int, respell: int | None) -> str:
    """`value` as JSON text in a `style` (bit 0: keys in reverse order, bit 1: whitespace
    between tokens, bit 2: non-ASCII escaped), its numbers respelled (`respell`) or not."""
    space = " \r\n " if style & 2 else ""
    if isinstance(value, _Number):
        return (value if respell is None else value.respelled(respell)).text()
    if isinstance(value, list):
        return "[" + f",{space}".join(_render(v, style, respell) for v in value) + "]"
    if isinstance(value, dict):
        keys = list(value)[:: -1 if style & 1 else 1]
        return (
            "{"
            + ",".join(
                f"{space}{json.dumps(k, ensure_ascii=bool(style & 4))}{space}:"
                f"{_render(value[k], style, respell)}"
                for k in keys
            )
            + "}"
        )
    return json.dumps(value, ensure_ascii=bool(style & 4))


@hypothesis_settings(max_examples=300, derandomize=True, deadline=None)
@given(value=VALUE, other=VALUE, styles=st.lists(st.integers(0, 7), min_size=3, max_size=3))
def test_content_is_the_same_exactly_when_postgres_writes_the_jsonb_alike(
    server: psycopg.Connection,  # type: ignore[type-arg]
    value: Any,
    other: Any,
    styles: list[int],
) -> None:
    """jsonb.content, against the server on random documents: the same value written in other
    styles, its numbers respelled three ways (most respellings change what numeric writes: a
    trailing zero is a decimal more), and another value."""
    texts = [_render(value, style, None) for style in styles]
    texts += [_render(value, styles[0], how) for how in range(3)]
    texts.append(_render(other, styles[1], None))
    written = [
        row[0]
        for row in server.execute(
            "select cast(cast(text as jsonb) as text)"
            " from unnest(%s::text[]) with ordinality as texts (text, n) order by n",
            (texts,),
        )
    ]
    ours = [content(text) for text in texts]
    assert [[a == b for b in ours] for a in ours] == [[a == b for b in written] for a in written]
    assert ours[0] == ours[1] == ours[2]


@pytest.mark.parametrize(
    ("one", "another"),
    [
        ("-0", "0"),
        ("-0.00", "0.00"),
        ("-0e5", "0"),
        ("1.50", "1.5"),
        ("1.5e1", "15"),
        ("150e-1", "15"),
        ("1E+2", "100"),
        ("1.0e-2", "0.010"),
        ('{"a": 1, "a": 2}', '{"a": 2}'),
        ('{"a": 1, "a": 2}', '{"a": 1}'),
        ('"\\u00e9\\ud83d\\ude00"', '"\u00e9\U0001f600"'),
        ('{"b": [1, {"c": null}], "a": true}', '{"a":true,"b":[1,{"c":null}]}'),
        ("[1, 2]", "[2, 1]"),
        ('{"a": "1"}', '{"a": 1}'),
    ],
)
def test_content_of_pairs_postgres_writes_alike_or_not(
    server: psycopg.Connection,  # type: ignore[type-arg]
    one: str,
    another: str,
) -> None:
    written = server.execute(
        "select cast(%s::jsonb as text), cast(%s::jsonb as text)", (one, another)
    )
    first, second = written.fetchone()  # type: ignore[misc]
    assert (content(one) == content(another)) == (first == second)
