"""Which production schedule, and which of its rows, a request may touch: the checks every
read and command of the schedule makes first (docs/contract.md §5: 400 before 404 before 409).
"""

from __future__ import annotations

import uuid

from csvboard.dashboards.vocabulary import DashboardKind
from csvboard.errors import InvalidRequest, NotFound


def require_schedule(dashboard_kind: str, what: str) -> None:
    """400 ``NOT_A_SCHEDULE`` unless the kind is a production schedule's."""
    if dashboard_kind != DashboardKind.PRODUCTION_SCHEDULE:
        raise InvalidRequest("NOT_A_SCHEDULE", f"{what} is not on a production-schedule dashboard")


def row_uuid(row_id: uuid.UUID | str) -> uuid.UUID:
    """A row id as given (the CLI passes text): not a UUID is no such row (404)."""
    if isinstance(row_id, uuid.UUID):
        return row_id
    try:
        return uuid.UUID(str(row_id))
    except ValueError as exc:
        raise NotFound("ROW_NOT_FOUND", f"no row {row_id}") from exc


__all__ = ["require_schedule", "row_uuid"]
