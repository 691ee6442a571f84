"""Plotly figure builders for the report and the notebooks: one function per chart.

Each builder takes the rows of one `dbt_analysis` model (a list of dicts as from
`duel.read.fetch_rows`, or a DataFrame as from `duel.read.read_frame`) and returns a
`plotly.graph_objects.Figure`; nothing here touches the database. Colours are fixed per platform
(`PLATFORM_COLOURS`) and per series (`COLOURS`), so a platform has one colour in every chart. An
empty input gives a figure that says "no data" instead of failing.

    from duel import charts, read
    charts.engagement_by_platform_chart(read.fetch_rows(settings, "engagement_by_platform")).show()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

Rows = Iterable[Mapping[str, Any]] | pd.DataFrame

FONT = "Inter, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
COLOURS = {
    "primary": "#2F5D8A", "secondary": "#E07A2F", "good": "#2E8B57", "bad": "#C0392B",
    "warn": "#E3A21A", "muted": "#9AA0A6", "ink": "#1F2933", "grid": "#E6E9EE",
}
PLATFORM_COLOURS = {"instagram": "#C13584", "tiktok": "#11A39B", "facebook": "#1877F2",
                    "unknown": "#9AA0A6"}
STATUS_COLOURS = {"loaded": COLOURS["primary"], "repaired": COLOURS["secondary"],
                  "unchanged": "#A7C4DE", "quarantined": COLOURS["bad"], "skipped": COLOURS["muted"]}
SEQUENCE = ["#2F5D8A", "#E07A2F", "#2E8B57", "#8E5BB5", "#C0392B", "#11A39B", "#E3A21A", "#6B7280",
            "#D4668F", "#7FA8D1", "#A0522D", "#9BBF4A"]
UNKNOWN = "unknown"
ALL_FIELDS = "(all fields)"  # data_quality's per-record-type summary row


def frame(rows: Rows) -> pd.DataFrame:
    """Rows as a DataFrame, with Decimal columns made float (plotly plots floats)."""
    data = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for column in data.columns:
        if data[column].dtype == object and data[column].map(lambda v: isinstance(v, Decimal)).any():
            data[column] = pd.to_numeric(data[column].map(lambda v: None if v is None else float(v)))
    return data


def platform_colour(platform: object) -> str:
    """The platform's colour; NULL is 'unknown' (grey), an unexpected value gets the warning colour."""
    if platform is None or (isinstance(platform, float) and pd.isna(platform)):
        return PLATFORM_COLOURS[UNKNOWN]
    return PLATFORM_COLOURS.get(str(platform), COLOURS["warn"])


def _label(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return UNKNOWN
    return str(value)


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def style(fig: go.Figure, title: str | None = None, height: int = 380) -> go.Figure:
    """The house look: white background, light grid, one font, legend on top, tight margins."""
    fig.update_layout(
        template="plotly_white", height=height, font={"family": FONT, "size": 13, "color": COLOURS["ink"]},
        title={"text": title, "x": 0.01, "xanchor": "left", "xref": "container", "y": 0.985,
               "yanchor": "top", "yref": "container", "font": {"size": 15}} if title else None,
        margin={"l": 60, "r": 24, "t": 92 if title else 44, "b": 48}, colorway=SEQUENCE,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "xanchor": "left"},
        hoverlabel={"font": {"family": FONT}}, paper_bgcolor="white", plot_bgcolor="white",
    )
    fig.update_xaxes(gridcolor=COLOURS["grid"], zeroline=False, automargin=True)
    fig.update_yaxes(gridcolor=COLOURS["grid"], zeroline=False, automargin=True)
    return fig


