"""Alerts on both engines, with time moved by the test (csvboard/alerts): each problem — a failed
run, exhausted re-runs, an overdue feed, a failing mail feed, a silent worker, a stuck queue —
is told once, again only after it has cleared, and its clearing is told to the channels that
were told it opened. Channels here record what they are given; the real webhook and SMTP
channels, and their failures, are tests/alerts/test_channels.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from csvboard.alerts import evaluate
from csvboard.alerts.channels import DeliveryError, Message
from csvboard.alerts.models import Alert, AlertDelivery, Channel
from csvboard.alerts.problems import RUN_LOOK_BACK
from csvboard.alerts.service import back_off
from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionRun, IngestionRunLease, WorkerPresence
from csvboard.runs.service import NewSource, create_run, retry_run
from csvboard.runs.vocabulary import RunStatus
from csvboard.storage import store_file
from csvboard.worker.scheduler import Scheduler
from csvboard.worker.worker import announce
from support import ONE_ROW_FILE, Harness, fail, failed_run

GOOD = ONE_ROW_FILE + "\r\n"
TOKYO = ZoneInfo("Asia/Tokyo")


@dataclass
class Recorder:
    """A channel that keeps what it is given; it fails while ``error`` is set."""

    channel: Channel = Channel.WEBHOOK
    error: str | None = None
    messages: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> str | None:
        if self.error is not None:
            raise DeliveryError(self.error)
        self.messages.append(message)
        return None

    def take(self) -> list[tuple[str, str]]:
        """(event, kind) of the messages since the last take."""
        taken = [(m.event, m.kind) for m in self.messages]
        self.messages.clear()
        return taken


def check(h: Harness, now: datetime, *senders: Recorder) -> Any:
    return evaluate(h.engine, h.settings, now, list(senders))


def alerts(h: Harness) -> list[Alert]:
    with h.read() as session:
        return list(session.scalars(select(Alert).order_by(Alert.opened_at, Alert.problem_key)))


def succeed(h: Harness, board: CsvDashboard, feed: CsvDashboardFeed | None = None) -> uuid.UUID:
    """A run of a good file from ``feed`` (the upload feed by default) that succeeds."""
    stored = store_file(h.data_dir, h.write_file(GOOD))
    with h.write() as session:
        dashboard = session.get_one(CsvDashboard, board.id)
        source_feed = feed or session.scalar(
            select(CsvDashboardFeed).where(
                CsvDashboardFeed.csv_dashboard_id == board.id, CsvDashboardFeed.name == "upload"
            )
        )
        assert source_feed is not None
        run = create_run(
            session, dashboard=dashboard, run_kind="official_ingestion",
            target_types=["official"], sources=[NewSource(session.merge(source_feed), stored)],
            requested_by="tester", mode="scheduled",
        )  # fmt: skip
        run_id = run.run_id
    assert h.run(run_id).status == RunStatus.SUCCEEDED
    return run_id


def test_a_failed_run_is_told_once_and_again_when_it_clears(harness: Harness) -> None:
    h, hook = harness, Recorder()
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    report = check(h, ended, hook)
    assert hook.take() == [("opened", "run_failed")] and report.sent == 1
    (message,) = [m for m in alerts(h)]
    assert "HEADER_MISMATCH" in message.body and "not re-run automatically" in message.body
    assert check(h, ended + timedelta(minutes=1), hook).sent == 0  # told already
    failed_run(h, board, "DECODE_ERROR")  # the same feed fails again: still the same problem
    assert check(h, utcnow(), hook).opened == [] and hook.take() == []
    assert "DECODE_ERROR" in alerts(h)[0].body  # what the console shows follows the problem

    succeed(h, board)
    report = check(h, utcnow(), hook)
    assert hook.take() == [("cleared", "run_failed")] and report.cleared
    assert check(h, utcnow(), hook).sent == 0

    failed_run(h, board, "HEADER_MISMATCH")  # a new failure after it cleared: told again
    assert check(h, utcnow(), hook).sent == 1 and hook.take() == [("opened", "run_failed")]
    opened = [a for a in alerts(h)]
    assert len(opened) == 2 and opened[0].cleared_at is not None and opened[1].cleared_at is None


def test_a_cancelled_run_neither_opens_nor_clears(harness: Harness) -> None:
    h, hook = harness, Recorder()
    board = h.dashboard()
    failed_run(h, board, "HEADER_MISMATCH")
    check(h, utcnow(), hook)
    assert hook.take() == [("opened", "run_failed")]
    run_id = h.queue(board, h.write_file(GOOD))
    with h.write() as session:  # a run is cancelled while it runs (docs/contract.md §2.2)
        lifecycle.transition(session, run_id, expected=RunStatus.QUEUED, to=RunStatus.RUNNING)
        lifecycle.transition(
            session, run_id, expected=RunStatus.RUNNING, to=RunStatus.CANCELLED, message="t"
        )
    assert check(h, utcnow(), hook).cleared == [] and hook.take() == []


def test_retries_exhausted_is_told_once_after_the_last_rerun(harness: Harness) -> None:
    h, hook = harness, Recorder()
    board = h.dashboard()
    first, ended = failed_run(h, board, "WORKER_LOST")
    check(h, ended, hook)
    (opened,) = hook.messages
    assert "re-run 1 of 3" in opened.body and opened.details["retry_due_at"]
    hook.take()
    run_id = first
    for code in ("WORKER_LOST", "DATABASE_ERROR", "RUN_TIMEOUT"):
        with h.write() as session:
            run_id = retry_run(session, run_id, requested_by="retry-policy").run_id
        ended = fail(h, run_id, code)
        check(h, ended, hook)
    # the run problem was told once; the exhausted chain once, after the third re-run failed
    assert hook.take() == [("opened", "retries_exhausted")]
    exhausted = next(a for a in alerts(h) if a.kind == "retries_exhausted")
    assert exhausted.details["retries"] == 3 and "someone must look" in exhausted.body
    assert check(h, ended + timedelta(hours=1), hook).sent == 0


def test_nothing_is_told_without_a_channel_but_the_alert_is_kept(harness: Harness) -> None:
    h = harness
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    report = check(h, ended)
    assert report.opened and report.sent == 0
    with h.read() as session:
        assert session.scalars(select(AlertDelivery)).all() == []


def test_a_failing_channel_is_tried_again_after_a_back_off_and_the_others_go_on(
    harness: Harness,
) -> None:
    h = harness
    hook, mail = Recorder(), Recorder(channel=Channel.MAIL, error="the mail server refused: 554")
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    report = check(h, ended, hook, mail)
    assert report.sent == 1 and report.failed == [
        f"mail {alerts(h)[0].problem_key}: the mail server refused: 554"
    ]
    with h.read() as session:
        delivery = session.scalars(
            select(AlertDelivery).where(AlertDelivery.channel == "mail")
        ).one()
    assert (delivery.attempts, delivery.sent_at) == (1, None)
    assert delivery.last_error == "the mail server refused: 554"
    assert delivery.next_attempt_at == ended + back_off(1)
    mail.error = None
    assert check(h, ended + back_off(1) - timedelta(seconds=1), hook, mail).sent == 0  # waits
    assert check(h, ended + back_off(1), hook, mail).sent == 1
    assert mail.take() == [("opened", "run_failed")] and hook.take() == [("opened", "run_failed")]
    assert [back_off(n) for n in (1, 2, 3, 8)] == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(hours=1),
    ]


def test_a_problem_that_cleared_before_it_was_told_is_not_told_late(harness: Harness) -> None:
    h, hook = harness, Recorder(error="down")
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    check(h, ended, hook)
    succeed(h, board)
    hook.error = None
    report = check(h, utcnow() + timedelta(hours=2), hook)
    assert report.cleared and hook.take() == []  # neither "opened" late nor "cleared"


def _scheduled_feed(h: Harness, board: CsvDashboard, schedule: str, created: datetime) -> Any:
    with h.write() as session:
        feed = CsvDashboardFeed(
            id=uuid.uuid4(), csv_dashboard_id=board.id, name="erp", role="official",
            source="folder", location=str(h.files), schedule=schedule, enabled=True,
            created_at=created, updated_at=created,
        )  # fmt: skip
        session.add(feed)
    return feed


def _delivered_at(h: Harness, run_id: uuid.UUID, at: datetime) -> None:
    with h.write() as session:
        session.execute(
            update(IngestionRun).where(IngestionRun.run_id == run_id)
            .values(created_at=at, started_at=at, finished_at=at)
        )  # fmt: skip


def test_a_scheduled_feed_that_missed_its_slot_is_overdue(harness: Harness) -> None:
    h, hook = harness, Recorder()
    board = h.dashboard()
    # a weekday feed at 06:00 Tokyo; its last file came on Friday 2026-12-04
    friday = datetime(2026, 12, 4, 6, 5, tzinfo=TOKYO)
    feed = _scheduled_feed(h, board, "0 6 * * mon-fri", friday - timedelta(days=30))
    _delivered_at(h, succeed(h, board, feed), friday)
    assert check(h, friday + timedelta(hours=2), hook).opened == []
    sunday = datetime(2026, 12, 6, 12, 0, tzinfo=TOKYO)
    assert check(h, sunday, hook).opened == []  # no slot since Friday's: not overdue
    monday = datetime(2026, 12, 7, 6, 30, tzinfo=TOKYO)
    assert check(h, monday, hook).opened == []  # Monday's slot has its hour of grace
    report = check(h, monday + timedelta(hours=1), hook)
    assert report.opened == [f"feed-overdue:{feed.id}"]
    (message,) = hook.messages
    assert "2026-12-07T06:00:00+09:00" in message.body and "production-schedule/erp" in message.body
    hook.take()
    _delivered_at(h, succeed(h, board, feed), monday + timedelta(hours=2))
    assert check(h, monday + timedelta(hours=2, minutes=1), hook).cleared == [
        f"feed-overdue:{feed.id}"
    ]
    assert hook.take() == [("cleared", "feed_overdue")]


def test_a_new_feed_and_a_feed_without_schedule_are_never_overdue(harness: Harness) -> None:
    h = harness
    board = h.dashboard()
    now = datetime(2026, 12, 7, 12, 0, tzinfo=TOKYO)
    _scheduled_feed(h, board, "0 6 * * *", now - timedelta(hours=2))  # created after 06:00
    assert check(h, now).opened == []
    with h.write() as session:
        session.execute(update(CsvDashboardFeed).values(schedule=None))
    assert check(h, now + timedelta(days=3)).opened == []


def test_a_mail_feed_whose_polls_keep_failing(harness: Harness) -> None:
    h, hook = harness, Recorder()
    board = h.dashboard()
    now = utcnow()
    feed_id = uuid.uuid4()
    with h.write() as session:
        session.add(
            CsvDashboardFeed(
                id=feed_id, csv_dashboard_id=board.id, name="mail", role="official",
                source="imap", location="127.0.0.1", enabled=True,
                options={"host": "127.0.0.1", "user": "u"},
                created_at=now - timedelta(days=1), updated_at=now - timedelta(days=1),
            )
        )  # fmt: skip
        session.add(
            CsvDashboardFeedState(
                feed_id=feed_id, last_polled_at=now, last_error="LOGIN failed",
                last_success_at=now - timedelta(hours=1),
            )
        )  # fmt: skip
    assert check(h, now, hook).opened == [f"feed-failing:{feed_id}"]
    assert "LOGIN failed" in hook.messages[0].body
    with h.write() as session:
        session.execute(update(CsvDashboardFeedState).values(last_error=None))
    assert check(h, now, hook).cleared == [f"feed-failing:{feed_id}"]


def test_a_silent_worker_and_a_stuck_queue(harness: Harness) -> None:
    h, hook = harness, Recorder()
    board = h.dashboard()
    queued = h.queue(board, h.write_file(GOOD))
    with h.read() as session:
        created = session.get_one(IngestionRun, queued).created_at
    assert check(h, created + timedelta(minutes=9), hook).opened == []
    assert check(h, created + timedelta(minutes=11), hook).opened == ["queue-stuck"]
    assert "csvboard worker" in hook.messages[0].body
    with h.write() as session:
        session.execute(
            update(IngestionRun).where(IngestionRun.run_id == queued)
            .values(status="running", started_at=created)
        )  # fmt: skip
        session.add(IngestionRunLease(run_id=queued, worker_id="w", heartbeat_at=created))
    report = check(h, created + timedelta(minutes=12), hook)
    assert report.opened == ["worker-silent"] and report.cleared == ["queue-stuck"]
    with h.write() as session:
        session.execute(
            update(IngestionRunLease).values(heartbeat_at=created + timedelta(minutes=12))
        )
    assert check(h, created + timedelta(minutes=12, seconds=30), hook).cleared == ["worker-silent"]
    assert hook.take() == [
        ("opened", "queue_stuck"), ("opened", "worker_silent"), ("cleared", "queue_stuck"),
        ("cleared", "worker_silent"),
    ]  # fmt: skip


def test_no_worker_once_one_was_seen(harness: Harness) -> None:
    h, hook = harness, Recorder()
    assert check(h, utcnow() + timedelta(days=1), hook).opened == []  # none ever: a new install
    started = utcnow()
    announce(h.engine, "worker:host:1", started)
    with h.read() as session:
        seen = session.scalars(select(WorkerPresence.seen_at)).one()
    assert check(h, seen + timedelta(minutes=1), hook).opened == []
    assert check(h, seen + timedelta(minutes=3), hook).opened == ["worker-missing"]
    (message,) = hook.messages
    assert "worker:host:1" in message.body and "killed, crashed" in message.body
    hook.take()
    announce(h.engine, "worker:host:2", utcnow())  # another worker starts (at seen + 3 min)
    with h.write() as session:
        session.execute(
            update(WorkerPresence).where(WorkerPresence.worker_id == "worker:host:2")
            .values(seen_at=seen + timedelta(minutes=3))
        )  # fmt: skip
    assert check(h, seen + timedelta(minutes=3, seconds=1), hook).cleared == ["worker-missing"]
    announce(h.engine, "worker:host:2", started, stopped=True)
    check(h, seen + timedelta(minutes=10), hook)
    assert "stopped on request" in hook.messages[-1].body


def test_the_database_holds_one_open_alert_per_problem_and_one_message_per_channel(
    harness: Harness,
) -> None:
    h = harness
    now = utcnow()
    first = Alert(problem_key="queue-stuck", kind="queue_stuck", summary="s", body="b",
                  details={}, opened_at=now)  # fmt: skip
    with h.write() as session:
        session.add(first)
    with pytest.raises(IntegrityError), h.write() as session:
        session.add(Alert(problem_key="queue-stuck", kind="queue_stuck", summary="s", body="b",
                          details={}, opened_at=now))  # fmt: skip
    with h.write() as session:  # once cleared, the same problem may open again
        session.execute(update(Alert).values(cleared_at=now))
        session.add(Alert(problem_key="queue-stuck", kind="queue_stuck", summary="s", body="b",
                          details={}, opened_at=now))  # fmt: skip
    delivery = {"alert_id": first.id, "channel": "mail", "event": "opened", "attempts": 0,
                "next_attempt_at": now}  # fmt: skip
    with h.write() as session:
        session.add(AlertDelivery(**delivery))
    bad: list[tuple[type, dict[str, Any]]] = [
        (AlertDelivery, delivery),  # a second message for the same channel and event
        (AlertDelivery, {**delivery, "event": "cleared", "channel": "pager"}),
        (AlertDelivery, {**delivery, "event": "cleared", "sent_at": now}),  # sent, never tried
        (AlertDelivery, {**delivery, "event": "cleared", "attempts": -1}),
        (Alert, {"problem_key": "x", "kind": "bored", "summary": "", "body": "", "details": {},
                 "opened_at": now}),
        (Alert, {"problem_key": "y", "kind": "queue_stuck", "summary": "", "body": "",
                 "details": {}, "opened_at": now, "cleared_at": now - timedelta(seconds=1)}),
    ]  # fmt: skip
    for model, values in bad:
        with pytest.raises(IntegrityError), h.write() as session:
            session.add(model(**values))


def test_no_secret_reaches_the_database(harness: Harness) -> None:
    h = harness
    settings = h.settings.model_copy(
        update={"alert_webhook_url": SecretStr("http://127.0.0.1:9/hook/s3cr3t-token"),
                "alert_timeout_seconds": 0.5}
    )  # fmt: skip
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    report = evaluate(h.engine, settings, ended)  # the configured webhook: nothing listens
    assert report.failed and "s3cr3t" not in report.failed[0]
    with h.read() as session:
        for table in ("alerts", "alert_deliveries"):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()
            assert rows and "s3cr3t" not in repr(rows)
    assert "s3cr3t" not in repr(settings)


def test_the_scheduler_checks_every_alert_interval(harness: Harness) -> None:
    h = harness
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    scheduler = Scheduler(h.engine, h.settings, scheduler_id="test")
    try:
        first = scheduler.tick(ended)
        assert first.alerts is not None and first.alerts["opened"]
        assert scheduler.tick(ended + timedelta(seconds=30)).alerts is None  # 60 s apart
        assert scheduler.tick(ended + timedelta(seconds=61)).alerts == {
            "opened": [], "cleared": [], "sent": 0, "failed": []
        }  # fmt: skip
    finally:
        scheduler.close()


def test_a_schedule_that_does_not_parse_is_not_overdue(harness: Harness) -> None:
    """A schedule written to the database by hand (the API refuses it) is the feed state's
    business (tests/worker/test_scheduler.py); the alerts pass over it."""
    h = harness
    board = h.dashboard()
    now = datetime(2026, 12, 7, 12, 0, tzinfo=TOKYO)
    _scheduled_feed(h, board, "61 * * * *", now - timedelta(days=3))
    assert check(h, now).opened == []


def test_a_clock_behind_the_one_that_opened_an_alert_still_clears_it(harness: Harness) -> None:
    """After a failover the new leader's clock may lag: the alert clears when it opened."""
    h, hook = harness, Recorder()
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    check(h, ended + timedelta(minutes=5), hook)
    succeed(h, board)
    assert check(h, ended + timedelta(minutes=1), hook).cleared
    (alert,) = alerts(h)
    assert alert.cleared_at == alert.opened_at == ended + timedelta(minutes=5)


