"""The ledger side of executing a run: claim it, report it between blocks, end it.

``RunLedger`` holds what a run's execution knows of itself (its counts so far, when it
started, the worker, the abort flag) and writes the ledger for it: the claim
(``queued → running`` and the lease, ``begin_execution``), the checkpoint between blocks
(counts, heartbeat, cancel, shutdown, timeout), the detected encoding, and the terminal
transition — in a short transaction of its own when nothing is committed, in the apply
transaction when the run commits (``_finish``). ``runner.RunExecutor`` is a ``RunLedger``
that stages and applies. Status changes go through ``runs.lifecycle``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard
from csvboard.db.engine import read_session, write_session
from csvboard.ingest.errors import RunError
from csvboard.ingest.failpoints import failpoint
from csvboard.ingest.merge import MergeContext
from csvboard.runs import lifecycle
from csvboard.runs.lifecycle import RunCounts
from csvboard.runs.models import IngestionRun, IngestionRunLease, IngestionRunSource
from csvboard.runs.service import dashboard_of, sources_of
from csvboard.runs.vocabulary import EventStatus, RunStatus
from csvboard.settings import Settings

log = structlog.get_logger("csvboard.ingest")

ProgressCallback = Callable[[RunCounts], None]


class Cancelled(Exception):
    """A cancel request was seen between batches."""


@dataclass
class _Tally:
    target: int = 0
    failed: int = 0

    def counts(self, success: int = 0) -> RunCounts:
        return RunCounts(target=self.target, success=success, failed=self.failed)


@dataclass
class RunOutcome:
    run_id: uuid.UUID
    status: RunStatus
    counts: RunCounts
    error_code: str | None = None
    message: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)


class RunLedger:
    """A run being executed, as the ledger sees it. Create one per run (``RunExecutor``)."""

    def __init__(
        self,
        engine: Engine,
        run_id: uuid.UUID,
        *,
        settings: Settings,
        worker_id: str,
        on_progress: ProgressCallback | None = None,
        claimed: bool = False,
        abort: threading.Event | None = None,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.settings = settings
        self.worker_id = worker_id
        self.on_progress = on_progress
        # claimed: the caller already moved the run to running and holds its lease.
        self.claimed = claimed
        # abort: set by a worker shutting down; the run then fails cleanly at its next batch.
        self.abort = abort or threading.Event()
        self.tally = _Tally()
        self.started = time.monotonic()
        self.log = log.bind(run_id=str(run_id), worker_id=worker_id)

    # -- ledger helpers (short transactions of their own) ---------------------------------
    def _claim(self) -> tuple[IngestionRun, CsvDashboard, list[IngestionRunSource]]:
        with write_session(self.engine) as session:
            if not self.claimed:
                begin_execution(session, self.run_id, self.worker_id)
            run = session.get_one(IngestionRun, self.run_id)
            if run.status != RunStatus.RUNNING.value:
                raise lifecycle.TransitionConflict(
                    "TRANSITION_CONFLICT", f"run {self.run_id} is {run.status}, not running"
                )
            dashboard = dashboard_of(session, self.run_id)
            sources = sources_of(session, self.run_id)
            self.log = self.log.bind(trace_id=run.trace_id, dashboard=dashboard.slug)
            return run, dashboard, sources

    def _checkpoint(self) -> None:
        """Between batches: publish counts, heartbeat, honour cancel and the run timeout."""
        counts = self.tally.counts()
        with write_session(self.engine) as session:
            lifecycle.update_progress(session, self.run_id, counts)
            session.execute(
                update(IngestionRunLease)
                .where(IngestionRunLease.run_id == self.run_id)
                .values(heartbeat_at=utcnow())
            )
            cancel = lifecycle.cancel_requested(session, self.run_id)
        if self.on_progress:
            self.on_progress(counts)
        if cancel:
            raise Cancelled()
        if self.abort.is_set():
            raise RunError(
                "WORKER_SHUTDOWN",
                f"worker {self.worker_id} stopped before the run committed; nothing was"
                " committed, re-run it",
            )
        if time.monotonic() - self.started > self.settings.run_timeout_seconds:
            raise RunError(
                "RUN_TIMEOUT", f"the run exceeded its {self.settings.run_timeout_seconds} s limit"
            )

    def _record_encoding(self, source_id: uuid.UUID, codec: str) -> None:
        with write_session(self.engine) as session:
            session.execute(
                update(IngestionRunSource)
                .where(IngestionRunSource.id == source_id)
                .values(detected_encoding=codec)
            )

    def _end_without_commit(
        self, to: RunStatus, *, error_code: str | None, message: str
    ) -> RunOutcome:
        counts = self.tally.counts()
        try:
            self._transition_out(to, counts, error_code=error_code, message=message)
        except lifecycle.TransitionConflict:
            # Someone ended the run first (the reaper, say): report what the ledger says.
            with read_session(self.engine) as session:
                status = RunStatus(session.get_one(IngestionRun, self.run_id).status)
            self.log.warning("run_already_ended", status=status.value)
            return RunOutcome(self.run_id, status, counts, error_code, message)
        return RunOutcome(self.run_id, to, counts, error_code, message)

    def _transition_out(
        self, to: RunStatus, counts: RunCounts, *, error_code: str | None, message: str
    ) -> None:
        with write_session(self.engine) as session:
            self._end_in(session, to, counts, error_code=error_code, message=message)

    def _end_in(
        self,
        session: Session,
        to: RunStatus,
        counts: RunCounts,
        *,
        error_code: str | None,
        message: str,
    ) -> None:
        """The terminal transition, and the lease goes: nobody executes the run any more."""
        lifecycle.transition(
            session,
            self.run_id,
            expected=RunStatus.RUNNING,
            to=to,
            counts=counts,
            error_code=error_code,
            message=message,
        )
        session.execute(delete(IngestionRunLease).where(IngestionRunLease.run_id == self.run_id))

    def _finish(
        self,
        conn: Any,
        ctx: MergeContext,
        summary: dict[str, Any],
        *,
        success: int,
        lock_started: float,
    ) -> RunOutcome:
        """Last checks, then the terminal transition and commit — in the apply transaction."""
        counts = self.tally.counts(success=success)
        with Session(bind=conn) as session:
            if lifecycle.cancel_requested(session, self.run_id):
                raise Cancelled()
            if counts.failed == 0:
                to, code, message = RunStatus.SUCCEEDED, None, "applied"
            elif counts.success > 0:
                to, code = RunStatus.PARTIAL, None
                message = f"applied; {counts.failed} row(s) rejected"
            else:
                to, code = RunStatus.FAILED, "ALL_ROWS_REJECTED"
                message = f"all {counts.failed} row(s) were rejected; nothing was applied"
            summary["duration_seconds"] = round(time.monotonic() - self.started, 3)
            summary["lock_seconds"] = round(time.monotonic() - lock_started, 3)
            trace_id = session.scalar(
                select(IngestionRun.trace_id).where(IngestionRun.run_id == self.run_id)
            )
            lifecycle.record_event(
                session, self.run_id, trace_id or "", "summary", EventStatus.SUCCESS,
                message=_describe(summary), details=summary,
            )  # fmt: skip
            self._end_in(session, to, counts, error_code=code, message=message)
            session.flush()
        failpoint("before_commit")
        conn.commit()
        failpoint("after_commit")
        self.log.info("run_finished", status=to.value, **counts.columns(), **summary)
        if self.on_progress:
            self.on_progress(counts)
        return RunOutcome(self.run_id, to, counts, code, message, summary)


def _describe(summary: dict[str, Any]) -> str:
    parts = [
        f"{summary.get(k, 0)} {k}"
        for k in ("inserted", "updated", "unchanged", "supplemented", "retired", "excluded")
        if summary.get(k)
    ]
    return ", ".join(parts) or "no row changed"


def begin_execution(session: Session, run_id: uuid.UUID, worker_id: str) -> None:
    """``queued → running`` and take the run's lease, in the caller's transaction."""
    lifecycle.transition(
        session,
        run_id,
        expected=RunStatus.QUEUED,
        to=RunStatus.RUNNING,
        message=f"started by {worker_id}",
    )
    now = utcnow()
    updated = session.execute(
        update(IngestionRunLease)
        .where(IngestionRunLease.run_id == run_id)
        .values(worker_id=worker_id, heartbeat_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not updated:
        session.add(
            IngestionRunLease(
                run_id=run_id, worker_id=worker_id, heartbeat_at=now, cancel_requested=False
            )
        )
        session.flush()
