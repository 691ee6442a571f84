"""duel.server: the embedded Postgres starts, answers on loopback only, stops, and is remembered
(DUEL_HOME/server.json); `duel db status` tells duel's own server, another Postgres and nothing
apart."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import psycopg
import pytest
from conftest import cli_env, free_port, query, run_cli

from duel import db, server
from duel.settings import Settings, load_settings

ROOT_LINE = (
    (
        "running as root: the embedded server runs as the system user duelpg, which duel creates "
        "for it "
        "if missing\n"
    )
    if os.geteuid() == 0
    else ""
)
SINCE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def _own_server(pg_home: Path, name: str) -> Settings:
    return load_settings(
        {"PGPORT": str(free_port()), "PGDATABASE": "duel", "DUEL_HOME": str(pg_home / name)},
        dotenv=None,
    )


def _without_address(settings: Settings, **extra: str) -> dict[str, str]:
    """The CLI's environment with no PGHOST/PGPORT: the recorded server decides."""
    return {
        **{k: v for k, v in cli_env(settings).items() if k not in ("PGHOST", "PGPORT")},
        **extra,
    }


def test_server_lifecycle_through_cli(pg_home: Path) -> None:
    settings = _own_server(pg_home, "lifecycle")
    port, pgdata = settings.pg_port, (pg_home / "lifecycle" / "pgdata").resolve()
    status = run_cli(settings, "db", "status")
    assert (status.returncode, status.stdout) == (
        1,
        f"nothing answers at 127.0.0.1:{port}; `duel db start` starts duel's embedded server "
        "there\n",
    )
    started = run_cli(settings, "db", "start")
    own_line = (
        rf"duel's embedded server at 127\.0\.0\.1:{port}, running since {SINCE} \(pid \d+\), "
        rf"data in {pgdata}\n"
    )
    assert (started.returncode, started.stderr) == (0, ROOT_LINE)
    assert re.fullmatch(own_line, started.stdout)
    try:
        again = run_cli(settings, "db", "start")
        assert (again.returncode, again.stdout, again.stderr) == (0, started.stdout, "")
        assert run_cli(settings, "db", "status").stdout == started.stdout
        with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
            # batches, batch_files, content_aliases, current_versions, model_builds,
            # object_listing, quarantine, replaced_versions, user_documents
            assert conn.execute(
                "select count(*) from information_schema.tables where table_schema = 'raw'"
            ).fetchone() == (9,)
            assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
            assert conn.execute("show unix_socket_directories").fetchone() == ("",)
    finally:
        stopped = run_cli(settings, "db", "stop")
    assert (stopped.returncode, stopped.stdout) == (
        0,
        f"duel's embedded server at 127.0.0.1:{port} stopped\n",
    )
    assert run_cli(settings, "db", "stop").stdout == "duel's embedded server was not running\n"


def test_server_is_recorded_and_found_without_pgport(pg_home: Path) -> None:
    """`db start` records the server in DUEL_HOME/server.json; later commands with no PGHOST/PGPORT
    use that address, also after a stop (the next start reuses the port)."""
    settings = _own_server(pg_home, "recorded")
    port, pgdata = settings.pg_port, str((pg_home / "recorded" / "pgdata").resolve())
    env = _without_address(settings)
    assert run_cli(settings, "db", "start").returncode == 0
    try:
        record = json.loads((pg_home / "recorded" / "server.json").read_text())
        assert {k: v for k, v in record.items() if k not in ("started_at", "pid")} == {
            "host": "127.0.0.1",
            "port": port,
            "data_dir": pgdata,
        }
        url = run_cli(settings, "db", "url", **env)
        assert (url.returncode, url.stdout) == (
            0,
            f"postgresql://postgres:***@127.0.0.1:{port}/duel\n",
        )
        stopped = run_cli(settings, "db", "stop", **env)
        assert stopped.stdout == f"duel's embedded server at 127.0.0.1:{port} stopped\n"
        status = run_cli(settings, "db", "status", **env)
        assert (status.returncode, status.stdout) == (
            1,
            f"nothing answers at 127.0.0.1:{port}: duel's embedded server (data in {pgdata}) is "
            "stopped; "
            "`duel db start` starts it\n",
        )
        restarted = run_cli(settings, "db", "start", **env)
        assert restarted.returncode == 0
        assert re.fullmatch(
            rf"duel's embedded server at 127\.0\.0\.1:{port}, .*\n", restarted.stdout
        )
        run_cli(settings, "db", "stop", **env)
        # a command that starts the server says so, and where (its port is remembered)
        (pg_home / "recorded" / "user_1.json").write_text('{"user_id": "a"}')
        ingested = run_cli(settings, "ingest", str(pg_home / "recorded" / "user_1.json"), **env)
        assert ingested.returncode == 0
        assert (
            f"server: duel's embedded server at 127.0.0.1:{port} (started now; data in {pgdata})"
            in ingested.stderr.splitlines()
        )
    finally:
        run_cli(settings, "db", "stop")


