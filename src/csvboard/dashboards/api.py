"""HTTP routes of dashboards, their feeds and their rows (docs/contract.md §2.2, 5).

``/api/v1/dashboards``: list (viewer), create (admin); one dashboard: read (viewer), update
(admin); its feeds: list (viewer), create and update (admin); its rows: a searchable, keyset-
paged list (viewer). Roles are enforced by the request middleware from each route's
``openapi_extra`` before any body is read; the handlers are thin layers over
:mod:`csvboard.dashboards.service`, each write in one short ``write_session`` transaction.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import ColumnElement, String, and_, exists, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from csvboard.api.deps import EngineDep, ReadSession, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.clock import utcnow
from csvboard.dashboards.columns import (
    PRODUCTION_SCHEDULE,
    AppearanceMapping,
    ColumnDef,
    DashboardKind,
    DashboardSchema,
    Encoding,
    IngestMode,
)
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed, CsvDashboardRow
from csvboard.dashboards.service import (
    PRODUCTION_SCHEDULE_PRESET,
    create_dashboard,
    get_dashboard,
    list_dashboards,
    processing_types,
    schema_of,
)
from csvboard.db.cursor import CURSOR_PATTERN, bad_cursor, decode_cursor, encode_cursor
from csvboard.db.engine import write_session
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.worker.mail import MailConfigError, parse_options
from csvboard.worker.models import CsvDashboardFeedState

router = APIRouter(prefix="/api/v1/dashboards", tags=["dashboards"])

COMPLETED_MARK = "完了"
MAX_ROWS_PAGE = 500
DEFAULT_ROWS_PAGE = 100
MAX_SEARCH_LENGTH = 200
MAX_PROCESSING_TYPES = 50
MAX_PROCESSING_TYPE_LENGTH = 32  # production_schedule_row_processing.processing_type

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = _ASCII_UPPER.lower()

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


FeedRole = Literal["official", "appearance"]
FeedSource = Literal["upload", "folder", "url", "imap"]


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
    role: FeedRole
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
    role: FeedRole
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
    role: FeedRole | None = None
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


def _row_counts(session: Session, dashboard_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[int]]:
    """[active, retired] row counts per dashboard, in one grouped query."""
    counts: dict[uuid.UUID, list[int]] = {i: [0, 0] for i in dashboard_ids}
    if not dashboard_ids:
        return counts
    for dashboard_id, active, n in session.execute(
        select(CsvDashboardRow.csv_dashboard_id, CsvDashboardRow.is_active, func.count())
        .where(CsvDashboardRow.csv_dashboard_id.in_(dashboard_ids))
        .group_by(CsvDashboardRow.csv_dashboard_id, CsvDashboardRow.is_active)
    ):
        counts[dashboard_id][0 if active else 1] = int(n)
    return counts


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
    return _dashboard_out(dashboard, _row_counts(session, [dashboard.id])[dashboard.id])


def _invalid_body(exc: ValidationError, *prefix: str) -> RequestValidationError:
    """A schema the body describes but that does not hold together → 400 with ``errors[]``."""
    errors = [
        {"loc": ("body", *prefix, *err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    return RequestValidationError(errors)


def _schema(document: dict[str, Any]) -> DashboardSchema:
    try:
        return DashboardSchema.model_validate(document)
    except ValidationError as exc:
        raise _invalid_body(exc) from None


def _normalised_processing_types(values: list[str]) -> list[str]:
    out: list[str] = []
    for raw in values:
        value = unicodedata.normalize("NFKC", raw).strip()
        if not value or len(value) > MAX_PROCESSING_TYPE_LENGTH:
            raise InvalidRequest(
                "INVALID_PROCESSING_TYPES",
                f"processing type {raw!r} must be 1–{MAX_PROCESSING_TYPE_LENGTH} characters",
            )
        if value in out:
            raise InvalidRequest(
                "INVALID_PROCESSING_TYPES", f"processing type {value!r} is listed twice"
            )
        out.append(value)
    return out


def _has_rows(session: Session, dashboard_id: uuid.UUID) -> bool:
    return bool(
        session.scalar(select(exists().where(CsvDashboardRow.csv_dashboard_id == dashboard_id)))
    )


# --- cron ---------------------------------------------------------------------------------

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (label, lowest, highest, names — names[i] stands for lowest + i)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_CRON_ITEM = re.compile(r"(?:(\*)|([0-9]+|[a-z]{3})(?:-([0-9]+|[a-z]{3}))?)(?:/([0-9]+))?")


def _cron_value(text: str, label: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.isdigit():
        value = int(text)
    elif text in names:
        value = low + names.index(text)
    else:
        raise ValueError(f"{label}: {text!r} is not a number or a name")
    if not low <= value <= high:
        raise ValueError(f"{label}: {value} is outside {low}–{high}")
    return value


def validate_cron(expression: str) -> str:
    """Check a 5-field cron expression (minute hour day-of-month month day-of-week).

    Each field is a comma-separated list of ``*``, ``N``, ``N-M``, optionally ``/STEP``;
    months and weekdays also by their English three-letter names. Returns the expression with
    its whitespace normalised; raises ``InvalidRequest(INVALID_SCHEDULE)``.
    """
    fields = expression.lower().split()
    if len(fields) != len(_CRON_FIELDS):
        raise InvalidRequest(
            "INVALID_SCHEDULE",
            f"a schedule is a cron expression of 5 fields (minute hour day-of-month month"
            f" day-of-week), e.g. '*/15 7-19 * * mon-fri'; {expression!r} has {len(fields)}",
        )
    try:
        for text, (label, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
            for item in text.split(","):
                match = _CRON_ITEM.fullmatch(item)
                if match is None:
                    raise ValueError(f"{label}: {item!r} is not *, N, N-M or one of them /STEP")
                star, first, last, step = match.groups()
                if not star:
                    start = _cron_value(first, label, low, high, names)
                    if last is not None and _cron_value(last, label, low, high, names) < start:
                        raise ValueError(f"{label}: the range {item!r} runs backwards")
                if step is not None and not 1 <= int(step) <= high:
                    raise ValueError(f"{label}: step {step} must be 1–{high}")
    except ValueError as exc:
        raise InvalidRequest("INVALID_SCHEDULE", f"schedule {expression!r}: {exc}") from None
    return " ".join(fields)


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


def _check_feed(
    dashboard: CsvDashboard,
    *,
    role: str,
    source: str,
    location: str | None,
    schedule: str | None,
    mapping: AppearanceMapping | None,
    options: dict[str, Any] | None = None,
) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """Validate a feed's settings together; returns the normalised (location, schedule,
    options). An imap feed's location is derived from its options (``imap://user@host/…``)."""
    if location is not None:
        location = location.strip() or None
    if source == "imap":
        try:
            imap = parse_options(options)
        except MailConfigError as exc:
            raise InvalidRequest("INVALID_OPTIONS", str(exc)) from None
        if imap.run_kind is not None:
            expected = "appearance" if imap.run_kind == "appearance_supplement" else "official"
            if role != expected:
                raise InvalidRequest(
                    "INVALID_OPTIONS", f"run_kind {imap.run_kind} does not fit a {role} feed"
                )
        location = imap.display_location()
        options = imap.model_dump(mode="json", exclude_none=True)
    elif options is not None:
        raise InvalidRequest("INVALID_OPTIONS", f"a {source} feed has no options; remove them")
    if source == "upload":
        if location is not None:
            raise InvalidRequest("INVALID_LOCATION", "an upload feed has no location")
        if schedule is not None:
            raise InvalidRequest(
                "INVALID_SCHEDULE", "an upload feed has no schedule: files arrive by hand"
            )
    elif location is None:
        raise InvalidRequest(
            "LOCATION_REQUIRED", f"a {source} feed needs a location (a folder path or a URL)"
        )
    if source == "url" and location is not None and not re.match(r"(?i)https?://\S+$", location):
        raise InvalidRequest("INVALID_LOCATION", f"{location!r} is not an http(s) URL")
    if schedule is not None:
        schedule = validate_cron(schedule)
    if role == "official" and mapping is not None:
        raise InvalidRequest(
            "INVALID_MAPPING", "only appearance feeds have a column mapping; remove it"
        )
    if role == "appearance":
        if mapping is None:
            raise InvalidRequest(
                "MAPPING_REQUIRED",
                "an appearance feed needs a mapping: the feed's header for each key column",
            )
        keys = list(dashboard.key_columns)
        missing = [k for k in keys if k not in mapping.key_columns]
        unknown = [k for k in mapping.key_columns if k not in keys]
        if missing or unknown:
            parts = []
            if missing:
                parts.append("no header given for key column(s) " + ", ".join(missing))
            if unknown:
                parts.append(", ".join(unknown) + " is not a key column of this dashboard")
            raise InvalidRequest("INVALID_MAPPING", "; ".join(parts))
        if any(not v.strip() for v in mapping.key_columns.values()):
            raise InvalidRequest("INVALID_MAPPING", "a mapped header must not be blank")
    return location, schedule, options


