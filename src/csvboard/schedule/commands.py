"""What people enter on the production schedule: completion, a note, a due date, a processing
type and the machining order (docs/contract.md §2.2, §5).

Why these are separate (docs/design/adr_production_schedule_progress.md): they used to live
inside the CSV row and were lost when an ingestion replaced ``row_data``. They now live in
operator-owned tables keyed by row id, written only by the functions here — ingestion never
names those tables — and each returns the row composed again (``queries.get_row``).

Conventions shared by every command:

- The caller owns the transaction (``write_session``) and commits it.
- Writes are upserts keyed by the row id (``INSERT … ON CONFLICT DO UPDATE``), so two identical
  taps leave the same state, and nothing reads the row ``FOR UPDATE``: on PostgreSQL an
  ingestion holds only ``FOR NO KEY UPDATE`` locks on rows it changes, which the foreign-key
  check of an operator write (``FOR KEY SHARE``) does not wait for. A kiosk tap never waits on
  an ingestion.
- Checks run in the API's order: invalid input (400) before a missing row (404) before a
  conflict with the row's state (409).
- Completion is *effective*: a worker's mark (``production_schedule_progress``) OR the source's
  (``production_schedule_external_completion``). An empty ``progress`` cell in a later file can
  clear the source's flag but never a worker's.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.service import processing_types
from csvboard.db import upsert
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.schedule.access import require_schedule, row_uuid
from csvboard.schedule.models import (
    MAX_NOTE_LENGTH,
    MAX_ORDER_NUMBER,
    ProductionScheduleExternalCompletion,
    ProductionScheduleProgress,
    ProductionScheduleRowDueDate,
    ProductionScheduleRowNote,
    ProductionScheduleRowOrder,
    ProductionScheduleRowProcessing,
)
from csvboard.schedule.queries import get_row

MAX_ACTOR_LENGTH = 64  # updated_by is varchar(64)

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_Progress = ProductionScheduleProgress
_External = ProductionScheduleExternalCompletion
_Note = ProductionScheduleRowNote
_Due = ProductionScheduleRowDueDate
_Processing = ProductionScheduleRowProcessing
_Order = ProductionScheduleRowOrder
_R = CsvDashboardRow


def actor(by: str | None) -> str | None:
    # Who tapped is informational; a long principal name must not make the tap fail.
    return None if by is None else by[:MAX_ACTOR_LENGTH]


@dataclass(frozen=True)
class _Target:
    """What a write needs to know about its row, read without any row lock."""

    id: uuid.UUID
    dashboard_id: uuid.UUID
    is_active: bool
    row_data: dict[str, Any]


def _target(session: Session, row_id: uuid.UUID) -> _Target:
    """The row a write is aimed at (404 ROW_NOT_FOUND, 400 NOT_A_SCHEDULE).

    A plain SELECT: on PostgreSQL it takes no row lock, so it never queues behind an
    ingestion's merge.
    """
    rid = row_uuid(row_id)
    found = session.execute(
        select(
            _R.id,
            _R.csv_dashboard_id,
            _R.is_active,
            _R.row_data,
            CsvDashboard.kind,
        )
        .join(CsvDashboard, CsvDashboard.id == _R.csv_dashboard_id)
        .where(_R.id == rid)
    ).first()
    if found is None:
        raise NotFound("ROW_NOT_FOUND", f"no row {row_id}")
    require_schedule(found.kind, f"row {row_id}")
    return _Target(
        id=found.id,
        dashboard_id=found.csv_dashboard_id,
        is_active=bool(found.is_active),
        row_data=dict(found.row_data or {}),
    )


def _require_active(target: _Target) -> None:
    if not target.is_active:
        raise Conflict(
            "ROW_RETIRED",
            "this step is no longer in the official schedule (retired); it is not on the board",
        )


def _upsert(
    session: Session, model: Any, target: _Target, values: dict[str, Any], by: str | None
) -> None:
    """INSERT … ON CONFLICT (row id) DO UPDATE; an identical repeat changes nothing at all."""
    payload = {
        "csv_dashboard_row_id": target.id,
        "csv_dashboard_id": target.dashboard_id,
        "updated_by": actor(by),
        "updated_at": utcnow(),
        **values,
    }
    stmt = upsert.insert(session, model).values(**payload)
    changed = or_(*(getattr(model, k).is_distinct_from(stmt.excluded[k]) for k in values))
    stmt = stmt.on_conflict_do_update(
        index_elements=[model.csv_dashboard_row_id],
        set_={k: stmt.excluded[k] for k in ("updated_by", "updated_at", *values)},
        where=changed,
    )
    session.execute(stmt)


def _delete(session: Session, model: Any, target: _Target) -> None:
    session.execute(delete(model).where(model.csv_dashboard_row_id == target.id))


def _lock_resource_orders(session: Session, dashboard_id: uuid.UUID, resource_cd: str) -> None:
    """Serialise order-number changes of one dashboard+resource (PostgreSQL).

    Two planners renumbering the same machine at once would otherwise race between reading the
    numbers and shifting them. The lock is an advisory one on its own key: ingestion never
    takes it, so it never makes a kiosk write wait for a run. SQLite's write lock (taken at
    BEGIN IMMEDIATE) already serialises writers.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"csvboard:orders:{dashboard_id}:{resource_cd}"},
        )


