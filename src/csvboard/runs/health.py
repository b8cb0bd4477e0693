"""The ledger's part of health (docs/contract.md §5, "Health"): a queue that does not move,
and running runs whose worker stopped renewing its lease."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from csvboard.runs.models import IngestionRun, IngestionRunLease, WorkerPresence
from csvboard.runs.vocabulary import RunStatus

#: A queued run older than this means no worker is taking runs.
STALE_QUEUE = timedelta(minutes=10)
#: A running run without a heartbeat for this long has lost its worker (the reaper fails it
#: after ``CSVBOARD_LEASE_TIMEOUT_SECONDS``; health reports it in the meantime).
LOST_HEARTBEAT = timedelta(seconds=60)


#: No worker has announced itself for this long: nothing takes the next run.
WORKER_ABSENT = timedelta(minutes=2)


@dataclass(frozen=True)
class LedgerHealth:
    stale_since: datetime | None  # when the oldest queued run was created, if too long ago
    without_heartbeat: int  # running runs whose worker has gone quiet


def oldest_queued_at(session: Session) -> datetime | None:
    """When the oldest run still queued was created (None: the queue is empty)."""
    return session.scalar(
        select(func.min(IngestionRun.created_at)).where(
            IngestionRun.status == RunStatus.QUEUED.value
        )
    )


def ledger_health(session: Session, now: datetime) -> LedgerHealth:
    oldest_queued = oldest_queued_at(session)
    quiet = session.scalar(
        select(func.count())
        .select_from(IngestionRun)
        .join(IngestionRunLease, IngestionRunLease.run_id == IngestionRun.run_id)
        .where(
            IngestionRun.status == RunStatus.RUNNING.value,
            IngestionRunLease.heartbeat_at < now - LOST_HEARTBEAT,
        )
    )
    stale = (
        oldest_queued if oldest_queued is not None and now - oldest_queued > STALE_QUEUE else None
    )
    return LedgerHealth(stale_since=stale, without_heartbeat=quiet or 0)


def last_worker_seen(session: Session) -> WorkerPresence | None:
    """The worker seen last (``worker_presence``), if any worker ever announced itself."""
    return session.scalars(
        select(WorkerPresence).order_by(WorkerPresence.seen_at.desc()).limit(1)
    ).first()
