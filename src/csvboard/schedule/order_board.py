"""順位ボード: one resource's steps in the order a shift leader works them (docs/contract.md §6).

A column lists a resource's steps: first those given a machining order (1–10, by number), then
those with a due date (earliest first, then the kiosk order), then the rest in the kiosk order.
By default only open steps (a step completed leaves the column, and its order number is
released as the list does it).

Each part of a column is read from what can serve it without sorting the resource's every
step: the order numbers from their table (ten at most), the due dates from theirs (only steps
a person gave one), and the rest from the resource index through the list's own query
(:func:`csvboard.schedule.queries.list_rows`, without order and due date). A page's cost so
stays that of a page, however many steps the resource has. The keyset cursor says which part
a page continues.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.db.cursor import bad_cursor, decode_cursor, encode_cursor
from csvboard.errors import InvalidRequest
from csvboard.schedule.access import require_schedule
from csvboard.schedule.board import one_resource
from csvboard.schedule.composed import compose, composed_by_id, machine_names
from csvboard.schedule.expressions import Fields, fields
from csvboard.schedule.models import (
    ProductionScheduleRowDueDate,
    ProductionScheduleRowOrder,
)
from csvboard.schedule.queries import (
    CompletionFilter,
    completion_condition,
    has_record,
    keys_after,
    list_rows,
)

MAX_COLUMN_PAGE = 200
DEFAULT_COLUMN_PAGE = 30

_R = CsvDashboardRow
_Due = ProductionScheduleRowDueDate
_Order = ProductionScheduleRowOrder


def order_column(
    session: Session,
    dashboard: CsvDashboard,
    resource: str,
    *,
    completion: CompletionFilter = "incomplete",
    cursor: str | None = None,
    limit: int = DEFAULT_COLUMN_PAGE,
) -> dict[str, Any]:
    """One page of ``resource``'s column: composed steps and the next page's cursor.

    400 ``INVALID_LIMIT``, ``INVALID_CURSOR``, ``UNKNOWN_RESOURCE``,
    ``INVALID_COMPLETION_FILTER``.
    """
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    if not 1 <= limit <= MAX_COLUMN_PAGE:
        raise InvalidRequest("INVALID_LIMIT", f"limit must be 1–{MAX_COLUMN_PAGE}, not {limit}")
    completion_condition(completion)  # 400 before the cursor and the resource
    part, after = _decode(cursor)
    code = one_resource(session, dashboard, resource)
    f = fields(session)
    items: list[dict[str, Any]] = []
    if part == "order":
        items += _composed(session, f, dashboard, _ordered(session, f, dashboard, code, completion))
        if len(items) >= limit:
            return {"items": items, "next_cursor": encode_cursor([*_DUE_START])}
        part, after = "due", None
    if part == "due":
        due, last = _due_dated(session, f, dashboard, code, completion, after, limit - len(items))
        items += _composed(session, f, dashboard, [row_id for row_id, _ in due])
        if last is not None:
            return {"items": items, "next_cursor": encode_cursor(["due", *last])}
        part, after = "rest", None
    if len(items) >= limit:
        return {"items": items, "next_cursor": encode_cursor(["rest", ""])}
    rest, next_rest = list_rows(
        session, dashboard, resources=[code], completion=completion,
        has_due_date=False, has_order=False,
        cursor=after[0] if after else None, limit=limit - len(items),
    )  # fmt: skip
    items += rest
    return {
        "items": items,
        "next_cursor": encode_cursor(["rest", next_rest]) if next_rest else None,
    }


# A cursor to the due-date part from its start (the order part filled a page).
_DUE_START = ("due", "", "", "", 0, "", "")


def _decode(cursor: str | None) -> tuple[str, list[Any] | None]:
    """(part, its keyset values): ``order`` (a first page), ``due`` or ``rest``."""
    if not cursor:
        return "order", None
    try:
        part, *values = decode_cursor(cursor, str, str, str, str, int, str, str)
    except InvalidRequest:
        part = "rest"
    if part == "due":
        due_iso, seiban, product_no, kojun, hincd, row_id = values
        if not due_iso:
            return "due", None
        try:
            return "due", [date.fromisoformat(due_iso), seiban, product_no, kojun, hincd,
                           uuid.UUID(row_id)]  # fmt: skip
        except ValueError as exc:
            raise bad_cursor() from exc
    part, rest = decode_cursor(cursor, str, str)
    if part != "rest":
        raise bad_cursor()
    return "rest", [rest or None] if rest else None


def _ordered(
    session: Session, f: Fields, dashboard: CsvDashboard, code: str, completion: CompletionFilter
) -> list[uuid.UUID]:
    """The resource's steps with a machining order, by number (ten at most)."""
    return list(
        session.scalars(
            select(_R.id)
            .join(_Order, _Order.csv_dashboard_row_id == _R.id)
            .where(
                _Order.csv_dashboard_id == dashboard.id,
                _Order.resource_cd == code,
                f.active(),
                ~f.machine_row(),
                *completion_condition(completion),
            )
            .order_by(_Order.order_number)
        )
    )


def _due_dated(
    session: Session,
    f: Fields,
    dashboard: CsvDashboard,
    code: str,
    completion: CompletionFilter,
    after: list[Any] | None,
    room: int,
) -> tuple[list[tuple[uuid.UUID, date]], list[Any] | None]:
    """The resource's steps with a due date and no order, earliest first, then kiosk order:
    up to ``room`` of them after ``after``, and the cursor values of the last one when more
    follow (else None)."""
    due_date: ColumnElement[Any] = _Due.__table__.c.due_date
    keys = (due_date, *f.sort_keys)
    query = (
        select(_R.id, *keys)
        .join(_Due, _Due.csv_dashboard_row_id == _R.id)
        .where(
            _Due.csv_dashboard_id == dashboard.id,
            f.resource == code,
            f.active(),
            ~f.machine_row(),
            ~has_record(_Order),
            *completion_condition(completion),
        )
        .order_by(*keys)
        .limit(room + 1)
    )
    if after is not None:
        query = query.where(_Due.due_date >= after[0], keys_after(keys, after))
    rows = list(session.execute(query))
    page = [(r[0], r[1]) for r in rows[:room]]
    if len(rows) <= room:
        return page, None
    last = rows[room - 1]
    due, seiban, product_no, kojun, hincd, row_id = last[1:]
    return page, [due.isoformat(), seiban, product_no, int(kojun), hincd, str(row_id)]


def _composed(
    session: Session, f: Fields, dashboard: CsvDashboard, ids: list[uuid.UUID]
) -> list[dict[str, Any]]:
    rows = composed_by_id(session, f, ids)
    names = machine_names(session, f, dashboard.id, {r.sort_0 for r in rows})
    return [compose(r, names) for r in rows]


__all__ = ["DEFAULT_COLUMN_PAGE", "MAX_COLUMN_PAGE", "order_column"]
