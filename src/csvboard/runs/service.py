"""Starting, re-running, cancelling and reading runs. Status changes go through lifecycle."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.db.cursor import bad_cursor, decode_cursor, encode_cursor
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.runs import lifecycle
from csvboard.runs.models import (
    IngestionEvent,
    IngestionItem,
    IngestionRun,
    IngestionRunSource,
)
from csvboard.runs.vocabulary import (
    ACTIVE_STATUSES,
    RETRYABLE_STATUSES,
    EventStatus,
    ItemStatus,
    RunKind,
    RunMode,
    RunStatus,
    TargetType,
)
from csvboard.storage import StoredFile

MAX_RETRIES_PER_ORIGINAL = 3
MAX_PAGE = 200


def new_trace_id() -> str:
    """A W3C trace id: 32 lowercase hex digits."""
    return secrets.token_hex(16)


def validate_targets(run_kind: str, target_types: list[str]) -> tuple[RunKind, list[str]]:
    try:
        kind = RunKind(run_kind)
    except ValueError:
        allowed = ", ".join(k.value for k in RunKind)
        raise InvalidRequest("INVALID_RUN_KIND", f"run_kind must be one of {allowed}") from None
    if not target_types:
        raise InvalidRequest("INVALID_TARGET", "target_types must not be empty")
    unknown = [t for t in target_types if t not in {t.value for t in TargetType}]
    if unknown:
        raise InvalidRequest("INVALID_TARGET", f"unknown target type(s): {', '.join(unknown)}")
    targets = list(dict.fromkeys(target_types))
    if kind is RunKind.APPEARANCE_SUPPLEMENT and targets != [TargetType.APPEARANCE.value]:
        raise InvalidRequest(
            "INVALID_TARGET", 'appearance_supplement needs target_types exactly ["appearance"]'
        )
    if kind is not RunKind.APPEARANCE_SUPPLEMENT and TargetType.OFFICIAL.value not in targets:
        raise InvalidRequest("INVALID_TARGET", f"{kind.value} reads the official feed")
    return kind, targets


@dataclass(frozen=True)
class NewSource:
    feed: CsvDashboardFeed
    stored: StoredFile | None
    # Where the file was expected when it could not be stored (the run then fails FILE_MISSING).
    missing_location: str | None = None
    # The mail message the file came from (imap feeds): its Message-ID or sha256 key.
    message_id: str | None = None


def create_run(
    session: Session,
    *,
    dashboard: CsvDashboard,
    run_kind: str,
    target_types: list[str],
    sources: list[NewSource],
    mode: str = RunMode.MANUAL.value,
    requested_by: str | None = None,
    parent_run_id: uuid.UUID | None = None,
    trace_id: str | None = None,
) -> IngestionRun:
    """Queue a run in the caller's transaction."""
    kind, targets = validate_targets(run_kind, target_types)
    if mode not in {m.value for m in RunMode}:
        raise InvalidRequest("INVALID_MODE", "mode must be manual or scheduled")
    if not sources:
        raise InvalidRequest("NO_SOURCE", "a run needs at least one source file")
    for src in sources:
        if src.feed.role not in targets:
            raise InvalidRequest(
                "INVALID_TARGET", f"feed {src.feed.name} has role {src.feed.role}, not in targets"
            )
    now = utcnow()
    run = IngestionRun(
        run_id=uuid.uuid4(),
        run_kind=kind.value,
        mode=mode,
        status=RunStatus.QUEUED.value,
        target_types=targets,
        parent_run_id=parent_run_id,
        requested_by=(requested_by or None) and requested_by[:64],
        trace_id=trace_id or new_trace_id(),
        created_at=now,
    )
    session.add(run)
    session.flush()
    for position, src in enumerate(sources):
        stored = src.stored
        session.add(
            IngestionRunSource(
                id=uuid.uuid4(),
                run_id=run.run_id,
                csv_dashboard_id=dashboard.id,
                feed_id=src.feed.id,
                role=src.feed.role,
                position=position,
                file_name=stored.file_name if stored else (src.missing_location or "?")[-255:],
                size_bytes=stored.size_bytes if stored else None,
                sha256=stored.sha256 if stored else None,
                stored_path=str(stored.stored_path) if stored else None,
                message_id=src.message_id,
                created_at=now,
            )
        )
    lifecycle.record_event(
        session,
        run.run_id,
        run.trace_id,
        "queued",
        EventStatus.SUCCESS,
        to_status=RunStatus.QUEUED,
        message=f"{kind.value} of {dashboard.slug} queued"
        + (f" as a re-run of {parent_run_id}" if parent_run_id else ""),
        at=now,
    )
    session.flush()
    return run


def get_run(session: Session, run_id: uuid.UUID | str) -> IngestionRun:
    try:
        rid = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except ValueError:
        raise NotFound("RUN_NOT_FOUND", f"no run {run_id!r}") from None
    run = session.get(IngestionRun, rid)
    if run is None:
        raise NotFound("RUN_NOT_FOUND", f"no run {run_id}")
    return run


def sources_of(session: Session, run_id: uuid.UUID) -> list[IngestionRunSource]:
    return list(
        session.scalars(
            select(IngestionRunSource)
            .where(IngestionRunSource.run_id == run_id)
            .order_by(IngestionRunSource.position)
        )
    )


def dashboard_of(session: Session, run_id: uuid.UUID) -> CsvDashboard:
    dashboard = session.scalar(
        select(CsvDashboard)
        .join(IngestionRunSource, IngestionRunSource.csv_dashboard_id == CsvDashboard.id)
        .where(IngestionRunSource.run_id == run_id)
        .limit(1)
    )
    if dashboard is None:
        raise NotFound("DASHBOARD_NOT_FOUND", f"run {run_id} names no dashboard")
    return dashboard


