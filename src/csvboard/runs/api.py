"""The run ledger over HTTP (docs/contract.md §5): start, list, inspect, re-run and cancel
runs; health."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from csvboard.api.deps import EngineDep, PrincipalDep, ReadSession, SettingsDep, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Principal, Role
from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.service import feeds_of, get_dashboard
from csvboard.db import upsert
from csvboard.db.engine import read_session, write_session
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.runs import lifecycle
from csvboard.runs.models import IdempotencyKey, IngestionRun, IngestionRunLease
from csvboard.runs.queries import (
    event_dict,
    item_dict,
    ledger_dict,
    list_events,
    list_items,
    list_runs,
    run_detail,
)
from csvboard.runs.service import (
    NewSource,
    active_identical_run,
    create_run,
    dashboard_of,
    retry_run,
    validate_targets,
)
from csvboard.runs.vocabulary import RunKind, RunMode, RunStatus, TargetType
from csvboard.settings import Settings
from csvboard.storage import StoredFile, store_file, store_stream

router = APIRouter(prefix="/api/v1/ops", tags=["runs"])

IDEMPOTENCY_TTL = timedelta(hours=24)
START_ENDPOINT = "POST /api/v1/ops/ingestion/runs"
MAX_FILES = 10


# -- response models --------------------------------------------------------------------------


class RunAccepted(BaseModel):
    run_id: uuid.UUID
    status: str
    accepted_at: datetime
    trace_id: str


class Run(BaseModel):
    """The ledger's columns (docs/design/ingestion_runs_table.md) plus what the admin needs."""

    run_id: uuid.UUID
    run_kind: str
    mode: str
    status: str
    target_types: list[str]
    parent_run_id: uuid.UUID | None
    requested_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    target_count: int
    processed_count: int
    success_count: int
    failed_count: int
    unprocessed_count: int
    trace_id: str
    created_at: datetime
    error_summary: str | None
    dashboard: str | None = None


class RunPage(BaseModel):
    items: list[Run]
    next_cursor: str | None


class Source(BaseModel):
    file_name: str
    role: str
    feed_id: uuid.UUID | None
    size_bytes: int | None
    sha256: str | None
    detected_encoding: str | None


class RunLink(BaseModel):
    run_id: uuid.UUID
    status: str


class RunDetail(Run):
    retryable: bool
    sources: list[Source]
    parent: RunLink | None
    children: list[RunLink]


class Item(BaseModel):
    line_number: int | None
    row_key: str | None
    status: str
    update_type: str | None
    reason_code: str | None
    message: str | None
    row_id: uuid.UUID | None


class ItemPage(BaseModel):
    items: list[Item]
    next_cursor: str | None


class Event(BaseModel):
    event_type: str
    event_status: str
    from_status: str | None
    to_status: str | None
    error_code: str | None
    message: str | None
    details: dict[str, Any] | None
    occurred_at: datetime
    trace_id: str


class CancelResult(BaseModel):
    run_id: uuid.UUID
    status: str
    detail: str


class DashboardLatest(BaseModel):
    dashboard: str
    latest_run: Run | None
    last_success_at: datetime | None


class Latest(BaseModel):
    latest: Run | None
    dashboards: list[DashboardLatest]


class Health(BaseModel):
    status: Literal["ok", "degraded", "critical"]
    checks: dict[str, str]


class StartRunJson(BaseModel):
    """A run of feeds that fetch their own files (no upload)."""

    dashboard: str = Field(min_length=1, max_length=64)
    run_kind: Literal["official_ingestion", "incremental_update", "appearance_supplement"]
    trigger_mode: Literal["manual", "scheduled"] = "manual"
    target_types: list[Literal["official", "appearance"]] = Field(default_factory=list)
    feeds: list[str] | None = None


# -- starting runs ----------------------------------------------------------------------------

START_BODY = {
    # Declared here, read by hand: a missing key is a 400 MISSING_IDEMPOTENCY_KEY, not a generic
    # validation error.
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": "The same key with the same payload returns the same run for 24 h.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["dashboard", "run_kind", "file"],
                    "properties": {
                        "dashboard": {"type": "string"},
                        "run_kind": {"type": "string", "enum": [k.value for k in RunKind]},
                        "trigger_mode": {"type": "string", "enum": ["manual", "scheduled"]},
                        "target_types": {
                            "type": "string",
                            "description": "comma-separated: official, appearance",
                        },
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            },
            "application/json": {"schema": StartRunJson.model_json_schema()},
        },
    },
}