def empty_chart(message: str = "no data") -> go.Figure:
    """A figure that says why there is nothing to plot."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 15, "color": COLOURS["muted"]})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, height=220)


# --- run summary and data quality -----------------------------------------------------------

def _by_batch(rows: Rows) -> tuple[pd.DataFrame, list[str]]:
    """Rows sorted by batch, and their axis labels (#1, #2, ...)."""
    data = frame(rows)
    if data.empty:
        return data, []
    data = data.sort_values("batch_id")
    return data, [f"#{b}" for b in data["batch_id"]]


def files_per_batch_chart(batches: Rows) -> go.Figure:
    """ingest_batches: per batch, its files by outcome (loaded incl. repaired, unchanged, ...), stacked."""
    data, labels = _by_batch(batches)
    if data.empty:
        return empty_chart("no batches yet")
    fig = go.Figure()
    parts = {"loaded": data["loaded"].fillna(0) - data["repaired"].fillna(0), "repaired": data["repaired"],
             "unchanged": data["unchanged"], "quarantined": data["quarantined"], "skipped": data["skipped"]}
    for status, values in parts.items():
        label = "loaded clean" if status == "loaded" else status
        fig.add_bar(x=labels, y=values.fillna(0), name=label, marker_color=STATUS_COLOURS[status],
                    hovertemplate=f"batch %{{x}}<br>{label}: %{{y:,}}<extra></extra>")
    fig.update_layout(barmode="stack", xaxis_title="batch", yaxis_title="files", xaxis_type="category")
    return style(fig, "Files per batch, by outcome")


def defects_by_field_chart(quality: Rows, batch_id: int | None = None) -> go.Figure:
    """data_quality: defect counts per record_type.field and defect class, for one batch (default: latest).

    The model's "(all fields)" summary rows are left out (clean_share_trend_chart plots them).
    """
    data = frame(quality)
    if data.empty:
        return empty_chart("no defects recorded")
    batch = data["batch_id"].max() if batch_id is None else batch_id
    data = data[(data["batch_id"] == batch) & (data["field"] != ALL_FIELDS)
                & (data["defect_count"].fillna(0) > 0)].copy()
    if data.empty:
        return empty_chart(f"batch {batch}: no defects")
    data["where"] = data["record_type"].astype(str) + "." + data["field"].astype(str)
    order = data.groupby("where")["defect_count"].sum().sort_values().index.tolist()
    fig = go.Figure()
    for i, (defect, part) in enumerate(data.groupby("defect", sort=True)):
        fig.add_bar(y=part["where"], x=part["defect_count"], name=str(defect), orientation="h",
                    marker_color=SEQUENCE[i % len(SEQUENCE)],
                    customdata=part[["defect_share"]].fillna(0) * 100,
                    hovertemplate="%{y}<br>" + str(defect) + ": %{x:,} (%{customdata[0]:.1f}%)<extra></extra>")
    fig.update_layout(barmode="stack", xaxis_title="records with the defect",
                      yaxis={"categoryorder": "array", "categoryarray": order})
    return style(fig, f"Defects per field (batch {batch})", height=max(340, 26 * len(order) + 150))


def clean_share_trend_chart(quality: Rows) -> go.Figure:
    """data_quality: per batch, the share of records with no defect, one line per record type."""
    data = frame(quality)
    if not data.empty:
        data = data[data["field"] == ALL_FIELDS]
    data, labels = _by_batch(data)
    if data.empty:
        return empty_chart("no batches yet")
    data["label"] = labels
    fig = go.Figure()
    for i, (record_type, part) in enumerate(data.groupby("record_type", sort=True)):
        fig.add_scatter(x=part["label"], y=part["clean_share"], mode="lines+markers", name=str(record_type),
                        line={"color": SEQUENCE[i % len(SEQUENCE)], "width": 3}, marker={"size": 9},
                        customdata=part[["records"]],
                        hovertemplate=f"{record_type}s, batch %{{x}}<br>%{{y:.1%}} clean of "
                                      "%{customdata[0]:,}<extra></extra>")
    fig.update_layout(xaxis_title="batch", xaxis_type="category",
                      yaxis={"title": "records with no defect", "tickformat": ".0%", "range": [0, 1.05]})
    return style(fig, "Share of clean records, per batch", height=340)


# --- engagement ----------------------------------------------------------------------------

def engagement_by_platform_chart(platforms: Rows) -> go.Figure:
    """engagement_by_platform: likes, comments and shares stacked per platform; rate on the right."""
    data = frame(platforms)
    if data.empty:
        return empty_chart()
    data["label"] = data["platform"].map(_label)
    data = data.sort_values("engagement", ascending=False, na_position="last")
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.12,
                        subplot_titles=("Engagement (likes + comments + shares)", "Engagement rate"))
    for part, colour in (("likes", COLOURS["primary"]), ("comments", COLOURS["secondary"]),
                         ("shares", COLOURS["good"])):
        fig.add_bar(x=data["label"], y=data[part], name=part, marker_color=colour, row=1, col=1,
                    hovertemplate=f"%{{x}}<br>{part}: %{{y:,}}<extra></extra>")
    fig.add_bar(x=data["label"], y=data["engagement_rate"], name="engagement / reach", showlegend=False,
                marker_color=[platform_colour(p) for p in data["platform"]], row=1, col=2,
                text=[f"{v:.1%}" if pd.notna(v) else "n/a" for v in data["engagement_rate"]],
                textposition="outside", hovertemplate="%{x}<br>rate %{y:.2%}<extra></extra>")
    fig.update_yaxes(tickformat=".0%", row=1, col=2, rangemode="tozero")
    fig.update_annotations(font={"size": 13})
    style(fig, height=420)
    fig.update_layout(barmode="stack", margin={"t": 40, "b": 90},
                      legend={"y": -0.12, "yanchor": "top", "x": 0.0})
    return fig


