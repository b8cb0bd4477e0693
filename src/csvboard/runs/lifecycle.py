"""The one place where a run's status changes.

Only ``queued → running`` and ``running → succeeded | failed | partial | cancelled`` exist.
Every transition is a compare-and-set (``UPDATE … WHERE run_id = ? AND status = <expected>``):
a lost race raises :class:`TransitionConflict`, never overwrites, and a terminal status never
changes again. ``started_at`` is set on ``running``, ``finished_at`` exactly on the terminal
transition, and each transition writes an ``ingestion_events`` row in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.errors import Conflict
from csvboard.runs.models import IngestionEvent, IngestionRun, IngestionRunLease
from csvboard.runs.vocabulary import TERMINAL_STATUSES, EventStatus, RunStatus

ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING}),
    RunStatus.RUNNING: frozenset(TERMINAL_STATUSES),
}


class IllegalTransition(Conflict):
    """A transition the lifecycle does not have (e.g. queued → succeeded, failed → running)."""


class TransitionConflict(Conflict):
    """The run was not in the expected status: someone else moved it first."""


@dataclass(frozen=True, slots=True)
class RunCounts:
    """The ledger's counts; processed and unprocessed follow from the other three
    (docs/contract.md §2.1)."""

    target: int = 0
    success: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        if min(self.target, self.success, self.failed) < 0:
            raise ValueError(f"negative count in {self}")
        if self.success + self.failed > self.target:
            raise ValueError(f"more rows processed than read: {self}")

    @property
    def processed(self) -> int:
        return self.success + self.failed

    @property
    def unprocessed(self) -> int:
        return self.target - self.processed

    def columns(self) -> dict[str, int]:
        return {
            "target_count": self.target,
            "processed_count": self.processed,
            "success_count": self.success,
            "failed_count": self.failed,
            "unprocessed_count": self.unprocessed,
        }


def _event_status(to: RunStatus) -> EventStatus:
    if to is RunStatus.FAILED:
        return EventStatus.FAILURE
    if to in (RunStatus.PARTIAL, RunStatus.CANCELLED):
        return EventStatus.WARN
    return EventStatus.SUCCESS


def record_event(
    session: Session,
    run_id: uuid.UUID,
    trace_id: str,
    event_type: str,
    status: EventStatus,
    *,
    message: str | None = None,
    error_code: str | None = None,
    details: dict[str, Any] | None = None,
    from_status: RunStatus | None = None,
    to_status: RunStatus | None = None,
    at: datetime | None = None,
) -> None:
    session.execute(
        insert(IngestionEvent).values(
            run_id=run_id,
            event_type=event_type,
            event_status=status.value,
            from_status=from_status.value if from_status else None,
            to_status=to_status.value if to_status else None,
            error_code=error_code,
            message=message,
            details=details,
            occurred_at=at or utcnow(),
            trace_id=trace_id,
        )
    )


def transition(
    session: Session,
    run_id: uuid.UUID,
    *,
    expected: RunStatus,
    to: RunStatus,
    counts: RunCounts | None = None,
    error_code: str | None = None,
    message: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Move a run from ``expected`` to ``to`` in the caller's transaction, or raise."""
    if to not in ALLOWED_TRANSITIONS.get(expected, frozenset()):
        raise IllegalTransition(
            "ILLEGAL_TRANSITION", f"run {run_id}: {expected.value} → {to.value} is not allowed"
        )
    if to is RunStatus.FAILED and not error_code:
        raise ValueError("a failed run needs an error code")
    now = at or utcnow()
    values: dict[str, Any] = {"status": to.value}
    if to is RunStatus.RUNNING:
        values["started_at"] = now
    if to in TERMINAL_STATUSES:
        values["finished_at"] = now
    if counts is not None:
        values.update(counts.columns())
    result = session.execute(
        update(IngestionRun)
        .where(IngestionRun.run_id == run_id, IngestionRun.status == expected.value)
        .values(**values)
        .returning(IngestionRun.trace_id)
    )
    trace_id = result.scalar_one_or_none()
    if trace_id is None:
        current = session.scalar(select(IngestionRun.status).where(IngestionRun.run_id == run_id))
        raise TransitionConflict(
            "TRANSITION_CONFLICT",
            f"run {run_id} is {current or 'missing'}, not {expected.value}: "
            f"cannot move it to {to.value}",
        )
    record_event(
        session,
        run_id,
        trace_id,
        "status_changed",
        _event_status(to),
        message=message,
        error_code=error_code,
        details=details,
        from_status=expected,
        to_status=to,
        at=now,
    )


def update_progress(session: Session, run_id: uuid.UUID, counts: RunCounts) -> bool:
    """Publish live counts of a running run; False if it is no longer running."""
    result = session.execute(
        update(IngestionRun)
        .where(IngestionRun.run_id == run_id, IngestionRun.status == RunStatus.RUNNING.value)
        .values(**counts.columns())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel(session: Session, run_id: uuid.UUID, *, by: str | None = None) -> RunStatus:
    """Cancel a run: a queued run ends now; a running one is asked to stop at its next batch.

    A queued run passes through ``running`` in the same transaction, so the ledger only ever
    shows allowed transitions. Returns the status the run has after the call.
    """
    # Lock the run's row (PostgreSQL; SQLite writers are serial anyway): a worker ending the
    # run concurrently holds it, so we wait and then see the terminal status, instead of
    # filing a cancel request against a run that has just finished.
    status = session.scalar(
        select(IngestionRun.status)
        .where(IngestionRun.run_id == run_id)
        .with_for_update(key_share=True)
    )
    if status is None:
        from csvboard.errors import NotFound

        raise NotFound("RUN_NOT_FOUND", f"no run {run_id}")
    current = RunStatus(status)
    who = f" by {by}" if by else ""
    if current is RunStatus.QUEUED:
        now = utcnow()
        transition(
            session,
            run_id,
            expected=RunStatus.QUEUED,
            to=RunStatus.RUNNING,
            at=now,
            message=f"cancel requested{who} while queued",
        )
        transition(
            session,
            run_id,
            expected=RunStatus.RUNNING,
            to=RunStatus.CANCELLED,
            at=now,
            counts=_current_counts(session, run_id),
            message=f"cancelled{who} before it started",
        )
        return RunStatus.CANCELLED
    if current is RunStatus.RUNNING:
        updated = session.execute(
            update(IngestionRunLease)
            .where(IngestionRunLease.run_id == run_id)
            .values(cancel_requested=True)
        ).rowcount  # type: ignore[attr-defined]
        if not updated:
            session.execute(insert(IngestionRunLease).values(run_id=run_id, cancel_requested=True))
        trace_id = session.scalar(
            select(IngestionRun.trace_id).where(IngestionRun.run_id == run_id)
        )
        record_event(
            session,
            run_id,
            trace_id or "",
            "cancel_requested",
            EventStatus.WARN,
            message=f"cancel requested{who}",
        )
        return RunStatus.RUNNING
    raise Conflict("RUN_NOT_CANCELLABLE", f"run {run_id} already ended {current.value}")


def _current_counts(session: Session, run_id: uuid.UUID) -> RunCounts:
    row = session.execute(
        select(
            IngestionRun.target_count, IngestionRun.success_count, IngestionRun.failed_count
        ).where(IngestionRun.run_id == run_id)
    ).one()
    return RunCounts(target=row[0], success=row[1], failed=row[2])


def cancel_requested(session: Session, run_id: uuid.UUID) -> bool:
    return bool(
        session.scalar(
            select(IngestionRunLease.cancel_requested).where(IngestionRunLease.run_id == run_id)
        )
    )
