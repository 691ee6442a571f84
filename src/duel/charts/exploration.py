"""Charts of the dump before loading it (data_debugging.ipynb, rows from duel.explore)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from duel.charts.look import COLOURS, SEQUENCE, Rows, defect_colours, empty_chart, frame, style


def field_profile_chart(parts: Rows, classes: Iterable[str] = ()) -> go.Figure:
    """explore.FieldProfile.defect_rows() rows (field, part, values, rows): per field, the share
    of usable values and of each of dbt's defect classes, stacked. `classes`, the project's
    vocabulary (defects.Rules.classes), gives each class its colour and place, the colours of
    the report's defects chart."""
    data = frame(parts)
    if data.empty:
        return empty_chart("no documents")
    fields = list(dict.fromkeys(data["field"]))[::-1]
    colours = {"usable": COLOURS["good"]}
    colours |= defect_colours((p for p in data["part"] if p != "usable"), classes)
    fig = go.Figure()
    for part in colours:
        rows = data[data["part"] == part].set_index("field").reindex(fields)
        share = rows["values"] / rows["rows"].where(rows["rows"] > 0)
        fig.add_bar(
            y=fields,
            x=share.fillna(0),
            name=part,
            orientation="h",
            marker_color=colours[part],
            customdata=rows[["values"]].fillna(0),
            hovertemplate="%{y}<br>" + part + ": %{customdata[0]:,} (%{x:.1%})<extra></extra>",
        )
    fig.update_layout(barmode="stack", xaxis={"title": "share of values", "tickformat": ".0%"})
    return style(
        fig, "Every field: usable values and defects", height=max(360, 24 * len(fields) + 140)
    )


def distributions_chart(values: Mapping[str, Iterable[float]], bins: int = 30) -> go.Figure:
    """One histogram per measure (e.g. likes, reach, sales), binned here so the figure stays
    small."""
    import numpy as np

    measures = {name: np.fromiter(v, dtype=float) for name, v in values.items()}
    if not measures or all(v.size == 0 for v in measures.values()):
        return empty_chart("no numeric values")
    fig = make_subplots(
        rows=1, cols=len(measures), subplot_titles=list(measures), horizontal_spacing=0.05
    )
    for col, (name, data) in enumerate(measures.items(), 1):
        counts, edges = (
            np.histogram(data, bins=bins) if data.size else (np.array([]), np.array([0.0]))
        )
        fig.add_bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            name=name,
            showlegend=False,
            marker_color=SEQUENCE[(col - 1) % len(SEQUENCE)],
            row=1,
            col=col,
            hovertemplate=name + " ≈ %{x:,.4~g}: %{y:,} values<extra></extra>",
        )
    fig.update_annotations(font={"size": 13})
    return style(fig, "Distributions of the numeric measures (known values only)", height=320)


def record_split_chart(split: Rows) -> go.Figure:
    """explore.RecordSplit.rows(): clean against messy rows per level (record, user, program,
    task)."""
    data = frame(split)
    if data.empty:
        return empty_chart("no documents")
    data = data.iloc[::-1]
    fig = go.Figure()
    for part, colour in (("clean", COLOURS["good"]), ("messy", COLOURS["warn"])):
        fig.add_bar(
            y=data["level"],
            x=data[part],
            name=part,
            orientation="h",
            marker_color=colour,
            hovertemplate="%{y}<br>" + part + ": %{x:,}<extra></extra>",
        )
    fig.update_layout(barmode="stack", xaxis_title="rows")
    return style(fig, "Clean and messy records", height=300)
