"""The worker: claims queued runs, executes them under a heartbeat lease, reaps lost ones.

Claiming is one transaction: pick the oldest *eligible* queued run — one with no earlier
queued or running run on the same dashboard, so a dashboard's runs apply strictly in creation
order while different dashboards run in parallel — lock it (PostgreSQL ``FOR UPDATE SKIP
LOCKED``, so any number of workers on any number of machines never take the same run; SQLite:
the write lock of ``BEGIN IMMEDIATE``), move it to ``running`` and take its lease. While the
run executes, a heartbeat thread renews the lease every few seconds; a run whose lease is older
than the timeout is failed ``WORKER_LOST`` by whichever worker's reaper sees it first. Because
a run's rows commit in one transaction at its end, a lost run committed nothing and a re-run is
safe.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, delete, select, text, update

from csvboard.clock import utcnow
from csvboard.db import upsert
from csvboard.db.engine import write_session
from csvboard.ingest.ledger import RunOutcome, begin_execution
from csvboard.ingest.runner import execute_run
from csvboard.runs import lifecycle
from csvboard.runs.health import WORKER_ABSENT
from csvboard.runs.lifecycle import RunCounts, TransitionConflict
from csvboard.runs.models import IngestionRun, IngestionRunLease, WorkerPresence
from csvboard.runs.vocabulary import RunStatus
from csvboard.settings import Settings

log = structlog.get_logger("csvboard.worker")

ELIGIBLE_SQL = """
SELECT r.run_id FROM ingestion_runs r
WHERE r.status = 'queued'
  AND NOT EXISTS (
    SELECT 1 FROM ingestion_run_sources s
    JOIN ingestion_run_sources s2 ON s2.csv_dashboard_id = s.csv_dashboard_id
    JOIN ingestion_runs r2 ON r2.run_id = s2.run_id
    WHERE s.run_id = r.run_id AND r2.run_id <> r.run_id
      AND (r2.status = 'running'
           OR (r2.status = 'queued' AND (r2.created_at, r2.run_id) < (r.created_at, r.run_id))))
ORDER BY r.created_at, r.run_id
LIMIT 1
"""


def default_worker_id(kind: str = "worker") -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_next_run(engine: Engine, worker_id: str) -> uuid.UUID | None:
    """Claim the oldest eligible queued run for ``worker_id``, or None if there is none."""
    sql = ELIGIBLE_SQL
    if engine.dialect.name == "postgresql":
        sql += " FOR UPDATE OF r SKIP LOCKED"
    with write_session(engine) as session:
        raw = session.execute(text(sql)).scalar_one_or_none()
        if raw is None:
            return None
        run_id = raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
        begin_execution(session, run_id, worker_id)
        return run_id


def reap_lost_runs(engine: Engine, settings: Settings) -> list[uuid.UUID]:
    """Fail ``WORKER_LOST`` every running run whose lease was not renewed in time."""
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.lease_timeout_seconds)
    query = (
        select(
            IngestionRun.run_id,
            IngestionRun.target_count,
            IngestionRun.failed_count,
            IngestionRunLease.worker_id,
        )
        .outerjoin(IngestionRunLease, IngestionRunLease.run_id == IngestionRun.run_id)
        .where(
            IngestionRun.status == RunStatus.RUNNING.value,
            IngestionRun.started_at < cutoff,
            (IngestionRunLease.heartbeat_at.is_(None)) | (IngestionRunLease.heartbeat_at < cutoff),
        )
    )
    if engine.dialect.name == "postgresql":
        # NO KEY UPDATE: a dead worker's last statement may still hold FOR KEY SHARE on the row
        # (from foreign-key checks); that must not make the reaper skip it.
        query = query.with_for_update(of=IngestionRun, skip_locked=True, key_share=True)
    reaped: list[uuid.UUID] = []
    with write_session(engine) as session:
        for run_id, target, failed, owner in session.execute(query).all():
            lifecycle.transition(
                session,
                run_id,
                expected=RunStatus.RUNNING,
                to=RunStatus.FAILED,
                counts=RunCounts(target=target, success=0, failed=failed),
                error_code="WORKER_LOST",
                message=f"worker {owner or 'unknown'} stopped renewing its lease for over"
                f" {settings.lease_timeout_seconds:g} s; nothing was committed, a re-run is safe",
                at=now,
            )
            session.execute(delete(IngestionRunLease).where(IngestionRunLease.run_id == run_id))
            reaped.append(run_id)
    for run_id in reaped:
        log.warning("run_reaped", run_id=str(run_id), error_code="WORKER_LOST")
    return reaped


class _Heartbeat:
    """Renews one run's lease every ``interval`` seconds on its own connection."""

    def __init__(self, engine: Engine, run_id: uuid.UUID, worker_id: str, interval: float) -> None:
        self.engine = engine
        self.run_id = run_id
        self.worker_id = worker_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="csvboard-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with write_session(self.engine) as session:
                    renewed = session.execute(
                        update(IngestionRunLease)
                        .where(
                            IngestionRunLease.run_id == self.run_id,
                            IngestionRunLease.worker_id == self.worker_id,
                        )
                        .values(heartbeat_at=utcnow())
                    ).rowcount  # type: ignore[attr-defined]
                if not renewed:
                    return  # the run ended (or was reaped): nothing left to renew
            except Exception:
                log.exception("heartbeat_failed", run_id=str(self.run_id))


