"""The HTML report: one self-contained `report.html` (plotly.js inlined once; opens offline).

Built from `dbt_analysis` models only, rendered through the jinja2 template
`templates/report.html.j2` (autoescaped). Charts come from `duel.charts`; tables are rendered
by the template from the same rows. Sections: the overview (every measure's coverage), run summary,
data quality, engagement (by platform and by join month), top advocates, brands and programs, sales
attribution with its outliers. Every comparison carries the n it is over; unknown members (brand,
platform, join month) are shown in rows of their own, never ranked.

    build_report(settings)               # -> ReportResult(path=out/report.html, charts=12, ...)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from psycopg import sql

from duel import __version__, charts, defects, read
from duel.exceptions import ConfigError, StepFailed
from duel.settings import Settings

SCHEMA = "dbt_analysis"
MODELS = (
    "overview",
    "ingest_batches",
    "data_quality",
    "data_quality_summary",
    "engagement_by_platform",
    "engagement_by_join_month",
    "engagement_by_brand",
    "engagement_by_program",
    "top_advocates",
    "engagement_by_user",
    "sales_attribution",
    "sales_outliers",
)
PROGRAM_COLUMNS = (
    "program_key",
    "brand",
    "engagement",
    "engagement_known",
    "task_count",
    "total_sales_attributed",
)
LEADERS = 10  # rows of the top-advocates table
BRANDS = 10  # rows of the top-brands table
BRAND_RANKS = 15  # ranks the top-brands chart draws (the table's are among them)
CLIPPED_CHARS = 60  # a value from the data longer than this is shown clipped in the tables
# the brands the report shows: the ranked ones it draws and the unknown brand (never ranked)
RANKED_BRANDS = sql.SQL("sales_rank <= {n} or engagement_rank <= {n} or is_unknown_brand").format(
    n=sql.Literal(BRAND_RANKS)
)
ATTRIBUTION_ROWS = 15  # rows of the sales-attribution table: the top ones by sales_rank
# sales_attribution's rows the report can list: rank() gives ties one rank, so these hold the
# table's rows however ties fall
LISTED_ATTRIBUTION = sql.SQL("sales_rank <= {}").format(sql.Literal(ATTRIBUTION_ROWS))
# What the sales-by-platform chart and the unknown members' row need of every other row: its
# measures summed per platform and unknown flag (_fetch_attribution_sums)
ATTRIBUTION_GROUPS = ("platform", "is_unknown_brand", "is_unknown_platform", "is_without_tasks")
ATTRIBUTION_SUMS = {  # column: the type of its sum (Postgres sums bigint as numeric)
    "program_count": "bigint",
    "sales_known": "bigint",
    "attributed_sales": "numeric",
    "program_sales": "numeric",
    "outlier_programs": "bigint",
}
# Per-program charts draw one dot per program: above this many programs they show a sample
# (every outlier, plus programs taken in program_key order — an md5 hash, so an even spread).
POINTS = 5000
# a program's engagement is known when every one of its tasks' is (a sum of some of them would
# draw the program lower than it is): the same rule as charts.program_performance_chart's
BOTH_KNOWN = (
    "engagement is not null and engagement_known = task_count"
    " and total_sales_attributed is not null"
)
SCORED = "is_scored"
OUTLIERS = "is_outlier"
PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}


@dataclass(frozen=True)
class ReportResult:
    path: Path
    charts: int  # how many plotly charts the page draws
    bytes: int


def _fetch(
    conn: psycopg.Connection[Any],
    model: str,
    columns: tuple[str, ...] = (),
    order_by: tuple[str, ...] = (),
    where: sql.Composable | None = None,
) -> pd.DataFrame:
    """One dbt_analysis model (optionally only some columns, or rows) as a DataFrame."""
    return read.frame(
        conn, read.select_model(model, SCHEMA, columns=columns, where=where, order_by=order_by)
    )


def _fetch_attribution_sums(conn: psycopg.Connection[Any]) -> pd.DataFrame:
    """sales_attribution summed in the database per ATTRIBUTION_GROUPS: the same columns, one
    row per group instead of one per brand and platform (220,367 rows at a million users, 1.9 s
    to read and more to sum in pandas; a few dozen this way). Whatever sums its rows per platform
    or per unknown flag gets the same result from these rows as from the model's."""
    groups = sql.SQL(", ").join(map(sql.Identifier, ATTRIBUTION_GROUPS))
    sums = sql.SQL(", ").join(
        sql.SQL("cast(sum({0}) as {1}) as {0}").format(sql.Identifier(column), sql.SQL(kind))
        for column, kind in ATTRIBUTION_SUMS.items()
    )
    query = sql.SQL("select {groups}, {sums} from {model} group by {groups} order by {groups}")
    return read.frame(
        conn,
        query.format(groups=groups, sums=sums, model=read.relation("sales_attribution", SCHEMA)),
    )