def test_a_problem_cleared_while_its_opened_message_is_in_flight_is_told_in_order(
    harness: Harness,
) -> None:
    """Two evaluators (the scheduler and `csvboard alerts check`): while the first sends the
    opened message, the second sees the problem gone. The cleared message waits for the
    opened one, then goes: both once, in order."""
    h = harness
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    messages: list[str] = []

    class Slow:
        channel = Channel.WEBHOOK

        def send(self, message: Message) -> str | None:
            if message.event == "opened":
                succeed(h, board)  # meanwhile the feed works again ...
                second = check(h, ended + timedelta(seconds=1), Recorder())  # ... and B clears
                assert second.cleared and second.sent == 0  # "cleared" waits for "opened"
            messages.append(message.event)
            return None

    slow = Slow()
    assert evaluate(h.engine, h.settings, ended, [slow]).sent == 1
    assert evaluate(h.engine, h.settings, ended + timedelta(seconds=2), [slow]).sent == 1
    assert evaluate(h.engine, h.settings, ended + timedelta(minutes=5), [slow]).sent == 0
    assert messages == ["opened", "cleared"]


def test_a_failing_feed_stays_a_problem_past_the_look_back_until_it_succeeds(
    harness: Harness,
) -> None:
    h, hook = harness, Recorder()
    board = h.dashboard()
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    check(h, ended, hook)
    assert check(h, ended + RUN_LOOK_BACK + timedelta(days=5), hook).cleared == []
    succeed(h, board)
    # the success ended at the real clock's now, before the moved one: it still clears
    assert check(h, ended + RUN_LOOK_BACK + timedelta(days=6), hook).cleared
    assert hook.take() == [("opened", "run_failed"), ("cleared", "run_failed")]


