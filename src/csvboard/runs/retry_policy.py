"""Automatic re-runs of failures that may pass (docs/contract.md §2.1, "Re-runs").

A scheduled run that failed for a reason outside its file — its worker died or was stopped,
the database refused the apply, it ran out of time (``TRANSIENT_CODES``) — is re-run by the
scheduler after a back-off (``CSVBOARD_AUTO_RETRY_MINUTES``, by default 1, 5 and 15 minutes
for the first, second and third re-run), as the contract's re-run: a new run with
``parent_run_id``, the same sources, ``mode = manual``, ``requested_by = retry-policy``,
within the limit of three re-runs per original. A failure in the file (a wrong header, an
undecodable file, every row rejected) is never retried: running it again would fail again.

The policy's own re-runs are retried in their turn (the chain goes on); other manual runs are
not retried unless their dashboard says so (``csv_dashboards.retry_manual_runs``, an admin's
setting: ``PATCH /api/v1/dashboards/{slug}`` with ``operations``). An admin can stop a
pending retry (an ``auto_retry_cancelled`` event on the failed run); the policy then leaves
the run alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard
from csvboard.errors import Conflict
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionEvent, IngestionRun
from csvboard.runs.queries import latest_failure
from csvboard.runs.service import MAX_RETRIES_PER_ORIGINAL, ancestors, dashboard_of, retry_run
from csvboard.runs.vocabulary import EventStatus, RunMode, RunStatus

REQUESTED_BY = "retry-policy"
#: Failures that may pass: not the file's fault.
TRANSIENT_CODES = frozenset({"WORKER_LOST", "WORKER_SHUTDOWN", "DATABASE_ERROR", "RUN_TIMEOUT"})
CANCELLED_EVENT = "auto_retry_cancelled"
#: How far back failed runs are looked at (the back-offs are minutes; a day is plenty).
LOOK_BACK = timedelta(days=1)


@dataclass(frozen=True)
class PendingRetry:
    run_id: uuid.UUID
    attempt: int  # 1 for the first re-run of an original
    due_at: datetime


def pending_retry(
    session: Session, run: IngestionRun, delays: list[timedelta]
) -> PendingRetry | None:
    """The re-run the policy will make of ``run``, and when; None if it will make none."""
    if run.finished_at is None or not _eligible(session, run):
        return None
    attempt = len(ancestors(session, run)) + 1
    if attempt > min(len(delays), MAX_RETRIES_PER_ORIGINAL):
        return None
    has_child = session.scalar(
        select(IngestionRun.run_id).where(IngestionRun.parent_run_id == run.run_id).limit(1)
    )
    if has_child is not None:
        return None
    return PendingRetry(run.run_id, attempt, run.finished_at + delays[attempt - 1])


def retries_exhausted(session: Session, run: IngestionRun, delays: list[timedelta]) -> int | None:
    """How many automatic re-runs ``run``'s chain had when the policy would re-run ``run`` but
    has none left (someone must look); None otherwise, and when the policy is off."""
    limit = min(len(delays), MAX_RETRIES_PER_ORIGINAL)
    if limit == 0 or not _eligible(session, run):
        return None
    made = len(ancestors(session, run))
    return made if made >= limit else None


def _eligible(session: Session, run: IngestionRun) -> bool:
    """A failure the policy re-runs: it may pass, the run is scheduled (or the dashboard
    re-runs manual runs), and nobody stopped the chain."""
    if RunStatus(run.status) is not RunStatus.FAILED:
        return False
    failure = latest_failure(session, run.run_id)
    if failure is None or failure[0] not in TRANSIENT_CODES:
        return False
    # A re-run is always manual (docs/contract.md §2.1): the policy's own re-runs continue
    # the chain of the scheduled run they came from.
    scheduled = run.mode == RunMode.SCHEDULED.value or run.requested_by == REQUESTED_BY
    if not scheduled and not _manual_retried(session, run):
        return False
    return not _cancelled(session, run.run_id)


def fire_due(session: Session, now: datetime, delays: list[timedelta]) -> list[uuid.UUID]:
    """Queue the re-runs that are due; the new runs' ids."""
    if not delays:
        return []
    failed = session.scalars(
        select(IngestionRun)
        .where(
            IngestionRun.status == RunStatus.FAILED.value,
            IngestionRun.finished_at >= now - LOOK_BACK,
        )
        .order_by(IngestionRun.finished_at)
    ).all()
    queued = []
    for run in failed:
        pending = pending_retry(session, run, delays)
        if pending is None or pending.due_at > now:
            continue
        try:
            child = retry_run(session, run.run_id, requested_by=REQUESTED_BY)
        except Conflict:
            continue  # re-run by someone else meanwhile, or its limit reached
        lifecycle.record_event(
            session, run.run_id, run.trace_id, "auto_retry", EventStatus.SUCCESS,
            message=f"re-run {pending.attempt} of {len(delays)} queued as {child.run_id}",
        )  # fmt: skip
        queued.append(child.run_id)
    return queued


def cancel(session: Session, run: IngestionRun, *, by: str) -> None:
    """Stop the policy from re-running ``run`` (and so its chain)."""
    lifecycle.record_event(
        session, run.run_id, run.trace_id, CANCELLED_EVENT, EventStatus.WARN,
        message=f"automatic re-runs stopped by {by}",
    )  # fmt: skip


def _cancelled(session: Session, run_id: uuid.UUID) -> bool:
    return (
        session.scalar(
            select(IngestionEvent.id)
            .where(IngestionEvent.run_id == run_id, IngestionEvent.event_type == CANCELLED_EVENT)
            .limit(1)
        )
        is not None
    )


def _manual_retried(session: Session, run: IngestionRun) -> bool:
    dashboard: CsvDashboard = dashboard_of(session, run.run_id)
    return dashboard.retry_manual_runs


__all__ = [
    "CANCELLED_EVENT", "REQUESTED_BY", "TRANSIENT_CODES", "PendingRetry", "cancel", "fire_due",
    "pending_retry", "retries_exhausted",
]  # fmt: skip
