"""Notifications: real local sinks (aiosmtpd SMTP server, http.server webhook), no mocks.

The end-to-end tests run `duel run` in a subprocess on a slice of the real dataset and read what
the sinks received: the success mail carries the report as an attachment; a broken copy of the dbt
project makes the transform step fail, and the failure mail names it with its one-line error.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import REPO, free_port, run_cli

from duel import __version__
from duel.notify import Delivery, deliver, failure_message, notify_failure, success_message
from duel.settings import Settings

SLICE_FILES = 40


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every message it is handed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )  # type: ignore[arg-type]
        return "250 OK"


class WebhookSink:
    """An HTTP server on 127.0.0.1 that records each POST and answers with `status`."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.requests.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/duel"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.thread.start()
    yield sink
    sink.server.shutdown()
    sink.server.server_close()


@pytest.fixture(scope="module")
def real_slice(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first SLICE_FILES files of the real dataset (by name), as a directory."""
    target = tmp_path_factory.mktemp("slice") / "mixed"
    target.mkdir()
    for path in sorted((real_dir / "mixed").glob("*.json"))[:SLICE_FILES]:
        shutil.copy(path, target / path.name)
    return target.parent


def notify_env(smtp: SmtpSink, webhook: WebhookSink | None = None) -> dict[str, str]:
    env = {
        "DUEL_SMTP_HOST": "127.0.0.1",
        "DUEL_SMTP_PORT": str(smtp.port),
        "DUEL_SMTP_STARTTLS": "false",
        "DUEL_NOTIFY_FROM": "duel@example.test",
        "DUEL_NOTIFY_TO": "ops@example.test, data@example.test",
    }
    if webhook:
        env["DUEL_NOTIFY_WEBHOOK"] = webhook.url
    return env


def sink_settings(
    settings: Settings, smtp: SmtpSink | None = None, webhook: WebhookSink | None = None
) -> Settings:
    overrides: dict[str, Any] = {
        "notify_from": "duel@example.test",
        "notify_to": ("ops@example.test",),
    }
    if smtp:
        overrides.update(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)
    if webhook:
        overrides["notify_webhook"] = webhook.url
    return settings.with_overrides(**overrides)


def text_of(message: EmailMessage) -> str:
    """The plain-text body, with the wire's CRLF line ends made LF."""
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


def failure_body(step: str, error: str) -> str:
    return (
        f"The duel pipeline FAILED (duel {__version__}).\n\nStep:  {step}\nError: {error}\n\n"
        "Fix the cause and run `duel run` again; running the step alone (e.g. `duel transform`)\n"
        "shows its full output.\n"
    )


def attachments(message: EmailMessage) -> dict[str, bytes]:
    return {
        part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()
    }  # type: ignore[misc]


# --- the library, against the sinks -----------------------------------------------------------


def test_deliver_is_off_when_nothing_is_configured(settings: Settings) -> None:
    assert deliver(settings, failure_message("ingest", "boom")) == Delivery(
        email="off", webhook="off"
    )


def test_notify_failure_reaches_smtp_and_webhook(
    settings: Settings, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    result = notify_failure(
        sink_settings(settings, smtp_sink, webhook_sink),
        "transform",
        "transform failed: dbt build failed\nsecond line is dropped",
    )
    assert result == Delivery(email="sent", webhook="sent")
    assert smtp_sink.envelopes == [("duel@example.test", ["ops@example.test"])]
    mail = smtp_sink.messages[0]
    assert (mail["Subject"], mail["From"], mail["To"]) == (
        "duel run FAILED at step transform",
        "duel@example.test",
        "ops@example.test",
    )
    assert text_of(mail) == failure_body("transform", "transform failed: dbt build failed")
    assert webhook_sink.requests == [
        (
            "/hooks/duel",
            "application/json",
            {
                "text": ":x: duel run FAILED at step transform: transform failed: dbt build failed",
                "duel": {
                    "status": "failed",
                    "step": "transform",
                    "error": "transform failed: dbt build failed",
                },
            },
        )
    ]


def test_success_message_attaches_existing_files_only(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    summary = {
        "batch_id": 3,
        "files_read": 12,
        "files_seen": 12,
        "loaded": 10,
        "repaired": 1,
        "quarantined": 2,
        "skipped": 0,
        "unchanged": 0,
        "steps": {"ingest": 1.25},
    }
    message = success_message(summary, [report, tmp_path / "missing.html"])
    assert message.attachments == (report,)
    assert message.subject == "duel run succeeded: batch 3, 10 loaded, 2 quarantined"
    assert message.payload == {
        "text": ":white_check_mark: duel run succeeded: batch 3, 10 loaded, 2 quarantined",
        "duel": {"status": "success", "summary": summary},
    }


def test_success_message_counts_deletes_keyless_and_same_content_when_there_are_any() -> None:
    summary = {
        "batch_id": 4,
        "files_read": 1,
        "files_seen": 9,
        "loaded": 1,
        "repaired": 0,
        "quarantined": 0,
        "skipped": 0,
        "unchanged": 8,
        "deleted": 0,
        "keyless": 0,
        "steps": {},
    }
    lines = success_message(summary).body.splitlines()
    assert [line.split()[0] for line in lines[3:]] == [
        "files",
        "documents",
        "loaded",
        "unchanged",
        "quarantined",
        "skipped",
    ]
    body = success_message(summary | {"deleted": 2, "keyless": 1, "same_content": 7}).body
    assert body.splitlines()[3:] == [
        "  files read           1",
        "  documents            9",
        "  loaded               1  (repaired 0)",
        "  unchanged            8  (7 of them in other bytes: the same documents"
        " written otherwise)",
        "  quarantined          0",
        "  skipped              0",
        "  deleted              2  (a complete dump: current documents it did not hold)",
        "  keyless              1  (loaded with no usable key: identified by content)",
    ]


def test_deliver_logs_and_goes_on_when_channels_fail(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    broken = WebhookSink(status=500)
    broken.thread.start()
    try:
        closed_port = free_port()  # nothing listens there
        target = settings.with_overrides(
            smtp_host="127.0.0.1",
            smtp_port=closed_port,
            smtp_starttls=False,
            notify_to=("ops@example.test",),
            notify_webhook=broken.url,
        )
        result = deliver(target, failure_message("ingest", "boom"))
    finally:
        broken.server.shutdown()
        broken.server.server_close()
    assert result.email.startswith("failed: ConnectionRefusedError: ")
    assert result.webhook == "failed: HTTP 500 Internal Server Error"
    assert [r.getMessage() for r in caplog.records if r.name == "duel.notify"] == [
        f"notification: could not send email: {result.email.removeprefix('failed: ')}",
        "notification: could not send webhook: HTTP 500 Internal Server Error",
    ]


# --- `duel run`, end to end -------------------------------------------------------------------


@pytest.mark.slow
def test_run_success_mails_summary_with_report_attached(
    settings: Settings, real_slice: Path, smtp_sink: SmtpSink, webhook_sink: WebhookSink
) -> None:
    done = run_cli(
        settings, "run", str(real_slice), "--json", **notify_env(smtp_sink, webhook_sink)
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [len(smtp_sink.messages), len(webhook_sink.requests)] == [1, 1]
    mail = smtp_sink.messages[0]
    assert (
        mail["Subject"]
        == f"duel run succeeded: batch {summary['batch_id']}, {SLICE_FILES} loaded, 0 quarantined"
    )
    assert mail["To"] == "ops@example.test, data@example.test"
    body = text_of(mail)
    assert f"  files read   {SLICE_FILES:>9,}\n  documents    {SLICE_FILES:>9,}\n" in body
    assert f"  loaded       {SLICE_FILES:>9,}  (repaired {summary['repaired']:,})\n" in body
    assert [
        line.split()[0]
        for line in body.split("Steps (seconds)\n")[1].splitlines()
        if line.startswith("  ")
    ] == list(summary["steps"])
    report = settings.out_dir / "report.html"
    assert attachments(mail) == {"report.html": report.read_bytes()}
    assert webhook_sink.requests[0][2] == {
        "text": f":white_check_mark: {mail['Subject']}",
        "duel": {"status": "success", "summary": summary},
    }


@pytest.mark.slow
def test_run_failure_mails_the_failed_step(
    settings: Settings,
    real_slice: Path,
    smtp_sink: SmtpSink,
    webhook_sink: WebhookSink,
    tmp_path: Path,
) -> None:
    broken = tmp_path / "dbt"
    shutil.copytree(REPO / "dbt" / "duel", broken, ignore=shutil.ignore_patterns("target", "logs"))
    model = broken / "models" / "core" / "base.sql"
    model.write_text(model.read_text() + "\nthis is not sql\n")
    done = run_cli(
        settings,
        "run",
        str(real_slice),
        DUEL_DBT_PROJECT_DIR=str(broken),
        DBT_PROFILES_DIR=str(broken),
        **notify_env(smtp_sink, webhook_sink),
    )
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1].removeprefix("error: ")  # the CLI's one-line error
    mail = smtp_sink.messages[0]
    assert (len(smtp_sink.messages), mail["Subject"]) == (1, "duel run FAILED at step transform")
    assert text_of(mail) == failure_body("transform", error)
    assert attachments(mail) == {}
    assert webhook_sink.requests == [
        (
            "/hooks/duel",
            "application/json",
            {
                "text": f":x: duel run FAILED at step transform: {error}",
                "duel": {"status": "failed", "step": "transform", "error": error},
            },
        )
    ]


@pytest.mark.slow
def test_run_succeeds_when_notifications_cannot_be_sent(
    settings: Settings, real_slice: Path
) -> None:
    closed_port = free_port()
    done = run_cli(
        settings,
        "run",
        str(real_slice),
        DUEL_SMTP_HOST="127.0.0.1",
        DUEL_SMTP_PORT=str(closed_port),
        DUEL_SMTP_STARTTLS="false",
        DUEL_NOTIFY_TO="ops@example.test",
    )
    assert done.returncode == 0, done.stderr
    assert "notification: could not send email: ConnectionRefusedError: " in done.stderr


def test_failed_step_is_the_first_stage_that_did_not_finish(tmp_path: Path) -> None:
    from duel.exceptions import SourceError, StepFailed
    from duel.pipeline import StepResult, failed_step

    done = [StepResult("database", 0.1), StepResult("ingest", 0.2)]
    assert [
        failed_step(StepFailed("dbt build", "x"), done),
        failed_step(SourceError("no such path"), []),
        failed_step(
            RuntimeError("x"), [*done, StepResult("transform", 1), StepResult("report", 1)]
        ),
    ] == ["transform", "ingest", "export"]
