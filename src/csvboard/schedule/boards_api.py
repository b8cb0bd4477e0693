"""HTTP routes of the boards beside the kiosk list (docs/contract.md §6): 進捗一覧's cards by
製番 and 順位ボード's columns by resource, under ``/api/v1/schedules/{slug}`` like the list's
(``schedule/api.py``); reads, for the viewer role. The writes a board makes are the list's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from csvboard.api.caching import etag_or_not_modified
from csvboard.api.deps import CursorQuery, EngineDep, PrincipalDep, ReadSession, SettingsDep, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.clock import utcnow
from csvboard.db.engine import write_session
from csvboard.schedule import cards, load, order_board, signage
from csvboard.schedule.access import schedule_dashboard
from csvboard.schedule.schemas import (
    Capacity,
    LoadReport,
    ScheduleRowPage,
    SeibanCardPage,
    SignageSnapshot,
)
from csvboard.schedule.search import MAX_SEARCH_LENGTH

router = APIRouter(prefix="/api/v1/schedules/{slug}", tags=["production schedule"])
# A resource's capacity is a setting of the dashboard (admin), beside its feeds.
settings_router = APIRouter(prefix="/api/v1/dashboards/{slug}", tags=["dashboards"])

READ = problem_responses(400, 401, 403, 404)


@router.get(
    "/cards",
    response_model=SeibanCardPage,
    summary="進捗一覧: progress cards by 製番",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def list_cards(
    slug: str,
    session: ReadSession,
    seiban: Annotated[list[str], Query(description="The scope's 製番; repeat for several.")] = [],  # noqa: B006
    q: Annotated[
        str | None,
        Query(max_length=MAX_SEARCH_LENGTH, description="Search, as the list's (without a scope)."),
    ] = None,
    cursor: CursorQuery = None,
    limit: Annotated[
        int, Query(description=f"Cards a page, 1–{cards.MAX_CARDS}.")
    ] = cards.DEFAULT_CARDS,
) -> dict[str, Any]:
    """One page of 製番 cards in 製番 order: the machine's name, the nearest due date of an
    open step, the done / total count, and each part with its steps (resource, done) in 工順
    order — for ``seiban`` (a terminal's scope), else the 製番 matching ``q``, else every 製番.
    A card lists at most 40 parts and counts the rest. 400 ``UNKNOWN_SEIBAN``,
    ``SCOPE_TOO_LARGE``, ``INVALID_LIMIT``, ``INVALID_CURSOR``."""
    dashboard = schedule_dashboard(session, slug)
    return cards.seiban_cards(session, dashboard, seibans=seiban, q=q, cursor=cursor, limit=limit)


@router.get(
    "/order-board",
    response_model=ScheduleRowPage,
    summary="順位ボード: one resource's steps in working order",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def order_board_column(
    slug: str,
    session: ReadSession,
    resource: Annotated[str, Query(min_length=1, max_length=64, description="Resource code.")],
    completion: Annotated[
        Literal["all", "complete", "incomplete"], Query(description="Default: open steps.")
    ] = "incomplete",
    cursor: CursorQuery = None,
    limit: Annotated[
        int, Query(description=f"Steps a page, 1–{order_board.MAX_COLUMN_PAGE}.")
    ] = order_board.DEFAULT_COLUMN_PAGE,
) -> dict[str, Any]:
    """A page of one resource's column: the steps with a machining order (1–10) first, then
    those with a due date (earliest first), then the rest in the kiosk order; open steps
    unless ``completion`` says otherwise. 400 ``UNKNOWN_RESOURCE``, ``INVALID_LIMIT``,
    ``INVALID_CURSOR``."""
    dashboard = schedule_dashboard(session, slug)
    return order_board.order_column(
        session, dashboard, resource, completion=completion, cursor=cursor, limit=limit
    )


@router.get(
    "/signage",
    response_model=SignageSnapshot,
    summary="Signage: the snapshot every screen shows",
    openapi_extra=needs(Role.VIEWER),
    responses={**READ, 304: {"description": "Not modified (If-None-Match)."}},
)
def signage_snapshot(slug: str, session: ReadSession, request: Request, response: Response) -> Any:
    """The registered 製番' progress (% done, the first open parts, how many more) and each
    resource's first open steps in working order, with the time it was computed. Computed at
    most once per 30 s per server process and shared by every screen; ``ETag`` /
    ``If-None-Match`` → 304 when a screen already shows it."""
    dashboard = schedule_dashboard(session, slug)
    return etag_or_not_modified(request, response, signage.cached_snapshot(session, dashboard))


class CapacityBody(BaseModel):
    """A resource's weekly capacity in hours; null removes it."""

    weekly_hours: float | None = Field(description="Hours a week (> 0), or null to remove it.")


@router.get(
    "/load",
    response_model=LoadReport,
    summary="負荷: required hours per resource and week against capacity",
    openapi_extra=needs(Role.VIEWER),
    responses=READ,
)
def get_load(
    slug: str,
    session: ReadSession,
    settings: SettingsDep,
    weeks: Annotated[
        int, Query(description=f"Weeks shown, 1–{load.MAX_WEEKS}.")
    ] = load.DEFAULT_WEEKS,
) -> dict[str, Any]:
    """Per resource: the hours (FSIGENSHOYORYO) of its open steps per week of their due date
    from this week on (Monday first, the factory's time zone), overdue and later hours, the
    hours of steps without a due date, its weekly capacity and the weeks over it.
    400 ``INVALID_WEEKS``."""
    dashboard = schedule_dashboard(session, slug)
    today = utcnow().astimezone(settings.timezone).date()
    return load.resource_load(session, dashboard, today=today, weeks=weeks)


@settings_router.put(
    "/capacities/{resource}",
    response_model=Capacity,
    summary="Set a resource's weekly capacity",
    openapi_extra=needs(Role.ADMIN),
    responses=problem_responses(400, 401, 403, 404),
)
def put_capacity(
    slug: str, resource: str, body: CapacityBody, principal: PrincipalDep, engine: EngineDep
) -> dict[str, Any]:
    """Set (or, with null, remove) how many hours a week ``resource`` can work.
    400 ``INVALID_CAPACITY`` (not a positive number of hours), ``UNKNOWN_RESOURCE``."""
    with write_session(engine) as session:
        dashboard = schedule_dashboard(session, slug)
        return load.set_capacity(
            session, dashboard, resource, body.weekly_hours, by=principal.label
        )
