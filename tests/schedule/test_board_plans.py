from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, text

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.schedule import board, service
from support import Harness, schedule_line

from .test_service import do, load

Statement = tuple[str, Any]


@contextmanager
def captured(h: Harness) -> Iterator[list[Statement]]:
    seen: list[Statement] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(h.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(h.engine, "before_cursor_execute", record)


def plan(h: Harness, statement: str, parameters: Any) -> str:
    with h.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            return "\n".join(r[0] for r in rows)
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return "\n".join(f"{r[0]}|{r[1]}|{r[3]}" for r in rows)


def test_print(harness: Harness) -> None:
    lines = []
    for i in range(4200):
        s = i % 100
        lines.append(schedule_line(1_000_000_000 + (i * 7) % 50, f"S{s:07d}", f"P{(i // 100) % 40:03d}", 10 * (i // 4000 + 1) + (i % 3), resource=f"M{(i * 3 + s) % 7:02d}", progress="完了" if i % 10 == 0 else ""))
    for s in range(100):
        lines.append(schedule_line(1_000_000_000, f"S{s:07d}", "MH-0001", 1, resource="R00", name=f"機械{s}"))
    dashboard = load(harness, lines)
    with harness.read() as session:
        some = session.scalars(select(CsvDashboardRow.id).limit(300)).all()
    for rid in some[:200]:
        try:
            do(harness, service.set_completion, rid, "complete", by="t")
        except Exception:
            pass
    if harness.engine.dialect.name == "postgresql":
        with harness.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    seibans = [f"S{s:07d}" for s in range(0, 100, 5)]
    calls: dict[str, Callable[[Any], Any]] = {
        "list one": lambda s: service.list_rows(s, dashboard, resources=["M01"]),
        "list three": lambda s: service.list_rows(s, dashboard, resources=["M01", "M03", "M05"]),
        "list seibans": lambda s: service.list_rows(s, dashboard, seibans=seibans),
        "summary resource": lambda s: board.scoped_summary(s, dashboard, resource_list=["M02"]),
        "summary seibans": lambda s: board.scoped_summary(s, dashboard, seiban_list=seibans),
        "resources": lambda s: board.resources(s, dashboard),
        "rows_by_id": lambda s: board.rows_by_id(s, dashboard, list(some[:50])),
    }
    for name, call in calls.items():
        with harness.read() as session, captured(harness) as seen:
            call(session)
        print("=" * 30, name, harness.engine.dialect.name)
        for stmt, params in seen:
            if "csv_dashboard_rows" not in stmt:
                continue
            print("--", stmt[:300].replace("\n", " "))
            print(plan(harness, stmt, params))