def _fetch_ranked(conn: psycopg.Connection[Any]) -> pd.DataFrame:
    """How many users top_advocates' rankings are over (those whose value is known: its
    `where ... is not null`), and of how many users: one row, counted in the database."""
    query = sql.SQL(
        "select count(*) as users, count(engagement) as engagement, count(reach) as reach,"
        " count(sales) as sales from {}"
    ).format(read.relation("engagement_by_user", SCHEMA))
    return read.frame(conn, query)


def ranking_coverage(settings: Settings) -> pd.DataFrame:
    """`_fetch_ranked` on its own connection: how many users each ranking is over (the
    notebooks; the report reads it with the other models, in one snapshot)."""
    with read.snapshot(settings, "read the rankings' coverage") as conn:
        return _fetch_ranked(conn)


def ranking_coverage_sentence(ranked: pd.DataFrame) -> str:
    """What a ranking of top advocates is over, from `ranking_coverage`'s row: "" when there
    is no user."""
    if ranked.empty or not int(ranked["users"].iloc[0]):
        return ""
    row = {k: int(v) for k, v in ranked.iloc[0].items()}
    return (
        f"The rankings are over {row['engagement']:,} of the {row['users']:,} users by"
        f" engagement, {row['reach']:,} by reach and {row['sales']:,} by sales: the others have"
        " no known value to rank."
    )


def _fetch_points(
    conn: psycopg.Connection[Any],
    model: str,
    columns: tuple[str, ...],
    where: str,
    keep: str | None = None,
) -> pd.DataFrame:
    """A model's per-program rows for a dot chart: those where `where` holds, at most POINTS of them
    plus every row where `keep` holds (outliers). Both are constant expressions of this module.
    .attrs says how many rows the model has ("total"), how many match ("matching") and are drawn."""
    matches = sql.SQL(where)
    counts = read.select_model(
        model,
        SCHEMA,
        columns=[
            sql.SQL("count(*) as total"),
            sql.SQL("count(*) filter (where {}) as matching").format(matches),
        ],
    )
    total, matching = read.rows(conn, counts)[0].values()  # one row: the counts, in this order
    sample = read.select_model(
        model,
        SCHEMA,
        columns=["program_key"],
        where=matches,
        order_by=["program_key"],
        limit=POINTS,
    )
    condition = sql.SQL("{} and program_key in ({})").format(matches, sample)
    if keep:
        condition = sql.SQL("({}) or ({} and {})").format(condition, matches, sql.SQL(keep))
    query = read.select_model(
        model, SCHEMA, columns=columns, where=condition, order_by=["program_key"]
    )
    frame = read.frame(conn, query)
    frame.attrs.update(total=int(total), matching=int(matching), shown=len(frame))
    return frame


def _check_models(conn: Any) -> None:
    present = {
        str(r[0])
        for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = %s", (SCHEMA,)
        )
    }
    missing = [m for m in MODELS if m not in present]
    if missing:
        names = ", ".join(f"{SCHEMA}.{m}" for m in missing)
        raise StepFailed("report", f"{names} missing; run `duel transform` first")


def read_models(settings: Settings) -> dict[str, pd.DataFrame]:
    """Every model the report shows, from one consistent snapshot of dbt_analysis: whole, or
    the rows it shows (the top brands, a sample of programs, the attribution rows it lists:
    "attribution_listed"), or sums in the database ("attribution_sums")."""
    with read.snapshot(settings, "report") as conn:
        _check_models(conn)
        models = {
            "overview": _fetch(conn, "overview"),
            "batches": _fetch(conn, "ingest_batches", order_by=("batch_id",)),
            "quality": _fetch(
                conn, "data_quality", order_by=("batch_id", "record_type", "field", "defect")
            ),
            "quality_summary": _fetch(conn, "data_quality_summary", order_by=("batch_id",)),
            "platforms": _fetch(conn, "engagement_by_platform"),
            "by_month": _fetch(
                conn, "engagement_by_join_month", order_by=("join_month", "platform")
            ),
            "advocates": _fetch(
                conn, "top_advocates", order_by=("ranking", "rank", "label", "user_key")
            ),
            "ranked": _fetch_ranked(conn),
            "brands": _fetch(
                conn, "engagement_by_brand", order_by=("brand_id",), where=RANKED_BRANDS
            ),
            "programs": _fetch_points(conn, "engagement_by_program", PROGRAM_COLUMNS, BOTH_KNOWN),
            "attribution_listed": _fetch(
                conn,
                "sales_attribution",
                order_by=("brand_id", "platform"),
                where=LISTED_ATTRIBUTION,
            ),
            "attribution_sums": _fetch_attribution_sums(conn),
            "outliers": _fetch_points(conn, "sales_outliers", (), SCORED, keep=OUTLIERS),
        }
    models["quality"].attrs[charts.DEFECT_CLASSES_ATTR] = defect_vocabulary(settings)
    return models