def _feed_of(session: Session, dashboard: CsvDashboard, feed_id: uuid.UUID) -> CsvDashboardFeed:
    feed = session.get(CsvDashboardFeed, feed_id)
    if feed is None or feed.csv_dashboard_id != dashboard.id:
        raise NotFound("FEED_NOT_FOUND", f"dashboard {dashboard.slug!r} has no feed {feed_id}")
    return feed


def _name_taken(
    session: Session, dashboard_id: uuid.UUID, name: str, but: uuid.UUID | None = None
) -> bool:
    query = select(CsvDashboardFeed.id).where(
        CsvDashboardFeed.csv_dashboard_id == dashboard_id, CsvDashboardFeed.name == name
    )
    if but is not None:
        query = query.where(CsvDashboardFeed.id != but)
    return session.scalar(query) is not None


def _feed_exists(name: str) -> Conflict:
    return Conflict("FEED_EXISTS", f"this dashboard already has a feed named {name!r}")


# --- rows ---------------------------------------------------------------------------------


def _encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    return encode_cursor([created_at.astimezone(UTC).isoformat(), str(row_id)])


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    at, row_id = decode_cursor(cursor, str, str)
    try:
        created_at = datetime.fromisoformat(at)
        parsed = uuid.UUID(row_id)
    except ValueError as exc:
        raise bad_cursor() from exc
    if created_at.tzinfo is None:
        raise bad_cursor()
    return created_at.astimezone(UTC), parsed


