"""The `duel` CLI as a user runs it: exit codes and the exact one-line errors."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from conftest import REPO, free_port, query, run_cli

from duel.cli import cli
from duel.settings import Settings


def test_ingest_json_summary(settings: Settings, real_data: Path) -> None:
    result = run_cli(settings, "ingest", str(real_data), "--json")
    assert (result.returncode, json.loads(result.stdout)) == (
        0,
        {
            "batch_id": 1,
            "files_read": 10000,
            "files_seen": 10000,
            "loaded": 10000,
            "repaired": 222,
            "quarantined": 0,
            "skipped": 0,
            "unchanged": 0,
            "deleted": 0,
            "keyless": 0,
        },
    )


def test_ingest_strict_exits_2_when_quarantined(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "user_1.json").write_bytes(b"not json at all")
    result = run_cli(settings, "ingest", str(tmp_path), "--json", "--strict")
    assert (result.returncode, json.loads(result.stdout)) == (
        2,
        {
            "batch_id": 1,
            "files_read": 1,
            "files_seen": 1,
            "loaded": 0,
            "repaired": 0,
            "quarantined": 1,
            "skipped": 0,
            "unchanged": 0,
            "deleted": 0,
            "keyless": 0,
        },
    )


def test_ingest_human_summary_on_stderr(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "user_1.json").write_bytes(b"[]")
    (tmp_path / "._user_1.json").write_bytes(b"\x00")
    result = run_cli(settings, "ingest", str(tmp_path))
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines() == [
        f"batch 1 from {tmp_path}",
        "  files read           2",
        "  documents            2",
        "  loaded               0  (repaired 0)",
        "  unchanged            0",
        "  quarantined          1  (not-an-object 1)",
        "  skipped              1  (macos-metadata 1)",
        "  quarantined files: select * from raw.quarantine where batch_id = 1;",
    ]


def test_ingest_missing_path(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, "ingest", str(tmp_path / "nope.tar.gz"))
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"error: no such file or directory: {tmp_path}/nope.tar.gz\n",
    )


def test_ingest_path_with_a_newline_is_one_line(settings: Settings, tmp_path: Path) -> None:
    # a newline (or a terminal escape) in a path made the error two lines, or rewrote the screen
    folder = tmp_path / "day\n2\x1b[2J"
    folder.mkdir()
    result = run_cli(settings, "ingest", str(folder / "dump.tar.gz"))
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"error: no such file or directory: {tmp_path}/day\\n2\\x1b[2J/dump.tar.gz\n",
    )


def test_ingest_empty_path_is_a_usage_error(settings: Settings, tmp_path: Path) -> None:
    # Path("") is the current directory: `duel ingest ""` read the whole of it
    (tmp_path / "user_1.json").write_text("{}")
    result = run_cli(settings, "ingest", "", cwd=tmp_path)
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        2,
        "Error: Invalid value for 'DATA': empty; give the dump's path or s3:// location",
    )


def test_read_commands_never_make_a_database(settings: Settings) -> None:
    # `duel report` of a database that does not exist made it empty, then said "run duel
    # transform first"; transform built 26 empty models on it, report and export wrote them
    missing = settings.pg_database + "_never_loaded"
    for command in ("report", "export", "transform"):
        result = run_cli(settings, command, PGDATABASE=missing)
        assert (result.returncode, result.stderr.splitlines()[-1]) == (
            1,
            f"error: database {missing} does not exist on {settings.pg_host}:{settings.pg_port}:"
            " nothing was loaded into it; load a dump first (`duel run DATA` or `duel ingest"
            " DATA`), or set PGDATABASE to the one you loaded",
        ), command
    assert query(settings, "select count(*) from pg_database where datname = %s", (missing,)) == [
        (0,)
    ]


def test_ingest_unsupported_file(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = run_cli(settings, "ingest", str(tmp_path / "notes.txt"))
    assert (result.returncode, result.stderr) == (
        1,
        f"error: {tmp_path}/notes.txt: not a supported input; give a directory or a .tar, "
        ".tar.gz/.tgz, "
        ".tar.bz2/.tbz2, .tar.xz/.txz, .zip, .json or .ndjson/.jsonl file (.json and .ndjson may "
        "be .gz, .bz2 "
        "or .xz compressed)\n",
    )


def test_ingest_corrupt_archive_writes_nothing(
    settings: Settings, tmp_path: Path, real_data: Path
) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(real_data.read_bytes()[:700_000])
    result = run_cli(settings, "ingest", str(cut))
    assert result.returncode == 1
    assert re.fullmatch(
        rf"error: {cut}: archive is corrupt after \d+ members \(Compressed file ended before the"
        r" end-of-stream marker was reached\); was the dump copied completely\?\n",
        result.stderr,
    )
    from conftest import query

    assert query(settings, "select count(*) from raw.user_documents") == [(0,)]
    assert query(settings, "select status, files_seen from raw.batches") == [("failed", None)]


def test_ingest_unreachable_database(settings: Settings, real_data: Path) -> None:
    port = free_port()
    result = run_cli(settings, "ingest", str(real_data), PGPORT=str(port), DUEL_EMBEDDED="false")
    assert (result.returncode, result.stderr) == (
        1,
        f"error: nothing answers at 127.0.0.1:{port}; start Postgres there or set PGHOST/PGPORT\n",
    )


def test_ingest_wrong_password_on_duels_server_says_how_to_set_it(
    settings: Settings, real_data: Path
) -> None:
    result = run_cli(settings, "ingest", str(real_data), PGPASSWORD="s3cret-wrong")
    assert (result.returncode, result.stderr) == (
        1,
        (
            f"error: duel's embedded server at 127.0.0.1:{settings.pg_port} refused user postgres "
            "(connection failed: "
            f'connection to server at "127.0.0.1", port {settings.pg_port} failed: FATAL:  '
            "password "
            'authentication failed for user "postgres"); set PGPASSWORD (environment or .env) to '
            "the password it "
            "was created with, or run `duel db password` to make PGPASSWORD its password\n"
        ),
    )
    assert "s3cret-wrong" not in result.stderr


def test_ingest_wrong_password_on_another_server_names_the_variables(
    settings: Settings, real_data: Path, tmp_path: Path
) -> None:
    """From another DUEL_HOME, the session's server is not duel's
    own: set PGUSER/PGPASSWORD for it.
    """
    result = run_cli(
        settings, "ingest", str(real_data), PGPASSWORD="s3cret-wrong", DUEL_HOME=str(tmp_path)
    )
    assert (result.returncode, result.stderr) == (
        1,
        (
            f"error: the Postgres at 127.0.0.1:{settings.pg_port} refused user postgres "
            "(connection failed: "
            f'connection to server at "127.0.0.1", port {settings.pg_port} failed: FATAL:  '
            "password "
            'authentication failed for user "postgres"); it is not duel\'s embedded server: '
            "set PGUSER/PGPASSWORD "
            "for it, or PGHOST/PGPORT to another server (a free PGPORT starts duel's own there)\n"
        ),
    )
    assert "s3cret-wrong" not in result.stderr


def test_ingest_port_held_by_another_program(
    settings: Settings, real_data: Path, squatter: int
) -> None:
    result = run_cli(settings, "ingest", str(real_data), PGPORT=str(squatter))
    assert (result.returncode, result.stderr) == (
        1,
        f"error: port {squatter} on 127.0.0.1 is held by a program that does not answer as "
        "Postgres; "
        "set PGPORT to a free port\n",
    )


def test_bad_setting_is_one_line(settings: Settings) -> None:
    result = run_cli(settings, "db", "url", PGPORT="fifty")
    assert (result.returncode, result.stderr) == (
        1,
        "error: PGPORT must be a whole number, got 'fifty'\n",
    )


def test_db_url_hides_password(settings: Settings) -> None:
    result = run_cli(settings, "db", "url")
    assert (result.returncode, result.stdout) == (
        0,
        f"postgresql://postgres:***@127.0.0.1:{settings.pg_port}/{settings.pg_database}\n",
    )
    shown = run_cli(settings, "db", "url", "--show-password")
    assert (
        shown.stdout
        == f"postgresql://postgres:pass@127.0.0.1:{settings.pg_port}/{settings.pg_database}\n"
    )


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_command_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    undocumented = [
        name
        for name, command in _commands(cli)
        if "Example" not in (command.help or "") or f"duel {name}" not in readme
    ]
    assert undocumented == []


# --- help: defaults, environment, no truncation ---------------------------------------------


def _help(*path: str) -> str:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_every_command_whole() -> None:
    """`duel --help` (and `duel db --help`) list each command with
    its whole short help, never cut.
    """
    for group, prefix in ((cli, ()), (cli.commands["db"], ("db",))):
        assert isinstance(group, click.Group)
        listed = _help(*prefix).split("Commands:\n")[1].split("\n\n")[0].splitlines()
        width = max(map(len, group.commands))
        assert listed == [
            f"  {name:<{width}}  {command.short_help}"
            for name, command in sorted(group.commands.items())
        ]


def test_help_shows_the_environment_each_command_reads() -> None:
    """Every command's help ends with the environment it reads (generate reads none; ingest and
    run, which take s3:// DATA, the AWS variables too)."""
    from duel.cli import ENVIRONMENT, ENVIRONMENT_S3, NO_ENVIRONMENT

    def lines(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip() not in ("", "\b")]

    chosen = {"generate": NO_ENVIRONMENT, "ingest": ENVIRONMENT_S3, "run": ENVIRONMENT_S3}
    wanted = {name: lines(chosen.get(name, ENVIRONMENT)) for name, _ in _commands(cli)}
    assert {
        name: lines(_help(*name.split()))[-len(epilog) :] for name, epilog in wanted.items()
    } == wanted


