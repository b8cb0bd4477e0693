"""IMAP feeds against a real Dovecot on 127.0.0.1 (``tests/mail_server.py``).

Messages are delivered by IMAP APPEND as real MIME (``EmailMessage`` with CP932 and
UTF-8-with-BOM attachments); the scheduler's ``tick`` polls the feed, the harness executes the
runs, and a later tick settles the messages (processed / rejected folders).
"""

from __future__ import annotations

import hashlib
import imaplib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from starlette.responses import Response

from csvboard.api.health import get_health
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.db.engine import make_engine
from csvboard.feeds.imap_options import MailConfigError, parse_options, resolve_password
from csvboard.feeds.models import CsvDashboardFeedState, MailMessage
from csvboard.runs.models import IngestionEvent, IngestionRun, IngestionRunSource
from csvboard.settings import Settings
from csvboard.worker.scheduler import Scheduler
from mail_server import PASSWORD, USER, MailServer, start_dovecot
from support import SCHEDULE_HEADER, Api, Harness, schedule_line

PASSWORD_ENV = "CSVBOARD_TEST_IMAP_PASSWORD"
PLANNER = "planner@example.test"
SUBJECT = "生産計画 export"


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _dovecot() -> Iterator[MailServer]:
    server = start_dovecot()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mail(_dovecot: MailServer, monkeypatch: pytest.MonkeyPatch) -> MailServer:
    """The session's Dovecot, running, with an empty INBOX and no other folder."""
    _dovecot.start()
    _dovecot.reset()
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return _dovecot


@pytest.fixture
def dashboard(harness: Harness) -> CsvDashboard:
    return harness.dashboard("mailboard")