def defect_vocabulary(settings: Settings) -> tuple[str, ...]:
    """The project's defect classes in order (vars.defect_classes), which give each class its
    colour in the charts; none when the dbt project cannot be read (the colours then follow the
    classes' names)."""
    try:
        return tuple(defects.load_rules(settings.dbt_project_dir).classes)
    except ConfigError:
        return ()


def build_figures(models: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The report's charts, by the name the template places them under."""
    programs, outliers = models["programs"], models["outliers"]
    return {
        "coverage": charts.coverage_chart(models["overview"]),
        "documents_per_batch": charts.documents_per_batch_chart(models["batches"]),
        "defects_by_field": charts.defects_by_field_chart(models["quality"]),
        "clean_share": charts.clean_share_chart(models["quality"]),
        "coverage_by_platform": charts.coverage_by_platform_chart(models["platforms"]),
        "engagement_by_platform": charts.engagement_by_platform_chart(models["platforms"]),
        "engagement_over_time": charts.engagement_over_time_chart(models["by_month"]),
        "top_advocates": charts.top_advocates_chart(models["advocates"]),
        "brand_performance": charts.brand_performance_chart(models["brands"], BRAND_RANKS),
        "program_performance": charts.program_performance_chart(
            programs,
            {
                "programs": programs.attrs["total"],
                "both_known": programs.attrs["matching"],
                "shown": programs.attrs["shown"],
            },
        ),
        "sales_by_platform": charts.sales_by_platform_chart(models["attribution_sums"]),
        "sales_outliers": charts.sales_outliers_chart(
            outliers,
            outliers.attrs["matching"],
            outliers.attrs["total"] - outliers.attrs["matching"],
        ),
    }


def _records(data: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(k): (None if _missing(v) else v) for k, v in row.items()}
        for row in data.to_dict("records")
    ]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT


def _join_span(overview: pd.DataFrame) -> str:
    """What the join-month charts' first and last months hold when they are parts of a month
    (the users' join dates begin after a month's first day, or end before its last): their
    counts are of part of a month, which a bar lower than the others does not say. "" when
    both are whole months, or no join date is known."""
    if overview.empty:
        return ""
    first, last = overview["first_joined_at"].iloc[0], overview["last_joined_at"].iloc[0]
    if pd.isna(first) or pd.isna(last):
        return ""
    first, last = pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(last).tz_convert("UTC")
    partial = []
    if first.day > 1:
        partial.append(f"{first:%b %Y}")
    if last.day < last.days_in_month and f"{last:%b %Y}" not in partial:
        partial.append(f"{last:%b %Y}")
    if not partial:
        return ""
    months, two = " and ".join(partial), len(partial) > 1
    return (
        f"The join dates run from {first.day} {first:%b %Y} to {last.day} {last:%b %Y} (UTC):"
        f" {months} {'hold' if two else 'holds'} only part of"
        f" {'their months' if two else 'its month'},"
        f" so {'their bars count' if two else 'its bar counts'} fewer days of joins than the"
        " others."
    )


# The platform comparisons (engagement_by_platform): what is compared, its column (its interval
# in `<column>_low` and `<column>_high`), the n it is over, and its format
_COMPARED = (
    (
        "engagement per known task",
        "engagement_average",
        "engagement_known",
        lambda v: f"{float(v):,.1f}",
    ),
    ("engagement rate", "engagement_rate", "engagement_rate_tasks", lambda v: f"{float(v):.2%}"),
)


