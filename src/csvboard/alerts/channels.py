"""Where alert messages go: a webhook (JSON over HTTP, with httpx) and mail (SMTP, with the
standard library's smtplib and email packages).

Each channel is built from the settings; its secret (the webhook's URL, the SMTP password) is
read from the settings or their ``*_FILE`` at each send and never leaves this module: an
error names what failed (a time-out, an HTTP status, the server's refusal) but never the URL
or the password, because errors are stored (``alert_deliveries.last_error``) and logged.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from csvboard.alerts.models import Channel
from csvboard.settings import Settings


class DeliveryError(Exception):
    """A message did not get through; the text is safe to store and show."""


@dataclass(frozen=True)
class Message:
    """One message about one problem: ``event`` is ``opened`` or ``cleared``."""

    problem_key: str
    kind: str
    event: str
    subject: str
    body: str
    occurred_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    link: str | None = None

    def as_json(self) -> dict[str, Any]:
        # ``text`` is what Slack-style incoming webhooks (Slack, Mattermost, Rocket.Chat) show.
        return {
            "text": f"{self.subject}\n{self.body}",
            "source": "csvboard",
            "event": self.event,
            "problem": self.problem_key,
            "kind": self.kind,
            "subject": self.subject,
            "body": self.body,
            "occurred_at": self.occurred_at.isoformat(),
            "details": self.details,
            "link": self.link,
        }


class Sender(Protocol):
    channel: Channel

    def send(self, message: Message) -> str | None:
        """Deliver ``message`` or raise :class:`DeliveryError`; a note on a message that went
        but not wholly (some recipients refused), else None."""
        ...


def _secret(value: SecretStr | None, path: Path | None, setting: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DeliveryError(
            f"cannot read CSVBOARD_{setting.upper()} ({path}): {exc.strerror or exc}"
        ) from None


class WebhookSender:
    channel = Channel.WEBHOOK

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, message: Message) -> str | None:
        s = self._settings
        url = _secret(s.alert_webhook_url, s.alert_webhook_url_file, "alert_webhook_url_file")
        if not url:
            raise DeliveryError("the webhook's URL is empty")
        try:
            response = httpx.post(
                url, json=message.as_json(), timeout=s.alert_timeout_seconds,
                follow_redirects=False,
            )  # fmt: skip
        except httpx.TimeoutException:
            raise DeliveryError(
                f"the webhook did not answer within {s.alert_timeout_seconds:g} s"
            ) from None
        except httpx.HTTPError as exc:
            # httpx's message may quote the URL, which is a secret: name the kind only.
            raise DeliveryError(
                f"the webhook could not be reached ({type(exc).__name__})"
            ) from None
        if not response.is_success:
            raise DeliveryError(f"the webhook answered HTTP {response.status_code}")
        return None


class MailSender:
    channel = Channel.MAIL

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, message: Message) -> str | None:
        s = self._settings
        host = s.alert_smtp_host
        if host is None:
            raise DeliveryError("no SMTP host is set")
        password = _secret(
            s.alert_smtp_password, s.alert_smtp_password_file, "alert_smtp_password_file"
        )
        mail = EmailMessage()
        mail["From"] = s.alert_mail_from
        mail["To"] = ", ".join(s.alert_mail_recipients)
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(message.occurred_at)
        mail["Message-ID"] = make_msgid(domain="csvboard")
        mail["X-Csvboard-Problem"] = message.problem_key
        mail.set_content(message.body + (f"\n\n{message.link}" if message.link else "") + "\n")
        timeout = s.alert_timeout_seconds
        refused: dict[str, tuple[int, bytes]] = {}
        try:
            if s.alert_smtp_security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, s.alert_smtp_port, timeout=timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(host, s.alert_smtp_port, timeout=timeout)
            with client:
                if s.alert_smtp_security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if s.alert_smtp_user:
                    client.login(s.alert_smtp_user, password or "")
                refused = client.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise DeliveryError(f"the mail server refused: {exc.smtp_code} {reply}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = ", ".join(f"{who}: {code}" for who, (code, _) in exc.recipients.items())
            raise DeliveryError(f"the mail server refused the recipients ({codes})") from None
        except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:
            raise DeliveryError(f"the mail server did not answer ({exc})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"the mail server could not be reached ({exc})") from None
        if refused:
            # Sent to the others: sending again would repeat it to them. Recorded and shown.
            codes = ", ".join(f"{who}: {code}" for who, (code, _) in refused.items())
            return f"sent, but the mail server refused some recipients ({codes})"
        return None


def configured_senders(settings: Settings) -> list[Sender]:
    """The channels the settings configure (none: alerts are recorded and shown only)."""
    senders: list[Sender] = []
    if settings.alert_webhook_url is not None or settings.alert_webhook_url_file is not None:
        senders.append(WebhookSender(settings))
    if settings.alert_smtp_host is not None:
        senders.append(MailSender(settings))
    return senders


__all__ = [
    "DeliveryError", "MailSender", "Message", "Sender", "WebhookSender", "configured_senders",
]  # fmt: skip
