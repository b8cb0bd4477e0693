"""Which scheduler process leads (docs/contract.md §4, "Scheduler").

PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated connection held for the
scheduler's life: when the leader dies its session ends, the lock is free, and a follower
takes over at its next try. The server is told to probe the leader's socket (TCP keepalives)
so a leader whose machine vanished is also noticed in about 25 s. SQLite: an exclusive
non-blocking ``flock`` on a lock file next to the database, released by the kernel when the
process dies. Correctness never depends on leadership (see ``worker/scheduler.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

import structlog
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from csvboard.settings import Settings

log = structlog.get_logger("csvboard.scheduler")

#: The advisory lock key every csvboard scheduler contends for ("csvbSchd" as a bigint).
ADVISORY_LOCK_KEY = int.from_bytes(b"csvbSchd", "big")


class Leadership(Protocol):
    def acquire(self) -> bool:
        """Become or stay leader; False when another process leads."""
        ...

    def release(self) -> None: ...


class AdvisoryLockLeadership:
    """PostgreSQL: a session advisory lock on a connection of its own.

    The connection comes from a private one-connection engine rather than the shared pool: it
    lives as long as the scheduler, must never be handed to other code (a ``DISCARD ALL`` or a
    reset on check-in would not release a session lock, but closing it would), and runs in
    autocommit so it is never left "idle in transaction".
    """

    def __init__(self, engine: Engine, scheduler_id: str) -> None:
        self._engine = create_engine(engine.url, poolclass=NullPool)
        self._application_name = f"csvboard-scheduler:{scheduler_id}"[:63]
        self._conn: Connection | None = None
        self._held = False

    @property
    def connection(self) -> Connection | None:
        """The lock's connection (tests end its backend to simulate a dying leader)."""
        return self._conn

    def _connect(self) -> Connection:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        # Server-side keepalives: if the leader's machine disappears without closing the
        # socket, the server drops the session (and the lock) after ~10 + 3 x 5 s.
        conn.execute(
            text(
                "SELECT set_config('application_name', :name, false),"
                " set_config('tcp_keepalives_idle', '10', false),"
                " set_config('tcp_keepalives_interval', '5', false),"
                " set_config('tcp_keepalives_count', '3', false)"
            ),
            {"name": self._application_name},
        )
        return conn

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def acquire(self) -> bool:
        if self._conn is not None and self._held:
            try:
                # The session (and so the lock) is alive as long as this round trip works.
                self._conn.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                log.warning("scheduler_leadership_lost")
                self._drop()
        try:
            if self._conn is None:
                self._conn = self._connect()
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar()
        except DBAPIError:
            self._drop()
            return False
        self._held = bool(got)
        return self._held

    def release(self) -> None:
        # Ending the session releases the lock; an explicit unlock would add nothing.
        self._drop()
        self._engine.dispose()


class FileLockLeadership:
    """SQLite: ``flock`` on a lock file; the kernel releases it when the process dies.

    ``flock`` locks belong to the open file description, so two schedulers in one process
    (threads, tests) exclude each other too, unlike POSIX ``lockf`` record locks.
    """

    def __init__(self, path: Path, scheduler_id: str) -> None:
        self.path = path
        self._scheduler_id = scheduler_id
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        # Who leads, for a person looking at the file (the lock, not the content, is what counts).
        os.ftruncate(fd, 0)
        os.write(fd, f"{self._scheduler_id} pid={os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def lock_file_for(engine: Engine, settings: Settings) -> Path:
    """The SQLite leadership lock file: next to the database, or in the data directory."""
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        return Path(database).resolve().with_name(Path(database).name + ".scheduler.lock")
    return settings.data_dir / "scheduler.lock"
