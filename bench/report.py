"""Turn the harness's raw results into bench/results.md (tables, targets) and bench/results.png.

Re-render from saved samples: `python bench/report.py [bench/results.json]`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

MB = 2**20
# The kinds of end-to-end run (bench/run.py makes them, the tables below read them)
NOTHING_CHANGED = "nothing changed"
ONE_PERCENT = "incremental (1 % changed)"
_STREAM = re.compile(re.escape(ONE_PERCENT) + r", delivery (\d+)$")


def stream_kind(delivery: int) -> str:
    """The kind of a stream's later delivery (3, 4, ...): the 1 %-changed run is delivery 2."""
    return f"{ONE_PERCENT}, delivery {delivery}"


def delivery_number(kind: str) -> int | None:
    """Which delivery of a stream a run is (2 for the first incremental run), or None."""
    if kind == ONE_PERCENT:
        return 2
    found = _STREAM.match(kind)
    return int(found.group(1)) if found else None


ORDER = ("duel", "notebook", "dlt", "floor_read", "floor_parse", "floor_copy")
# bench/run.py's defaults for what a whole run measures (the results' header names any other)
DEFAULT_FORMS = "tar.gz,dir"
DEFAULT_STREAM = 4
LABELS = {
    "duel": "`duel ingest`",
    "notebook": "notebook method",
    "dlt": "dlt",
    "floor_read": "floor: read",
    "floor_parse": "floor: read+parse",
    "floor_copy": "floor: read+parse+COPY",
}
COLORS = {
    "duel": "#d62728",
    "notebook": "#7f7f7f",
    "dlt": "#1f77b4",
    "floor_read": "#c7e9c0",
    "floor_parse": "#74c476",
    "floor_copy": "#238b45",
}


def size_label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def summarise(runs: list[dict]) -> dict[tuple[int, str, str], dict]:
    """Median seconds, largest peak RSS, and errors per (size, form, method)."""
    groups: dict[tuple[int, str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["size"], run["form"], run["method"])].append(run)
    summary = {}
    for key, items in groups.items():
        good = [r for r in items if not r["error"]]
        killed = [r for r in items if r["error"] and r["error"].startswith("exit -9")]
        counted = good or killed  # a run killed before it finished still bounds its time from below
        summary[key] = {
            "median": statistics.median(r["seconds"] for r in counted) if counted else None,
            "peak": max(r["peak_rss"] for r in counted) if counted else None,
            "n": len(good),
            "errors": [r["error"] for r in items if r["error"]],
            "extrapolated": False,
            "lower_bound": not good and bool(killed),
        }
    _extrapolate_notebook(summary)
    return summary


def _extrapolate_notebook(summary: dict[tuple[int, str, str], dict]) -> None:
    """The notebook's method at 1M, from a power law through its 10k and 100k medians."""
    for form in {form for _, form, _ in summary}:
        small, large = (
            summary.get((10_000, form, "notebook")),
            summary.get((100_000, form, "notebook")),
        )
        if not (small and large and small["median"] and large["median"]):
            continue
        if (1_000_000, form, "duel") not in summary:
            continue
        time_exponent = math.log10(large["median"] / small["median"])
        rss_exponent = math.log10(large["peak"] / small["peak"])
        summary[(1_000_000, form, "notebook")] = {
            "median": large["median"] * 10**time_exponent,
            "peak": large["peak"] * 10**rss_exponent,
            "n": 0,
            "errors": [],
            "extrapolated": True,
            "lower_bound": large["lower_bound"],
            "exponents": (time_exponent, rss_exponent),
        }


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return (
        f"{seconds:.2f}"
        if seconds < 10
        else f"{seconds:.1f}"
        if seconds < 100
        else f"{seconds:.0f}"
    )


def _bound(summary: dict, size: int, form: str, method: str) -> str:
    """ "> " where the number is only a lower bound (a run killed at the time limit)."""
    row = summary.get((size, form, method))
    return "> " if row and row.get("lower_bound") else ""


