"""The run ledger over HTTP (docs/contract.md §5): start, list, inspect, re-run and cancel
runs. Health is ``csvboard.api.health``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from csvboard.api.deps import CursorQuery, EngineDep, PrincipalDep, ReadSession, SettingsDep, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.dashboards.service import get_dashboard
from csvboard.db.cursor import decode_cursor
from csvboard.db.engine import write_session
from csvboard.errors import Conflict, NotFound
from csvboard.runs import lifecycle, retry_policy
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
)
from csvboard.runs.service import (
    dashboard_of,
    get_run,
    retry_run,
)
from csvboard.runs.vocabulary import RunStatus

router = APIRouter(prefix="/api/v1/ops", tags=["runs"])

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
    cursor: CursorQuery = None,
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
def get_run_detail(run_id: str, session: ReadSession, settings: SettingsDep) -> RunDetail:
    doc = run_detail(session, run_id)
    pending = retry_policy.pending_retry(
        session, get_run(session, run_id), settings.auto_retry_delays
    )
    if pending is not None:
        doc["auto_retry"] = {"attempt": pending.attempt, "due_at": pending.due_at}
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
    cursor: CursorQuery = None,
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


@router.post(
    "/ingestion/runs/{run_id}/auto-retry/cancel",
    response_model=CancelResult,
    openapi_extra=needs(Role.ADMIN),
    responses=problem_responses(401, 403, 404, 409),
    summary="Stop the automatic re-run of a failed run (and so its chain)",
)
def post_cancel_auto_retry(
    run_id: str, principal: PrincipalDep, engine: EngineDep, settings: SettingsDep
) -> CancelResult:
    """409 ``NO_PENDING_RETRY`` when the policy would not re-run it anyway."""
    with write_session(engine) as session:
        run = get_run(session, run_id)
        if retry_policy.pending_retry(session, run, settings.auto_retry_delays) is None:
            raise Conflict("NO_PENDING_RETRY", f"run {run.run_id} has no automatic re-run pending")
        retry_policy.cancel(session, run, by=principal.label)
        return CancelResult(
            run_id=run.run_id, status=run.status, detail="automatic re-runs stopped"
        )