def _payload_hash(fields: dict[str, Any], files: list[StoredFile]) -> str:
    doc = {**fields, "files": [f.sha256 for f in files]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _default_targets(run_kind: str) -> list[str]:
    if run_kind == RunKind.APPEARANCE_SUPPLEMENT.value:
        return [TargetType.APPEARANCE.value]
    return [TargetType.OFFICIAL.value]


def _split_targets(raw: str | None, run_kind: str) -> list[str]:
    if raw is None:
        return _default_targets(run_kind)
    return [t.strip() for t in raw.split(",") if t.strip()]


async def _read_start_request(
    request: Request, settings: Settings
) -> tuple[dict[str, Any], list[StoredFile]]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form(max_files=MAX_FILES, max_fields=20)
        fields: dict[str, Any] = {}
        for name in ("dashboard", "run_kind", "trigger_mode", "target_types"):
            value = form.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidRequest("VALIDATION_FAILED", f"field {name} must be text")
            fields[name] = value
        uploads = [v for v in form.getlist("file") if isinstance(v, UploadFile)]
        if not fields["dashboard"] or not fields["run_kind"]:
            raise InvalidRequest("VALIDATION_FAILED", "fields dashboard and run_kind are required")
        if not uploads:
            raise InvalidRequest("FILE_REQUIRED", "attach the CSV as the multipart field 'file'")
        stored = []
        for upload in uploads:
            stored.append(
                await run_in_threadpool(
                    store_stream, settings.data_dir, upload.file, upload.filename or "upload.csv"
                )
            )
        fields["target_types"] = _split_targets(fields["target_types"], fields["run_kind"])
        fields["trigger_mode"] = fields["trigger_mode"] or RunMode.MANUAL.value
        fields["feeds"] = None
        return fields, stored
    if content_type.startswith("application/json"):
        try:
            body = StartRunJson.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidRequest(
                "VALIDATION_FAILED",
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
            ) from None
        fields = body.model_dump()
        fields["target_types"] = fields["target_types"] or _default_targets(body.run_kind)
        return fields, []
    raise InvalidRequest(
        "UNSUPPORTED_MEDIA_TYPE", "send multipart/form-data with a file, or JSON naming feeds"
    )


def _sources_for_feeds(
    session: Session, dashboard: CsvDashboard, fields: dict[str, Any], settings: Settings
) -> list[NewSource]:
    """A JSON start names feeds whose files csvboard fetches itself (folder feeds)."""
    wanted = fields.get("feeds")
    feeds: list[CsvDashboardFeed] = []
    for role in fields["target_types"]:
        feeds.extend(feeds_of(session, dashboard.id, role))
    if wanted:
        feeds = [f for f in feeds if f.name in wanted or str(f.id) in wanted]
        missing = set(wanted) - {f.name for f in feeds} - {str(f.id) for f in feeds}
        if missing:
            raise NotFound("FEED_NOT_FOUND", f"no enabled feed {', '.join(sorted(missing))}")
    feeds = [f for f in feeds if f.source != "upload"]
    if not feeds:
        raise InvalidRequest(
            "NO_SOURCE", "no folder feed to read: upload a file (multipart) or name a folder feed"
        )
    sources = []
    for feed in feeds:
        if feed.source != "folder":
            raise InvalidRequest(
                "UNSUPPORTED_FEED_SOURCE", f"feed {feed.name}: {feed.source} feeds are fetched"
                " by the scheduler, not on request",
            )  # fmt: skip
        folder = Path(feed.location or "")
        waiting = sorted(
            (p for p in folder.glob("*") if p.is_file() and p.suffix.lower() == ".csv"),
            key=lambda p: (p.stat().st_mtime, p.name),
        )
        if not waiting:
            raise Conflict("NO_FILE_WAITING", f"feed {feed.name}: no CSV file in {folder}")
        sources.append(NewSource(feed=feed, stored=store_file(settings.data_dir, waiting[0])))
    return sources


def _start_run(
    engine: Any,
    settings: Settings,
    principal: Principal,
    key: str,
    fields: dict[str, Any],
    stored: list[StoredFile],
    trace_id: str,
) -> tuple[IngestionRun, bool]:
    """Create the run (or find the one this idempotency key already created)."""
    run_kind, targets = validate_targets(fields["run_kind"], fields["target_types"])
    if fields["trigger_mode"] not in {m.value for m in RunMode}:
        raise InvalidRequest("INVALID_TRIGGER_MODE", "trigger_mode must be manual or scheduled")
    if stored and len(targets) != 1:
        raise InvalidRequest(
            "INVALID_TARGET", "an uploaded file belongs to exactly one target type"
        )
    payload_hash = _payload_hash(
        {k: fields[k] for k in ("dashboard", "run_kind", "trigger_mode", "target_types", "feeds")},
        stored,
    )
    now = utcnow()
    with write_session(engine) as session:
        dashboard = get_dashboard(session, fields["dashboard"])
        existing = _idempotent_replay(session, principal, key, payload_hash, now)
        if existing is not None:
            return existing, False
        claimed = _claim_key(session, principal, key, payload_hash, now)
        if not claimed:
            # A concurrent identical request won the key (PostgreSQL waited for its commit).
            replay = _idempotent_replay(session, principal, key, payload_hash, now)
            if replay is None:
                raise Conflict(
                    "IDEMPOTENCY_IN_PROGRESS", "the same request is still being accepted"
                )
            return replay, False
        for file in stored:
            active = active_identical_run(session, dashboard.id, file.sha256)
            if active is not None:
                raise Conflict(
                    "RUN_ALREADY_ACTIVE",
                    f"run {active} of the same file for {dashboard.slug} is queued or running",
                )
        if stored:
            from csvboard.dashboards.service import upload_feed

            feed = upload_feed(session, dashboard.id, targets[0])
            sources = [NewSource(feed=feed, stored=f) for f in stored]
        else:
            sources = _sources_for_feeds(session, dashboard, fields, settings)
        run = create_run(
            session,
            dashboard=dashboard,
            run_kind=run_kind.value,
            target_types=targets,
            sources=sources,
            mode=fields["trigger_mode"],
            requested_by=principal.label,
            trace_id=trace_id,
        )
        session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.key == key,
                IdempotencyKey.principal == principal.name,
                IdempotencyKey.endpoint == START_ENDPOINT,
            )
            .values(run_id=run.run_id)
        )
        return run, True