def _ascii_lower(value: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in value)


def _value_search(session: Session, q: str) -> ColumnElement[bool]:
    """Some value of ``row_data`` contains ``q`` (ASCII letters in either case).

    Values only, never keys: PostgreSQL ``jsonb_each_text``, SQLite ``json_each``. ``%``,
    ``_`` and ``\\`` in ``q`` match themselves. Both the text as typed and its NFKC form are
    tried (key columns are stored NFKC-normalised, other columns as the ERP wrote them).
    """
    is_pg = session.get_bind().dialect.name == "postgresql"
    each = func.jsonb_each_text if is_pg else func.json_each
    pairs = each(CsvDashboardRow.row_data).table_valued("key", "value").alias("kv")
    value: ColumnElement[str] = func.coalesce(pairs.c.value, "", type_=String)
    folded = (
        func.translate(value, _ASCII_UPPER, _ASCII_LOWER, type_=String)
        if is_pg
        else func.lower(value, type_=String)
    )
    terms = []
    for form in dict.fromkeys((q.strip(), unicodedata.normalize("NFKC", q).strip())):
        escaped = form.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms.append(folded.like(f"%{_ascii_lower(escaped)}%", escape="\\"))
    return exists(select(1).select_from(pairs).where(or_(*terms)))


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
    counts = _row_counts(session, [d.id for d in dashboards])
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
    schema: DashboardSchema | None = None
    if body.preset is not None:
        if body.columns is not None or body.key_columns is not None:
            raise InvalidRequest(
                "PRESET_OR_COLUMNS", "give either a preset or columns and key_columns, not both"
            )
        if body.version_columns is not None:
            raise InvalidRequest(
                "PRESET_OR_COLUMNS", "a preset defines its own version_columns; remove them"
            )
    elif body.columns is None:
        raise InvalidRequest(
            "SCHEMA_REQUIRED",
            f"give a preset ({PRODUCTION_SCHEDULE_PRESET!r}) or columns and key_columns",
        )
    else:
        document: dict[str, Any] = {
            "columns": [c.model_dump() for c in body.columns],
            "key_columns": body.key_columns or [],
            "version_columns": body.version_columns or [],
        }
        if body.ingest_mode is not None:
            document["ingest_mode"] = body.ingest_mode
        if body.encoding is not None:
            document["encoding"] = body.encoding
        schema = _schema(document)
    with write_session(engine) as session:
        try:
            dashboard = create_dashboard(
                session,
                body.slug,
                name=body.name,
                preset=body.preset,
                mode=body.ingest_mode if body.preset is not None else None,
                schema=schema,
            )
            if body.preset is not None and body.encoding is not None:
                dashboard.encoding = body.encoding
            session.flush()
        except IntegrityError:
            # Two admins creating the same slug at once: the UNIQUE constraint decides.
            raise Conflict(
                "DASHBOARD_EXISTS", f"a dashboard with slug {body.slug!r} already exists"
            ) from None
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
    types = (
        _normalised_processing_types(body.processing_types)
        if body.processing_types is not None
        else None
    )
    with write_session(engine) as session:
        dashboard = get_dashboard(session, slug)
        is_schedule = dashboard.kind == PRODUCTION_SCHEDULE
        changed = False
        current = schema_of(dashboard)
        shape = {
            "columns": (
                None if body.columns is None else [c.model_dump(mode="json") for c in body.columns]
            ),
            "key_columns": body.key_columns,
            "version_columns": body.version_columns,
            "ingest_mode": body.ingest_mode,
        }
        stored = {
            "columns": dashboard.columns,
            "key_columns": dashboard.key_columns,
            "version_columns": dashboard.version_columns,
            "ingest_mode": dashboard.ingest_mode,
        }
        shape_changes = {k: v for k, v in shape.items() if v is not None and v != stored[k]}
        if types is not None and not is_schedule:
            raise InvalidRequest(
                "NOT_A_SCHEDULE",
                "processing_types is an option of production-schedule dashboards only",
            )
        if shape_changes and is_schedule:
            raise InvalidRequest(
                "SCHEMA_FIXED",
                "a production-schedule dashboard has the preset's columns and keys; "
                f"{', '.join(shape_changes)} cannot change",
            )
        new_schema: DashboardSchema | None = None
        if shape_changes:
            document = current.model_dump(mode="json")
            document.update(shape_changes)
            new_schema = _schema(document)
            if _has_rows(session, dashboard.id):
                raise Conflict(
                    "DASHBOARD_HAS_ROWS",
                    f"dashboard {dashboard.slug!r} already has rows, so its "
                    f"{', '.join(shape_changes)} cannot change; create a new dashboard, or "
                    "purge its rows first",
                )
        if body.name is not None and body.name != dashboard.name:
            dashboard.name = body.name
            changed = True
        if body.encoding is not None and body.encoding != dashboard.encoding:
            dashboard.encoding = body.encoding
            changed = True
        if types is not None and types != list(processing_types(dashboard)):
            dashboard.options = {**(dashboard.options or {}), "processing_types": types}
            changed = True
        if new_schema is not None:
            dashboard.columns = [c.model_dump(mode="json") for c in new_schema.columns]
            dashboard.key_columns = list(new_schema.key_columns)
            dashboard.version_columns = list(new_schema.version_columns)
            dashboard.ingest_mode = new_schema.ingest_mode
            changed = True
        if changed:
            dashboard.updated_at = utcnow()
            session.flush()
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
    rows = session.execute(
        select(CsvDashboardFeed, CsvDashboardFeedState)
        .outerjoin(CsvDashboardFeedState, CsvDashboardFeedState.feed_id == CsvDashboardFeed.id)
        .where(CsvDashboardFeed.csv_dashboard_id == dashboard.id)
        .order_by(CsvDashboardFeed.created_at, CsvDashboardFeed.name)
    ).all()
    return FeedList(items=[_feed_out(f, dashboard.slug, st) for f, st in rows])


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
        location, schedule, options = _check_feed(
            dashboard,
            role=body.role,
            source=body.source,
            location=body.location,
            schedule=body.schedule,
            mapping=body.mapping,
            options=body.options,
        )
        if _name_taken(session, dashboard.id, body.name):
            raise _feed_exists(body.name)
        now = utcnow()
        feed = CsvDashboardFeed(
            id=uuid.uuid4(),
            csv_dashboard_id=dashboard.id,
            name=body.name,
            role=body.role,
            source=body.source,
            location=location,
            schedule=schedule,
            enabled=body.enabled,
            mapping=None if body.mapping is None else body.mapping.model_dump(mode="json"),
            options=options,
            created_at=now,
            updated_at=now,
        )
        session.add(feed)
        try:
            session.flush()
        except IntegrityError:
            raise _feed_exists(body.name) from None
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
    given = body.model_fields_set
    with write_session(engine) as session:
        dashboard = get_dashboard(session, slug)
        feed = _feed_of(session, dashboard, feed_id)
        name = body.name if body.name is not None else feed.name
        role = body.role if body.role is not None else feed.role
        source = body.source if body.source is not None else feed.source
        location = body.location if "location" in given else feed.location
        schedule = body.schedule if "schedule" in given else feed.schedule
        if "mapping" in given:
            mapping = body.mapping
        else:
            mapping = (
                None if feed.mapping is None else AppearanceMapping.model_validate(feed.mapping)
            )
        options = body.options if "options" in given else feed.options
        location, schedule, options = _check_feed(
            dashboard,
            role=role,
            source=source,
            location=location,
            schedule=schedule,
            mapping=mapping,
            options=options,
        )
        if name != feed.name and _name_taken(session, dashboard.id, name, but=feed.id):
            raise _feed_exists(name)
        values: dict[str, Any] = {
            "name": name,
            "role": role,
            "source": source,
            "location": location,
            "schedule": schedule,
            "enabled": body.enabled if body.enabled is not None else feed.enabled,
            "mapping": None if mapping is None else mapping.model_dump(mode="json"),
            "options": options,
        }
        if any(getattr(feed, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(feed, key, value)
            feed.updated_at = utcnow()
            try:
                session.flush()
            except IntegrityError:
                raise _feed_exists(name) from None
        return _feed_out(feed, dashboard.slug, session.get(CsvDashboardFeedState, feed.id))


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
        Literal["active", "retired", "all"],
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
    if not 1 <= limit <= MAX_ROWS_PAGE:
        raise InvalidRequest("INVALID_LIMIT", f"limit must be 1–{MAX_ROWS_PAGE}, not {limit}")
    after = _decode_cursor(cursor) if cursor else None
    dashboard = get_dashboard(session, slug)
    is_schedule = dashboard.kind == PRODUCTION_SCHEDULE

    from csvboard.schedule.models import (
        ProductionScheduleExternalCompletion as External,
    )
    from csvboard.schedule.models import (
        ProductionScheduleProgress as Progress,
    )

    completed: ColumnElement[bool] = or_(
        func.coalesce(Progress.is_completed, false()) == True,  # noqa: E712
        func.coalesce(External.is_completed, false()) == True,  # noqa: E712
    )
    stmt = (
        select(CsvDashboardRow, completed.label("completed"))
        .outerjoin(Progress, Progress.csv_dashboard_row_id == CsvDashboardRow.id)
        .outerjoin(External, External.csv_dashboard_row_id == CsvDashboardRow.id)
        .where(CsvDashboardRow.csv_dashboard_id == dashboard.id)
    )
    if state == "active":
        stmt = stmt.where(CsvDashboardRow.is_active == True)  # noqa: E712
    elif state == "retired":
        stmt = stmt.where(CsvDashboardRow.is_active == False)  # noqa: E712
    if q is not None and q.strip():
        stmt = stmt.where(_value_search(session, q))
    if after is not None:
        at, row_id = after
        stmt = stmt.where(
            or_(
                CsvDashboardRow.created_at > at,
                and_(CsvDashboardRow.created_at == at, CsvDashboardRow.id > row_id),
            )
        )
    stmt = stmt.order_by(CsvDashboardRow.created_at, CsvDashboardRow.id).limit(limit + 1)
    rows = list(session.execute(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [_row_out(r[0], bool(r[1]) if is_schedule else None) for r in rows]
    last = rows[-1][0] if rows else None
    next_cursor = _encode_cursor(last.created_at, last.id) if more and last is not None else None
    return DashboardRowPage(items=items, next_cursor=next_cursor)


__all__ = ["router", "validate_cron"]
