"""Reading the ledger: lists of runs, a run's detail, its items and events, as JSON-ready dicts.

Keyset pagination (``db.cursor``) for runs and items; ``error_summary`` is a run's latest
failure as ``CODE: message``. Starting and re-running runs is ``service``'s.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from csvboard.db.cursor import bad_cursor, decode_cursor, encode_cursor
from csvboard.errors import InvalidRequest
from csvboard.runs.models import (
    IngestionEvent,
    IngestionItem,
    IngestionRun,
    IngestionRunSource,
)
from csvboard.runs.service import dashboard_of, get_run, is_retryable, sources_of
from csvboard.runs.vocabulary import EventStatus, ItemStatus

MAX_PAGE = 200


def latest_failure(session: Session, run_id: uuid.UUID) -> tuple[str, str | None] | None:
    """(error code, message) of the run's latest failure event, if any."""
    event = session.execute(
        select(IngestionEvent.error_code, IngestionEvent.message)
        .where(
            IngestionEvent.run_id == run_id,
            IngestionEvent.event_status == EventStatus.FAILURE.value,
            IngestionEvent.error_code.is_not(None),
        )
        .order_by(IngestionEvent.id.desc())
        .limit(1)
    ).first()
    if event is None or event[0] is None:  # the query asks for a code; None is never read
        return None
    return event[0], event[1]


def error_summary(session: Session, run_id: uuid.UUID) -> str | None:
    """``CODE: message`` of the run's latest failure event."""
    failure = latest_failure(session, run_id)
    if failure is None:
        return None
    return f"{failure[0]}: {failure[1] or ''}".rstrip(": ")


LEDGER_COLUMNS = (
    "run_id",
    "run_kind",
    "mode",
    "status",
    "target_types",
    "parent_run_id",
    "requested_by",
    "started_at",
    "finished_at",
    "target_count",
    "processed_count",
    "success_count",
    "failed_count",
    "unprocessed_count",
    "trace_id",
    "created_at",
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def ledger_dict(session: Session, run: IngestionRun) -> dict[str, Any]:
    """The ledger columns plus ``error_summary``, JSON-ready."""
    doc = {c: _jsonable(getattr(run, c)) for c in LEDGER_COLUMNS}
    doc["error_summary"] = error_summary(session, run.run_id)
    return doc


def run_detail(session: Session, run_id: uuid.UUID | str) -> dict[str, Any]:
    run = get_run(session, run_id)
    doc = ledger_dict(session, run)
    dashboard = dashboard_of(session, run.run_id)
    doc["dashboard"] = dashboard.slug
    doc["retryable"] = is_retryable(session, run)
    doc["sources"] = [
        {
            "file_name": s.file_name,
            "role": s.role,
            "feed_id": _jsonable(s.feed_id),
            "size_bytes": s.size_bytes,
            "sha256": s.sha256,
            "detected_encoding": s.detected_encoding,
        }
        for s in sources_of(session, run.run_id)
    ]
    doc["children"] = [
        {"run_id": str(c.run_id), "status": c.status}
        for c in session.scalars(
            select(IngestionRun)
            .where(IngestionRun.parent_run_id == run.run_id)
            .order_by(IngestionRun.created_at)
        )
    ]
    return doc


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest("INVALID_LIMIT", f"limit must be between 1 and {MAX_PAGE}")
    return limit


def list_runs(
    session: Session,
    *,
    status: str | None = None,
    run_kind: str | None = None,
    mode: str | None = None,
    dashboard_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[IngestionRun], str | None]:
    """Newest first, keyset-paginated on (created_at, run_id)."""
    check_limit(limit)
    query = select(IngestionRun)
    if status:
        query = query.where(IngestionRun.status == status)
    if run_kind:
        query = query.where(IngestionRun.run_kind == run_kind)
    if mode:
        query = query.where(IngestionRun.mode == mode)
    if dashboard_id:
        query = query.where(
            IngestionRun.run_id.in_(
                select(IngestionRunSource.run_id).where(
                    IngestionRunSource.csv_dashboard_id == dashboard_id
                )
            )
        )
    if cursor:
        created_raw, rid_raw = decode_cursor(cursor, str, str)
        try:
            created = datetime.fromisoformat(created_raw)
            rid = uuid.UUID(rid_raw)
        except ValueError:
            raise bad_cursor() from None
        query = query.where(
            or_(
                IngestionRun.created_at < created,
                and_(IngestionRun.created_at == created, IngestionRun.run_id < rid),
            )
        )
    runs = list(
        session.scalars(
            query.order_by(IngestionRun.created_at.desc(), IngestionRun.run_id.desc()).limit(
                limit + 1
            )
        )
    )
    next_cursor = None
    if len(runs) > limit:
        runs = runs[:limit]
        last = runs[-1]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.run_id)])
    return runs, next_cursor


def list_items(
    session: Session,
    run_id: uuid.UUID,
    *,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[IngestionItem], str | None]:
    check_limit(limit)
    if status is not None and status not in {s.value for s in ItemStatus}:
        raise InvalidRequest("INVALID_STATUS", f"unknown item status {status!r}")
    query = select(IngestionItem).where(IngestionItem.run_id == run_id)
    if status:
        query = query.where(IngestionItem.status == status)
    if cursor:
        (after,) = decode_cursor(cursor, int)
        query = query.where(IngestionItem.id > after)
    items = list(session.scalars(query.order_by(IngestionItem.id).limit(limit + 1)))
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        next_cursor = encode_cursor([items[-1].id])
    return items, next_cursor


def list_events(session: Session, run_id: uuid.UUID) -> list[IngestionEvent]:
    return list(
        session.scalars(
            select(IngestionEvent)
            .where(IngestionEvent.run_id == run_id)
            .order_by(IngestionEvent.id)
        )
    )


def item_dict(item: IngestionItem) -> dict[str, Any]:
    return {
        "line_number": item.line_number,
        "row_key": item.row_key,
        "status": item.status,
        "update_type": item.update_type,
        "reason_code": item.reason_code,
        "message": item.message,
        "row_id": _jsonable(item.csv_dashboard_row_id),
    }


def event_dict(event: IngestionEvent) -> dict[str, Any]:
    return {
        "event_type": event.event_type,
        "event_status": event.event_status,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "error_code": event.error_code,
        "message": event.message,
        "details": event.details,
        "occurred_at": _jsonable(event.occurred_at),
        "trace_id": event.trace_id,
    }
