"""The read-and-parse pipeline (duel.parse): the prefetch thread, the chunks, read_chunks."""

from __future__ import annotations

import hashlib

import pytest

from duel.identity import KeyRule
from duel.parse import Outcome, Prefetch, chunks, classify, read_chunks
from duel.sources import SourceFile


def _classify(data: bytes) -> list[Outcome]:
    """`d/u.json`'s outcomes under the rule `@file,user_id`: one, or one per user it holds."""
    rule = KeyRule.parse("@file,user_id")
    got = classify(SourceFile("d/u.json", data, len(data), key_path="u.json"), "safe", rule)
    return got if isinstance(got, list) else [got]


def _split(data: bytes) -> list[tuple[str, str, str | None, bytes | None, object]]:
    """(name, status, key, document, repair) of each of `d/u.json`'s outcomes."""
    return [
        (o.name, o.status, o.key, o.parsed and o.parsed.document, o.parsed and o.parsed.repair)
        for o in _classify(data)
    ]


def test_parse_prefetch_hands_chunks_in_order_and_raises_the_readers_error_in_the_writer() -> None:
    def chunks():
        yield ["a"]
        yield ["b"]
        raise ValueError("archive is corrupt")

    prefetch = Prefetch(chunks())
    stream = iter(prefetch)
    try:
        got = [next(stream), next(stream)]
        with pytest.raises(ValueError, match="archive is corrupt"):
            next(stream)
    finally:
        prefetch.close()
    assert got == [["a"], ["b"]] and not prefetch.thread.is_alive()


def test_parse_prefetch_close_stops_the_reader_and_closes_its_source() -> None:
    """A writer that fails mid-batch closes the prefetch: the reader thread ends, and the source
    generator is closed (its archive released), though it had more to give."""
    state = {"made": 0, "closed": False}

    def endless():
        try:
            while True:
                state["made"] += 1
                yield [state["made"]]
        finally:
            state["closed"] = True

    prefetch = Prefetch(endless(), depth=2)
    first = next(iter(prefetch))
    prefetch.close()
    assert first == [1] and not prefetch.thread.is_alive() and state["closed"]
    assert state["made"] <= 4  # at most the queue's depth and one in hand beyond what was taken


def test_parse_chunks_start_small_and_double_up_to_the_size() -> None:
    outcomes = [Outcome(f"f{i}", "clean", 1) for i in range(3000)]
    sizes = [len(chunk) for chunk in chunks(outcomes, 1200)]
    assert sizes == [500, 1000, 1200, 300]


def test_parse_read_chunks_keeps_order_and_only_what_keep_accepts() -> None:
    files = [SourceFile(f"u{i}.json", b'{"i": %d}' % i, 8, key_path=f"u{i}.json") for i in range(7)]
    with read_chunks(
        files,
        "safe",
        KeyRule.parse("@file"),
        workers=0,
        chunk_rows=2,
        keep=lambda outcome: outcome.name != "u3.json",
    ) as stream:
        got = [[(o.name, o.status, o.key) for o in chunk] for chunk in stream]
    assert got == [
        [("u0.json", "clean", "file:u0.json"), ("u1.json", "clean", "file:u1.json")],
        [("u2.json", "clean", "file:u2.json"), ("u4.json", "clean", "file:u4.json")],
        [("u5.json", "clean", "file:u5.json"), ("u6.json", "clean", "file:u6.json")],
    ]


