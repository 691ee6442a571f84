"""Charts of the results (dbt_analysis): coverage, engagement, top advocates, brands, programs,
sales and their outliers. Every comparison shows the n it is over; unknown members (platform,
join month, brand) get rows of their own and are never ranked; dots, not bars, where the values
are close and the axis must show their differences."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from duel.charts.look import (
    COLOURS,
    SUBTITLED_TOP,
    Rows,
    _label,
    _short,
    empty_chart,
    frame,
    number_text,
    platform_colour,
    style,
)

COVERAGE = (
    ("user_id", "user_id_known", "user_count", "users"),
    ("join date", "joined_at_known", "user_count", "users"),
    ("brand", "brand_known", "program_count", "programs"),
    ("sales", "sales_known", "program_count", "programs"),
    ("platform", "platform_known", "task_count", "tasks"),
    ("likes", "likes_known", "task_count", "tasks"),
    ("comments", "comments_known", "task_count", "tasks"),
    ("shares", "shares_known", "task_count", "tasks"),
    ("reach", "reach_known", "task_count", "tasks"),
    ("engagement", "engagement_known", "task_count", "tasks"),
    ("engagement rate", "engagement_rate_tasks", "task_count", "tasks"),
)
MEASURES = ("likes", "comments", "shares", "reach", "engagement")
UNKNOWN_PLATFORM = "unknown platform"
# The outliers chart draws one column per peer group: this many at most (a million generated
# users make hundreds of brand-and-platform groups), each label wrapped at this many characters
PEER_GROUPS_DRAWN = 10
GROUP_LABEL_WIDTH = 14
# its height, the room below the plot for two lines of labels and the legend, and a label line
OUTLIERS_HEIGHT = 520
LEGEND_BELOW = 100
LABEL_LINE_PX = 16
NO_JOIN_DATE = "no join date"
# Platform labels the data made up (kept by the models, flagged unknown-value): the charts draw
# this many of them, those over most tasks (programs), and sum the rest into one row, so a dump
# whose platform field holds free text still gives readable charts (the tables list every label)
OTHER_PLATFORMS_DRAWN = 5
PLATFORM_LABEL_CHARS = 24


def _number(value: Any, digits: int = 0) -> str:
    """A cell of a model (int, float, Decimal; None or NaN when unknown) with thousands commas."""
    return "n/a" if value is None or pd.isna(value) else number_text(value, digits)


def coverage_chart(overview: Rows) -> go.Figure:
    """overview: for each measure and grouping field, the share of its rows with a known value."""
    data = frame(overview)
    if data.empty:
        return empty_chart()
    row = data.iloc[0]
    labels, shares, texts = [], [], []
    for label, known, rows, what in reversed(COVERAGE):
        total = int(row[rows])
        labels.append(f"{label} ({what})")
        shares.append(int(row[known]) / total if total else None)
        texts.append(f"{int(row[known]):,} of {total:,}")
    fig = go.Figure()
    fig.add_bar(
        y=labels,
        x=shares,
        orientation="h",
        text=texts,
        textposition="auto",
        insidetextanchor="end",
        marker_color=[
            COLOURS["good"]
            if (s or 0) >= 0.9
            else COLOURS["warn"]
            if (s or 0) >= 0.5
            else COLOURS["bad"]
            for s in shares
        ],
        hovertemplate="%{y}: %{x:.1%} known (%{text})<extra></extra>",
        showlegend=False,
    )
    fig.update_layout(
        xaxis={
            "title": "share of the rows with a known value",
            "tickformat": ".0%",
            "range": [0, 1],
        }
    )
    return style(fig, "Coverage: how much of each measure is known", height=40 * len(labels) + 140)


def _folded_labels(
    weights: Mapping[Any, Any], own_rows: tuple[str, ...], kept: frozenset[str] = frozenset()
) -> tuple[dict[Any, str], str | None]:
    """label -> the label drawn, and the folded row's label (None when nothing is folded): each
    label as itself, shortened when long, but the made-up platform labels (no colour of their
    own, not one of `own_rows`, not `kept`: the accepted platforms) beyond the
    OTHER_PLATFORMS_DRAWN with most weight, which are drawn as one row, "<k> other platforms"."""
    made_up = sorted(
        (
            label
            for label in weights
            if label not in own_rows
            and label not in kept
            and platform_colour(label) == COLOURS["warn"]
        ),
        key=lambda label: (-float(weights[label] or 0), str(label)),
    )
    folded = made_up[OTHER_PLATFORMS_DRAWN:] if len(made_up) > OTHER_PLATFORMS_DRAWN + 1 else []
    # two long labels with one start stay two rows ("…", "… (2)"); a dump of free text may
    # hold thousands sharing a start, so each start counts its own (no search from 1)
    drawn: dict[Any, str] = {}
    taken: set[str] = set()
    starts: Counter[str] = Counter()
    for label in sorted(weights, key=str):
        short = candidate = _short(str(label), PLATFORM_LABEL_CHARS)
        while candidate in taken:
            starts[short] += 1
            candidate = f"{short} ({starts[short] + 1})"
        drawn[label] = candidate
        taken.add(candidate)
    if not folded:
        return drawn, None
    name = f"{len(folded)} other platforms"
    return drawn | dict.fromkeys(folded, name), name


def _ordered(
    data: pd.DataFrame,
    weight: str,
    own_rows: tuple[str, ...],
    folded: str | None,
    kept: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """The platforms with a colour of their own and the `kept` ones first (by name, as
    before), then the made-up labels by `weight`, most first, then "<k> other platforms", then
    `own_rows` (unknown platform, no tasks)."""
    rank = [
        (3, 0.0)
        if label in own_rows
        else (2, 0.0)
        if label == folded
        else (1, -float(n or 0))
        if platform_colour(label) == COLOURS["warn"] and label not in kept
        else (0, 0.0)
        for label, n in zip(data["label"], data[weight], strict=True)
    ]
    data = data.assign(order=[r[0] for r in rank], weight_rank=[r[1] for r in rank])
    return data.sort_values(["order", "weight_rank", "label"], ascending=[True, True, False])


def _known_sum(values: pd.Series) -> Any:
    """The sum of the known values; None when none is known (never 0)."""
    known = [v for v in values if not pd.isna(v)]
    return sum(known) if known else None


def _ratio(part: Any, whole: Any) -> float | None:
    return None if part is None or pd.isna(part) or not whole else float(part) / float(whole)


def platform_rows(platforms: Rows) -> pd.DataFrame:
    """engagement_by_platform with a label per row; the unknown platform last, as its own row;
    made-up labels past the first few summed into one row before it (_folded_labels), whose
    shares, averages and rate are computed from the summed parts, as the models compute them.
    The platform charts and the report's platform table show these rows; `is_folded` marks the
    summed one (its `platform` is its label). An accepted platform is never folded: it is what
    the comparison ranks (report.platform_comparison)."""
    data = frame(platforms)
    labels = [UNKNOWN_PLATFORM if pd.isna(p) else str(p) for p in data["platform"]]
    accepted = data.get("is_accepted_platform", pd.Series(False, index=data.index))
    kept = frozenset(
        label for label, yes in zip(labels, accepted.fillna(False), strict=True) if yes
    )
    drawn, folded_label = _folded_labels(
        dict(zip(labels, data["task_count"], strict=True)), (UNKNOWN_PLATFORM,), kept
    )
    data["label"] = [drawn[label] for label in labels]
    folded = data[data["label"] == folded_label]
    if not folded.empty:
        row: dict[str, Any] = {"label": folded_label}
        row["platform"] = row["label"]
        for column in ("task_count", "engagement_rate_tasks"):
            row[column] = int(folded[column].sum())
        for column in ("engagement_rate_engagement", "engagement_rate_reach"):
            row[column] = _known_sum(folded[column])
        for m in MEASURES:
            row[m] = _known_sum(folded[m])
            row[f"{m}_known"] = int(folded[f"{m}_known"].sum())
            row[f"{m}_known_share"] = _ratio(row[f"{m}_known"], row["task_count"])
            row[f"{m}_average"] = _ratio(row[m], row[f"{m}_known"])
        row["engagement_rate"] = _ratio(
            row["engagement_rate_engagement"], row["engagement_rate_reach"]
        )
        data = pd.concat([data.drop(folded.index), pd.DataFrame([row])], ignore_index=True)
    data["is_folded"] = data["label"] == folded_label
    return _ordered(data, "task_count", (UNKNOWN_PLATFORM,), folded_label, kept)


def coverage_by_platform_chart(platforms: Rows) -> go.Figure:
    """engagement_by_platform: per platform and measure, the share of its tasks with a known
    value."""
    data = frame(platforms)
    if data.empty:
        return empty_chart()
    data = platform_rows(data)
    z = [[row[f"{m}_known_share"] for m in MEASURES] for _, row in data.iterrows()]
    text = [
        [
            f"{row[f'{m}_known_share']:.0%}<br>"
            f"{int(row[f'{m}_known']):,} of {int(row['task_count']):,}"
            for m in MEASURES
        ]
        for _, row in data.iterrows()
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(MEASURES),
            y=[f"{label}" for label in data["label"]],
            text=text,
            texttemplate="%{text}",
            zmin=0,
            zmax=1,
            showscale=False,
            colorscale=[[0, "#F4D3CF"], [0.5, "#F7E7B4"], [1, "#CFE8D8"]],
            hovertemplate="%{y}, %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(xaxis={"side": "top"})
    fig.update_yaxes(autorange="reversed")
    return style(fig, "Tasks with a known value, per platform", height=90 * len(data) + 120)


def _dots(
    fig: go.Figure,
    data: pd.DataFrame,
    value: str,
    text: list[str],
    colour: list[str] | str,
    row: int,
    col: int,
    fmt: str,
    room: float = 2.2,
    interval: tuple[str, str] | None = None,
) -> None:
    """A dot per row at `value`, labelled, on an axis fitted to the values (dots need no zero);
    `room`: how much space (in paddings) the labels need right of the largest value.
    `interval`: the columns of each value's low and high bound, drawn as a bar through its dot
    (the label then sits above the dot, off the bar; the axis fits the bars)."""
    values = pd.to_numeric(data[value], errors="coerce")
    error_x = None
    fitted = values.dropna()
    if interval is not None:
        lows = pd.to_numeric(data[interval[0]], errors="coerce")
        highs = pd.to_numeric(data[interval[1]], errors="coerce")
        error_x = {
            "type": "data",
            "symmetric": False,
            "array": (highs - values).fillna(0).tolist(),
            "arrayminus": (values - lows).fillna(0).tolist(),
            "color": "#5B6473",
            "thickness": 1.5,
            "width": 5,
        }
        fitted = pd.concat([fitted, lows.dropna(), highs.dropna()])
        room = 0.2
    fig.add_scatter(
        x=data[value],
        y=data["label"],
        mode="markers+text",
        text=text,
        textposition="top center" if interval is not None else "middle right",
        marker={"size": 14, "color": colour, "line": {"width": 1, "color": "white"}},
        error_x=error_x,
        cliponaxis=False,
        showlegend=False,
        row=row,
        col=col,
        hovertemplate="%{y}: %{x:" + fmt + "}<extra></extra>",
    )
    if not fitted.empty:
        low, high = float(fitted.min()), float(fitted.max())
        pad = (high - low) * 0.25 or abs(high) * 0.05 or 1.0
        # whole numbers, unless the axis spans so little that its ticks would repeat one
        # ("13 13 14 14" for a single advocate at 13)
        span = (high + room * pad) - (low - pad)
        digits = 0 if span >= 10 else 1 if span >= 1 else 2
        fig.update_xaxes(
            range=[low - pad, high + room * pad], tickformat=f",.{digits}f", row=row, col=col
        )


def engagement_by_platform_chart(platforms: Rows) -> go.Figure:
    """engagement_by_platform: engagement per task with known engagement, and the engagement rate,
    per platform, each with the n it is over and its 95 % interval (a bar through the dot:
    platforms whose bars overlap are not told apart by the data); the unknown platform in its own
    (grey) row."""
    data = frame(platforms)
    if data.empty:
        return empty_chart()
    data = platform_rows(data)
    colours = [platform_colour(None if p == UNKNOWN_PLATFORM else p) for p in data["label"]]
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.14,
        shared_yaxes=True,
        subplot_titles=(  # two lines each: side by side on a narrow page they ran together
            "Engagement per task<br>(tasks with known engagement)",
            "Engagement rate<br>(tasks with engagement and reach known)",
        ),
    )
    _dots(
        fig,
        data,
        "engagement_average",
        [
            f"{_number(v, 1)}  (n = {int(n):,})"
            for v, n in zip(data["engagement_average"], data["engagement_known"], strict=True)
        ],
        colours,
        1,
        1,
        ",.1f",
        interval=("engagement_average_low", "engagement_average_high"),
    )
    _dots(
        fig,
        data,
        "engagement_rate",
        [
            f"{v:.2%}  (n = {int(n):,})" if pd.notna(v) else "n/a"
            for v, n in zip(data["engagement_rate"], data["engagement_rate_tasks"], strict=True)
        ],
        colours,
        1,
        2,
        ".2%",
        interval=("engagement_rate_low", "engagement_rate_high"),
    )
    fig.update_xaxes(tickformat=".1%", row=1, col=2)
    # reversed, the first row at the top, with room above it for its label (over its dot)
    fig.update_yaxes(range=[len(data) - 0.5, -0.9])
    fig.update_annotations(font={"size": 13})
    style(fig, height=70 * len(data) + 190)
    # the last dot's label may run past its axis (drawn unclipped): a margin to hold it, so a
    # narrow page shows "(n = 72)", not "(n = 7"
    fig.update_layout(margin={"r": 100, "t": 90})
    return fig


def engagement_over_time_chart(by_month: Rows) -> go.Figure:
    """engagement_by_join_month: per join month, the tasks (stacked by platform), and each
    platform's engagement per task with known engagement and engagement rate, each point with
    its n and its 95 % interval (a bar through it), the platforms side by side in a month: a
    month is compared with another within a platform, never across a changing platform mix.
    Users with no usable join date are the last column, "no join date", with their size: never
    dropped. A month between the first and the last without a user is drawn empty (no bar, a
    gap in the lines). The value axes run from zero to a little above the highest point: a
    bar wider than that (a point over a few tasks) runs off the top, its whole interval in its
    hover text."""
    data = frame(by_month)
    if data.empty:
        return empty_chart("no tasks")
    data = data.assign(
        month=[
            (NO_JOIN_DATE if pd.isna(m) else pd.Timestamp(m).strftime("%b %Y"))
            for m in data["join_month"]
        ],
        platform_label=[UNKNOWN_PLATFORM if pd.isna(p) else str(p) for p in data["platform"]],
    )
    drawn, folded = _folded_labels(
        data.groupby("platform_label")["task_count"].sum().to_dict(), (UNKNOWN_PLATFORM,)
    )
    data["platform_label"] = data["platform_label"].map(drawn)
    # every month from the first to the last, those without a user too: a month left out of the
    # category axis would draw the lines straight across it, as if it had been measured
    known_months = [pd.Timestamp(m).to_period("M") for m in data["join_month"] if not pd.isna(m)]
    months = (
        [p.strftime("%b %Y") for p in pd.period_range(min(known_months), max(known_months))]
        if known_months
        else []
    ) + ([NO_JOIN_DATE] if data["join_month"].isna().any() else [])
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.4, 0.3, 0.3],
        subplot_titles=(
            "Tasks, by the users' join month",
            "Engagement per task with known engagement (95% interval)",
            "Engagement rate (95% interval)",
        ),
    )
    measures = (
        ("engagement_average", "engagement_known", ",.1f", 2),
        ("engagement_rate", "engagement_rate_tasks", ".2%", 3),
    )
    tops = {2: 0.0, 3: 0.0}
    for platform, part in data.groupby("platform_label", sort=True):
        colour = platform_colour(None if platform == UNKNOWN_PLATFORM else platform)
        tasks = part.groupby("month")["task_count"].sum().reindex(months)
        fig.add_bar(
            x=months,
            y=tasks.fillna(0),
            name=str(platform),
            legendgroup=str(platform),
            # one stack, placed apart from the points' offset groups (below), which would
            # otherwise share each month's width with it
            alignmentgroup="tasks",
            offsetgroup="tasks",
            row=1,
            col=1,
            marker_color=colour,
            hovertemplate=f"{platform}, %{{x}}: %{{y:,}} tasks<extra></extra>",
        )
        # a folded row sums several labels: no one value, nor interval, of its own to draw; so
        # does a label two platforms share (a platform spelt "unknown platform" beside the
        # unknown one), whose bars stack
        if platform == folded or part["month"].duplicated().any():
            continue
        points = part.set_index("month").reindex(months)
        for value, n, fmt, row in measures:
            values = pd.to_numeric(points[value], errors="coerce")
            lows = pd.to_numeric(points[f"{value}_low"], errors="coerce")
            highs = pd.to_numeric(points[f"{value}_high"], errors="coerce")
            if values.notna().any():
                tops[row] = max(tops[row], float(values.max()))
            plotted = pd.DataFrame(
                {
                    "value": values,
                    "low": lows,
                    "high": highs,
                    "n": points[n].fillna(0).astype(int),
                    "interval": [
                        "" if pd.isna(low) else f" (95% interval {low:{fmt}} to {high:{fmt}})"
                        for low, high in zip(lows, highs, strict=True)
                    ],
                },
                index=months,
            )
            # the dated months joined by a line; the undated column, no point in time, a dot
            undated = plotted.index == NO_JOIN_DATE
            for mode, segment in (
                ("lines+markers", plotted[~undated]),
                ("markers", plotted[undated]),
            ):
                if not segment["value"].notna().any():
                    continue
                fig.add_scatter(
                    x=list(segment.index),
                    y=segment["value"],
                    mode=mode,
                    name=str(platform),
                    legendgroup=str(platform),
                    # side by side in a month (layout scattermode): one offset per platform
                    alignmentgroup="points",
                    offsetgroup=str(platform),
                    showlegend=False,
                    row=row,
                    col=1,
                    line={"color": colour, "width": 2},
                    marker={"size": 7, "color": colour},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": (segment["high"] - segment["value"]).fillna(0).tolist(),
                        "arrayminus": (segment["value"] - segment["low"]).fillna(0).tolist(),
                        "color": colour,
                        "thickness": 1.2,
                        "width": 3,
                    },
                    customdata=list(zip(segment["n"], segment["interval"], strict=True)),
                    hovertemplate=f"{platform}, "
                    + "%{x}: %{y:"
                    + fmt
                    + "} over %{customdata[0]:,} tasks%{customdata[1]}<extra></extra>",
                )
    fig.update_yaxes(tickformat=".1%", row=3, col=1)
    # from zero (on an axis fitted to the points, months 6 % apart looked several times apart)
    # to a little above the highest point: a bar over two tasks may span thousands
    for row, top in tops.items():
        fig.update_yaxes(range=[0, top * 1.3 or 1], row=row, col=1)
    fig.update_layout(
        barmode="stack",
        scattermode="group",
        scattergap=0.5,
        xaxis3={"title": "users' join month", "type": "category"},
    )
    fig.update_annotations(font={"size": 13})
    return style(fig, height=820)


class Top(NamedTuple):
    """The first rows of a ranking, and the rows tied with the last of them that the cut leaves
    out (`hidden` of rank `rank`): a tie across the cut is said, never silently halved."""

    shown: pd.DataFrame
    hidden: int
    rank: int | None
    tied: frozenset[Any]  # the ranks more than one ranked row holds (a tie: `=`)

    @property
    def note(self) -> str:
        """`+3 tied at #5 not shown`, or "" when the cut leaves no tied row out."""
        return f"+{self.hidden} tied at #{self.rank} not shown" if self.hidden else ""


def top_rows(rows: pd.DataFrame, rank: str, order: list[str], n: int) -> Top:
    """The first `n` of `rows` ranked by `rank` (ties in `order` after it), and how many rows
    share the last shown rank but fall past the cut."""
    ranked = rows[rows[rank].notna()].sort_values([rank, *order])
    counts = ranked[rank].value_counts()
    tied = frozenset(counts[counts > 1].index)
    shown = ranked.head(n)
    if shown.empty or len(ranked) <= n:
        return Top(shown, 0, None, tied)
    last = shown[rank].iloc[-1]
    return Top(shown, int((ranked[rank].iloc[n:] == last).sum()), int(last), tied)


def top_advocates_chart(advocates: Rows, top_n: int = 10) -> go.Figure:
    """top_advocates: the top `top_n` users of each ranking, a dot per user on an axis fitted to the
    values (so close values stay apart); `=` marks a tie, names are the users' best identifiers."""
    data = frame(advocates)
    if data.empty:
        return empty_chart("no advocates")
    rankings = [r for r in ("engagement", "reach", "sales") if r in set(data["ranking"])]
    fig = make_subplots(
        rows=1,
        cols=len(rankings),
        horizontal_spacing=0.2,
        subplot_titles=[f"by {r}" for r in rankings],
    )
    ranking_colours = {
        "engagement": COLOURS["primary"],
        "reach": COLOURS["good"],
        "sales": COLOURS["secondary"],
    }
    for col, ranking in enumerate(rankings, 1):
        top = top_rows(data[data["ranking"] == ranking], "rank", ["label", "user_key"], top_n)
        if top.hidden:
            fig.layout.annotations[col - 1].text += f"<br><sub>{top.note}</sub>"
        part = top.shown.assign(
            label=lambda d: [
                f"{int(r)}{'=' if t else ''}. {_short(str(name), 22)}"
                for r, t, name in zip(d["rank"], d["is_tied"], d["label"], strict=True)
            ]
        )
        digits = 2 if ranking == "sales" else 0
        _dots(
            fig,
            part,
            "value",
            [_number(v, digits) for v in part["value"]],
            ranking_colours[ranking],
            1,
            col,
            ",.2f" if digits else ",.0f",
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_annotations(font={"size": 13})
    return style(fig, height=max(360, 30 * top_n + 110))


# --- brands, programs and sales -------------------------------------------------------------


def brand_performance_chart(brands: Rows, top_n: int = 15) -> go.Figure:
    """engagement_by_brand: the top `top_n` known brands by sales and by engagement (their ranks),
    each with its coverage. The unknown brand is never ranked (its own row in the report's
    table)."""
    data = frame(brands)
    if data.empty:
        return empty_chart()
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.26,
        subplot_titles=(f"Top {top_n} by sales", f"Top {top_n} by engagement"),
    )
    for col, (rank, value, known, rows, colour, digits) in enumerate(
        (
            ("sales_rank", "sales", "sales_known", "program_count", COLOURS["secondary"], 0),
            (
                "engagement_rank",
                "engagement",
                "engagement_known",
                "task_count",
                COLOURS["primary"],
                0,
            ),
        ),
        1,
    ):
        top = top_rows(data[data[rank] <= top_n], rank, ["brand"], top_n)
        if top.hidden:
            fig.layout.annotations[col - 1].text += f"<br><sub>{top.note}</sub>"
        part = top.shown.assign(
            label=[
                f"{int(r)}{'=' if r in top.tied else ''}. {_short(str(b), 22)}"
                for r, b in zip(top.shown[rank], top.shown["brand"], strict=True)
            ]
        )
        what = "programs" if rows == "program_count" else "tasks"
        _dots(
            fig,
            part,
            value,
            [
                f"{_number(v, digits)}  ({int(k)} of {int(n)} {what})"
                for v, k, n in zip(part[value], part[known], part[rows], strict=True)
            ],
            colour,
            1,
            col,
            ",.0f",
            room=3.6,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_annotations(font={"size": 13})
    return style(fig, height=max(380, 26 * top_n + 100))


def program_performance_chart(programs: Rows, counts: Mapping[str, int] | None = None) -> go.Figure:
    """engagement_by_program: each program's engagement against its sales (one dot each), for the
    programs where both are known: its sales, and the engagement of every one of its tasks (the
    sum over some of them would draw it lower than it is). `counts` (programs, both_known,
    shown) says what is left out."""
    data = frame(programs)
    if not data.empty:
        data = data[
            data["engagement"].notna()
            & (data["engagement_known"] == data["task_count"])
            & data["total_sales_attributed"].notna()
        ]
    if data.empty:
        return empty_chart("no program with both engagement and sales")
    counts = counts or {"programs": len(data), "both_known": len(data), "shown": len(data)}
    fig = go.Figure()
    fig.add_scatter(
        x=data["engagement"],
        y=data["total_sales_attributed"],
        mode="markers",
        name="program",
        marker={"size": 5, "color": COLOURS["primary"], "opacity": 0.45},
        text=data["brand"].map(_label),
        hovertemplate="%{text}<br>engagement %{x:,}<br>sales %{y:,.2f}<extra></extra>",
    )
    fig.update_layout(
        xaxis_title="engagement (likes + comments + shares) of the program's tasks",
        yaxis={"title": "sales attributed", "rangemode": "tozero"},
    )
    shown = (
        f"all {counts['both_known']:,}"
        if counts["shown"] >= counts["both_known"]
        else f"a sample of {counts['shown']:,} of the {counts['both_known']:,}"
    )
    return style(
        fig,
        "Programs: engagement against sales",
        subtitle=f"{shown} programs with both known (engagement of every task); "
        f"{counts['programs'] - counts['both_known']:,} of {counts['programs']:,} lack one or both "
        "and are not drawn",
    )


def _by_platform_group(attribution: Rows) -> pd.DataFrame:
    """sales_attribution summed per platform; unknown platform and "no tasks" as rows of their
    own. `average` is the whole sales per program with known sales (program_sales over
    sales_known), not the split parts attributed to the platform."""
    data = frame(attribution)
    data["label"] = [
        "no tasks" if w else UNKNOWN_PLATFORM if u else str(p)
        for p, u, w in zip(
            data["platform"], data["is_unknown_platform"], data["is_without_tasks"], strict=True
        )
    ]
    programs = data.groupby("label")["program_count"].sum()
    drawn, folded_label = _folded_labels(programs.to_dict(), (UNKNOWN_PLATFORM, "no tasks"))
    data["label"] = data["label"].map(drawn)
    per = data.groupby("label", as_index=False).agg(
        programs=("program_count", "sum"),
        known=("sales_known", "sum"),
        whole=("program_sales", _known_sum),
        outliers=("outlier_programs", "sum"),
    )
    # per program: the programs' whole sales (a program on two platforms counts whole on both),
    # not their split parts, which shrink with the number of a program's platforms
    per["average"] = [_ratio(s, k) for s, k in zip(per["whole"], per["known"], strict=True)]
    return _ordered(per, "programs", (UNKNOWN_PLATFORM, "no tasks"), folded_label)


def sales_by_platform_chart(attribution: Rows) -> go.Figure:
    """sales_attribution: per platform, the programs with known and unknown sales, and the average
    sales per program with known sales (the comparable figure: totals differ with coverage), of
    whole programs: one with tasks on two platforms counts whole on both, where its attributed
    part on each would make every platform of multi-platform programs look worse.
    Takes the model's rows or the report's sums of them per platform and unknown flag."""
    data = frame(attribution)
    if data.empty:
        return empty_chart()
    per = _by_platform_group(data)
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.16,
        shared_yaxes=True,
        subplot_titles=(
            "Programs: sales known or not",
            "Sales per program with known sales (whole program)",
        ),
    )
    fig.add_bar(
        y=per["label"],
        x=per["known"],
        orientation="h",
        name="sales known",
        row=1,
        col=1,
        marker_color=COLOURS["primary"],
        text=[
            f"{k / n:.0%}" if n else "" for k, n in zip(per["known"], per["programs"], strict=True)
        ],
        textposition="inside",
        hovertemplate="%{y}: %{x:,} programs with known sales<extra></extra>",
    )
    fig.add_bar(
        y=per["label"],
        x=per["programs"] - per["known"],
        orientation="h",
        name="sales unknown",
        row=1,
        col=1,
        marker_color="#D5D9DF",
        hovertemplate="%{y}: %{x:,} programs with unknown sales<extra></extra>",
    )
    fig.add_bar(
        y=per["label"],
        x=per["average"],
        orientation="h",
        showlegend=False,
        row=1,
        col=2,
        marker_color=[
            platform_colour(None if p in (UNKNOWN_PLATFORM, "no tasks") else p)
            for p in per["label"]
        ],
        text=[
            f"{_number(a, 0)}  (n = {int(k):,})"
            for a, k in zip(per["average"], per["known"], strict=True)
        ],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{y}: %{x:,.2f} per program<extra></extra>",
    )
    fig.update_xaxes(title_text="programs", row=1, col=1)
    fig.update_xaxes(
        title_text="sales per program",
        range=[0, float(per["average"].max() or 1) * 1.45],
        row=1,
        col=2,
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_annotations(font={"size": 13})
    style(fig, height=70 * len(per) + 200)
    fig.update_layout(barmode="stack", legend={"y": -0.2, "yanchor": "top"}, margin={"b": 90})
    return fig


def _peer_groups_drawn(scored: pd.DataFrame) -> tuple[list[str], int]:
    """The peer groups the outliers chart draws, in its order (those with an outlier first,
    then by programs scored, then by name), at most PEER_GROUPS_DRAWN of them; and how many
    groups the rows hold."""
    ranking = (
        scored.groupby("peer_group", as_index=False)
        .agg(flagged=("is_outlier", "any"), scored=("peer_group_scored", "max"))
        .sort_values(["flagged", "scored", "peer_group"], ascending=[False, False, True])
    )
    return ranking["peer_group"].head(PEER_GROUPS_DRAWN).tolist(), len(ranking)


def sales_outliers_chart(
    outliers: Rows, total: int | None = None, unscored: int | None = None
) -> go.Figure:
    """sales_outliers: each program's sales within its peer group (one column per group, one dot per
    program), the group's median and bounds marked, outliers in red. `total`: how many scored
    programs there are when the rows are a sample of them (every outlier plus an even spread);
    `unscored`: how many programs with known sales were not scored, when the rows leave them out
    (the subtitle says so)."""
    data = frame(outliers)
    if not data.empty:
        scored = data["is_scored"].fillna(False).astype(bool)
        unscored = int((~scored).sum()) if unscored is None else unscored
        data = data[scored].copy()
    shown = len(data)
    if data.empty:
        return empty_chart("no scored sales")
    flagged = data["is_outlier"].fillna(False).astype(bool)
    groups_drawn, groups_all = _peer_groups_drawn(data.assign(is_outlier=flagged))
    outliers_all = int(flagged.sum())
    data = data[data["peer_group"].isin(groups_drawn)].copy()
    data["group"] = [
        "<br>".join([*textwrap.wrap(str(g), GROUP_LABEL_WIDTH), f"{int(n):,} scored"])
        for g, n in zip(data["peer_group"], data["peer_group_scored"], strict=True)
    ]
    outlier = flagged[data.index]
    fig = go.Figure()
    for name, part, colour, size in (
        ("within its group", data[~outlier], COLOURS["primary"], 4),
        ("outlier", data[outlier], COLOURS["bad"], 9),
    ):
        fig.add_box(
            x=part["group"],
            y=part["total_sales_attributed"],
            name=f"{name} ({len(part):,} shown)",
            boxpoints="all",
            jitter=0.7,
            pointpos=0,
            fillcolor="rgba(0,0,0,0)",
            line={"color": "rgba(0,0,0,0)"},
            marker={"color": colour, "size": size, "opacity": 0.5},
            hovertemplate="%{y:,.2f}<extra>" + name + "</extra>",
        )
    groups = data.drop_duplicates("group")
    for column, name, symbol in (
        ("upper_bound", "upper bound", "line-ew"),
        ("peer_median", "median", "diamond"),
        ("lower_bound", "lower bound (at least 0)", "line-ew"),
    ):
        fig.add_scatter(
            x=groups["group"],
            y=groups[column],
            mode="markers",
            name=name,
            marker={
                "symbol": symbol,
                "size": 34 if symbol == "line-ew" else 12,
                "color": COLOURS["ink"],
                "line": {"width": 3, "color": COLOURS["warn"] if symbol == "line-ew" else "white"},
            },
            hovertemplate=name + ": %{y:,.2f}<extra></extra>",
        )
    fig.update_layout(
        yaxis={"title": "sales per program", "rangemode": "tozero"}, boxmode="overlay"
    )
    labels = data.drop_duplicates("peer_group").set_index("peer_group")["group"]
    fig.update_xaxes(
        tickangle=0, categoryorder="array", categoryarray=[labels[g] for g in groups_drawn]
    )
    sample = (
        f"a sample of {shown:,} of {total:,} scored programs, every outlier included"
        if total and total > shown
        else f"all {shown:,} scored programs"
    )
    if len(groups_drawn) < groups_all:
        sample += (
            f"; {len(groups_drawn)} of the {groups_all:,} peer groups they fall in drawn "
            f"(those with an outlier first, then the largest): {len(data):,} programs"
        )
        missed = outliers_all - int(outlier.sum())
        if missed:
            sample += f", {missed:,} outlier(s) in groups not drawn"
    if unscored:
        sample += f"; {unscored:,} not scored (negative sales, or too few programs to compare)"
    style(fig, "Sales per program, within its peer group", height=OUTLIERS_HEIGHT, subtitle=sample)
    # the legend goes below the group labels: lower by a line for each label line beyond two
    extra = LABEL_LINE_PX * max(0, max(label.count("<br>") + 1 for label in labels) - 2)
    plot_height = OUTLIERS_HEIGHT - SUBTITLED_TOP - LEGEND_BELOW - extra
    fig.update_layout(
        legend={"y": -0.16 - extra / plot_height, "yanchor": "top", "orientation": "h"},
        margin={"b": LEGEND_BELOW + extra},
    )
    return fig
