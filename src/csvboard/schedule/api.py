"""HTTP routes of the production schedule: composed rows, kiosk writes, progress
(docs/contract.md §5).

Everything under ``/api/v1/schedules/{slug}``. Reads need the viewer role, the ``PUT`` writes
the operator role. The rules live in the domain modules (``queries``, ``commands``, ...);
this module maps HTTP onto them and keeps every row id scoped to the dashboard in the path: a
row of another dashboard is ``404 ROW_NOT_FOUND`` (checked in the write's own transaction,
which is rolled back if the row turns out to be elsewhere).

Order of checks (docs/contract.md §5): 401/403 (middleware) → 400 (body, then the domain's
input checks) → 404 (dashboard, then row) → 409 (the row's state: retired, order number taken, ...).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from csvboard.api.deps import EngineDep, PrincipalDep, ReadSession, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.dashboards.columns import PRODUCTION_SCHEDULE
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.service import get_dashboard
from csvboard.db.cursor import CURSOR_PATTERN
from csvboard.db.engine import read_session, write_session
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.schedule import board, commands, progress, queries, search, seibans
from csvboard.schedule.models import MAX_NOTE_LENGTH, MAX_ORDER_NUMBER, MAX_REGISTERED_SEIBANS

router = APIRouter(prefix="/api/v1/schedules/{slug}", tags=["production schedule"])

DEFAULT_PAGE_SIZE = 500
MAX_SEARCH_LENGTH = 400

READ = problem_responses(400, 401, 403, 404)
WRITE = problem_responses(400, 401, 403, 404, 409)
LIST_WRITE = problem_responses(400, 401, 403, 404, 412, 428)


# --- models -------------------------------------------------------------------------------


class OrderOut(BaseModel):
    """A step's machining order on its resource."""

    resource_cd: str
    order_number: int = Field(ge=1, le=MAX_ORDER_NUMBER)


class ScheduleRowOut(BaseModel):
    """A step: the CSV's values with the operator data composed in.

    ``row_data.progress`` is ``"完了"`` when the step is complete (a worker's mark or the
    source's), ``""`` otherwise.
    """

    id: uuid.UUID
    row_key: str
    row_data: dict[str, str]
    supplement_data: dict[str, str]
    is_active: bool
    completed: bool = Field(description="Effective completion: manual OR external.")
    manual_completed: bool = Field(description="A worker marked it complete.")
    external_completed: bool = Field(description="A source file reported it complete.")
    note: str | None
    due_date: date | None
    processing_type: str | None
    order: OrderOut | None
    machine_name: str | None = Field(description="品名 of the 製番's machine row (MH…/SH…).")
    updated_at: datetime | None = Field(description="Latest change of the row or its data.")


class ScheduleRowPage(BaseModel):
    items: list[ScheduleRowOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class ResourceProgress(BaseModel):
    resource_cd: str
    resource_name: str | None
    total: int
    completed: int


class SeibanProgress(BaseModel):
    fseiban: str
    machine_name: str | None
    total: int
    completed: int
    incomplete_parts: list[str] = Field(description="品名 of the parts with incomplete steps.")


class ProgressSummary(BaseModel):
    """Active steps (machine rows excluded), with effective completion."""

    total: int
    completed: int
    by_resource: list[ResourceProgress]
    by_seiban: list[SeibanProgress]


class ResourceOut(BaseModel):
    resource_cd: str
    resource_name: str | None


class ResourceList(BaseModel):
    items: list[ResourceOut]


class ScheduleRowList(BaseModel):
    items: list[ScheduleRowOut]


class RegisteredSeibanOut(BaseModel):
    fseiban: str
    machine_name: str | None
    total: int = Field(description="Active steps of the 製番 (0: none, e.g. all retired).")
    completed: int


class RegisteredSeibanList(BaseModel):
    """The 製番 every kiosk of the dashboard shows as buttons. ``version`` is the ETag's."""

    version: int
    limit: int = Field(description="How many 製番 the list may hold.")
    items: list[RegisteredSeibanOut]


class RegisteredSeibanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seibans: list[str] = Field(
        description=f"The whole list in button order, at most {MAX_REGISTERED_SEIBANS}.",
    )


class CompletionBody(BaseModel):
    """What the worker means: never a toggle, so a double tap lands in the same state."""

    model_config = ConfigDict(extra="forbid")

    intent: Literal["complete", "incomplete"]


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(
        description=f"One line, at most {MAX_NOTE_LENGTH} characters; empty deletes the note."
    )


class DueDateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    due_date: str | None = Field(
        description="`YYYY-MM-DD`; null or empty clears it (400 `INVALID_DUE_DATE`).",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "maxLength": 0},
                {"type": "null"},
            ]
        },
    )


class ProcessingTypeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    processing_type: str | None = Field(
        description="One of the dashboard's processing types; null or empty clears it."
    )


class OrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource_cd: str = Field(description="The step's resource (its FSIGENCD).")
    order_number: int | None = Field(
        ge=1, le=MAX_ORDER_NUMBER, description="1–10, free on the resource; null clears it."
    )


# --- scoping ------------------------------------------------------------------------------


def _schedule(session: Session, slug: str) -> CsvDashboard:
    """The production-schedule dashboard of the path (404 / 400 NOT_A_SCHEDULE)."""
    dashboard = get_dashboard(session, slug)
    if dashboard.kind != PRODUCTION_SCHEDULE:
        raise InvalidRequest(
            "NOT_A_SCHEDULE", f"dashboard {dashboard.slug!r} is not a production schedule"
        )
    return dashboard


def _check_scope(session: Session, slug: str, row_id: uuid.UUID) -> None:
    """The path's dashboard is a schedule and the row is one of its rows."""
    dashboard = _schedule(session, slug)
    owner = session.scalar(
        select(CsvDashboardRow.csv_dashboard_id).where(CsvDashboardRow.id == row_id)
    )
    if owner != dashboard.id:
        raise NotFound("ROW_NOT_FOUND", f"dashboard {dashboard.slug!r} has no row {row_id}")


def _scoped(
    engine: Engine,
    slug: str,
    row_id: uuid.UUID,
    action: Callable[[Session], dict[str, Any]],
    *,
    write: bool,
) -> dict[str, Any]:
    """Run a service call on one row, inside the dashboard of the path.

    The service validates its input first (400) and then finds the row (404) and its state
    (409). Scope is checked after it, in the same transaction: a 404 or 409 of the service
    gives way to the path's own 404 (or 400 NOT_A_SCHEDULE), and a write to a row of another
    dashboard raises before commit, so it is rolled back.
    """
    opened: AbstractContextManager[Session] = (
        write_session(engine) if write else read_session(engine)
    )
    with opened as session:
        try:
            row = action(session)
        except (NotFound, Conflict):
            _check_scope(session, slug, row_id)
            raise
        _check_scope(session, slug, row_id)
        return row


# --- routes -------------------------------------------------------------------------------


