"""The first hour, as a newcomer lives it (issue 16): a fresh clone and a fresh DUEL_HOME,
`make run` on the demo, then the README's own commands (the notebooks under `jupyter nbconvert`,
clearing their outputs, `dbt build` from dbt/duel), `make notebooks` and one Ctrl-C, the real dump
after the demo, and `make clean`. Slow: it installs a venv and runs dbt three times."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, free_port

from duel import server
from duel.settings import load_settings

pytestmark = pytest.mark.slow
README = (REPO / "README.md").read_text()
DEMO_USERS = 2000


@dataclass(frozen=True)
class Newcomer:
    clone: Path
    port: int
    env: dict[str, str]  # no PG* at all: what duel recorded decides
    run: subprocess.CompletedProcess[str]

    def sh(self, script: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        settings = load_settings({"PGPORT": str(self.port), "PGDATABASE": database}, dotenv=None)
        with psycopg.connect(**settings.conninfo()) as conn:  # type: ignore[arg-type]
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def readme_command(prefix: str) -> str:
    """The README's own command line that starts with `prefix` (in a code block or in backticks)."""
    found = re.findall(rf"^(?:`)?({re.escape(prefix)}[^`\n]*)`?", README, re.M) or re.findall(
        rf"`({re.escape(prefix)}[^`]*)`", README
    )
    assert found, f"the README shows no command starting with {prefix!r}"
    return found[0]