def _claim_key(
    session: Session, principal: Principal, key: str, payload_hash: str, now: datetime
) -> bool:
    """Insert the key unless it exists; on PostgreSQL a concurrent insert of the same key makes
    this wait for that transaction, then do nothing — so exactly one request creates the run."""
    statement = upsert.insert(session, IdempotencyKey).values(
        key=key,
        principal=principal.name,
        endpoint=START_ENDPOINT,
        payload_hash=payload_hash,
        run_id=None,
        created_at=now,
        expires_at=now + IDEMPOTENCY_TTL,
    )
    # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT DO NOTHING here.
    inserted = session.execute(
        statement.on_conflict_do_nothing().returning(IdempotencyKey.key)
    ).scalar_one_or_none()
    return inserted is not None


def _idempotent_replay(
    session: Session, principal: Principal, key: str, payload_hash: str, now: datetime
) -> IngestionRun | None:
    row = session.get(IdempotencyKey, (key, principal.name, START_ENDPOINT))
    if row is None:
        return None
    if row.expires_at <= now:
        session.delete(row)
        session.flush()
        return None
    if row.payload_hash != payload_hash:
        raise Conflict(
            "IDEMPOTENCY_CONFLICT",
            "this Idempotency-Key was used with a different request in the last 24 hours",
        )
    if row.run_id is None:
        return None
    return session.get(IngestionRun, row.run_id)


@router.post(
    "/ingestion/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunAccepted,
    openapi_extra={**needs(Role.ADMIN), **START_BODY},
    responses=problem_responses(400, 401, 403, 404, 409, 413),
    summary="Start a run (multipart upload, or JSON naming folder feeds)",
)
async def start_run(
    request: Request,
    response: Response,
    principal: PrincipalDep,
    settings: SettingsDep,
    engine: EngineDep,
) -> RunAccepted:
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        raise InvalidRequest(
            "MISSING_IDEMPOTENCY_KEY",
            "send an Idempotency-Key header (e.g. a UUID) with each start",
        )
    if len(key) > 255:
        raise InvalidRequest(
            "INVALID_IDEMPOTENCY_KEY", "the Idempotency-Key is over 255 characters"
        )
    fields, stored = await _read_start_request(request, settings)
    trace_id: str = request.state.trace_id
    run, created = await run_in_threadpool(
        _start_run, engine, settings, principal, key, fields, stored, trace_id
    )
    if created and request.app.state.executor is not None:
        request.app.state.executor.notify()
    response.headers["Location"] = f"/api/v1/ops/ingestion/runs/{run.run_id}"
    return RunAccepted(
        run_id=run.run_id, status=run.status, accepted_at=run.created_at, trace_id=run.trace_id
    )


# -- reading the ledger -----------------------------------------------------------------------


