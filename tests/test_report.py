"""The report: rendered from the real dataset's dbt_analysis, opened in headless Debian Chromium.

Chromium comes from `make browser` (a dependency of `make test`); the test fails, not skips, when
it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import query, run_cli
from PIL import Image

from duel import charts, pipeline, read
from duel.charts.look import frame
from duel.defects import load_rules
from duel.report import (
    ATTRIBUTION_GROUPS,
    ATTRIBUTION_ROWS,
    ATTRIBUTION_SUMS,
    BRAND_RANKS,
    MODELS,
    ReportResult,
    _included,
    _join_span,
    _leaderboard,
    _ranked,
    _unknown_members,
    build_report,
    build_tables,
    defect_vocabulary,
    environment,
    join_month_comparison,
    platform_comparison,
    read_models,
    render_report,
)
from duel.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=10000",
)
CHARTS = 12
# the real dump's brands: all of them, and those the report shows (ranked 1-15 by sales or by
# engagement, ties included, and the unknown brand)
ALL_BRANDS, SHOWN_BRANDS = 4848, 28


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (make test does)")
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


@pytest.fixture(scope="module")
def report(real_built: Settings, tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    return build_report(real_built, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("chromium-profile")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_report_draws_every_chart_in_chromium(report: ReportResult, profile: Path) -> None:
    dom = chromium(report.path, profile, "--dump-dom").stdout
    assert report.charts == CHARTS
    assert dom.count('class="plot-container') == CHARTS
    assert (
        len(re.findall(r'<div id="chart-[a-z_]+" class="plotly-graph-div js-plotly-plot"', dom))
        == CHARTS
    )
    drawn = [part for part in dom.split('id="chart-')[1:] if '<svg class="main-svg"' in part]
    assert len(drawn) == CHARTS  # every chart's div holds plotly's drawn SVG


@pytest.mark.slow
def test_report_screenshot_is_not_blank(
    report: ReportResult, profile: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "report.png"
    chromium(report.path, profile, f"--screenshot={shot}", "--window-size=1400,4000")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 4000)
    colours = image.getcolors(maxcolors=1 << 24) or []
    commonest = max(count for count, _ in colours)
    assert len(colours) > 500  # charts, text and tables, not a flat page
    assert commonest < 0.8 * 1400 * 4000


@pytest.mark.slow
def test_report_is_self_contained(report: ReportResult) -> None:
    page = report.path.read_text()
    assert re.findall(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", page) == []
    assert page.count("* plotly.js v") == 1  # the library, inlined once


@pytest.mark.slow
def _stats(page: str) -> dict[str, str]:
    """The report's stat tiles: label -> value."""
    return {
        label: value
        for value, label in re.findall(
            r'<div class="value">([^<]+)</div><div class="label">([^<]+)</div>', page
        )
    }


def test_report_shows_the_run_summary(real_built: Settings, report: ReportResult) -> None:
    page = report.path.read_text()
    stats = _stats(page)
    assert {
        k: stats[k]
        for k in (
            "files read",
            "documents",
            "loaded",
            "repaired",
            "quarantined",
            "skipped",
            "unchanged",
        )
    } | {"deleted": stats["deleted"]} == {
        "files read": "10,000",
        "documents": "10,000",
        "loaded": "10,000",
        "repaired": "222",
        "quarantined": "0",
        "skipped": "0",
        "unchanged": "0",
        "deleted": "—",  # loaded without --full: it cannot delete
    }
    headings = re.findall(r"<h2>([^<]+)</h2>", page)
    assert headings == [
        "Overview",
        "Run summary",
        "Data quality",
        "Engagement",
        "Top advocates",
        "Brands &amp; programs",
        "Sales attribution",
    ]


@pytest.mark.slow
def test_report_says_how_many_users_each_ranking_is_over(
    real_built: Settings, report: ReportResult
) -> None:
    """The top advocates' rankings say how many users they are over (those with a known value)
    of all users, counted here from the core models, not from the model the report reads."""

    def count(statement: str) -> int:
        return int(query(real_built, statement)[0][0])  # type: ignore[call-overload]

    users = count("select count(*) from dbt.base")
    engagement = count(
        "select count(distinct user_key) from dbt.tasks_completed where engagement is not null"
    )
    reach = count(
        "select count(distinct user_key) from dbt.tasks_completed where reach is not null"
    )
    sales = count(
        "select count(distinct user_key) from dbt.advocacy_programs"
        " where total_sales_attributed is not null"
    )
    assert (users, engagement, reach, sales) == (10000, 5256, 9729, 6015)
    page = " ".join(report.path.read_text().split())
    assert (
        f"The rankings are over {engagement:,} of the {users:,} users by engagement, {reach:,}"
        f" by reach and {sales:,} by sales: the others have no known value to rank." in page
    )


def test_report_says_the_first_and_last_join_months_are_parts_of_months(
    real_built: Settings, report: ReportResult
) -> None:
    """The join-month charts' first and last bars are lower because the dump's join dates
    begin and end inside those months; the note says so, with the dates (from the core model)."""
    [(first, last)] = query(
        real_built,
        "select min(joined_at) at time zone 'UTC', max(joined_at) at time zone 'UTC' from dbt.base",
    )
    assert (first.day > 1, last.day < 28) == (True, True)  # type: ignore[union-attr]
    page = " ".join(report.path.read_text().split())
    assert (
        f"The join dates run from {first.day} {first:%b %Y} to {last.day} {last:%b %Y} (UTC):"
        f" {first:%b %Y} and {last:%b %Y} hold only part of their months, so their bars count"
        " fewer days of joins than the others." in page
    )


