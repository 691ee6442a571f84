"""The benchmark harness: `duel ingest` against the old notebook's method, dlt, and the floors.

    python bench/run.py [--quick] [--sizes 10000,100000,1000000] [--reps N]

For each size, one after the other, and interleaved over the repetitions (the method order
rotates each repetition), every method runs as a fresh process on the same input and a fresh
database on one dedicated bench server (`duel db start`, DUEL_HOME=/tmp/duel-bench, port 5506):

    duel ingest     the real CLI from .venv, start-up included
    notebook        bench/baselines/notebook.py (the old notebook's method; not above 100,000)
    dlt             bench/baselines/dlt_load.py
    floor: read / read+parse / read+parse+COPY      bench/baselines/floors.py

then the end-to-end `duel run` at 10,000 and at 1,000,000, and an incremental `duel run` at
1,000,000 after 1 % of the files changed. Writes bench/results.json, results.md, results.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inputs as bench_inputs
import report
from measure import run_measured

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BASELINES = BENCH / "baselines"
NOTEBOOK_MAX = 100_000
LARGE = 1_000_000
NOTHING_CHANGED, ONE_PERCENT = report.NOTHING_CHANGED, report.ONE_PERCENT


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    heavy: bool = False  # above 10,000 files (and in --quick): once, on the first form (tar.gz)
    max_size: int | None = None


METHODS = (
    Method("duel", "duel ingest"),
    Method(
        "notebook", "notebook (json + json_normalize + to_sql)", heavy=True, max_size=NOTEBOOK_MAX
    ),
    Method("dlt", "dlt", heavy=True),
    Method("floor_read", "floor: read"),
    Method("floor_parse", "floor: read+parse"),
    Method("floor_copy", "floor: read+parse+COPY"),
)


@dataclass
class Bench:
    """Where things are and how to reach the server."""

    duel: Path
    python: Path
    work: Path
    port: int
    counter: int = 0
    log_lines: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        self.log_lines.append(line)
        print(line, file=sys.stderr, flush=True)

    def env(self, database: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": "postgres",
            "PGPASSWORD": "pass",
            "PGDATABASE": database,
            "DUEL_HOME": str(self.work),
            "DUEL_OUT": str(self.work / "out"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
        if os.environ.get("DBT_PROFILES_DIR"):
            env["DBT_PROFILES_DIR"] = os.environ["DBT_PROFILES_DIR"]
        return env

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password="pass",  # noqa: S106  the bench's own throwaway server on loopback
            dbname=database,
            autocommit=True,
        )

    def fresh_database(self, tag: str) -> str:
        self.counter += 1
        name = f"bench_{self.counter}_{tag}"
        with self.admin() as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            conn.execute("checkpoint")

    def settle(self, database: str) -> float:
        """Let a database settle between two deliveries, as a daily pipeline's does in the hours
        between them: the vacuum and statistics autovacuum runs after the last run's writes (a
        full run at 1M leaves millions of new rows, whose first readers would otherwise set their
        hint bits while autovacuum competes for the two cores), then a checkpoint. Untimed by the
        runs; its seconds are returned and reported beside the run that follows."""
        started = time.perf_counter()
        with self.admin(database) as conn:
            conn.execute("vacuum (analyze)")
            conn.execute("checkpoint")
        return time.perf_counter() - started

    def scratch(self) -> Path:
        path = self.work / "scratch"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def server(self, action: str) -> None:
        done = run_measured([str(self.duel), "db", action], self.env("bench"), self.scratch(), 300)
        if done.returncode != 0:
            raise SystemExit(f"duel db {action} failed: {done.stderr.strip()}")
        self.log(done.stdout.strip() or f"duel db {action}")


def portable_paths(value: object) -> object:
    """Paths inside the checkout or beside it (../shared) written relative to the checkout, so the
    committed results name no one machine's directories; the bench work dir stays absolute."""
    if isinstance(value, dict):
        return {key: portable_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [portable_paths(item) for item in value]
    if isinstance(value, (str, Path)) and str(value).startswith(str(REPO.parent) + os.sep):
        return os.path.relpath(value, REPO)
    return value


def command(bench: Bench, key: str, path: Path) -> list[str]:
    python = str(bench.python)
    return {
        "duel": [str(bench.duel), "ingest", str(path), "--json"],
        "notebook": [python, str(BASELINES / "notebook.py"), str(path)],
        "dlt": [python, str(BASELINES / "dlt_load.py"), str(path)],
        "floor_read": [python, str(BASELINES / "floors.py"), "read", str(path)],
        "floor_parse": [python, str(BASELINES / "floors.py"), "parse", str(path)],
        "floor_copy": [python, str(BASELINES / "floors.py"), "copy", str(path)],
    }[key]


def files_counted(key: str, stdout: str) -> int | None:
    try:
        summary = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return summary.get("files_seen" if key == "duel" else "files")


def measure_once(bench: Bench, method: Method, item: bench_inputs.Input, rep: int) -> dict:
    bench_inputs.warm(item.path)
    database = bench.fresh_database(method.key)
    try:
        done = run_measured(
            command(bench, method.key, item.path), bench.env(database), bench.scratch()
        )
    finally:
        bench.drop_database(database)
    files = files_counted(method.key, done.stdout)
    error = None
    if done.returncode != 0:
        error = f"exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1][:300]}"
    elif files != item.size:
        error = f"saw {files} files, expected {item.size}"
    record = {
        "size": item.size,
        "form": item.form,
        "method": method.key,
        "rep": rep,
        "seconds": done.seconds,
        "peak_rss": done.peak_rss,
        "files": files,
        "error": error,
    }
    bench.log(
        f"{item.label:>12} {method.label:<42} {done.seconds:8.2f} s {done.peak_rss / 2**20:8.0f} MB"
        + (f"  ERROR {error}" if error else "")
    )
    return record


def measure_size(
    bench: Bench, items: list[bench_inputs.Input], reps: int, quick: bool, keys: set[str]
) -> list[dict]:
    records = []
    for rep in range(reps):
        methods = [
            m
            for m in METHODS
            if m.key in keys and (m.max_size is None or items[0].size <= m.max_size)
        ]
        shift = rep % len(methods)
        for method in methods[shift:] + methods[:shift]:
            once = quick or items[0].size > bench_inputs.REAL_SIZE
            if method.heavy and once and rep > 0:
                continue
            for item in items[:1] if method.heavy and once else items:
                records.append(measure_once(bench, method, item, rep))
    return records


def dbt_timings(bench: Bench) -> dict[str, object]:
    """Where the last `duel run`'s dbt build spent its time, from dbt's own run_results.json:
    the sum per resource type (model, test, snapshot, ...), the slowest nodes, and each model's
    and snapshot's own time. duel keeps a dbt target directory per database
    (dbt/target/<host_port_database>/); the last run's is the one written last."""
    written = sorted(
        (p.stat().st_mtime, p) for p in (bench.work / "dbt" / "target").glob("*/run_results.json")
    )
    if not written:
        return {}
    try:
        results = json.loads(written[-1][1].read_text(encoding="utf-8"))["results"]
    except (OSError, ValueError, KeyError):
        return {}
    by_type: dict[str, float] = {}
    nodes = []
    for result in results:
        kind = result["unique_id"].split(".", 1)[0]
        seconds = float(result.get("execution_time") or 0)
        by_type[kind] = by_type.get(kind, 0.0) + seconds
        nodes.append((seconds, result["unique_id"].split(".", 2)[-1], kind))
    nodes.sort(reverse=True)
    return {
        "nodes": len(results),
        "by_type": {k: round(v, 2) for k, v in sorted(by_type.items())},
        "slowest": [[name, kind, round(seconds, 2)] for seconds, name, kind in nodes[:8]],
        "models": {
            name: round(seconds, 2)
            for seconds, name, kind in nodes
            if kind in ("model", "snapshot")
        },
    }


def run_end_to_end(bench: Bench, label: str, paths: list[tuple[str, Path]]) -> list[dict]:
    """`duel run` on each path in turn into one fresh database (the later ones are incremental),
    the database settled before each later one (Bench.settle)."""
    database = bench.fresh_database("run")
    records = []
    try:
        for index, (kind, path) in enumerate(paths):
            settled = bench.settle(database) if index else None
            bench_inputs.warm(path)
            done = run_measured(
                [str(bench.duel), "run", str(path), "--json"],
                bench.env(database),
                bench.scratch(),
                timeout_s=4 * 3600,
            )
            try:
                summary = json.loads(done.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                summary = {}
            error = (
                None
                if done.returncode == 0
                else (done.stderr.strip().splitlines() or [""])[-1][:300]
            )
            records.append(
                {
                    "label": label,
                    "kind": kind,
                    "path": str(path),
                    "seconds": done.seconds,
                    "settled_seconds": settled,
                    "peak_rss": done.peak_rss,
                    "steps": summary.get("steps", {}),
                    "loaded": summary.get("loaded"),
                    "unchanged": summary.get("unchanged"),
                    "nothing_changed": summary.get("nothing_changed"),
                    "dbt": {} if summary.get("nothing_changed") else dbt_timings(bench),
                    "error": error,
                }
            )
            bench.log(
                f"duel run {label} {kind}: {done.seconds:.1f} s, steps {summary.get('steps')}"
                + (f"  ERROR {error}" if error else "")
            )
    finally:
        bench.drop_database(database)
    return records


def machine() -> dict[str, object]:
    import platform
    import subprocess

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
        if line.startswith("MemTotal")
    )
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 2**20, 1),
        "src_digest": src_digest(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit + (" (+ uncommitted src/ changes)" if dirty else ""),
        "python": platform.python_version(),
        "load_at_start": os.getloadavg()[0],
    }