def engagement_over_time_chart(by_month: Rows,
                               measures: tuple[str, ...] = ("task_count", "engagement", "reach")) -> go.Figure:
    """engagement_by_join_month: each of `measures` per platform by the users' join month, one panel each.

    A month whose value is NULL (e.g. engagement where a part is unknown) leaves a gap, bridged by the line.
    """
    data = frame(by_month)
    if data.empty or data["join_month"].isna().all():
        return empty_chart("no users with a join date")
    data = data[data["join_month"].notna()].sort_values("join_month")
    data["label"] = data["platform"].map(_label)
    fig = make_subplots(rows=len(measures), cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=[m.replace("_", " ") for m in measures])
    for row, measure in enumerate(measures, 1):
        for platform, part in data.groupby("label", sort=True):
            fig.add_scatter(x=pd.to_datetime(part["join_month"]), y=part[measure], mode="lines+markers",
                            name=str(platform), legendgroup=str(platform), showlegend=row == 1, connectgaps=True,
                            line={"color": platform_colour(part["platform"].iloc[0]), "width": 2.5},
                            row=row, col=1, hovertemplate=f"{platform}<br>%{{x|%b %Y}}: %{{y:,.4~g}}<extra></extra>")
        if measure == "engagement_rate":
            fig.update_yaxes(tickformat=".1%", row=row, col=1)
    fig.update_xaxes(tickformat="%b %Y")
    fig.update_xaxes(title_text="users' join month", row=len(measures), col=1)
    fig.update_annotations(font={"size": 13})
    return style(fig, "By the users' join month, per platform", height=230 * len(measures) + 130)


def top_advocates_chart(advocates: Rows, top_n: int = 10) -> go.Figure:
    """top_advocates: the top `top_n` users of each ranking (engagement, reach, sales), side by side."""
    data = frame(advocates)
    if data.empty:
        return empty_chart("no identifiable advocates")
    rankings = [r for r in ("engagement", "reach", "sales") if r in set(data["ranking"])]
    fig = make_subplots(rows=1, cols=len(rankings), horizontal_spacing=0.16,
                        subplot_titles=[f"by {r}" for r in rankings])
    ranking_colours = {"engagement": COLOURS["primary"], "reach": COLOURS["good"], "sales": COLOURS["secondary"]}
    for col, ranking in enumerate(rankings, 1):
        colour = ranking_colours[ranking]
        part = data[data["ranking"] == ranking].sort_values("rank").head(top_n).iloc[::-1]
        names = [f"{int(r)}. {_short(n) if isinstance(n, str) else '(no name)'}"
                 for n, r in zip(part["name"], part["rank"], strict=True)]
        positions = list(range(len(names)))  # by position, so tied or nameless users never merge
        fig.add_bar(y=positions, x=part["value"], orientation="h", marker_color=colour, showlegend=False,
                    name=ranking, row=1, col=col, text=names, textposition="none",
                    hovertemplate="%{text}<br>%{x:,.2f}<extra></extra>")
        fig.update_yaxes(tickvals=positions, ticktext=names, row=1, col=col)
    fig.update_annotations(font={"size": 13})
    return style(fig, height=max(360, 30 * top_n + 110))


# --- brands, programs and sales -------------------------------------------------------------

