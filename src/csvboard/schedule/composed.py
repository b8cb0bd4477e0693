"""A schedule row as every read returns it: the dashboard row with each operator record and
the source's completion joined in, ``row_data.progress`` synthesised (docs/contract.md §1,
§2.2), and the name of its 製番's machine.

Why (docs/design/adr_production_schedule_progress.md): what people enter lives in its own
tables keyed by row id, so an ingestion that replaces ``row_data`` never loses it; composing it
back here lets clients keep seeing one row.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session, aliased

from csvboard.dashboards.columns import COMPLETED_MARK
from csvboard.dashboards.models import CsvDashboardRow
from csvboard.schedule.expressions import Fields, active_first
from csvboard.schedule.models import (
    ProductionScheduleExternalCompletion,
    ProductionScheduleProgress,
    ProductionScheduleRowDueDate,
    ProductionScheduleRowNote,
    ProductionScheduleRowOrder,
    ProductionScheduleRowProcessing,
)

_Progress = ProductionScheduleProgress
_External = ProductionScheduleExternalCompletion
_Note = ProductionScheduleRowNote
_Due = ProductionScheduleRowDueDate
_Processing = ProductionScheduleRowProcessing
_Order = ProductionScheduleRowOrder
_R = CsvDashboardRow


@functools.cache
def machine_name_column(f: Fields) -> Any:
    """The machine name of the outer row's 製番, as a correlated subquery (same rule as
    :func:`machine_names`: an active machine row first, then the newest order)."""
    m = Fields(f.dialect, aliased(CsvDashboardRow, name="machine"))
    return (
        select(m.hinmei)
        .where(
            m.table.csv_dashboard_id == _R.csv_dashboard_id,
            m.machine_row(),
            m.seiban == f.seiban,
        )
        # "active first" as an expression: a bare is_active would tempt SQLite (which has no
        # statistics) into the (dashboard, is_active) index, reading the whole dashboard.
        .order_by(active_first(m.table), m.product_no.desc(), m.hincd, m.table.id)
        .limit(1)
        .correlate(_R)
        .scalar_subquery()
        .label("machine_name")
    )


@functools.cache
def composed_select(f: Fields) -> Select[Any]:
    """One row per dashboard row with every operator record LEFT JOINed (1:1 tables)."""
    return (
        select(
            _R.id,
            _R.csv_dashboard_id,
            _R.row_key,
            _R.row_data,
            _R.supplement_data,
            _R.is_active,
            _R.updated_at,
            _Progress.is_completed.label("manual_completed"),
            _Progress.updated_at.label("progress_at"),
            _External.is_completed.label("external_completed"),
            _External.updated_at.label("external_at"),
            _Note.note,
            _Note.updated_at.label("note_at"),
            _Due.due_date,
            _Due.updated_at.label("due_at"),
            _Processing.processing_type,
            _Processing.updated_at.label("processing_at"),
            _Order.resource_cd.label("order_resource_cd"),
            _Order.order_number,
            _Order.updated_at.label("order_at"),
            *(key.label(f"sort_{i}") for i, key in enumerate(f.sort_keys[:4])),
        )
        .select_from(_R)
        .outerjoin(_Progress, _Progress.csv_dashboard_row_id == _R.id)
        .outerjoin(_External, _External.csv_dashboard_row_id == _R.id)
        .outerjoin(_Note, _Note.csv_dashboard_row_id == _R.id)
        .outerjoin(_Due, _Due.csv_dashboard_row_id == _R.id)
        .outerjoin(_Processing, _Processing.csv_dashboard_row_id == _R.id)
        .outerjoin(_Order, _Order.csv_dashboard_row_id == _R.id)
    )


def machine_names(
    session: Session, f: Fields, dashboard_id: uuid.UUID, seibans: set[str]
) -> dict[str, str]:
    """FHINMEI of each 製番's machine row (an active one first, then the newest order)."""
    if not seibans:
        return {}
    rows = session.execute(
        select(f.seiban, f.hinmei)
        .where(
            _R.csv_dashboard_id == dashboard_id,
            f.machine_row(),
            f.seiban.in_(sorted(seibans)),
        )
        .order_by(f.seiban, active_first(_R), f.product_no.desc(), f.hincd, _R.id)
    )
    names: dict[str, str] = {}
    for seiban, hinmei in rows:
        names.setdefault(seiban, hinmei)
    return names


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def compose(row: Row[Any], names: dict[str, str]) -> dict[str, Any]:
    """The API's row: the CSV's values plus operator data, ``progress`` synthesised on a copy."""
    manual = bool(row.manual_completed)
    external = bool(row.external_completed)
    completed = manual or external
    row_data = dict(row.row_data or {})  # a copy: the stored row_data never holds progress
    row_data["progress"] = COMPLETED_MARK if completed else ""
    stamps = [
        s
        for s in (
            row.updated_at,
            row.progress_at,
            row.note_at,
            row.due_at,
            row.processing_at,
            row.order_at,
            row.external_at,
        )
        if s is not None
    ]
    order = (
        None
        if row.order_number is None
        else {"resource_cd": row.order_resource_cd, "order_number": int(row.order_number)}
    )
    return {
        "id": str(row.id),
        "row_key": row.row_key,
        "row_data": row_data,
        "supplement_data": dict(row.supplement_data or {}),
        "is_active": bool(row.is_active),
        "completed": completed,
        "manual_completed": manual,
        "external_completed": external,
        "note": row.note,
        "due_date": None if row.due_date is None else row.due_date.isoformat(),
        "processing_type": row.processing_type,
        "order": order,
        "machine_name": names.get(row.sort_0),
        "updated_at": _iso(max(stamps)) if stamps else None,
    }


def composed_by_id(session: Session, f: Fields, ids: list[uuid.UUID]) -> list[Row[Any]]:
    """The composed rows of ``ids``, in that order (by primary key: at most a page)."""
    if not ids:
        return []
    found = {r.id: r for r in session.execute(composed_select(f).where(_R.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def sort_values(row: Row[Any]) -> tuple[str, str, int, str, uuid.UUID]:
    """A composed row's kiosk sort key as Python compares it: code-point order of text is
    the byte order both engines sort by (C collation, SQLite's BINARY), and UUIDs compare as
    their 16 bytes there too."""
    return (row.sort_0, row.sort_1, int(row.sort_2), row.sort_3, row.id)


__all__ = [
    "compose",
    "composed_by_id",
    "composed_select",
    "machine_name_column",
    "machine_names",
    "sort_values",
]