# What duel's venv holds against its lock: the bench measures `duel` as `make install` makes it
_INSTALLED = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


def venv_against_lock(duel: Path, lock: Path = REPO / "requirements.txt") -> dict | None:
    """What `duel`'s venv holds that `lock` does not say (duel itself and the venv's own tools
    aside): `extra`, the distributions it does not pin (what `make notebooks` or a hand install
    added), and `other_versions`, those installed at a version it does not pin ("name 1.2, lock
    1.1"). Either can change every run (the notebooks extra made dbt's import 1.5 s slower:
    bench/analysis.md), so results.md says them. None when `duel`'s interpreter (its script's
    #! line) cannot say."""
    import subprocess

    try:
        line = duel.read_bytes().split(b"\n", 1)[0]
        python = line[2:].decode().split()[0] if line.startswith(b"#!") else ""
        out = subprocess.run(
            [python or str(duel.parent / "python"), "-c", _INSTALLED],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, IndexError, UnicodeDecodeError, subprocess.CalledProcessError):
        return None
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pinned: dict[str, set[str]] = {}
    for entry in lock.read_text(encoding="utf-8").splitlines():
        try:
            requirement = Requirement(entry.split("#", 1)[0])
        except InvalidRequirement:  # a comment, a blank or an option line
            continue
        versions = {spec.version for spec in requirement.specifier if spec.operator == "=="}
        pinned.setdefault(canonicalize_name(requirement.name), set()).update(versions)
    tools = {"duel", "pip", "setuptools", "wheel", "uv"}
    installed = {
        canonicalize_name(name): (name, version)
        for name, version in json.loads(out).items()
        if canonicalize_name(name) not in tools
    }
    return {
        "extra": sorted(name for key, (name, _) in installed.items() if key not in pinned),
        "other_versions": sorted(
            f"{name} {version}, lock {' or '.join(sorted(pinned[key]))}"
            for key, (name, version) in installed.items()
            if key in pinned and version not in pinned[key]
        ),
    }