def _root_of(session: Session, run: IngestionRun) -> IngestionRun:
    current = run
    seen = {run.run_id}
    while current.parent_run_id is not None:
        parent = session.get(IngestionRun, current.parent_run_id)
        if parent is None or parent.run_id in seen:
            break
        seen.add(parent.run_id)
        current = parent
    return current


def _descendants(session: Session, root_id: uuid.UUID) -> list[IngestionRun]:
    found: list[IngestionRun] = []
    frontier = [root_id]
    while frontier:
        children = list(
            session.scalars(select(IngestionRun).where(IngestionRun.parent_run_id.in_(frontier)))
        )
        found.extend(children)
        frontier = [c.run_id for c in children]
    return found


def retry_run(session: Session, run_id: uuid.UUID | str, *, requested_by: str) -> IngestionRun:
    """Queue a re-run of a failed, partial or cancelled run (docs/contract.md §2.1 "Re-runs")."""
    run = get_run(session, run_id)
    root = _root_of(session, run)
    if session.get_bind().dialect.name == "postgresql":
        # Concurrent re-runs of one lineage serialise on its original run's row.
        session.execute(
            select(IngestionRun.run_id).where(IngestionRun.run_id == root.run_id).with_for_update()
        )
        session.refresh(run)
    if RunStatus(run.status) not in RETRYABLE_STATUSES:
        raise Conflict(
            "RUN_NOT_RETRYABLE",
            f"run {run.run_id} is {run.status}; only failed, partial or cancelled runs re-run",
        )
    active_child = session.scalar(
        select(IngestionRun.run_id).where(
            IngestionRun.parent_run_id == run.run_id,
            IngestionRun.status.in_([s.value for s in ACTIVE_STATUSES]),
        )
    )
    if active_child is not None:
        raise Conflict(
            "RETRY_ALREADY_ACTIVE", f"re-run {active_child} of run {run.run_id} is still active"
        )
    if len(_descendants(session, root.run_id)) >= MAX_RETRIES_PER_ORIGINAL:
        raise Conflict(
            "RETRY_LIMIT_EXCEEDED",
            f"run {root.run_id} already has {MAX_RETRIES_PER_ORIGINAL} re-runs",
        )
    dashboard = dashboard_of(session, run.run_id)
    new_sources: list[NewSource] = []
    for src in sources_of(session, run.run_id):
        feed = session.get(CsvDashboardFeed, src.feed_id) if src.feed_id else None
        if feed is None:
            raise Conflict("FEED_GONE", f"the feed of source {src.file_name} no longer exists")
        stored = (
            StoredFile(src.file_name, src.size_bytes or 0, src.sha256 or "", Path(src.stored_path))
            if src.stored_path and src.sha256
            else None
        )
        new_sources.append(NewSource(feed=feed, stored=stored, missing_location=src.file_name))
    return create_run(
        session,
        dashboard=dashboard,
        run_kind=run.run_kind,
        target_types=list(run.target_types),
        sources=new_sources,
        mode=RunMode.MANUAL.value,
        requested_by=requested_by,
        parent_run_id=run.run_id,
    )


def error_summary(session: Session, run_id: uuid.UUID) -> str | None:
    """``CODE: message`` of the run's latest failure event."""
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
    if event is None:
        return None
    return f"{event[0]}: {event[1] or ''}".rstrip(": ")


def is_retryable(session: Session, run: IngestionRun) -> bool:
    if RunStatus(run.status) not in RETRYABLE_STATUSES:
        return False
    if session.scalar(
        select(IngestionRun.run_id).where(
            IngestionRun.parent_run_id == run.run_id,
            IngestionRun.status.in_([s.value for s in ACTIVE_STATUSES]),
        )
    ):
        return False
    return len(_descendants(session, _root_of(session, run).run_id)) < MAX_RETRIES_PER_ORIGINAL


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


def active_identical_run(
    session: Session, dashboard_id: uuid.UUID, sha256: str
) -> uuid.UUID | None:
    """A queued or running run of the same dashboard reading a file with the same bytes."""
    return session.scalar(
        select(IngestionRun.run_id)
        .join(IngestionRunSource, IngestionRunSource.run_id == IngestionRun.run_id)
        .where(
            IngestionRunSource.csv_dashboard_id == dashboard_id,
            IngestionRunSource.sha256 == sha256,
            IngestionRun.status.in_([s.value for s in ACTIVE_STATUSES]),
        )
        .limit(1)
    )


def start_upload_run(
    session: Session,
    *,
    dashboard: CsvDashboard,
    stored: StoredFile,
    run_kind: str,
    requested_by: str | None,
    mode: str = RunMode.MANUAL.value,
    trace_id: str | None = None,
) -> IngestionRun:
    """Queue a run reading one uploaded file through the dashboard's upload feed for its role."""
    from csvboard.dashboards.service import upload_feed

    kind, _ = validate_targets(
        run_kind, ["appearance"] if run_kind == "appearance_supplement" else ["official"]
    )
    role = TargetType.APPEARANCE if kind is RunKind.APPEARANCE_SUPPLEMENT else TargetType.OFFICIAL
    feed = upload_feed(session, dashboard.id, role.value)
    return create_run(
        session,
        dashboard=dashboard,
        run_kind=kind.value,
        target_types=[role.value],
        sources=[NewSource(feed=feed, stored=stored)],
        mode=mode,
        requested_by=requested_by,
        trace_id=trace_id,
    )
