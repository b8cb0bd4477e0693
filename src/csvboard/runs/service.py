"""Starting and re-running runs, and the lookups they need. Status changes go through lifecycle.

A run is queued with its sources (``create_run``; the feeds start runs through it:
``feeds/runs.py``, ``feeds/start.py``); a failed, partial or
cancelled run can be re-run under the rules of docs/contract.md §2.1 (``retry_run``,
``is_retryable``). Reading the ledger — lists, a run's detail, items, events — is ``queries``'s.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionRun, IngestionRunSource
from csvboard.runs.vocabulary import (
    ACTIVE_STATUSES,
    RETRYABLE_STATUSES,
    EventStatus,
    RunKind,
    RunMode,
    RunStatus,
    TargetType,
)
from csvboard.storage import StoredFile

MAX_RETRIES_PER_ORIGINAL = 3


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


def ancestors(session: Session, run: IngestionRun) -> list[IngestionRun]:
    """``run``'s parent, its parent's parent, ... up to the original run (last)."""
    found: list[IngestionRun] = []
    current, seen = run, {run.run_id}
    while current.parent_run_id is not None:
        parent = session.get(IngestionRun, current.parent_run_id)
        if parent is None or parent.run_id in seen:
            break
        seen.add(parent.run_id)
        found.append(parent)
        current = parent
    return found


def _root_of(session: Session, run: IngestionRun) -> IngestionRun:
    return (ancestors(session, run) or [run])[-1]


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
    for src in _sources_held(session, run.run_id):
        if src.pruned_at is not None:
            raise Conflict(
                "SOURCE_PRUNED",
                f"the stored copy of {src.file_name} was removed by retention on"
                f" {src.pruned_at:%Y-%m-%d}; run {run.run_id} cannot be re-run",
            )
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


def _sources_held(session: Session, run_id: uuid.UUID) -> list[IngestionRunSource]:
    """A run's sources, read fresh; on PostgreSQL share-locked until the re-run commits, so
    a prune marking them pruned either waits for it (and its unlink then sees the new run
    naming the stored copies) or is waited for (and its ``pruned_at`` is seen). SQLite's
    writers are serialised already."""
    query = (
        select(IngestionRunSource)
        .where(IngestionRunSource.run_id == run_id)
        .order_by(IngestionRunSource.id)  # the prune locks in id order too (runs/retention.py)
        .execution_options(populate_existing=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    return sorted(session.scalars(query), key=lambda src: src.position)


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
    if session.scalar(
        select(IngestionRunSource.id).where(
            IngestionRunSource.run_id == run.run_id, IngestionRunSource.pruned_at.is_not(None)
        )
    ):
        return False  # its stored copy is gone (retention)
    return len(_descendants(session, _root_of(session, run).run_id)) < MAX_RETRIES_PER_ORIGINAL


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
