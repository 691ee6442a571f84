"""The old notebook's load, re-implemented step for step as it did it (it is the baseline).

    python bench/baselines/notebook.py INPUT     # INPUT: a directory of *.json, or a .tar.gz

1. A .tar.gz is first extracted to a temporary directory (the notebook worked on the extracted
   `mixed/` folder); the extraction is part of the time.
2. Every `*.json` file is read and parsed with the standard `json` module; when that fails, the
   notebook's naive repair: append the missing `}` and parse again.
3. Each record is flattened on its own with `pandas.json_normalize`, `record_path` the tasks
   under the programs, the user and program fields as `meta`; the frames are concatenated.
4. One `DataFrame.to_sql(..., method="multi")` through SQLAlchemy (psycopg2) into Postgres,
   replacing the table, keyed by the pandas index, with no chunksize.

The database comes from the standard PG* variables. Prints one JSON line on stdout:
{"files": N, "rows": R, "seconds": time after imports}.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import URL, create_engine

META = [
    "user_id",
    "name",
    "email",
    "instagram_handle",
    "tiktok_handle",
    "joined_at",
    ["advocacy_programs", "program_id"],
    ["advocacy_programs", "brand"],
    ["advocacy_programs", "total_sales_attributed"],
]


def load_record(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text + "}")


def normalise(records: list[dict]) -> pd.DataFrame:
    frames = []
    for record in records:
        frames.append(
            pd.json_normalize(
                record,
                record_path=["advocacy_programs", "tasks_completed"],
                meta=META,
                errors="ignore",
            )
        )
    return pd.concat(frames, ignore_index=True)


def engine_from_environment():
    url = URL.create(
        "postgresql+psycopg2",
        username=os.environ.get("PGUSER", "postgres"),
        password=os.environ.get("PGPASSWORD", ""),
        host=os.environ.get("PGHOST"),
        port=int(os.environ.get("PGPORT", "5432")),
        database=os.environ.get("PGDATABASE"),
    )
    return create_engine(url)


def run(folder: str) -> tuple[int, int]:
    paths = sorted(glob.glob(os.path.join(folder, "**", "*.json"), recursive=True))
    records = [load_record(path) for path in paths]
    frame = normalise(records)
    frame.to_sql("user_tasks", engine_from_environment(), if_exists="replace", method="multi")
    return len(paths), len(frame)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 1
    started = time.perf_counter()
    source = Path(argv[0])
    if source.is_dir():
        files, rows = run(str(source))
    else:
        with tempfile.TemporaryDirectory(prefix="notebook-") as folder:
            with tarfile.open(source) as archive:
                archive.extractall(folder, filter="data")
            files, rows = run(folder)
    print(json.dumps({"files": files, "rows": rows, "seconds": time.perf_counter() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