def test_report_join_span_is_said_only_for_parts_of_months() -> None:
    def span(first: datetime, last: datetime) -> str:
        return _join_span(pd.DataFrame([{"first_joined_at": first, "last_joined_at": last}]))

    whole = span(datetime(2024, 3, 1, tzinfo=UTC), datetime(2025, 2, 28, 23, 59, tzinfo=UTC))
    one = span(datetime(2024, 3, 1, tzinfo=UTC), datetime(2025, 2, 10, tzinfo=UTC))
    assert whole == _join_span(pd.DataFrame()) == ""
    assert one == (
        "The join dates run from 1 Mar 2024 to 10 Feb 2025 (UTC): Feb 2025 holds only part of"
        " its month, so its bar counts fewer days of joins than the others."
    )
    # the month is the UTC one: 23:30 on the 29th at -02:00 is the 1st of March in UTC
    late = datetime(2024, 2, 29, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert span(late, datetime(2024, 3, 31, 12, tzinfo=UTC)) == ""


def test_report_cli_writes_into_out(real_built: Settings, tmp_path: Path) -> None:
    done = run_cli(real_built, "report", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    size = (tmp_path / "report.html").stat().st_size
    assert (done.stdout, done.stderr) == (
        f"{tmp_path / 'report.html'}\n",
        f"report: {CHARTS} charts, {size / 1e6:.1f} MB\n",
    )


def test_report_cli_before_transform_fails_in_one_line(settings: Settings) -> None:
    done = run_cli(settings, "report")
    missing = ", ".join(f"dbt_analysis.{model}" for model in MODELS)
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"error: report failed: {missing} missing; run `duel transform` first\n",
    )


def test_charts_say_no_data_for_empty_models() -> None:
    empty = pd.DataFrame()
    builders = [
        charts.coverage_chart,
        charts.documents_per_batch_chart,
        charts.defects_by_field_chart,
        charts.clean_share_chart,
        charts.coverage_by_platform_chart,
        charts.engagement_by_platform_chart,
        charts.engagement_over_time_chart,
        charts.top_advocates_chart,
        charts.brand_performance_chart,
        charts.program_performance_chart,
        charts.sales_by_platform_chart,
        charts.sales_outliers_chart,
    ]
    texts = [build(empty).layout.annotations[0].text for build in builders]
    assert texts == [
        "no data",
        "no batches yet",
        "no defects recorded",
        "no batches yet",
        "no data",
        "no data",
        "no tasks",
        "no advocates",
        "no data",
        "no program with both engagement and sales",
        "no data",
        "no scored sales",
    ]


def test_charts_give_each_platform_one_colour() -> None:
    assert [
        charts.platform_colour(p) for p in ("instagram", "tiktok", "facebook", None, "myspace")
    ] == ["#C13584", "#11A39B", "#1877F2", "#9AA0A6", "#E3A21A"]
    # the report's tables mark a platform with the charts' colour, an unexpected one too
    row = environment().from_string("{{ platform | platform_colour }}")
    assert [row.render(platform=p) for p in ("tiktok", None, "myspace")] == [
        "#11A39B",
        "#9AA0A6",
        "#E3A21A",
    ]


def _platform(platform: str | None, tasks: int, likes_known: int, likes: int) -> dict[str, Any]:
    """An engagement_by_platform row: `tasks` tasks, the likes of `likes_known` known, the
    rest of the measures unknown."""
    row: dict[str, Any] = {
        "platform": platform,
        "is_unknown_platform": platform is None,
        "is_accepted_platform": platform in ("instagram", "tiktok", "facebook"),
        "task_count": tasks,
    }
    for m in ("likes", "comments", "shares", "reach", "engagement"):
        known = likes_known if m == "likes" else 0
        total = Decimal(likes) if m == "likes" and known else None
        row |= {
            m: total,
            f"{m}_known": known,
            f"{m}_known_share": Decimal(known) / tasks,
            f"{m}_average": total / known if total is not None else None,
        }
    return row | {
        "engagement_rate": None,
        "engagement_rate_tasks": 0,
        "engagement_rate_engagement": None,
        "engagement_rate_reach": None,
        "engagement_stddev": None,
        "engagement_average_low": None,
        "engagement_average_high": None,
        "engagement_rate_low": None,
        "engagement_rate_high": None,
    }


def _month(
    platform: str | None,
    month: date | None,
    known: int,
    average: tuple[int, int | None, int | None] | None,
    rate: tuple[str, str | None, str | None] | None = None,
) -> dict[str, Any]:
    """An engagement_by_join_month row: `known` tasks with known engagement and reach, its
    engagement per task and rate as (value, low, high), None for no interval (NULLs)."""
    value, low, high = average if average is not None else (None, None, None)
    r_value, r_low, r_high = (
        (None if v is None else Decimal(v) for v in rate) if rate is not None else (None,) * 3
    )
    return _platform(platform, max(known, 1), known, 0) | {
        "join_month": month,
        "is_unknown_join_month": month is None,
        "engagement_known": known,
        "engagement_average": value if known else None,
        "engagement_average_low": low,
        "engagement_average_high": high,
        "engagement_rate": r_value if known else None,
        "engagement_rate_tasks": known,
        "engagement_rate_low": r_low,
        "engagement_rate_high": r_high,
    }


def _compared(platform: str, value: str, low: str, high: str, n: int) -> dict[str, Any]:
    """An engagement_by_platform row with engagement per known task `value` (interval low to
    high, "" for none) over `n` tasks, and a rate of a hundredth of it."""
    row = _platform(platform, 1000, 0, 0)
    bounds = (Decimal(low), Decimal(high)) if low else (None, None)
    return row | {
        "engagement_average": Decimal(value),
        "engagement_known": n,
        "engagement_average_low": bounds[0],
        "engagement_average_high": bounds[1],
        "engagement_rate": Decimal(value) / 10000,
        "engagement_rate_tasks": n,
        "engagement_rate_low": bounds[0] / 10000 if low else None,
        "engagement_rate_high": bounds[1] / 10000 if low else None,
    }


def test_platform_comparison_ranks_only_where_the_intervals_part() -> None:
    """The highest platform on each measure, with its n and 95% interval; ranked above the
    platforms whose intervals lie wholly below its own, not against those whose intervals
    overlap it or that have none (one task); platforms level at the top are said to be level;
    the unknown platform and a platform outside the accepted ones are never compared."""
    clear = [
        _compared("tiktok", "400", "390", "410", 900),
        _compared("instagram", "300", "290", "310", 800),
        _compared("tik tok", "900", "800", "1000", 5),  # not accepted: not compared
        _compared(None, "950", "900", "1000", 50),  # type: ignore[arg-type]
    ]
    assert platform_comparison(frame(clear)) == [
        "Engagement per known task: tiktok is highest (400.0 over 900 tasks, 95% interval 390.0"
        " to 410.0): its interval lies above instagram's.",
        "Engagement rate: tiktok is highest (4.00% over 900 tasks, 95% interval 3.90% to 4.10%):"
        " its interval lies above instagram's.",
    ]
    assert platform_comparison(frame(clear[:1] + clear[2:])) == []  # one accepted platform


def test_join_month_comparison_names_months_apart_within_a_platform_never_across() -> None:
    """Months are compared within each accepted platform by their 95% intervals: the pair
    whose intervals part is named, with both; a platform whose months all overlap is said to
    single none out; a month without an interval (one task), the undated tasks, the unknown
    platform and a platform outside the accepted ones are not compared, and a platform some of
    whose months are not says over how many it is (the real dump's facebook: 2 of 13)."""
    mar, apr, may = date(2024, 3, 1), date(2024, 4, 1), date(2024, 5, 1)
    rows = [
        _month("tiktok", mar, 97, (360, 340, 380), ("0.06", "0.05", "0.07")),
        _month("tiktok", apr, 197, (320, 300, 339), ("0.062", "0.055", "0.069")),
        _month("tiktok", may, 1, (900, None, None), ("0.2", None, None)),  # no interval
        _month("tiktok", None, 900, (100, 95, 105), ("0.01", "0.009", "0.011")),  # undated
        _month("instagram", mar, 68, (350, 316, 385), ("0.063", "0.054", "0.072")),
        _month("instagram", apr, 230, (340, 321, 358), ("0.066", "0.06", "0.072")),
        _month(None, mar, 50, (900, 880, 920)),  # the unknown platform
        _month(None, apr, 50, (10, 5, 15)),
        _month("tik tok", mar, 50, (900, 880, 920)),  # not an accepted platform
        _month("tik tok", apr, 50, (10, 5, 15)),
    ]
    platforms = frame(
        [
            _platform("tiktok", 1, 1, 1),
            _platform("instagram", 1, 1, 1),
            _platform("tik tok", 1, 1, 1),
            _platform(None, 1, 1, 1),  # type: ignore[arg-type]
        ]
    )
    assert join_month_comparison(frame(rows), platforms) == [
        "Engagement per known task by join month, compared within each platform: tiktok (2 of 3"
        " months with an interval): Mar 2024 (360.0 over 97 tasks, 95% interval 340.0 to 380.0)"
        " lies above Apr 2024 (320.0 over 197 tasks, 95% interval 300.0 to 339.0), beyond both"
        " intervals (of many pairs of months, one may differ this much by chance); within"
        " instagram every month's 95% interval overlaps every other's, so no month is singled"
        " out (a month of fewer than two tasks has no interval and is not compared).",
        "Engagement rate by join month, compared within each platform: within instagram and"
        " tiktok (2 of 3 months with an interval) every month's 95% interval overlaps every"
        " other's, so no month is singled out (a month of fewer than two tasks has no interval"
        " and is not compared).",
    ]
    # one month with an interval per platform: nothing to compare
    assert join_month_comparison(frame(rows[:1] + rows[2:5]), platforms) == []


_NOT_RANKED = (
    " by engagement per known task (within overlapping 95% intervals a difference may be chance;"
    " more tasks would tell)"
)
_LEVEL = [
    _compared("tiktok", "215", "200", "230", 50),
    _compared("facebook", "215", "", "", 1),
    _compared("instagram", "100", "90", "110", 60),
]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [
                _compared("facebook", "356.4", "323.2", "389.7", 73),
                _compared("tiktok", "332.8", "327.1", "338.5", 2554),
                _compared("instagram", "300.0", "295.0", "305.0", 2551),
            ],
            "Engagement per known task: facebook is highest (356.4 over 73 tasks, 95% interval"
            " 323.2 to 389.7), but its interval overlaps tiktok's (327.1 to 338.5): the report does"
            " not rank facebook and tiktok against each other" + _NOT_RANKED + "; its interval lies"
            " above instagram's.",
            id="overlapping",
        ),
        pytest.param(
            [_compared("facebook", "500", "", "", 1), _compared("tiktok", "300", "290", "310", 90)],
            "Engagement per known task: facebook is highest (500.0 over 1 task, too few tasks for"
            " an interval): the report does not rank facebook and tiktok against each other"
            + _NOT_RANKED
            + ".",
            id="highest-without-interval",
        ),
        pytest.param(
            [_compared("tiktok", "400", "390", "410", 900), _compared("facebook", "10", "", "", 1)],
            "Engagement per known task: tiktok is highest (400.0 over 900 tasks, 95% interval 390.0"
            " to 410.0), but facebook has too few tasks: the report does not rank tiktok and"
            " facebook against each other" + _NOT_RANKED + ".",
            id="another-without-interval",
        ),
        pytest.param(
            _LEVEL,
            "Engagement per known task: facebook and tiktok are level at 215.0, but facebook has"
            " too few tasks: the report does not rank facebook, tiktok and instagram against each"
            " other" + _NOT_RANKED + ".",
            id="level-one-without-interval",
        ),
        pytest.param(
            [_LEVEL[0], _compared("facebook", "215", "205", "225", 40), _LEVEL[2]],
            "Engagement per known task: facebook and tiktok are level at 215.0: their intervals"
            " lie above instagram's.",
            id="level-both-with-intervals",
        ),
    ],
)
def test_platform_comparison_says_why_it_does_not_rank(
    rows: list[dict[str, Any]], expected: str
) -> None:
    """Where intervals overlap, or a platform has too few tasks for one, the sentence names the
    platforms it does not rank against each other, and why; level platforms are said level."""
    assert platform_comparison(frame(rows))[0] == expected


