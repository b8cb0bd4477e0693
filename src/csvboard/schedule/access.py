"""Which production schedule, and which of its rows, a request may touch.

Every schedule route names its dashboard by slug; a row id is only valid within that
dashboard: a row of another dashboard is ``404 ROW_NOT_FOUND``, even for a write, which is
then rolled back. Checks follow docs/contract.md §5: 400 before 404 before 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.service import get_dashboard
from csvboard.dashboards.vocabulary import DashboardKind
from csvboard.db.engine import read_session, write_session
from csvboard.errors import Conflict, InvalidRequest, NotFound


def require_schedule(dashboard_kind: str, what: str) -> None:
    """400 ``NOT_A_SCHEDULE`` unless the kind is a production schedule's."""
    if dashboard_kind != DashboardKind.PRODUCTION_SCHEDULE:
        raise InvalidRequest("NOT_A_SCHEDULE", f"{what} is not on a production-schedule dashboard")


def schedule_dashboard(session: Session, slug: str) -> CsvDashboard:
    """The production-schedule dashboard a path names (404 / 400 NOT_A_SCHEDULE)."""
    dashboard = get_dashboard(session, slug)
    if dashboard.kind != DashboardKind.PRODUCTION_SCHEDULE:
        raise InvalidRequest(
            "NOT_A_SCHEDULE", f"dashboard {dashboard.slug!r} is not a production schedule"
        )
    return dashboard


def row_uuid(row_id: uuid.UUID | str) -> uuid.UUID:
    """A row id as given (the CLI passes text): not a UUID is no such row (404)."""
    if isinstance(row_id, uuid.UUID):
        return row_id
    try:
        return uuid.UUID(str(row_id))
    except ValueError as exc:
        raise NotFound("ROW_NOT_FOUND", f"no row {row_id}") from exc


def _check_row(session: Session, slug: str, row_id: uuid.UUID) -> None:
    """The slug's dashboard is a schedule and the row is one of its rows."""
    dashboard = schedule_dashboard(session, slug)
    owner = session.scalar(
        select(CsvDashboardRow.csv_dashboard_id).where(CsvDashboardRow.id == row_id)
    )
    if owner != dashboard.id:
        raise NotFound("ROW_NOT_FOUND", f"dashboard {dashboard.slug!r} has no row {row_id}")


def on_row(
    engine: Engine,
    slug: str,
    row_id: uuid.UUID,
    action: Callable[[Session], dict[str, Any]],
    *,
    write: bool,
) -> dict[str, Any]:
    """Run a read or a command on one row, inside the dashboard ``slug`` names, in one
    transaction (committed when ``write`` and nothing raised).

    The command validates its input first (400) and then finds the row (404) and its state
    (409). Scope is checked after it, in the same transaction: a 404 or 409 of the command
    gives way to the slug's own 404 (or 400 NOT_A_SCHEDULE), and a write to a row of another
    dashboard raises before commit, so it is rolled back.
    """
    opened: AbstractContextManager[Session] = (
        write_session(engine) if write else read_session(engine)
    )
    with opened as session:
        try:
            row = action(session)
        except (NotFound, Conflict):
            _check_row(session, slug, row_id)
            raise
        _check_row(session, slug, row_id)
        return row


__all__ = ["on_row", "require_schedule", "row_uuid", "schedule_dashboard"]