def _ratio(summary: dict, size: int, form: str, method: str) -> float | None:
    duel, other = summary.get((size, form, "duel")), summary.get((size, form, method))
    if not (duel and other and duel["median"] and other["median"]):
        return None
    return other["median"] / duel["median"]


def ingest_tables(summary: dict) -> list[str]:
    lines = []
    for size in sorted({s for s, _, _ in summary}):
        lines += [
            f"### {size:,} files",
            "",
            "| Input | Method | Median wall s | Files/s | Peak RSS MB | Time ÷ `duel ingest` | "
            "Runs |",
            "|---|---|--:|--:|--:|--:|--:|",
        ]
        for form in ("tar.gz", "dir"):
            for method in ORDER:
                row = summary.get((size, form, method))
                if row is None:
                    continue
                ratio = _ratio(summary, size, form, method)
                label = LABELS[method] + (" **(extrapolated)**" if row["extrapolated"] else "")
                rate = f"{size / row['median']:,.0f}" if row["median"] else "—"
                peak = f"{row['peak'] / MB:,.0f}" if row["peak"] else "—"
                runs = str(row["n"]) + (
                    f" ({len(row['errors'])} failed: {row['errors'][0]})" if row["errors"] else ""
                )
                if row["lower_bound"]:
                    runs = "killed (SIGKILL) before it finished: a lower bound"
                    rate, peak = f"< {rate}", f"> {peak}"
                bound = _bound(summary, size, form, method)
                lines.append(
                    f"| {size_label(size)} {form} | {label} | {bound}{_fmt_s(row['median'])} | "
                    f"{rate} | {peak} "
                    f"| {'—' if ratio is None else f'{bound}{ratio:.2f}×'} | "
                    f"{runs if not row['extrapolated'] else 'from 10k and 100k'} |"
                )
        lines.append("")
    return lines


def _target(name: str, measured: str, ok: bool | None) -> str:
    verdict = "not measured" if ok is None else ("**met**" if ok else "**NOT met**")
    return f"| {name} | {measured} | {verdict} |"


def targets(summary: dict, end_to_end: list[dict]) -> list[str]:
    rows = ["| Target | Measured | Verdict |", "|---|---|---|"]
    duel10 = summary.get((10_000, "tar.gz", "duel"))
    floor = _ratio(summary, 10_000, "tar.gz", "floor_copy")
    rows.append(
        _target(
            "10k tar.gz: `duel ingest` within 1.3× of read+parse+COPY",
            "—" if floor is None else f"duel ÷ floor = {1 / floor:.2f}×",
            None if floor is None else 1 / floor <= 1.3,
        )
    )
    for size in (100_000, 1_000_000):  # issue 15: the ingest within 1.5× of its floor
        floor = _ratio(summary, size, "tar.gz", "floor_copy")
        rows.append(
            _target(
                f"{size_label(size)} tar.gz: `duel ingest` within 1.5× of read+parse+COPY",
                "—" if floor is None else f"duel ÷ floor = {1 / floor:.2f}×",
                None if floor is None else 1 / floor <= 1.5,
            )
        )
    for size, method, need in (
        (10_000, "notebook", 15),
        (10_000, "dlt", 4),
        (100_000, "notebook", 30),
        (100_000, "dlt", 5),
    ):
        ratio = _ratio(summary, size, "tar.gz", method)
        bound = _bound(summary, size, "tar.gz", method)
        rows.append(
            _target(
                f"{size_label(size)} tar.gz: ≥ {need}× faster than {LABELS[method]}",
                "—" if ratio is None else f"{bound}{ratio:.1f}×",
                None if ratio is None else (ratio >= need if not bound or ratio >= need else None),
            )
        )
    peak = duel10["peak"] / MB if duel10 and duel10["peak"] else None
    rows.append(
        _target(
            "10k tar.gz: peak RSS < 100 MB",
            "—" if peak is None else f"{peak:.0f} MB",
            None if peak is None else peak < 100,
        )
    )
    for form, limit in (("dir", 30), ("tar.gz", 45)):
        row = summary.get((1_000_000, form, "duel"))
        seconds = row["median"] if row else None
        rows.append(
            _target(
                f"1M {form}: `duel ingest` < {limit} s",
                f"{_fmt_s(seconds)} s" if seconds else "—",
                None if seconds is None else seconds < limit,
            )
        )
        peak = row["peak"] / MB if row and row["peak"] else None
        rows.append(
            _target(
                f"1M {form}: peak RSS < 200 MB",
                f"{peak:.0f} MB" if peak else "—",
                None if peak is None else peak < 200,
            )
        )
    rows += _end_to_end_targets(end_to_end)
    return rows