def is_ranked_platform(platforms: pd.DataFrame) -> pd.Series:
    """Which rows of engagement_by_platform (or charts.platform_rows) are ranked: the accepted
    platforms. Never the unknown platform (a data test: it is never accepted), a platform
    outside the accepted ones (`tik tok`), or the made-up labels summed into one row (an
    accepted platform is never summed)."""
    return platforms["is_accepted_platform"].fillna(False).astype(bool)


def platform_comparison(platforms: pd.DataFrame) -> list[str]:
    """What engagement_by_platform lets one say of the accepted platforms, a sentence per
    measure (engagement per known task, engagement rate): the highest, with its n and 95%
    interval, and which others the report ranks below it: those whose interval lies wholly
    below its own. A platform whose interval overlaps the highest one's is not ranked below it
    (its difference may still be real; more tasks would tell): the real dump's facebook is
    highest over 73 known tasks, against tiktok's and instagram's 2,550, and is not ranked
    above them. The report shows these sentences under its platform table; data_output.ipynb
    prints them."""
    if platforms.empty:
        return []
    ranked = platforms[is_ranked_platform(platforms)]
    return [
        sentence for compared in _COMPARED if (sentence := _compare(ranked, *compared)) is not None
    ]


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _interval(row: pd.Series, value: str, shown: Callable[[Any], str]) -> str:
    if _missing(row[f"{value}_low"]):
        return "too few tasks for an interval"
    return f"95% interval {shown(row[f'{value}_low'])} to {shown(row[f'{value}_high'])}"


def _tasks(count: Any) -> str:
    return f"{int(count):,} task{'' if int(count) == 1 else 's'}"


def _compare(
    ranked: pd.DataFrame, what: str, value: str, n: str, shown: Callable[[Any], str]
) -> str | None:
    """platform_comparison's sentence for one measure; None with fewer than two platforms."""
    low, high = f"{value}_low", f"{value}_high"
    known = ranked[ranked[value].notna()].sort_values([value, "platform"], ascending=[False, True])
    if len(known) < 2:
        return None
    values = pd.to_numeric(known[value])
    level = known[values == values.iloc[0]]  # the highest, and any level with it
    others = known.drop(level.index)
    one = len(level) == 1
    top = level.iloc[0]
    if one:
        sentence = (
            f"{what.capitalize()}: {top['platform']} is highest ({shown(top[value])} over"
            f" {_tasks(top[n])}, {_interval(top, value, shown)})"
        )
    else:
        names = _listed([str(p) for p in level["platform"]])
        sentence = f"{what.capitalize()}: {names} are level at {shown(top[value])}"
    lows = pd.to_numeric(level[low], errors="coerce")
    floor = None if lows.isna().any() else float(lows.min())  # the lowest low of the highest
    highs = pd.to_numeric(others[high], errors="coerce")  # Decimals and None from the model
    below = others[highs.notna() & (highs < floor)] if floor is not None else others.iloc[0:0]
    tied = others.drop(below.index)
    if not tied.empty:
        reasons = []
        overlapping = [
            f"{row['platform']}'s ({shown(row[low])} to {shown(row[high])})"
            for _, row in tied.iterrows()
            if not _missing(row[low])
        ]
        if floor is not None and overlapping:
            subject = "its interval overlaps" if one else "their intervals overlap"
            reasons.append(f"{subject} {_listed(overlapping)}")
        # without an interval: the others, and the level highest (a lone highest says so itself)
        unsure = pd.concat([tied, level.iloc[0:0] if one else level])
        few = [str(row["platform"]) for _, row in unsure.iterrows() if _missing(row[low])]
        if few:
            reasons.append(f"{_listed(few)} {'has' if len(few) == 1 else 'have'} too few tasks")
        names = _listed([*(str(p) for p in level["platform"]), *(str(p) for p in tied["platform"])])
        sentence += (
            (f", but {', and '.join(reasons)}" if reasons else "")
            + f": the report does not rank {names} against each other by {what} (within"
            " overlapping 95% intervals a difference may be chance; more tasks would tell)"
        )
    if not below.empty:
        lower = _listed([f"{p}'s" for p in below["platform"]])
        subject = "its interval lies" if one else "their intervals lie"
        sentence += f"{';' if not tied.empty else ':'} {subject} above {lower}"
    return sentence + "."


