"""Plotly figure builders for the report and the notebooks: one function per chart.

Each builder takes the rows of one `dbt_analysis` model (a list of dicts as from
`duel.read.fetch_rows`, or a DataFrame as from `duel.read.read_frame`) and returns a
`plotly.graph_objects.Figure`; nothing here touches the database. Colours are fixed per platform
(`PLATFORM_COLOURS`), per defect class (`defect_colours`, by the project's vocabulary) and per
series (`COLOURS`), so a platform or a defect class has one colour in every chart. An
empty input gives a figure that says "no data" instead of failing. The look is in `look`, the
run and quality charts in `quality`, the results in `results`, the pre-load exploration in
`exploration`; every builder is importable from here.

    from duel import charts, read
    charts.engagement_by_platform_chart(read.fetch_rows(settings, "engagement_by_platform")).show()
"""

from duel.charts.exploration import distributions_chart, field_profile_chart, record_split_chart
from duel.charts.look import (
    ALL_FIELDS,
    COLOURS,
    DEFECT_COLOURS,
    PLATFORM_COLOURS,
    SEQUENCE,
    STATUS_COLOURS,
    UNKNOWN,
    Rows,
    defect_colours,
    empty_chart,
    frame,
    number_text,
    platform_colour,
    style,
)
from duel.charts.quality import (
    DEFECT_CLASSES_ATTR,
    clean_share_chart,
    current_documents,
    current_quality,
    defects_by_field_chart,
    documents_per_batch_chart,
)
from duel.charts.results import (
    COVERAGE,
    MEASURES,
    brand_performance_chart,
    coverage_by_platform_chart,
    coverage_chart,
    engagement_by_platform_chart,
    engagement_over_time_chart,
    platform_rows,
    program_performance_chart,
    sales_by_platform_chart,
    sales_outliers_chart,
    top_advocates_chart,
    top_rows,
)

__all__ = [
    "ALL_FIELDS",
    "COLOURS",
    "COVERAGE",
    "DEFECT_CLASSES_ATTR",
    "DEFECT_COLOURS",
    "MEASURES",
    "PLATFORM_COLOURS",
    "SEQUENCE",
    "STATUS_COLOURS",
    "UNKNOWN",
    "Rows",
    "brand_performance_chart",
    "clean_share_chart",
    "coverage_by_platform_chart",
    "coverage_chart",
    "current_documents",
    "current_quality",
    "defect_colours",
    "defects_by_field_chart",
    "distributions_chart",
    "documents_per_batch_chart",
    "empty_chart",
    "engagement_by_platform_chart",
    "engagement_over_time_chart",
    "field_profile_chart",
    "frame",
    "number_text",
    "platform_colour",
    "platform_rows",
    "program_performance_chart",
    "record_split_chart",
    "sales_by_platform_chart",
    "sales_outliers_chart",
    "style",
    "top_advocates_chart",
    "top_rows",
]