def test_help_shows_defaults() -> None:
    """Every option that takes a value shows its default (flags are off unless given)."""
    root = click.Context(cli, info_name="duel", **cli.context_settings)
    hidden = []
    for name, command in _commands(cli):
        ctx = click.Context(command, info_name=name, parent=root)
        for param in command.get_params(ctx):
            record = param.get_help_record(ctx)
            if (
                isinstance(param, click.Option)
                and not param.is_flag
                and record
                and "[default:" not in record[1]
            ):
                hidden.append(f"{name} {param.opts[-1]}")
    assert hidden == []
    assert "[default: ./data.tar.gz]" in " ".join(_help("run").split())
    assert "[default: 8580;" in _help("docs")


def test_docs_port_does_not_clash_with_airflow() -> None:
    makefile = (REPO / "Makefile").read_text()
    airflow_port = re.search(r"^AIRFLOW_PORT \?= (\d+)$", makefile, re.M)
    port = next(p for p in cli.commands["docs"].params if p.name == "port")
    assert (port.default, airflow_port and airflow_port.group(1)) == (8580, "8080")


# --- one-line errors that say what to do -----------------------------------------------------


@pytest.mark.parametrize("name", ["x.csv", "data.json"])
def test_generate_refuses_a_name_it_cannot_write(
    settings: Settings, tmp_path: Path, name: str
) -> None:
    result = run_cli(settings, "generate", "--users", "3", "-o", name, cwd=tmp_path)
    suffix = name[name.index(".") :]
    assert (result.returncode, result.stderr) == (
        1,
        f"error: {name} has the extension {suffix}: name a .tar, .tar.gz/.tgz, .tar.bz2/.tbz2 or "
        ".tar.xz/.txz "
        "archive (e.g. -o data.tar.gz), or a directory\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_ingest_non_gzip_named_tar_gz(settings: Settings, tmp_path: Path) -> None:
    fake = tmp_path / "data.tar.gz"
    fake.write_text("user_id,name\n1,Ann\n")
    result = run_cli(settings, "ingest", str(fake))
    assert (result.returncode, result.stderr) == (
        1,
        f"error: {fake}: text, not a gzip-compressed tar archive; give a .tar.gz made by `tar "
        "czf`, a .tar, a .zip, a directory or .json files\n",
    )


# --- reset ------------------------------------------------------------------------------------


def test_reset_asks_and_keeps_the_database_unless_confirmed(
    settings: Settings, tmp_path: Path
) -> None:
    from conftest import query

    (tmp_path / "user_1.json").write_bytes(b"{}")
    assert run_cli(settings, "ingest", str(tmp_path)).returncode == 0
    declined = subprocess_input(settings, "n\n", "reset")
    where = (
        f"duel's embedded server at 127.0.0.1:{settings.pg_port} (started by duel, running since "
    )
    assert declined.returncode == 1
    assert declined.stderr.startswith(f"Drop database {settings.pg_database} on {where}")
    assert declined.stderr.endswith(
        f"and create it empty? [y/N]: error: not confirmed; database "
        f"{settings.pg_database} kept (--yes resets without asking)\n"
    )
    assert query(settings, "select count(*) from raw.batches") == [(1,)]
    confirmed = subprocess_input(settings, "y\n", "reset")
    assert confirmed.returncode == 0
    assert query(settings, "select count(*) from raw.batches") == [(0,)]


def test_reset_yes_drops_and_recreates(settings: Settings, tmp_path: Path) -> None:
    from conftest import query

    (tmp_path / "user_1.json").write_bytes(b"{}")
    assert run_cli(settings, "ingest", str(tmp_path)).returncode == 0
    result = run_cli(settings, "reset", "--yes")
    assert result.returncode == 0
    assert re.fullmatch(
        rf"database {settings.pg_database} dropped and created empty on duel's embedded server at "
        rf"127\.0\.0\.1:{settings.pg_port} \(started by duel, running since .+\)\n",
        result.stderr,
    )
    assert query(settings, "select count(*) from raw.batches") + query(
        settings, "select count(*) from raw.user_documents"
    ) == [(0,), (0,)]


def subprocess_input(settings: Settings, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    from conftest import cli_env

    return subprocess.run(
        [sys.executable, "-m", "duel", *args],
        input=text,
        capture_output=True,
        text=True,
        env=cli_env(settings),
        cwd=REPO,
        timeout=300,
        check=False,
    )


# --- the run's summary names its server and its data ------------------------------------------


def test_run_summary_names_the_server_and_the_demo(settings: Settings, tmp_path: Path) -> None:
    """What `duel run` prints after its steps: the server (duel's, and whether this run started it),
    the data (the demo, and where), how to connect, with the password named."""
    from duel.generate import write_dataset
    from duel.pipeline import RunOutcome, database_stage, ingest_stage, settings_for_data
    from duel.summary import render_run

    demo = write_dataset(tmp_path / "data.tar.gz", users=20, seed=1).path
    used, is_demo = settings_for_data(settings, demo)  # PGDATABASE is set: the demo stays in it
    connected = database_stage(used, demo, is_demo)
    outcome = RunOutcome(ingest_stage(used, demo), (), used, connected, is_demo)
    lines = render_run(settings, outcome).splitlines()
    port, db = settings.pg_port, settings.pg_database
    assert re.fullmatch(
        rf"server:  duel's embedded server at 127\.0\.0\.1:{port} \(started by duel, running since "
        rf"[-0-9]+ [:0-9]+ UTC; data in {settings.pgdata.resolve()}\)",
        lines[-7],
    )
    assert lines[-6:] == [
        f"data:    the DEMO (made by `duel generate`), in database {db}; a real dump goes to "
        "another database",
        "connect:",
        f"  psql     psql -h 127.0.0.1 -p {port} -U postgres {db}",
        f"  pgAdmin  host 127.0.0.1, port {port}, maintenance database {db}, username postgres",
        "  password pass (the default; to change it set PGPASSWORD and run `duel db password`, see "
        "the README)",
        "  schemas  raw (as loaded), dbt (base, advocacy_programs, tasks_completed), dbt_lookup "
        "(brand), "
        "dbt_analysis (overview, reports)",
    ]
    assert (
        outcome.summary()["database"],
        outcome.summary()["demo"],
        outcome.summary()["server"],
    ) == (db, True, {"host": "127.0.0.1", "port": port, "embedded": True, "started": False})
    (settings.home / "database.json").unlink()  # the session's home keeps no record of this test


# --- Ctrl-C before the command starts ---------------------------------------------------------


def test_cli_interrupted_while_importing_says_so_in_one_line() -> None:
    """A Ctrl-C in the first moments, while Python still imports duel's modules (click here),
    ends like any interrupted command: one line, exit 130, no traceback. The console script
    runs the same entry as `python -m duel`."""
    code = (
        "import sys\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'click':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Stop())\n"
        "sys.argv = ['duel', '--version']\n"
        "from duel.__main__ import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        130,
        "",
        "error: interrupted before the command started; nothing was done\n",
    )
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="duel")
    assert script.value == "duel.__main__:main"