def _has_transform(record: dict) -> bool:
    return any(step not in ("database", "ingest") for step in record.get("steps") or {})


def _end_to_end_targets(end_to_end: list[dict]) -> list[str]:
    rows = []
    full10 = [r for r in end_to_end if r["label"] == "10k" and not r["error"]]
    if full10:
        note = (
            "" if _has_transform(full10[0]) else " (ingest only: `duel run` has no dbt stage yet)"
        )
        rows.append(
            _target(
                "`duel run` end to end on 10k < 15 s",
                f"{full10[0]['seconds']:.1f} s{note}",
                full10[0]["seconds"] < 15 if not note else None,
            )
        )
    else:
        rows.append(
            _target("`duel run` end to end on 10k < 15 s", _failure(end_to_end, "10k"), None)
        )
    for label, second, name, limit in (
        (
            "10k",
            NOTHING_CHANGED,
            "10k: a `duel run` with nothing changed < 1/10 of the first",
            1 / 10,
        ),
        (
            "100k",
            ONE_PERCENT,
            "100k: `duel run` after 1 % changed < 1/5 of a full run",
            1 / 5,
        ),
        (
            "1M",
            ONE_PERCENT,
            "1M: `duel run` after 1 % changed < 1/8 of a full run",
            1 / 8,
        ),
    ):
        runs = {r["kind"]: r for r in end_to_end if r["label"] == label and not r["error"]}
        full, then = runs.get("full"), runs.get(second)
        if full and then:
            share = then["seconds"] / full["seconds"]
            rows.append(
                _target(
                    name,
                    f"{then['seconds']:.1f} s vs {full['seconds']:.1f} s = {share:.3f}",
                    share < limit,
                )
            )
        else:
            rows.append(_target(name, _failure(end_to_end, label), None))
    full_1m = [r for r in end_to_end if r["label"] == "1M" and r["kind"] == "full"]
    rows.append(
        _target(
            "1M: full `duel run` < 100 s",
            f"{full_1m[0]['seconds']:.1f} s"
            if full_1m and not full_1m[0]["error"]
            else _failure(end_to_end, "1M"),
            full_1m[0]["seconds"] < 100 if full_1m and not full_1m[0]["error"] else None,
        )
    )
    return rows


def _failure(end_to_end: list[dict], label: str) -> str:
    errors = [r["error"] for r in end_to_end if r["label"] == label and r["error"]]
    return f"`duel run` failed: {errors[0]}" if errors else "—"


def end_to_end_table(end_to_end: list[dict]) -> list[str]:
    if not end_to_end:
        return ["Not run."]
    lines = [
        "| Run | Input | Settled s before (untimed) | Wall s | Peak RSS MB | "
        "Stages (s, as `duel run --json` reports them) | Loaded / unchanged |",
        "|---|---|--:|--:|--:|---|--:|",
    ]
    for r in end_to_end:
        steps = ", ".join(f"{k} {v:.1f}" for k, v in (r["steps"] or {}).items()) or "—"
        outcome = f"ERROR {r['error']}" if r["error"] else f"{r['loaded']} / {r['unchanged']}"
        if r.get("nothing_changed"):
            outcome += " (nothing changed: no build)"
        settled = r.get("settled_seconds")
        lines.append(
            f"| {r['label']} {r['kind']} | `{Path(r['path']).name}` "
            f"| {_fmt_s(settled)} | {_fmt_s(r['seconds'])} "
            f"| {r['peak_rss'] / MB:,.0f} | {steps} | {outcome} |"
        )
    lines += [
        "",
        "Before each run after a database's first, the bench lets it settle as a daily "
        "pipeline's does between deliveries (`VACUUM (ANALYZE)` and a `CHECKPOINT`: the "
        "autovacuum work the run before left); that time is not in any run's wall time and is "
        "shown in its own column.",
    ]
    return lines


