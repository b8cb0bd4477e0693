"""The claim state machine of mail feeds: the ``mail_messages`` rows (``feeds.models``).

A message is claimed at most once per feed and key (its Message-ID, else a sha256), by
``INSERT … ON CONFLICT`` in the transaction that creates its run (:func:`insert_claim`). Its
state (:class:`~csvboard.feeds.models.MailState`) then moves only by compare-and-set
(:func:`transition`), so of several schedulers settling the same message one wins::

    queued ──run succeeded/partial──> processed
       │  └─run failed for good, cancelled, or tried MAX_ATTEMPTS times──> rejected
       └──run failed transiently (lost worker, timeout) or vanished──> retry ──claimed──> queued
    rejecting (nothing to ingest; being moved) ──> rejected

The poller (``feeds/mail.py``) moves the messages in the mailbox to match.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.db import upsert
from csvboard.db.engine import read_session, write_session
from csvboard.feeds.models import MailMessage, MailState
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionRun
from csvboard.runs.queries import error_summary
from csvboard.runs.vocabulary import EventStatus, RunStatus

log = structlog.get_logger("csvboard.mail")

#: Failure codes a retry of the same file can never fix: such a message goes to rejected.
PERMANENT_CODES = frozenset(
    {"HEADER_MISMATCH", "ENCODING_UNSUPPORTED", "ALL_ROWS_REJECTED", "FILE_MISSING"}
)
#: A message whose runs failed (transiently) this many times is rejected, not retried again.
MAX_ATTEMPTS = 3

#: A settled claim's next state and why: ``(claim, target, reason)``.
Plan = tuple[MailMessage, MailState, str | None]


def settle_plans(engine: Engine, feed_id: uuid.UUID) -> list[Plan]:
    """The feed's unsettled claims whose run has ended (or vanished), with their next state."""
    plans: list[Plan] = []
    with read_session(engine) as session:
        rows = session.execute(
            select(MailMessage, IngestionRun.status)
            .outerjoin(IngestionRun, IngestionRun.run_id == MailMessage.run_id)
            .where(
                MailMessage.feed_id == feed_id,
                MailMessage.state.in_((MailState.QUEUED, MailState.REJECTING)),
            )
            .order_by(MailMessage.claimed_at)
        ).all()
        for row, status in rows:
            if row.state == MailState.REJECTING:
                plans.append((row, MailState.REJECTED, row.reason))
            elif status is None:
                plans.append((row, MailState.RETRY, "its run no longer exists"))
            elif status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
                plans.append((row, MailState.PROCESSED, None))
            elif status == RunStatus.CANCELLED:
                plans.append((row, MailState.REJECTED, f"run {row.run_id} was cancelled"))
            elif status == RunStatus.FAILED:
                assert row.run_id is not None
                summary = error_summary(session, row.run_id) or "no error recorded"
                code = summary.split(":", 1)[0].strip()
                reason = f"run {row.run_id} failed: {summary}"
                if code in PERMANENT_CODES or row.attempts >= MAX_ATTEMPTS:
                    plans.append((row, MailState.REJECTED, reason))
                else:
                    plans.append((row, MailState.RETRY, reason))
    return plans


def transition(
    engine: Engine,
    row: MailMessage,
    target: MailState,
    reason: str | None,
    *,
    event: tuple[str, EventStatus, str] | None,
) -> bool:
    """Compare-and-set a claim's state; the run's event is written only by the winner."""
    now = utcnow()
    with write_session(engine) as session:
        result = session.execute(
            update(MailMessage)
            .where(MailMessage.id == row.id, MailMessage.state == row.state)
            .values(
                state=target,
                reason=reason,
                settled_at=None if target == MailState.RETRY else now,
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            return False
        if event is not None and row.run_id is not None:
            run = session.get(IngestionRun, row.run_id)
            if run is not None:
                lifecycle.record_event(
                    session, run.run_id, run.trace_id, event[0], event[1], message=event[2]
                )
    log.info("mail_settled", message_id=row.message_id, state=target, run_id=str(row.run_id))
    return True


def known(engine: Engine, feed_id: uuid.UUID, keys: list[str]) -> dict[str, MailMessage]:
    """The feed's claims of these keys, by key."""
    if not keys:
        return {}
    found: dict[str, MailMessage] = {}
    with read_session(engine) as session:
        for start in range(0, len(keys), 500):
            for row in session.scalars(
                select(MailMessage).where(
                    MailMessage.feed_id == feed_id,
                    MailMessage.message_id.in_(keys[start : start + 500]),
                )
            ):
                found[row.message_id] = row
    return found


def holder(engine: Engine, feed_id: uuid.UUID, key: str) -> MailMessage | None:
    """The claim that holds a key (after :func:`insert_claim` lost it)."""
    with read_session(engine) as session:
        return session.scalar(
            select(MailMessage).where(MailMessage.feed_id == feed_id, MailMessage.message_id == key)
        )


def insert_claim(
    session: Session,
    feed_id: uuid.UUID,
    key: str,
    state: MailState,
    *,
    uidvalidity: int | None,
    uid: int,
    sender: str,
    subject: str,
    reason: str | None,
) -> bool:
    """Insert the claim, or re-take a released (``retry``) one; True for exactly one taker.

    PostgreSQL: a concurrent insert of the same key waits for the first transaction and
    then gets no row back (``RETURNING`` decides, not ``rowcount``).
    """
    now = utcnow()
    table = MailMessage.__table__
    claim = upsert.insert(session, MailMessage).values(
        id=uuid.uuid4(),
        feed_id=feed_id,
        message_id=key,
        state=state,
        uidvalidity=uidvalidity,
        uid=uid,
        sender=sender[:255] or None,
        subject=subject[:2000] or None,
        reason=reason,
        attempts=1,
        claimed_at=now,
    )
    stmt = claim.on_conflict_do_update(
        index_elements=["feed_id", "message_id"],
        set_={
            "state": claim.excluded.state,
            "uidvalidity": claim.excluded.uidvalidity,
            "uid": claim.excluded.uid,
            "reason": claim.excluded.reason,
            "attempts": table.c.attempts + 1,
            "claimed_at": claim.excluded.claimed_at,
            "run_id": None,
            "settled_at": None,
        },
        where=table.c.state == MailState.RETRY,
    ).returning(table.c.id)
    return session.execute(stmt).first() is not None


def attach_run(session: Session, feed_id: uuid.UUID, key: str, run_id: uuid.UUID) -> None:
    """Record the run a claim created (in the claim's transaction)."""
    session.execute(
        update(MailMessage)
        .where(MailMessage.feed_id == feed_id, MailMessage.message_id == key)
        .values(run_id=run_id)
    )


def finish_rejection(engine: Engine, feed_id: uuid.UUID, key: str) -> None:
    """``rejecting`` → ``rejected`` once the message is in the rejected folder."""
    with write_session(engine) as session:
        session.execute(
            update(MailMessage)
            .where(
                MailMessage.feed_id == feed_id,
                MailMessage.message_id == key,
                MailMessage.state == MailState.REJECTING,
            )
            .values(state=MailState.REJECTED, settled_at=utcnow())
        )


__all__ = [
    "MAX_ATTEMPTS",
    "PERMANENT_CODES",
    "attach_run",
    "finish_rejection",
    "holder",
    "insert_claim",
    "known",
    "settle_plans",
    "transition",
]
