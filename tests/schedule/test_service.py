"""The production-schedule service: operator writes, composed reads, search, paging, summary.

Every test runs on SQLite and PostgreSQL (``db_url``) against a dashboard filled by the real
ingestion engine, so the JSON extraction, collation and upsert SQL of both dialects is what is
being tested, not a mock of it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from csvboard.dashboards.columns import ColumnDef, DashboardSchema
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.service import create_dashboard
from csvboard.db.engine import normalize_url
from csvboard.errors import Conflict, CsvboardError, InvalidRequest, NotFound
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule import commands, expressions, queries, search
from csvboard.schedule.models import (
    ProductionScheduleProgress,
    ProductionScheduleRowNote,
    ProductionScheduleRowOrder,
)
from csvboard.schedule.progress import progress_summary
from support import SCHEDULE_HEADER, Harness, schedule_line

T = TypeVar("T")
Key = tuple[str, str, str, str]  # FSEIBAN, FHINCD, FSIGENCD, FKOJUN


# --- helpers --------------------------------------------------------------------------------


def csv_text(lines: Iterable[str]) -> str:
    return "\n".join([SCHEDULE_HEADER, *lines]) + "\n"


def load(
    harness: Harness, lines: Iterable[str], *, kind: str = "official_ingestion"
) -> CsvDashboard:
    dashboard = harness.dashboard()
    ingest(harness, dashboard, lines, kind=kind)
    return dashboard


def ingest(
    harness: Harness,
    dashboard: CsvDashboard,
    lines: Iterable[str],
    *,
    kind: str = "official_ingestion",
) -> None:
    outcome = harness.ingest(dashboard, csv_text(lines), kind=kind)
    assert outcome.status is RunStatus.SUCCEEDED, outcome


def key_of(row: dict[str, Any]) -> Key:
    d = row["row_data"]
    return (d["FSEIBAN"], d["FHINCD"], d["FSIGENCD"], d["FKOJUN"])


def do(harness: Harness, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a service function in its own committed write transaction."""
    with harness.write() as session:
        return fn(session, *args, **kwargs)


