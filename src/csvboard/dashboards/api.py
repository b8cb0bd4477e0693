"""HTTP routes of dashboards, their feeds and their rows (docs/contract.md §2.2, 5).

``/api/v1/dashboards``: list (viewer), create (admin); one dashboard: read (viewer), update
(admin); its feeds: list (viewer), create and update (admin); its rows: a searchable, keyset-
paged list (viewer). Roles are enforced by the request middleware from each route's
``openapi_extra`` before any body is read; the handlers are thin layers over
:mod:`csvboard.dashboards.service`, each write in one short ``write_session`` transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from csvboard.api.deps import EngineDep, ReadSession, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.dashboards import rows as rows_service
from csvboard.dashboards.columns import (
    COMPLETED_MARK,
    PRODUCTION_SCHEDULE,
    AppearanceMapping,
    ColumnDef,
    Encoding,
)
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed, CsvDashboardRow
from csvboard.dashboards.rows import MAX_ROWS_PAGE, RowState
from csvboard.dashboards.service import (
    MAX_PROCESSING_TYPE_LENGTH,
    get_dashboard,
    list_dashboards,
    new_dashboard,
    processing_types,
    row_counts,
    update_dashboard,
)
from csvboard.dashboards.vocabulary import DashboardKind, FeedSource, IngestMode, TargetType
from csvboard.db.cursor import CURSOR_PATTERN
from csvboard.db.engine import write_session
from csvboard.feeds import service as feeds_service
from csvboard.feeds.models import CsvDashboardFeedState

router = APIRouter(prefix="/api/v1/dashboards", tags=["dashboards"])

DEFAULT_ROWS_PAGE = 100
MAX_SEARCH_LENGTH = 200
MAX_PROCESSING_TYPES = 50


READ_ONE = problem_responses(400, 401, 403, 404)
WRITE = problem_responses(400, 401, 403, 404, 409)


# --- models -------------------------------------------------------------------------------


class DashboardOut(BaseModel):
    """A dashboard: its CSV shape, options and row counts."""

    id: uuid.UUID
    slug: str
    name: str
    kind: DashboardKind
    ingest_mode: IngestMode
    encoding: Encoding
    columns: list[ColumnDef]
    key_columns: list[str]
    version_columns: list[str]
    processing_types: list[str] | None = Field(
        description="Production schedule only: the processing types a step can be given."
    )
    active_rows: int
    retired_rows: int
    created_at: datetime
    updated_at: datetime


class DashboardList(BaseModel):
    items: list[DashboardOut]


class DashboardCreate(BaseModel):
    """A new dashboard: a ``preset`` or explicit ``columns`` + ``key_columns``."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="1–64 of a–z, 0–9, '-' and '_', starting with a letter or digit.",
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    preset: Literal["production-schedule"] | None = None
    columns: list[ColumnDef] | None = Field(default=None, min_length=1)
    key_columns: list[str] | None = None
    version_columns: list[str] | None = None
    ingest_mode: IngestMode | None = None
    encoding: Encoding | None = None


ProcessingTypeName = Annotated[str, Field(min_length=1, max_length=MAX_PROCESSING_TYPE_LENGTH)]


class DashboardUpdate(BaseModel):
    """Fields to change; absent (or null) fields stay as they are.

    ``columns``, ``key_columns``, ``version_columns`` and ``ingest_mode`` may change only
    while the dashboard has no rows (409 ``DASHBOARD_HAS_ROWS``), and never on a
    production-schedule dashboard, whose shape is the preset's.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    encoding: Encoding | None = None
    processing_types: list[ProcessingTypeName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PROCESSING_TYPES,
        json_schema_extra={"uniqueItems": True},
    )
    columns: list[ColumnDef] | None = Field(default=None, min_length=1)
    key_columns: list[str] | None = None
    version_columns: list[str] | None = None
    ingest_mode: IngestMode | None = None


class FeedStateOut(BaseModel):
    """What the scheduler last saw of a feed (the admin console shows it)."""

    last_polled_at: datetime | None = Field(description="When the scheduler last looked.")
    last_success_at: datetime | None = Field(
        description="When a poll of the source (imap) last completed without error."
    )
    last_message: str | None
    last_error: str | None
    last_run_id: uuid.UUID | None


class FeedOut(BaseModel):
    """Where a dashboard's files come from."""

    id: uuid.UUID
    dashboard: str = Field(description="The dashboard's slug.")
    name: str
    role: TargetType
    source: FeedSource
    location: str | None
    schedule: str | None = Field(description="Cron (5 fields, Asia/Tokyo), or null.")
    enabled: bool
    mapping: AppearanceMapping | None
    options: dict[str, Any] | None = Field(
        default=None,
        description="Source settings (imap: host, port, tls, user, password_env or "
        "password_file, folders, subject_pattern, allowed_senders, poll_seconds, run_kind).",
    )
    state: FeedStateOut | None = Field(
        default=None, description="The scheduler's last poll, message and error, if any."
    )
    created_at: datetime
    updated_at: datetime