def stream_table(end_to_end: list[dict]) -> list[str]:
    """The incremental runs of the size that had a stream of deliveries (bench/run.py's
    `--stream`), each against the first (delivery 2): what a daily run costs as the deliveries
    pile up."""
    labels = [r["label"] for r in end_to_end if (delivery_number(r["kind"]) or 0) > 2]
    if not labels:
        return ["Not run (`--stream 0`, or no generated size)."]
    runs = sorted(
        (
            (number, r)
            for r in end_to_end
            if r["label"] == labels[0] and (number := delivery_number(r["kind"])) is not None
        ),
        key=lambda pair: pair[0],
    )
    if not runs or runs[0][0] != 2 or any(r["error"] for _, r in runs):
        return [_failure(end_to_end, labels[0])]
    first = runs[0][1]
    lines = [
        f"{labels[0]}: the full run is delivery 1; each later delivery is the generated dump or "
        "its 1 %-changed copy, in turn, so each changes 1 % of the documents the one before made "
        "current.",
        "",
        "| Delivery | Input | Wall s | Ingest s | Transform s | base (model) s | "
        "Wall ÷ delivery 2 |",
        "|--:|---|--:|--:|--:|--:|--:|",
    ]
    for number, r in runs:
        steps = r.get("steps") or {}
        base = (r.get("dbt") or {}).get("models", {}).get("base")
        lines.append(
            f"| {number} | `{Path(r['path']).name}` | {_fmt_s(r['seconds'])} "
            f"| {_fmt_s(steps.get('ingest'))} | {_fmt_s(steps.get('transform'))} "
            f"| {_fmt_s(base)} | {r['seconds'] / first['seconds']:.2f} |"
        )
    last_number, last = runs[-1]
    lines += [
        "",
        f"The last delivery ({last_number}) took {last['seconds'] / first['seconds']:.2f}× "
        "the wall time of the first incremental one; the slowest of them "
        f"{max(r['seconds'] for _, r in runs) / first['seconds']:.2f}×.",
    ]
    return lines


def dbt_table(end_to_end: list[dict]) -> list[str]:
    """Where each run's dbt build spent its time (dbt's run_results.json), per resource type and
    its slowest nodes."""
    rows = [r for r in end_to_end if r.get("dbt")]
    if not rows:
        return ["No dbt timings (no run built models)."]
    lines = [
        "| Run | Nodes | Seconds per resource type | Slowest nodes (s) |",
        "|---|--:|---|---|",
    ]
    for r in rows:
        dbt = r["dbt"]
        kinds = ", ".join(f"{k} {v:.1f}" for k, v in dbt["by_type"].items())
        slowest = ", ".join(f"{name} ({kind}) {s:.1f}" for name, kind, s in dbt["slowest"][:5])
        lines.append(f"| {r['label']} {r['kind']} | {dbt['nodes']} | {kinds} | {slowest} |")
    return lines


