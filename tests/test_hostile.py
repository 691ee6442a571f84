"""Hostile input: the committed corpus (tests/fixtures/hostile/), the big cases generated at test
time, and the guards on SQL and secrets. The ingest never crashes or hangs, every file is in the
ledger, and what is loaded is exactly what the summary says."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli_env, query

from duel.repair import parse_document
from duel.settings import Settings

CORPUS = Path(__file__).parent / "fixtures" / "hostile"
HANG_GUARD_S = 120  # a subprocess still running after this is a hang, not a slow machine

# name -> (ledger status, reason, repair kind): the verdict on every corpus file.
VERDICTS = {
    "array-of-users.json": ("quarantined", "not-an-object", None),
    "big-numbers.json": ("loaded", None, None),
    "binary-garbage.json": ("quarantined", "nul-byte", None),
    "bom-only.json": ("quarantined", "empty", None),
    "comment.json": ("repaired", None, "lossless"),
    "concatenated-objects.json": ("quarantined", "several-documents", None),
    "concatenated-second-truncated.json": ("quarantined", "several-documents", None),
    "crlf-truncated.json": ("repaired", None, "closed"),
    "crlf.json": ("loaded", None, None),
    "depth-512.json": ("loaded", None, None),
    "depth-513.json": ("quarantined", "too-deep", None),
    "duplicate-keys.json": ("loaded", None, None),
    "empty.json": ("quarantined", "empty", None),
    "escaped-emoji-pair.json": ("loaded", None, None),
    "latin1.json": ("quarantined", "not-utf8", None),
    "lone-surrogate-truncated.json": ("quarantined", "unrepairable", None),
    "lone-surrogate.json": ("quarantined", "unpaired-surrogate", None),
    "lossless-mixed.json": ("repaired", None, "lossless"),
    "nan-literal.json": ("quarantined", "repair-rewrites-content", "rewritten"),
    "not-json.txt": ("skipped", "not-json", None),
    "nul-byte-in-string.json": ("quarantined", "nul-byte", None),
    "nul-escape-truncated.json": ("quarantined", "nul-character", None),
    "nul-escape.json": ("quarantined", "nul-character", None),
    "null.json": ("quarantined", "not-an-object", None),
    "number-exponent-underflow.json": ("quarantined", "number-out-of-range", None),
    "number-long-fraction.json": ("quarantined", "number-out-of-range", None),
    "number-zero-huge-exponent.json": ("quarantined", "number-out-of-range", None),
    "numbers-at-the-limits.json": ("loaded", None, None),
    "scalar-string.json": ("quarantined", "not-an-object", None),
    "single-quotes.json": ("repaired", None, "lossless"),
    "trailing-comma.json": ("repaired", None, "lossless"),
    "truncated-mid-string.json": ("quarantined", "repair-incomplete", None),
    "utf16-be-bom.json": ("repaired", None, "encoding"),
    "utf16-le-bom.json": ("repaired", None, "encoding"),
    "utf16-le-no-bom.json": ("quarantined", "nul-byte", None),
    "utf8-bom.json": ("repaired", None, "encoding"),
    "whitespace-only.json": ("quarantined", "empty", None),
    "zoë-unicode-name.json": ("loaded", None, None),
}
LEDGER_TO_PARSE = {"loaded": "clean", "repaired": "repaired", "quarantined": "quarantined"}
# A JSON array of user objects is not one document: the ingest loads one document per element.
ARRAY_FILE, ARRAY_ELEMENTS = "array-of-users.json", 2


def ingest_verdicts() -> dict[str, tuple[str, str | None]]:
    """The ledger the ingest writes for the corpus: the parse verdicts, the array split up."""
    verdicts = {
        name: (status, reason)
        for name, (status, reason, _) in VERDICTS.items()
        if name != ARRAY_FILE
    }
    return verdicts | {
        f"{ARRAY_FILE}[{index}]": ("loaded", None) for index in range(ARRAY_ELEMENTS)
    }


def ingest_cli(settings: Settings, data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`duel ingest DATA --json` in a subprocess, stopped as a hang after HANG_GUARD_S."""
    return subprocess.run(
        [sys.executable, "-m", "duel", "ingest", str(data), "--json"],
        capture_output=True,
        text=True,
        env=cli_env(settings, **env),
        cwd=REPO,
        timeout=HANG_GUARD_S,
        check=False,
    )


def ledger(settings: Settings) -> dict[str, tuple[str, str | None]]:
    rows = query(settings, "select source_name, status, reason from raw.batch_files")
    return {str(name): (str(status), reason) for name, status, reason in rows}  # type: ignore[misc]