def refused(
    harness: Harness,
    error: type[CsvboardError],
    code: str,
    fn: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> str:
    with pytest.raises(error) as info:
        do(harness, fn, *args, **kwargs)
    assert info.value.code == code, info.value
    return info.value.message


def rows(harness: Harness, dashboard: CsvDashboard, **kwargs: Any) -> list[dict[str, Any]]:
    """Every row the list returns with these filters (all pages)."""
    kwargs.setdefault("limit", 2000)
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    with harness.read() as session:
        while True:
            page, cursor = queries.list_rows(session, dashboard, cursor=cursor, **kwargs)
            out.extend(page)
            if cursor is None:
                return out


def keys(harness: Harness, dashboard: CsvDashboard, **kwargs: Any) -> list[Key]:
    return [key_of(r) for r in rows(harness, dashboard, **kwargs)]


def ids(harness: Harness, dashboard: CsvDashboard) -> dict[Key, uuid.UUID]:
    every = rows(harness, dashboard, include_retired=True, include_machine_rows=True)
    return {key_of(r): uuid.UUID(r["id"]) for r in every}


def get(harness: Harness, row_id: uuid.UUID) -> dict[str, Any]:
    with harness.read() as session:
        return queries.get_row(session, row_id)


def count(harness: Harness, model: Any, **where: Any) -> int:
    with harness.read() as session:
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return int(session.scalar(stmt) or 0)


def orders(harness: Harness, dashboard: CsvDashboard, resource: str) -> dict[int, uuid.UUID]:
    with harness.read() as session:
        found = session.execute(
            select(
                ProductionScheduleRowOrder.order_number,
                ProductionScheduleRowOrder.csv_dashboard_row_id,
            ).where(
                ProductionScheduleRowOrder.csv_dashboard_id == dashboard.id,
                ProductionScheduleRowOrder.resource_cd == resource,
            )
        )
        return {int(n): rid for n, rid in found}


SEIBAN = "AB123456"


def four_steps() -> list[str]:
    """Four steps of one part on R01 (kojun 10–40) plus one on R02 and the machine row."""
    return [
        schedule_line(1, SEIBAN, "MH-0001", 1, name="組立機①"),
        *(schedule_line(1, SEIBAN, "P100", k, name="シャフト") for k in (10, 20, 30, 40)),
        schedule_line(1, SEIBAN, "P100", 50, resource="R02", name="シャフト"),
    ]


@pytest.fixture
def four(harness: Harness) -> tuple[CsvDashboard, dict[Key, uuid.UUID]]:
    dashboard = load(harness, four_steps())
    return dashboard, ids(harness, dashboard)


def step(n: int, resource: str = "R01") -> Key:
    return (SEIBAN, "P100", resource, str(n))


# --- composition ----------------------------------------------------------------------------


def test_composed_row_carries_operator_data_and_a_synthesised_progress(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    dashboard, by_key = four
    rid = by_key[step(10)]
    do(harness, commands.set_completion, rid, "complete", by="worker-1")
    do(harness, commands.set_note, rid, "  treat gently ", by="planner")
    do(harness, commands.set_due_date, rid, "2026-03-01", by="planner")
    do(harness, commands.set_processing_type, rid, "塗装", by="planner")
    row = get(harness, rid)
    assert row["id"] == str(rid)
    assert row["row_key"] == '["AB123456","P100","R01","10"]'
    assert row["row_data"]["progress"] == "完了"
    assert row["row_data"]["FHINMEI"] == "シャフト"
    assert row["completed"] is True and row["manual_completed"] is True
    assert row["external_completed"] is False
    assert row["note"] == "treat gently"
    assert row["due_date"] == "2026-03-01"
    assert row["processing_type"] == "塗装"
    assert row["order"] is None
    assert row["machine_name"] == "組立機①"
    assert row["is_active"] is True
    assert row["updated_at"] is not None and datetime.fromisoformat(row["updated_at"]).tzinfo
    # The stored row_data is the CSV's own values only: progress is never written into it.
    with harness.read() as session:
        stored = session.scalars(select(CsvDashboardRow.row_data)).all()
    assert stored and all("progress" not in d for d in stored)
    # updated_by records who.
    with harness.read() as session:
        who = session.scalar(
            select(ProductionScheduleProgress.updated_by).where(
                ProductionScheduleProgress.csv_dashboard_row_id == rid
            )
        )
    assert who == "worker-1"
    # A listed row composes the same way.
    listed = {key_of(r): r for r in rows(harness, dashboard)}
    assert listed[step(10)]["row_data"]["progress"] == "完了"
    assert listed[step(20)]["row_data"]["progress"] == ""
    assert listed[step(20)]["note"] is None


def test_progress_is_manual_or_external(harness: Harness) -> None:
    dashboard = load(
        harness,
        [
            schedule_line(1, SEIBAN, "P1", 10, progress=""),  # neither
            schedule_line(1, SEIBAN, "P2", 10, progress=""),  # manual only
            schedule_line(1, SEIBAN, "P3", 10, progress="完了"),  # external only
            schedule_line(1, SEIBAN, "P4", 10, progress="完了"),  # both
        ],
    )
    by_key = ids(harness, dashboard)
    for part in ("P2", "P4"):
        do(
            harness,
            commands.set_completion,
            by_key[(SEIBAN, part, "R01", "10")],
            "complete",
            by="w",
        )
    got = {key_of(r)[1]: r for r in rows(harness, dashboard)}
    expected = {
        "P1": (False, False, False, ""),
        "P2": (True, True, False, "完了"),
        "P3": (True, False, True, "完了"),
        "P4": (True, True, True, "完了"),
    }
    for part, (completed, manual, external, progress) in expected.items():
        r = got[part]
        assert (r["completed"], r["manual_completed"], r["external_completed"]) == (
            completed,
            manual,
            external,
        ), part
        assert r["row_data"]["progress"] == progress, part


# --- completion -----------------------------------------------------------------------------


def test_double_complete_is_idempotent_never_a_toggle(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    _, by_key = four
    rid = by_key[step(10)]
    first = do(harness, commands.set_completion, rid, "complete", by="a")
    second = do(harness, commands.set_completion, rid, "complete", by="b")
    assert first["completed"] is True and second["completed"] is True
    assert count(harness, ProductionScheduleProgress) == 1
    with harness.read() as session:
        record = session.execute(
            select(ProductionScheduleProgress.updated_by, ProductionScheduleProgress.updated_at)
        ).one()
    # The second identical tap changed nothing (not even who/when).
    assert record.updated_by == "a"
    assert second["updated_at"] == first["updated_at"]


def test_incomplete_after_complete(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    _, by_key = four
    rid = by_key[step(10)]
    do(harness, commands.set_completion, rid, "complete", by="w")
    row = do(harness, commands.set_completion, rid, "incomplete", by="w")
    assert row["completed"] is False and row["row_data"]["progress"] == ""
    row = do(harness, commands.set_completion, rid, "incomplete", by="w")
    assert row["completed"] is False
    # Incomplete on a never-completed step is fine too.
    assert (
        do(harness, commands.set_completion, by_key[step(20)], "incomplete", by="w")["completed"]
        is False
    )


@pytest.mark.parametrize("intent", ["toggle", "", "COMPLETE", "done"])
def test_invalid_intent(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]], intent: str
) -> None:
    _, by_key = four
    refused(
        harness,
        InvalidRequest,
        "INVALID_INTENT",
        commands.set_completion,
        by_key[step(10)],
        intent,
        by="w",
    )
    assert count(harness, ProductionScheduleProgress) == 0


def test_incomplete_on_an_externally_completed_step_stays_effectively_complete(
    harness: Harness,
) -> None:
    dashboard = load(harness, [schedule_line(1, SEIBAN, "P1", 10, progress="完了")])
    rid = next(iter(ids(harness, dashboard).values()))
    do(harness, commands.set_completion, rid, "complete", by="w")
    row = do(harness, commands.set_completion, rid, "incomplete", by="w")
    assert row["manual_completed"] is False
    assert row["external_completed"] is True
    assert row["completed"] is True and row["row_data"]["progress"] == "完了"


# --- machining order ------------------------------------------------------------------------


def test_completing_releases_the_order_number_and_closes_the_gap(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    dashboard, by_key = four
    a, b, c, d = (by_key[step(k)] for k in (10, 20, 30, 40))
    other = by_key[step(50, "R02")]
    for number, rid in enumerate((a, b, c, d), start=1):
        row = do(harness, commands.set_order, rid, "R01", number, by="planner")
        assert row["order"] == {"resource_cd": "R01", "order_number": number}
    do(harness, commands.set_order, other, "R02", 2, by="planner")
    assert orders(harness, dashboard, "R01") == {1: a, 2: b, 3: c, 4: d}

    row = do(harness, commands.set_completion, b, "complete", by="worker")
    assert row["order"] is None and row["completed"] is True
    assert orders(harness, dashboard, "R01") == {1: a, 2: c, 3: d}
    assert get(harness, c)["order"] == {"resource_cd": "R01", "order_number": 2}
    assert get(harness, d)["order"] == {"resource_cd": "R01", "order_number": 3}
    # Another resource's numbers are not renumbered.
    assert orders(harness, dashboard, "R02") == {2: other}

    # Completing the first closes the gap again; completing the last leaves the rest.
    do(harness, commands.set_completion, a, "complete", by="worker")
    assert orders(harness, dashboard, "R01") == {1: c, 2: d}
    do(harness, commands.set_completion, d, "complete", by="worker")
    assert orders(harness, dashboard, "R01") == {1: c}
    # Undoing a completion does not bring the number back.
    do(harness, commands.set_completion, b, "incomplete", by="worker")
    assert get(harness, b)["order"] is None


def test_clearing_an_order_closes_the_gap_behind_it(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    dashboard, by_key = four
    a, b, c, d = (by_key[step(k)] for k in (10, 20, 30, 40))
    for number, rid in enumerate((a, b, c, d), start=1):
        do(harness, commands.set_order, rid, "R01", number, by="planner")
    row = do(harness, commands.set_order, a, "R01", None, by="planner")
    assert row["order"] is None
    assert orders(harness, dashboard, "R01") == {1: b, 2: c, 3: d}
    # Clearing a step without an order is a no-op.
    do(harness, commands.set_order, a, "R01", None, by="planner")
    assert orders(harness, dashboard, "R01") == {1: b, 2: c, 3: d}


def test_order_numbers_are_unique_per_resource(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    dashboard, by_key = four
    a, b = by_key[step(10)], by_key[step(20)]
    do(harness, commands.set_order, a, "R01", 1, by="p")
    message = refused(
        harness, Conflict, "ORDER_NUMBER_TAKEN", commands.set_order, b, "R01", 1, by="p"
    )
    assert "1" in message and "R01" in message
    # The same number again on the same step is idempotent; moving to a free number works.
    assert do(harness, commands.set_order, a, "R01", 1, by="p")["order"]["order_number"] == 1
    assert do(harness, commands.set_order, a, "R01", 5, by="p")["order"]["order_number"] == 5
    assert do(harness, commands.set_order, b, "R01", 1, by="p")["order"]["order_number"] == 1
    # Number 1 on another resource is a different slot.
    assert do(harness, commands.set_order, by_key[step(50, "R02")], "R02", 1, by="p")["order"] == {
        "resource_cd": "R02",
        "order_number": 1,
    }
    assert orders(harness, dashboard, "R01") == {1: b, 5: a}


def test_order_resource_must_be_the_rows_resource(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    _, by_key = four
    rid = by_key[step(10)]
    message = refused(
        harness, InvalidRequest, "RESOURCE_MISMATCH", commands.set_order, rid, "R02", 1, by="p"
    )
    assert "R01" in message
    refused(harness, InvalidRequest, "RESOURCE_MISMATCH", commands.set_order, rid, "", 1, by="p")
    # Full-width input is the same code after NFKC.
    assert (
        do(harness, commands.set_order, rid, "Ｒ０１", 1, by="p")["order"]["resource_cd"] == "R01"
    )


@pytest.mark.parametrize("number", [0, 11, -1, True])
def test_order_number_range(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]], number: Any
) -> None:
    _, by_key = four
    refused(
        harness,
        InvalidRequest,
        "INVALID_ORDER",
        commands.set_order,
        by_key[step(10)],
        "R01",
        number,
        by="p",
    )
    assert count(harness, ProductionScheduleRowOrder) == 0


def test_a_completed_step_cannot_be_ordered(harness: Harness) -> None:
    dashboard = load(
        harness,
        [schedule_line(1, SEIBAN, "P1", 10), schedule_line(1, SEIBAN, "P2", 10, progress="完了")],
    )
    by_key = ids(harness, dashboard)
    manual, external = by_key[(SEIBAN, "P1", "R01", "10")], by_key[(SEIBAN, "P2", "R01", "10")]
    do(harness, commands.set_completion, manual, "complete", by="w")
    refused(harness, Conflict, "STEP_COMPLETED", commands.set_order, manual, "R01", 1, by="p")
    refused(harness, Conflict, "STEP_COMPLETED", commands.set_order, external, "R01", 1, by="p")
    do(harness, commands.set_completion, manual, "incomplete", by="w")
    assert do(harness, commands.set_order, manual, "R01", 1, by="p")["order"]["order_number"] == 1


# --- notes, due dates, processing -----------------------------------------------------------


def test_note_validation(harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]) -> None:
    _, by_key = four
    rid = by_key[step(10)]
    message = refused(
        harness, InvalidRequest, "INVALID_NOTE", commands.set_note, rid, "あ" * 101, by="p"
    )
    assert "101" in message and "100" in message
    for bad in ("line one\nline two", "a\rb", "trailing\n"):
        message = refused(
            harness, InvalidRequest, "INVALID_NOTE", commands.set_note, rid, bad, by="p"
        )
        assert "line" in message
    assert count(harness, ProductionScheduleRowNote) == 0

    assert do(harness, commands.set_note, rid, "髙" * 100, by="p")["note"] == "髙" * 100
    assert do(harness, commands.set_note, rid, "short ①", by="p")["note"] == "short ①"
    assert count(harness, ProductionScheduleRowNote) == 1
    # Empty (after trimming) clears: the record is deleted, not stored empty.
    assert do(harness, commands.set_note, rid, "   ", by="p")["note"] is None
    assert count(harness, ProductionScheduleRowNote) == 0
    do(harness, commands.set_note, rid, "again", by="p")
    assert do(harness, commands.set_note, rid, "", by="p")["note"] is None
    assert count(harness, ProductionScheduleRowNote) == 0


def test_due_dates(harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]) -> None:
    _, by_key = four
    rid = by_key[step(10)]
    assert do(harness, commands.set_due_date, rid, "2026-02-28", by="p")["due_date"] == "2026-02-28"
    assert (
        do(harness, commands.set_due_date, rid, date(2026, 3, 31), by="p")["due_date"]
        == "2026-03-31"
    )
    assert do(harness, commands.set_due_date, rid, "", by="p")["due_date"] is None
    do(harness, commands.set_due_date, rid, "2026-04-01", by="p")
    assert do(harness, commands.set_due_date, rid, None, by="p")["due_date"] is None
    for bad in ("2026-02-30", "2026/02/28", "20260228", "tomorrow", "2026-2-1"):
        refused(
            harness, InvalidRequest, "INVALID_DUE_DATE", commands.set_due_date, rid, bad, by="p"
        )
    refused(
        harness,
        InvalidRequest,
        "INVALID_DUE_DATE",
        commands.set_due_date,
        rid,
        datetime(2026, 1, 1),
        by="p",
    )
    assert get(harness, rid)["due_date"] is None


def test_processing_types(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    dashboard, by_key = four
    rid = by_key[step(10)]
    for value in ("塗装", "カニゼン", "LSLH", "その他01", "その他02"):
        assert (
            do(harness, commands.set_processing_type, rid, value, by="p")["processing_type"]
            == value
        )
    # Full-width input of an option is that option.
    assert (
        do(harness, commands.set_processing_type, rid, "ＬＳＬＨ", by="p")["processing_type"]
        == "LSLH"
    )
    message = refused(
        harness,
        InvalidRequest,
        "INVALID_PROCESSING_TYPE",
        commands.set_processing_type,
        rid,
        "溶接",
        by="p",
    )
    assert "塗装" in message
    assert get(harness, rid)["processing_type"] == "LSLH"
    assert do(harness, commands.set_processing_type, rid, "", by="p")["processing_type"] is None
    do(harness, commands.set_processing_type, rid, "塗装", by="p")
    assert do(harness, commands.set_processing_type, rid, None, by="p")["processing_type"] is None
    # The option list is the dashboard's own.
    with harness.write() as session:
        stored = session.get_one(CsvDashboard, dashboard.id)
        stored.options = {**stored.options, "processing_types": ["溶接", "研磨"]}
    assert (
        do(harness, commands.set_processing_type, rid, "溶接", by="p")["processing_type"] == "溶接"
    )
    refused(
        harness,
        InvalidRequest,
        "INVALID_PROCESSING_TYPE",
        commands.set_processing_type,
        rid,
        "塗装",
        by="p",
    )


# --- which rows may be written --------------------------------------------------------------


def test_retired_rows_are_readable_but_refuse_writes(harness: Harness) -> None:
    dashboard = load(
        harness, [schedule_line(1, SEIBAN, "P1", 10), schedule_line(1, SEIBAN, "P2", 10)]
    )
    by_key = ids(harness, dashboard)
    gone = by_key[(SEIBAN, "P2", "R01", "10")]
    do(harness, commands.set_note, gone, "before retirement", by="p")
    ingest(harness, dashboard, [schedule_line(1, SEIBAN, "P1", 10)])
    row = get(harness, gone)
    assert row["is_active"] is False and row["note"] == "before retirement"
    refused(harness, Conflict, "ROW_RETIRED", commands.set_completion, gone, "complete", by="w")
    refused(harness, Conflict, "ROW_RETIRED", commands.set_note, gone, "x", by="w")
    refused(harness, Conflict, "ROW_RETIRED", commands.set_note, gone, "", by="w")
    refused(harness, Conflict, "ROW_RETIRED", commands.set_due_date, gone, "2026-01-01", by="w")
    refused(harness, Conflict, "ROW_RETIRED", commands.set_processing_type, gone, "塗装", by="w")
    refused(harness, Conflict, "ROW_RETIRED", commands.set_order, gone, "R01", 1, by="w")
    # Input errors come first (400 before 409).
    refused(
        harness, InvalidRequest, "INVALID_INTENT", commands.set_completion, gone, "toggle", by="w"
    )
    assert get(harness, gone)["note"] == "before retirement"


def test_unknown_rows_are_404(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    missing = uuid.uuid4()
    with harness.read() as session, pytest.raises(NotFound) as info:
        queries.get_row(session, missing)
    assert info.value.code == "ROW_NOT_FOUND"
    refused(
        harness, NotFound, "ROW_NOT_FOUND", commands.set_completion, missing, "complete", by="w"
    )
    refused(harness, NotFound, "ROW_NOT_FOUND", commands.set_note, missing, "x", by="w")
    refused(harness, NotFound, "ROW_NOT_FOUND", commands.set_due_date, missing, None, by="w")
    refused(
        harness, NotFound, "ROW_NOT_FOUND", commands.set_processing_type, missing, "塗装", by="w"
    )
    refused(harness, NotFound, "ROW_NOT_FOUND", commands.set_order, missing, "R01", 1, by="w")
    # 400 before 404: a bad intent is reported even for an unknown row.
    refused(
        harness, InvalidRequest, "INVALID_INTENT", commands.set_completion, missing, "flip", by="w"
    )


def test_rows_of_a_generic_dashboard_are_not_a_schedule(harness: Harness) -> None:
    schema = DashboardSchema(
        columns=(ColumnDef(name="code"), ColumnDef(name="FSIGENCD")), key_columns=("code",)
    )
    with harness.write() as session:
        generic = create_dashboard(session, "generic", schema=schema)
    outcome = harness.ingest(generic, "code,FSIGENCD\nA1,R01\n", kind="official_ingestion")
    assert outcome.status is RunStatus.SUCCEEDED
    with harness.read() as session:
        rid = session.scalar(
            select(CsvDashboardRow.id).where(CsvDashboardRow.csv_dashboard_id == generic.id)
        )
    assert rid is not None
    refused(
        harness, InvalidRequest, "NOT_A_SCHEDULE", commands.set_completion, rid, "complete", by="w"
    )
    refused(harness, InvalidRequest, "NOT_A_SCHEDULE", commands.set_order, rid, "R01", 1, by="w")
    refused(harness, InvalidRequest, "NOT_A_SCHEDULE", queries.get_row, rid)
    refused(harness, InvalidRequest, "NOT_A_SCHEDULE", queries.list_rows, generic)
    refused(harness, InvalidRequest, "NOT_A_SCHEDULE", progress_summary, generic)
    assert count(harness, ProductionScheduleProgress) == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_operator_writes_do_not_wait_for_an_ingestion_holding_row_locks(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    """An ingestion's upsert holds FOR NO KEY UPDATE locks; kiosk writes must not queue behind."""
    _, by_key = four
    a, b = by_key[step(10)], by_key[step(20)]
    do(harness, commands.set_order, b, "R01", 2, by="p")
    ingestion = create_engine(normalize_url(harness.url), poolclass=NullPool)
    try:
        with ingestion.connect() as conn:
            transaction = conn.begin()
            # What the merge does to a changed row: rewrite non-key columns, keep the lock open.
            conn.execute(
                text(
                    "UPDATE csv_dashboard_rows SET row_data = row_data, updated_at = now()"
                    " WHERE csv_dashboard_id = (SELECT csv_dashboard_id FROM csv_dashboard_rows"
                    " WHERE id = :id)"
                ),
                {"id": a},
            )
            with harness.write() as session:
                session.execute(text("SET LOCAL lock_timeout = '2s'"))
                commands.set_completion(session, b, "complete", by="w")
                commands.set_note(session, a, "during a run", by="w")
                commands.set_due_date(session, a, "2026-05-01", by="w")
                commands.set_processing_type(session, a, "塗装", by="w")
                commands.set_order(session, a, "R01", 1, by="w")
                queries.list_rows(session, service_dashboard(session, a))
            transaction.rollback()
    finally:
        ingestion.dispose()
    row = get(harness, a)
    assert (row["note"], row["due_date"], row["order"]["order_number"]) == (
        "during a run",
        "2026-05-01",
        1,
    )
    assert get(harness, b)["completed"] is True


def service_dashboard(session: Session, row_id: uuid.UUID) -> CsvDashboard:
    row = session.get_one(CsvDashboardRow, row_id)
    return session.get_one(CsvDashboard, row.csv_dashboard_id)


# --- search ---------------------------------------------------------------------------------


def search_rows() -> list[str]:
    return [
        schedule_line(1234567890, "AB123456", "MH-AB", 1, name="本体①"),
        schedule_line(1234567890, "AB123456", "P-100", 10, name="㈱山田シャフト"),
        schedule_line(1234567890, "AB123456", "Q_200", 10, name="カバー"),
        schedule_line(1111111111, "XY987654", "R%300", 10, name="髙橋ギア"),
        schedule_line(1111111111, "XY987654", "QX200", 10, name="ギアbox", resource="R02"),
        schedule_line(2222222222, "ZZ000AB1", "AB123456X", 10, name="ブラケット"),
        schedule_line(2222222222, "ZZ000AB1", "S12345", 20, name="ステー", resource="R02"),
    ]


@pytest.fixture
def searchable(harness: Harness) -> CsvDashboard:
    return load(harness, search_rows())


def hincds(harness: Harness, dashboard: CsvDashboard, **kwargs: Any) -> set[str]:
    return {key_of(r)[1] for r in rows(harness, dashboard, **kwargs)}


def test_search_eight_character_token(harness: Harness, searchable: CsvDashboard) -> None:
    # 製番 exactly (either case) or 品番/ProductNo partly.
    assert hincds(harness, searchable, q="AB123456") == {"P-100", "Q_200", "AB123456X"}
    assert hincds(harness, searchable, q="ab123456") == {"P-100", "Q_200", "AB123456X"}
    # Not a partial 製番 match: "B123456X" is 8 characters but no 製番 equals it.
    assert hincds(harness, searchable, q="B123456X") == {"AB123456X"}
    # 8 digits: ProductNo partly.
    assert hincds(harness, searchable, q="23456789") == {"P-100", "Q_200"}
    # Full-width input is normalised (NFKC).
    assert hincds(harness, searchable, q="ＡＢ１２３４５６") == {"P-100", "Q_200", "AB123456X"}


def test_search_numeric_token(harness: Harness, searchable: CsvDashboard) -> None:
    # ProductNo or 品番 partly; never 製番.
    assert hincds(harness, searchable, q="1111") == {"R%300", "QX200"}
    assert hincds(harness, searchable, q="300") == {"R%300"}
    assert hincds(harness, searchable, q="2345") == {"P-100", "Q_200", "S12345", "AB123456X"}
    assert hincds(harness, searchable, q="987") == set()  # only in a 製番
    assert hincds(harness, searchable, q="１１１１") == {"R%300", "QX200"}


def test_search_other_tokens(harness: Harness, searchable: CsvDashboard) -> None:
    # 製番/品番/品名 partly, ASCII case-insensitive.
    assert hincds(harness, searchable, q="xy98") == {"R%300", "QX200"}
    assert hincds(harness, searchable, q="p-1") == {"P-100"}
    assert hincds(harness, searchable, q="BOX") == {"QX200"}
    assert hincds(harness, searchable, q="ギアBOX") == {"QX200"}
    assert hincds(harness, searchable, q="㈱山田") == {"P-100"}
    assert hincds(harness, searchable, q="髙橋") == {"R%300"}
    # Not ProductNo for non-numeric tokens.
    assert hincds(harness, searchable, q="x1234") == set()
    # Machine rows are not steps even when they match.
    assert hincds(harness, searchable, q="本体") == set()
    assert hincds(harness, searchable, q="本体", include_machine_rows=True) == {"MH-AB"}


def test_search_treats_like_wildcards_literally(harness: Harness, searchable: CsvDashboard) -> None:
    assert hincds(harness, searchable, q="%") == {"R%300"}
    assert hincds(harness, searchable, q="_") == {"Q_200"}
    assert hincds(harness, searchable, q="Q_2") == {"Q_200"}  # not QX200
    assert hincds(harness, searchable, q="R%3") == {"R%300"}
    assert hincds(harness, searchable, q="\\") == set()


def test_search_tokens_are_or_ed_and_anded_with_filters(
    harness: Harness, searchable: CsvDashboard
) -> None:
    assert hincds(harness, searchable, q="p-1,髙橋") == {"P-100", "R%300"}
    # Full-width comma, ideographic comma and spaces around tokens.
    assert hincds(harness, searchable, q=" p-1 ，髙橋 、 ステー ") == {"P-100", "R%300", "S12345"}
    assert hincds(harness, searchable, q="p-1、髙橋,,") == {"P-100", "R%300"}
    assert hincds(harness, searchable, q="R%300,QX200,S12345", resources=["R02"]) == {
        "QX200",
        "S12345",
    }
    # Only separators: no search at all.
    assert len(hincds(harness, searchable, q=" , 、")) == 6


def test_search_accepts_at_most_eight_tokens(harness: Harness, searchable: CsvDashboard) -> None:
    eight = ",".join(f"t{i}" for i in range(8))
    assert hincds(harness, searchable, q=eight) == set()
    with harness.read() as session, pytest.raises(InvalidRequest) as info:
        queries.list_rows(session, searchable, q=eight + ",t8")
    assert info.value.code == "TOO_MANY_TOKENS"
    assert search.search_tokens("ａ，ｂ、c") == ["a", "b", "c"]


# --- filters, sort, paging ------------------------------------------------------------------


def test_filters(harness: Harness) -> None:
    dashboard = load(
        harness,
        [
            schedule_line(1, SEIBAN, "SH-01", 1, name="機械"),
            schedule_line(1, SEIBAN, "P1", 10, resource="R01"),
            schedule_line(1, SEIBAN, "P2", 10, resource="R02"),
            schedule_line(1, SEIBAN, "P3", 10, resource="R03", progress="完了"),
            schedule_line(1, SEIBAN, "P4", 10, resource="R01"),
            schedule_line(1, SEIBAN, "P5", 10, resource="R02"),
        ],
    )
    by_key = {k[1]: v for k, v in ids(harness, dashboard).items()}
    do(harness, commands.set_completion, by_key["P1"], "complete", by="w")
    do(harness, commands.set_note, by_key["P2"], "note", by="w")
    do(harness, commands.set_due_date, by_key["P4"], "2026-01-01", by="w")
    do(harness, commands.set_due_date, by_key["P2"], "2026-01-02", by="w")

    def parts(**kwargs: Any) -> list[str]:
        return [k[1] for k in keys(harness, dashboard, **kwargs)]

    assert parts() == ["P1", "P2", "P3", "P4", "P5"]
    assert parts(include_machine_rows=True) == ["SH-01", "P1", "P2", "P3", "P4", "P5"]
    assert parts(resources=["R01", "R03"]) == ["P1", "P3", "P4"]
    assert parts(resources=["Ｒ０２"]) == ["P2", "P5"]
    assert parts(completion="complete") == ["P1", "P3"]
    assert parts(completion="incomplete") == ["P2", "P4", "P5"]
    assert parts(has_note=True) == ["P2"]
    assert parts(has_note=False) == ["P1", "P3", "P4", "P5"]
    assert parts(has_due_date=True) == ["P2", "P4"]
    assert parts(has_due_date=False) == ["P1", "P3", "P5"]
    assert parts(has_due_date=True, has_note=False, completion="incomplete") == ["P4"]
    assert parts(resources=["R02"], completion="incomplete", has_note=False) == ["P5"]

    # Retired rows are hidden unless asked for.
    ingest(
        harness,
        dashboard,
        [
            schedule_line(1, SEIBAN, "SH-01", 1, name="機械"),
            *(
                schedule_line(1, SEIBAN, p, 10, resource=r)
                for p, r in (("P1", "R01"), ("P2", "R02"))
            ),
        ],
    )
    assert parts() == ["P1", "P2"]
    assert parts(include_retired=True) == ["P1", "P2", "P3", "P4", "P5"]
    assert parts(include_retired=True, has_due_date=True) == ["P2", "P4"]
    retired = rows(harness, dashboard, include_retired=True, resources=["R03"])
    assert [r["is_active"] for r in retired] == [False]
    assert retired[0]["completed"] is True

    with harness.read() as session, pytest.raises(InvalidRequest) as info:
        queries.list_rows(session, dashboard, completion="done")  # type: ignore[arg-type]
    assert info.value.code == "INVALID_COMPLETION_FILTER"


def test_sort_order_is_seiban_productno_numeric_kojun_hincd(harness: Harness) -> None:
    lines = [
        schedule_line(2, "ab000001", "A", 1),
        schedule_line(2, "AB000001", "B", 10),
        schedule_line(2, "AB000001", "A", 10),
        schedule_line(2, "AB000001", "Z", 2),
        schedule_line(1, "AB000001", "Z", 100),
        schedule_line(1, "Zz000001", "A", 1),
        schedule_line(1, "AB000000", "Y", 9),
    ]
    dashboard = load(harness, lines)
    got = [(k[0], k[1], k[3]) for k in keys(harness, dashboard)]
    # Byte order on both engines (upper case before lower case), FKOJUN as a number.
    assert got == [
        ("AB000000", "Y", "9"),
        ("AB000001", "Z", "100"),
        ("AB000001", "Z", "2"),
        ("AB000001", "A", "10"),
        ("AB000001", "B", "10"),
        ("Zz000001", "A", "1"),
        ("ab000001", "A", "1"),
    ]


def paged(
    harness: Harness, dashboard: CsvDashboard, limit: int, **kwargs: Any
) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        with harness.read() as session:
            page, cursor = queries.list_rows(
                session, dashboard, cursor=cursor, limit=limit, **kwargs
            )
        pages.append(page)
        if cursor is None:
            return pages
        assert len(pages) < 100


def test_paging_returns_each_row_once_in_sort_order(harness: Harness) -> None:
    lines = [
        schedule_line(p, s, f"P{p}{h}", k, resource=f"R0{k % 3}")
        for s in ("AA000001", "AA000002", "BB000001")
        for p in (1, 2)
        for h in (1, 2)
        for k in (1, 2, 10)
    ]  # 36 steps; FKOJUN 10 sorts after 2
    dashboard = load(harness, lines)
    everything = rows(harness, dashboard, limit=2000)
    assert len(everything) == 36
    for limit in (1, 7, 12, 35, 36):
        pages = paged(harness, dashboard, limit)
        flat = [r["id"] for page in pages for r in page]
        assert flat == [r["id"] for r in everything], limit
        assert all(len(page) == limit for page in pages[:-1])
        assert len(pages) == -(-36 // limit)
    # A cursor keeps working after a row before it changes its operator data or disappears.
    with harness.read() as session:
        first, cursor = queries.list_rows(session, dashboard, limit=10)
    do(harness, commands.set_completion, uuid.UUID(first[3]["id"]), "complete", by="w")
    with harness.read() as session:
        second, _ = queries.list_rows(session, dashboard, limit=10, cursor=cursor)
    assert [r["id"] for r in second] == [r["id"] for r in everything[10:20]]
    # Paging with a filter.
    filtered = [r["id"] for page in paged(harness, dashboard, 4, resources=["R01"]) for r in page]
    assert filtered == [r["id"] for r in everything if r["row_data"]["FSIGENCD"] == "R01"]
    assert len(filtered) == 24


def test_page_size_and_cursor_validation(
    harness: Harness, four: tuple[CsvDashboard, dict[Key, uuid.UUID]]
) -> None:
    dashboard, _ = four
    for limit in (0, 2001, -5):
        refused(harness, InvalidRequest, "INVALID_LIMIT", queries.list_rows, dashboard, limit=limit)
    assert len(do(harness, queries.list_rows, dashboard, limit=2000)[0]) == 5
    bad_cursors = [
        "not base64 !!",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(b'["a","b","c","d","e"]').decode(),
        base64.urlsafe_b64encode(b'{"x": 1}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ]
    for cursor in bad_cursors:
        refused(
            harness, InvalidRequest, "INVALID_CURSOR", queries.list_rows, dashboard, cursor=cursor
        )


# --- progress summary -----------------------------------------------------------------------


def test_progress_summary(harness: Harness) -> None:
    dashboard = load(
        harness,
        [
            schedule_line(1, "AA000001", "MH-1", 1, name="プレス機①", resource="R01"),
            schedule_line(1, "AA000001", "P1", 10, name="㈱部品A", resource="R01"),
            schedule_line(1, "AA000001", "P1", 20, name="㈱部品A", resource="R02"),
            schedule_line(1, "AA000001", "P2", 10, name="髙部品B", resource="R01", progress="完了"),
            schedule_line(1, "AA000001", "P3", 10, name="部品C", resource="R02"),
            schedule_line(1, "BB000002", "SH-2", 1, name="旋盤", resource="R02"),
            schedule_line(1, "BB000002", "P9", 10, name="部品Z", resource="R02"),
            schedule_line(1, "BB000002", "P8", 10, name="部品Y", resource="R01"),
            schedule_line(1, "CC000003", "P7", 10, name="部品X", resource="R03"),
        ],
    )
    by_key = ids(harness, dashboard)
    do(
        harness,
        commands.set_completion,
        by_key[("AA000001", "P1", "R01", "10")],
        "complete",
        by="w",
    )
    do(
        harness,
        commands.set_completion,
        by_key[("BB000002", "P9", "R02", "10")],
        "complete",
        by="w",
    )
    # Completed twice (manual and external) counts once.
    do(
        harness,
        commands.set_completion,
        by_key[("AA000001", "P2", "R01", "10")],
        "complete",
        by="w",
    )
    # Manual false does not hide external completion.
    with harness.read() as session:
        summary = progress_summary(session, dashboard)
    assert summary["total"] == 7 and summary["completed"] == 3
    assert summary["by_resource"] == [
        {"resource_cd": "R01", "resource_name": "資源R01", "total": 3, "completed": 2},
        {"resource_cd": "R02", "resource_name": "資源R02", "total": 3, "completed": 1},
        {"resource_cd": "R03", "resource_name": "資源R03", "total": 1, "completed": 0},
    ]
    assert summary["by_seiban"] == [
        {
            "fseiban": "AA000001",
            "machine_name": "プレス機①",
            "total": 4,
            "completed": 2,
            "incomplete_parts": ["㈱部品A", "部品C"],
        },
        {
            "fseiban": "BB000002",
            "machine_name": "旋盤",
            "total": 2,
            "completed": 1,
            "incomplete_parts": ["部品Y"],
        },
        {
            "fseiban": "CC000003",
            "machine_name": None,
            "total": 1,
            "completed": 0,
            "incomplete_parts": ["部品X"],
        },
    ]
    # Retired rows leave the summary; a worker's "incomplete" on an external completion keeps it.
    do(
        harness,
        commands.set_completion,
        by_key[("AA000001", "P2", "R01", "10")],
        "incomplete",
        by="w",
    )
    ingest(
        harness,
        dashboard,
        [
            schedule_line(1, "AA000001", "MH-1", 1, name="プレス機①", resource="R01"),
            schedule_line(1, "AA000001", "P1", 10, name="㈱部品A", resource="R01"),
            schedule_line(1, "AA000001", "P2", 10, name="髙部品B", resource="R01", progress="完了"),
            schedule_line(1, "BB000002", "P9", 10, name="部品Z", resource="R02"),
        ],
    )
    with harness.read() as session:
        summary = progress_summary(session, dashboard)
    assert (summary["total"], summary["completed"]) == (3, 3)
    assert [s["incomplete_parts"] for s in summary["by_seiban"]] == [[], []]
    assert summary["by_seiban"][1]["machine_name"] == "旋盤"  # a retired machine row still names it


def test_progress_summary_of_an_empty_dashboard(harness: Harness) -> None:
    dashboard = harness.dashboard()
    with harness.read() as session:
        assert progress_summary(session, dashboard) == {
            "total": 0,
            "completed": 0,
            "by_resource": [],
            "by_seiban": [],
        }


def test_text_sort_keys_use_byte_order_on_postgresql(harness: Harness) -> None:
    """The test cluster runs with the C locale; production databases often do not. Sorting and
    the keyset comparison must not depend on the database's collation."""
    with harness.read() as session:
        fields = expressions.Fields(session.get_bind().dialect.name)
        compiled = str(select(*fields.sort_keys).compile(dialect=session.get_bind().dialect))
    if fields.is_pg:
        assert compiled.count('COLLATE "C"') == 3
    else:
        assert "COLLATE" not in compiled