def src_digest() -> str:
    """A digest of the package's source as it is on disk (it is installed editable)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "duel").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the real 10,000 from the tar.gz, ingest methods only (no duel run)",
    )
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated file counts"
    )
    parser.add_argument("--forms", default=report.DEFAULT_FORMS, help="tar.gz, dir, or both")
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions per size (median reported)"
    )
    parser.add_argument(
        "--reps-large", type=int, default=2, help="repetitions at 1,000,000 and above"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed for duel generate")
    parser.add_argument("--port", type=int, default=5506, help="port of the bench server")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/duel-bench"), help="server + inputs"
    )
    parser.add_argument("--duel", type=Path, default=REPO / ".venv" / "bin" / "duel")
    parser.add_argument(
        "--methods",
        default=",".join(m.key for m in METHODS),
        help="comma-separated ingest methods (default all: "
        + ", ".join(m.key for m in METHODS)
        + "); e.g. duel,floor_copy for the issue-15 ingest ratio without the slow baselines",
    )
    parser.add_argument(
        "--no-end-to-end", action="store_true", help="skip the duel run measurements"
    )
    parser.add_argument(
        "--stream",
        type=int,
        default=report.DEFAULT_STREAM,
        help="deliveries after the 1 %% changed one at the smallest generated size, each 1 %% "
        "apart from the one before (the two dumps in turn): a cost that grows with the "
        "deliveries shows as a later run slower than the first incremental one (0: none)",
    )
    parser.add_argument(
        "--end-to-end-only",
        action="store_true",
        help="only the duel run measurements (full, nothing changed, 1 %% changed)",
    )
    parser.add_argument("--keep-server", action="store_true", help="leave the bench server running")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where results.* are written (default bench/, or WORK/quick with --quick)",
    )
    args = parser.parse_args(argv)
    if args.quick:  # a smoke run: it never overwrites the committed results
        args.sizes, args.forms, args.no_end_to_end = "10000", "tar.gz", True
    if args.out is None:
        args.out = args.work / "quick" if args.quick else BENCH
    return args


def end_to_end(
    bench: Bench, sizes: list[int], forms: tuple[str, ...], seed: int, stream: int
) -> list[dict]:
    records = []
    if bench_inputs.REAL_SIZE in sizes:
        real = bench_inputs.REAL_DATA
        # the same dump twice: the second run stores nothing and must rebuild nothing
        records += run_end_to_end(bench, "10k", [("full", real), (NOTHING_CHANGED, real)])
    # in the first form asked (tar.gz unless --forms says otherwise): the full dump, then a
    # copy of it in the same form with 1 % of its files changed; at the smallest size, then
    # `stream` more deliveries, the dump and its copy in turn (each 1 % apart from the last)
    generated = [s for s in sizes if s > bench_inputs.REAL_SIZE]
    for size in generated:
        (dump,) = [
            i.path
            for i in bench_inputs.prepare(
                size, forms[:1], bench.work / "inputs", bench.duel, seed, bench.log
            )
        ]
        changed = bench_inputs.prepare_changed(dump, bench.log)
        later = [
            (report.stream_kind(n), dump if n % 2 else changed)
            for n in range(3, 3 + (stream if size == generated[0] else 0))
        ]
        records += run_end_to_end(
            bench, report.size_label(size), [("full", dump), (ONE_PERCENT, changed), *later]
        )
    return records


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    forms = tuple(f.strip() for f in args.forms.split(","))
    keys = {k.strip() for k in args.methods.split(",")}
    unknown = keys - {m.key for m in METHODS}
    if unknown:
        print(f"bench: unknown method(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    bench = Bench(
        duel=args.duel.resolve(),
        python=Path(sys.executable),
        work=args.work.resolve(),
        port=args.port,
    )
    bench.work.mkdir(parents=True, exist_ok=True)
    bench.work.chmod(0o755)
    started = time.perf_counter()
    results: dict[str, object] = {
        "machine": machine(),
        "args": vars(args) | {"work": str(args.work), "duel": str(args.duel), "out": str(args.out)},
        "inputs": [],
        "runs": [],
        "end_to_end": [],
    }
    results["machine"]["venv"] = venv_against_lock(bench.duel)  # type: ignore[index]
    bench.server("start")
    with bench.admin() as conn:
        results["machine"]["postgres"] = conn.execute("show server_version").fetchone()[0]  # type: ignore[index]
    try:
        for size in [] if args.end_to_end_only else sizes:
            items = bench_inputs.prepare(
                size, forms, bench.work / "inputs", bench.duel, args.seed, bench.log
            )
            results["inputs"] += [asdict(i) | {"path": str(i.path)} for i in items]  # type: ignore[operator]
            reps = args.reps if size < LARGE else args.reps_large
            results["runs"] += measure_size(bench, items, reps, args.quick, keys)  # type: ignore[operator]
        if not args.no_end_to_end:
            results["end_to_end"] = end_to_end(bench, sizes, forms, args.seed, args.stream)
    finally:
        if not args.keep_server:
            bench.server("stop")
    results["machine"]["load_at_end"] = os.getloadavg()[0]  # type: ignore[index]
    results["machine"]["src_changed_during_run"] = src_digest() != results["machine"]["src_digest"]  # type: ignore[index]
    results["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(portable_paths(results), indent=1, default=str), encoding="utf-8"
    )
    report.write(results, args.out)
    bench.log(
        f"done in {results['seconds']:.0f} s: {args.out / 'results.md'}, {args.out / 'results.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