def test_report_never_sums_an_accepted_platform_into_the_other_platforms() -> None:
    """An accepted platform without a colour of its own (a platform added to the accepted list)
    is never summed with the made-up labels: it has its row, ranked, in the charts and the
    table, and the comparison sentence names only platforms the table shows."""
    rows = [
        _compared("tiktok", "300", "290", "310", 900),
        _compared("reddit", "400", "390", "410", 24) | {"is_accepted_platform": True},
        *(_platform(f"label {n}", 10 + n, 0, 0) for n in range(8)),
    ]
    shown = charts.platform_rows(rows)
    assert list(shown["label"])[:2] == ["tiktok", "reddit"]
    assert list(shown["label"])[-1] == "3 other platforms"  # labels 0-2; 3-7 drawn
    assert platform_comparison(frame(rows))[0].startswith(
        "Engagement per known task: reddit is highest (400.0 over 24 tasks"
    )


def test_charts_engagement_by_platform_draws_each_interval_through_its_dot() -> None:
    rows = [
        _compared("tiktok", "332.8", "327.1", "338.5", 2554),
        _compared("facebook", "356.4", "323.2", "389.7", 73),
        _compared(None, "309.8", "", "", 1),  # type: ignore[arg-type]
    ]
    per_task, rate = charts.engagement_by_platform_chart(rows).data
    assert list(per_task.y) == ["tiktok", "facebook", "unknown platform"]
    assert [round(v, 6) for v in per_task.error_x.array] == [5.7, 33.3, 0]
    assert [round(v, 6) for v in per_task.error_x.arrayminus] == [5.7, 33.2, 0]
    assert [round(v, 8) for v in rate.error_x.array] == [0.00057, 0.00333, 0]