def _run_model(session: Session, run: IngestionRun, *, dashboard: str | None = None) -> Run:
    doc = ledger_dict(session, run)
    if dashboard is None:
        try:
            dashboard = dashboard_of(session, run.run_id).slug
        except NotFound:
            dashboard = None
    return Run.model_validate({**doc, "dashboard": dashboard})


Limit = Annotated[int, Query(description="1–200")]


@router.get(
    "/ingestion/runs",
    response_model=RunPage,
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(400, 401, 403, 404),
    summary="Runs, newest first",
)
def get_runs(
    session: ReadSession,
    status_: Annotated[str | None, Query(alias="status")] = None,
    run_kind: str | None = None,
    mode: str | None = None,
    dashboard: str | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> RunPage:
    from csvboard.db.cursor import decode_cursor
    from csvboard.runs.queries import check_limit

    check_limit(limit)  # 400 before 404
    if cursor:
        decode_cursor(cursor, str, str)
    dashboard_id = get_dashboard(session, dashboard).id if dashboard else None
    runs, next_cursor = list_runs(
        session,
        status=status_,
        run_kind=run_kind,
        mode=mode,
        dashboard_id=dashboard_id,
        cursor=cursor,
        limit=limit,
    )
    return RunPage(items=[_run_model(session, r) for r in runs], next_cursor=next_cursor)


@router.get(
    "/ingestion/runs/{run_id}",
    response_model=RunDetail,
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403, 404),
    summary="One run: ledger columns, error summary, sources, lineage",
)
def get_run_detail(run_id: str, session: ReadSession) -> RunDetail:
    doc = run_detail(session, run_id)
    parent = None
    if doc["parent_run_id"]:
        parent_status = session.scalar(
            select(IngestionRun.status).where(
                IngestionRun.run_id == uuid.UUID(doc["parent_run_id"])
            )
        )
        if parent_status:
            parent = RunLink(run_id=doc["parent_run_id"], status=parent_status)
    return RunDetail.model_validate({**doc, "parent": parent})


def _existing_run_id(session: Session, run_id: str) -> uuid.UUID:
    from csvboard.runs.service import get_run

    return get_run(session, run_id).run_id


@router.get(
    "/ingestion/runs/{run_id}/items",
    response_model=ItemPage,
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(400, 401, 403, 404),
    summary="A run's per-row outcomes (changed, rejected or excluded rows)",
)
def get_run_items(
    run_id: str,
    session: ReadSession,
    status_: Annotated[str | None, Query(alias="status")] = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> ItemPage:
    from csvboard.db.cursor import decode_cursor
    from csvboard.runs.queries import check_limit

    check_limit(limit)  # 400 before 404, as everywhere
    if cursor:
        decode_cursor(cursor, int)
    rid = _existing_run_id(session, run_id)
    items, next_cursor = list_items(session, rid, status=status_, cursor=cursor, limit=limit)
    return ItemPage(
        items=[Item.model_validate(item_dict(i)) for i in items], next_cursor=next_cursor
    )


@router.get(
    "/ingestion/runs/{run_id}/events",
    response_model=list[Event],
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403, 404),
    summary="A run's events timeline",
)
def get_run_events(run_id: str, session: ReadSession) -> list[Event]:
    rid = _existing_run_id(session, run_id)
    return [Event.model_validate(event_dict(e)) for e in list_events(session, rid)]


@router.post(
    "/ingestion/runs/{run_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunAccepted,
    openapi_extra=needs(Role.ADMIN),
    responses=problem_responses(401, 403, 404, 409),
    summary="Re-run a failed, partial or cancelled run",
)
def post_retry(
    run_id: str, request: Request, response: Response, principal: PrincipalDep, engine: EngineDep
) -> RunAccepted:
    with write_session(engine) as session:
        run = retry_run(session, run_id, requested_by=principal.label)
        accepted = RunAccepted(
            run_id=run.run_id, status=run.status, accepted_at=run.created_at, trace_id=run.trace_id
        )
    if request.app.state.executor is not None:
        request.app.state.executor.notify()
    response.headers["Location"] = f"/api/v1/ops/ingestion/runs/{accepted.run_id}"
    return accepted


@router.post(
    "/ingestion/runs/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelResult,
    openapi_extra=needs(Role.ADMIN),
    responses=problem_responses(401, 403, 404, 409),
    summary="Cancel a queued run, or ask a running one to stop before it commits",
)
def post_cancel(run_id: str, principal: PrincipalDep, engine: EngineDep) -> CancelResult:
    with write_session(engine) as session:
        from csvboard.runs.service import get_run

        rid = get_run(session, run_id).run_id
        after = lifecycle.cancel(session, rid, by=principal.label)
    detail = (
        "cancelled before it started"
        if after is RunStatus.CANCELLED
        else "cancel requested: the run stops before it commits"
    )
    return CancelResult(run_id=rid, status=after.value, detail=detail)