@router.get(
    "/rows",
    response_model=ScheduleRowPage,
    summary="List schedule steps",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def list_rows(
    slug: str,
    session: ReadSession,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_SEARCH_LENGTH,
            description=(
                "Comma-separated tokens (at most 8, OR-ed): 8 characters match 製番 exactly or"
                " 品番/ProductNo partly; digits match ProductNo/品番 partly; anything else"
                " 製番/品番/品名 partly."
            ),
        ),
    ] = None,
    resource: Annotated[
        list[str], Query(description="Resource codes (FSIGENCD); repeat for several.")
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    seiban: Annotated[
        list[str], Query(description="製番 (FSEIBAN) of the scope; repeat for several.")
    ] = [],  # noqa: B006
    completion: Annotated[
        Literal["all", "complete", "incomplete"], Query(description="Effective completion.")
    ] = "all",
    has_note: bool | None = None,
    has_due_date: bool | None = None,
    include_retired: Annotated[
        bool, Query(description="Also steps no longer in the official schedule.")
    ] = False,
    include_machine_rows: Annotated[
        bool, Query(description="Also the machine rows (品番 MH…/SH…), which are not steps.")
    ] = False,
    cursor: Annotated[
        str | None,
        Query(
            description="`next_cursor` of the previous page (400 `INVALID_CURSOR` otherwise).",
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
    ] = None,
    limit: Annotated[
        int,
        Query(
            description=f"Page size, 1–{queries.MAX_PAGE_SIZE} (400 `INVALID_LIMIT` otherwise).",
            json_schema_extra={"minimum": 1, "maximum": queries.MAX_PAGE_SIZE},
        ),
    ] = DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """One page of steps in kiosk order (製番, ProductNo, 工順, 品番), operator data composed.

    Filters AND together; search tokens OR. The cursor is a keyset on the sort: a step
    changed between pages never shows twice nor goes missing. 400 ``INVALID_LIMIT``,
    ``INVALID_CURSOR``, ``TOO_MANY_TOKENS``.
    """
    if not 1 <= limit <= queries.MAX_PAGE_SIZE:
        raise InvalidRequest(
            "INVALID_LIMIT", f"limit must be 1–{queries.MAX_PAGE_SIZE}, not {limit}"
        )
    search.search_tokens(q)  # 400 TOO_MANY_TOKENS before the dashboard's 404
    dashboard = _schedule(session, slug)
    resources, seiban_scope = board.check_scope(session, dashboard, resource, seiban)
    items, next_cursor = queries.list_rows(
        session,
        dashboard,
        q=q,
        resources=resources,
        seibans=seiban_scope,
        completion=completion,
        has_note=has_note,
        has_due_date=has_due_date,
        include_retired=include_retired,
        include_machine_rows=include_machine_rows,
        cursor=cursor,
        limit=limit,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/rows/{row_id}",
    response_model=ScheduleRowOut,
    summary="Read one step",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def read_row(slug: str, row_id: uuid.UUID, engine: EngineDep) -> dict[str, Any]:
    """One step, retired or not, operator data composed. 404 ``ROW_NOT_FOUND``."""
    return _scoped(engine, slug, row_id, lambda s: queries.get_row(s, row_id), write=False)


@router.put(
    "/rows/{row_id}/completion",
    response_model=ScheduleRowOut,
    summary="Mark a step complete or incomplete",
    openapi_extra=needs(Role.OPERATOR),
    responses=WRITE,
)
def put_completion(
    slug: str,
    row_id: uuid.UUID,
    body: CompletionBody,
    engine: EngineDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Set the worker's mark to the stated intent (idempotent; never a toggle).

    Completing releases the step's order number and closes the gap behind it. ``incomplete``
    clears only the worker's mark: a step the source reports done stays complete.
    409 ``ROW_RETIRED``.
    """
    return _scoped(
        engine,
        slug,
        row_id,
        lambda s: commands.set_completion(s, row_id, body.intent, by=principal.label),
        write=True,
    )


@router.put(
    "/rows/{row_id}/note",
    response_model=ScheduleRowOut,
    summary="Write a step's note",
    openapi_extra=needs(Role.OPERATOR),
    responses=WRITE,
)
def put_note(
    slug: str,
    row_id: uuid.UUID,
    body: NoteBody,
    engine: EngineDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """One line of at most 100 characters; empty deletes it. 400 ``INVALID_NOTE``."""
    return _scoped(
        engine,
        slug,
        row_id,
        lambda s: commands.set_note(s, row_id, body.note, by=principal.label),
        write=True,
    )


@router.put(
    "/rows/{row_id}/due-date",
    response_model=ScheduleRowOut,
    summary="Set a step's due date",
    openapi_extra=needs(Role.OPERATOR),
    responses=WRITE,
)
def put_due_date(
    slug: str,
    row_id: uuid.UUID,
    body: DueDateBody,
    engine: EngineDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """``YYYY-MM-DD``; null or empty clears it. 400 ``INVALID_DUE_DATE``."""
    return _scoped(
        engine,
        slug,
        row_id,
        lambda s: commands.set_due_date(s, row_id, body.due_date, by=principal.label),
        write=True,
    )


@router.put(
    "/rows/{row_id}/processing-type",
    response_model=ScheduleRowOut,
    summary="Set a step's processing type",
    openapi_extra=needs(Role.OPERATOR),
    responses=WRITE,
)
def put_processing_type(
    slug: str,
    row_id: uuid.UUID,
    body: ProcessingTypeBody,
    engine: EngineDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """One of the dashboard's processing types; null or empty clears it.
    400 ``INVALID_PROCESSING_TYPE``."""
    return _scoped(
        engine,
        slug,
        row_id,
        lambda s: commands.set_processing_type(s, row_id, body.processing_type, by=principal.label),
        write=True,
    )


@router.put(
    "/rows/{row_id}/order",
    response_model=ScheduleRowOut,
    summary="Set a step's machining order",
    openapi_extra=needs(Role.OPERATOR),
    responses=WRITE,
)
def put_order(
    slug: str,
    row_id: uuid.UUID,
    body: OrderBody,
    engine: EngineDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Give the step order number 1–10 on its resource, or clear it (null; the gap closes).

    400 ``RESOURCE_MISMATCH`` when ``resource_cd`` is not the step's; 409
    ``ORDER_NUMBER_TAKEN``, ``STEP_COMPLETED``, ``ROW_RETIRED``.
    """
    return _scoped(
        engine,
        slug,
        row_id,
        lambda s: commands.set_order(
            s, row_id, body.resource_cd, body.order_number, by=principal.label
        ),
        write=True,
    )


@router.get(
    "/summary",
    response_model=ProgressSummary,
    summary="Progress by resource and by 製番",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def summary(
    slug: str,
    session: ReadSession,
    resource: Annotated[
        list[str], Query(description="The scope's resource codes; repeat for several.")
    ] = [],  # noqa: B006
    seiban: Annotated[list[str], Query(description="The scope's 製番; repeat for several.")] = [],  # noqa: B006
) -> dict[str, Any]:
    """Totals and completed counts of active steps by resource and by 製番, with the names
    of each 製番's incomplete parts.

    With a scope (``resource`` and/or ``seiban``, AND-ed) only the scope is counted, reading
    only its range of an index: this is what a kiosk asks for. ``by_seiban`` is filled for a
    scope of 製番 only. Without a scope it is the whole dashboard's report, which reads every
    row (about 1 s at 60,000 steps): for scripts and the CLI, not for a board.
    400 ``UNKNOWN_RESOURCE``, ``SCOPE_TOO_LARGE``.
    """
    dashboard = _schedule(session, slug)
    if resource or seiban:
        return board.scoped_summary(session, dashboard, resource_list=resource, seiban_list=seiban)
    return progress.progress_summary(session, dashboard)


@router.get(
    "/resources",
    response_model=ResourceList,
    summary="The schedule's resources",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def list_resources(slug: str, session: ReadSession) -> dict[str, Any]:
    """Every resource code (FSIGENCD) with its name: what a kiosk's scope is chosen from."""
    return {"items": board.resources(session, _schedule(session, slug))}


@router.get(
    "/lookup",
    response_model=ScheduleRowList,
    summary="Re-read the steps a board shows",
    openapi_extra=needs(Role.VIEWER),
    responses={**READ, 304: {"description": "Not modified (If-None-Match)."}},
)
def lookup_rows(
    slug: str,
    session: ReadSession,
    request: Request,
    response: Response,
    id: Annotated[
        list[uuid.UUID],
        Query(description=f"Row ids; repeat, at most {board.MAX_LOOKUP_IDS}."),
    ] = [],  # noqa: B006
) -> Any:
    """The composed rows of ``id`` that are this dashboard's, retired ones included, in kiosk
    order — what a board's poll asks for, so that other kiosks' changes show without
    reloading the list. The answer carries an ``ETag``; a poll that sends it back
    (``If-None-Match``) gets ``304`` with no body when nothing changed. 400 ``TOO_MANY_IDS``."""
    items = board.rows_by_id(session, _schedule(session, slug), id)
    return _cached(request, response, {"items": items})


@router.get(
    "/seibans",
    response_model=RegisteredSeibanList,
    summary="The registered 製番",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def get_seibans(slug: str, session: ReadSession, response: Response) -> dict[str, Any]:
    """The dashboard's registered 製番 in button order, each with its machine name and
    progress. ``ETag`` is the list's version (send it as ``If-Match`` to edit)."""
    dashboard = _schedule(session, slug)
    version, items = _registered(session, dashboard)
    # The ETag names the list's version (what an edit's If-Match must send); the body also
    # carries each 製番's progress, which changes without a new version, so no 304 here.
    response.headers["ETag"] = seibans.etag(version)
    return {"version": version, "limit": MAX_REGISTERED_SEIBANS, "items": items}


@router.put(
    "/seibans",
    response_model=RegisteredSeibanList,
    summary="Replace the registered 製番",
    openapi_extra=needs(Role.OPERATOR),
    responses=LIST_WRITE,
)
def put_seibans(
    slug: str,
    body: RegisteredSeibanBody,
    engine: EngineDep,
    principal: PrincipalDep,
    response: Response,
    if_match: Annotated[str | None, Header(description="The ETag of the list as read.")] = None,
) -> dict[str, Any]:
    """Replace the whole list (button order) — only if it is still the version read.

    428 ``IF_MATCH_REQUIRED`` without ``If-Match``; 412 ``SEIBAN_LIST_CHANGED`` when someone
    else edited it since (read it again); 400 ``INVALID_IF_MATCH``, ``INVALID_SEIBAN``,
    ``DUPLICATE_SEIBAN``, ``TOO_MANY_SEIBANS`` (more than {MAX_REGISTERED_SEIBANS}),
    ``UNKNOWN_SEIBAN``. Nothing changes when refused.
    """
    seibans.check_list(body.seibans)  # every 400 of the body before the dashboard's 404
    with write_session(engine) as session:
        dashboard = _schedule(session, slug)
        seibans.replace(session, dashboard, body.seibans, if_match=if_match, by=principal.label)
        version, items = _registered(session, dashboard)
    response.headers["ETag"] = seibans.etag(version)
    return {"version": version, "limit": MAX_REGISTERED_SEIBANS, "items": items}


def _registered(session: Session, dashboard: CsvDashboard) -> tuple[int, list[dict[str, Any]]]:
    version, registered = seibans.registered(session, dashboard)
    progress: dict[str, dict[str, Any]] = {}
    if registered:
        doc = board.scoped_summary(session, dashboard, seiban_list=registered)
        progress = {p["fseiban"]: p for p in doc["by_seiban"]}
    items = [
        {
            "fseiban": s,
            "machine_name": progress.get(s, {}).get("machine_name"),
            "total": progress.get(s, {}).get("total", 0),
            "completed": progress.get(s, {}).get("completed", 0),
        }
        for s in registered
    ]
    return version, items


def _cached(request: Request, response: Response, doc: dict[str, Any]) -> Any:
    """The document with a weak ETag of its own content, or ``304`` when the client's
    ``If-None-Match`` already names it (a poll that found nothing changed)."""
    digest = hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=12)
    tag = f'W/"{digest.hexdigest()}"'
    response.headers["ETag"] = tag
    sent = request.headers.get("if-none-match")
    if tag and sent and tag in [t.strip() for t in sent.split(",")]:
        return Response(status_code=304, headers={"ETag": tag})
    return doc


__all__ = ["router"]