def test_a_feed_given_its_schedule_after_the_slot_is_not_yet_overdue(harness: Harness) -> None:
    h = harness
    board = h.dashboard()
    now = datetime(2026, 12, 7, 12, 0, tzinfo=TOKYO)
    feed = _scheduled_feed(h, board, "0 6 * * *", now - timedelta(days=30))
    with h.write() as session:  # re-enabled (or rescheduled) at 09:00, after 06:00's slot
        session.execute(
            update(CsvDashboardFeed).where(CsvDashboardFeed.id == feed.id)
            .values(updated_at=now - timedelta(hours=3))
        )  # fmt: skip
    assert check(h, now).opened == []
    assert check(h, now + timedelta(days=1)).opened == [f"feed-overdue:{feed.id}"]


def test_no_secret_reaches_the_logs(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    h = harness
    settings = h.settings.model_copy(
        update={"alert_webhook_url": SecretStr("http://127.0.0.1:9/hook/s3cr3t-token"),
                "alert_timeout_seconds": 0.5}
    )  # fmt: skip
    _, ended = failed_run(h, h.dashboard(), "HEADER_MISMATCH")
    capsys.readouterr()
    report = evaluate(h.engine, settings, ended)
    out = capsys.readouterr()
    assert report.failed and "alert_delivery_failed" in out.out + out.err
    assert "s3cr3t" not in out.out + out.err
