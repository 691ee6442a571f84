"""Read helpers for notebooks and the report: query models by name, never by connection string."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.rows import dict_row

from duel import db
from duel.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

READABLE_SCHEMAS = ("raw", "dbt", "dbt_lookup", "dbt_analysis", "dbt_staging", "dbt_snapshots")


def _relation(name: str, schema: str) -> sql.Composed:
    if "." in name:
        schema, name = name.split(".", 1)
    if schema not in READABLE_SCHEMAS:
        raise ValueError(f"schema {schema!r} is not one of {', '.join(READABLE_SCHEMAS)}")
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def fetch_rows(
    settings: Settings, name: str, schema: str = "dbt_analysis", order_by: str | None = None
) -> list[dict[str, Any]]:
    """All rows of a model as dicts, e.g. fetch_rows(s, "overview") or fetch_rows(s, "dbt.base")."""
    query = sql.SQL("select * from {}").format(_relation(name, schema))
    if order_by:
        query = query + sql.SQL(" order by {}").format(sql.Identifier(order_by))
    with (
        db.connect(settings, step=f"read {name}") as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        return cur.execute(query).fetchall()


def run_query(
    settings: Settings, query: str, params: tuple[Any, ...] | dict[str, Any] = ()
) -> list[dict[str, Any]]:
    """A read-only query with parameters (for the user's own joins in notebooks)."""
    with db.connect(settings, step="query") as conn:
        conn.read_only = True
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()  # type: ignore[arg-type]


def read_frame(
    settings: Settings, name: str, schema: str = "dbt_analysis", order_by: str | None = None
) -> pd.DataFrame:
    """A model as a pandas DataFrame (pandas imported only when asked for)."""
    import pandas as pd

    return pd.DataFrame(fetch_rows(settings, name, schema, order_by))


def query_frame(
    settings: Settings, query: str, params: tuple[Any, ...] | dict[str, Any] = ()
) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(run_query(settings, query, params))