def _resource_of(target: _Target) -> str:
    return str(target.row_data.get("FSIGENCD", "")).strip()


def _release_order(session: Session, target: _Target, by: str | None) -> None:
    """Delete the row's order number and move every later number of its resource up by one.

    UNIQUE (dashboard, resource, order) is checked row by row on both engines, so a single
    ``SET order_number = order_number - 1`` could collide mid-statement. Instead each later
    row is moved in ascending order, one statement each (at most 10): the number it moves to
    has just been vacated.
    """
    # An order's resource is always the row's FSIGENCD (a key column, so it never changes):
    # lock before reading, so a concurrent set_order on this resource is fully before or after.
    _lock_resource_orders(session, target.dashboard_id, _resource_of(target))
    current = session.execute(
        select(_Order.resource_cd, _Order.order_number).where(
            _Order.csv_dashboard_row_id == target.id
        )
    ).first()
    if current is None:
        return
    _delete(session, _Order, target)
    behind = session.execute(
        select(_Order.csv_dashboard_row_id, _Order.order_number)
        .where(
            _Order.csv_dashboard_id == target.dashboard_id,
            _Order.resource_cd == current.resource_cd,
            _Order.order_number > current.order_number,
        )
        .order_by(_Order.order_number)
    ).all()
    now = utcnow()
    for row_id, number in behind:
        session.execute(
            update(_Order)
            .where(_Order.csv_dashboard_row_id == row_id)
            .values(order_number=number - 1, updated_at=now, updated_by=actor(by))
        )


def _effectively_completed(session: Session, target: _Target) -> bool:
    manual = session.scalar(
        select(_Progress.is_completed).where(_Progress.csv_dashboard_row_id == target.id)
    )
    external = session.scalar(
        select(_External.is_completed).where(_External.csv_dashboard_row_id == target.id)
    )
    return bool(manual) or bool(external)


def set_completion(
    session: Session, row_id: uuid.UUID, intent: str, *, by: str | None
) -> dict[str, Any]:
    """Mark a step complete or not complete — an intent, never a toggle.

    A double tap sends the same intent twice and lands in the same state. Completing releases
    the step's order number and closes the gap behind it in the same transaction. Marking a
    step incomplete clears only the worker's mark: if the source reports it done, it stays
    (effectively) complete, and the returned row says so.
    """
    if intent not in ("complete", "incomplete"):
        raise InvalidRequest(
            "INVALID_INTENT", f"intent must be 'complete' or 'incomplete', not {intent!r}"
        )
    target = _target(session, row_id)
    _require_active(target)
    completed = intent == "complete"
    _upsert(session, _Progress, target, {"is_completed": completed}, by)
    if completed:
        _release_order(session, target, by)
    return get_row(session, target.id)


def set_note(session: Session, row_id: uuid.UUID, note: str, *, by: str | None) -> dict[str, Any]:
    """Write the step's one-line note (≤ 100 characters); an empty note deletes it."""
    if not isinstance(note, str):
        raise InvalidRequest("INVALID_NOTE", "the note must be text")
    if "\r" in note or "\n" in note:
        raise InvalidRequest("INVALID_NOTE", "the note must be one line (no line breaks)")
    if "\x00" in note:
        raise InvalidRequest("INVALID_NOTE", "the note contains a NUL character")
    value = note.strip()
    if len(value) > MAX_NOTE_LENGTH:
        raise InvalidRequest(
            "INVALID_NOTE",
            f"the note is {len(value)} characters long; at most {MAX_NOTE_LENGTH} are allowed",
        )
    target = _target(session, row_id)
    _require_active(target)
    if value:
        _upsert(session, _Note, target, {"note": value}, by)
    else:
        _delete(session, _Note, target)
    return get_row(session, target.id)