@pytest.mark.parametrize("workers", [0, 2])
def test_parse_known_files_are_not_parsed_and_keep_their_place(workers: int) -> None:
    """Files the database holds as current versions (the `known` answer) come out as `known`
    outcomes with their key and the version's hash, unparsed, in file order among the parsed
    ones, a JSON array's elements included; a file whose bytes hold its current version's
    content in other bytes (an alias: the answer is another hash) carries both hashes; a file
    keyed by its content is never asked about."""
    import hashlib

    files = [
        SourceFile("d/a.json", b'{"v": 1}', 8, key_path="a.json"),
        SourceFile("d/b.json", b'[{"v": 2}, {"v": 3}]', 20, key_path="b.json"),
        SourceFile("d/.DS_Store", size=3, skip_reason="macos-metadata"),
        SourceFile("d/c.json", b'{"v": 4}', 8, key_path="c.json"),
        SourceFile("d/e.ndjson:1", b'{"v": 5}', 8),
    ]
    asked: list[list[tuple[str, str]]] = []

    def known(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        asked.append(pairs)
        return {
            (key, sha): sha if key == "file:a.json" else "v" * 64
            for key, sha in pairs
            if key in ("file:a.json", "file:c.json")
        }

    with read_chunks(
        files, "safe", KeyRule.parse("@file"), workers=workers, chunk_rows=10, known=known
    ) as stream:
        got = [
            (o.name, o.status, o.key, o.sha256, o.bytes_sha256, o.parsed is None)
            for chunk in stream
            for o in chunk
        ]
    a_sha, c_sha = (hashlib.sha256(files[n].data or b"").hexdigest() for n in (0, 3))
    b0, b1, e = (
        "content:" + hashlib.sha256(text).hexdigest()
        for text in (b'{"v": 2}', b'{"v": 3}', b'{"v": 5}')
    )
    assert [row[:3] + row[5:] for row in got] == [
        ("d/a.json", "known", "file:a.json", True),
        ("d/b.json[0]", "clean", b0, False),
        ("d/b.json[1]", "clean", b1, False),
        ("d/.DS_Store", "skipped", None, True),
        ("d/c.json", "known", "file:c.json", True),
        ("d/e.ndjson:1", "clean", e, False),
    ]
    # a.json is its version's bytes; c.json holds version "vvv..." in other bytes
    assert [(row[3], row[4]) for row in got if row[1] == "known"] == [
        (a_sha, None),
        ("v" * 64, c_sha),
    ]
    assert asked == [
        [
            (f"file:{f.key_path}", hashlib.sha256(f.data or b"").hexdigest())
            for f in files[:4]
            if f.key_path
        ]
    ]


def test_parse_an_array_keeps_each_users_bytes_as_written() -> None:
    # each element is its own text in the file, never parsed and written again: a fraction
    # past a double's digits, an integer past 64 bits, 1e400 and nesting past orjson's writer
    # (which failed the batch with a traceback) all load as written
    rule = KeyRule.parse("@file,user_id")
    deep = b"[" * 300 + b"]" * 300
    elements = [
        b'{"user_id": "a", "s": 0.004999999999999999999, "l": 18446744073709551616123}',
        b'{"user_id": "b", "x": 1e400}',
        b'{"user_id": "c", "deep": ' + deep + b"}",
    ]
    data = b"\xef\xbb\xbf[\n  " + b",\n  ".join(elements) + b"\n]\n"
    got = classify(SourceFile("d/users.json", data, len(data), key_path="users.json"), "safe", rule)
    assert isinstance(got, list)
    assert [(o.name, o.status, o.key) for o in got] == [
        ("d/users.json[0]", "repaired", "user_id:a"),
        ("d/users.json[1]", "repaired", "user_id:b"),
        ("d/users.json[2]", "repaired", "user_id:c"),
    ]
    assert [o.parsed.document if o.parsed else None for o in got] == elements
    # the file's byte order mark is the repair each of its users is recorded with
    assert {str(o.parsed.repair) for o in got if o.parsed} == {
        str({"kind": "encoding", "fixes": ["utf-8-bom"]})
    }


def test_parse_an_array_in_utf16_or_behind_a_comment_loads_its_users_with_the_repair() -> None:
    # both were quarantined whole, every user in them with them: UTF-16 (with its byte order
    # mark, unambiguous) is transcoded, a comment before the array or inside it removed (the
    # lossless fixes, proven), and each user records what its file took
    text = '[{"user_id": "a", "n": 1.50}, {"user_id": "b"}]'
    a, b = b'{"user_id": "a", "n": 1.50}', b'{"user_id": "b"}'
    utf16 = {"kind": "encoding", "fixes": ["utf-16"]}
    assert _split(text.encode("utf-16-le").join([b"\xff\xfe", b""])) == [
        ("d/u.json[0]", "repaired", "user_id:a", a, utf16),
        ("d/u.json[1]", "repaired", "user_id:b", b, utf16),
    ]
    commented = ("// exported 2026-12-01\n" + text).encode()
    comment = {"kind": "lossless", "fixes": ["comment"]}
    assert _split(commented) == [
        ("d/u.json[0]", "repaired", "user_id:a", a, comment),
        ("d/u.json[1]", "repaired", "user_id:b", b, comment),
    ]
    both = {"kind": "lossless", "fixes": ["comment", "utf-16"]}
    assert _split(b"\xfe\xff" + ("/* users */ " + text).encode("utf-16-be")) == [
        ("d/u.json[0]", "repaired", "user_id:a", a, both),
        ("d/u.json[1]", "repaired", "user_id:b", b, both),
    ]
    # a user repaired on its own keeps its repair's kind, the file's fix named beside its own
    own = _split(b"\xef\xbb\xbf" + b'[{"user_id": "a",}]')
    assert own == [
        (
            "d/u.json[0]",
            "repaired",
            "user_id:a",
            b'{"user_id": "a"}',
            {"kind": "lossless", "fixes": ["trailing-comma", "utf-8-bom"]},
        )
    ]


def test_parse_an_array_with_a_broken_element_loads_the_others() -> None:
    # a trailing comma (an empty last element) and an element that is no JSON are quarantined
    # alone; the whole file was quarantined, its users with it
    rule = KeyRule.parse("@file,user_id")
    data = b'[{"user_id": "a"}, {"user_id": "b", oops}, {"user_id": "c"},]'
    got = classify(SourceFile("d/users.json", data, len(data), key_path="users.json"), "safe", rule)
    assert isinstance(got, list)
    assert [(o.name, o.status) for o in got] == [
        ("d/users.json[0]", "clean"),
        ("d/users.json[1]", "quarantined"),
        ("d/users.json[2]", "clean"),
        ("d/users.json[3]", "quarantined"),
    ]
    assert [o.parsed.reason for o in got if o.parsed and o.status == "quarantined"] == [
        "repair-incomplete",
        "empty",
    ]
    # one that cannot be split (cut short) is one file, and none of its users: unidentified
    cut = classify(SourceFile("d/u.json", data[:30], 30, key_path="u.json"), "safe", rule)
    assert isinstance(cut, Outcome) and cut.status == "quarantined"
    assert cut.key == "content:" + hashlib.sha256(data[:30]).hexdigest()


def test_parse_an_array_element_that_is_no_user_costs_the_others_nothing() -> None:
    # [user, 42, user] in one .json: the two users load, 42 is quarantined on its own (named by
    # its place, its bytes kept); the whole file was quarantined as not-an-object
    rule = KeyRule.parse("@file,user_id")
    data = b'[{"user_id": "a"}, 42, {"user_id": "b"}]'
    got = classify(SourceFile("d/users.json", data, len(data), key_path="users.json"), "safe", rule)
    assert isinstance(got, list)
    assert [(o.name, o.status, o.key, o.content) for o in got] == [
        ("d/users.json[0]", "clean", "user_id:a", None),
        ("d/users.json[1]", "quarantined", "content:" + hashlib.sha256(b"42").hexdigest(), b"42"),
        ("d/users.json[2]", "clean", "user_id:b", None),
    ]
    assert got[1].parsed is not None and got[1].parsed.reason == "not-an-object"
    # an array with no user in it is one file that is not a user
    none = classify(SourceFile("d/n.json", b"[1, 2]", 6, key_path="n.json"), "safe", rule)
    assert isinstance(none, Outcome) and (none.status, none.parsed and none.parsed.reason) == (
        "quarantined",
        "not-an-object",
    )


def test_parse_an_array_inside_an_array_is_no_user_and_is_not_split_again() -> None:
    # [[[...[{user}]...]]] 500 deep, beside a user: the whole batch failed with a RecursionError
    # (each element was split again); an element that is an array is quarantined on its own
    rule = KeyRule.parse("@file,user_id")
    deep = b"".join(b'[{"user_id": "u%d"},' % i for i in range(500)) + b'{"user_id": "z"}'
    data = b'[{"user_id": "a"}, ' + deep + b"]" * 500 + b"]"
    got = classify(SourceFile("d/deep.json", data, len(data), key_path="deep.json"), "safe", rule)
    assert isinstance(got, list)
    assert [(o.name, o.status, o.parsed and o.parsed.reason) for o in got] == [
        ("d/deep.json[0]", "clean", None),
        ("d/deep.json[1]", "quarantined", "not-an-object"),
    ]
    assert got[1].key == "content:" + hashlib.sha256(got[1].content or b"").hexdigest()


def test_parse_an_array_behind_a_comment_that_cannot_be_split_is_unidentified() -> None:
    # a file opening an array holds users of its own: quarantined whole, it is none of them, so
    # a complete dump holding it withholds its deletes; a comment before the `[` made it the
    # file's own identity, and a `--full` delivery deleted its users
    rule = KeyRule.parse("@file,user_id")
    for data in (
        b'// the users\n[{"user_id": "a"}, {"user_id": "b", "x": NaN}',
        b'/* users */ # and more\n  [{"user_id": "a"}, {"user_id": "b"',
        '// users\n[{"user_id": "a"'.encode("utf-16"),
    ):
        got = classify(SourceFile("d/arr.json", data, len(data), key_path="arr.json"), "safe", rule)
        assert isinstance(got, Outcome) and got.status == "quarantined"
        assert got.key == "content:" + hashlib.sha256(data).hexdigest()
    one = b'// one user\n{"user_id": "a", "x": NaN}'
    single = classify(SourceFile("d/u.json", one, len(one), key_path="u.json"), "safe", rule)
    assert isinstance(single, Outcome) and single.key == "file:u.json"  # a user's own file


def test_parse_an_object_wrapping_a_list_of_users_loads_each_user() -> None:
    # {"users": [...]} (an API's export) was loaded as one user with every field missing, its
    # users in no table: it is split as a top-level array is, each user its own bytes
    a, b = b'{"user_id": "a", "n": 1.50}', b'{"user_id": "b"}'
    assert _split(b'{"users": [' + a + b", " + b + b"]}") == [
        ("d/u.json[0]", "clean", "user_id:a", a, None),
        ("d/u.json[1]", "clean", "user_id:b", b, None),
    ]
    # whitespace anywhere, any member name that is no user field, an element that is no user
    # quarantined alone; the file's byte order mark recorded on each user
    spaced = b'\xef\xbb\xbf\n{ "data" :\n  [\n ' + a + b",\n 42 ]\n}\n"
    assert _split(spaced) == [
        ("d/u.json[0]", "repaired", "user_id:a", a, {"kind": "encoding", "fixes": ["utf-8-bom"]}),
        ("d/u.json[1]", "quarantined", "content:" + hashlib.sha256(b"42").hexdigest(), None, None),
    ]
    # a comment before it: split once the lossless fixes made it JSON, each user recording them
    assert _split(b'// export\n{"users": [' + a + b"]}") == [
        ("d/u.json[0]", "repaired", "user_id:a", a, {"kind": "lossless", "fixes": ["comment"]}),
    ]


def test_parse_an_object_that_is_not_only_a_list_of_users_is_one_user() -> None:
    # a user whose one field is a list of objects, under its name or another (its programs'
    # list renamed: they have no user field); a list whose first element is no user; a second
    # member beside the list: each is one document, keyed by its file, as before
    for data in (
        b'{"advocacy_programs": [{"brand": "Acme"}]}',
        b'{"programs": [{"brand": "Acme", "tasks_completed": []}]}',
        b'{"users": [1, {"user_id": "a"}]}',
        b'{"users": [{"user_id": "a"}], "total": 1}',
        b'{"users": []}',
    ):
        assert _split(data) == [("d/u.json", "clean", "file:u.json", data, None)]
    # broken (NaN is no JSON), the renamed list is not split either: its programs are no users
    broken = b'{"programs": [{"brand": "Acme"}, {"brand": NaN}]}'
    assert [(name, status) for name, status, *_ in _split(broken)] == [("d/u.json", "quarantined")]


def test_parse_an_object_wrapping_users_that_cannot_be_split_is_unidentified() -> None:
    # cut short inside its list: quarantined whole, and none of its users (as an array is), so a
    # complete dump holding it withholds its deletes; inside an array it is no user, on its own
    cut = b'{"users": [{"user_id": "a"}, {"user_id": "b"'
    [(name, status, key, _, _)] = _split(cut)
    assert (name, status, key) == (
        "d/u.json",
        "quarantined",
        "content:" + hashlib.sha256(cut).hexdigest(),
    )
    inner = b'{"users": [{"user_id": "a"}]}'
    [wrapped] = _classify(b"[" + inner + b"]")
    assert wrapped.parsed is not None
    assert (wrapped.name, wrapped.status, wrapped.key) == (
        "d/u.json[0]",
        "quarantined",
        "content:" + hashlib.sha256(inner).hexdigest(),
    )
    assert (wrapped.parsed.reason, wrapped.parsed.detail) == (
        "not-an-object",
        'top level is an object holding a list of users under "users"',
    )
