"""duel.settings: one frozen object; flags > environment > .env > defaults."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from duel.exceptions import ConfigError
from duel.settings import Settings, load_settings


def test_load_settings_defaults_are_the_embedded_server() -> None:
    settings = load_settings({}, dotenv=None)
    assert (settings.pg_host, settings.pg_port, settings.pg_user, settings.pg_password, settings.pg_database) == (
        "127.0.0.1", 5432, "postgres", "pass", "duel")
    assert (settings.home, settings.out_dir, settings.repair_policy, settings.embedded) == (
        Path(".duel"), Path("out"), "safe", True)


def test_load_settings_precedence(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("PGPORT=6000\nPGUSER=from_dotenv\nPGDATABASE=from_dotenv\n")
    settings = load_settings({"PGPORT": "7000", "PGUSER": "from_env"}, dotenv=dotenv, pg_user="from_flag")
    assert (settings.pg_port, settings.pg_user, settings.pg_database) == (7000, "from_flag", "from_dotenv")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PGPORT": "x"}, "PGPORT must be a whole number, got 'x'"),
        ({"DUEL_EMBEDDED": "maybe"}, "DUEL_EMBEDDED must be true or false, got 'maybe'"),
        ({"DUEL_REPAIR": "yolo"}, "DUEL_REPAIR must be one of safe, lenient, got 'yolo'"),
        ({"DUEL_MAX_FILE_BYTES": "1e6"}, "DUEL_MAX_FILE_BYTES must be a whole number, got '1e6'"),
    ],
)
def test_load_settings_rejects_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env, dotenv=None)
    assert str(caught.value) == message


def test_settings_url_redacts_and_quotes() -> None:
    settings = load_settings({"PGPASSWORD": "p@ss/word", "PGUSER": "ann"}, dotenv=None)
    assert settings.url() == "postgresql://ann:***@127.0.0.1:5432/duel"
    assert settings.url(redact=False) == "postgresql://ann:p%40ss%2Fword@127.0.0.1:5432/duel"
    assert "p@ss/word" not in repr(settings)


def test_settings_are_frozen_and_overrides_checked() -> None:
    settings = Settings()
    with pytest.raises(FrozenInstanceError):
        settings.pg_port = 1  # type: ignore[misc]
    with pytest.raises(ConfigError, match="^unknown setting\\(s\\): nope$"):
        settings.with_overrides(nope=1)
    assert settings.with_overrides(pg_port=None, pg_user="x").pg_user == "x"


def test_notify_to_is_a_list_of_addresses() -> None:
    settings = load_settings({"DUEL_NOTIFY_TO": "a@x.org, b@y.org,,"}, dotenv=None)
    assert settings.notify_to == ("a@x.org", "b@y.org")
