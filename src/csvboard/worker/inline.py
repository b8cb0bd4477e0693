"""Executes queued runs inside the serving process (the embedded case; SPEC 4 ``serve``).

One thread takes the oldest queued run, so runs apply in creation order, and executes it with
the same executor a worker uses; the claim is a compare-and-set, so a separate worker process
racing for the same run is harmless.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid

import structlog
from sqlalchemy import Engine, select

from csvboard.db.engine import read_session
from csvboard.ingest.runner import execute_run
from csvboard.runs.lifecycle import TransitionConflict
from csvboard.runs.models import IngestionRun
from csvboard.runs.vocabulary import RunStatus
from csvboard.settings import Settings

log = structlog.get_logger("csvboard.worker")


class InlineExecutor:
    def __init__(self, engine: Engine, settings: Settings, *, idle_seconds: float = 2.0) -> None:
        self.engine = engine
        self.settings = settings
        self.idle_seconds = idle_seconds
        self.worker_id = f"inline:{socket.gethostname()}:{os.getpid()}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="csvboard-inline", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify(self) -> None:
        """A run was queued: look now rather than at the next idle tick."""
        self._wake.set()

    def _next_run(self) -> uuid.UUID | None:
        with read_session(self.engine) as session:
            return session.scalar(
                select(IngestionRun.run_id)
                .where(IngestionRun.status == RunStatus.QUEUED.value)
                .order_by(IngestionRun.created_at, IngestionRun.run_id)
                .limit(1)
            )

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_id = self._next_run()
                if run_id is None:
                    self._wake.wait(self.idle_seconds)
                    self._wake.clear()
                    continue
                execute_run(self.engine, run_id, settings=self.settings, worker_id=self.worker_id)
            except TransitionConflict:
                continue  # someone else claimed or cancelled it first
            except Exception:
                log.exception("inline_executor_error")
                self._stop.wait(self.idle_seconds)