class AlwaysLeader:
    """Leadership that every scheduler holds: two leaders at once, as during a failover."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


@pytest.fixture
def new_scheduler(harness: Harness) -> Iterator[Callable[..., Scheduler]]:
    made: list[tuple[Scheduler, Engine]] = []

    def make(
        name: str = "s1", *, settings: Settings | None = None, leader: bool = False
    ) -> Scheduler:
        engine = make_engine(harness.url)
        scheduler = Scheduler(
            engine,
            settings or harness.settings,
            scheduler_id=name,
            poll_seconds=0.05,
            settle_seconds=0.0,
            read_timeout=5.0,
        )
        if leader:
            scheduler.leadership = AlwaysLeader()
        made.append((scheduler, engine))
        return scheduler

    yield make
    for scheduler, engine in made:
        scheduler.close()
        engine.dispose()


def imap_options(server: MailServer, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "tls": "none",
        "user": USER,
        "password_env": PASSWORD_ENV,
        "folder": "INBOX",
        "processed_folder": "Processed",
        "rejected_folder": "Rejected",
        "subject_pattern": "生産計画|schedule",
        "allowed_senders": [PLANNER, "@factory.example"],
        "poll_seconds": 0,
    }
    options.update(overrides)
    return options


def add_imap_feed(
    harness: Harness, dashboard: CsvDashboard, server: MailServer, **overrides: Any
) -> uuid.UUID:
    options = parse_options(imap_options(server, **overrides))
    feed_id = uuid.uuid4()
    now = datetime.now(UTC)
    with harness.write() as session:
        session.add(
            CsvDashboardFeed(
                id=feed_id,
                csv_dashboard_id=dashboard.id,
                name="mail",
                role="official",
                source="imap",
                location=options.display_location(),
                options=options.model_dump(mode="json", exclude_none=True),
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
    return feed_id


def csv_bytes(seiban: str, rows: int = 2, *, bom: bool = False) -> bytes:
    lines = [SCHEDULE_HEADER] + [
        schedule_line(1000 + i, seiban, f"P{i:03d}", i + 1) for i in range(rows)
    ]
    text = "\r\n".join(lines) + "\r\n"
    return b"\xef\xbb\xbf" + text.encode("utf-8") if bom else text.encode("cp932")


def message(
    attachment: bytes | None,
    *,
    sender: str = PLANNER,
    subject: str = SUBJECT,
    filename: str = "schedule.csv",
    message_id: str | None = None,
    date: datetime | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Planner <{sender}>"
    msg["To"] = USER
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="example.test")
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg.set_content("本日の生産計画を添付します。")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="text", subtype="csv", filename=filename)
    return msg.as_bytes()


def deliver(server: MailServer, *raws: bytes) -> None:
    client = server.connect()
    try:
        for raw in raws:
            typ, _ = client.append("INBOX", None, imaplib.Time2Internaldate(time.time()), raw)
            assert typ == "OK"
    finally:
        client.logout()


def folder(server: MailServer, name: str) -> list[tuple[str, bool]]:
    """``(Message-ID, seen)`` of each message in a folder (empty if it does not exist)."""
    client = server.connect()
    try:
        typ, count = client.select(f'"{name}"', readonly=True)
        if typ != "OK" or not count or int(count[0] or 0) == 0:
            return []
        _, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        found = []
        for item in data or []:
            if isinstance(item, tuple):
                seen = b"\\Seen" in item[0]
                mid = item[1].decode().split(":", 1)[1].strip()
                found.append((mid, seen))
        return found
    finally:
        client.logout()


def runs(harness: Harness) -> list[IngestionRun]:
    with harness.read() as session:
        return list(session.scalars(select(IngestionRun).order_by(IngestionRun.created_at)))


def source_of(harness: Harness, run_id: uuid.UUID) -> IngestionRunSource:
    with harness.read() as session:
        src = session.scalar(select(IngestionRunSource).where(IngestionRunSource.run_id == run_id))
        assert src is not None
        return src


def events(harness: Harness, run_id: uuid.UUID) -> list[IngestionEvent]:
    with harness.read() as session:
        return list(
            session.scalars(
                select(IngestionEvent)
                .where(IngestionEvent.run_id == run_id)
                .order_by(IngestionEvent.id)
            )
        )


def feed_state(harness: Harness, feed_id: uuid.UUID) -> CsvDashboardFeedState:
    with harness.read() as session:
        state = session.get(CsvDashboardFeedState, feed_id)
        assert state is not None
        return state


def health(harness: Harness) -> dict[str, Any]:
    response = Response()
    result = get_health(harness.engine, response)
    return result.model_dump()


# --- options ------------------------------------------------------------------------------


def test_options_never_hold_a_password_and_plain_text_only_on_loopback(tmp_path: Path) -> None:
    base = {"host": "127.0.0.1", "tls": "none", "user": "u", "password_env": "X"}
    assert parse_options(base).effective_port == 143
    with pytest.raises(MailConfigError, match="must not contain the password"):
        parse_options({**base, "password": "hunter2"})
    with pytest.raises(MailConfigError, match=r"only for 127\.0\.0\.1 or localhost"):
        parse_options({**base, "host": "mail.example.com"})
    with pytest.raises(MailConfigError, match="exactly one of password_env or password_file"):
        parse_options({"host": "h", "user": "u"})
    with pytest.raises(MailConfigError, match="subject_pattern"):
        parse_options({**base, "subject_pattern": "("})
    implicit = parse_options({**base, "host": "mail.example.com", "tls": "implicit"})
    assert implicit.effective_port == 993
    secret = tmp_path / "imap.pass"
    secret.write_text("from-a-file\n")
    opts = parse_options({**base, "password_env": None, "password_file": str(secret)})
    assert resolve_password(opts) == "from-a-file"
    with pytest.raises(MailConfigError, match="is not set"):
        resolve_password(parse_options({**base, "password_env": "CSVBOARD_NO_SUCH_VAR"}))


def test_feed_api_validates_options_and_shows_state(
    sqlite_url: str, tmp_path: Path, mail: MailServer
) -> None:
    api = Api(sqlite_url, tmp_path / "data", run_executor=False)
    try:
        api.harness.dashboard("mailboard")
        url = "/api/v1/dashboards/mailboard/feeds"
        body = {"name": "mail", "role": "official", "source": "imap"}
        bad = api.post(url, json={**body, "options": {**imap_options(mail), "password": "x"}})
        assert bad.status_code == 400 and "password" in bad.json()["detail"]
        remote = api.post(
            url, json={**body, "options": imap_options(mail, host="mail.example.com")}
        )
        assert remote.status_code == 400
        assert api.post(url, json={**body}).status_code == 400  # options required
        created = api.post(url, json={**body, "options": imap_options(mail)})
        assert created.status_code == 201, created.text
        doc = created.json()
        assert doc["location"] == f"imap://{USER}@127.0.0.1:{mail.port}/INBOX"
        assert "password" not in doc["options"] and doc["options"]["password_env"] == PASSWORD_ENV
        patched = api.patch(f"{url}/{doc['id']}", json={"options": {"password": "x"}})
        assert patched.status_code == 400
        deliver(mail, message(csv_bytes("A0000001")))
        scheduler = Scheduler(
            api.harness.engine, api.settings, scheduler_id="api", read_timeout=5.0
        )
        try:
            report = scheduler.tick()
        finally:
            scheduler.close()
        assert len(report.run_ids) == 1
        (feed,) = [f for f in api.get(url).json()["items"] if f["source"] == "imap"]
        assert feed["state"]["last_run_id"] == str(report.run_ids[0])
        assert feed["state"]["last_error"] is None
        assert feed["state"]["last_polled_at"] and feed["state"]["last_success_at"]
        assert "queued 1 run" in feed["state"]["last_message"]
    finally:
        api.close()


# --- the life cycle of a message ----------------------------------------------------------


def test_each_message_becomes_one_run_then_is_processed(
    harness: Harness,
    dashboard: CsvDashboard,
    mail: MailServer,
    new_scheduler: Callable[..., Scheduler],
) -> None:
    feed_id = add_imap_feed(harness, dashboard, mail)
    now = datetime.now(UTC)
    cp932 = csv_bytes("A0000001")
    bom = csv_bytes("B0000002", bom=True)
    first = message(cp932, filename="生産計画.csv", date=now - timedelta(minutes=5))
    second = message(bom, sender="Export@Factory.Example", date=now - timedelta(minutes=1))
    deliver(mail, second, first)  # delivered newest first: ingested oldest first
    scheduler = new_scheduler()

    report = scheduler.tick()
    assert len(report.run_ids) == 2
    created = runs(harness)
    assert [r.run_id for r in created] == report.run_ids
    assert all(r.mode == "scheduled" and r.status == "queued" for r in created)
    assert [r.requested_by for r in created] == [f"mail:{PLANNER}", "mail:export@factory.example"]
    src = source_of(harness, created[0].run_id)
    assert src.file_name == "生産計画.csv"
    assert src.sha256 == hashlib.sha256(cp932).hexdigest() and src.size_bytes == len(cp932)
    assert src.message_id is not None and src.message_id.startswith("<")
    assert source_of(harness, created[1].run_id).sha256 == hashlib.sha256(bom).hexdigest()
    # Claimed but not settled: still unread in INBOX; a second tick takes nothing new.
    assert [seen for _, seen in folder(mail, "INBOX")] == [False, False]
    assert scheduler.tick().run_ids == []

    for run in created:
        assert harness.run(run.run_id).status == "succeeded"
    scheduler.tick()
    assert folder(mail, "INBOX") == []
    processed = folder(mail, "Processed")
    assert len(processed) == 2 and all(seen for _, seen in processed)
    assert any(e.event_type == "mail_processed" for e in events(harness, created[0].run_id))
    state = feed_state(harness, feed_id)
    assert state.last_error is None and state.last_success_at is not None
    assert state.last_run_id == created[1].run_id
    assert PASSWORD not in (state.last_message or "")
    with harness.read() as session:
        assert {m.state for m in session.scalars(select(MailMessage))} == {"processed"}


def test_unacceptable_messages_go_to_rejected_with_the_reason(
    harness: Harness,
    dashboard: CsvDashboard,
    mail: MailServer,
    new_scheduler: Callable[..., Scheduler],
) -> None:
    feed_id = add_imap_feed(harness, dashboard, mail)
    mismatch = message(b"ProductNo,Nothing\r\n1,2\r\n", message_id="<bad@x>")
    no_attachment = message(None, message_id="<none@x>")
    too_large = message(csv_bytes("C0000003", rows=40), message_id="<big@x>")
    deliver(mail, mismatch, no_attachment, too_large)
    settings = harness.settings.model_copy(update={"max_upload_bytes": 2000})
    scheduler = new_scheduler(settings=settings)

    report = scheduler.tick()
    assert len(report.run_ids) == 1  # only the header mismatch has a file to run
    rejected_now = {mid for mid, _ in folder(mail, "Rejected")}
    assert rejected_now == {"<none@x>", "<big@x>"}
    state = feed_state(harness, feed_id)
    assert "no CSV attachment" in (state.last_message or "")
    assert "over the limit" in (state.last_message or "")

    outcome = harness.run(report.run_ids[0])
    assert outcome.status == "failed"
    scheduler.tick()
    assert {mid for mid, _ in folder(mail, "Rejected")} == {"<none@x>", "<big@x>", "<bad@x>"}
    assert folder(mail, "INBOX") == []
    rejected = [e for e in events(harness, report.run_ids[0]) if e.event_type == "mail_rejected"]
    assert len(rejected) == 1 and rejected[0].event_status == "warn"
    assert "HEADER_MISMATCH" in (rejected[0].message or "")
    # Never retried: further ticks create nothing.
    assert scheduler.tick().run_ids == []
    assert len(runs(harness)) == 1


def test_other_senders_and_subjects_are_left_unread(
    harness: Harness,
    dashboard: CsvDashboard,
    mail: MailServer,
    new_scheduler: Callable[..., Scheduler],
) -> None:
    add_imap_feed(harness, dashboard, mail)
    deliver(
        mail,
        message(csv_bytes("D0000004"), sender="stranger@example.org"),
        message(csv_bytes("D0000004"), subject="lunch menu"),
    )
    report = new_scheduler().tick()
    assert report.run_ids == [] and runs(harness) == []
    assert [seen for _, seen in folder(mail, "INBOX")] == [False, False]
    assert "2 message(s) not matching" in (report.feeds[0].message or "")


def test_a_message_id_is_ingested_once(
    harness: Harness,
    dashboard: CsvDashboard,
    mail: MailServer,
    new_scheduler: Callable[..., Scheduler],
) -> None:
    add_imap_feed(harness, dashboard, mail)
    raw = message(csv_bytes("E0000005"), message_id="<same@x>")
    deliver(mail, raw, raw)
    scheduler = new_scheduler()
    report = scheduler.tick()
    assert len(report.run_ids) == 1
    assert harness.run(report.run_ids[0]).status == "succeeded"
    scheduler.tick()
    deliver(mail, raw)  # delivered again after it was ingested
    assert scheduler.tick().run_ids == []
    assert len(runs(harness)) == 1
    assert folder(mail, "INBOX") == []
    assert [mid for mid, _ in folder(mail, "Processed")] == ["<same@x>"] * 3


def test_two_schedulers_claim_each_message_once(
    harness: Harness,
    dashboard: CsvDashboard,
    mail: MailServer,
    new_scheduler: Callable[..., Scheduler],
) -> None:
    add_imap_feed(harness, dashboard, mail)
    deliver(mail, *(message(csv_bytes(f"F{i:07d}"), message_id=f"<m{i}@x>") for i in range(10)))
    schedulers = [new_scheduler("a", leader=True), new_scheduler("b", leader=True)]
    barrier = threading.Barrier(2)
    taken: list[list[uuid.UUID]] = [[], []]
    errors: list[BaseException] = []

    def loop(index: int) -> None:
        try:
            for _ in range(3):
                barrier.wait(10)
                taken[index].extend(schedulers[index].tick().run_ids)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    all_runs = runs(harness)
    assert len(all_runs) == 10 and len(taken[0]) + len(taken[1]) == 10
    ids = [source_of(harness, r.run_id).message_id for r in all_runs]
    assert sorted(ids) == sorted(f"<m{i}@x>" for i in range(10))


def test_server_down_records_the_error_then_recovers(
    harness: Harness,
    dashboard: CsvDashboard,
    mail: MailServer,
    new_scheduler: Callable[..., Scheduler],
) -> None:
    feed_id = add_imap_feed(harness, dashboard, mail)
    scheduler = new_scheduler()
    scheduler.tick()
    assert feed_state(harness, feed_id).last_success_at is not None
    deliver(mail, message(csv_bytes("G0000007"), message_id="<late@x>"))
    mail.stop()
    try:
        report = scheduler.tick()
        assert report.run_ids == [] and runs(harness) == []
        state = feed_state(harness, feed_id)
        assert state.last_error is not None and "cannot connect" in state.last_error
        assert PASSWORD not in state.last_error
        assert health(harness)["checks"]["mail_feeds"] == "ok"  # not persistent yet
        with harness.write() as session:
            session.execute(
                update(CsvDashboardFeedState)
                .where(CsvDashboardFeedState.feed_id == feed_id)
                .values(last_success_at=datetime.now(UTC) - timedelta(minutes=10))
            )
        doc = health(harness)
        assert doc["status"] == "degraded" and "mailboard/mail" in doc["checks"]["mail_feeds"]
    finally:
        mail.start()
    report = scheduler.tick()
    assert len(report.run_ids) == 1
    assert source_of(harness, report.run_ids[0]).message_id == "<late@x>"
    assert feed_state(harness, feed_id).last_error is None
    assert health(harness)["checks"]["mail_feeds"] == "ok"


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_tls_verifies_the_server_certificate(
    harness: Harness,
    dashboard: CsvDashboard,
    mail: MailServer,
    new_scheduler: Callable[..., Scheduler],
    tls: str,
) -> None:
    port = mail.tls_port if tls == "implicit" else mail.port
    # Without the CA the self-signed certificate is refused: no run, the error is shown.
    feed_id = add_imap_feed(harness, dashboard, mail, tls=tls, port=port)
    deliver(mail, message(csv_bytes("J0000009"), message_id="<tls@x>"))
    scheduler = new_scheduler()
    assert scheduler.tick().run_ids == []
    assert "CERTIFICATE_VERIFY_FAILED" in (feed_state(harness, feed_id).last_error or "")
    with harness.write() as session:
        feed = session.get(CsvDashboardFeed, feed_id)
        assert feed is not None and feed.options is not None
        feed.options = {**feed.options, "ca_file": str(mail.cert)}
    report = scheduler.tick()
    assert len(report.run_ids) == 1
    assert feed_state(harness, feed_id).last_error is None


def test_wrong_password_is_an_error_without_the_password(
    harness: Harness,
    dashboard: CsvDashboard,
    mail: MailServer,
    new_scheduler: Callable[..., Scheduler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed_id = add_imap_feed(harness, dashboard, mail)
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password-123")
    deliver(mail, message(csv_bytes("H0000008")))
    assert new_scheduler().tick().run_ids == []
    error = feed_state(harness, feed_id).last_error or ""
    assert "login refused" in error and "wrong-password-123" not in error


def test_a_burst_is_ingested_oldest_first(
    sqlite_url: str,
    tmp_path: Path,
    mail: MailServer,
) -> None:
    harness = Harness(sqlite_url, tmp_path / "data")
    try:
        board = harness.dashboard("mailboard")
        add_imap_feed(harness, board, mail)
        start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
        order = list(range(30))
        random.Random(7).shuffle(order)
        deliver(
            mail,
            *(
                message(
                    csv_bytes(f"K{i:07d}"),
                    message_id=f"<burst{i:02d}@x>",
                    date=start + timedelta(minutes=i),
                )
                for i in order
            ),
        )
        scheduler = Scheduler(
            harness.engine, harness.settings, scheduler_id="burst", read_timeout=5.0
        )
        try:
            report = scheduler.tick()
            ids = [source_of(harness, r).message_id for r in report.run_ids]
            assert ids == [f"<burst{i:02d}@x>" for i in range(30)]
            assert [r.run_id for r in runs(harness)] == report.run_ids
            for run_id in report.run_ids:
                assert harness.run(run_id).status == "succeeded"
            scheduler.tick()
            assert folder(mail, "INBOX") == [] and len(folder(mail, "Processed")) == 30
        finally:
            scheduler.close()
    finally:
        harness.close()


def test_migration_keeps_feed_children_on_sqlite(tmp_path: Path) -> None:
    """0003 rebuilds csv_dashboard_feeds on SQLite: the feeds' children must survive it."""
    import sqlite3

    from alembic import command

    from csvboard.db.migrate import alembic_config, upgrade_database

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    engine.dispose()
    db = sqlite3.connect(tmp_path / "old.db")
    board, feed = uuid.uuid4().hex, uuid.uuid4().hex
    db.execute(
        "INSERT INTO csv_dashboards (id, slug, name, kind, ingest_mode, columns, key_columns,"
        " version_columns, options) VALUES (?, 'b', 'b', 'generic', 'DEDUP', '[]', '[]', '[]',"
        " '{}')",
        (board,),
    )
    db.execute(
        "INSERT INTO csv_dashboard_feeds (id, csv_dashboard_id, name, role, source)"
        " VALUES (?, ?, 'up', 'official', 'upload')",
        (feed, board),
    )
    db.execute(
        "INSERT INTO csv_dashboard_feed_state (feed_id, last_message) VALUES (?, 'kept')",
        (feed,),
    )
    db.commit()
    db.close()
    upgrade_database(url)
    db = sqlite3.connect(tmp_path / "old.db")
    try:
        assert db.execute("SELECT last_message FROM csv_dashboard_feed_state").fetchall() == [
            ("kept",)
        ]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        db.close()
