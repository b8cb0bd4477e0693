"""HTTP routes of the production schedule: composed rows, kiosk writes, progress
(docs/contract.md §5).

Everything under ``/api/v1/schedules/{slug}``. Reads need the viewer role, the ``PUT`` writes
the operator role. Each route parses its input, calls one function of the domain
(``queries``, ``commands``, ``board``, ``seibans``; a row's reads and writes through
``access.on_row``, which keeps the row inside the path's dashboard) and shapes the answer;
bodies and responses are in ``schemas``.

Order of checks (docs/contract.md §5): 401/403 (middleware) → 400 (body, then the domain's
input checks) → 404 (dashboard, then row) → 409 (the row's state: retired, order number taken, ...).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from csvboard.api.caching import etag_or_not_modified
from csvboard.api.deps import CursorQuery, EngineDep, PrincipalDep, ReadSession, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.schedule import board, commands, queries, seibans
from csvboard.schedule.access import on_row, schedule_dashboard
from csvboard.schedule.models import MAX_REGISTERED_SEIBANS
from csvboard.schedule.schemas import (
    CompletionBody,
    DueDateBody,
    NoteBody,
    OrderBody,
    ProcessingTypeBody,
    ProgressSummary,
    RegisteredSeibanBody,
    RegisteredSeibanList,
    ResourceList,
    ScheduleRowList,
    ScheduleRowOut,
    ScheduleRowPage,
)
from csvboard.schedule.search import MAX_SEARCH_LENGTH

router = APIRouter(prefix="/api/v1/schedules/{slug}", tags=["production schedule"])

DEFAULT_PAGE_SIZE = 500

READ = problem_responses(400, 401, 403, 404)
WRITE = problem_responses(400, 401, 403, 404, 409)
LIST_WRITE = problem_responses(400, 401, 403, 404, 412, 428)


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
    cursor: CursorQuery = None,
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
    items, next_cursor = board.list_steps(
        session,
        slug,
        q=q,
        resource_list=resource,
        seiban_list=seiban,
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
    return on_row(engine, slug, row_id, lambda s: queries.get_row(s, row_id), write=False)


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
    return on_row(
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
    return on_row(
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
    return on_row(
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
    return on_row(
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
    return on_row(
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
    dashboard = schedule_dashboard(session, slug)
    return board.summary(session, dashboard, resource_list=resource, seiban_list=seiban)


@router.get(
    "/resources",
    response_model=ResourceList,
    summary="The schedule's resources",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def list_resources(slug: str, session: ReadSession) -> dict[str, Any]:
    """Every resource code (FSIGENCD) with its name: what a kiosk's scope is chosen from."""
    return {"items": board.resources(session, schedule_dashboard(session, slug))}


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
    items = board.rows_by_id(session, schedule_dashboard(session, slug), id)
    return etag_or_not_modified(request, response, {"items": items})


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
    version, items = seibans.with_progress(session, schedule_dashboard(session, slug))
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
    version, items = seibans.edit(engine, slug, body.seibans, if_match=if_match, by=principal.label)
    response.headers["ETag"] = seibans.etag(version)
    return {"version": version, "limit": MAX_REGISTERED_SEIBANS, "items": items}


__all__ = ["router"]
