"""The one read path to the warehouse, for the report, the exports and the notebooks.

Models are read by name, never by connection string, through a read-only snapshot connection
(`snapshot`: REPEATABLE READ, so every read in it sees one state of the warehouse), with the
query built by `select_model`:

    with snapshot(settings, "report") as conn:
        overview = frame(conn, select_model("overview"))
    fetch_rows(settings, "dbt.base")             # the whole model as dicts, in its own snapshot
    read_frame(settings, "overview")             # ... as a pandas DataFrame
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from duel import db
from duel.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

READABLE_SCHEMAS = ("raw", "dbt", "dbt_lookup", "dbt_analysis", "dbt_staging", "dbt_snapshots")
Params = tuple[Any, ...] | dict[str, Any]


def relation(name: str, schema: str = "dbt_analysis") -> sql.Composed:
    """`schema.name` quoted (`name` may be `schema.name` itself); only the warehouse's schemas."""
    if "." in name:
        schema, name = name.split(".", 1)
    if schema not in READABLE_SCHEMAS:
        raise ValueError(f"schema {schema!r} is not one of {', '.join(READABLE_SCHEMAS)}")
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def _items(values: Sequence[str | int | sql.Composable]) -> sql.Composable:
    """Column names quoted, positions as numbers, ready-made SQL as it is."""
    return sql.SQL(", ").join(
        sql.Identifier(v) if isinstance(v, str) else sql.Literal(v) if isinstance(v, int) else v
        for v in values
    )


def select_model(
    name: str,
    schema: str = "dbt_analysis",
    *,
    columns: Sequence[str | sql.Composable] = (),
    where: sql.Composable | None = None,
    order_by: Sequence[str | int] = (),
    limit: int | None = None,
) -> sql.Composed:
    """The query that reads a model: `select <columns> from <schema>.<name> [where ...]
    [order by ...] [limit n]`. Columns are names (quoted) or SQL expressions (the exports'
    pseudonyms); `order_by` takes names or column positions; default: every column, no order."""
    query = sql.SQL("select {} from {}").format(
        _items(columns) if columns else sql.SQL("*"), relation(name, schema)
    )
    if where is not None:
        query += sql.SQL(" where {}").format(where)
    if order_by:
        query += sql.SQL(" order by {}").format(_items(order_by))
    if limit is not None:
        query += sql.SQL(" limit {}").format(sql.Literal(limit))
    return query


@contextmanager
def snapshot(
    settings: Settings, step: str, shared: str | None = None
) -> Iterator[psycopg.Connection[Any]]:
    """A read-only connection in one REPEATABLE READ transaction: all reads in it see the
    warehouse as it was at the first one (through `db.connect`, so errors map as everywhere).
    `shared`: a snapshot another such transaction exported (`export_snapshot`), so that this
    connection sees exactly what that one sees."""
    with db.connect(settings, step=step) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            if shared is not None:
                conn.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(shared)))
            yield conn


def export_snapshot(conn: psycopg.Connection[Any]) -> str:
    """The id of `conn`'s snapshot, for `snapshot(shared=...)`: valid while its transaction
    lasts."""
    ((snapshot_id,),) = conn.execute("select pg_export_snapshot()").fetchall()
    return str(snapshot_id)


def rows(
    conn: psycopg.Connection[Any], query: sql.Composed | str, params: Params = ()
) -> list[dict[str, Any]]:
    """The rows of a query, as dicts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def frame(
    conn: psycopg.Connection[Any], query: sql.Composed | str, params: Params = ()
) -> pd.DataFrame:
    """The rows of a query as a DataFrame, with its columns even when it has no rows."""
    import pandas as pd

    with conn.cursor() as cur:
        cur.execute(query, params)
        names = [d.name for d in cur.description or ()]
        return pd.DataFrame(cur.fetchall(), columns=names)


def fetch_rows(
    settings: Settings, name: str, schema: str = "dbt_analysis", order_by: str | None = None
) -> list[dict[str, Any]]:
    """All rows of a model as dicts, e.g. fetch_rows(s, "overview") or fetch_rows(s, "dbt.base")."""
    with snapshot(settings, f"read {name}") as conn:
        return rows(conn, select_model(name, schema, order_by=[order_by] if order_by else ()))


def run_query(settings: Settings, query: str, params: Params = ()) -> list[dict[str, Any]]:
    """A read-only query with parameters (for the user's own joins in notebooks)."""
    with snapshot(settings, "query") as conn:
        return rows(conn, query, params)


def read_frame(
    settings: Settings, name: str, schema: str = "dbt_analysis", order_by: str | None = None
) -> pd.DataFrame:
    """A model as a pandas DataFrame (pandas imported only when asked for)."""
    import pandas as pd

    return pd.DataFrame(fetch_rows(settings, name, schema, order_by))


def query_frame(settings: Settings, query: str, params: Params = ()) -> pd.DataFrame:
    """A read-only query's rows as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(run_query(settings, query, params))
