"""The house look of every chart: colours (one per platform, one per series), fonts, margins, and
the figure that says "no data"; and the row-to-DataFrame conversion the builders share."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import pandas as pd
import plotly.colors
import plotly.graph_objects as go

Rows = Iterable[Mapping[str, Any]] | pd.DataFrame

FONT = "Inter, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
COLOURS = {
    "primary": "#2F5D8A",
    "secondary": "#E07A2F",
    "good": "#2E8B57",
    "bad": "#C0392B",
    "warn": "#E3A21A",
    "muted": "#9AA0A6",
    "ink": "#1F2933",
    "grid": "#E6E9EE",
}
PLATFORM_COLOURS = {
    "instagram": "#C13584",
    "tiktok": "#11A39B",
    "facebook": "#1877F2",
    "unknown": "#9AA0A6",
}
STATUS_COLOURS = {
    "loaded": COLOURS["primary"],
    "repaired": COLOURS["secondary"],
    "unchanged": "#A7C4DE",
    "quarantined": COLOURS["bad"],
    "skipped": COLOURS["muted"],
}
SEQUENCE = [
    "#2F5D8A",
    "#E07A2F",
    "#2E8B57",
    "#8E5BB5",
    "#C0392B",
    "#11A39B",
    "#E3A21A",
    "#6B7280",
    "#D4668F",
    "#7FA8D1",
    "#A0522D",
    "#9BBF4A",
]
# One colour per defect class, by the class's place in the project's vocabulary
# (vars.defect_classes): plotly's 24 distinct colours, so the 18 classes never share one and a
# class keeps its colour from one report to the next, whichever classes the data has.
DEFECT_COLOURS = tuple(plotly.colors.qualitative.Dark24)
UNKNOWN = "unknown"
SUBTITLED_TOP = 110  # the top margin of a chart with a title and a subtitle, in pixels
ALL_FIELDS = "(all fields)"  # data_quality's per-record-type summary row


def number_text(value: Any, digits: int = 0) -> str:
    """A known value with thousands commas and `digits` decimals, as the report's tables, cards
    and charts print it. A Decimal (every sum and average the models give) is rounded as the
    models round, half away from zero, and printed exactly: through a float, a total past 2^53
    (sales of 10^12 on each of a million programs) would show digits the data does not have."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}"
    if isinstance(value, Decimal):
        with localcontext() as context:
            context.prec = max(value.adjusted() + digits + 2, 28)  # every digit kept
            return f"{value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):,f}"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):,.{digits}f}"
    return str(value)


def frame(rows: Rows) -> pd.DataFrame:
    """Rows as a DataFrame, with Decimal columns made float (plotly plots floats)."""
    data = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for column in data.columns:
        values = data[column]
        if values.dtype != object:
            continue
        known = values.dropna()
        # a column of one type: its first known value says whether it holds Decimals
        if len(known) and isinstance(known.iloc[0], Decimal):
            data[column] = values.astype("float64")  # None -> NaN; float() of each, in C
    return data


def defect_colours(present: Iterable[str], vocabulary: Iterable[str]) -> dict[str, str]:
    """A colour for each defect class `present`, in the vocabulary's order: its place in
    `vocabulary` (the project's defect classes, in order) says which; a class outside it (a
    file's "quarantined:<reason>") takes the next colours, in name order."""
    shown = set(present)
    order = list(dict.fromkeys(vocabulary))
    order += sorted(shown - set(order))
    return {
        defect: DEFECT_COLOURS[place % len(DEFECT_COLOURS)]
        for place, defect in enumerate(order)
        if defect in shown
    }


def platform_colour(platform: object) -> str:
    """The platform's colour; NULL is 'unknown' (grey), an unexpected value gets the warning
    colour."""
    if platform is None or (isinstance(platform, float) and pd.isna(platform)):
        return PLATFORM_COLOURS[UNKNOWN]
    return PLATFORM_COLOURS.get(str(platform), COLOURS["warn"])


def _label(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return UNKNOWN
    return str(value)


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def style(
    fig: go.Figure, title: str | None = None, height: int = 380, subtitle: str | None = None
) -> go.Figure:
    """The house look: white background, light grid, one font, legend on top, tight margins.
    Titles stay short (they must fit beside plotly's toolbar); what a chart leaves out goes in
    `subtitle`."""
    heading: dict[str, Any] = {
        "text": title,
        "x": 0.01,
        "xanchor": "left",
        "xref": "container",
        "y": 0.985,
        "yanchor": "top",
        "yref": "container",
        "font": {"size": 15},
    }
    if subtitle:
        heading["subtitle"] = {"text": subtitle, "font": {"size": 12, "color": "#5F6B7A"}}
    fig.update_layout(
        template="plotly_white",
        height=height,
        font={"family": FONT, "size": 13, "color": COLOURS["ink"]},
        title=heading if title else None,
        margin={
            "l": 60,
            "r": 24,
            "t": (SUBTITLED_TOP if subtitle else 92) if title else 64,
            "b": 48,
        },
        colorway=SEQUENCE,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "xanchor": "left"},
        hoverlabel={"font": {"family": FONT}},
        paper_bgcolor="white",
        plot_bgcolor="white",
    )
    fig.update_xaxes(gridcolor=COLOURS["grid"], zeroline=False, automargin=True)
    fig.update_yaxes(gridcolor=COLOURS["grid"], zeroline=False, automargin=True)
    return fig


def empty_chart(message: str = "no data") -> go.Figure:
    """A figure that says why there is nothing to plot."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 15, "color": COLOURS["muted"]},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, height=220)