def test_charts_draw_a_few_made_up_platforms_and_sum_the_rest() -> None:
    # a dump whose platform field holds free text: the platforms with a colour first, then the
    # 5 made-up labels over most tasks (shortened), the 3 others summed into one row whose
    # shares and averages come from the summed parts, then the unknown platform
    rows = [
        _platform("tiktok", 100, 50, 500),
        _platform("instagram", 90, 45, 450),
        _platform(None, 30, 0, 0),
        *(
            _platform(f"made-up label number {n} that is long", n, n // 2, 10 * n)
            for n in (9, 8, 7, 6, 5)
        ),
        _platform("rare one", 2, 1, 4),
        _platform("rare two", 3, 0, 0),
        _platform("rare three", 1, 1, 6),
    ]
    heatmap = charts.coverage_by_platform_chart(rows)
    drawn = [f"made-up label number {n} …" for n in (9, 8, 7, 6, 5)]
    assert list(heatmap.data[0].y) == [
        "tiktok",
        "instagram",
        *drawn,
        "3 other platforms",
        "unknown platform",
    ]
    assert heatmap.data[0].text[-2][0] == "33%<br>2 of 6"  # likes known in 2 of the 6 tasks
    dots = charts.engagement_by_platform_chart(rows)
    assert list(dots.data[0].y)[-2:] == ["3 other platforms", "unknown platform"]
    by_month = charts.engagement_over_time_chart(
        [{**row, "join_month": None, "platform": row["platform"]} for row in rows]
    )
    assert sorted(bar.name for bar in by_month.data if bar.type == "bar") == sorted(
        ["tiktok", "instagram", "unknown platform", "3 other platforms", *drawn]
    )
    attribution = [
        {
            "platform": platform,
            "is_unknown_platform": platform is None and not without,
            "is_without_tasks": without,
            "program_count": n,
            "sales_known": known,
            "attributed_sales": Decimal(sales) if known else None,
            "program_sales": Decimal(sales) if known else None,
            "outlier_programs": 0,
        }
        for platform, without, n, known, sales in [
            ("tiktok", False, 50, 40, 4000),
            (None, False, 10, 5, 50),
            (None, True, 4, 4, 40),
            *((f"label {n}", False, n, n, 100 * n) for n in range(1, 9)),
        ]
    ]
    sales = charts.sales_by_platform_chart(attribution)
    assert list(sales.data[2].y) == [
        "tiktok",
        *(f"label {n}" for n in (8, 7, 6, 5, 4)),
        "3 other platforms",
        "unknown platform",
        "no tasks",
    ]
    # the folded row's average is its summed sales over its summed known programs: 600 / 6
    assert sales.data[2].x[6] == 100.0


def _attribution(platform: str, programs: int) -> dict[str, Any]:
    """A sales_attribution row of a known platform: `programs` programs, each with known sales
    of 10."""
    return {
        "platform": platform,
        "is_unknown_platform": False,
        "is_without_tasks": False,
        "program_count": programs,
        "sales_known": programs,
        "attributed_sales": Decimal(10 * programs),
        "program_sales": Decimal(10 * programs),
        "outlier_programs": 0,
    }


def test_report_says_what_a_tie_across_the_cut_leaves_out() -> None:
    # 12 users tie at rank 2 of engagement: 9 of them fit under the 10 rows, 3 do not
    advocates = pd.DataFrame(
        [
            {
                "ranking": "engagement",
                "rank": 1 if n == 0 else 2,
                "is_tied": n > 0,
                "label": f"user {n:02}",
                "user_key": str(n),
                "value": Decimal(100 if n == 0 else 50),
            }
            for n in range(13)
        ]
    )
    rows, cut = _leaderboard(advocates)
    assert [row["engagement"]["label"] for row in rows] == [f"user {n:02}" for n in range(10)]
    assert cut == {"engagement": "+3 tied at #2 not shown"}
    figure = charts.top_advocates_chart(advocates)
    assert (
        figure.layout.annotations[0].text == "by engagement<br><sub>+3 tied at #2 not shown</sub>"
    )
    # brands: 12 tie at rank 5 of sales; the table marks the tie and says 6 are left out
    brands = pd.DataFrame([{"brand": f"B{n:02}", "sales_rank": min(n, 5)} for n in range(1, 17)])
    ranked = _ranked(brands, "sales_rank", 10)
    assert [(r["brand"], r["sales_rank"], r["is_tied"]) for r in ranked["rows"]][3:6] == [
        ("B04", 4, False),
        ("B05", 5, True),
        ("B06", 5, True),
    ]
    assert ranked["note"] == "+6 tied at #5 not shown"


def test_report_says_what_the_headline_figures_include() -> None:
    def overview(**values: int) -> pd.DataFrame:
        zero = dict.fromkeys(
            (
                "users_without_programs",
                "programs_without_tasks",
                "sales_negative",
                "sales_outliers",
            ),
            0,
        )
        return pd.DataFrame([{"user_count": 2000, "program_count": 2982, **zero, **values}])

    assert _included(overview(users_without_programs=514, sales_negative=1, sales_outliers=3)) == (
        "They hold 514 users of 2,000 without a program (an empty or unusable list), which have"
        " no engagement to show. The known sales include 1 negative amount and 3 outlier"
        " programs (see the sales section), as the data holds them."
    )
    assert _included(overview(programs_without_tasks=730)) == (
        "They hold 730 programs of 2,982 without a task (an empty or unusable list), which have"
        " no engagement to show."
    )
    assert _included(overview()) == (
        "Every user has a program and every program a task; no known sales amount is negative"
        " or an outlier."
    )


def test_charts_draw_a_program_whose_engagement_is_known_for_every_task() -> None:
    # program a: engagement known for 1 of its 3 tasks (377 is part of it, not its engagement)
    rows = [
        {
            "program_key": key,
            "brand": brand,
            "engagement": engagement,
            "engagement_known": known,
            "task_count": tasks,
            "total_sales_attributed": Decimal(sales),
        }
        for key, brand, engagement, known, tasks, sales in [
            ("a", "X", 377, 1, 3, 100),
            ("b", "Y", 500, 2, 2, 200),
        ]
    ]
    figure = charts.program_performance_chart(rows)
    assert (list(figure.data[0].x), list(figure.data[0].y)) == ([500], [200.0])


def test_charts_engagement_over_time_draws_a_month_without_users_empty() -> None:
    # users joined in January and March: February is on the axis, no bar and a gap in the
    # lines (it was left out, and the lines went straight from January to March)
    rows = [
        _month("tiktok", month, 10, (10, 8, 12))
        for month in (date(2024, 1, 1), date(2024, 3, 1), None)
    ]
    figure = charts.engagement_over_time_chart(rows)
    bars, average = figure.data[0], figure.data[1]
    assert list(bars.x) == ["Jan 2024", "Feb 2024", "Mar 2024", "no join date"]
    assert list(bars.y) == [10, 0, 10, 10]
    assert list(average.x) == ["Jan 2024", "Feb 2024", "Mar 2024"]
    assert [None if pd.isna(v) else v for v in average.y] == [10.0, None, 10.0]


def test_charts_engagement_over_time_draws_each_platform_with_its_intervals() -> None:
    """Each platform's engagement per task and rate by join month, with the 95% interval of
    every point as its bar (none where the model has none), side by side with the other
    platforms' in a month; the undated column a dot of its own, no line into it. Across
    platforms a month's value mixed its platforms, and no point had an interval."""
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    rows = [
        _month("tiktok", jan, 10, (100, 90, 110), ("0.05", "0.04", "0.06")),
        _month("tiktok", feb, 1, (120, None, None), ("0.07", None, None)),  # one task: no interval
        _month("tiktok", None, 4, (80, 70, 95), ("0.03", "0.02", "0.05")),
        _month("instagram", jan, 3, (200, 150, 250), ("0.08", "0.01", "0.15")),
        _month("instagram", feb, 0, None),  # tasks, none with known engagement: no point
    ]
    figure = charts.engagement_over_time_chart(rows)
    lines = [
        (
            t.name,
            t.yaxis,
            t.mode,
            t.offsetgroup,
            list(t.x),
            [None if pd.isna(v) else float(v) for v in t.y],
            [round(float(v), 6) for v in t.error_y.arrayminus],
            [round(float(v), 6) for v in t.error_y.array],
        )
        for t in figure.data
        if t.type == "scatter"
    ]
    assert lines == [
        ("instagram", "y2", "lines+markers", "instagram", ["Jan 2024", "Feb 2024"], [200.0, None],
         [50.0, 0.0], [50.0, 0.0]),
        ("instagram", "y3", "lines+markers", "instagram", ["Jan 2024", "Feb 2024"], [0.08, None],
         [0.07, 0.0], [0.07, 0.0]),
        ("tiktok", "y2", "lines+markers", "tiktok", ["Jan 2024", "Feb 2024"], [100.0, 120.0],
         [10.0, 0.0], [10.0, 0.0]),
        ("tiktok", "y2", "markers", "tiktok", ["no join date"], [80.0], [10.0], [15.0]),
        ("tiktok", "y3", "lines+markers", "tiktok", ["Jan 2024", "Feb 2024"], [0.05, 0.07],
         [0.01, 0.0], [0.01, 0.0]),
        ("tiktok", "y3", "markers", "tiktok", ["no join date"], [0.03], [0.01], [0.02]),
    ]  # fmt: skip
    tiktok = next(t for t in figure.data if t.type == "scatter" and t.name == "tiktok")
    assert [list(c) for c in tiktok.customdata] == [
        [10, " (95% interval 90.0 to 110.0)"],
        [1, ""],
    ]
    assert figure.layout.scattermode == "group"
    # the bars one stack over each month's whole width, apart from the points' offset groups
    assert {(t.alignmentgroup, t.offsetgroup) for t in figure.data if t.type == "bar"} == {
        ("tasks", "tasks")
    }


def test_charts_engagement_by_platform_keeps_its_labels_on_a_narrow_page() -> None:
    # at 800 px the two titles ran together and the last dot's "(n = 72)" was cut to "(n = 7"
    figure = charts.engagement_by_platform_chart([_platform("facebook", 1202, 73, 26020)])
    assert [a.text for a in figure.layout.annotations] == [
        "Engagement per task<br>(tasks with known engagement)",
        "Engagement rate<br>(tasks with engagement and reach known)",
    ]
    assert figure.layout.margin.r == 100


def test_report_counts_a_program_on_two_platforms_once_and_per_program_whole() -> None:
    # one program of the unknown brand, sales 300, one task on facebook and two on instagram:
    # attributed 100 and 200, in a row per platform; one program of Acme, 300, on facebook
    def row(brand: str | None, platform: str, attributed: int) -> dict[str, Any]:
        return {
            "brand": brand or "(unknown brand)",
            "platform": platform,
            "is_unknown_brand": brand is None,
            "is_unknown_platform": False,
            "is_without_tasks": False,
            "program_count": 1,
            "sales_known": 1,
            "attributed_sales": Decimal(attributed),
            "program_sales": Decimal(300),
            "outlier_programs": 0,
        }

    attribution = pd.DataFrame(
        [row(None, "facebook", 100), row(None, "instagram", 200), row("Acme", "facebook", 300)]
    )
    brands = pd.DataFrame(
        [{"is_unknown_brand": True, "program_count": 1, "sales_known": 1, "sales": Decimal(300)}]
    )
    assert _unknown_members(attribution, brands) == [
        {
            "member": "unknown brand",
            "programs": 1,
            "known": 1,
            "sales": Decimal(300),
            "per_program": 300.0,
        }
    ]
    sales = charts.sales_by_platform_chart(attribution)
    # programs per platform; per program, whole programs: 300 each, not 200 (100 and 300)
    assert dict(zip(sales.data[0].y, sales.data[0].x, strict=True)) == {
        "facebook": 2,
        "instagram": 1,
    }
    assert dict(zip(sales.data[2].y, sales.data[2].x, strict=True)) == {
        "facebook": 300.0,
        "instagram": 300.0,
    }


def test_charts_a_made_up_label_that_reads_like_the_summed_row_is_drawn_as_itself() -> None:
    attribution = [
        _attribution(platform, n)
        for platform, n in [("2 other platforms", 100), *((f"label {n}", n) for n in range(1, 9))]
    ]
    assert list(charts.sales_by_platform_chart(attribution).data[2].y) == [
        "2 other platforms",
        *(f"label {n}" for n in (8, 7, 6, 5)),
        "4 other platforms",
    ]


def test_charts_two_long_labels_with_one_start_stay_two_rows() -> None:
    # shortened to 24 characters, both would read "aaaaaaaaaaaaaaaaaaaaaaa…": summed together
    # under one name in the sales chart, they are told apart instead
    attribution = [
        _attribution(platform, n)
        for platform, n in [("tiktok", 9), ("a" * 30 + "1", 5), ("a" * 30 + "2", 3)]
    ]
    bars = charts.sales_by_platform_chart(attribution).data[2]
    short = "a" * 23 + "…"
    assert (list(bars.y), list(bars.x)) == (["tiktok", short, f"{short} (2)"], [10.0, 10.0, 10.0])
    # three with one start, and a label that reads like the second's shortened name
    weights = {"a" * 30 + "1": 4, "a" * 30 + "2": 3, "a" * 30 + "3": 2, "a" * 23 + "… (2)": 1}
    assert sorted(charts.results._folded_labels(weights, ())[0].values()) == [
        short,
        f"{short} (2)",
        f"{short} (3)",
        f"{short} (4)",
    ]
    assert list(charts.sales_by_platform_chart(attribution).data[0].x) == [9, 5, 3]


def _quality_rows(defects: dict[str, int]) -> pd.DataFrame:
    """data_quality of one batch of 10 tasks: the "(all fields)" row and one row per defect."""
    rows = [
        {"batch_id": 1, "record_type": "task", "field": charts.ALL_FIELDS, "defect": None}
        | {"defect_count": None, "records": 10, "records_affected": 5}
    ]
    rows += [
        {"batch_id": 1, "record_type": "task", "field": "likes", "defect": defect}
        | {"defect_count": count, "records": 10, "records_affected": None}
        for defect, count in defects.items()
    ]
    return pd.DataFrame(rows)


def test_charts_give_each_defect_class_its_colour_by_the_vocabulary() -> None:
    """A class's colour is its place in the project's vocabulary, whichever classes the data has,
    and the legend follows the vocabulary; a class outside it comes after, by name."""
    vocabulary = ["missing", "wrong-type", "empty", "placeholder"]
    colours = charts.DEFECT_COLOURS

    def drawn(defects: dict[str, int], classes: list[str] | None) -> list[tuple[str, str]]:
        fig = charts.defects_by_field_chart(_quality_rows(defects), classes=classes)
        return [(trace.name, trace.marker.color) for trace in fig.data]

    assert drawn({"placeholder": 2, "quarantined:x": 1, "missing": 3}, vocabulary) == [
        ("missing", colours[0]),
        ("placeholder", colours[3]),
        ("quarantined:x", colours[4]),
    ]
    assert drawn({"placeholder": 1}, vocabulary) == [("placeholder", colours[3])]
    # read_models keeps the vocabulary with the frame: the chart takes it from there
    quality = _quality_rows({"empty": 1, "missing": 1})
    quality.attrs[charts.DEFECT_CLASSES_ATTR] = tuple(vocabulary)
    assert [t.marker.color for t in charts.defects_by_field_chart(quality).data] == [
        colours[0],
        colours[2],
    ]
    # no vocabulary: by name
    assert drawn({"placeholder": 1, "empty": 2}, None) == [
        ("empty", colours[0]),
        ("placeholder", colours[1]),
    ]


def test_report_reads_the_defect_vocabulary_of_the_project(settings: Settings) -> None:
    vocabulary = defect_vocabulary(settings)
    assert vocabulary == tuple(load_rules(settings.dbt_project_dir).classes)
    assert vocabulary[:3] == ("missing", "wrong-type", "empty")
    elsewhere = settings.with_overrides(dbt_project_dir=Path("/nonexistent/dbt"))
    assert defect_vocabulary(elsewhere) == ()


def test_report_template_escapes_data() -> None:
    env = environment()
    assert env.autoescape("report.html.j2") is True  # type: ignore[operator]
    assert (
        env.from_string("<td>{{ name }}</td>").render(name="<script>x</script>")
        == "<td>&lt;script&gt;x&lt;/script&gt;</td>"
    )
    # a long name may wrap after its underscores and colons; the data stays escaped
    assert (
        env.from_string("<td>{{ name | breakable }}</td>").render(name="<b>total_sales:x")
        == "<td>&lt;b&gt;total_<wbr>sales:<wbr>x</td>"
    )


def test_charts_one_batch_is_a_bar_not_a_trend() -> None:
    one = pd.DataFrame(
        [
            {
                "batch_id": 1,
                "record_type": t,
                "field": charts.ALL_FIELDS,
                "clean_share": 0.5,
                "records": 10,
            }
            for t in ("task", "user")
        ]
    )
    two = pd.concat([one, one.assign(batch_id=2)])
    assert [trace.type for trace in charts.clean_share_chart(one).data] == ["bar"]
    assert [trace.type for trace in charts.clean_share_chart(two).data] == ["scatter", "scatter"]


def _scored(
    group: str, scored: int, sales: list[float], outlier: float | None = None
) -> list[dict[str, object]]:
    """sales_outliers rows of one peer group: one per sales value, `outlier` flagged."""
    return [
        {
            "peer_group": group,
            "peer_group_scored": scored,
            "total_sales_attributed": value,
            "is_scored": True,
            "is_outlier": value == outlier,
            "peer_median": 10.0,
            "upper_bound": 20.0,
            "lower_bound": 0.0,
        }
        for value in sales
    ]


def test_charts_sales_outliers_draws_the_groups_with_outliers_then_the_largest() -> None:
    """Hundreds of peer groups (a million generated users) would be hundreds of unreadable
    columns: the chart draws PEER_GROUPS_DRAWN, those with an outlier first, then by size, and
    says what it left out."""
    rows = [
        *_scored("Acme on tiktok", 40, [1.0, 2.0]),
        *_scored("small brand on instagram", 31, [3.0, 99.0], outlier=99.0),
        *_scored("tiny brand on tiktok", 30, [5.0, 77.0], outlier=77.0),
    ]
    for n in range(12):  # twelve platform-sized groups, 100-111 scored, no outlier
        rows += _scored(f"group {n:02d}", 100 + n, [float(n)])
    fig = charts.sales_outliers_chart(pd.DataFrame(rows), total=40)
    drawn = [label.split("<br>")[0] for label in fig.layout.xaxis.categoryarray]
    assert drawn == [
        "small brand on",
        "tiny brand on",
        *(f"group {n:02d}" for n in range(11, 3, -1)),
    ]
    assert fig.layout.xaxis.categoryarray[0] == "small brand on<br>instagram<br>31 scored"
    assert [len(trace.x) for trace in fig.data[:2]] == [8 + 2, 2]  # dots: within, outliers
    assert fig.layout.title.subtitle.text == (
        "a sample of 18 of 40 scored programs, every outlier included; 10 of the 15 peer groups "
        "they fall in drawn (those with an outlier first, then the largest): 12 programs"
    )
    # more groups with outliers than are drawn: the subtitle counts those it leaves out
    many = [r for n in range(11) for r in _scored(f"b{n:02d}", 50, [1.0, 9.0], outlier=9.0)]
    subtitle = charts.sales_outliers_chart(pd.DataFrame(many)).layout.title.subtitle.text
    assert subtitle == (
        "all 22 scored programs; 10 of the 11 peer groups they fall in drawn (those with an "
        "outlier first, then the largest): 20 programs, 1 outlier(s) in groups not drawn"
    )
    # as many groups as are drawn: all of them, largest first, nothing said
    few = charts.sales_outliers_chart(pd.DataFrame(rows[8:]))
    assert len(few.layout.xaxis.categoryarray) == 10
    assert few.layout.title.subtitle.text == "all 10 scored programs"


def test_charts_documents_per_batch_shows_a_tiny_batch_as_tall_as_a_full_dump() -> None:
    batches = pd.DataFrame(
        [
            {
                "batch_id": 2,
                "files_read": 1,
                "loaded": 1,
                "repaired": 0,
                "unchanged": 0,
                "quarantined": 0,
                "skipped": 0,
            },
            {
                "batch_id": 1,
                "files_read": None,  # recorded by an earlier duel
                "loaded": 10_000,
                "repaired": 222,
                "unchanged": 0,
                "quarantined": 0,
                "skipped": 0,
            },
            {
                "batch_id": 3,
                "files_read": 1,  # one NDJSON file
                "loaded": 3,
                "repaired": 0,
                "unchanged": 9_996,
                "quarantined": 1,
                "skipped": None,
            },
        ]
    )
    fig = charts.documents_per_batch_chart(batches)
    bars = {trace.name: trace for trace in fig.data if trace.type == "bar"}
    shares = {name: [round(v, 2) for v in bar.y] for name, bar in bars.items()}
    assert shares == {
        "loaded clean": [97.78, 100.0, 0.03],
        "repaired": [2.22, 0.0, 0.0],
        "unchanged": [0.0, 0.0, 99.96],
        "quarantined": [0.0, 0.0, 0.01],
        "skipped": [0.0, 0.0, 0.0],
    }
    assert {name: list(bar.customdata) for name, bar in bars.items()} == {
        "loaded clean": [9_778, 1, 3],
        "repaired": [222, 0, 0],
        "unchanged": [0, 0, 9_996],
        "quarantined": [0, 0, 1],
        "skipped": [0, 0, 0],
    }
    (totals,) = [trace for trace in fig.data if trace.type == "scatter"]
    assert (list(totals.x), list(totals.text)) == (
        ["#1", "#2", "#3"],
        ["10,000 documents", "1 document", "10,000 documents in 1 file"],
    )


def test_report_numbers_print_every_digit_the_data_has() -> None:
    # a Decimal is rounded as the models round (half away from zero) and printed exactly: a
    # float would print 123,456,789,012,345,680 for the first
    number = environment().filters["number"]
    assert [
        number(Decimal("123456789012345678.91")),
        number(Decimal("123456789012345678.915"), 2),
        number(Decimal("-0.005"), 2),
        number(Decimal("2.5")),
        number(Decimal("15405960.00")),
        number(10**20),
        number(None),
    ] == [
        "123,456,789,012,345,679",
        "123,456,789,012,345,678.92",
        "-0.01",
        "3",
        "15,405,960",
        "100,000,000,000,000,000,000",
        "—",
    ]
    # a long figure in a card is smaller, and may wrap after its commas (a card is a sixth of
    # the page wide)
    assert str(environment().filters["breakable"]("14,030,613")) == "14,<wbr>030,<wbr>613"
    size = environment().filters["figure_size"]
    assert [size("10,000"), size("15,405,961"), size("14,030,613,539,655")] == [
        "",
        "long",
        "longer",
    ]


def test_report_tables_clip_a_long_value_from_the_data() -> None:
    # a made-up platform of 3,000 characters would set its table's width: its start is shown,
    # the whole value in the tooltip, both escaped
    clipped = environment().filters["clipped"]
    long = "<b>" + "x" * 2997
    assert clipped("tiktok") == "tiktok"
    assert clipped(None) == ""
    assert str(clipped(long)) == (
        f'<span title="&lt;b&gt;{"x" * 2997}">&lt;b&gt;{"x" * 56}…</span>'
    )


def test_report_durations_keep_what_a_small_batch_took() -> None:
    durations = environment().filters["duration"]
    assert [durations(s) for s in (None, 0.004, 0.034, 0.5, 2.449, 1234.56)] == [
        "—",
        "< 0.01 s",
        "0.03 s",
        "0.50 s",
        "2.4 s",
        "1,234.6 s",
    ]


@pytest.mark.slow
def test_report_shows_the_overview_first_with_its_coverage(report: ReportResult) -> None:
    page = report.path.read_text()
    assert _cards(page)[:6] == [
        ("10,000", "users · 54.6% with a user id"),
        ("10,000", "programs · 54.7% with a brand"),
        ("10,000", "tasks · 87.1% with a platform"),
        ("6.32%", "engagement rate · over 5,239 tasks"),
        (
            "15,405,961",
            "known sales · 6,015 of 10,000 programs",
        ),  # 15,405,960.50: half away from zero, as the models round
        ("2,561.26", "sales per program · with known sales"),
    ]
    assert (
        '<p class="note" id="included">Every user has a program and every program a task; no'
        in page
    )
    assert page.index('id="overview"') < page.index('id="summary"')


@pytest.mark.slow
def test_report_never_ranks_an_unknown_member(report: ReportResult) -> None:
    """The unknown brand, platform and join month are shown in rows
    of their own, with their size.
    """
    page = report.path.read_text()
    assert re.findall(
        r"<td>\(unknown brand\) · not ranked</td><td class=\"n\">([\d,]+)</td>", page
    ) == ["4,534"]
    assert "unknown brand · not ranked" in page and "unknown platform · not ranked" in page
    ranked = page.split("Top brands by sales")[1].split('<tr class="unknown">')[0]
    assert ranked.count("<tr><td") == 10 and "(unknown brand)" not in ranked


@pytest.mark.slow
def test_report_titles_fit_beside_the_toolbar(report: ReportResult) -> None:
    """Chart titles are short (what a chart leaves out is its subtitle), so plotly's toolbar never
    covers them.
    """
    titles = re.findall(
        r'"title":\{"font":\{"size":15\},(?:"subtitle":\{"font":\{[^{}]*\},"text":"[^"]*"\},)?'
        r'"text":"([^"]*)","x":0.01',
        report.path.read_text(),
    )
    assert len(titles) >= 6 and max(map(len, titles)) <= 45, titles


def test_chart_frames_make_decimals_floats_and_keep_nulls() -> None:
    """charts.look.frame: a numeric column (Decimals, psycopg's numeric) becomes float64 with
    NULL as NaN, whatever row its first known value is in; text and all-NULL columns stay."""
    data = frame(
        [
            {"sales": None, "brand": "A", "gone": None},
            {"sales": Decimal("12.50"), "brand": None, "gone": None},
            {"sales": Decimal("-1"), "brand": "B", "gone": None},
        ]
    )
    assert str(data["sales"].dtype) == "float64"
    assert data["sales"].isna().tolist() == [True, False, False]
    assert data["sales"].tolist()[1:] == [12.5, -1.0]
    assert data["brand"].tolist()[::2] == ["A", "B"]
    assert data["gone"].isna().all() and data["gone"].dtype == object


@pytest.mark.slow
def test_report_reads_only_the_brands_it_shows(real_built: Settings) -> None:
    """The report reads the ranked brands it draws and the unknown brand, not every brand: the
    brand chart and tables are the same as from every brand."""
    models = read_models(real_built)
    with read.snapshot(real_built, "test") as conn:
        every = read.frame(conn, read.select_model("engagement_by_brand", order_by=["brand_id"]))
    shown = models["brands"]
    assert (len(shown), len(every)) == (SHOWN_BRANDS, ALL_BRANDS)
    assert (
        charts.brand_performance_chart(shown, BRAND_RANKS).to_json()
        == charts.brand_performance_chart(every, BRAND_RANKS).to_json()
    )
    tables, whole = build_tables(models), build_tables({**models, "brands": every})
    assert (tables["brands"], tables["unknown_brand"]) == (whole["brands"], whole["unknown_brand"])
    assert len(tables["brands"]["rows"]) == 10 and tables["brands"]["note"] == ""
    assert tables["unknown_brand"]["brand"] == "(unknown brand)"


@pytest.mark.slow
def test_report_platform_table_sums_the_made_up_labels_the_charts_sum(
    real_built: Settings,
) -> None:
    """A free-text platform field: the table shows the charts' rows (the platforms with a colour
    and the 5 made-up labels over most tasks ranked by engagement per known task, the others
    summed into one row that is not ranked, then the unknown platform), not one row per label."""

    def known_engagement(platform: str | None, tasks: int, known: int, total: int) -> Any:
        row = _platform(platform, tasks, known, total)
        return row | {
            "engagement": row["likes"],
            "engagement_known": known,
            "engagement_known_share": row["likes_known_share"],
            "engagement_average": row["likes_average"],
        }

    rows = [
        known_engagement("tiktok", 100, 50, 5000),
        known_engagement(None, 30, 0, 0),
        *(known_engagement(f"label {n}", n, n, 10 * n * n) for n in range(1, 9)),
    ]
    models = {**read_models(real_built), "platforms": frame(rows)}
    table = build_tables(models)["platforms"]
    assert [(p["platform"], p["task_count"], p["unranked"]) for p in table] == [
        ("tiktok", 100, False),
        *((f"label {n}", n, True) for n in (8, 7, 6, 5, 4)),  # not accepted platforms
        ("3 other platforms", 6, True),
        (None, 30, True),
    ]
    # labels 1-3: 1 + 2 + 3 tasks, all known, 10 + 40 + 90 engagement
    assert (table[-2]["engagement"], table[-2]["engagement_average"]) == (140, 140 / 6)
    html = render_report(models, "duel")[0]
    assert "3 other platforms · summed, not ranked" in html
    assert ">label 3 ·" not in html and ">label 4 · not an accepted platform, not ranked<" in html


@pytest.mark.slow
def test_report_platform_table_ranks_only_the_accepted_platforms(real_built: Settings) -> None:
    """A platform outside the accepted ones (`tik tok`, flagged unknown-value) has its row, after
    the accepted ones and marked not ranked, though its 3 tasks average the most: it was ranked
    first, beside `tiktok`."""
    rows = [
        {**_platform("tiktok", 100, 50, 5000), "engagement_average": Decimal(100)},
        {**_platform("instagram", 90, 45, 900), "engagement_average": Decimal(20)},
        {**_platform("tik tok", 3, 3, 3000), "engagement_average": Decimal(1000)},
        {**_platform(None, 30, 0, 0), "engagement_average": None},
    ]
    models = {**read_models(real_built), "platforms": frame(rows)}
    table = build_tables(models)["platforms"]
    assert [(p["platform"], p["unranked"], p["unaccepted"]) for p in table] == [
        ("tiktok", False, False),
        ("instagram", False, False),
        ("tik tok", True, True),
        (None, True, False),
    ]
    html = render_report(models, "duel")[0]
    assert "tik tok · not an accepted platform, not ranked" in html
    assert "tiktok · not" not in html


@pytest.mark.slow
def test_report_sums_sales_attribution_in_the_database(real_built: Settings) -> None:
    """The report reads the attribution rows it lists and the model's sums per platform and
    unknown flag, not every brand and platform: the chart and the tables are the same as from
    every row (the sums exact: numeric in the database, Decimal in pandas)."""
    models = read_models(real_built)
    with read.snapshot(real_built, "test") as conn:
        every = read.frame(
            conn, read.select_model("sales_attribution", order_by=["brand_id", "platform"])
        )
    listed, sums = models["attribution_listed"], models["attribution_sums"]
    assert (len(listed), len(sums), len(every)) == (ATTRIBUTION_ROWS, 8, 5162)
    assert list(sums.columns) == [*ATTRIBUTION_GROUPS, *ATTRIBUTION_SUMS]
    for column in ATTRIBUTION_SUMS:
        assert sums[column].sum() == every[column].sum()  # exact: ints and Decimals
    # the chart's floats: from exact sums, or summed as floats (within rounding)
    ours, theirs = charts.sales_by_platform_chart(sums), charts.sales_by_platform_chart(every)
    assert ours.layout == theirs.layout and len(ours.data) == len(theirs.data) == 3
    for mine, whole_trace in zip(ours.data, theirs.data, strict=True):
        assert list(mine.y) == list(whole_trace.y)
        assert list(mine.text or ()) == list(whole_trace.text or ())
        assert list(mine.x) == pytest.approx(list(whole_trace.x), rel=1e-12, nan_ok=True)
    tables = build_tables(models)
    whole = build_tables({**models, "attribution_listed": every, "attribution_sums": every})
    assert tables["attribution"] == whole["attribution"]
    assert tables["unknown_members"] == whole["unknown_members"]
    assert [row["sales_rank"] for row in tables["attribution"]["rows"]] == list(range(1, 16))
    # the real dump has no program without tasks
    assert [row["member"] for row in tables["unknown_members"]] == [
        "unknown brand",
        "unknown platform",
    ]


def _cards(page: str) -> list[tuple[str, str]]:
    """The report's cards (its headline numbers), as (value, label); a long figure's wrap points
    (<wbr> after its commas) left out."""
    cards = re.findall(
        r'<div class="value[^"]*">((?:[^<]|<wbr>)+)</div>\s*<div class="label">([^<]+)</div>', page
    )
    return [(value.replace("<wbr>", ""), label) for value, label in cards]


def _clean_cards(page: str) -> list[tuple[str, str]]:
    """The report's cards of clean shares, as (value, label)."""
    return [card for card in _cards(page) if "clean" in card[1]]


def _user(path: Path, n: int, *, clean: bool) -> None:
    """A user file with one program and one task; every value valid, or the name a placeholder."""
    task = {
        "task_id": f"00000000-0000-4000-8000-{n:012d}",
        "platform": "TikTok",
        "post_url": f"https://example.com/post/{n}",
        "likes": 10,
        "comments": 2,
        "shares": 1,
        "reach": 500,
    }
    program = {
        "program_id": f"00000000-0000-4000-9000-{n:012d}",
        "brand": "Acme",
        "tasks_completed": [task],
        "total_sales_attributed": 12.5,
    }
    user = {
        "user_id": f"00000000-0000-4000-a000-{n:012d}",
        "name": f"User {n}" if clean else "???",
        "email": f"user{n}@example.com",
        "instagram_handle": f"@user{n}",
        "tiktok_handle": f"@user_{n}",
        "joined_at": "2025-03-14T19:00:03.025Z",
        "advocacy_programs": [program],
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / f"user_{n}.json").write_text(json.dumps(user))


@pytest.mark.slow
def test_report_quality_headline_is_over_the_current_records_not_the_latest_batch(
    settings: Settings, tmp_path: Path
) -> None:
    """Three clean users, then a delivery of one more whose name is a placeholder: the headline
    is 3 of 4 documents clean, and the latest batch (1 document, none clean) is a line of its own,
    not the headline. A third delivery whose only new file is quarantined made no document
    current, and says so."""
    data = tmp_path / "dump"
    for n in range(3):
        _user(data, n, clean=True)
    pipeline.run_pipeline(settings, data, notify=False)
    first_page = (settings.out_dir / "report.html").read_text()
    assert "documents fully clean · of 3" in first_page
    assert 'id="latest-quality"' not in first_page  # one batch: the headline is that batch
    _user(data, 3, clean=False)
    result = pipeline.run_pipeline(settings, data, notify=False)
    assert (result.ingest.loaded, result.ingest.unchanged) == (1, 3)
    models = read_models(settings)
    tables = build_tables(models)
    assert tables["documents"] == {"records": 4, "clean_records": 3, "clean_share": 0.75}
    assert [(c["record_type"], c["records"], c["records_affected"]) for c in tables["clean"]] == [
        ("file", 4, 0),
        ("program", 4, 0),
        ("task", 4, 0),
        ("user", 4, 1),
    ]
    assert [
        (d["record_type"], d["field"], d["defect"], d["defect_count"], d["records"])
        for d in tables["defects"]
    ] == [("user", "name", "placeholder", 1, 4)]
    assert tables["latest_quality"] == {
        "batch_id": 2,
        "records": 1,
        "clean_records": 0,
        "clean_share": 0.0,
        "types": [
            {"record_type": "file", "records": 1, "clean": 1},
            {"record_type": "program", "records": 1, "clean": 1},
            {"record_type": "task", "records": 1, "clean": 1},
            {"record_type": "user", "records": 1, "clean": 0},
        ],
    }
    page = (settings.out_dir / "report.html").read_text()
    assert _clean_cards(page) == [
        ("75.0%", "documents fully clean · of 4"),
        ("100.0%", "files clean · of 4"),
        ("100.0%", "programs clean · of 4"),
        ("100.0%", "tasks clean · of 4"),
        ("75.0%", "users clean · of 4"),
    ]
    [line] = re.findall(r'<p class="lead" id="latest-quality">(.*?)</p>', page, re.S)
    assert " ".join(line.split()) == (
        "The latest batch, #2, made 1 document current, 0 of them fully clean (0.0%): files 1 clean"
        " of 1; programs 1 clean of 1; tasks 1 clean of 1; users 0 clean of 1."
    )
    [defects] = charts.defects_by_field_chart(models["quality"]).data
    assert (defects.name, list(defects.y), list(defects.x)) == ("placeholder", ["user.name"], [1])
    first = charts.defects_by_field_chart(models["quality"], batch_id=1)
    assert first.layout.annotations[0].text == "batch 1: no defects"
    # a third delivery whose one new file is quarantined (not UTF-8) makes no document current
    (data / "user_4.json").write_bytes(b'{"name": "\xff"}')
    third = pipeline.run_pipeline(settings, data, notify=False)
    assert (third.ingest.quarantined, third.ingest.unchanged) == (1, 4)
    page = (settings.out_dir / "report.html").read_text()
    assert _clean_cards(page)[:2] == [
        ("75.0%", "documents fully clean · of 4"),
        ("80.0%", "files clean · of 5"),
    ]
    [line] = re.findall(r'<p class="lead" id="latest-quality">(.*?)</p>', page, re.S)
    assert " ".join(line.split()) == (
        "The latest batch, #3, made no document current: files 0 clean of 1."
    )
    # the quarantined file delivered intact: one file, loaded, not one loaded and one quarantined
    _user(data, 4, clean=True)
    fourth = pipeline.run_pipeline(settings, data, notify=False)
    assert (fourth.ingest.loaded, fourth.ingest.unchanged) == (1, 4)
    page = (settings.out_dir / "report.html").read_text()
    assert _clean_cards(page)[:2] == [
        ("80.0%", "documents fully clean · of 5"),
        ("100.0%", "files clean · of 5"),
    ]
    # a current document's newer delivery quarantined: its file is that one (5 files, 4 clean),
    # its data the last loaded (5 documents; the user stale, so not clean: 3 of 5)
    (data / "user_0.json").write_bytes(b'{"name": "\xff"}')
    fifth = pipeline.run_pipeline(settings, data, notify=False)
    assert (fifth.ingest.quarantined, fifth.ingest.unchanged) == (1, 4)
    quality = build_tables(read_models(settings))["clean"]
    assert [(c["record_type"], c["records"], c["records_affected"]) for c in quality] == [
        ("file", 5, 1),
        ("program", 5, 0),
        ("task", 5, 0),
        ("user", 5, 2),
    ]
    # a complete dump without user_3: the run summary counts the document it deleted, and the
    # batches table says so per batch, "—" where a dump loaded without --full deleted nothing
    (data / "user_3.json").unlink()
    sixth = pipeline.run_pipeline(settings, data, notify=False, full=True)
    assert (sixth.ingest.deleted, sixth.ingest.unchanged, sixth.ingest.quarantined) == (1, 3, 1)
    page = (settings.out_dir / "report.html").read_text()
    assert _stats(page)["deleted"] == "1"
    [lead] = re.findall(
        r'<section id="summary">\s*<h2>Run summary</h2>\s*<p class="lead">(.*?)</p>', page, re.S
    )
    assert "a complete dump (--full: the current documents it did not hold are deleted)" in lead
    rows = re.findall(r"<tr><td>#(\d+)</td>(.*?)</tr>", page, re.S)
    deleted = [(int(n), re.findall(r'<td class="n">([^<]*)</td>', cells)[-1]) for n, cells in rows]
    assert deleted == [(6, "1"), (5, "—"), (4, "—"), (3, "—"), (2, "—"), (1, "—")]
    # user_1 written otherwise (indented, keys reversed: the same document), user_2 changed: the
    # run summary and the batches table say how many of the unchanged came in other bytes
    written = json.loads((data / "user_1.json").read_text())
    reordered = dict(reversed(list(written.items())))
    (data / "user_1.json").write_text(json.dumps(reordered, indent=2))
    _user(data, 2, clean=False)
    seventh = pipeline.run_pipeline(settings, data, notify=False)
    assert (
        seventh.ingest.loaded,
        seventh.ingest.unchanged,
        seventh.ingest.unchanged_reasons,
    ) == (1, 2, {"same-content": 1})
    page = (settings.out_dir / "report.html").read_text()
    assert re.findall(
        r'<div class="value">([^<]+)</div><div class="label">unchanged</div>'
        r'<div class="sub">([^<]+)</div>',
        page,
    ) == [("2", "1 of them in other bytes")]
    cells = re.findall(
        r"<tr><td>#(\d+)</td>.*?<td class=\"n\">(\d+)<br><span class=\"sub\">"
        r"([^<]+)</span></td>",
        page,
        re.S,
    )
    assert cells == [("7", "2", "1 in other bytes")]


def test_charts_engagement_over_time_draws_no_line_for_a_label_two_platforms_share() -> None:
    # a platform spelt "Unknown Platform" (kept, case-folded, flagged unknown-value) is drawn
    # under the unknown platform's label: their bars stack, and neither has one value of its own
    # to draw (their two rows of a month failed the chart, and the report with it)
    jan = date(2024, 1, 1)
    rows = [
        _month(None, jan, 5, (10, 8, 12)),
        _month("unknown platform", jan, 5, (30, 28, 32)),
        _month("tiktok", jan, 5, (20, 18, 22)),
    ]
    figure = charts.engagement_over_time_chart(rows)
    assert [(t.type, t.name, list(t.y)) for t in figure.data] == [
        ("bar", "tiktok", [5]),
        ("scatter", "tiktok", [20.0]),
        ("bar", "unknown platform", [10]),
    ]


def test_charts_engagement_over_time_draws_its_lines_from_zero_to_above_the_highest_point() -> None:
    """The join-month lines of engagement per task and rate start at zero: on axes fitted to
    the points (320 to 340 on the real dump), months 6 % apart looked several times apart. They
    end a little above the highest point, not the highest bar: a month of two tasks has a bar
    to 1,921 on the real dump, which would flatten every other line."""
    rows = [
        _month("tiktok", date(2024, 3, 1), 10, (330, 300, 360), ("0.064", "0.05", "0.08")),
        _month("facebook", date(2024, 3, 1), 2, (402, 0, 1921), ("0.05", "0", "0.11")),
    ]
    layout = charts.engagement_over_time_chart(rows).layout
    assert (
        layout.yaxis.range,
        tuple(round(v, 6) for v in layout.yaxis2.range),
        tuple(round(v, 6) for v in layout.yaxis3.range),
    ) == (None, (0, 522.6), (0, 0.0832))


def test_charts_dot_axes_never_repeat_a_tick_label() -> None:
    """An axis fitted to one advocate at 13 spans about 2: its ticks (12.5, 13, 13.5, ...) were
    written as whole numbers, "13 13 14 14"; they keep a decimal there, none on wide axes."""
    one = pd.DataFrame(
        [
            {"ranking": r, "rank": 1, "is_tied": False, "label": "Ada", "user_key": "1", "value": v}
            for r, v in (("engagement", Decimal(13)), ("reach", Decimal(500)))
        ]
    )
    layout = charts.top_advocates_chart(one).layout
    assert (layout.xaxis.tickformat, layout.xaxis2.tickformat) == (",.1f", ",.0f")