def table_counts(settings: Settings) -> dict[str, int]:
    tables = ("batch_files", "user_documents", "current_versions", "quarantine")
    return {t: int(query(settings, f"select count(*) from raw.{t}")[0][0]) for t in tables}  # type: ignore[call-overload]


def assert_summary_matches_tables(settings: Settings, summary: dict[str, int]) -> None:
    """The summary's numbers are the ledger's, and the ledger's are the tables' (one batch)."""
    by_status = dict(query(settings, "select status, count(*) from raw.batch_files group by 1"))
    assert summary["files_seen"] == sum(by_status.values())
    assert summary["loaded"] == by_status.get("loaded", 0) + by_status.get("repaired", 0)
    assert summary["repaired"] == by_status.get("repaired", 0)
    for key in ("quarantined", "skipped", "unchanged"):
        assert summary[key] == by_status.get(key, 0)
    counts = table_counts(settings)
    assert counts["user_documents"] == summary["loaded"]
    assert counts["current_versions"] == summary["loaded"]
    assert counts["quarantine"] == summary["quarantined"]
    assert query(
        settings,
        "select status, files_seen, loaded, repaired, quarantined, skipped, unchanged"
        " from raw.batches",
    ) == [
        (
            "succeeded",
            *(
                summary[k]
                for k in ("files_seen", "loaded", "repaired", "quarantined", "skipped", "unchanged")
            ),
        )
    ]


# --- the committed corpus -------------------------------------------------------------------


def test_hostile_corpus_has_a_verdict_for_every_file() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(VERDICTS)


@pytest.mark.parametrize("name", sorted(n for n, v in VERDICTS.items() if v[0] != "skipped"))
def test_parse_document_hostile_corpus_verdict(name: str) -> None:
    status, reason, kind = VERDICTS[name]
    parsed = parse_document((CORPUS / name).read_bytes())
    assert (parsed.status, parsed.reason, (parsed.repair or {}).get("kind")) == (
        LEDGER_TO_PARSE[status],
        reason,
        kind,
    )


