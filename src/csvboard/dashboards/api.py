"""HTTP routes of dashboards, their feeds and their rows (docs/contract.md §2.2, 5).

``/api/v1/dashboards``: list (viewer), create (admin); one dashboard: read (viewer), update
(admin); its feeds: list (viewer), create and update (admin); its rows: a searchable, keyset-
paged list (viewer). Roles are enforced by the request middleware from each route's
``openapi_extra`` before any body is read; the handlers are thin layers over
:mod:`csvboard.dashboards.service`, each write in one short ``write_session`` transaction.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import ValidationError

from csvboard.api.deps import CursorQuery, EngineDep, ReadSession, SettingsDep, needs
from csvboard.api.problems import invalid_body
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.dashboards import rows as rows_service
from csvboard.dashboards.rows import MAX_ROWS_PAGE, RowState
from csvboard.dashboards.schemas import (
    DashboardCreate,
    DashboardList,
    DashboardOut,
    DashboardRowPage,
    DashboardUpdate,
    FeedCreate,
    FeedList,
    FeedOut,
    FeedUpdate,
    dashboard_out,
    feed_out,
    one_dashboard_out,
    row_out,
)
from csvboard.dashboards.service import (
    get_dashboard,
    list_dashboards,
    new_dashboard,
    row_counts,
    update_dashboard,
)
from csvboard.db.engine import write_session
from csvboard.feeds import service as feeds_service

router = APIRouter(prefix="/api/v1/dashboards", tags=["dashboards"])

DEFAULT_ROWS_PAGE = 100
MAX_SEARCH_LENGTH = 200


READ_ONE = problem_responses(400, 401, 403, 404)
WRITE = problem_responses(400, 401, 403, 404, 409)


# --- routes: dashboards -------------------------------------------------------------------


@router.get(
    "",
    response_model=DashboardList,
    summary="List dashboards",
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403),
)
def list_all(session: ReadSession, settings: SettingsDep) -> DashboardList:
    """Every dashboard, by slug, with its active and retired row counts."""
    dashboards = list_dashboards(session)
    counts = row_counts(session, [d.id for d in dashboards])
    return DashboardList(items=[dashboard_out(d, counts[d.id], settings) for d in dashboards])


@router.post(
    "",
    status_code=201,
    response_model=DashboardOut,
    summary="Create a dashboard",
    openapi_extra=needs(Role.ADMIN),
    responses=problem_responses(400, 401, 403, 409),
)
def create(body: DashboardCreate, engine: EngineDep, settings: SettingsDep) -> DashboardOut:
    """Create a dashboard from the ``production-schedule`` preset or from explicit columns.

    It gets an ``upload`` feed for official files (and, for the preset, a ``status-report``
    appearance feed). 409 ``DASHBOARD_EXISTS`` when the slug is taken.
    """
    columns = None if body.columns is None else [c.model_dump() for c in body.columns]
    with write_session(engine) as session:
        try:
            dashboard = new_dashboard(
                session, body.slug, name=body.name, preset=body.preset, columns=columns,
                key_columns=body.key_columns, version_columns=body.version_columns,
                ingest_mode=body.ingest_mode, encoding=body.encoding,
            )  # fmt: skip
        except ValidationError as exc:
            raise invalid_body(exc) from None
        return dashboard_out(dashboard, [0, 0], settings)


@router.get(
    "/{slug}",
    response_model=DashboardOut,
    summary="Read a dashboard",
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403, 404),
)
def read_one(slug: str, session: ReadSession, settings: SettingsDep) -> DashboardOut:
    """One dashboard by slug (or id). 404 ``DASHBOARD_NOT_FOUND``."""
    return one_dashboard_out(session, get_dashboard(session, slug), settings)


@router.patch(
    "/{slug}",
    response_model=DashboardOut,
    summary="Update a dashboard",
    openapi_extra=needs(Role.ADMIN),
    responses=WRITE,
)
def update(
    slug: str, body: DashboardUpdate, engine: EngineDep, settings: SettingsDep
) -> DashboardOut:
    """Rename, change the encoding, the production schedule's processing types, the
    operations settings (retention in days, manual re-runs), or — while the dashboard has no
    rows — its columns, keys, versions and mode.

    400 ``VALIDATION_FAILED`` naming ``operations.<setting>`` for a retention that is not
    1–36500 days (or null), 400 ``NOT_A_SCHEDULE`` for processing types of a generic
    dashboard, 400 ``SCHEMA_FIXED`` for the shape of a production schedule, 409
    ``DASHBOARD_HAS_ROWS`` for a shape change of a dashboard that already holds rows; a
    refused request changes nothing. ``updated_at`` moves on any change.
    """
    columns = None if body.columns is None else [c.model_dump(mode="json") for c in body.columns]
    with write_session(engine) as session:
        try:
            dashboard = update_dashboard(
                session, slug, name=body.name, encoding=body.encoding,
                new_processing_types=body.processing_types, columns=columns,
                key_columns=body.key_columns, version_columns=body.version_columns,
                ingest_mode=body.ingest_mode, operations=body.operations_changes(),
            )  # fmt: skip
        except ValidationError as exc:
            raise invalid_body(exc) from None
        return one_dashboard_out(session, dashboard, settings)


# --- routes: feeds ------------------------------------------------------------------------


@router.get(
    "/{slug}/feeds",
    response_model=FeedList,
    summary="List a dashboard's feeds",
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403, 404),
)
def list_feeds(slug: str, session: ReadSession) -> FeedList:
    """Every feed of the dashboard, enabled or not, oldest first."""
    dashboard = get_dashboard(session, slug)
    feeds = feeds_service.list_feeds(session, dashboard)
    return FeedList(items=[feed_out(f, dashboard.slug, st) for f, st in feeds])


@router.post(
    "/{slug}/feeds",
    status_code=201,
    response_model=FeedOut,
    summary="Add a feed",
    openapi_extra=needs(Role.ADMIN),
    responses=WRITE,
)
def create_feed(slug: str, body: FeedCreate, engine: EngineDep) -> FeedOut:
    """Add a feed: an ``official`` or ``appearance`` source by ``upload``, ``folder`` or ``url``.

    409 ``FEED_EXISTS`` when the dashboard already has a feed of that name.
    """
    with write_session(engine) as session:
        dashboard = get_dashboard(session, slug)
        feed = feeds_service.create_feed(
            session, dashboard, name=body.name, role=body.role, source=body.source,
            location=body.location, schedule=body.schedule, enabled=body.enabled,
            mapping=body.mapping, options=body.options,
        )  # fmt: skip
        return feed_out(feed, dashboard.slug)


@router.patch(
    "/{slug}/feeds/{feed_id}",
    response_model=FeedOut,
    summary="Update a feed",
    openapi_extra=needs(Role.ADMIN),
    responses=WRITE,
)
def update_feed(slug: str, feed_id: uuid.UUID, body: FeedUpdate, engine: EngineDep) -> FeedOut:
    """Change a feed's settings; the result is validated as a whole (as on creation).

    404 ``FEED_NOT_FOUND`` for a feed of another dashboard, 409 ``FEED_EXISTS`` on a rename
    onto a taken name.
    """
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    with write_session(engine) as session:
        dashboard = get_dashboard(session, slug)
        feed, state = feeds_service.update_feed(session, dashboard, feed_id, changes)
        return feed_out(feed, dashboard.slug, state)


# --- routes: rows -------------------------------------------------------------------------


@router.get(
    "/{slug}/rows",
    response_model=DashboardRowPage,
    summary="List a dashboard's rows",
    openapi_extra=needs(Role.VIEWER),
    responses=READ_ONE,
)
def list_rows(
    slug: str,
    session: ReadSession,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_SEARCH_LENGTH,
            description="Case-insensitive substring of any value of the row's CSV data.",
        ),
    ] = None,
    state: Annotated[
        RowState,
        Query(description="Active rows (default), retired rows, or both."),
    ] = "active",
    cursor: CursorQuery = None,
    limit: Annotated[
        int,
        Query(
            description=f"Page size, 1–{MAX_ROWS_PAGE} (400 `INVALID_LIMIT` otherwise).",
            json_schema_extra={"minimum": 1, "maximum": MAX_ROWS_PAGE},
        ),
    ] = DEFAULT_ROWS_PAGE,
) -> DashboardRowPage:
    """One page of rows in the order they were first ingested (then by id).

    The cursor is a keyset (``created_at``, ``id``): a row changed, retired or added while a
    client pages is never returned twice nor skipped (rows added after the walk began come at
    its end). 400 ``INVALID_LIMIT`` / ``INVALID_CURSOR``.
    """
    page = rows_service.page_rows(session, slug, q=q, state=state, cursor=cursor, limit=limit)
    return DashboardRowPage(
        items=[row_out(row, completed) for row, completed in page.rows],
        next_cursor=page.next_cursor,
    )


__all__ = ["router"]