def join_month_comparison(by_month: pd.DataFrame, platforms: pd.DataFrame) -> list[str]:
    """What engagement_by_join_month lets one say of the join months, a sentence per measure
    (engagement per known task, engagement rate): within each accepted platform (as
    platform_comparison ranks them), never across platforms, whose mix differs from month to
    month, whether two of its dated months differ beyond their 95% intervals. If the highest
    low end of a platform's months lies above the lowest high end, those two months do (they
    are two months: a month's low end is never above its own high end), and the sentence names
    them; otherwise every month's interval overlaps every other's, and no month is singled
    out. Months over fewer than two tasks have no interval and are not compared; a platform
    some of whose months are not says over how many of them it is ("facebook (2 of 13 months
    with an interval)" on the real dump), so that "no month is singled out" is not read as
    holding for months never compared. The report shows these sentences under its join-month
    chart; data_output.ipynb prints them."""
    if by_month.empty or platforms.empty:
        return []
    accepted = set(platforms.loc[is_ranked_platform(platforms), "platform"])
    dated = by_month[by_month["join_month"].notna() & by_month["platform"].isin(accepted)]
    sentences = []
    for what, value, n, shown in _COMPARED:
        low, high = f"{value}_low", f"{value}_high"
        apart, overlapping = [], []
        for platform, months in dated.groupby("platform", sort=True):
            part = months[months[low].notna()]
            part = part.assign(low=pd.to_numeric(part[low]), high=pd.to_numeric(part[high]))
            if len(part) < 2:
                continue
            # how many of its months are compared, when not all are: a platform whose tasks are
            # mostly undated or unknown (the real dump's facebook) is compared over a few months
            label = str(platform) + (
                f" ({len(part)} of {len(months)} months with an interval)"
                if len(part) < len(months)
                else ""
            )
            # the month with the highest low end, and the one with the lowest high end
            above = part.sort_values("low", kind="stable").iloc[-1]
            below = part.sort_values("high", kind="stable").iloc[0]
            if above["low"] <= below["high"]:
                overlapping.append(label)
                continue
            apart.append(
                f"{label}: {_month_stated(above, value, n, shown)} lies above"
                f" {_month_stated(below, value, n, shown)}, beyond both intervals"
            )
        if not apart and not overlapping:
            continue
        parts = []
        if apart:
            parts.append(
                "; ".join(apart) + " (of many pairs of months, one may differ this much by chance)"
            )
        if overlapping:
            parts.append(
                f"within {_listed(overlapping)} every month's 95% interval overlaps every other's,"
                " so no month is singled out"
            )
        sentences.append(
            f"{what.capitalize()} by join month, compared within each platform: {'; '.join(parts)}"
            " (a month of fewer than two tasks has no interval and is not compared)."
        )
    return sentences


def _month_stated(row: pd.Series, value: str, n: str, shown: Callable[[Any], str]) -> str:
    """`Mar 2024 (350.6 over 68 tasks, 95% interval 316.4 to 384.8)`: an engagement_by_join_month
    row's month, its value, n and interval."""
    return (
        f"{pd.Timestamp(row['join_month']):%b %Y} ({shown(row[value])} over {_tasks(row[n])},"
        f" {_interval(row, value, shown)})"
    )


def _included(overview: pd.DataFrame) -> str:
    """What the headline counts and sums hold that their figures do not show: users without
    programs and programs without tasks (no engagement to show), negative amounts and outliers
    in the known sales. Only what there is; one sentence saying so when there is none."""
    if overview.empty:
        return ""
    o = _records(overview)[0]

    def count(n: Any, one: str, many: str) -> str:
        return f"{int(n):,} {one if int(n) == 1 else many}"

    empty = []
    if o["users_without_programs"]:
        empty.append(
            f"{count(o['users_without_programs'], 'user', 'users')} of {int(o['user_count']):,}"
            " without a program"
        )
    if o["programs_without_tasks"]:
        empty.append(
            f"{count(o['programs_without_tasks'], 'program', 'programs')} of "
            f"{int(o['program_count']):,} without a task"
        )
    odd = []
    if o["sales_negative"]:
        odd.append(count(o["sales_negative"], "negative amount", "negative amounts"))
    if o["sales_outliers"]:
        odd.append(count(o["sales_outliers"], "outlier program", "outlier programs"))
    parts = []
    if empty:
        parts.append(
            "They hold "
            + " and ".join(empty)
            + " (an empty or unusable list), which have no engagement to show."
        )
    if odd:
        parts.append(
            "The known sales include "
            + " and ".join(odd)
            + " (see the sales section), as the data holds them."
        )
    return " ".join(parts) or (
        "Every user has a program and every program a task; no known sales amount is negative"
        " or an outlier."
    )