def test_ingest_hostile_corpus_accounts_for_every_file(settings: Settings) -> None:
    result = ingest_cli(settings, CORPUS)
    assert (result.returncode, result.stderr) == (0, "")
    summary = json.loads(result.stdout)
    assert summary == {
        "batch_id": 1,
        "files_read": 38,  # the array of users is one file
        "files_seen": 39,
        "loaded": 17,
        "repaired": 8,
        "quarantined": 21,
        "skipped": 1,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert ledger(settings) == ingest_verdicts()
    assert_summary_matches_tables(settings, summary)
    stored = dict(query(settings, "select source_name, content from raw.quarantine"))
    assert stored == {
        n: (CORPUS / n).read_bytes() for n, v in ingest_verdicts().items() if v[0] == "quarantined"
    }


def test_ingest_hostile_values_load_exactly(settings: Settings) -> None:
    ingest_cli(settings, CORPUS)
    task = "document #>> '{advocacy_programs,0,tasks_completed,0,%s}'"
    rows = query(
        settings,
        f"select {task % 'likes'}, {task % 'reach'},"
        " (document #>> '{advocacy_programs,0,total_sales_attributed}')::numeric"
        " = '1.00000000000000000000000000001e400'::numeric"
        " from raw.user_documents where source_name = 'big-numbers.json'",
    )
    assert rows == [("123456789012345678901234567890", "-98765432109876543210987654321", True)]
    names = query(
        settings,
        "select source_name, document ->> 'name' from raw.user_documents"
        " where source_name in ('duplicate-keys.json', 'utf16-le-bom.json',"
        " 'escaped-emoji-pair.json') order by 1",
    )
    assert names == [
        ("duplicate-keys.json", "Ada Hostile"),
        ("escaped-emoji-pair.json", "Ada \U0001f600 Hostile"),
        ("utf16-le-bom.json", "Zoë Ångström"),
    ]


def test_ingest_lossless_repair_and_limits_load_exactly(settings: Settings) -> None:
    ingest_cli(settings, CORPUS)
    mixed = query(
        settings,
        "select document, repair from raw.user_documents where source_name = 'lossless-mixed.json'",
    )
    expected = json.loads(
        (CORPUS / "comment.json")
        .read_text()
        .replace("/* who */ ", "")
        .replace('"Ada Hostile"', '"Ada \\"the\\" Hostile"')
    )
    assert mixed == [
        (
            expected,
            {
                "kind": "lossless",
                "fixes": ["comment", "single-quotes", "trailing-comma", "whitespace"],
            },
        )
    ]
    limits = query(
        settings,
        "select (document #>> '{advocacy_programs,0,tasks_completed,0,likes}')::numeric"
        " = '1e-16383'::numeric, document #>> '{advocacy_programs,0,tasks_completed,0,reach}',"
        " length(document #>> '{advocacy_programs,0,total_sales_attributed}')"
        " from raw.user_documents where source_name = 'numbers-at-the-limits.json'",
    )
    assert limits == [(True, "0", 131072)]  # 9.99e131071: 131072 digits, stored exactly
    deep = query(
        settings,
        "select document -> 'deep' from raw.user_documents where source_name = 'depth-512.json'",
    )
    assert deep == [(json.loads("[" * 511 + "]" * 511),)]  # 512 levels, the object itself the first


def test_ingest_hostile_corpus_twice_changes_nothing(settings: Settings) -> None:
    ingest_cli(settings, CORPUS)
    before = query(
        settings, "select source_name, content_sha256, batch_id from raw.user_documents order by 1"
    )
    again = json.loads(ingest_cli(settings, CORPUS).stdout)
    assert again == {
        "batch_id": 2,
        "files_read": 38,  # the array of users is one file
        "files_seen": 39,
        "loaded": 0,
        "repaired": 0,
        "quarantined": 21,
        "skipped": 1,
        "unchanged": 17,
        "deleted": 0,
        "keyless": 0,
    }
    assert (
        query(
            settings,
            "select source_name, content_sha256, batch_id from raw.user_documents order by 1",
        )
        == before
    )
    assert table_counts(settings)["quarantine"] == 21  # the same bytes are not stored twice


def test_ingest_real_dataset_with_hostile_corpus(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """The issue's 'done when': the real dataset plus the corpus, as a new user would run it."""
    data = tmp_path / "dump"
    shutil.copytree(real_dir, data)
    shutil.copytree(CORPUS, data / "hostile")
    result = ingest_cli(settings, data)
    assert result.returncode == 0
    summary = json.loads(result.stdout)
    assert summary == {
        "batch_id": 1,
        "files_read": 10038,
        "files_seen": 10039,
        "loaded": 10017,
        "repaired": 230,
        "quarantined": 21,
        "skipped": 1,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert_summary_matches_tables(settings, summary)
    real = {p.relative_to(data).as_posix() for p in (data / "mixed").glob("*.json")}
    loaded = query(
        settings,
        "select source_name, count(*) from raw.user_documents"
        " where starts_with(source_name, 'mixed/') group by 1",
    )
    assert len(real) == 10000
    assert dict(loaded) == dict.fromkeys(real, 1)


# --- big cases, generated at test time ------------------------------------------------------


def user_file(**values: str) -> bytes:
    """A corpus user document with some values replaced by raw JSON text (`likes="1e-20000"`)."""
    text = (CORPUS / "comment.json").read_text().replace("/* who */ ", "")
    for key, value in values.items():
        text = re.sub(rf'("{key}": )[^,\n]+', lambda m, v=value: m.group(1) + v, text, count=1)
    return text.encode()


# name -> (document, ledger status, reason): what Postgres numeric and jsonb take, at each limit
# and one past it. Before they were checked while parsing, any one of the refused files failed
# the whole batch at COPY ("value overflows numeric format").
UNSTORABLE = {
    "digits-131072.json": (user_file(likes="1" * 131072), "loaded", None),
    "digits-131073.json": (user_file(likes="1" * 131073), "quarantined", "number-out-of-range"),
    "exponent-at-limit.json": (user_file(likes="1e-16383"), "loaded", None),
    "exponent-underflow.json": (user_file(likes="1e-20000"), "quarantined", "number-out-of-range"),
    "zero-exponent-at-limit.json": (user_file(reach="0e1073741823"), "loaded", None),
    "zero-huge-exponent.json": (
        user_file(reach="0e1073741824"),
        "quarantined",
        "number-out-of-range",
    ),
    "fraction-16384.json": (
        user_file(total_sales_attributed="0." + "1" * 16384),
        "quarantined",
        "number-out-of-range",
    ),
    "exponent-underflow-cut-short.json": (
        user_file(likes="1e-20000")[:-2],
        "quarantined",
        "number-out-of-range",
    ),
    "depth-512.json": ((CORPUS / "depth-512.json").read_bytes(), "loaded", None),
    "depth-513.json": ((CORPUS / "depth-513.json").read_bytes(), "quarantined", "too-deep"),
    "depth-100000.json": (b"[" * 100_000 + b"]" * 100_000, "quarantined", "too-deep"),
}


def test_ingest_real_dataset_with_unstorable_files(
    settings: Settings, real_dir: Path, tmp_path: Path
) -> None:
    """The issue's case: the real dump plus files Postgres would refuse. Each refused file is
    quarantined alone with its reason; every other file loads, the edge values exactly."""
    data = tmp_path / "dump"
    shutil.copytree(real_dir, data)
    (data / "unstorable").mkdir()
    for name, (content, _, _) in UNSTORABLE.items():
        (data / "unstorable" / name).write_bytes(content)
    result = ingest_cli(settings, data)
    assert (result.returncode, result.stderr) == (0, "")
    summary = json.loads(result.stdout)
    assert summary == {
        "batch_id": 1,
        "files_read": 10011,
        "files_seen": 10011,
        "loaded": 10004,
        "repaired": 222,
        "quarantined": 7,
        "skipped": 0,
        "unchanged": 0,
        "deleted": 0,
        "keyless": 0,
    }
    assert_summary_matches_tables(settings, summary)
    assert {n: v for n, v in ledger(settings).items() if n.startswith("unstorable/")} == {
        f"unstorable/{name}": (status, reason) for name, (_, status, reason) in UNSTORABLE.items()
    }
    assert query(settings, "select reason, count(*) from raw.quarantine group by 1 order by 1") == [
        ("number-out-of-range", 5),
        ("too-deep", 2),
    ]
    likes = "document #>> '{advocacy_programs,0,tasks_completed,0,likes}'"
    assert query(
        settings,
        f"select source_name, length({likes}), ({likes})::numeric = '1e-16383'::numeric"
        " from raw.user_documents where source_name in"
        " ('unstorable/digits-131072.json', 'unstorable/exponent-at-limit.json') order by 1",
    ) == [
        ("unstorable/digits-131072.json", 131072, False),
        ("unstorable/exponent-at-limit.json", 16385, True),
    ]


def test_ingest_deep_nesting_is_quarantined_without_crash(
    settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "deep"
    data.mkdir()
    depth = 100_000
    (data / "open-arrays.json").write_bytes(b"[" * depth)
    (data / "closed-arrays.json").write_bytes(b"[" * depth + b"]" * depth)
    (data / "open-objects.json").write_bytes(b'{"a":' * depth)
    (data / "user-then-deep.json").write_bytes(b'{"user_id": ' + b"[" * depth)
    result = ingest_cli(settings, data)
    assert (result.returncode, result.stderr) == (0, "")
    assert ledger(settings) == {
        "closed-arrays.json": ("quarantined", "too-deep"),
        "open-arrays.json": ("quarantined", "too-deep"),
        "open-objects.json": ("quarantined", "too-deep"),
        "user-then-deep.json": ("quarantined", "too-deep"),
    }


def test_ingest_64mb_string_loads_whole(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "big"
    data.mkdir()
    body = b"x" * (64 << 20)
    (data / "big-string.json").write_bytes(b'{"name": "' + body + b'"}')
    (data / "big-string-unclosed.json").write_bytes(b'{"name": "' + body)
    result = ingest_cli(settings, data, DUEL_MAX_FILE_BYTES=str(80 << 20))
    assert (result.returncode, result.stderr) == (0, "")
    assert ledger(settings) == {
        "big-string.json": ("loaded", None),
        "big-string-unclosed.json": ("quarantined", "too-large-to-repair"),
    }
    assert query(settings, "select length(document ->> 'name') from raw.user_documents") == [
        (64 << 20,)
    ]


def peak_rss_mb(settings: Settings, data: Path, **env: str) -> tuple[int, str]:
    """Run the ingest in a child that reports its own peak RSS (MB) on its last stderr line.

    VmHWM of /proc/self/status, not getrusage's ru_maxrss: that one survives execve, so a child
    started from a large pytest process would report the parent's size."""
    code = (
        "import atexit, re, sys\n"
        "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', "
        "open('/proc/self/status').read()).group(1))\n"
        "atexit.register(lambda: print(hwm() // 1024, file=sys.stderr))\n"
        f"sys.argv = ['duel', 'ingest', {str(data)!r}, '--json']\n"
        "from duel.cli import main\nmain()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli_env(settings, **env),
        cwd=REPO,
        timeout=HANG_GUARD_S,
        check=False,
    )
    *_, peak = result.stderr.strip().splitlines()
    return int(peak), result.stdout


def test_ingest_file_over_limit_is_not_read(settings: Settings, tmp_path: Path) -> None:
    """A sparse 8 GiB file: reading it would take minutes and 8 GiB; it is quarantined from its
    size.
    """
    data = tmp_path / "over"
    data.mkdir()
    with open(data / "huge.json", "wb") as handle:
        handle.truncate(8 << 30)
    peak, stdout = peak_rss_mb(settings, data, DUEL_MAX_FILE_BYTES=str(1 << 20))
    assert json.loads(stdout)["quarantined"] == 1
    assert query(settings, "select reason, byte_size, content from raw.quarantine") == [
        ("too-large", 8 << 30, None)
    ]
    assert peak < 128  # MB: the 8 GiB file is never read (an ingest of it peaks near 45 MB)


# --- SQL and secrets --------------------------------------------------------------------------

SQL_CALLS = ("execute", "executemany", "copy", "SQL")


def _sql_texts(tree: ast.AST) -> list[ast.expr]:
    """The first argument of every execute/executemany/copy/sql.SQL call, following a variable
    to the string assigned to it in the same module."""
    assigned = {
        t.id: node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SQL_CALLS:
                arg = node.args[0]
                texts.append(assigned.get(arg.id, arg) if isinstance(arg, ast.Name) else arg)
    return texts


def _is_constant_columns(node: ast.expr) -> bool:
    """`', '.join(UPPER_CASE_CONSTANT)`: identifiers fixed in the code, not values."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id.isupper()
    )


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _formatted_values(text: ast.expr) -> list[str]:
    """What is formatted into SQL text by f-string, `%` or str.format (constant column lists are
    allowed; psycopg.sql composition, which quotes what it splices, is not string formatting)."""
    if isinstance(text, ast.JoinedStr):
        return [
            ast.unparse(v.value)
            for v in text.values
            if isinstance(v, ast.FormattedValue) and not _is_constant_columns(v.value)
        ]
    if isinstance(text, ast.BinOp) and isinstance(text.op, ast.Mod) and _is_text(text.left):
        return [ast.unparse(text)]
    if isinstance(text, ast.BinOp) and isinstance(text.op, ast.Add):
        return _formatted_values(text.left) + _formatted_values(text.right)
    if (
        isinstance(text, ast.Call)
        and isinstance(text.func, ast.Attribute)
        and text.func.attr == "format"
        and _is_text(text.func.value)
    ):
        return [ast.unparse(text)]
    return []


def test_sql_values_only_through_parameters() -> None:
    """No value is formatted into SQL text: values go through parameters or COPY, identifiers
    through psycopg.sql.Identifier; an f-string may only splice a constant column list."""
    offenders = []
    for path in sorted((REPO / "src" / "duel").rglob("*.py")):
        for text in _sql_texts(ast.parse(path.read_text(encoding="utf-8"))):
            offenders += [
                f"{path.name}:{text.lineno}: {value}" for value in _formatted_values(text)
            ]
    assert offenders == []


PLUMBING = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT"}


def test_only_settings_reads_secrets_from_the_environment() -> None:
    """Secrets (PGPASSWORD, DUEL_SMTP_PASSWORD, DUEL_NOTIFY_WEBHOOK, DUEL_PSEUDONYM_KEY) are read
    only by settings.py; other modules read only process plumbing (PATH, HOME, locale...)."""
    from duel import transform

    read = {}
    for path in sorted((REPO / "src" / "duel").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name != "settings.py" and ("os.environ" in text or "getenv(" in text):
            read[path.name] = set(re.findall(r'(?:environ\.get\(|environ\[|getenv\()"(\w+)"', text))
    assert read == {"server.py": {"PATH"}, "transform.py": set()}
    assert set(transform.PASSTHROUGH) <= PLUMBING


def test_settings_repr_hides_secrets() -> None:
    from duel.settings import load_settings

    secrets = {
        "PGPASSWORD": "pg-secret-1",
        "DUEL_SMTP_PASSWORD": "smtp-secret-2",
        "DUEL_NOTIFY_WEBHOOK": "https://hooks.example/secret-3",
        "DUEL_PSEUDONYM_KEY": "key-secret-4",
    }
    settings = load_settings(secrets, dotenv=None)
    shown = repr(settings) + settings.url()
    assert [s for s in secrets.values() if s in shown] == []
