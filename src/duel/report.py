"""The HTML report: one self-contained `report.html` (plotly.js inlined once; opens offline).

Built from `dbt_analysis` models only, rendered through the jinja2 template
`templates/report.html.j2` (autoescaped). Charts come from `duel.charts`; tables are rendered
by the template from the same rows. Sections: run summary, data quality, engagement (by platform
and by join month), top advocates, brands and programs, sales attribution with outliers.

    build_report(settings)               # -> ReportResult(path=out/report.html, charts=10, ...)
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from psycopg import sql

from duel import __version__, charts, db
from duel.exceptions import StepFailed
from duel.settings import Settings

SCHEMA = "dbt_analysis"
MODELS = ("ingest_batches", "data_quality", "data_quality_summary", "engagement_by_platform",
          "engagement_by_join_month", "top_advocates", "engagement_by_program", "sales_attribution",
          "sales_outliers")
PROGRAM_COLUMNS = ("program_key", "brand", "engagement", "total_sales_attributed")
OUTLIER_COLUMNS = ("program_key", "brand", "platform", "total_sales_attributed", "z_score",
                   "is_outlier_z", "is_outlier_iqr")
LEADERS = 10  # rows of the top-advocates table
PLOT_CONFIG = {"displaylogo": False, "responsive": True,
               "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


@dataclass(frozen=True)
class ReportResult:
    path: Path
    charts: int  # how many plotly charts the page draws
    bytes: int


def _fetch(conn: Any, model: str, columns: tuple[str, ...] | None = None,
           order_by: tuple[str, ...] = ()) -> pd.DataFrame:
    """One dbt_analysis model (optionally only some columns) as a DataFrame."""
    select = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
    query = sql.SQL("select {} from {}.{}").format(select, sql.Identifier(SCHEMA), sql.Identifier(model))
    if order_by:
        query += sql.SQL(" order by {}").format(sql.SQL(", ").join(map(sql.Identifier, order_by)))
    with conn.cursor() as cur:
        cur.execute(query)
        names = [d.name for d in cur.description or ()]
        return pd.DataFrame(cur.fetchall(), columns=names)


def _check_models(conn: Any) -> None:
    present = {r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = %s", (SCHEMA,))}
    missing = [m for m in MODELS if m not in present]
    if missing:
        raise StepFailed("report", f"{SCHEMA}.{', '.join(missing)} missing; run `duel transform` first")


def read_models(settings: Settings) -> dict[str, pd.DataFrame]:
    """Every model the report shows, from one consistent snapshot of dbt_analysis."""
    with db.connect(settings, step="report") as conn:
        conn.read_only = True
        _check_models(conn)
        return {
            "batches": _fetch(conn, "ingest_batches", order_by=("batch_id",)),
            "quality": _fetch(conn, "data_quality"),
            "quality_summary": _fetch(conn, "data_quality_summary", order_by=("batch_id",)),
            "platforms": _fetch(conn, "engagement_by_platform"),
            "by_month": _fetch(conn, "engagement_by_join_month"),
            "advocates": _fetch(conn, "top_advocates", order_by=("ranking", "rank")),
            "programs": _fetch(conn, "engagement_by_program", PROGRAM_COLUMNS, order_by=("program_key",)),
            "attribution": _fetch(conn, "sales_attribution"),
            "outliers": _fetch(conn, "sales_outliers", OUTLIER_COLUMNS, order_by=("program_key",)),
        }


def build_figures(models: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The report's charts, by the name the template places them under."""
    return {
        "files_per_batch": charts.files_per_batch_chart(models["batches"]),
        "defects_by_field": charts.defects_by_field_chart(models["quality"]),
        "clean_share_trend": charts.clean_share_trend_chart(models["quality_summary"]),
        "engagement_by_platform": charts.engagement_by_platform_chart(models["platforms"]),
        "engagement_over_time": charts.engagement_over_time_chart(models["by_month"]),
        "top_advocates": charts.top_advocates_chart(models["advocates"]),
        "brand_performance": charts.brand_performance_chart(models["programs"]),
        "program_performance": charts.program_performance_chart(models["programs"]),
        "sales_by_platform": charts.sales_by_platform_chart(models["attribution"]),
        "sales_outliers": charts.sales_outliers_chart(models["outliers"]),
    }


def _records(data: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if _missing(v) else v) for k, v in row.items()} for row in data.to_dict("records")]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT


def build_tables(models: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The rows the template's tables show (small: a table is for reading, a chart for shape)."""
    batches = models["batches"]
    quality = models["quality"]
    latest = batches.iloc[-1].to_dict() if not batches.empty else None
    latest_quality = quality[quality["batch_id"] == quality["batch_id"].max()] if not quality.empty else quality
    summary = models["quality_summary"]
    outliers = models["outliers"]
    flagged = outliers[outliers["is_outlier_z"].fillna(False).astype(bool)
                       | outliers["is_outlier_iqr"].fillna(False).astype(bool)]
    advocates = models["advocates"]
    columns = {k: _records(advocates[advocates["ranking"] == k].sort_values("rank").head(LEADERS))
               for k in ("engagement", "reach", "sales")}
    leaderboard = [{k: (rows[i] if i < len(rows) else None) for k, rows in columns.items()}
                   for i in range(max(map(len, columns.values()), default=0))]
    return {
        "latest_batch": latest,
        "batches": _records(batches.iloc[::-1].head(20)),
        "clean": _records(summary.tail(1))[0] if not summary.empty else None,
        "defects": _records(latest_quality[latest_quality["rows_affected"].fillna(0) > 0]
                            .sort_values(["entity", "field", "defect"])),
        "platforms": _records(models["platforms"].sort_values("engagement", ascending=False)),
        "leaderboard": leaderboard,
        "attribution": _records(models["attribution"].sort_values("total_sales", ascending=False).head(15)),
        "outliers": _records(flagged.sort_values("z_score", ascending=False, key=abs).head(20)),
        "outlier_total": len(flagged),
        "programs": len(models["programs"]),
    }


# --- rendering ------------------------------------------------------------------------------

def _number(value: Any, digits: int = 0) -> str:
    if _missing(value):
        return "—"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}"
    if isinstance(value, Decimal | numbers.Real) and not isinstance(value, bool):
        return f"{float(value):,.{digits}f}"
    return str(value)


def _percent(value: Any, digits: int = 1) -> str:
    return "—" if _missing(value) else f"{float(value):.{digits}%}"


def _when(value: Any) -> str:
    if _missing(value):
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "astimezone") else str(value)


def environment() -> Environment:
    env = Environment(loader=PackageLoader("duel", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(number=_number, percent=_percent, when=_when)
    return env


def chart_html(name: str, figure: Any) -> Markup:
    """A figure as a <div> + script; plotly.js itself is inlined once by the page."""
    return Markup(figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{name}",
                                 config=PLOT_CONFIG))


def render_report(models: dict[str, pd.DataFrame], database: str) -> tuple[str, int]:
    """The page's HTML and its number of charts."""
    from plotly.offline import get_plotlyjs

    figures = build_figures(models)
    page = environment().get_template("report.html.j2").render(
        charts={name: chart_html(name, fig) for name, fig in figures.items()},
        tables=build_tables(models), plotly_js=Markup(get_plotlyjs()), version=__version__,
        database=database, generated_at=datetime.now(UTC), models=[f"{SCHEMA}.{m}" for m in MODELS])
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
