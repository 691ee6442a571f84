"""One frozen settings object, built from the environment (and a git-ignored `.env`).

Precedence: explicit overrides (CLI flags) > process environment > `.env` file > what duel
recorded in DUEL_HOME (`duel.state`: the address of its embedded server, the database of the last
run) > defaults. Connection settings are the standard libpq variables (PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGDATABASE) so psql, psycopg, dbt and Airflow all share one source; app settings are
DUEL_*. This is the only module that reads `os.environ`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

from duel import state
from duel.exceptions import ConfigError

# Defaults for the local embedded server only; every one is overridable.
DEFAULT_PG = {
    "PGHOST": "127.0.0.1",
    "PGPORT": "5432",
    "PGUSER": "postgres",
    "PGPASSWORD": "pass",
    "PGDATABASE": "duel",
}

DEMO_DATABASE = "duel_demo"  # where demo data (`duel generate`) goes unless PGDATABASE is set
PG_FIELDS = {
    "pg_host": "PGHOST",
    "pg_port": "PGPORT",
    "pg_user": "PGUSER",
    "pg_password": "PGPASSWORD",
    "pg_database": "PGDATABASE",
}
# Where a connection setting came from: a flag, the environment, .env, duel's records, the default.
EXPLICIT = ("flag", "environment", ".env")

# The standard AWS variables, as boto3 and every AWS tool read them (duel.objectstore): taken from
# the environment or .env and handed to boto3 explicitly; what is unset, boto3 looks up itself.
AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
REPAIR_POLICIES = ("safe", "lenient")


class ConnInfo(TypedDict):
    """Keyword arguments for `psycopg.connect` (libpq's names): what `Settings.conninfo` gives."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    connect_timeout: int
    application_name: str


def _project_root() -> Path:
    """The checkout this package lives in (src layout), else the working directory."""
    here = Path(__file__).resolve().parent.parent.parent
    return here if (here / "dbt" / "duel" / "dbt_project.yml").is_file() else Path.cwd()


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs to know, passed down explicitly."""

    pg_host: str = DEFAULT_PG["PGHOST"]
    pg_port: int = int(DEFAULT_PG["PGPORT"])
    pg_user: str = DEFAULT_PG["PGUSER"]
    pg_password: str = field(default=DEFAULT_PG["PGPASSWORD"], repr=False)
    pg_database: str = DEFAULT_PG["PGDATABASE"]
    home: Path = Path(".duel")  # runtime state: embedded server data, airflow home
    out_dir: Path = Path("out")  # report, exports
    dbt_project_dir: Path = field(default_factory=lambda: _project_root() / "dbt" / "duel")
    embedded: bool = True  # start the bundled server when nothing answers on a loopback host
    max_file_bytes: int = 32 * 1024 * 1024
    # safe: encoding, lossless and closing repairs load; lenient: rewritten ones too
    repair_policy: str = "safe"
    # parse processes; 0 or 1 = parse in the loading process (the fastest on 2 cores)
    workers: int = 0
    batch_rows: int = 5000  # rows per COPY round trip / merge chunk
    lock_timeout_s: float = 60.0
    connect_timeout_s: int = 5
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = True
    notify_from: str | None = None
    notify_to: tuple[str, ...] = ()
    aws: dict[str, str] = field(default_factory=dict, repr=False)  # AWS_VARIABLES that are set
    notify_webhook: str | None = field(default=None, repr=False)
    pseudonym_key: str | None = field(default=None, repr=False)
    schedule: str = "@daily"
    # DUEL_DOCUMENT_KEY: how a document is identified (duel.identity)
    document_key: str = "@file,user_id"
    # the Airflow DAG's input (DUEL_DATA): a path, or an s3:// location kept as written
    data: Path | str = Path("data.tar.gz")
    # PGHOST ... PGDATABASE -> "flag" | "environment" | ".env" | "recorded" | "default"
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def origin(self, variable: str) -> str:
        """Where the value of PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE came from."""
        return self.origins.get(variable, "default")

    def chose(self, variable: str) -> bool:
        """Whether the user set this connection variable (a flag, the environment or .env)."""
        return self.origin(variable) in EXPLICIT

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def database_slug(self) -> str:
        """The server and database as one file name, `host_port_database` (any other character
        as `_`): what duel keeps per database under DUEL_HOME is named by it (duel.changes'
        build records, duel.transform's dbt target directories)."""
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.pg_host}_{self.pg_port}_{self.pg_database}")

    @property
    def is_loopback(self) -> bool:
        return self.pg_host in LOOPBACK_HOSTS

    def url(self, *, redact: bool = True) -> str:
        """A libpq URL; the password is shown as *** unless redact=False."""
        password = "***" if redact else quote(self.pg_password, safe="")
        host = f"[{self.pg_host}]" if ":" in self.pg_host else self.pg_host
        return (
            f"postgresql://{quote(self.pg_user, safe='')}:{password}@{host}:{self.pg_port}"
            f"/{quote(self.pg_database, safe='')}"
        )

    def conninfo(self, database: str | None = None) -> ConnInfo:
        """Keyword arguments for psycopg.connect (only `duel.db.connect` opens connections)."""
        return {
            "host": self.pg_host,
            "port": self.pg_port,
            "user": self.pg_user,
            "password": self.pg_password,
            "dbname": database or self.pg_database,
            "connect_timeout": self.connect_timeout_s,
            "application_name": "duel",
        }

    def libpq_env(self) -> dict[str, str]:
        """PG* variables for child processes (dbt, psql) so they reach the same database."""
        return {
            "PGHOST": self.pg_host,
            "PGPORT": str(self.pg_port),
            "PGUSER": self.pg_user,
            "PGPASSWORD": self.pg_password,
            "PGDATABASE": self.pg_database,
        }

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given (non-None) fields replaced, e.g. from CLI flags."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        origins = {**self.origins, **{PG_FIELDS[k]: "flag" for k in given if k in PG_FIELDS}}
        return replace(self, **given, origins=origins)


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _as_int(name: str, value: str, least: int | None = None, most: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if least is not None and number < least:
        raise ConfigError(f"{name} must be at least {least}, got {number}")
    if most is not None and number > most:
        raise ConfigError(f"{name} must be at most {most:,}, got {number:,}")
    return number


# The most a setting can mean: parse processes (each a Python process; far past any machine's
# cores), a TCP port, and the lock wait Postgres' lock_timeout holds (2^31 - 1 milliseconds).
MAX_WORKERS = 256
MAX_PORT = 65535
MAX_LOCK_TIMEOUT_S = (2**31 - 1) // 1000


def _as_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _connection(env: Mapping[str, str], process: Mapping[str, str], home: Path) -> dict[str, Any]:
    """The PG* settings and where each came from: the environment, .env, duel's records in
    DUEL_HOME (the embedded server's address when neither PGHOST nor PGPORT is set; the last
    run's database), or the default."""

    def given(name: str) -> str | None:
        value = env.get(name)
        return value if value or (name == "PGPASSWORD" and value is not None) else None

    def origin(name: str) -> str:
        return "environment" if process.get(name) == env.get(name) else ".env"

    chosen = {name: value for name in DEFAULT_PG if (value := given(name)) is not None}
    origins = {name: origin(name) for name in chosen}
    recorded: dict[str, str] = {}
    if "PGHOST" not in chosen and "PGPORT" not in chosen and (server := state.read_server(home)):
        recorded.update(PGHOST=server.host, PGPORT=str(server.port))
    if "PGDATABASE" not in chosen and (database := state.read_database(home)):
        recorded["PGDATABASE"] = database.database
    origins.update(dict.fromkeys(recorded, "recorded"))
    merged = {**DEFAULT_PG, **recorded, **chosen}
    return {
        "pg_host": merged["PGHOST"],
        "pg_port": _as_int("PGPORT", merged["PGPORT"]),
        "pg_user": merged["PGUSER"],
        "pg_password": merged["PGPASSWORD"],
        "pg_database": merged["PGDATABASE"],
        "origins": origins,
    }


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv: Path | None = Path(".env"),
    **overrides: Any,
) -> Settings:
    """Build Settings from `environ` (default: os.environ) over `.env`, over what duel recorded in
    DUEL_HOME (its server's address, the last run's database), then apply overrides."""
    dotenv_values = _read_dotenv(dotenv) if dotenv else {}
    process = os.environ if environ is None else environ
    env: dict[str, str] = {**dotenv_values, **process}
    get = env.get
    home = Path(get("DUEL_HOME") or ".duel")
    # field name -> value, of the field's type (checked when Settings is built)
    values: dict[str, Any] = {"home": home, **_connection(env, process, home)}
    paths = {"DUEL_OUT": "out_dir", "DUEL_DBT_PROJECT_DIR": "dbt_project_dir", "DUEL_DATA": "data"}
    for var, name in paths.items():
        if path := get(var):
            values[name] = Path(path)
    if get("DUEL_DATA", "").lower().startswith("s3://"):
        values["data"] = get("DUEL_DATA")  # a location, not a path: Path() would fold its "//"
    ints = {  # variable -> (field, the least and the most value that mean something)
        "DUEL_MAX_FILE_BYTES": ("max_file_bytes", 1, None),
        "DUEL_WORKERS": ("workers", 0, MAX_WORKERS),
        "DUEL_BATCH_ROWS": ("batch_rows", 1, None),
        "DUEL_SMTP_PORT": ("smtp_port", 1, MAX_PORT),
    }
    for var, (name, least, most) in ints.items():
        if number := get(var):
            values[name] = _as_int(var, number, least, most)
    if timeout := get("DUEL_LOCK_TIMEOUT"):
        values["lock_timeout_s"] = float(
            _as_int("DUEL_LOCK_TIMEOUT", timeout, 0, MAX_LOCK_TIMEOUT_S)
        )
    for var, name in {"DUEL_EMBEDDED": "embedded", "DUEL_SMTP_STARTTLS": "smtp_starttls"}.items():
        if (flag := get(var)) is not None:
            values[name] = _as_bool(var, flag)
    policy = get("DUEL_REPAIR", "safe").strip().lower()
    if policy not in REPAIR_POLICIES:
        raise ConfigError(
            f"DUEL_REPAIR must be one of {', '.join(REPAIR_POLICIES)}, got {policy!r}"
        )
    values["repair_policy"] = policy
    strings = {
        "DUEL_SMTP_HOST": "smtp_host",
        "DUEL_SMTP_USER": "smtp_user",
        "DUEL_SMTP_PASSWORD": "smtp_password",
        "DUEL_NOTIFY_FROM": "notify_from",
        "DUEL_NOTIFY_WEBHOOK": "notify_webhook",
        "DUEL_PSEUDONYM_KEY": "pseudonym_key",
        "DUEL_SCHEDULE": "schedule",
        "DUEL_DOCUMENT_KEY": "document_key",
    }
    for var, name in strings.items():
        if get(var):
            values[name] = get(var)
    if get("DUEL_NOTIFY_TO"):
        values["notify_to"] = tuple(
            a.strip() for a in get("DUEL_NOTIFY_TO", "").split(",") if a.strip()
        )
    values["aws"] = {var: value for var in AWS_VARIABLES if (value := get(var))}
    settings = Settings(**values).with_overrides(**overrides)
    from duel.identity import KeyRule

    KeyRule.parse(settings.document_key)  # a malformed DUEL_DOCUMENT_KEY fails here, in one line
    return settings