def _coverage(overview: pd.DataFrame) -> list[dict[str, Any]]:
    """overview as one row per measure: its rows, known, share known, total and average."""
    if overview.empty:
        return []
    row = _records(overview)[0]
    out = []
    for label, known, rows, what in charts.COVERAGE:
        measure = {"sales": "sales", "engagement rate": None}.get(
            label, label if label in charts.MEASURES else None
        )
        out.append(
            {
                "measure": label,
                "per": what[:-1],
                "rows": row[rows],
                "known": row[known],
                "share": row[known] / row[rows] if row[rows] else None,
                "total": row.get(measure) if measure else None,
                "average": row.get(f"{measure}_average") if measure else None,
                "rate": row["engagement_rate"] if label == "engagement rate" else None,
            }
        )
    return out


def _unknown_members(attribution: pd.DataFrame, brands: pd.DataFrame) -> list[dict[str, Any]]:
    """sales_attribution's unknown members, each summed into one row with its size (never
    ranked), from the model's rows or their sums (_fetch_attribution_sums). A program is in
    one row per platform it has tasks on, so the unknown brand's programs are counted by the
    brand model (engagement_by_brand's unknown row), not summed over its platforms; a program
    is in one unknown-platform row at most (that of its brand), and in one no-tasks row.
    `per_program` is whole sales per program with known sales, as the platform chart's."""
    if attribution.empty:
        return []
    unknown_brand = (
        brands[brands["is_unknown_brand"].fillna(False).astype(bool)]
        if not brands.empty
        else brands
    )
    rows = []
    for label, mask in (
        ("unknown brand", attribution["is_unknown_brand"]),
        ("unknown platform", attribution["is_unknown_platform"]),
        ("no tasks (no platform)", attribution["is_without_tasks"]),
    ):
        part = attribution[mask.fillna(False).astype(bool)]
        if part.empty:
            continue
        if label == "unknown brand" and not unknown_brand.empty:
            brand = unknown_brand.iloc[0]
            programs, known = int(brand["program_count"]), int(brand["sales_known"])
            whole = None if pd.isna(brand["sales"]) else brand["sales"]
        else:
            programs, known = int(part["program_count"].sum()), int(part["sales_known"].sum())
            whole = part["program_sales"].sum(min_count=1)
        rows.append(
            {
                "member": label,
                "programs": programs,
                "known": known,
                "sales": part["attributed_sales"].sum(min_count=1),
                "per_program": None
                if whole is None or pd.isna(whole) or not known
                else float(whole) / known,
            }
        )
    return rows


def _peer_groups(outliers: pd.DataFrame) -> list[dict[str, Any]]:
    """sales_outliers per peer group: its size, how many programs it scores, median, MAD, bounds
    and its outliers (every outlier is among the rows read, so the count is whole even from a
    sample)."""
    scored = (
        outliers[outliers["is_scored"].fillna(False).astype(bool)]
        if not outliers.empty
        else outliers
    )
    if scored.empty:
        return []
    groups = scored.groupby(["peer_group_level", "peer_group"], as_index=False).agg(
        size=("peer_group_size", "max"),
        scored=("peer_group_scored", "max"),
        median=("peer_median", "max"),
        mad=("peer_median_absolute_deviation", "max"),
        lower=("lower_bound", "max"),
        upper=("upper_bound", "max"),
        outliers=("is_outlier", lambda v: int(v.fillna(False).astype(bool).sum())),
    )
    return _records(groups.sort_values("size", ascending=False))


def _latest_quality(
    batches: pd.DataFrame, quality: pd.DataFrame, summary: pd.DataFrame
) -> dict[str, Any] | None:
    """What the latest batch made current: its documents, how many are fully clean, and per
    record type its clean records (a batch whose files were all unchanged or quarantined made no
    document current, and has no row in data_quality_summary). None before any batch."""
    if batches.empty:
        return None
    batch_id = int(batches["batch_id"].max())
    documents = summary[summary["batch_id"] == batch_id] if not summary.empty else summary
    records = int(documents["records"].sum()) if not documents.empty else 0
    clean = int(documents["clean_records"].sum()) if not documents.empty else 0
    types = (
        quality[(quality["batch_id"] == batch_id) & (quality["field"] == charts.ALL_FIELDS)]
        if not quality.empty
        else quality
    )
    return {
        "batch_id": batch_id,
        "records": records,
        "clean_records": clean,
        "clean_share": clean / records if records else None,
        "types": [
            {
                "record_type": t["record_type"],
                "records": int(t["records"]),
                "clean": int(t["records"] - t["records_affected"]),
            }
            for t in _records(types.sort_values("record_type"))
        ]
        if not types.empty
        else [],
    }