def brand_performance_chart(brands: Rows, attribution: Rows, top_n: int = 15) -> go.Figure:
    """engagement_by_brand + sales_attribution: top brands by attributed sales and by engagement.

    The "unknown brand" member (is_unknown) is left out: it gathers every program without a usable brand.
    """
    engagement, sales = frame(brands), frame(attribution)
    if engagement.empty and sales.empty:
        return empty_chart()
    unknown = set(engagement.loc[engagement["is_unknown"].fillna(False).astype(bool), "brand_id"]) \
        if not engagement.empty else set()
    by_sales = (sales[~sales["brand_id"].isin(unknown)].groupby("brand", as_index=False)
                .agg(value=("attributed_sales", "sum"), programs=("program_count", "sum"))
                .nlargest(top_n, "value").iloc[::-1]) if not sales.empty else sales
    by_engagement = (engagement[~engagement["brand_id"].isin(unknown)]
                     .rename(columns={"engagement": "value", "program_count": "programs"})
                     .nlargest(top_n, "value").iloc[::-1]) if not engagement.empty else engagement
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.2,
                        subplot_titles=(f"Top {top_n} by attributed sales", f"Top {top_n} by engagement"))
    for col, (part, colour, fmt) in enumerate(((by_sales, COLOURS["secondary"], ",.2f"),
                                               (by_engagement, COLOURS["primary"], ",")), 1):
        if part.empty:
            continue
        fig.add_bar(y=part["brand"], x=part["value"], orientation="h", marker_color=colour, showlegend=False,
                    row=1, col=col, customdata=part[["programs"]],
                    hovertemplate="%{y}<br>%{x:" + fmt + "}<br>%{customdata[0]} program(s)<extra></extra>")
    fig.update_annotations(font={"size": 13})
    return style(fig, height=max(380, 26 * top_n + 100))


def _of_total(shown: int, total: int | None, what: str = "programs") -> str:
    if total is None or total <= shown:
        return f"{shown:,} {what}"
    return f"a sample of {shown:,} of {total:,} {what}"


def program_performance_chart(programs: Rows, total: int | None = None) -> go.Figure:
    """engagement_by_program: each program's engagement against its attributed sales (one dot each).

    `total`: how many programs there are when `programs` is a sample of them (said in the title)."""
    data = frame(programs)
    sampled = len(data)
    data = data[data["engagement"].notna() & data["total_sales_attributed"].notna()] if not data.empty else data
    if data.empty:
        return empty_chart("no program with both engagement and sales")
    fig = go.Figure()
    fig.add_scatter(x=data["engagement"], y=data["total_sales_attributed"], mode="markers",
                    name="program", marker={"size": 5, "color": COLOURS["primary"], "opacity": 0.45},
                    text=data["brand"].map(_label),
                    hovertemplate="%{text}<br>engagement %{x:,}<br>sales %{y:,.2f}<extra></extra>")
    fig.update_layout(xaxis_title="engagement (likes + comments + shares)", yaxis_title="attributed sales")
    return style(fig, f"Programs: engagement against attributed sales ({_of_total(sampled, total)})")


def sales_by_platform_chart(attribution: Rows) -> go.Figure:
    """sales_attribution: attributed sales per platform (summed over brands), outlier counts on hover."""
    data = frame(attribution)
    if data.empty:
        return empty_chart()
    data["label"] = data["platform"].map(_label)
    per = (data.groupby("label", as_index=False)
           .agg(sales=("attributed_sales", "sum"), programs=("program_count", "sum"),
                outliers_z=("z_score_outlier_programs", "sum"), outliers_iqr=("iqr_outlier_programs", "sum"))
           .sort_values("sales", ascending=False))
    fig = go.Figure()
    fig.add_bar(x=per["label"], y=per["sales"], name="sales",
                marker_color=[platform_colour(None if p == UNKNOWN else p) for p in per["label"]],
                customdata=per[["programs", "outliers_z", "outliers_iqr"]],
                text=[f"{v:,.0f}" for v in per["sales"]], textposition="outside",
                hovertemplate="%{x}<br>sales %{y:,.2f}<br>%{customdata[0]:,} programs<br>outliers: "
                              "%{customdata[1]} by z-score, %{customdata[2]} by IQR<extra></extra>")
    fig.update_layout(yaxis_title="attributed sales", showlegend=False)
    return style(fig, "Attributed sales by platform")


