"""Engines and sessions for both supported databases.

SQLite gets the settings a multi-process embedded deployment needs: WAL (readers never block the
writer), foreign keys on, a generous busy timeout (a kiosk write waits for an ingestion's merge
rather than failing), and transactions we begin ourselves so that the final merge of a run can
take the write lock up front with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from csvboard.settings import Settings

#: Execution option: on SQLite, BEGIN IMMEDIATE (take the write lock at the start).
SQLITE_IMMEDIATE = "csvboard_sqlite_immediate"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and pick psycopg 3, the driver csvboard is built on."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level; SQLAlchemy's "begin" event below issues BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def json_dumps(value: Any) -> str:
    """JSON as people read it: Japanese text stays Japanese (also on SQLite's TEXT columns)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_engine(url: str, settings: Settings | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url``; ``settings`` (read from the environment when omitted) gives
    SQLite's busy timeout."""
    url = normalize_url(url)
    kwargs.setdefault("json_serializer", json_dumps)
    if make_url(url).get_backend_name() == "sqlite":
        settings = settings or Settings.from_env()
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, round(settings.sqlite_busy_timeout_seconds * 1000))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


_sqlite_writers: dict[str, threading.RLock] = {}
_sqlite_writers_guard = threading.Lock()


def _sqlite_writer_lock(engine: Engine) -> threading.RLock:
    """One lock per SQLite database file per process, queueing this process's writers."""
    database = engine.url.database or ""
    with _sqlite_writers_guard:
        lock = _sqlite_writers.get(database)
        if lock is None:
            lock = _sqlite_writers[database] = threading.RLock()
        return lock


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A short write transaction; SQLite takes the write lock at BEGIN (no upgrade deadlock).

    On SQLite the writers of one process first queue on a process-wide lock, so at most one
    of them at a time waits in SQLite's busy handler. That handler sleeps and polls (up to
    100 ms a turn) and lets whoever polls first in: with 20 kiosk writes waiting, some lost
    every turn for seconds (bench: write p99 10 s idle at 1M rows) while the lock was free
    most of the time. Reentrant, so a write session nested in another one on the same thread
    behaves as before (SQLite's busy timeout decides), never an in-process deadlock.
    """
    if engine.dialect.name != "sqlite":
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
        return
    bind = engine.execution_options(**{SQLITE_IMMEDIATE: True})
    with (
        _sqlite_writer_lock(engine),
        Session(bind, expire_on_commit=False) as session,
        session.begin(),
    ):
        yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
