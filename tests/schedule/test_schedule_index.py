"""The schedule index (migration 0004) serves what a kiosk tap and the board ask for.

Every kiosk write answers with the composed row, whose machine name is looked up by 製番; the
lookup must find that 製番's rows in the index rather than reading every row of the dashboard
(a full scan per tap grows with the schedule). An expression index is only used when the
query's expression is the very one indexed, so this reads each engine's own plan of the
queries the service builds. On PostgreSQL the table is analysed (as autovacuum would) and
sequential scans are discouraged, since on a small table a scan is cheaper and the planner
would rightly pick it.
"""

from __future__ import annotations

from sqlalchemy import select, text

from csvboard.dashboards.models import CsvDashboardRow
from csvboard.schedule import composed, expressions, queries
from support import SCHEDULE_HEADER, Harness, schedule_line

INDEX = "ix_csv_dashboard_rows_schedule_order"


def _plan(h: Harness, statement: object) -> str:
    with h.engine.connect() as conn:
        compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE csv_dashboard_rows"))  # as autovacuum would have
            conn.execute(text("SET enable_seqscan = off"))
            rows = conn.execute(text(f"EXPLAIN {compiled}")).all()
        else:
            rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return "\n".join(str(r[-1]) for r in rows)


def test_machine_name_lookup_and_board_order_use_the_index(harness: Harness) -> None:
    board = harness.dashboard()
    lines = [schedule_line(1000 + i, f"S{i // 5:07d}", f"P{i:04d}", 10) for i in range(200)]
    lines += [schedule_line(9000, "S0000003", "MH-1", 0, name="旋盤㈱")]
    harness.ingest(board, "\n".join([SCHEDULE_HEADER, *lines]) + "\n", kind="official_ingestion")
    with harness.read() as session:
        f = expressions.fields(session)
        lookup = composed.machine_name_column(f)
        step_id = session.scalar(
            select(CsvDashboardRow.id).where(CsvDashboardRow.row_key.contains("P0016"))
        )
        # The composed row names its machine (and the lookup is the index's).
        assert queries.get_row(session, step_id)["machine_name"] == "旋盤㈱"
    by_seiban = select(lookup.element)
    plan = _plan(harness, by_seiban.where(CsvDashboardRow.id == step_id))
    assert INDEX in plan, plan
    page = (
        select(CsvDashboardRow.id)
        .where(CsvDashboardRow.csv_dashboard_id == board.id)
        .order_by(f.seiban, f.product_no)
        .limit(100)
    )
    plan = _plan(harness, page)
    assert INDEX in plan, plan
