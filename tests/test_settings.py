"""duel.settings: one frozen object; flags > environment > .env > defaults."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from duel import state
from duel.exceptions import ConfigError
from duel.settings import DEFAULT_PG, Settings, load_settings
from duel.state import ServerRecord


def test_load_settings_defaults_are_the_embedded_server(tmp_path: Path) -> None:
    settings = load_settings({"DUEL_HOME": str(tmp_path)}, dotenv=None)  # no records there
    assert (
        settings.pg_host,
        settings.pg_port,
        settings.pg_user,
        settings.pg_password,
        settings.pg_database,
    ) == ("127.0.0.1", 5432, "postgres", "pass", "duel")
    assert (settings.home, settings.out_dir, settings.repair_policy, settings.embedded) == (
        tmp_path,
        Path("out"),
        "safe",
        True,
    )
    assert [settings.origin(name) for name in DEFAULT_PG] == ["default"] * 5


def _record(home: Path) -> None:
    state.write_server(
        home, ServerRecord("127.0.0.1", 5433, str(home / "pgdata"), "2025-07-24T10:00:00+00:00", 42)
    )
    state.write_database(home, "duel_demo", demo=True, source=Path("/data.tar.gz"))


def test_load_settings_uses_the_recorded_server_and_database(tmp_path: Path) -> None:
    _record(tmp_path)
    settings = load_settings({"DUEL_HOME": str(tmp_path)}, dotenv=None)
    assert (settings.pg_host, settings.pg_port, settings.pg_database) == (
        "127.0.0.1",
        5433,
        "duel_demo",
    )
    assert [settings.origin(name) for name in DEFAULT_PG] == [
        "recorded",
        "recorded",
        "default",
        "default",
        "recorded",
    ]


@pytest.mark.parametrize(
    ("env", "dotenv_text", "flags", "expected"),
    [
        ({"PGPORT": "7000"}, "", {}, ("127.0.0.1", 7000, "duel_demo", "environment")),
        ({"PGHOST": "db.example.org"}, "", {}, ("db.example.org", 5432, "duel_demo", "default")),
        ({}, "PGPORT=6000\nPGDATABASE=mine\n", {}, ("127.0.0.1", 6000, "mine", ".env")),
        (
            {"PGPORT": "7000"},
            "PGPORT=6000\n",
            {"pg_port": 8000},
            ("127.0.0.1", 8000, "duel_demo", "flag"),
        ),
    ],
)
def test_load_settings_precedence_over_the_records(
    tmp_path: Path,
    env: dict[str, str],
    dotenv_text: str,
    flags: dict[str, object],
    expected: tuple[str, int, str, str],
) -> None:
    """A flag > the environment > .env > duel's records > the defaults; the recorded address is used
    only when neither PGHOST nor PGPORT is set."""
    _record(tmp_path / "home")
    (tmp_path / ".env").write_text(dotenv_text)
    settings = load_settings(
        {"DUEL_HOME": str(tmp_path / "home"), **env}, dotenv=tmp_path / ".env", **flags
    )
    assert (
        settings.pg_host,
        settings.pg_port,
        settings.pg_database,
        settings.origin("PGPORT"),
    ) == expected


def test_load_settings_unreadable_record_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "server.json").write_text("{not json")
    with pytest.raises(ConfigError) as caught:
        load_settings({"DUEL_HOME": str(tmp_path)}, dotenv=None)
    assert caught.value.message == (
        f"{tmp_path}/server.json: not a record duel wrote (Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)); delete it, duel writes "
        "it again"
    )


def test_load_settings_precedence(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("PGPORT=6000\nPGUSER=from_dotenv\nPGDATABASE=from_dotenv\n")
    settings = load_settings(
        {"PGPORT": "7000", "PGUSER": "from_env"}, dotenv=dotenv, pg_user="from_flag"
    )
    assert (settings.pg_port, settings.pg_user, settings.pg_database) == (
        7000,
        "from_flag",
        "from_dotenv",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PGPORT": "x"}, "PGPORT must be a whole number, got 'x'"),
        ({"DUEL_EMBEDDED": "maybe"}, "DUEL_EMBEDDED must be true or false, got 'maybe'"),
        ({"DUEL_REPAIR": "yolo"}, "DUEL_REPAIR must be one of safe, lenient, got 'yolo'"),
        ({"DUEL_MAX_FILE_BYTES": "1e6"}, "DUEL_MAX_FILE_BYTES must be a whole number, got '1e6'"),
        # a negative count crashed the parse pipeline; a limit of -1 quarantined every file
        ({"DUEL_WORKERS": "-1"}, "DUEL_WORKERS must be at least 0, got -1"),
        ({"DUEL_MAX_FILE_BYTES": "-1"}, "DUEL_MAX_FILE_BYTES must be at least 1, got -1"),
        ({"DUEL_BATCH_ROWS": "0"}, "DUEL_BATCH_ROWS must be at least 1, got 0"),
        ({"DUEL_LOCK_TIMEOUT": "-5"}, "DUEL_LOCK_TIMEOUT must be at least 0, got -5"),
        # 100000 workers forked 100000 processes; a lock wait past Postgres' lock_timeout
        # failed at the database; a port past 65535 at the mail server
        ({"DUEL_WORKERS": "100000"}, "DUEL_WORKERS must be at most 256, got 100,000"),
        (
            {"DUEL_LOCK_TIMEOUT": "99999999999999"},
            "DUEL_LOCK_TIMEOUT must be at most 2,147,483, got 99,999,999,999,999",
        ),
        ({"DUEL_SMTP_PORT": "99999999"}, "DUEL_SMTP_PORT must be at most 65,535, got 99,999,999"),
    ],
)
def test_load_settings_rejects_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env, dotenv=None)
    assert str(caught.value) == message


def test_settings_url_redacts_and_quotes(tmp_path: Path) -> None:
    # DUEL_HOME with no server record: the defaults, not a running embedded server's port
    environ = {"PGPASSWORD": "p@ss/word", "PGUSER": "ann", "DUEL_HOME": str(tmp_path)}
    settings = load_settings(environ, dotenv=None)
    assert settings.url() == "postgresql://ann:***@127.0.0.1:5432/duel"
    assert settings.url(redact=False) == "postgresql://ann:p%40ss%2Fword@127.0.0.1:5432/duel"
    assert "p@ss/word" not in repr(settings)


def test_settings_database_slug_is_one_safe_file_name() -> None:
    assert Settings().database_slug == "127.0.0.1_5432_duel"
    odd = Settings(pg_host="::1", pg_port=6543, pg_database="sales 2026/../ü")
    assert odd.database_slug == "__1_6543_sales_2026_..__"
    assert "/" not in odd.database_slug


def test_settings_are_frozen_and_overrides_checked() -> None:
    settings = Settings()
    with pytest.raises(FrozenInstanceError):
        settings.pg_port = 1  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"^unknown setting\(s\): nope$"):
        settings.with_overrides(nope=1)
    assert settings.with_overrides(pg_port=None, pg_user="x").pg_user == "x"


def test_notify_to_is_a_list_of_addresses() -> None:
    settings = load_settings({"DUEL_NOTIFY_TO": "a@x.org, b@y.org,,"}, dotenv=None)
    assert settings.notify_to == ("a@x.org", "b@y.org")