def readme_block(after: str) -> str:
    """The first ```bash block after the text `after` in the README."""
    return README.split(after, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module")
def newcomer(real_data: Path) -> Iterator[Newcomer]:
    # world-searchable, as the embedded server (a system user under root) must enter DUEL_HOME
    root = Path(tempfile.mkdtemp(prefix="duel-newcomer-", dir="/tmp"))
    root.chmod(0o755)
    clone = root / "duel"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(
        ["git", "clone", "--quiet", "--shared", "--no-checkout", str(REPO), str(clone)], check=True
    )
    subprocess.run(["git", "checkout", "--quiet", head], cwd=clone, check=True)
    # a newcomer's own environment (network, certificates, caches), minus any PG*/DUEL_* setting
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DUEL_", "VIRTUAL_ENV"))}
    port = free_port()
    run = subprocess.run(
        ["make", "run", f"USERS={DEMO_USERS}"],
        cwd=clone,
        env={**env, "PGPORT": str(port)},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    try:
        yield Newcomer(clone, port, env, run)
    finally:
        if (clone / ".venv" / "bin" / "duel").exists():
            subprocess.run(
                [str(clone / ".venv" / "bin" / "duel"), "db", "stop"],
                cwd=clone,
                env=env,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


def test_newcomer_make_run_says_server_and_demo(newcomer: Newcomer) -> None:
    assert newcomer.run.returncode == 0, newcomer.run.stderr[-2000:]
    lines = newcomer.run.stderr.splitlines()
    assert [line for line in lines if line.startswith(("server:", "data:"))] == [
        f"server:  duel's embedded server at 127.0.0.1:{newcomer.port} (started now; data in "
        f"{newcomer.clone}/.duel/pgdata)",
        "data:    the DEMO (made by `duel generate`), in database duel_demo; a real dump goes to "
        "duel",
    ]


def test_newcomer_status_finds_the_recorded_server(newcomer: Newcomer) -> None:
    status = newcomer.sh(".venv/bin/duel db status")
    assert status.returncode == 0
    assert re.fullmatch(
        rf"duel's embedded server at 127\.0\.0\.1:{newcomer.port}, running since .+ \(pid \d+\), "
        rf"data in {newcomer.clone}/\.duel/pgdata\n",
        status.stdout,
    )


def test_newcomer_notebooks_run_with_nbconvert_as_the_readme_says(newcomer: Newcomer) -> None:
    command = readme_command(".venv/bin/jupyter nbconvert --to notebook --execute")
    done = newcomer.sh(command)
    assert done.returncode == 0, done.stderr[-3000:]
    # nothing to worry a newcomer: the kernels run over Unix sockets (make install's config),
    # so ipykernel's warning that a kernel over TCP is unencrypted is not printed
    assert [line for line in done.stderr.splitlines() if "WARNING" in line] == []
    executed = sorted(p.name for p in (newcomer.clone / "out" / "notebooks").glob("*.ipynb"))
    assert executed == ["data_debugging.ipynb", "data_output.ipynb"]
    cleared = newcomer.sh(readme_command(".venv/bin/jupyter nbconvert --clear-output --inplace"))
    assert cleared.returncode == 0, cleared.stderr[-2000:]
    assert newcomer.sh("git status --porcelain -- '*.ipynb'").stdout == ""


def test_newcomer_dbt_build_from_dbt_duel_as_the_readme_says(newcomer: Newcomer) -> None:
    block = readme_block("From a terminal, right after `make run`")
    assert "cd dbt/duel && dbt build" in block
    done = newcomer.sh(block)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert re.search(r"Completed successfully", done.stdout)


def test_newcomer_make_notebooks_stops_on_one_ctrl_c(newcomer: Newcomer) -> None:
    port = free_port()
    pid, fd = pty.fork()
    if pid == 0:  # the child: make in a terminal of its own, as a person runs it
        os.chdir(newcomer.clone)
        argv = ["make", "notebooks", f"NOTEBOOK_PORT={port}"]
        os.execvpe("make", argv, newcomer.env)  # noqa: S606  pty.fork's child becomes make
    output, started = b"", time.monotonic()
    try:
        while f"127.0.0.1:{port}/lab".encode() not in output and time.monotonic() - started < 600:
            if select.select([fd], [], [], 1)[0]:
                output += os.read(fd, 65536)
        assert f"127.0.0.1:{port}/lab".encode() in output, output.decode(errors="replace")[-2000:]
        os.write(fd, b"\x03")  # one Ctrl-C at the terminal
        interrupted, before = time.monotonic(), len(output)
        while not os.waitpid(pid, os.WNOHANG)[0]:
            # a prompt ("Shutdown this Jupyter server (y/[n])?") would wait forever; a shutdown
            # takes under a second here, and once (CI, both cores busy) took over 30 s
            assert time.monotonic() - interrupted < 120, (
                "make notebooks still runs 120 s after one Ctrl-C; since it:\n"
                + output[before:].decode(errors="replace")[-3000:]
            )
            if select.select([fd], [], [], 0.5)[0]:
                with contextlib.suppress(OSError):
                    output += os.read(fd, 65536)
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
        os.close(fd)
    assert server.probe_port("127.0.0.1", port) is False


def test_newcomer_real_dump_after_the_demo_has_no_demo_history(
    newcomer: Newcomer, real_data: Path
) -> None:
    done = newcomer.sh(f".venv/bin/duel run {real_data}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "data:    in database duel" in done.stderr.splitlines()
    history = (
        "select count(*), count(distinct user_key), count(*) filter (where source_file like "
        "'%demo_user_%')"
        " from dbt_snapshots.users_snapshot"
    )
    assert newcomer.query("duel", history) == [(10_000, 10_000, 0)]
    assert newcomer.query("duel_demo", history) == [(DEMO_USERS, DEMO_USERS, DEMO_USERS)]


def test_newcomer_make_clean_says_it_deletes_the_databases(newcomer: Newcomer) -> None:
    done = newcomer.sh("make clean")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "make clean: deleting .duel/pgdata, duel's embedded Postgres with every database in it "
        "(duel, "
        "duel_demo, ...); data.tar.gz and any other Postgres are kept"
    ) in done.stdout.splitlines()
    assert (
        (newcomer.clone / ".duel").exists(),
        (newcomer.clone / "data.tar.gz").exists(),
        server.probe_port("127.0.0.1", newcomer.port),
    ) == (False, True, False)