def test_status_says_when_duel_runs_elsewhere(pg_server: Settings) -> None:
    """PGPORT pointing away from duel's running server: status and start say where it runs."""
    elsewhere = free_port()
    status = run_cli(pg_server, "db", "status", PGPORT=str(elsewhere))
    hint = (
        f"duel's embedded server runs at 127.0.0.1:{pg_server.pg_port} (PGHOST and PGPORT are set "
        "in the "
        "environment: unset them to use duel's)"
    )
    assert (status.returncode, status.stdout) == (
        1,
        f"nothing answers at 127.0.0.1:{elsewhere}; {hint}\n",
    )
    start = run_cli(pg_server, "db", "start", PGPORT=str(elsewhere))
    assert (start.returncode, start.stderr) == (
        1,
        (
            f"error: duel's embedded server already runs at 127.0.0.1:{pg_server.pg_port} (data in "
            f"{pg_server.pgdata.resolve()}), not at 127.0.0.1:{elsewhere}; unset PGHOST/PGPORT to "
            "use it, or "
            "`duel db stop` it first to start it at the new address\n"
        ),
    )
    assert server.probe_port("127.0.0.1", elsewhere) is False


def test_status_another_postgres(pg_server: Settings, tmp_path: Path) -> None:
    """The session's server seen from another DUEL_HOME is a Postgres duel (from there) did not
    start.
    """
    with psycopg.connect(**pg_server.conninfo()) as conn:  # type: ignore[arg-type]
        version = " ".join(conn.execute("select version()").fetchone()[0].split()[:2])  # type: ignore[index]
    status = run_cli(pg_server, "db", "status", DUEL_HOME=str(tmp_path))
    assert (status.returncode, status.stdout) == (
        0,
        f"another Postgres answers at 127.0.0.1:{pg_server.pg_port} ({version}); duel did not "
        "start it\n",
    )
    refused = run_cli(pg_server, "db", "status", DUEL_HOME=str(tmp_path), PGPASSWORD="wrong")
    assert refused.stdout == (
        f"another Postgres answers at 127.0.0.1:{pg_server.pg_port} (it refused user postgres: "
        "password "
        'authentication failed for user "postgres"); duel did not start it\n'
    )


def test_status_port_held_by_another_program(
    pg_server: Settings, squatter: int, tmp_path: Path
) -> None:
    status = run_cli(pg_server, "db", "status", PGPORT=str(squatter), DUEL_HOME=str(tmp_path))
    assert (status.returncode, status.stdout) == (
        1,
        f"a program that is not Postgres holds 127.0.0.1:{squatter}\n",
    )


