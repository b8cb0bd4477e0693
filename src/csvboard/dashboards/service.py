"""Creating, finding and purging dashboards; turning a stored dashboard into its schema."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards import kinds
from csvboard.dashboards.columns import (
    AppearanceMapping,
    ColumnDef,
    DashboardSchema,
)
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed, CsvDashboardRow
from csvboard.dashboards.operations import change_operations, check_operations
from csvboard.dashboards.vocabulary import DashboardKind, FeedSource, IngestMode, TargetType
from csvboard.errors import Conflict, InvalidRequest, NotFound

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PRODUCTION_SCHEDULE_PRESET = "production-schedule"


def schema_of(dashboard: CsvDashboard) -> DashboardSchema:
    options = dashboard.options or {}
    return DashboardSchema(
        columns=tuple(ColumnDef.model_validate(c) for c in dashboard.columns),
        key_columns=tuple(dashboard.key_columns),
        version_columns=tuple(dashboard.version_columns),
        ingest_mode=dashboard.ingest_mode,
        encoding=dashboard.encoding,
        completion_column=options.get("completion_column"),
        completion_values=tuple(options.get("completion_values", ("完了",))),
        occurred_at_columns=tuple(options.get("occurred_at_columns", ())),
    )


def mapping_of(feed: CsvDashboardFeed) -> AppearanceMapping:
    if feed.mapping is None:
        raise InvalidRequest("FEED_HAS_NO_MAPPING", f"feed {feed.name} has no column mapping")
    return AppearanceMapping.model_validate(feed.mapping)


def processing_types(dashboard: CsvDashboard) -> tuple[str, ...]:
    from csvboard.dashboards.presets import DEFAULT_PROCESSING_TYPES

    return tuple((dashboard.options or {}).get("processing_types", DEFAULT_PROCESSING_TYPES))


def create_dashboard(
    session: Session,
    slug: str,
    *,
    name: str | None = None,
    preset: str | None = None,
    mode: str | None = None,
    schema: DashboardSchema | None = None,
) -> CsvDashboard:
    """Create a dashboard from a preset or an explicit schema, with its default upload feeds."""
    if not SLUG_RE.fullmatch(slug):
        raise InvalidRequest(
            "INVALID_SLUG", f"slug {slug!r}: use 1–64 of a–z, 0–9, '-' and '_', starting alnum"
        )
    if session.scalar(select(CsvDashboard.id).where(CsvDashboard.slug == slug)) is not None:
        raise Conflict("DASHBOARD_EXISTS", f"a dashboard with slug {slug!r} already exists")
    kind = DashboardKind.GENERIC
    options: dict[str, Any] = {}
    feeds: list[CsvDashboardFeed] = []
    if preset == PRODUCTION_SCHEDULE_PRESET:
        from csvboard.dashboards.presets import (
            DEFAULT_PROCESSING_TYPES,
            production_schedule_schema,
        )

        schema = production_schedule_schema()
        kind = DashboardKind.PRODUCTION_SCHEDULE
        options["processing_types"] = list(DEFAULT_PROCESSING_TYPES)
        status_mapping = AppearanceMapping(
            key_columns={c: c for c in schema.key_columns}, status_column="status"
        )
        feeds.append(
            CsvDashboardFeed(
                name="status-report",
                role=TargetType.APPEARANCE,
                source=FeedSource.UPLOAD,
                mapping=status_mapping.model_dump(mode="json"),
            )
        )
    elif preset is not None:
        raise InvalidRequest("UNKNOWN_PRESET", f"unknown preset {preset!r}")
    if schema is None:
        raise InvalidRequest("SCHEMA_REQUIRED", "give a preset or column definitions")
    if mode is not None:
        if mode not in tuple(IngestMode):
            raise InvalidRequest("INVALID_MODE", f"mode must be DEDUP or APPEND, not {mode!r}")
        schema = DashboardSchema.model_validate({**schema.model_dump(), "ingest_mode": mode})
    options.update(
        completion_column=schema.completion_column,
        completion_values=list(schema.completion_values),
        occurred_at_columns=list(schema.occurred_at_columns),
    )
    now = utcnow()
    dashboard = CsvDashboard(
        id=uuid.uuid4(),
        slug=slug,
        name=name or slug,
        kind=kind,
        ingest_mode=schema.ingest_mode,
        columns=[c.model_dump(mode="json") for c in schema.columns],
        key_columns=list(schema.key_columns),
        version_columns=list(schema.version_columns),
        encoding=schema.encoding,
        options=options,
        created_at=now,
        updated_at=now,
    )
    session.add(dashboard)
    session.flush()
    feeds.insert(
        0, CsvDashboardFeed(name="upload", role=TargetType.OFFICIAL, source=FeedSource.UPLOAD)
    )
    for feed in feeds:
        feed.id = uuid.uuid4()
        feed.csv_dashboard_id = dashboard.id
        feed.created_at = feed.updated_at = now
        session.add(feed)
    session.flush()
    return dashboard


def get_dashboard(session: Session, slug_or_id: str) -> CsvDashboard:
    query = select(CsvDashboard).where(CsvDashboard.slug == slug_or_id)
    dashboard = session.scalar(query)
    if dashboard is None:
        try:
            dashboard = session.get(CsvDashboard, uuid.UUID(slug_or_id))
        except ValueError:
            dashboard = None
    if dashboard is None:
        raise NotFound("DASHBOARD_NOT_FOUND", f"no dashboard {slug_or_id!r}")
    return dashboard


def list_dashboards(session: Session) -> list[CsvDashboard]:
    return list(session.scalars(select(CsvDashboard).order_by(CsvDashboard.slug)))


def feeds_of(session: Session, dashboard_id: uuid.UUID, role: str) -> list[CsvDashboardFeed]:
    return list(
        session.scalars(
            select(CsvDashboardFeed)
            .where(
                CsvDashboardFeed.csv_dashboard_id == dashboard_id,
                CsvDashboardFeed.role == role,
                CsvDashboardFeed.enabled.is_(True),
            )
            .order_by(CsvDashboardFeed.created_at, CsvDashboardFeed.name)
        )
    )


def upload_feed(session: Session, dashboard_id: uuid.UUID, role: str) -> CsvDashboardFeed:
    """The feed an uploaded file of this role arrives through."""
    for feed in feeds_of(session, dashboard_id, role):
        if feed.source == FeedSource.UPLOAD:
            return feed
    raise InvalidRequest(
        "NO_FEED_FOR_ROLE", f"this dashboard has no enabled upload feed with role {role!r}"
    )


@dataclass(frozen=True)
class PurgeReport:
    rows: int
    operator_records: dict[str, int]


def purge_retired(
    session: Session, dashboard: CsvDashboard, retired_before: datetime, *, dry_run: bool = False
) -> PurgeReport:
    """Delete rows retired before a date. The records other domains keep beside them go with
    them (ON DELETE CASCADE); the report counts them per table (what ``kinds`` registered)."""
    kinds.extension(dashboard.kind)  # a schedule whose tables are not loaded would under-report
    doomed = select(CsvDashboardRow.id).where(
        CsvDashboardRow.csv_dashboard_id == dashboard.id,
        CsvDashboardRow.is_active.is_(False),
        CsvDashboardRow.retired_at < retired_before,
    )
    rows = session.scalar(select(func.count()).select_from(doomed.subquery())) or 0
    records: dict[str, int] = {}
    for table in kinds.row_tables():
        n = session.scalar(select(func.count()).where(table.csv_dashboard_row_id.in_(doomed)))
        records[table.__tablename__] = n or 0
    if not dry_run:
        session.execute(delete(CsvDashboardRow).where(CsvDashboardRow.id.in_(doomed)))
    return PurgeReport(rows=rows, operator_records=records)


# --- the admin's changes ---------------------------------------------------------------------

MAX_PROCESSING_TYPE_LENGTH = 32  # production_schedule_row_processing.processing_type


def new_dashboard(
    session: Session,
    slug: str,
    *,
    name: str | None,
    preset: str | None,
    columns: list[dict[str, Any]] | None,
    key_columns: list[str] | None,
    version_columns: list[str] | None,
    ingest_mode: str | None,
    encoding: str | None,
) -> CsvDashboard:
    """A dashboard from the ``production-schedule`` preset or from explicit columns (the
    API's create). Raises pydantic's ``ValidationError`` for columns that do not hold
    together, 400s for a preset mixed with columns, 409 ``DASHBOARD_EXISTS``."""
    schema: DashboardSchema | None = None
    if preset is not None:
        if columns is not None or key_columns is not None:
            raise InvalidRequest(
                "PRESET_OR_COLUMNS", "give either a preset or columns and key_columns, not both"
            )
        if version_columns is not None:
            raise InvalidRequest(
                "PRESET_OR_COLUMNS", "a preset defines its own version_columns; remove them"
            )
    elif columns is None:
        raise InvalidRequest(
            "SCHEMA_REQUIRED",
            f"give a preset ({PRODUCTION_SCHEDULE_PRESET!r}) or columns and key_columns",
        )
    else:
        document: dict[str, Any] = {
            "columns": columns,
            "key_columns": key_columns or [],
            "version_columns": version_columns or [],
        }
        if ingest_mode is not None:
            document["ingest_mode"] = ingest_mode
        if encoding is not None:
            document["encoding"] = encoding
        schema = DashboardSchema.model_validate(document)
    try:
        dashboard = create_dashboard(
            session,
            slug,
            name=name,
            preset=preset,
            mode=ingest_mode if preset is not None else None,
            schema=schema,
        )
        if preset is not None and encoding is not None:
            dashboard.encoding = encoding
        session.flush()
    except IntegrityError:
        # Two admins creating the same slug at once: the UNIQUE constraint decides.
        raise Conflict(
            "DASHBOARD_EXISTS", f"a dashboard with slug {slug!r} already exists"
        ) from None
    return dashboard


def update_dashboard(
    session: Session,
    slug: str,
    *,
    name: str | None,
    encoding: str | None,
    new_processing_types: list[str] | None,
    columns: list[dict[str, Any]] | None,
    key_columns: list[str] | None,
    version_columns: list[str] | None,
    ingest_mode: str | None,
    operations: dict[str, Any] | None = None,
) -> CsvDashboard:
    """Rename, change the encoding, the production schedule's processing types, the
    operations settings (``operations``: only the settings it names, see
    csvboard.dashboards.operations), or — while the dashboard has no rows — its columns,
    keys, versions and mode (``None``: unchanged).

    400 ``NOT_A_SCHEDULE`` for processing types of a generic dashboard, 400 ``SCHEMA_FIXED``
    for the shape of a production schedule, 400 ``INVALID_OPERATIONS`` for a setting out of
    range, 409 ``DASHBOARD_HAS_ROWS`` for a shape change of a dashboard that already holds
    rows; pydantic's ``ValidationError`` for a shape that does not hold together. Every check
    comes before any change. ``updated_at`` moves on any change.
    """
    types = None
    if new_processing_types is not None:
        types = normalised_processing_types(new_processing_types)
    dashboard = get_dashboard(session, slug)
    is_schedule = dashboard.kind == DashboardKind.PRODUCTION_SCHEDULE
    changed = False
    current = schema_of(dashboard)
    shape = {
        "columns": columns,
        "key_columns": key_columns,
        "version_columns": version_columns,
        "ingest_mode": ingest_mode,
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
    if operations:
        check_operations(operations)
    new_schema: DashboardSchema | None = None
    if shape_changes:
        document = current.model_dump(mode="json")
        document.update(shape_changes)
        new_schema = DashboardSchema.model_validate(document)
        if has_rows(session, dashboard.id):
            raise Conflict(
                "DASHBOARD_HAS_ROWS",
                f"dashboard {dashboard.slug!r} already has rows, so its "
                f"{', '.join(shape_changes)} cannot change; create a new dashboard, or "
                "purge its rows first",
            )
    if name is not None and name != dashboard.name:
        dashboard.name = name
        changed = True
    if encoding is not None and encoding != dashboard.encoding:
        dashboard.encoding = encoding
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
    if operations and change_operations(dashboard, operations):
        changed = True
    if changed:
        dashboard.updated_at = utcnow()
        session.flush()
    return dashboard


def normalised_processing_types(values: list[str]) -> list[str]:
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


def has_rows(session: Session, dashboard_id: uuid.UUID) -> bool:
    return bool(
        session.scalar(select(exists().where(CsvDashboardRow.csv_dashboard_id == dashboard_id)))
    )


def row_counts(session: Session, dashboard_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[int]]:
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
