"""The apply transaction's frame: one run at a time per dashboard, and what surrounds it.

``lock_dashboard`` serialises the runs of one dashboard in the caller's transaction;
``rows_marker`` tells a run, under that lock, whether the match it made before taking it
still holds; ``refresh_statistics`` refreshes PostgreSQL's planner statistics after a large
commit. The staging table is ``stage.Stage``; the statements of the apply are
``merge.Merge``'s; the runner (``runner.RunExecutor``) runs them in order.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, text


def lock_dashboard(conn: Connection, dashboard_id: uuid.UUID) -> None:
    """Writes to one dashboard's rows, in the caller's transaction, one at a time.

    PostgreSQL: an advisory lock until the transaction ends; SQLite: the write lock already
    serialises them.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"csvboard:dashboard:{dashboard_id}"},
        )


def rows_marker(conn: Connection, dashboard_id: uuid.UUID) -> tuple[int, int]:
    """What changes whenever a dashboard's stored rows may have: its committed runs and its
    row count. A run that matched its rows before taking the apply lock compares this under
    the lock to know the match still holds. Runs are never deleted and only runs add or
    change rows; the count catches the one other writer, the purge of retired rows
    (``dashboards.service.purge_retired``), which only deletes."""
    dash: Any = dashboard_id if conn.dialect.name == "postgresql" else dashboard_id.hex
    runs, rows = conn.execute(
        text(
            "SELECT (SELECT count(*) FROM ingestion_runs WHERE status IN ('succeeded', 'partial')"
            " AND run_id IN (SELECT run_id FROM ingestion_run_sources"
            " WHERE csv_dashboard_id = :dash)),"
            " (SELECT count(*) FROM csv_dashboard_rows WHERE csv_dashboard_id = :dash)"
        ),
        {"dash": dash},
    ).one()
    return int(runs), int(rows)


# After a commit that changed at least this many rows, and more than this share of the table,
# PostgreSQL's statistics of the tables a run writes are refreshed at once (see below).
ANALYZE_MIN_ROWS = 5_000
ANALYZE_MIN_SHARE = 0.1
_ANALYZED_TABLES = (
    "csv_dashboard_rows", "production_schedule_external_completion", "ingestion_items",
)  # fmt: skip


def refresh_statistics(conn: Connection, changed_rows: int) -> bool:
    """PostgreSQL: ``ANALYZE`` the written tables after a large change; True if it did.

    Autovacuum would, a minute or so later. Until then the planner still believes what it saw
    before — e.g. that a new dashboard's id matches no row — and the next run's joins over
    the rows it just wrote can choose a nested loop that visits every stored completion for
    every row (a 100,000-row re-ingest right after the first ingest, a second dashboard in
    the database: over 90 s instead of about 1 s). After the commit, in a transaction of its
    own; it waits briefly at most for an ANALYZE already running, and a failure only leaves
    the work to autovacuum.
    """
    if conn.dialect.name != "postgresql" or changed_rows < ANALYZE_MIN_ROWS:
        return False
    conn.begin()
    try:
        estimate = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = 'csv_dashboard_rows'::regclass"
        ).scalar_one()
        if changed_rows <= ANALYZE_MIN_SHARE * max(float(estimate), 0.0):
            conn.commit()
            return False
        conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        conn.exec_driver_sql(f"ANALYZE {', '.join(_ANALYZED_TABLES)}")
        conn.commit()
        return True
    except BaseException:
        conn.rollback()
        raise
