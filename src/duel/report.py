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
import psycopg
from psycopg import sql

from duel import __version__, charts, db
from duel.exceptions import StepFailed
from duel.settings import Settings

SCHEMA = "dbt_analysis"
MODELS = ("ingest_batches", "data_quality", "data_quality_summary", "engagement_by_platform",
          "engagement_by_join_month", "engagement_by_brand", "engagement_by_program", "top_advocates",
          "sales_attribution", "sales_outliers")
PROGRAM_COLUMNS = ("program_key", "brand", "engagement", "total_sales_attributed")
LEADERS = 10  # rows of the top-advocates table
# Per-program charts draw one dot per program: above this many programs they show a sample
# (every outlier, plus programs taken in program_key order — an md5 hash, so an even spread).
POINTS = 5000
OUTLIER_ROWS = "is_z_score_outlier or is_iqr_outlier"
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


def _fetch_points(conn: Any, model: str, columns: tuple[str, ...] | None = None,
                  keep: str | None = None) -> pd.DataFrame:
    """A model's per-program rows for a dot chart, at most POINTS of them plus the rows where the
    boolean expression `keep` holds (outliers); the model's full row count is in .attrs["total"]."""
    table = sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(model))
    select = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
    total = int(conn.execute(sql.SQL("select count(*) from {}").format(table)).fetchone()[0])
    sample = sql.SQL("select program_key from {} order by program_key limit {}").format(table, sql.Literal(POINTS))
    condition = sql.SQL("program_key in ({})").format(sample)
    if keep:
        condition = sql.SQL("{} or {}").format(sql.SQL(keep), condition)  # keep: a constant below
    query = sql.SQL("select {} from {} where {} order by program_key").format(select, table, condition)
    with conn.cursor() as cur:
        cur.execute(query)
        names = [d.name for d in cur.description or ()]
        frame = pd.DataFrame(cur.fetchall(), columns=names)
    frame.attrs["total"] = total
    return frame


def _check_models(conn: Any) -> None:
    present = {str(r[0]) for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = %s", (SCHEMA,))}
    missing = [m for m in MODELS if m not in present]
    if missing:
        names = ", ".join(f"{SCHEMA}.{m}" for m in missing)
        raise StepFailed("report", f"{names} missing; run `duel transform` first")


def read_models(settings: Settings) -> dict[str, pd.DataFrame]:
    """Every model the report shows, from one consistent snapshot of dbt_analysis."""
    with db.connect(settings, step="report") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            _check_models(conn)
            return {
                "batches": _fetch(conn, "ingest_batches", order_by=("batch_id",)),
                "quality": _fetch(conn, "data_quality", order_by=("batch_id", "record_type", "field", "defect")),
                "quality_summary": _fetch(conn, "data_quality_summary", order_by=("batch_id",)),
                "platforms": _fetch(conn, "engagement_by_platform"),
                "by_month": _fetch(conn, "engagement_by_join_month", order_by=("join_month", "platform")),
                "advocates": _fetch(conn, "top_advocates", order_by=("ranking", "rank", "user_key")),
                "brands": _fetch(conn, "engagement_by_brand", order_by=("brand_id",)),
                "programs": _fetch_points(conn, "engagement_by_program", PROGRAM_COLUMNS),
                "attribution": _fetch(conn, "sales_attribution", order_by=("brand_id", "platform")),
                "outliers": _fetch_points(conn, "sales_outliers", keep=OUTLIER_ROWS),
            }


def build_figures(models: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The report's charts, by the name the template places them under."""
    return {
        "files_per_batch": charts.files_per_batch_chart(models["batches"]),
        "defects_by_field": charts.defects_by_field_chart(models["quality"]),
        "clean_share_trend": charts.clean_share_trend_chart(models["quality"]),
        "engagement_by_platform": charts.engagement_by_platform_chart(models["platforms"]),
        "engagement_over_time": charts.engagement_over_time_chart(models["by_month"]),
        "top_advocates": charts.top_advocates_chart(models["advocates"]),
        "brand_performance": charts.brand_performance_chart(models["brands"], models["attribution"]),
        "program_performance": charts.program_performance_chart(models["programs"], models["programs"].attrs["total"]),
        "sales_by_platform": charts.sales_by_platform_chart(models["attribution"]),
        "sales_outliers": charts.sales_outliers_chart(models["outliers"], models["outliers"].attrs["total"]),
    }


def _records(data: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if _missing(v) else v) for k, v in row.items()} for row in data.to_dict("records")]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT


def build_tables(models: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The rows the template's tables show (small: a table is for reading, a chart for shape)."""
    batches, quality = models["batches"], models["quality"]
    latest_quality = quality[quality["batch_id"] == quality["batch_id"].max()] if not quality.empty else quality
    summary_rows = latest_quality["field"] == charts.ALL_FIELDS
    brand_names = dict(zip(models["brands"]["brand_id"], models["brands"]["brand"], strict=True))
    outliers = models["outliers"].assign(brand=lambda d: d["brand_id"].map(brand_names))
    flagged = outliers[outliers["is_z_score_outlier"].fillna(False).astype(bool)
                       | outliers["is_iqr_outlier"].fillna(False).astype(bool)]
    return {
        "latest_batch": _records(batches.tail(1))[0] if not batches.empty else None,
        "batches": _records(batches.iloc[::-1].head(20)),
        "clean": _records(latest_quality[summary_rows].sort_values("record_type")),
        "defects": _records(latest_quality[~summary_rows & (latest_quality["defect_count"].fillna(0) > 0)]
                            .sort_values(["record_type", "defect_count"], ascending=[True, False])),
        "platforms": _records(models["platforms"].sort_values("engagement", ascending=False)),
        "leaderboard": _leaderboard(models["advocates"]),
        "attribution": _records(models["attribution"].sort_values("attributed_sales", ascending=False).head(15)),
        "outliers": _records(flagged.sort_values("z_score", ascending=False, key=abs).head(20)),
        "outlier_total": len(flagged),
        "thresholds": _records(outliers[["z_score_threshold", "iqr_multiplier"]].head(1)),
        "programs": models["programs"].attrs["total"],
        "documents": _records(models["quality_summary"].tail(1))[0] if not models["quality_summary"].empty else None,
    }


def _leaderboard(advocates: pd.DataFrame) -> list[dict[str, Any]]:
    """Row i holds the i-th user of each ranking (engagement, reach, sales), or None past its end."""
    columns = {k: _records(advocates[advocates["ranking"] == k].sort_values("rank").head(LEADERS))
               for k in ("engagement", "reach", "sales")}
    return [{k: (rows[i] if i < len(rows) else None) for k, rows in columns.items()}
            for i in range(max(map(len, columns.values()), default=0))]


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