def _parse_due(due: date | str | None) -> date | None:
    if due is None:
        return None
    if isinstance(due, datetime):
        raise InvalidRequest("INVALID_DUE_DATE", "the due date must be a date, not a date-time")
    if isinstance(due, date):
        return due
    if not isinstance(due, str):
        raise InvalidRequest("INVALID_DUE_DATE", "the due date must be YYYY-MM-DD")
    value = unicodedata.normalize("NFKC", due).strip()
    if not value:
        return None
    if _ISO_DATE.fullmatch(value) is None:
        raise InvalidRequest("INVALID_DUE_DATE", f"{due!r} is not a date of the form YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest("INVALID_DUE_DATE", f"{due!r} is not a valid date") from exc


def set_due_date(
    session: Session, row_id: uuid.UUID, due: date | str | None, *, by: str | None
) -> dict[str, Any]:
    """Set the step's due date (``YYYY-MM-DD`` or a date); empty or None clears it."""
    value = _parse_due(due)
    target = _target(session, row_id)
    _require_active(target)
    if value is None:
        _delete(session, _Due, target)
    else:
        _upsert(session, _Due, target, {"due_date": value}, by)
    return get_row(session, target.id)


def set_processing_type(
    session: Session, row_id: uuid.UUID, value: str | None, *, by: str | None
) -> dict[str, Any]:
    """Set the step's processing type from its dashboard's option list; empty clears it."""
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("INVALID_PROCESSING_TYPE", "the processing type must be text")
    wanted = unicodedata.normalize("NFKC", value or "").strip()
    target = _target(session, row_id)
    chosen: str | None = None
    if wanted:
        dashboard = session.get(CsvDashboard, target.dashboard_id)
        options = processing_types(dashboard) if dashboard is not None else ()
        chosen = next(
            (o for o in options if unicodedata.normalize("NFKC", o).strip() == wanted), None
        )
        if chosen is None:
            raise InvalidRequest(
                "INVALID_PROCESSING_TYPE",
                f"{value!r} is not one of this dashboard's processing types: " + ", ".join(options),
            )
    _require_active(target)
    if chosen is None:
        _delete(session, _Processing, target)
    else:
        _upsert(session, _Processing, target, {"processing_type": chosen}, by)
    return get_row(session, target.id)


def set_order(
    session: Session,
    row_id: uuid.UUID,
    resource_cd: str,
    order_number: int | None,
    *,
    by: str | None,
) -> dict[str, Any]:
    """Assign the step's machining order (1–10) on its resource, or clear it with None.

    The number must be free on the dashboard+resource (409 ORDER_NUMBER_TAKEN) — a planner
    picks a slot, nothing is silently displaced. Clearing closes the gap behind the number,
    as completing does. A completed step has no place in the queue (409 STEP_COMPLETED).
    """
    if order_number is not None and (
        isinstance(order_number, bool)
        or not isinstance(order_number, int)
        or not 1 <= order_number <= MAX_ORDER_NUMBER
    ):
        raise InvalidRequest(
            "INVALID_ORDER",
            f"the order number must be 1–{MAX_ORDER_NUMBER}, not {order_number!r}",
        )
    resource = unicodedata.normalize("NFKC", resource_cd or "").strip()
    target = _target(session, row_id)
    row_resource = _resource_of(target)
    if not resource or resource != row_resource:
        raise InvalidRequest(
            "RESOURCE_MISMATCH",
            f"this step is on resource {row_resource!r}, not {resource_cd!r}",
        )
    _require_active(target)
    if order_number is None:
        _release_order(session, target, by)
        return get_row(session, target.id)
    # Lock first: a completion committed while we waited releases orders, so check after it.
    _lock_resource_orders(session, target.dashboard_id, resource)
    if _effectively_completed(session, target):
        raise Conflict("STEP_COMPLETED", "a completed step cannot be given an order number")
    holder = session.scalar(
        select(_Order.csv_dashboard_row_id).where(
            _Order.csv_dashboard_id == target.dashboard_id,
            _Order.resource_cd == resource,
            _Order.order_number == order_number,
        )
    )
    if holder is not None and holder != target.id:
        raise Conflict(
            "ORDER_NUMBER_TAKEN",
            f"order number {order_number} on resource {resource} is already given to another step",
        )
    _upsert(
        session,
        _Order,
        target,
        {"resource_cd": resource, "order_number": order_number},
        by,
    )
    return get_row(session, target.id)


__all__ = [
    "actor",
    "set_completion",
    "set_due_date",
    "set_note",
    "set_order",
    "set_processing_type",
]