def build_tables(models: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The rows the template's tables show (small: a table is for reading, a chart for shape)."""
    batches, quality = models["batches"], models["quality"]
    current = charts.current_quality(quality)
    summary_rows = current["field"] == charts.ALL_FIELDS
    brands, outliers = models["brands"], models["outliers"]
    attribution = models["attribution_listed"]
    flagged = (
        outliers[outliers["is_outlier"].fillna(False).astype(bool)]
        if not outliers.empty
        else outliers
    )
    platforms = models["platforms"]
    if not platforms.empty:
        # the charts' rows, in the dot chart's order (the table is not a ranking: the
        # comparison sentences under it say what the intervals let one rank): a free-text
        # platform field's labels past the first few summed into one row (not ranked, before
        # the unknown platform), so the table stays readable; a platform outside the accepted
        # ones (`tik tok`) is shown after them, not ranked
        platforms = (
            charts.platform_rows(platforms)
            .assign(unknown=lambda d: d["platform"].isna())
            .assign(unaccepted=lambda d: ~d["unknown"] & ~d["is_folded"] & ~is_ranked_platform(d))
            .assign(unranked=lambda d: ~is_ranked_platform(d))
            .sort_values(["unknown", "is_folded", "unaccepted"], kind="stable")
        )
    leaderboard, cut = _leaderboard(models["advocates"])
    return {
        "overview": _records(models["overview"])[0] if not models["overview"].empty else None,
        "coverage": _coverage(models["overview"]),
        "included": _included(models["overview"]),
        "join_span": _join_span(models["overview"]),
        "latest_batch": _records(batches.tail(1))[0] if not batches.empty else None,
        "batches": _records(batches.iloc[::-1].head(20)),
        "clean": _records(current[summary_rows].sort_values("record_type")),
        "defects": _records(
            current[~summary_rows & (current["defect_count"].fillna(0) > 0)].sort_values(
                ["record_type", "defect_count", "field", "defect"],
                ascending=[True, False, True, True],
            )
        ),
        "latest_quality": _latest_quality(batches, quality, models["quality_summary"]),
        "platforms": _records(platforms) if not platforms.empty else [],
        "platform_comparison": platform_comparison(models["platforms"]),
        "join_month_comparison": join_month_comparison(models["by_month"], models["platforms"]),
        "leaderboard": leaderboard,
        "leaderboard_cut": cut,
        "ranked": ranking_coverage_sentence(models["ranked"]),
        "brands": _ranked(brands, "sales_rank", BRANDS),
        "unknown_brand": _records(brands[brands["is_unknown_brand"]])[0]
        if not brands.empty and brands["is_unknown_brand"].any()
        else None,
        "attribution": _ranked(attribution, "sales_rank", ATTRIBUTION_ROWS),
        "unknown_members": _unknown_members(models["attribution_sums"], brands),
        "peer_groups": _peer_groups(outliers),
        "outliers": _records(
            flagged.sort_values("robust_z_score", ascending=False, key=abs).head(20)
        )
        if not flagged.empty
        else [],
        "outlier_total": int(models["overview"]["sales_outliers"].iloc[0])
        if not models["overview"].empty
        else 0,
        "method": _records(outliers[["outlier_threshold", "min_group_size"]].head(1)),
        "programs": models["programs"].attrs["total"],
        "documents": charts.current_documents(models["quality_summary"]),
    }


def _leaderboard(advocates: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Row i holds the i-th user of each ranking (engagement, reach, sales), or None past its end.
    Within a rank (a tie), users are listed by label, then user_key. With it, per ranking, what a
    tie across the cut leaves out (charts.top_rows; "" when nothing)."""
    tops = (
        {
            k: charts.top_rows(
                advocates[advocates["ranking"] == k], "rank", ["label", "user_key"], LEADERS
            )
            for k in ("engagement", "reach", "sales")
        }
        if not advocates.empty
        else {}
    )
    columns = {k: _records(top.shown) for k, top in tops.items()}
    rows = [
        {k: (rows[i] if i < len(rows) else None) for k, rows in columns.items()}
        for i in range(max(map(len, columns.values()), default=0))
    ]
    return rows, {k: top.note for k, top in tops.items() if top.hidden}


def _ranked(rows: pd.DataFrame, rank: str, n: int) -> dict[str, Any]:
    """A table's first `n` rows by `rank` (ties by name), each marked when it shares its rank,
    and the note of the tied rows the cut leaves out."""
    if rows.empty:
        return {"rows": [], "note": ""}
    top = charts.top_rows(rows, rank, ["brand"], n)
    shown = top.shown.assign(is_tied=[r in top.tied for r in top.shown[rank]])
    return {"rows": _records(shown), "note": top.note}


# --- rendering ------------------------------------------------------------------------------


def _number(value: Any, digits: int = 0) -> str:
    return "—" if _missing(value) else charts.number_text(value, digits)


def _breakable(value: Any) -> Markup:
    """A name (total_sales_attributed, quarantined:repair-incomplete) or a long figure
    (14,030,613,539,655) that may wrap after its underscores, colons and commas, escaped: in a
    half-width card a name without spaces would otherwise push the numbers beside it out of
    sight, and a figure run under the next card."""
    return (
        escape(value)
        .replace("_", Markup("_<wbr>"))
        .replace(":", Markup(":<wbr>"))
        .replace(",", Markup(",<wbr>"))
    )


def _clipped(value: Any, limit: int = CLIPPED_CHARS) -> Markup | str:
    """A value from the data (a platform label, a brand, an advocate's label) as a table shows
    it: whole up to `limit` characters, else its start and "…", the whole value in the cell's
    tooltip; escaped. A 3,000-character brand would otherwise set the width of its table."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return Markup('<span title="{}">{}…</span>').format(text, text[: limit - 1])


def _figure_size(text: str) -> str:
    """The class of a card's figure by its length: a smaller font for a long one (sales of
    15,405,961 fit a sixth of the page at 21 px, not at 26), so it wraps only when it must."""
    return "longer" if len(text) > 14 else "long" if len(text) > 8 else ""


def _duration(value: Any) -> str:
    """Seconds as a reader wants them: one decimal, two under a second (a batch of a few files
    takes 0.03 s, not "0.0 s"), "< 0.01 s" below that."""
    if _missing(value):
        return "—"
    seconds = float(value)
    if seconds < 0.01:
        return "< 0.01 s"
    return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:,.1f} s"


def _percent(value: Any, digits: int = 1) -> str:
    return "—" if _missing(value) else f"{float(value):.{digits}%}"


def _when(value: Any) -> str:
    if _missing(value):
        return "—"
    return (
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if hasattr(value, "astimezone")
        else str(value)
    )


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("duel", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=_number,
        percent=_percent,
        when=_when,
        duration=_duration,
        breakable=_breakable,
        clipped=_clipped,
        figure_size=_figure_size,
        platform_colour=charts.platform_colour,  # the charts' colours, in the tables too
    )
    return env


def chart_html(name: str, figure: Any) -> Markup:
    """A figure as a <div> + script; plotly.js itself is inlined once by the page."""
    # plotly's own markup: the figure's data goes in as JSON with <, > and / escaped
    return Markup(  # noqa: S704
        figure.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"chart-{name}", config=PLOT_CONFIG
        )
    )


def render_report(models: dict[str, pd.DataFrame], database: str) -> tuple[str, int]:
    """The page's HTML and its number of charts."""
    from plotly.offline import get_plotlyjs

    figures = build_figures(models)
    page = (
        environment()
        .get_template("report.html.j2")
        .render(
            charts={name: chart_html(name, fig) for name, fig in figures.items()},
            tables=build_tables(models),
            plotly_js=Markup(get_plotlyjs()),  # noqa: S704  the plotly.js library, as shipped
            version=__version__,
            database=database,
            generated_at=datetime.now(UTC),
            models=[f"{SCHEMA}.{m}" for m in MODELS],
        )
    )
    return page, len(figures)


def build_report(settings: Settings, out: Path | None = None) -> ReportResult:
    """Write `report.html` into `out` (default: settings.out_dir) and say where."""
    directory = out or settings.out_dir
    directory.mkdir(parents=True, exist_ok=True)
    page, count = render_report(read_models(settings), settings.pg_database)
    path = directory / "report.html"
    part = directory / ".report.html.part"
    part.write_text(page, encoding="utf-8")
    os.replace(part, path)
    return ReportResult(path, count, path.stat().st_size)