@router.get(
    "/ingestion/latest",
    response_model=Latest,
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403),
    summary="The newest run, and per dashboard its newest run and last success",
)
def get_latest(session: ReadSession) -> Latest:
    from csvboard.dashboards.service import list_dashboards

    newest, _ = list_runs(session, limit=1)
    boards = []
    for board in list_dashboards(session):
        runs, _ = list_runs(session, dashboard_id=board.id, limit=1)
        ok, _ = list_runs(session, dashboard_id=board.id, status="succeeded", limit=1)
        partial, _ = list_runs(session, dashboard_id=board.id, status="partial", limit=1)
        finished = [r.finished_at for r in (*ok, *partial) if r.finished_at]
        boards.append(
            DashboardLatest(
                dashboard=board.slug,
                latest_run=_run_model(session, runs[0], dashboard=board.slug) if runs else None,
                last_success_at=max(finished) if finished else None,
            )
        )
    return Latest(latest=_run_model(session, newest[0]) if newest else None, dashboards=boards)


STALE_QUEUE = timedelta(minutes=10)
LOST_HEARTBEAT = timedelta(seconds=60)
#: A mail feed's error counts once it has outlasted this many poll intervals (at least
#: MAIL_MIN_OUTAGE) since the last successful poll (or since the feed was created).
MAIL_OUTAGE_POLLS = 3
MAIL_MIN_OUTAGE = timedelta(minutes=5)


def _failing_mail_feeds(session: Session, now: datetime) -> list[str]:
    """``slug/feed: error`` of each enabled imap feed whose error has persisted."""
    rows = session.execute(
        select(CsvDashboardFeed, CsvDashboard.slug, CsvDashboardFeedState)
        .join(CsvDashboard, CsvDashboard.id == CsvDashboardFeed.csv_dashboard_id)
        .join(CsvDashboardFeedState, CsvDashboardFeedState.feed_id == CsvDashboardFeed.id)
        .where(
            CsvDashboardFeed.source == "imap",
            CsvDashboardFeed.enabled.is_(True),
            CsvDashboardFeedState.last_error.is_not(None),
        )
        .order_by(CsvDashboard.slug, CsvDashboardFeed.name)
    ).all()
    failing = []
    for feed, slug, state in rows:
        try:
            poll = float((feed.options or {}).get("poll_seconds", 60))
        except (TypeError, ValueError):
            poll = 60.0
        allowed = max(timedelta(seconds=MAIL_OUTAGE_POLLS * poll), MAIL_MIN_OUTAGE)
        since = state.last_success_at or feed.created_at
        if now - since > allowed:
            failing.append(f"{slug}/{feed.name}: {state.last_error}")
    return failing


@router.get(
    "/diagnostics/health",
    response_model=Health,
    summary="ok | degraded | critical (public: for load balancers and monitors)",
)
def get_health(engine: EngineDep, response: Response) -> Health:
    checks: dict[str, str] = {}
    try:
        with read_session(engine) as session:
            session.execute(select(1))
            checks["database"] = "ok"
            now = utcnow()
            oldest_queued = session.scalar(
                select(func.min(IngestionRun.created_at)).where(
                    IngestionRun.status == RunStatus.QUEUED.value
                )
            )
            stuck = session.scalar(
                select(func.count())
                .select_from(IngestionRun)
                .join(IngestionRunLease, IngestionRunLease.run_id == IngestionRun.run_id)
                .where(
                    IngestionRun.status == RunStatus.RUNNING.value,
                    IngestionRunLease.heartbeat_at < now - LOST_HEARTBEAT,
                )
            )
            failing_feeds = _failing_mail_feeds(session, now)
    except SQLAlchemyError as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="critical", checks={"database": f"unreachable ({type(exc).__name__})"})
    degraded = False
    if oldest_queued is not None and now - oldest_queued > STALE_QUEUE:
        checks["queue"] = f"a run has waited since {oldest_queued.isoformat()}"
        degraded = True
    else:
        checks["queue"] = "ok"
    if stuck:
        checks["workers"] = f"{stuck} running run(s) without a heartbeat for over 60 s"
        degraded = True
    else:
        checks["workers"] = "ok"
    if failing_feeds:
        checks["mail_feeds"] = "failing: " + " | ".join(failing_feeds)
        degraded = True
    else:
        checks["mail_feeds"] = "ok"
    return Health(status="degraded" if degraded else "ok", checks=checks)
