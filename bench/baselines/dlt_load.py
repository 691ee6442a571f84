"""dlt loading the same documents into the same Postgres: the off-the-shelf alternative.

    python bench/baselines/dlt_load.py INPUT     # INPUT: a directory of *.json, or a .tar.gz

The files are read and parsed exactly as for the floors (orjson, with the naive `}` repair) and
handed to one `dlt.pipeline(...).run(...)` with dlt's defaults: destination postgres, a fresh
dataset (schema), table `users`, nested lists becoming child tables as dlt does. dlt's working
directory is a temporary one, removed afterwards. The database comes from the standard PG*
variables. Prints one JSON line on stdout: {"files": N, "seconds": time after imports}.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import dlt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reader import iter_input, parse_naive


def credentials_from_environment() -> str:
    user = quote(os.environ.get("PGUSER", "postgres"), safe="")
    password = quote(os.environ.get("PGPASSWORD", ""), safe="")
    host, port = os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432")
    return (
        f"postgresql://{user}:{password}@{host}:{port}/{os.environ.get('PGDATABASE', 'postgres')}"
    )


def run(source: Path, workdir: str) -> int:
    count = 0

    def documents() -> Iterator[object]:
        nonlocal count
        for _name, data in iter_input(source):
            count += 1
            yield parse_naive(data)

    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt",
        pipelines_dir=workdir,
        destination=dlt.destinations.postgres(credentials=credentials_from_environment()),
        dataset_name="dlt_users",
    )
    pipeline.run(documents(), table_name="users")
    return count


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 1
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as workdir:
        files = run(Path(argv[0]), workdir)
    print(json.dumps({"files": files, "seconds": time.perf_counter() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
