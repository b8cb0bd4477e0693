"""Alerts: tell an admin about a problem once, and again when it clears (docs/contract.md §4,
"Alerts").

The scheduler's leader calls :func:`evaluate` every ``CSVBOARD_ALERT_CHECK_SECONDS`` (and
``csvboard alerts check`` does once). One evaluation:

1. reads the problems that hold now (csvboard/alerts/problems.py);
2. in one short write transaction, opens an alert for each new one with a pending delivery
   per configured channel, clears the open alerts whose problem is gone (a ``cleared``
   delivery per channel that has an ``opened`` one), and claims the deliveries that are due:
   an ``opened`` one while its problem lasts, a ``cleared`` one once its ``opened`` one has
   gone, so the two arrive in order and never one without the other;
3. sends them with no transaction open (a webhook that hangs must not hold SQLite's write
   lock), each within ``CSVBOARD_ALERT_TIMEOUT_SECONDS`` per step; a channel that fails is
   not tried again in the same evaluation;
4. records each outcome: sent, or its error and the next attempt after a back-off (1, 2,
   4 … minutes, at most an hour).

"Once until it clears" is held by the database: one open alert per problem key (a partial
unique index; two evaluators opening the same problem at once: one of them fails and the
next check goes on) and one delivery per (alert, channel, event). A claim moves the
delivery's ``next_attempt_at`` well past the sends' time-outs, so two evaluators (a failover,
the CLI) do not send the same message twice; on PostgreSQL the claim also skips rows another
holds, and an outcome is recorded only on a delivery still unsent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from csvboard.alerts.channels import DeliveryError, Message, Sender, configured_senders
from csvboard.alerts.models import MAX_ERROR_LENGTH, Alert, AlertDelivery, DeliveryEvent
from csvboard.alerts.problems import Problem, current_problems, still_holds
from csvboard.db.engine import read_session, write_session
from csvboard.settings import Settings

log = structlog.get_logger("csvboard.alerts")

_PREFIX = "[csvboard] "
MAX_BACK_OFF = timedelta(hours=1)
#: A claim lasts this many time-outs per claimed message.
CLAIM_FACTOR = 10


@dataclass
class AlertReport:
    opened: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # "channel problem: error"

    def as_dict(self) -> dict[str, Any]:
        return {
            "opened": self.opened, "cleared": self.cleared, "sent": self.sent,
            "failed": self.failed,
        }  # fmt: skip


@dataclass(frozen=True)
class _Claimed:
    delivery_id: uuid.UUID
    attempts: int
    sender: Sender
    message: Message


def back_off(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failure a message is tried again."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACK_OFF)


def evaluate(
    engine: Engine,
    settings: Settings,
    now: datetime,
    senders: Sequence[Sender] | None = None,
) -> AlertReport:
    """One evaluation (see the module). ``senders`` defaults to the configured channels."""
    senders = configured_senders(settings) if senders is None else senders
    report = AlertReport()
    # Finding the problems only reads: SQLite's write lock is held just for the few rows
    # written below.
    with read_session(engine) as session:
        problems = current_problems(session, settings, now)
    with write_session(engine) as session:
        _reconcile(session, problems, senders, now, report)
        claimed = _claim_due(session, senders, settings, now)
    # A channel that fails is not tried again in this evaluation: a webhook that hangs costs
    # the scheduler one time-out per check, not one per message.
    down: dict[str, str] = {}
    outcomes: list[tuple[_Claimed, bool, str | None]] = []
    for item in claimed:
        error = down.get(item.sender.channel)
        if error is not None:
            outcomes.append((item, False, error))
            continue
        sent, text = _send(item)
        if not sent:
            down[item.sender.channel] = (
                f"not tried: {item.sender.channel} failed just before ({text})"
            )
        outcomes.append((item, sent, text))
    with write_session(engine) as session:
        for item, sent, text in outcomes:
            values: dict[str, Any] = {
                "attempts": item.attempts + 1,
                "last_error": text[:MAX_ERROR_LENGTH] if text else None,
            }
            if sent:
                values["sent_at"] = now
                report.sent += 1
            else:
                values["next_attempt_at"] = now + back_off(item.attempts + 1)
                report.failed.append(f"{item.sender.channel} {item.message.problem_key}: {text}")
            # Only while unsent: a claim that outlived its time (a send slower than the
            # claim) must not overwrite what another evaluator recorded.
            session.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id == item.delivery_id, AlertDelivery.sent_at.is_(None))
                .values(**values)
            )
    for failure in report.failed:
        log.warning("alert_delivery_failed", failure=failure)
    return report


def _reconcile(
    session: Session,
    problems: dict[str, Problem],
    senders: Sequence[Sender],
    now: datetime,
    report: AlertReport,
) -> None:
    open_alerts = {
        alert.problem_key: alert
        for alert in session.scalars(select(Alert).where(Alert.cleared_at.is_(None)))
    }
    for key, problem in problems.items():
        alert = open_alerts.get(key)
        if alert is not None:
            # Told already: keep what the admin console shows current, send nothing.
            alert.summary, alert.body, alert.details = (
                problem.summary,
                problem.body,
                problem.details,
            )
            continue
        alert = Alert(
            id=uuid.uuid4(), problem_key=key, kind=problem.kind.value, summary=problem.summary,
            body=problem.body, details=problem.details, opened_at=now,
        )  # fmt: skip
        session.add(alert)
        session.flush()
        for sender in senders:
            session.add(_delivery(alert, sender, DeliveryEvent.OPENED, now))
        report.opened.append(key)
    for key, alert in open_alerts.items():
        if key in problems or still_holds(session, alert.kind, key, alert.details):
            continue
        # Not before it opened, even if this evaluator's clock is behind the one that opened it.
        alert.cleared_at = max(now, alert.opened_at)
        # A channel told (or being told) that the problem opened is told it cleared, once the
        # opened message has gone (see _claim_due); a channel never told is not.
        opened = session.scalars(
            select(AlertDelivery.channel).where(
                AlertDelivery.alert_id == alert.id,
                AlertDelivery.event == DeliveryEvent.OPENED.value,
            )
        ).all()
        for sender in senders:
            if sender.channel.value in opened:
                session.add(_delivery(alert, sender, DeliveryEvent.CLEARED, now))
        report.cleared.append(key)
    session.flush()


def _delivery(alert: Alert, sender: Sender, event: DeliveryEvent, now: datetime) -> AlertDelivery:
    return AlertDelivery(
        alert_id=alert.id, channel=sender.channel.value, event=event.value, attempts=0,
        next_attempt_at=now,
    )  # fmt: skip


def _claim_due(
    session: Session, senders: Sequence[Sender], settings: Settings, now: datetime
) -> list[_Claimed]:
    by_channel = {sender.channel.value: sender for sender in senders}
    if not by_channel:
        return []
    opened = aliased(AlertDelivery)
    told_opened = (
        select(opened.id)
        .where(
            opened.alert_id == AlertDelivery.alert_id,
            opened.channel == AlertDelivery.channel,
            opened.event == DeliveryEvent.OPENED.value,
            opened.sent_at.is_not(None),
        )
        .exists()
    )
    rows = session.execute(
        select(AlertDelivery, Alert)
        .join(Alert, Alert.id == AlertDelivery.alert_id)
        .where(
            AlertDelivery.sent_at.is_(None),
            AlertDelivery.next_attempt_at <= now,
            AlertDelivery.channel.in_(by_channel),
            or_(
                # A problem that cleared before it was told is not told late ...
                and_(AlertDelivery.event == DeliveryEvent.OPENED.value, Alert.cleared_at.is_(None)),
                # ... and "cleared" waits for "opened" to have gone (another evaluator may be
                # sending it now), so the two arrive in order and never one without the other.
                and_(AlertDelivery.event == DeliveryEvent.CLEARED.value, told_opened),
            ),
        )
        .order_by(AlertDelivery.next_attempt_at)
        .with_for_update(of=AlertDelivery, skip_locked=True)
    ).all()
    # Past every send of this evaluation, generously (a time-out bounds each step of a send,
    # not the whole): another evaluator leaves these alone meanwhile.
    claim_until = now + timedelta(
        seconds=settings.alert_timeout_seconds * CLAIM_FACTOR * (len(rows) + 1)
    )
    claimed = []
    for delivery, alert in rows:
        delivery.next_attempt_at = claim_until
        message = _message(alert, DeliveryEvent(delivery.event), settings)
        claimed.append(
            _Claimed(delivery.id, delivery.attempts, by_channel[delivery.channel], message)
        )
    return claimed


def _message(alert: Alert, event: DeliveryEvent, settings: Settings) -> Message:
    link = None
    if settings.public_url:
        base = settings.public_url.rstrip("/")
        run_id = alert.details.get("run_id")
        link = f"{base}/admin/runs/{run_id}" if run_id else f"{base}/admin"
    if event is DeliveryEvent.OPENED:
        subject, body, at = alert.summary, alert.body, alert.opened_at
    else:
        assert alert.cleared_at is not None  # a cleared delivery is made when it clears
        subject = f"{_PREFIX}解消 / cleared: {alert.summary.removeprefix(_PREFIX)}"
        body = (
            f"No longer seen at {alert.cleared_at.isoformat()} (open since"
            f" {alert.opened_at.isoformat()}). It was:\n{alert.body}"
        )
        at = alert.cleared_at
    return Message(
        problem_key=alert.problem_key, kind=alert.kind, event=event.value, subject=subject,
        body=body, occurred_at=at, details=dict(alert.details), link=link,
    )  # fmt: skip


def _send(item: _Claimed) -> tuple[bool, str | None]:
    """(whether it went, the error or a note on it)."""
    try:
        return True, item.sender.send(item.message)
    except DeliveryError as exc:
        return False, str(exc)
    except Exception as exc:  # a channel's bug must not stop the others or the scheduler
        log.exception("alert_sender_crashed", channel=str(item.sender.channel))
        return False, f"{type(exc).__name__} while sending"


def recent_alerts(
    engine: Engine, limit: int, *, open_only: bool = False
) -> list[tuple[Alert, list[AlertDelivery]]]:
    """The latest ``limit`` alerts (only those still open, or open and cleared), with their
    deliveries."""
    query = select(Alert).order_by(Alert.opened_at.desc(), Alert.id).limit(limit)
    if open_only:
        query = query.where(Alert.cleared_at.is_(None))
    with read_session(engine) as session:
        alerts = session.scalars(query).all()
        ids = [a.id for a in alerts]
        deliveries: dict[uuid.UUID, list[AlertDelivery]] = {i: [] for i in ids}
        if ids:
            for delivery in session.scalars(
                select(AlertDelivery)
                .where(AlertDelivery.alert_id.in_(ids))
                .order_by(AlertDelivery.event.desc(), AlertDelivery.channel)
            ):
                deliveries[delivery.alert_id].append(delivery)
        return [(a, deliveries[a.id]) for a in alerts]


def send_test(
    settings: Settings, now: datetime, senders: Sequence[Sender] | None = None
) -> dict[str, str | None]:
    """Send a test message through each configured channel: channel → error (None: sent)."""
    senders = configured_senders(settings) if senders is None else senders
    message = Message(
        problem_key="test", kind="test", event="test",
        subject=f"{_PREFIX}テスト / test message",
        body="csvboard's alerts reach you through this channel.", occurred_at=now,
    )  # fmt: skip
    results = {}
    for sender in senders:
        sent, text = _send(_Claimed(uuid.uuid4(), 0, sender, message))
        results[sender.channel.value] = None if sent else text
    return results


__all__ = [
    "AlertReport", "back_off", "evaluate", "recent_alerts", "send_test",
]  # fmt: skip
