"""duel.lossless: the syntax-only repair, and the proof that it changed no key or value."""

from __future__ import annotations

import pytest

from duel.lossless import NotLossless, prove, repair, tokens


def test_tokens_covers_the_text_or_is_none() -> None:
    assert tokens('{"a": [1, -2.5e3, true], // c\n}') == [
        "{",
        '"a"',
        ":",
        " ",
        "[",
        "1",
        ",",
        " ",
        "-2.5e3",
        ",",
        " ",
        "true",
        "]",
        ",",
        " ",
        "// c",
        "\n",
        "}",
    ]
    assert [tokens(text) for text in ('{"a": yes}', '{"a": "open', "/* open", "[1.]", "[NaN]")] == [
        None
    ] * 5


@pytest.mark.parametrize(
    ("text", "repaired", "fixes"),
    [
        ('{"a": 1,}', '{"a": 1}', ["trailing-comma"]),
        ('{"a": [1, {},\n ]\t,\n}', '{"a": [1, {}\n ]\t\n}', ["trailing-comma"]),
        ('{"a": 1 // one\n}', '{"a": 1 \n}', ["comment"]),
        ('# header\n{"a": 1}', '\n{"a": 1}', ["comment"]),
        ('{"a": /* x */ 1}', '{"a":   1}', ["comment"]),
        ('{"a": 1/**/}', '{"a": 1 }', ["comment"]),
        ("{'a': 'b'}", '{"a": "b"}', ["single-quotes"]),
        (
            "{'a': 'it\\'s \"q\" \\u00e9\\n'}",
            '{"a": "it\'s \\"q\\" \\u00e9\\n"}',
            ["single-quotes"],
        ),
        ('{"a":\u00a0\u2028\f1}', '{"a": 1}', ["whitespace"]),
        ('\ufeff{"a": 1}', ' {"a": 1}', ["whitespace"]),
        (
            "{'a': [1, 2,], # c\n}",
            '{"a": [1, 2] \n}',
            ["comment", "single-quotes", "trailing-comma"],
        ),
    ],
)
def test_repair_applies_only_lossless_fixes(text: str, repaired: str, fixes: list[str]) -> None:
    assert repair(text) == (repaired, fixes)
    assert prove(text, repaired) == fixes


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',  # nothing to fix
        '{"a": yes}',  # an unquoted word
        "[,]",
        "[1,,2]",
        '{"a": 1,,}',
        '{,"a": 1}',  # a comma after nothing is not trailing
    ],
)
def test_repair_declines_what_it_cannot_fix_losslessly(text: str) -> None:
    assert repair(text) is None


@pytest.mark.parametrize(
    ("original", "repaired"),
    [
        ('{"a": 1,}', '{"a": 2}'),  # a value changed
        (
            '{"a": 1,}',
            '{"a": 1.0}',
        ),  # the same number, written otherwise: jsonb keeps the text's scale
        ('{"a": 1, "b": 2,}', '{"b": 2, "a": 1}'),  # members reordered
        ('{"a": 1, "a": 2,}', '{"a": 2}'),  # a duplicate dropped
        ('{"a": [1, 2,],}', '{"a": [1, 2, 3]}'),  # an element added
        ('{"a": [1 2]}', '{"a": [1, 2]}'),  # a comma inserted: [12] was as likely
        ('{"a": [,]}', '{"a": []}'),  # an empty element dropped
        ("{'a': 'x',}", '{"a": "y"}'),
        ('{"a": 1,}', '{"a": 1, "b": null}'),
        ('{"a": 1,}', '{"a": 1} {"b": 2}'),  # not JSON
        ('{"a": 1, // c\n}', '{"a": "1"}'),  # a number became a string
        ('{"a": null,}', '{"a": false}'),
        ('{"a": NaN}', '{"a": null}'),  # the original is not JSON but for syntax
    ],
)
def test_prove_refuses_any_change_of_content(original: str, repaired: str) -> None:
    with pytest.raises(NotLossless):
        prove(original, repaired)


def test_prove_compares_strings_by_value() -> None:
    assert prove('{"\\u0041": "\\u00e9",}', '{"A": "é"}') == ["trailing-comma"]