def test_db_password_sets_the_embedded_servers_password(pg_home: Path) -> None:
    settings = _own_server(pg_home, "password")
    assert run_cli(settings, "db", "start").returncode == 0
    try:
        changed = run_cli(settings, "db", "password", PGPASSWORD="n3w 'secret'")
        assert (changed.returncode, changed.stdout) == (
            0,
            "duel's embedded server: user postgres now has the password in PGPASSWORD (from the "
            "environment)\n",
        )
        assert "secret" not in changed.stderr
        with psycopg.connect(
            **settings.with_overrides(pg_password="n3w 'secret'").conninfo()
        ) as conn:  # type: ignore[arg-type]
            assert conn.execute("select current_user").fetchone() == ("postgres",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(**settings.conninfo()).close()  # type: ignore[arg-type]
        missing = run_cli(settings, "db", "password", PGUSER="nobody")
        assert (missing.returncode, missing.stderr) == (
            1,
            "error: cannot set the password of nobody on duel's embedded server: "
            'role "nobody" does not exist\n',
        )
    finally:
        run_cli(settings, "db", "stop")


def test_server_is_not_reachable_off_loopback(pg_server: Settings) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outward address
    outward = probe.getsockname()[0]
    probe.close()
    assert outward != "127.0.0.1"
    assert server.probe_port(outward, pg_server.pg_port) is False


def test_ensure_ready_uses_a_running_server_and_creates_the_database(pg_server: Settings) -> None:
    fresh = pg_server.with_overrides(pg_database="created_by_ensure_ready", embedded=False)
    connected = db.ensure_ready(fresh)
    assert db.ensure_ready(fresh) == connected  # idempotent
    assert (
        connected.host,
        connected.port,
        connected.database,
        connected.started,
        connected.own,
    ) == (
        "127.0.0.1",
        pg_server.pg_port,
        "created_by_ensure_ready",
        False,
        server.running(pg_server),
    )
    with psycopg.connect(**fresh.conninfo()) as conn:  # type: ignore[arg-type]
        tables = conn.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' order by 1"
        ).fetchall()
    assert tables == [
        ("batch_files",),
        ("batches",),
        ("content_aliases",),
        ("current_versions",),
        ("model_builds",),
        ("object_listing",),
        ("quarantine",),
        ("replaced_versions",),
        ("user_documents",),
    ]


def _earlier_database(pg_server: Settings, name: str, *statements: str) -> Settings:
    """A database whose raw schema is made as an earlier duel made it: today's, then changed back
    by `statements` (and given the rows they insert)."""
    earlier = pg_server.with_overrides(pg_database=name, embedded=False)
    db.ensure_ready(earlier)
    with psycopg.connect(**earlier.conninfo(), autocommit=True) as conn:  # type: ignore[arg-type]
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]  # the test's own literal DDL
    return earlier


def test_ensure_ready_adds_an_index_missing_from_an_earlier_database(pg_server: Settings) -> None:
    """A raw schema an earlier duel made (here: without the ledger's index of quarantined
    deliveries, the quarantine keyed by its names) gets what is missing on the next connection,
    what that replaces dropped; its rows stay as they are."""
    earlier = _earlier_database(
        pg_server,
        "raw_before_an_index",
        "drop index raw.batch_files_quarantined",
        "drop index raw.quarantine_source_file",
        # the name was the primary key then; later an index on a plain cast of it, which read a
        # backslash in a name as an escape (both are replaced)
        "alter table raw.quarantine add primary key (source_name, content_sha256)",
        "create unique index quarantine_file on raw.quarantine"
        " (sha256(cast(source_name as bytea)), content_sha256)",
        "insert into raw.quarantine (source_name, content_sha256, batch_id, reason, byte_size)"
        " values ('mixed/user_0.json', 'ab', 1, 'truncated', 12)",
        "insert into raw.batch_files (batch_id, file_seq, source_name, status, reason)"
        " values (1, 0, 'mixed/user_0.json', 'quarantined', 'truncated'),"
        " (1, 1, 'mixed/user_1.json', 'loaded', null)",
    )
    db.ensure_ready(earlier)
    with psycopg.connect(**earlier.conninfo()) as conn:  # type: ignore[arg-type]
        definition = conn.execute(
            "select pg_get_indexdef('raw.batch_files_quarantined'::regclass)"
        ).fetchone()
        rows = conn.execute(
            "select file_seq, status from raw.batch_files order by file_seq"
        ).fetchall()
        quarantine = conn.execute(
            "select source_name, content_sha256 from raw.quarantine"
        ).fetchall()
        quarantine_indexes = conn.execute(
            "select indexrelid::regclass::text, indisprimary from pg_index"
            " where indrelid = 'raw.quarantine'::regclass"
        ).fetchall()
        conn.execute("set enable_seqscan = off")  # the plan of a large ledger, on two rows
        plan = conn.execute(
            "explain (costs off) select document_key from raw.batch_files"
            " where batch_id > 0 and status = 'quarantined'"
        ).fetchall()
    assert definition == (
        "CREATE INDEX batch_files_quarantined ON raw.batch_files USING btree "
        "(batch_id, document_key) WHERE (status = 'quarantined'::text)",
    )
    assert rows == [(0, "quarantined"), (1, "loaded")]
    assert quarantine == [("mixed/user_0.json", "ab")]
    assert quarantine_indexes == [("raw.quarantine_source_file", False)]  # both replaced
    assert "batch_files_quarantined" in plan[0][0]