def chart(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(s, f) for s, f, _ in summary}, key=lambda g: (g[0], g[1] != "tar.gz"))
    # only the methods this run measured: one left out (--methods) has no bar and no legend entry
    methods = [m for m in ORDER if any(summary.get((s, f, m)) for s, f in groups)]
    fig, axes = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    width = 0.8 / len(methods)
    for index, method in enumerate(methods):
        for axis, field, scale in ((axes[0], "median", 1.0), (axes[1], "peak", 1 / MB)):
            xs, ys, hatches = [], [], []
            for g, (size, form) in enumerate(groups):
                row = summary.get((size, form, method))
                if row and row[field]:
                    xs.append(g + (index - (len(methods) - 1) / 2) * width)
                    ys.append(row[field] * scale)
                    hatches.append(
                        "//" if row["extrapolated"] else "xx" if row.get("lower_bound") else ""
                    )
            bars = axis.bar(xs, ys, width, color=COLORS[method], label=LABELS[method].strip("`"))
            for bar, hatch, y in zip(bars, hatches, ys, strict=True):
                bar.set_hatch(hatch)
                axis.annotate(
                    f"{y:,.0f}" if y >= 100 else f"{y:.3g}",
                    (bar.get_x() + bar.get_width() / 2, y),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
    axes[0].set_ylabel("median wall time, s (log)")
    axes[1].set_ylabel("peak RSS of the process tree, MB (log)")
    for axis in axes:
        axis.set_yscale("log")
        axis.set_ylim(top=axis.get_ylim()[1] * 5)  # room for the value labels
        axis.grid(axis="y", which="both", alpha=0.3)
    axes[1].set_xticks(range(len(groups)), [f"{size_label(s)} {f}" for s, f in groups])
    axes[0].legend(ncol=3, fontsize=8)
    others = [LABELS[m].strip("`") for m in methods if m != "duel"]
    axes[0].set_title(
        f"duel ingest vs {', '.join(others) or 'nothing else'} (//: extrapolated, xx: lower bound)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def notes(results: dict, summary: dict) -> list[str]:
    """What a reader must know to trust (or not) this particular run."""
    m = results["machine"]
    lines = []
    if m.get("src_changed_during_run"):
        lines.append(
            "- `src/duel` changed on disk while this ran (it is installed editable and was being "
            "optimised in parallel): `duel` runs early and late in the run may differ."
        )
    for (size, form, method), row in sorted(summary.items()):
        if row.get("lower_bound") and not row["extrapolated"]:
            lines.append(
                f"- {LABELS[method]} on {size_label(size)} {form} was killed from outside the "
                "harness (SIGKILL; "
                f"the harness's own limit is an hour) after {row['median']:.0f} s at "
                f"{row['peak'] / MB:,.0f} MB: its "
                "time and memory are lower bounds."
            )
        if row["extrapolated"]:
            time_exponent, rss_exponent = row["exponents"]
            lines.append(
                f"- The notebook method at 1M ({form}) is extrapolated, not run: time ∝ "
                f"n^{time_exponent:.2f}, "
                f"memory ∝ n^{rss_exponent:.2f} through its 10k and 100k results"
                + (" (100k being a lower bound, so is this)" if row["lower_bound"] else "")
                + "."
            )
    lines.append(
        "- Peak RSS is of each method's own process tree; the Postgres server's memory is not "
        "counted."
    )
    return lines


def _analysis(out: Path) -> list[str]:
    """The hand-written reading of the numbers (bench/analysis.md), kept across re-renders."""
    path = out / "analysis.md"
    return [path.read_text(encoding="utf-8").rstrip(), ""] if path.is_file() else []


def _venv_line(machine: dict) -> str:
    """What duel ran from: its venv as requirements.txt pins it, or what else was there."""
    venv = machine.get("venv")
    if "venv_extras" in machine:  # the run of 2026-12-06 05:49 read the names, not the versions
        extra = machine["venv_extras"]
        return (
            f"- duel's venv: {len(extra)} packages that requirements.txt does not pin"
            + (f" ({', '.join(extra)})" if extra else "")
            + " (versions not read)"
        )
    if venv is None:
        return "- duel's venv: not recorded"
    extra, other = venv["extra"], venv["other_versions"]
    if not extra and not other:
        return (
            "- duel's venv: requirements.txt's packages at its versions"
            " (as `make install` makes it)"
        )
    said = []
    if extra:
        named = ", ".join(extra[:8]) + (", ..." if len(extra) > 8 else "")
        said.append(f"{len(extra)} packages that requirements.txt does not pin ({named})")
    if other:
        named = "; ".join(other[:4]) + ("; ..." if len(other) > 4 else "")
        said.append(f"{len(other)} at versions it does not pin ({named})")
    # (such a package can change every run: bench/analysis.md, 2026-12-06 05:49)
    return f"- duel's venv: **{' and '.join(said)}**, not what `make install` makes"


def write(results: dict, out: Path) -> None:
    summary = summarise(results["runs"])
    m = results["machine"]
    origins = sorted({f"{size_label(i['size'])}: {i['origin']}" for i in results["inputs"]})
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`python bench/run.py {_args(results['args'])}`) — see "
        "[bench/README.md](README.md).",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; Postgres "
        f"{m.get('postgres', '?')} "
        "(the embedded server, one per bench run)",
        f"- Date: {m['date']}; commit `{m['commit']}`"
        + (
            " — **the package's source changed during the run**"
            if m.get("src_changed_during_run")
            else ""
        )
        + f"; Python {m['python']}",
        _venv_line(m),
        f"- Load average (1 min) at start {m['load_at_start']:.1f}, at end "
        f"{m.get('load_at_end', 0):.1f} "
        "(the machine is shared: ratios from one interleaved run are steadier than absolute times)",
        f"- Inputs: {'; '.join(origins) or 'the end-to-end runs only (their table names them)'};"
        " warm page cache; whole run "
        f"{results.get('seconds', 0) / 60:.0f} min",
        "",
        "## Targets (issues 7 and 15)",
        "",
        *targets(summary, results["end_to_end"]),
        "",
        "## Ingest: every method on the same input, a fresh database each run",
        "",
        *(ingest_tables(summary) or ["Not measured in this run.", ""]),
        "## End to end: `duel run` (ingest + dbt build + report)",
        "",
        *end_to_end_table(results["end_to_end"]),
        "",
        "### A stream of deliveries",
        "",
        *stream_table(results["end_to_end"]),
        "",
        "### Where the dbt time goes (dbt's run_results.json of each run)",
        "",
        *dbt_table(results["end_to_end"]),
        "",
        "## Notes on this run",
        "",
        *notes(results, summary),
        "",
        *_analysis(out),
    ]
    # the chart is of the ingest methods: a run without them (--end-to-end-only) has none, and
    # an earlier run's chart left beside these results would be read as theirs
    if summary:
        lines += ["![wall time and peak RSS per method](results.png)", ""]
    (out / "results.md").write_text("\n".join(lines), encoding="utf-8")
    if summary:
        chart(summary, out / "results.png")
    else:
        (out / "results.png").unlink(missing_ok=True)


# the options that leave out a whole part of the run, as results.md's command line names them
_PARTIAL = (("end_to_end_only", "--end-to-end-only"), ("no_end_to_end", "--no-end-to-end"))


def _args(args: dict) -> str:
    """The run's command line: its sizes and repetitions, and every option that left a part of
    the full run out (the methods, the forms, the end-to-end runs or everything else)."""
    if args.get("quick"):
        return "--quick"
    words = [f"--sizes {args['sizes']} --reps {args['reps']} --reps-large {args['reps_large']}"]
    methods = args.get("methods")
    if methods and set(methods.split(",")) != set(ORDER):
        words.append(f"--methods {methods}")
    if args.get("forms", DEFAULT_FORMS) != DEFAULT_FORMS:
        words.append(f"--forms {args['forms']}")
    if args.get("stream", DEFAULT_STREAM) != DEFAULT_STREAM:
        words.append(f"--stream {args['stream']}")
    words += [flag for key, flag in _PARTIAL if args.get(key)]
    return " ".join(words)


if __name__ == "__main__":
    import json
    import sys

    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.json"))
    write(json.loads(source.read_text(encoding="utf-8")), source.parent)
