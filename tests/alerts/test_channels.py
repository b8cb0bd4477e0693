"""The real channels against servers on loopback (csvboard/alerts/channels.py): a webhook
server (http.server) that answers, fails or hangs, and an SMTP server (aiosmtpd) that
accepts, asks for a login or refuses. Through an evaluation, on both engines: a webhook that
hangs times out, is recorded and tried again; a refusing mail server does not stop the
webhook. No secret appears in an error."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr
from sqlalchemy import select

from csvboard.alerts import evaluate, send_test
from csvboard.alerts.channels import DeliveryError, MailSender, Message, WebhookSender
from csvboard.alerts.models import AlertDelivery
from csvboard.alerts.service import back_off
from csvboard.clock import utcnow
from csvboard.settings import Settings
from support import Harness, failed_run, free_port


@dataclass
class Hook:
    """A webhook server: ``mode`` is ok, fail (HTTP 500) or hang (answers when released)."""

    url: str
    mode: str = "ok"
    received: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    hits: int = 0


@pytest.fixture
def hook() -> Iterator[Hook]:
    state: Hook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.hits += 1
            if state.mode == "hang":
                state.release.wait(30)
                code = 200
            elif state.mode == "fail":
                code = 500
            else:
                state.received.append(json.loads(body))
                code = 204
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Hook(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/T0-s3cr3t")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    port: int
    mode: str = "ok"  # ok, or refuse (554 at DATA)
    received: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refuse_rcpt: set[str] = field(default_factory=set)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.box.refuse_rcpt:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.box.mode == "refuse":
            return "554 5.7.1 Message refused by policy"
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.box.received.append(message)
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)
        box.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=True)

    controller = Controller(
        _Handler(box), hostname="127.0.0.1", port=box.port, authenticator=authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    yield box
    controller.stop()


def message() -> Message:
    return Message(
        problem_key="queue-stuck", kind="queue_stuck", event="opened",
        subject="[csvboard] 取込待ちが進まない / no worker is taking runs", body="髙 ㈱ ①",
        occurred_at=utcnow(), details={"queued_since": "x"}, link="http://csvboard.local/admin",
    )  # fmt: skip


def settings(**values: Any) -> Settings:
    return Settings(alert_timeout_seconds=0.5, **values)


def test_the_webhook_gets_the_message_as_json(hook: Hook) -> None:
    WebhookSender(settings(alert_webhook_url=hook.url)).send(message())
    (doc,) = hook.received
    assert doc["problem"] == "queue-stuck" and doc["event"] == "opened"
    assert doc["text"].startswith("[csvboard] 取込待ちが進まない") and "髙 ㈱ ①" in doc["text"]
    assert doc["link"] == "http://csvboard.local/admin"


def test_webhook_failures_are_named_without_the_url(hook: Hook, tmp_path: Path) -> None:
    hook.mode = "fail"
    with pytest.raises(DeliveryError, match="answered HTTP 500") as caught:
        WebhookSender(settings(alert_webhook_url=hook.url)).send(message())
    assert "s3cr3t" not in str(caught.value)
    closed = f"http://127.0.0.1:{free_port()}/hooks/s3cr3t"
    with pytest.raises(DeliveryError, match="could not be reached") as caught:
        WebhookSender(settings(alert_webhook_url=closed)).send(message())
    assert "s3cr3t" not in str(caught.value)
    missing = tmp_path / "webhook-url"
    with pytest.raises(DeliveryError, match="CSVBOARD_ALERT_WEBHOOK_URL_FILE") as caught:
        WebhookSender(settings(alert_webhook_url_file=missing)).send(message())
    assert str(missing) in str(caught.value)
    hook.mode = "ok"
    missing.write_text(hook.url + "\n", encoding="utf-8")  # a mounted secret, newline and all
    WebhookSender(settings(alert_webhook_url_file=missing)).send(message())
    assert len(hook.received) == 1


def test_a_webhook_that_hangs_times_out_and_is_tried_again(harness: Harness, hook: Hook) -> None:
    hook.mode = "hang"
    h = harness
    config = h.settings.model_copy(
        update={"alert_webhook_url": SecretStr(hook.url), "alert_timeout_seconds": 0.5}
    )
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    h.queue(board, h.write_file(b"x\r\n"))  # waits: at ended + 11 min, no worker took it
    now = ended + timedelta(minutes=11)
    started = time.monotonic()
    report = evaluate(h.engine, config, now)
    assert time.monotonic() - started < 10  # the time-out, not the server, decides
    # two messages due, one time-out: the second is not tried through a channel just down
    assert report.sent == 0 and len(report.failed) == 2 and hook.hits == 1
    with h.read() as session:
        deliveries = session.scalars(select(AlertDelivery)).all()
    assert sorted(d.last_error or "" for d in deliveries) == [
        "not tried: webhook failed just before (the webhook did not answer within 0.5 s)",
        "the webhook did not answer within 0.5 s",
    ]
    assert {(d.attempts, d.next_attempt_at) for d in deliveries} == {(1, now + back_off(1))}
    hook.mode = "ok"
    assert evaluate(h.engine, config, now + back_off(1)).sent == 2
    assert sorted(doc["kind"] for doc in hook.received) == ["queue_stuck", "run_failed"]
    assert evaluate(h.engine, config, now + back_off(5)).sent == 0  # told once


def test_mail_goes_out_with_a_login_from_a_file(mailbox: Mailbox, tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("mail-pw\n", encoding="utf-8")
    sender = MailSender(
        settings(
            alert_smtp_host="127.0.0.1", alert_smtp_port=mailbox.port,
            alert_smtp_security="none", alert_smtp_user="csvboard",
            alert_smtp_password_file=secret, alert_mail_to="admin@factory.example, b@f.example",
        )
    )  # fmt: skip
    sender.send(message())
    assert mailbox.logins == [("csvboard", "mail-pw")]
    (mail,) = mailbox.received
    assert mail["Subject"] == message().subject
    assert mail["To"] == "admin@factory.example, b@f.example"
    assert mail["X-Csvboard-Problem"] == "queue-stuck"
    body = mail.get_body()
    assert body is not None and "髙 ㈱ ①" in body.get_content()
    secret.write_text("mail-pw-2\n", encoding="utf-8")  # rotated: read again at each send
    sender.send(message())
    assert mailbox.logins[-1] == ("csvboard", "mail-pw-2")


def test_mail_server_failures_are_named(mailbox: Mailbox) -> None:
    base = {"alert_smtp_host": "127.0.0.1", "alert_mail_to": "admin@factory.example"}
    mailbox.mode = "refuse"
    with pytest.raises(DeliveryError, match=r"refused: 554 5\.7\.1 Message refused by policy"):
        MailSender(settings(**base, alert_smtp_port=mailbox.port, alert_smtp_security="none")).send(
            message()
        )
    with pytest.raises(DeliveryError, match=r"(?i)starttls"):  # the default wants STARTTLS
        MailSender(settings(**base, alert_smtp_port=mailbox.port)).send(message())
    with pytest.raises(DeliveryError, match="could not be reached"):
        MailSender(settings(**base, alert_smtp_port=free_port(), alert_smtp_security="none")).send(
            message()
        )


def test_mail_refused_for_some_recipients_went_to_the_others(mailbox: Mailbox) -> None:
    mailbox.refuse_rcpt = {"gone@factory.example"}
    note = MailSender(
        settings(
            alert_smtp_host="127.0.0.1", alert_smtp_port=mailbox.port,
            alert_smtp_security="none", alert_mail_to="admin@factory.example, gone@factory.example",
        )
    ).send(message())  # fmt: skip
    assert note == "sent, but the mail server refused some recipients (gone@factory.example: 550)"
    assert len(mailbox.received) == 1


def test_a_refusing_mail_server_does_not_stop_the_webhook(
    harness: Harness, hook: Hook, mailbox: Mailbox
) -> None:
    mailbox.mode = "refuse"
    h = harness
    config = h.settings.model_copy(
        update={
            "alert_webhook_url": SecretStr(hook.url), "alert_smtp_host": "127.0.0.1",
            "alert_smtp_port": mailbox.port, "alert_smtp_security": "none",
            "alert_mail_to": "admin@factory.example", "alert_timeout_seconds": 2.0,
        }
    )  # fmt: skip
    _, ended = failed_run(h, h.dashboard(), "HEADER_MISMATCH")
    report = evaluate(h.engine, config, ended)
    assert report.sent == 1 and len(hook.received) == 1
    assert len(report.failed) == 1 and "refused: 554" in report.failed[0]
    mailbox.mode = "ok"
    assert evaluate(h.engine, config, ended + back_off(1)).sent == 1
    assert len(hook.received) == 1 and len(mailbox.received) == 1  # the webhook not twice


def test_a_test_message_reports_each_channel(hook: Hook, mailbox: Mailbox) -> None:
    config = settings(
        alert_webhook_url=hook.url, alert_smtp_host="127.0.0.1", alert_smtp_port=mailbox.port,
        alert_smtp_security="none", alert_mail_to="admin@factory.example",
    )  # fmt: skip
    assert send_test(config, utcnow()) == {"webhook": None, "mail": None}
    mailbox.mode = "refuse"
    results = send_test(config, utcnow())
    assert results["webhook"] is None and "refused: 554" in (results["mail"] or "")
    assert send_test(Settings(), utcnow()) == {}


@pytest.mark.parametrize(
    ("values", "message_part"),
    [
        ({"alert_webhook_url": "http://a", "alert_webhook_url_file": "/run/x"}, "not both"),
        ({"alert_smtp_password": "p", "alert_smtp_password_file": "/run/x"}, "not both"),
        ({"alert_smtp_host": "mail.example"}, "alert_mail_to"),
        ({"alert_smtp_security": "ssl"}, "alert_smtp_security"),
        ({"alert_timeout_seconds": "0"}, "alert_timeout_seconds"),
    ],
)
def test_settings_that_do_not_hold_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], message_part: str
) -> None:
    from pydantic import ValidationError

    for name, value in values.items():
        monkeypatch.setenv(f"CSVBOARD_{name.upper()}", value)
    with pytest.raises(ValidationError, match=message_part):
        Settings.from_env()
