"""SQLite writers of one process queue on a process-wide lock before SQLite's busy handler."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, text

from csvboard.db.engine import make_engine, write_session


def test_a_second_writer_waits_in_the_process_not_in_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    other = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")  # same file, another engine
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n integer)"))
    with other.connect() as conn:  # pooled and configured before the race
        conn.execute(text("SELECT 1"))
    begins: list[float] = []

    def count_begin(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):  # about to be sent to SQLite
            begins.append(time.monotonic())

    for e in (engine, other):
        event.listen(e, "before_cursor_execute", count_begin)
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with write_session(engine) as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
            inside.set()
            release.wait(10)

    def second() -> None:
        with write_session(other) as s:
            s.execute(text("INSERT INTO t VALUES (2)"))

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(10)
    b = threading.Thread(target=second)
    b.start()
    time.sleep(0.3)
    # Without the process lock the second writer would be inside SQLite's busy handler now,
    # its BEGIN IMMEDIATE issued; with it, it has not begun at all.
    assert len(begins) == 1
    release.set()
    a.join(10)
    b.join(10)
    assert len(begins) == 2
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t ORDER BY n")).scalars().all() == [1, 2]
    engine.dispose()
    other.dispose()
