"""The run ledger over HTTP (docs/contract.md §5): start, list, inspect, re-run and cancel
runs. Health is ``csvboard.api.health``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from csvboard.api import idempotency
from csvboard.api.deps import EngineDep, PrincipalDep, ReadSession, SettingsDep, needs
from csvboard.api.idempotency import IdempotentRequest
from csvboard.api.schemas import problem_responses
from csvboard.auth import Principal, Role
from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.service import feeds_of, get_dashboard, upload_feed
from csvboard.dashboards.vocabulary import FeedSource
from csvboard.db.cursor import decode_cursor
from csvboard.db.engine import write_session
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.feeds.folder_runs import REQUEST_SETTLE_SECONDS, claim_for_request
from csvboard.runs import lifecycle
from csvboard.runs.latest import latest_runs
from csvboard.runs.models import IngestionRun
from csvboard.runs.queries import (
    check_limit,
    event_dict,
    item_dict,
    ledger_dict,
    list_events,
    list_items,
    list_runs,
    run_detail,
)
from csvboard.runs.schemas import (
    CancelResult,
    DashboardLatest,
    Event,
    Item,
    ItemPage,
    Latest,
    Run,
    RunAccepted,
    RunDetail,
    RunLink,
    RunPage,
    StartRunJson,
)
from csvboard.runs.service import (
    NewSource,
    active_identical_run,
    create_run,
    dashboard_of,
    get_run,
    retry_run,
    validate_targets,
)
from csvboard.runs.vocabulary import RunKind, RunMode, RunStatus, TargetType
from csvboard.settings import Settings
from csvboard.storage import StoredFile, store_stream

router = APIRouter(prefix="/api/v1/ops", tags=["runs"])

START_ENDPOINT = "POST /api/v1/ops/ingestion/runs"
MAX_FILES = 10


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
    feeds = [f for f in feeds if f.source != FeedSource.UPLOAD]
    if not feeds:
        raise InvalidRequest(
            "NO_SOURCE", "no folder feed to read: upload a file (multipart) or name a folder feed"
        )
    sources = []
    for feed in feeds:
        if feed.source != FeedSource.FOLDER:
            raise InvalidRequest(
                "UNSUPPORTED_FEED_SOURCE", f"feed {feed.name}: {feed.source} feeds are fetched"
                " by the scheduler, not on request",
            )  # fmt: skip
        # The scheduler's own claim (feeds/folder.py): an atomic rename, so the scheduler and
        # a request never both take a file, which then follows the scheduler's life cycle; a
        # rollback of this transaction puts it back.
        stored = claim_for_request(
            session, feed, data_dir=settings.data_dir, settle_seconds=REQUEST_SETTLE_SECONDS
        )
        if stored is None:
            raise Conflict(
                "NO_FILE_WAITING", f"feed {feed.name}: no CSV file in {Path(feed.location or '')}"
            )
        sources.append(NewSource(feed=feed, stored=stored))
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
    asked = {
        k: fields[k] for k in ("dashboard", "run_kind", "trigger_mode", "target_types", "feeds")
    }
    request = IdempotentRequest(
        key=key,
        principal=principal.name,
        endpoint=START_ENDPOINT,
        payload_hash=idempotency.payload_hash({**asked, "files": [f.sha256 for f in stored]}),
        now=utcnow(),
    )
    with write_session(engine) as session:
        dashboard = get_dashboard(session, fields["dashboard"])
        earlier = request.replay(session)
        if earlier is None and not request.claim(session):
            # A concurrent identical request won the key (PostgreSQL waited for its commit).
            earlier = request.replay(session)
            if earlier is None:
                raise Conflict(
                    "IDEMPOTENCY_IN_PROGRESS", "the same request is still being accepted"
                )
        if earlier is not None:
            return get_run(session, earlier), False
        for file in stored:
            active = active_identical_run(session, dashboard.id, file.sha256)
            if active is not None:
                raise Conflict(
                    "RUN_ALREADY_ACTIVE",
                    f"run {active} of the same file for {dashboard.slug} is queued or running",
                )
        if stored:
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
        request.record(session, run.run_id)
        return run, True


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
    key = idempotency.key_from(request)
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
    newest, boards = latest_runs(session)
    return Latest(
        latest=_run_model(session, newest) if newest else None,
        dashboards=[
            DashboardLatest(
                dashboard=b.dashboard.slug,
                latest_run=_run_model(session, b.newest, dashboard=b.dashboard.slug)
                if b.newest
                else None,
                last_success_at=b.last_success_at,
            )
            for b in boards
        ],
    )
