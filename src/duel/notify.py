"""Notifications: an email (SMTP) and/or a Slack-compatible JSON webhook when a run ends.

Both channels are off until configured (`DUEL_SMTP_HOST` + `DUEL_NOTIFY_TO`, `DUEL_NOTIFY_WEBHOOK`);
secrets come only from the settings. Sending never fails the run: a channel that cannot deliver
is reported in one line on stderr (logger `duel.notify`) and in the returned `Delivery`.

    notify_success(settings, summary, attachments=[out / "report.html"])
    notify_failure(settings, step="transform", error="dbt build failed: ...")
"""

from __future__ import annotations

import json
import logging
import mimetypes
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from duel import __version__
from duel.settings import Settings

log = logging.getLogger("duel.notify")
TIMEOUT_S = 15
SMTPS_PORT = 465  # implicit TLS; every other port speaks plain SMTP, upgraded when smtp_starttls


@dataclass(frozen=True)
class Message:
    """One notification, rendered once and sent over every configured channel."""

    subject: str
    body: str
    payload: dict[
        str, Any
    ]  # the webhook JSON (Slack's `text` plus a machine-readable `duel` object)
    attachments: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """What was sent: each channel is 'sent', 'off' (not configured) or 'failed: <reason>'."""

    email: str
    webhook: str


def _templates() -> Environment:
    # plain-text mail bodies and a JSON payload: nothing is rendered as HTML, so no escaping
    return Environment(
        loader=PackageLoader("duel", "templates"),
        autoescape=False,  # noqa: S701
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def success_message(summary: Mapping[str, Any], attachments: Iterable[Path] = ()) -> Message:
    """The message for a completed run; `summary` is `RunOutcome.summary()` (counts, step
    seconds)."""
    files = tuple(path for path in attachments if path.is_file())
    body = (
        _templates()
        .get_template("notify_success.txt.j2")
        .render(summary=summary, attachments=[path.name for path in files], version=__version__)
    )
    batch = summary.get("batch_id")
    subject = (
        f"duel run succeeded: batch {batch}, {summary.get('loaded', 0):,} loaded, "
        f"{summary.get('quarantined', 0):,} quarantined"
    )
    payload = {
        "text": f":white_check_mark: {subject}",
        "duel": {"status": "success", "summary": dict(summary)},
    }
    return Message(subject, body, payload, files)


def failure_message(step: str, error: str) -> Message:
    """The message for a failed run: the step that failed and its one-line error."""
    line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    body = (
        _templates()
        .get_template("notify_failure.txt.j2")
        .render(step=step, error=line, version=__version__)
    )
    subject = f"duel run FAILED at step {step}"
    payload = {
        "text": f":x: {subject}: {line}",
        "duel": {"status": "failed", "step": step, "error": line},
    }
    return Message(subject, body, payload)


def email_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host and settings.notify_to)


def _build_email(settings: Settings, message: Message) -> EmailMessage:
    mail = EmailMessage()
    sender = settings.notify_from or f"duel@{socket.getfqdn() or 'localhost'}"
    mail["From"] = sender
    mail["To"] = ", ".join(settings.notify_to)
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail.set_content(message.body)
    for path in message.attachments:
        kind, _ = mimetypes.guess_type(path.name)
        maintype, subtype = (kind or "application/octet-stream").split("/", 1)
        mail.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return mail


def send_email(settings: Settings, message: Message) -> None:
    """Send over SMTP (implicit TLS on 465, else STARTTLS when smtp_starttls); raises on failure."""
    if not settings.smtp_host:
        raise ValueError("DUEL_SMTP_HOST is not set")
    mail = _build_email(settings, message)
    context = ssl.create_default_context()
    if settings.smtp_port == SMTPS_PORT:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_S, context=context
        )
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_S)
    with client:
        if settings.smtp_port != SMTPS_PORT and settings.smtp_starttls:
            client.starttls(context=context)
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password or "")
        client.send_message(mail)


def post_webhook(settings: Settings, message: Message) -> None:
    """POST the JSON payload to the webhook (Slack incoming-webhook compatible); raises on
    failure."""
    if not settings.notify_webhook:
        raise ValueError("DUEL_NOTIFY_WEBHOOK is not set")
    if not settings.notify_webhook.startswith(("https://", "http://")):
        raise ValueError("DUEL_NOTIFY_WEBHOOK must be an http(s) URL")
    data = json.dumps(message.payload, default=str).encode()
    # the scheme is checked above: http(s) only
    request = urllib.request.Request(  # noqa: S310
        settings.notify_webhook,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"duel/{__version__}"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310  idem
        response.read()


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def deliver(settings: Settings, message: Message) -> Delivery:
    """Send `message` on every configured channel; never raises, logs each failure in one line."""
    states = {"email": "off", "webhook": "off"}
    if settings.smtp_host and not settings.notify_to:
        log.warning(
            "notification: DUEL_SMTP_HOST is set but DUEL_NOTIFY_TO is empty; no email sent"
        )
    channels = {
        "email": (email_configured(settings), send_email),
        "webhook": (bool(settings.notify_webhook), post_webhook),
    }
    for name, (configured, send) in channels.items():
        if not configured:
            continue
        try:
            send(settings, message)
        except Exception as error:
            states[name] = f"failed: {_reason(error)}"
            log.warning("notification: could not send %s: %s", name, _reason(error))
        else:
            states[name] = "sent"
    return Delivery(**states)


def notify_success(
    settings: Settings, summary: Mapping[str, Any], attachments: Iterable[Path] = ()
) -> Delivery:
    """Announce a completed run (summary in the body, `attachments` attached to the email)."""
    return deliver(settings, success_message(summary, attachments))


def notify_failure(settings: Settings, step: str, error: str) -> Delivery:
    """Announce a failed run: the step and its one-line error."""
    return deliver(settings, failure_message(step, error))