class FeedList(BaseModel):
    items: list[FeedOut]


def _feed_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("the feed name must not be blank")
    return value


class FeedCreate(BaseModel):
    """A new feed. ``location`` is required for folder and url sources; ``mapping`` for
    appearance feeds; ``schedule`` (cron) only for folder and url sources."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    role: TargetType
    source: FeedSource
    location: str | None = Field(default=None, min_length=1, max_length=4096)
    schedule: str | None = Field(default=None, max_length=64)
    enabled: bool = True
    mapping: AppearanceMapping | None = None
    options: dict[str, Any] | None = None

    _strip_name = field_validator("name")(_feed_name)


class FeedUpdate(BaseModel):
    """Fields to change. An explicit null clears ``location``, ``schedule`` or ``mapping``;
    for the other fields null (or absence) leaves them as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=64)
    role: TargetType | None = None
    source: FeedSource | None = None
    location: str | None = Field(default=None, min_length=1, max_length=4096)
    schedule: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    mapping: AppearanceMapping | None = None
    options: dict[str, Any] | None = None

    _strip_name = field_validator("name")(_feed_name)


class DashboardRowOut(BaseModel):
    """One stored row. On a production-schedule dashboard ``row_data.progress`` is the
    effective completion (``"完了"`` or ``""``), as in every API row."""

    id: uuid.UUID
    row_key: str
    row_data: dict[str, str]
    supplement_data: dict[str, str]
    is_active: bool
    retired_at: datetime | None
    occurred_at: datetime | None
    first_run_id: uuid.UUID | None
    last_changed_run_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class DashboardRowPage(BaseModel):
    items: list[DashboardRowOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


# --- helpers ------------------------------------------------------------------------------


def _dashboard_out(dashboard: CsvDashboard, counts: list[int]) -> DashboardOut:
    is_schedule = dashboard.kind == PRODUCTION_SCHEDULE
    return DashboardOut.model_validate(
        {
            "id": dashboard.id,
            "slug": dashboard.slug,
            "name": dashboard.name,
            "kind": dashboard.kind,
            "ingest_mode": dashboard.ingest_mode,
            "encoding": dashboard.encoding,
            "columns": dashboard.columns,
            "key_columns": dashboard.key_columns,
            "version_columns": dashboard.version_columns,
            "processing_types": list(processing_types(dashboard)) if is_schedule else None,
            "active_rows": counts[0],
            "retired_rows": counts[1],
            "created_at": dashboard.created_at,
            "updated_at": dashboard.updated_at,
        }
    )


def _one_dashboard_out(session: Session, dashboard: CsvDashboard) -> DashboardOut:
    return _dashboard_out(dashboard, row_counts(session, [dashboard.id])[dashboard.id])


def _invalid_body(exc: ValidationError, *prefix: str) -> RequestValidationError:
    """A schema the body describes but that does not hold together → 400 with ``errors[]``."""
    errors = [
        {"loc": ("body", *prefix, *err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    return RequestValidationError(errors)


# --- feeds --------------------------------------------------------------------------------


def _feed_out(
    feed: CsvDashboardFeed, slug: str, state: CsvDashboardFeedState | None = None
) -> FeedOut:
    state_out = None
    if state is not None:
        state_out = {
            "last_polled_at": state.last_polled_at,
            "last_success_at": state.last_success_at,
            "last_message": state.last_message,
            "last_error": state.last_error,
            "last_run_id": state.last_run_id,
        }
    return FeedOut.model_validate(
        {
            "id": feed.id,
            "dashboard": slug,
            "name": feed.name,
            "role": feed.role,
            "source": feed.source,
            "location": feed.location,
            "schedule": feed.schedule,
            "enabled": feed.enabled,
            "mapping": feed.mapping,
            "options": feed.options,
            "state": state_out,
            "created_at": feed.created_at,
            "updated_at": feed.updated_at,
        }
    )


# --- rows ---------------------------------------------------------------------------------


def _row_out(row: CsvDashboardRow, completed: bool | None) -> DashboardRowOut:
    row_data = dict(row.row_data or {})
    if completed is not None:
        row_data["progress"] = COMPLETED_MARK if completed else ""
    return DashboardRowOut.model_validate(
        {
            "id": row.id,
            "row_key": row.row_key,
            "row_data": row_data,
            "supplement_data": dict(row.supplement_data or {}),
            "is_active": row.is_active,
            "retired_at": row.retired_at,
            "occurred_at": row.occurred_at,
            "first_run_id": row.first_run_id,
            "last_changed_run_id": row.last_changed_run_id,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


# --- routes: dashboards -------------------------------------------------------------------


@router.get(
    "",
    response_model=DashboardList,
    summary="List dashboards",
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403),
)
def list_all(session: ReadSession) -> DashboardList:
    """Every dashboard, by slug, with its active and retired row counts."""
    dashboards = list_dashboards(session)
    counts = row_counts(session, [d.id for d in dashboards])
    return DashboardList(items=[_dashboard_out(d, counts[d.id]) for d in dashboards])


@router.post(
    "",
    status_code=201,
    response_model=DashboardOut,
    summary="Create a dashboard",
    openapi_extra=needs(Role.ADMIN),
    responses=problem_responses(400, 401, 403, 409),
)
def create(body: DashboardCreate, engine: EngineDep) -> DashboardOut:
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
            raise _invalid_body(exc) from None
        return _dashboard_out(dashboard, [0, 0])


@router.get(
    "/{slug}",
    response_model=DashboardOut,
    summary="Read a dashboard",
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403, 404),
)
def read_one(slug: str, session: ReadSession) -> DashboardOut:
    """One dashboard by slug (or id). 404 ``DASHBOARD_NOT_FOUND``."""
    return _one_dashboard_out(session, get_dashboard(session, slug))


@router.patch(
    "/{slug}",
    response_model=DashboardOut,
    summary="Update a dashboard",
    openapi_extra=needs(Role.ADMIN),
    responses=WRITE,
)
def update(slug: str, body: DashboardUpdate, engine: EngineDep) -> DashboardOut:
    """Rename, change the encoding, the production schedule's processing types, or — while
    the dashboard has no rows — its columns, keys, versions and mode.

    400 ``NOT_A_SCHEDULE`` for processing types of a generic dashboard, 400
    ``SCHEMA_FIXED`` for the shape of a production schedule, 409 ``DASHBOARD_HAS_ROWS`` for a
    shape change of a dashboard that already holds rows. ``updated_at`` moves on any change.
    """
    columns = None if body.columns is None else [c.model_dump(mode="json") for c in body.columns]
    with write_session(engine) as session:
        try:
            dashboard = update_dashboard(
                session, slug, name=body.name, encoding=body.encoding,
                new_processing_types=body.processing_types, columns=columns,
                key_columns=body.key_columns, version_columns=body.version_columns,
                ingest_mode=body.ingest_mode,
            )  # fmt: skip
        except ValidationError as exc:
            raise _invalid_body(exc) from None
        return _one_dashboard_out(session, dashboard)


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
    return FeedList(items=[_feed_out(f, dashboard.slug, st) for f, st in feeds])


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
        return _feed_out(feed, dashboard.slug)


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
        return _feed_out(feed, dashboard.slug, state)


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
        items=[_row_out(row, completed) for row, completed in page.rows],
        next_cursor=page.next_cursor,
    )


__all__ = ["router"]
