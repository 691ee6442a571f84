"""What the analysis models must say, recomputed from the JSON files alone (json_facts' parsing and
cleaning rules), never from the SQL: coverage of every measure, rankings, robust outliers.

    rows = analysis_rows(compute_facts(directory))
    overview(rows)            # the one row of dbt_analysis.overview
    by_platform(rows)         # engagement_by_platform, keyed by platform
    ranking(rows, "reach")    # top_advocates' users, ranked
    outliers(rows)            # sales_outliers' peer groups and bounds
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import cache
from typing import Any

from json_facts import (
    MISSING,
    PLATFORMS,
    Facts,
    _text,
    count_value,
    email_defect,
    file_key,
    handle_defect,
    id_defect,
    joined_at_defect,
    key,
    label_defect,
    name_defect,
    sales_value,
)

PARTS = ("likes", "comments", "shares")
MEASURES = ("likes", "comments", "shares", "reach", "engagement")
THRESHOLD = Decimal("3.5")  # sales_outliers.yml, config.meta.outliers
MIN_GROUP_SIZE = 30


@dataclass(frozen=True)
class Task:
    user_key: Any
    program_key: Any
    platform: str | None
    values: dict[str, int | None]  # likes, comments, shares, reach, engagement


@dataclass(frozen=True)
class Program:
    program_key: Any
    user_key: Any
    brand: str | None  # the brand as delivered (trimmed), None when unusable
    sales: Decimal | None
    platforms: tuple[str | None, ...]  # its tasks' platforms


@dataclass(frozen=True)
class User:
    user_key: Any
    document_key: str
    label: str
    label_source: str
    has_user_id: bool
    has_join_date: bool
    joined_at: datetime | None  # the usable join date, as an instant (UTC when no offset)


@dataclass(frozen=True)
class Rows:
    users: list[User]
    programs: list[Program]
    tasks: list[Task]


def round_to(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)


def _handle(document: dict[str, Any], name: str, low: int, high: int) -> str | None:
    value = document.get(name, MISSING)
    defect = handle_defect(value, low, high)
    if defect not in (None, "breaks-platform-rules"):
        return None
    return "@" + _text(value).lower().lstrip("@")


def _user(name: str, document: dict[str, Any]) -> User:
    """The label is the best identifier the user has: name, email,
    handles, user_id, document_key.
    """
    document_key = file_key(name)
    candidates = {
        "name": None if name_defect(document.get("name", MISSING)) else _text(document["name"]),
        "email": None
        if email_defect(document.get("email", MISSING))
        else _text(document["email"]).lower(),
        "instagram_handle": _handle(document, "instagram_handle", 1, 30),
        "tiktok_handle": _handle(document, "tiktok_handle", 2, 24),
        "user_id": None
        if id_defect(document.get("user_id", MISSING))
        else _text(document["user_id"]).lower(),
        "document_key": document_key,
    }
    source = next(field for field, value in candidates.items() if value is not None)
    return User(
        key(document_key),
        document_key,
        candidates[source],
        source,
        candidates["user_id"] is not None,
        joined_at_defect(document.get("joined_at", MISSING)) is None,
        _instant(document["joined_at"])
        if joined_at_defect(document.get("joined_at", MISSING)) is None
        else None,
    )


def _instant(value: Any) -> datetime:
    """A usable ISO-8601 join date as an instant: read with its offset, or as UTC without one."""
    moment = datetime.fromisoformat(_text(value) or "")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _task(task: dict[str, Any], user_key: Any, program_key: Any) -> Task:
    platform_defect = label_defect(task.get("platform", MISSING), PLATFORMS)
    platform = (
        _text(task["platform"]).lower() if platform_defect in (None, "unknown-value") else None
    )
    values: dict[str, int | None] = {
        name: count_value(task.get(name, MISSING))[1] for name in (*PARTS, "reach")
    }
    parts = [values[name] for name in PARTS]
    values["engagement"] = None if None in parts else sum(parts)  # type: ignore[arg-type]
    return Task(user_key, program_key, platform, values)


def analysis_rows(facts: Facts) -> Rows:
    users, programs, tasks = [], [], []
    for name, document in sorted(facts.files.items()):
        user = _user(name, document)
        users.append(user)
        for position, program in enumerate(document["advocacy_programs"], 1):
            program_key = key(user.document_key, position)
            brand = None if label_defect(program.get("brand", MISSING)) else _text(program["brand"])
            own = [_task(task, user.user_key, program_key) for task in program["tasks_completed"]]
            programs.append(
                Program(
                    program_key,
                    user.user_key,
                    brand,
                    sales_value(program.get("total_sales_attributed", MISSING))[1],
                    tuple(t.platform for t in own),
                )
            )
            tasks += own
    return Rows(users, programs, tasks)


# --- measures with their coverage (macros/engagement.sql, said again) ----------------------------


def share(known: int, rows: int) -> Decimal | None:
    return round_to(Decimal(known) / rows, "0.000001") if rows else None


def average(values: list[Any]) -> Decimal | None:
    return round_to(Decimal(sum(values)) / len(values), "0.01") if values else None


def task_measures(tasks: Iterable[Task]) -> dict[str, Any]:
    tasks = list(tasks)
    out: dict[str, Any] = {"task_count": len(tasks)}
    for measure in MEASURES:
        known = [t.values[measure] for t in tasks if t.values[measure] is not None]
        out |= {
            measure: sum(known) if known else None,
            f"{measure}_known": len(known),
            f"{measure}_known_share": share(len(known), len(tasks)),
            f"{measure}_average": average(known),
        }
    rated = [
        t for t in tasks if t.values["engagement"] is not None and t.values["reach"] is not None
    ]
    engagement = sum(t.values["engagement"] for t in rated) if rated else None  # type: ignore[misc]
    reach = sum(t.values["reach"] for t in rated) if rated else None  # type: ignore[misc]
    out |= {
        "engagement_rate": round_to(Decimal(engagement) / reach, "0.000001") if reach else None,
        "engagement_rate_tasks": len(rated),
        "engagement_rate_engagement": engagement,
        "engagement_rate_reach": reach,
    }
    return out


def sales_measures(programs: Iterable[Program]) -> dict[str, Any]:
    programs = list(programs)
    known = [p.sales for p in programs if p.sales is not None]
    return {
        "program_count": len(programs),
        "sales": sum(known) if known else None,
        "sales_known": len(known),
        "sales_known_share": share(len(known), len(programs)),
        "sales_average": average(known),
        "sales_negative": sum(1 for s in known if s < 0),
    }


def overview(rows: Rows, outlier_count: int = 0) -> dict[str, Any]:
    users, programs, tasks = rows.users, rows.programs, rows.tasks
    with_user_id = sum(u.has_user_id for u in users)
    with_join_date = sum(u.has_join_date for u in users)
    with_brand = sum(p.brand is not None for p in programs)
    with_platform = sum(t.platform is not None for t in tasks)
    return {
        "user_count": len(users),
        "user_id_known": with_user_id,
        "user_id_known_share": share(with_user_id, len(users)),
        "joined_at_known": with_join_date,
        "joined_at_known_share": share(with_join_date, len(users)),
        "first_joined_at": min((u.joined_at for u in users if u.joined_at), default=None),
        "last_joined_at": max((u.joined_at for u in users if u.joined_at), default=None),
        "users_without_programs": len({u.user_key for u in users} - {p.user_key for p in programs}),
        **sales_measures(programs),
        "brand_known": with_brand,
        "brand_known_share": share(with_brand, len(programs)),
        "programs_without_tasks": sum(not p.platforms for p in programs),
        "sales_scored": sum(p.sales is not None and p.sales >= 0 for p in programs),
        "sales_outliers": outlier_count,
        **task_measures(tasks),
        "platform_known": with_platform,
        "platform_known_share": share(with_platform, len(tasks)),
    }


# Student's t table rows (macros/intervals.sql): 1 to 30 degrees of freedom, then 40, 60,
# 120 and 1000, a df between two rows taking the row below
T_ROWS = (*range(1, 31), 40, 60, 120, 1000)


@cache
def t_975(df: int) -> Decimal:
    """The 0.975 quantile of Student's t at the table row at or below `df`, rounded up to 3
    decimals, computed here (Simpson's rule over the density, then bisection), not copied."""
    row = max(r for r in T_ROWS if r <= max(df, 1))
    log_scale = math.lgamma((row + 1) / 2) - math.lgamma(row / 2) - math.log(row * math.pi) / 2

    def central(t: float, steps: int = 20_000) -> float:  # P(0 < T < t)
        h = t / steps
        density = [
            math.exp(log_scale - (row + 1) / 2 * math.log1p((i * h) ** 2 / row))
            for i in range(steps + 1)
        ]
        odd, even = sum(density[1:-1:2]), sum(density[2:-1:2])
        return h / 3 * (density[0] + 4 * odd + 2 * even + density[-1])

    low, high = 1.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if central(middle) < 0.475 else (low, middle)
    return Decimal(math.ceil(round(high * 1000, 6))) / 1000


def intervals(tasks: list[Task]) -> dict[str, Any]:
    """engagement_by_platform's 95 % intervals, exact: the mean's (t x s / sqrt(n)) and the
    rate's (a ratio estimator's delta-method standard error, around the rate as the model
    rounds it); the low ends clipped at 0."""
    out: dict[str, Any] = dict.fromkeys(
        (
            "engagement_stddev",
            "engagement_average_low",
            "engagement_average_high",
            "engagement_rate_low",
            "engagement_rate_high",
        )
    )
    known = [Decimal(t.values["engagement"]) for t in tasks if t.values["engagement"] is not None]
    rated = [
        (Decimal(t.values["engagement"]), Decimal(t.values["reach"]))
        for t in tasks
        if t.values["engagement"] is not None and t.values["reach"] is not None
    ]
    with localcontext() as context:
        context.prec = 60
        if len(known) >= 2:
            n = len(known)
            mean = sum(known) / n
            sd = (sum((v - mean) ** 2 for v in known) / (n - 1)).sqrt()
            half = t_975(n - 1) * sd / Decimal(n).sqrt()
            out["engagement_stddev"] = round_to(sd, "0.01")
            out["engagement_average_low"] = round_to(max(mean - half, Decimal(0)), "0.01")
            out["engagement_average_high"] = round_to(mean + half, "0.01")
        reach = sum(r for _, r in rated)
        if len(rated) >= 2 and reach:
            n = len(rated)
            ratio = sum(e for e, _ in rated) / reach
            residuals = sum((e - ratio * r) ** 2 for e, r in rated)
            half = t_975(n - 1) * (residuals * n / (n - 1)).sqrt() / reach
            rate = round_to(ratio, "0.000001")
            out["engagement_rate_low"] = round_to(max(rate - half, Decimal(0)), "0.000001")
            out["engagement_rate_high"] = round_to(rate + half, "0.000001")
    return out


def by_platform(rows: Rows) -> dict[str | None, dict[str, Any]]:
    groups: dict[str | None, list[Task]] = defaultdict(list)
    for task in rows.tasks:
        groups[task.platform].append(task)
    return {
        platform: {
            "is_unknown_platform": platform is None,
            "is_accepted_platform": platform in PLATFORMS,
            "user_count": len({t.user_key for t in group}),
            **task_measures(group),
            **intervals(group),
        }
        for platform, group in groups.items()
    }


def by_join_month(rows: Rows) -> dict[tuple[date | None, str | None], dict[str, Any]]:
    """engagement_by_join_month, exact: per (the user's UTC join month, platform), as
    by_platform, with the month's flag."""
    months = {
        user.user_key: (
            None if user.joined_at is None else user.joined_at.astimezone(UTC).date().replace(day=1)
        )
        for user in rows.users
    }
    groups: dict[tuple[date | None, str | None], list[Task]] = defaultdict(list)
    for task in rows.tasks:
        groups[(months[task.user_key], task.platform)].append(task)
    return {
        (month, platform): {
            "is_unknown_join_month": month is None,
            "is_unknown_platform": platform is None,
            "user_count": len({t.user_key for t in group}),
            **task_measures(group),
            **intervals(group),
        }
        for (month, platform), group in groups.items()
    }


# --- rankings -------------------------------------------------------------------------------


def user_values(rows: Rows, ranking: str) -> dict[Any, Any]:
    """Each user's value for a ranking: the sum of its known
    values; users with none are left out.
    """
    values: dict[Any, list[Any]] = defaultdict(list)
    if ranking == "sales":
        for program in rows.programs:
            if program.sales is not None:
                values[program.user_key].append(program.sales)
    else:
        for task in rows.tasks:
            if task.values[ranking] is not None:
                values[task.user_key].append(task.values[ranking])
    return {user: sum(known) for user, known in values.items()}


def ranking(rows: Rows, measure: str, limit: int = 25) -> list[tuple[int, Any, str, Decimal]]:
    """(rank, user_key, label, value) of every user ranked within the
    limit: SQL rank(), ties share.
    """
    labels = {u.user_key: u.label for u in rows.users}
    ordered = sorted(user_values(rows, measure).items(), key=lambda item: -item[1])
    ranked, previous, rank = [], None, 0
    for position, (user, value) in enumerate(ordered, 1):
        if value != previous:
            rank, previous = position, value
        if rank > limit:
            break
        ranked.append((rank, user, labels[user], Decimal(value)))
    return ranked


# --- robust outliers (sales_outliers.yml's method, said again) ----------------------------------


def median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def outliers(rows: Rows) -> dict[tuple[str, str], dict[str, Any]]:
    """Per peer group (level, name) some program is compared within: its size (every program of
    its kind), median, MAD, bounds, and how many programs it judges and finds outliers."""

    def single_platform(program: Program) -> str | None:
        known = set(program.platforms)
        return next(iter(known)) if len(known) == 1 and None not in known else None

    pool = [p for p in rows.programs if p.sales is not None and p.sales >= 0]
    members: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    kinds: dict[Any, list[tuple[str, str]]] = {}  # program -> its groups, narrowest first
    for program in pool:
        platform = single_platform(program)
        groups = []
        if platform is not None and program.brand is not None:
            groups.append(("brand and platform", f"{program.brand} on {platform}"))
        if platform is not None:
            groups.append(("platform", platform))
        groups.append(("all programs", "all programs"))
        kinds[program.program_key] = groups
        for group in groups:
            members[group].append(program.sales)  # type: ignore[arg-type]
    judged: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    for program in pool:
        group = next(
            (g for g in kinds[program.program_key] if len(members[g]) >= MIN_GROUP_SIZE), None
        )
        if group is not None:
            judged[group].append(program.sales)  # type: ignore[arg-type]
    out = {}
    with localcontext() as context:
        context.prec = 40
        for group, values in judged.items():
            everyone = members[group]
            centre = median(everyone)
            deviations = [abs(v - centre) for v in everyone]
            mad = median(deviations)
            mean_deviation = sum(deviations) / len(deviations)
            scale = (
                mad / Decimal("0.6745")
                if mad
                else mean_deviation * Decimal("1.253314")
                if mean_deviation
                else None
            )
            lower = max(centre - THRESHOLD * scale, Decimal(0)) if scale else None
            upper = centre + THRESHOLD * scale if scale else None
            out[group] = {
                "size": len(everyone),
                "judged": len(values),
                "median": centre,
                "mad": mad,
                "lower_bound": round_to(lower, "0.01") if lower is not None else None,
                "upper_bound": round_to(upper, "0.01") if upper is not None else None,
                "outliers": sum(abs(v - centre) > THRESHOLD * scale for v in values)
                if scale
                else 0,
            }
    return out