#: A worker's presence row not seen for this long is deleted by the other workers.
PRESENCE_KEPT = timedelta(days=7)


def announce(
    engine: Engine, worker_id: str, started_at: datetime, *, stopped: bool = False
) -> None:
    """Say that ``worker_id`` is alive now (``worker_presence``), or that it stopped; drop
    the rows of workers gone for a week."""
    now = utcnow()
    with write_session(engine) as session:
        values: dict[str, Any] = {
            "worker_id": worker_id, "started_at": started_at, "seen_at": now,
            "stopped_at": now if stopped else None,
        }  # fmt: skip
        stmt = upsert.insert(session, WorkerPresence).values(**values)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["worker_id"],
                set_={k: stmt.excluded[k] for k in values if k not in ("worker_id", "started_at")},
            )
        )
        session.execute(delete(WorkerPresence).where(WorkerPresence.seen_at < now - PRESENCE_KEPT))


class _Presence:
    """Announces the worker every ``interval`` seconds on its own thread, so a worker busy
    with a long run is still seen (csvboard.alerts: "no worker")."""

    def __init__(self, engine: Engine, worker_id: str, interval: float) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.interval = interval
        self.started_at = utcnow()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="csvboard-presence", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5)
        try:
            announce(self.engine, self.worker_id, self.started_at, stopped=True)
        except Exception:
            log.exception("presence_failed", worker_id=self.worker_id)

    def _beat(self) -> None:
        while True:
            try:
                announce(self.engine, self.worker_id, self.started_at)
            except Exception:
                log.exception("presence_failed", worker_id=self.worker_id)
            if self._stop.wait(self.interval):
                return


class Worker:
    """Executes queued runs until stopped. One run at a time per worker."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        worker_id: str | None = None,
        poll_seconds: float | None = None,
        reap_every_seconds: float | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.poll_seconds = settings.worker_poll_seconds if poll_seconds is None else poll_seconds
        self.reap_every_seconds = (
            settings.reaper_interval_seconds if reap_every_seconds is None else reap_every_seconds
        )
        self.stopping = threading.Event()  # stop claiming
        self.abort = threading.Event()  # fail the current run at its next batch
        self._wake = threading.Event()
        self.log = log.bind(worker_id=self.worker_id)

    def notify(self) -> None:
        """A run was queued: look now rather than at the next poll."""
        self._wake.set()

    def run_one(self) -> RunOutcome | None:
        """Claim and execute one run; None when nothing is eligible."""
        try:
            run_id = claim_next_run(self.engine, self.worker_id)
        except TransitionConflict:
            return None
        if run_id is None:
            return None
        with _Heartbeat(self.engine, run_id, self.worker_id, self.settings.heartbeat_seconds):
            return execute_run(
                self.engine,
                run_id,
                settings=self.settings,
                worker_id=self.worker_id,
                claimed=True,
                abort=self.abort,
            )

    def run_forever(self) -> None:
        self.log.info("worker_started")
        # Often enough that "no worker for WORKER_ABSENT" never fires on a live one.
        every = min(self.reap_every_seconds, WORKER_ABSENT.total_seconds() / 4)
        presence = _Presence(self.engine, self.worker_id, every)
        presence.start()
        try:
            self._loop()
        finally:
            presence.stop()
        self.log.info("worker_stopped")

    def _loop(self) -> None:
        next_reap = 0.0
        while not self.stopping.is_set():
            try:
                if time.monotonic() >= next_reap:
                    reap_lost_runs(self.engine, self.settings)
                    next_reap = time.monotonic() + self.reap_every_seconds
                if self.run_one() is None:
                    self._wake.wait(self.poll_seconds)
                    self._wake.clear()
            except Exception:
                self.log.exception("worker_loop_error")
                self.stopping.wait(self.poll_seconds)

    def stop(self, *, abort_current: bool = False) -> None:
        self.stopping.set()
        self._wake.set()
        if abort_current:
            self.abort.set()


class WorkerThread:
    """A worker in a background thread of the serving process (``csvboard serve``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._thread = threading.Thread(
            target=worker.run_forever, name="csvboard-worker", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self.worker.notify()

    def stop(self, grace_seconds: float = 30.0) -> None:
        self.worker.stop()
        self._thread.join(grace_seconds)
        if self._thread.is_alive():
            self.worker.stop(abort_current=True)
            self._thread.join(grace_seconds)