@pytest.mark.parametrize(
    ("table", "dropped", "columns"),
    [
        (
            "content_aliases",
            ["drop table raw.content_aliases"],
            ["document_key", "alias_sha256", "content_sha256", "batch_id"],
        ),
        (
            "replaced_versions",
            [
                "drop trigger current_versions_replaced on raw.current_versions",
                "drop function raw.record_replaced_versions",
                "drop table raw.replaced_versions",
            ],
            [
                "document_key",
                "content_sha256",
                "source_name",
                "batch_id",
                "is_deleted",
                "valid_from",
                "valid_to",
                "replaced_by_batch_id",
            ],
        ),
    ],
)
def test_ensure_ready_adds_a_table_missing_from_an_earlier_database(
    pg_server: Settings, table: str, dropped: list[str], columns: list[str]
) -> None:
    """A raw table later than the others (raw.content_aliases; raw.replaced_versions with the
    trigger that writes it) is made in a database an earlier duel made, on the next connection;
    the other tables keep their rows."""
    earlier = _earlier_database(
        pg_server,
        f"raw_before_{table}",
        *dropped,
        "insert into raw.batches (source_uri, status, loaded, duel_version)"
        " values ('d.tar.gz', 'succeeded', 3, '0.1.0')",
    )
    db.ensure_ready(earlier)
    assert query(
        earlier,
        "select a.attname from pg_attribute as a where a.attrelid = %s::regclass"
        " and a.attnum > 0 order by a.attnum",
        (f"raw.{table}",),
    ) == [(column,) for column in columns]
    assert query(earlier, "select source_uri, loaded from raw.batches") == [("d.tar.gz", 3)]
    assert query(
        earlier,
        "select tgname from pg_trigger"
        " where tgrelid = 'raw.current_versions'::regclass and not tgisinternal",
    ) == [("current_versions_replaced",)]


@pytest.mark.parametrize("column", ["deletes_withheld", "files_read", "same_content"])
def test_ensure_ready_adds_a_column_missing_from_an_earlier_database(
    pg_server: Settings, column: str
) -> None:
    """raw.batches made before a count was recorded gets the column on the next connection;
    its batches keep their counts, the new column NULL (not recorded then)."""
    earlier = _earlier_database(
        pg_server,
        f"raw_before_{column}",
        f"alter table raw.batches drop column {column}",
        "insert into raw.batches (source_uri, status, loaded, deleted, duel_version)"
        " values ('d.tar.gz', 'succeeded', 3, 1, '0.1.0')",
    )
    db.ensure_ready(earlier)
    assert query(
        earlier,
        f"select source_uri, loaded, deleted, {column} from raw.batches",
    ) == [("d.tar.gz", 3, 1, None)]


def test_embedded_server_logs_only_what_a_crash_needs(pg_server: Settings) -> None:
    """duel's server runs with minimal WAL (a table a build creates and fills is synced at
    commit, not logged page by page) and no WAL compression (server.WAL_OPTIONS), given at
    start so that a data directory an earlier duel made gets them too."""
    assert query(
        pg_server,
        "select name, setting from pg_settings"
        " where name in ('wal_level', 'max_wal_senders', 'wal_compression') order by name",
    ) == [("max_wal_senders", "0"), ("wal_compression", "off"), ("wal_level", "minimal")]
