"""The dashboards API's shapes (csvboard.dashboards.api): request bodies, responses, and
how a stored dashboard, feed or row becomes one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy.orm import Session

from csvboard.dashboards.columns import (
    COMPLETED_MARK,
    AppearanceMapping,
    ColumnDef,
    Encoding,
)
from csvboard.dashboards.models import (
    MAX_RETENTION_DAYS,
    RETENTION_COLUMNS,
    CsvDashboard,
    CsvDashboardFeed,
    CsvDashboardRow,
)
from csvboard.dashboards.operations import RETENTION_RULE, effective_retention, retention_problem
from csvboard.dashboards.service import (
    MAX_PROCESSING_TYPE_LENGTH,
    processing_types,
    row_counts,
)
from csvboard.dashboards.vocabulary import DashboardKind, FeedSource, IngestMode, TargetType
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.settings import Settings

MAX_PROCESSING_TYPES = 50


class EffectiveRetention(BaseModel):
    """The retention in force, in days: the dashboard's own, else the process default."""

    retention_file_days: int
    retention_ledger_days: int
    retention_retired_row_days: int


class OperationsOut(BaseModel):
    """How retention and the retry policy treat a dashboard (docs/contract.md §2.1, §2.3)."""

    retry_manual_runs: bool = Field(
        description="Whether a manual run of this dashboard that failed for a reason that may "
        "pass (worker lost or stopped, database error, timeout) is re-run automatically."
    )
    retention_file_days: int | None = Field(
        description="This dashboard's own days before the stored copies of its runs' files "
        "are removed; null: the default (`CSVBOARD_RETENTION_FILE_DAYS`)."
    )
    retention_ledger_days: int | None = Field(
        description="This dashboard's own days before its runs' items and events are "
        "removed (never the runs); null: the default (`CSVBOARD_RETENTION_LEDGER_DAYS`)."
    )
    retention_retired_row_days: int | None = Field(
        description="This dashboard's own days before its retired rows are deleted; null: "
        "the default (`CSVBOARD_RETENTION_RETIRED_ROW_DAYS`)."
    )
    effective: EffectiveRetention = Field(
        description="The days the next prune uses: each setting above, or its default where "
        "it is null."
    )


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
    operations: OperationsOut
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
RetentionDays = Annotated[int, Field(ge=1, le=MAX_RETENTION_DAYS)]


class OperationsUpdate(BaseModel):
    """Operations settings to change: an absent one stays as it is, null puts it back to its
    default (the process's retention; no automatic re-runs of manual runs)."""

    model_config = ConfigDict(extra="forbid")

    retry_manual_runs: bool | None = Field(
        default=None, description="Re-run this dashboard's failed manual runs automatically."
    )
    retention_file_days: RetentionDays | None = Field(
        default=None, description=f"Days to keep the stored copies of files: {RETENTION_RULE}."
    )
    retention_ledger_days: RetentionDays | None = Field(
        default=None, description=f"Days to keep runs' items and events: {RETENTION_RULE}."
    )
    retention_retired_row_days: RetentionDays | None = Field(
        default=None, description=f"Days to keep retired rows: {RETENTION_RULE}."
    )

    @field_validator(*RETENTION_COLUMNS, mode="before")
    @classmethod
    def _retention_in_range(cls, value: object) -> object:
        # Our message instead of pydantic's "greater than or equal to 1": the rule, whole.
        if isinstance(value, int) and (problem := retention_problem(value)) is not None:
            raise PydanticCustomError("retention_range", problem)
        return value


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
    operations: OperationsUpdate | None = Field(
        default=None,
        description="Retention and manual re-runs; only the settings given change.",
    )

    def operations_changes(self) -> dict[str, Any] | None:
        """The operations settings the request names (absent ones stay as they are)."""
        if self.operations is None:
            return None
        return {name: getattr(self.operations, name) for name in self.operations.model_fields_set}


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


def operations_out(dashboard: CsvDashboard, settings: Settings) -> dict[str, Any]:
    effective = effective_retention(dashboard, settings)
    return {
        "retry_manual_runs": dashboard.retry_manual_runs,
        "retention_file_days": dashboard.retention_file_days,
        "retention_ledger_days": dashboard.retention_ledger_days,
        "retention_retired_row_days": dashboard.retention_retired_row_days,
        "effective": {
            "retention_file_days": effective.file_days,
            "retention_ledger_days": effective.ledger_days,
            "retention_retired_row_days": effective.retired_row_days,
        },
    }


def dashboard_out(dashboard: CsvDashboard, counts: list[int], settings: Settings) -> DashboardOut:
    is_schedule = dashboard.kind == DashboardKind.PRODUCTION_SCHEDULE
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
            "operations": operations_out(dashboard, settings),
            "created_at": dashboard.created_at,
            "updated_at": dashboard.updated_at,
        }
    )


def one_dashboard_out(
    session: Session, dashboard: CsvDashboard, settings: Settings
) -> DashboardOut:
    return dashboard_out(dashboard, row_counts(session, [dashboard.id])[dashboard.id], settings)


def feed_out(
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


def row_out(row: CsvDashboardRow, completed: bool | None) -> DashboardRowOut:
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
