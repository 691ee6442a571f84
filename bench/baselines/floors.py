"""The floors: the least any loader must do, timed as a fresh process like every other method.

    python bench/baselines/floors.py read  INPUT   # read every file's bytes (inflating a tar.gz)
    python bench/baselines/floors.py parse INPUT   # ... and parse each with orjson
    python bench/baselines/floors.py copy  INPUT   # ... and one binary COPY of (name, jsonb) rows

The database for `copy` comes from the standard PG* variables. Prints one JSON line on stdout:
{"files": N, "seconds": time after imports}.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reader import iter_input, parse_naive


def floor_read(path: Path) -> int:
    count = 0
    for _name, _data in iter_input(path):
        count += 1
    return count


def floor_parse(path: Path) -> int:
    count = 0
    for _name, data in iter_input(path):
        parse_naive(data)
        count += 1
    return count


def floor_copy(path: Path) -> int:
    import psycopg
    from psycopg import postgres
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class JsonbBytes(Dumper):
        format = Format.BINARY
        oid = postgres.types["jsonb"].oid

        def dump(self, obj: bytes) -> bytes:
            return b"\x01" + obj

    count = 0
    with psycopg.connect("") as conn:
        conn.adapters.register_dumper(bytes, JsonbBytes)
        conn.execute("create table floor_documents (source_name text, document jsonb)")
        with conn.cursor().copy("copy floor_documents from stdin (format binary)") as copy:
            copy.set_types(["text", "jsonb"])
            for name, data in iter_input(path):
                copy.write_row((name, orjson.dumps(parse_naive(data))))
                count += 1
    return count


FLOORS = {"read": floor_read, "parse": floor_parse, "copy": floor_copy}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in FLOORS:
        print(__doc__, file=sys.stderr)
        return 1
    started = time.perf_counter()
    files = FLOORS[argv[0]](Path(argv[1]))
    print(orjson.dumps({"files": files, "seconds": time.perf_counter() - started}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