def sales_outliers_chart(outliers: Rows, total: int | None = None, by: str | None = None) -> go.Figure:
    """sales_outliers: every program's attributed sales (one dot each), outliers by z-score and by IQR marked.

    One column of dots, or one per value of `by` (a column such as "brand"); the IQR fences are
    drawn as dashed lines when the rows carry iqr_lower_bound / iqr_upper_bound. `total`: how
    many programs there are when the rows are a sample (every outlier plus an even spread).
    """
    data = frame(outliers)
    shown = len(data)
    data = data[data["total_sales_attributed"].notna()].copy() if not data.empty else data
    if data.empty:
        return empty_chart("no attributed sales")
    data["group"] = data[by].map(_label) if by else "all programs"
    z = data["is_z_score_outlier"].fillna(False).astype(bool)
    iqr = data["is_iqr_outlier"].fillna(False).astype(bool)
    fig = go.Figure()
    fig.add_box(x=data["group"], y=data["total_sales_attributed"], name="distribution", boxpoints=False,
                marker_color=COLOURS["muted"], fillcolor="rgba(154,160,166,0.12)", hoverinfo="y")
    kinds = (("within both rules", ~z & ~iqr, COLOURS["primary"], "circle", 4, 0.35),
             ("outlier by z-score", z & ~iqr, COLOURS["bad"], "x", 10, 1.0),
             ("outlier by IQR", iqr & ~z, COLOURS["warn"], "diamond", 10, 1.0),
             ("outlier by both", z & iqr, COLOURS["bad"], "star", 12, 1.0))
    for name, mask, colour, symbol, size, opacity in kinds:
        part = data[mask]
        fig.add_box(x=part["group"], y=part["total_sales_attributed"], name=f"{name} ({len(part):,})",
                    boxpoints="all", jitter=0.6, pointpos=0, fillcolor="rgba(0,0,0,0)",
                    line={"color": "rgba(0,0,0,0)"}, marker={"color": colour, "symbol": symbol, "size": size,
                                                             "opacity": opacity},
                    hovertemplate="%{y:,.2f}<extra>" + name + "</extra>")
    for bound in ("iqr_lower_bound", "iqr_upper_bound"):
        if bound in data and data[bound].notna().any():
            fig.add_hline(y=float(data[bound].dropna().iloc[0]), line={"dash": "dash", "color": COLOURS["warn"]},
                          annotation_text=bound.replace("_", " "), annotation_position="top right")
    fig.update_layout(yaxis_title="attributed sales per program", boxmode="overlay")
    return style(fig, f"Attributed sales per program, outliers marked ({_of_total(shown, total)})")


# --- exploration before the load (data_debugging.ipynb, rows from duel.explore) ------------

DEFECT_COLOURS = {"usable": COLOURS["good"], "missing": "#6B7280", "null": COLOURS["muted"],
                  "sentinel": COLOURS["warn"], "wrong_type": COLOURS["secondary"], "invalid": COLOURS["bad"]}


def field_profile_chart(profile: Rows) -> go.Figure:
    """explore.FieldProfile.row() rows: per field, the share of usable values and of each defect."""
    data = frame(profile)
    if data.empty:
        return empty_chart("no documents")
    data = data.iloc[::-1]
    fig = go.Figure()
    for part, colour in DEFECT_COLOURS.items():
        share = data[part] / data["rows"].where(data["rows"] > 0)
        fig.add_bar(y=data["field"], x=share, name=part.replace("_", " "), orientation="h",
                    marker_color=colour, customdata=data[[part]],
                    hovertemplate="%{y}<br>" + part + ": %{customdata[0]:,} (%{x:.1%})<extra></extra>")
    fig.update_layout(barmode="stack", xaxis={"title": "share of values", "tickformat": ".0%"})
    return style(fig, "Every field: usable values and defects", height=max(360, 24 * len(data) + 140))


def distributions_chart(values: Mapping[str, Iterable[float]], bins: int = 30) -> go.Figure:
    """One histogram per measure (e.g. likes, reach, sales), binned here so the figure stays small."""
    import numpy as np

    measures = {name: np.fromiter(v, dtype=float) for name, v in values.items()}
    if not measures or all(v.size == 0 for v in measures.values()):
        return empty_chart("no numeric values")
    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=list(measures), horizontal_spacing=0.05)
    for col, (name, data) in enumerate(measures.items(), 1):
        counts, edges = np.histogram(data, bins=bins) if data.size else (np.array([]), np.array([0.0]))
        fig.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), name=name, showlegend=False,
                    marker_color=SEQUENCE[(col - 1) % len(SEQUENCE)], row=1, col=col,
                    hovertemplate=name + " ≈ %{x:,.4~g}: %{y:,} values<extra></extra>")
    fig.update_annotations(font={"size": 13})
    return style(fig, "Distributions of the numeric measures (known values only)", height=320)


def record_split_chart(split: Rows) -> go.Figure:
    """explore.RecordSplit.rows(): clean against messy rows per level (record, user, program, task)."""
    data = frame(split)
    if data.empty:
        return empty_chart("no documents")
    data = data.iloc[::-1]
    fig = go.Figure()
    for part, colour in (("clean", COLOURS["good"]), ("messy", COLOURS["warn"])):
        fig.add_bar(y=data["level"], x=data[part], name=part, orientation="h", marker_color=colour,
                    hovertemplate="%{y}<br>" + part + ": %{x:,}<extra></extra>")
    fig.update_layout(barmode="stack", xaxis_title="rows")
    return style(fig, "Clean and messy records", height=300)
