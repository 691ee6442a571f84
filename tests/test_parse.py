"""The read-and-parse pipeline (duel.parse): the prefetch thread, the chunks, read_chunks."""

from __future__ import annotations

import pytest

from duel.identity import KeyRule
from duel.parse import Outcome, Prefetch, chunks, read_chunks
from duel.sources import SourceFile


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
