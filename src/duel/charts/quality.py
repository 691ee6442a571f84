"""Charts of the run and of data quality: documents per batch, defects per field, clean records."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import plotly.graph_objects as go

from duel.charts.look import (
    ALL_FIELDS,
    SEQUENCE,
    STATUS_COLOURS,
    Rows,
    defect_colours,
    empty_chart,
    frame,
    style,
)

# where read_models keeps the project's defect vocabulary on the data_quality frame
DEFECT_CLASSES_ATTR = "defect_classes"


def _by_batch(rows: Rows) -> tuple[pd.DataFrame, list[str]]:
    """Rows sorted by batch, and their axis labels (#1, #2, ...)."""
    data = frame(rows)
    if data.empty:
        return data, []
    data = data.sort_values("batch_id")
    return data, [f"#{b}" for b in data["batch_id"]]


def documents_per_batch_chart(batches: Rows) -> go.Figure:
    """ingest_batches: per batch, the share of its documents by outcome (loaded incl. repaired,
    unchanged, ...), stacked to 100 %, with its number of documents above the bar, and of files
    where they differ (one NDJSON file of many users). Shares, not counts: a batch of one file
    beside a full dump of 10,000 is a bar as tall as the dump's, not a line too thin to see (the
    hover gives each count, the table above the chart every batch's)."""
    data, labels = _by_batch(batches)
    if data.empty:
        return empty_chart("no batches yet")
    counts = {
        "loaded": data["loaded"].fillna(0) - data["repaired"].fillna(0),
        "repaired": data["repaired"].fillna(0),
        "unchanged": data["unchanged"].fillna(0),
        "quarantined": data["quarantined"].fillna(0),
        "skipped": data["skipped"].fillna(0),
    }
    totals = pd.concat(counts.values(), axis=1).sum(axis=1)
    files = data["files_read"]  # the files each batch read (NULL: an earlier duel's batch)
    fig = go.Figure()
    for status, values in counts.items():
        label = "loaded clean" if status == "loaded" else status
        fig.add_bar(
            x=labels,
            # a batch without documents has no shares: 0, and "0 documents" above it
            y=(100 * values / totals.where(totals > 0)).fillna(0),
            customdata=values,
            name=label,
            marker_color=STATUS_COLOURS[status],
            hovertemplate=(
                f"batch %{{x}}<br>{label}: %{{customdata:,}} documents (%{{y:.1f}} %)"
                "<extra></extra>"
            ),
        )
    fig.add_scatter(
        x=labels,
        y=[100] * len(labels),
        mode="text",
        text=[_documents_label(int(n), f) for n, f in zip(totals, files, strict=True)],
        textposition="top center",
        showlegend=False,
        hoverinfo="skip",
    )
    fig.update_layout(
        barmode="stack",
        xaxis_title="batch",
        yaxis_title="share of the batch's documents (%)",
        xaxis_type="category",
    )
    fig.update_yaxes(range=[0, 112], tickvals=[0, 25, 50, 75, 100])
    return style(fig, "Documents per batch, by outcome")


def _documents_label(documents: int, files: float | None) -> str:
    """`10,000 documents`; `9,778 documents in 1 file` when the files read were fewer."""
    label = f"{documents:,} document{'' if documents == 1 else 's'}"
    if files is None or pd.isna(files) or int(files) == documents:
        return label
    return f"{label} in {int(files):,} file{'' if files == 1 else 's'}"


def current_quality(quality: Rows) -> pd.DataFrame:
    """data_quality over all its batches: per record type, field and defect, the current records.

    data_quality counts, per batch, the records that batch made current (and the files it
    quarantined), so its rows add up across batches. A record type's total comes from its
    "(all fields)" rows, one per batch: a batch without a defect has no row for it. Columns as the
    model's, without batch_id and source_uri; defect_share and clean_share are recomputed.
    """
    data = frame(quality)
    columns = ["record_type", "field", "defect", "defect_count", "records", "defect_share"]
    if data.empty:
        return pd.DataFrame(columns=[*columns, "records_affected", "clean_share"])
    totals = (
        data[data["field"] == ALL_FIELDS]
        .groupby("record_type", as_index=False)
        .agg(records=("records", "sum"), records_affected=("records_affected", "sum"))
    )
    totals["clean_share"] = 1 - totals["records_affected"] / totals["records"]
    counts = data.groupby(["record_type", "field", "defect"], as_index=False).agg(
        defect_count=("defect_count", "sum")
    )
    merged = counts.merge(totals, on="record_type", how="inner", validate="many_to_one")
    merged["defect_share"] = merged["defect_count"] / merged["records"]
    return merged[[*columns, "records_affected", "clean_share"]].reset_index(drop=True)


def current_documents(summary: Rows) -> dict[str, int | float] | None:
    """data_quality_summary over all its batches: the documents now current, how many are fully
    clean, and their share (None before any document)."""
    data = frame(summary)
    if data.empty or int(data["records"].sum()) == 0:
        return None
    records, clean = int(data["records"].sum()), int(data["clean_records"].sum())
    return {"records": records, "clean_records": clean, "clean_share": clean / records}


def defects_by_field_chart(
    quality: Rows, batch_id: int | None = None, classes: Iterable[str] | None = None
) -> go.Figure:
    """data_quality: defect counts per record_type.field and defect class, over all current
    records (default) or the records one batch made current.

    The model's "(all fields)" summary rows are left out (clean_share_chart plots them). Each
    class has its colour and its place in the legend by its place in `classes`, the project's
    vocabulary (default: `quality.attrs["defect_classes"]`, which report.read_models sets), so a
    class looks the same in every report.
    """
    if classes is None:
        classes = getattr(quality, "attrs", {}).get(DEFECT_CLASSES_ATTR, ())
    vocabulary = list(classes)
    data = frame(quality)
    if data.empty:
        return empty_chart("no defects recorded")
    if batch_id is None:
        data, scope = current_quality(data), "current records"
    else:
        data, scope = data[data["batch_id"] == batch_id], f"batch {batch_id}"
    data = data[(data["field"] != ALL_FIELDS) & (data["defect_count"].fillna(0) > 0)].copy()
    if data.empty:
        return empty_chart(f"{scope}: no defects")
    data["where"] = data["record_type"].astype(str) + "." + data["field"].astype(str)
    order = data.groupby("where")["defect_count"].sum().sort_values().index.tolist()
    fig = go.Figure()
    data["defect"] = data["defect"].astype(str)
    for defect, colour in defect_colours(data["defect"].unique(), vocabulary).items():
        part = data[data["defect"] == defect]
        fig.add_bar(
            y=part["where"],
            x=part["defect_count"],
            name=defect,
            orientation="h",
            marker_color=colour,
            customdata=part[["defect_share", "records"]].fillna(0) * [100, 1],
            hovertemplate="%{y}<br>"
            + str(defect)
            + ": %{x:,} of %{customdata[1]:,} (%{customdata[0]:.1f}%)<extra></extra>",
        )
    fig.update_layout(
        barmode="stack",
        xaxis_title="records with the defect",
        yaxis={"categoryorder": "array", "categoryarray": order},
    )
    styled = style(fig, f"Defects per field ({scope})", height=max(340, 26 * len(order) + 150))
    # the classes in a column beside the bars, in the vocabulary's order: a dump with many
    # classes (18 in the vocabulary) would push a legend on top into the title
    return styled.update_layout(
        legend={
            "orientation": "v",
            "x": 1.01,
            "xanchor": "left",
            "y": 1,
            "yanchor": "top",
            "traceorder": "normal",
        }
    )


def clean_share_chart(quality: Rows) -> go.Figure:
    """data_quality: the share of records with no defect, per record type.

    One batch is one bar per record type; several batches are dots, sized by their records (the
    batches are slices of the current data, not a trend).
    """
    data = frame(quality)
    if not data.empty:
        data = data[data["field"] == ALL_FIELDS]
    data, labels = _by_batch(data)
    if data.empty:
        return empty_chart("no batches yet")
    data["label"] = labels
    fig = go.Figure()
    if data["batch_id"].nunique() == 1:
        data = data.sort_values("record_type")
        fig.add_bar(
            x=data["record_type"],
            y=data["clean_share"],
            customdata=data[["records"]],
            marker_color=[SEQUENCE[i % len(SEQUENCE)] for i in range(len(data))],
            text=[
                f"{s:.1%} of {n:,}"
                for s, n in zip(data["clean_share"], data["records"], strict=True)
            ],
            textposition="outside",
            showlegend=False,
            hovertemplate="%{x}s: %{y:.1%} clean of %{customdata[0]:,}<extra></extra>",
        )
        fig.update_layout(
            xaxis_title="record type",
            yaxis={"title": "records with no defect", "tickformat": ".0%", "range": [0, 1.12]},
        )
        return style(fig, f"Share of clean records (batch {labels[0]})", height=340)
    for i, (record_type, part) in enumerate(data.groupby("record_type", sort=True)):
        fig.add_scatter(
            x=part["label"],
            y=part["clean_share"],
            # dots, not a line: batches are slices of the current data, not a trend, and a
            # dot's area grows with the records the batch made current, so a batch of a few
            # records, all clean or none, is a small dot, not a collapse
            mode="markers",
            name=str(record_type),
            marker={
                "color": SEQUENCE[i % len(SEQUENCE)],
                "size": 5 + 15 * (part["records"] / part["records"].max()).pow(0.5),
            },
            customdata=part[["records"]],
            hovertemplate=f"{record_type}s, batch %{{x}}<br>%{{y:.1%}} clean of "
            "%{customdata[0]:,}<extra></extra>",
        )
    fig.update_layout(
        xaxis_title="batch",
        xaxis_type="category",
        yaxis={"title": "records with no defect", "tickformat": ".0%", "range": [0, 1.05]},
    )
    return style(
        fig,
        "Share of clean records, per batch",
        height=340,
        subtitle="of the records each batch made current; a dot's size: how many",
    )
