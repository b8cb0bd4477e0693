"""Dashboards, their feeds, and the rows ingestion writes into them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from csvboard.dashboards.vocabulary import (
    DashboardKind,
    FeedSource,
    IngestMode,
    TargetType,
    sql_in,
)
from csvboard.db.base import NOW, Base, JSONDocument, UTCDateTime

SLUG_CHECK = "length(slug) BETWEEN 1 AND 64 AND slug NOT LIKE '%/%' AND slug NOT LIKE '% %'"

#: A dashboard's own retention, in days (NULL: the process default, csvboard.settings);
#: a hundred years is the bound, so a typo cannot keep things forever.
RETENTION_COLUMNS = ("retention_file_days", "retention_ledger_days", "retention_retired_row_days")
MAX_RETENTION_DAYS = 36500


def retention_check(column: str) -> str:
    """The CHECK of a retention column (the model's and migration 0010's)."""
    return f"{column} IS NULL OR {column} BETWEEN 1 AND {MAX_RETENTION_DAYS}"


class CsvDashboard(Base):
    __tablename__ = "csv_dashboards"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    ingest_mode: Mapped[str] = mapped_column(String(8), nullable=False)
    # List of ColumnDef documents (csvboard.dashboards.columns).
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, nullable=False)
    key_columns: Mapped[list[str]] = mapped_column(JSONDocument, nullable=False)
    version_columns: Mapped[list[str]] = mapped_column(JSONDocument, nullable=False)
    encoding: Mapped[str] = mapped_column(String(8), nullable=False, server_default="auto")
    # Kind-specific settings: completion column, occurred_at columns, processing types, ...
    options: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    # Operations (csvboard.dashboards.operations): retention in days, NULL for the default.
    retention_file_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retention_ledger_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retention_retired_row_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Whether the retry policy re-runs this dashboard's manual runs (csvboard.runs.retry_policy).
    retry_manual_runs: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )

    __table_args__ = (
        CheckConstraint(sql_in("kind", DashboardKind), name="kind"),
        CheckConstraint(sql_in("ingest_mode", IngestMode), name="ingest_mode"),
        CheckConstraint("encoding IN ('auto', 'utf-8', 'cp932')", name="encoding"),
        CheckConstraint(SLUG_CHECK, name="slug_format"),
        *(CheckConstraint(retention_check(c), name=f"{c}_range") for c in RETENTION_COLUMNS),
        # A composite target for rows' (id, dashboard) foreign keys is on the rows table.
    )


class CsvDashboardFeed(Base):
    __tablename__ = "csv_dashboard_feeds"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    csv_dashboard_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboards.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    schedule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=true())
    # For appearance feeds: csvboard.dashboards.columns.AppearanceMapping.
    mapping: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    # Source-specific settings; for imap feeds csvboard.feeds.imap_options.ImapOptions (server,
    # folders, filters, and where the password comes from: never the password itself).
    options: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)

    __table_args__ = (
        CheckConstraint(sql_in("role", TargetType), name="role"),
        CheckConstraint(sql_in("source", FeedSource), name="source"),
        CheckConstraint("source = 'upload' OR location IS NOT NULL", name="location_required"),
        CheckConstraint(
            "role = 'official' OR mapping IS NOT NULL", name="appearance_needs_mapping"
        ),
        CheckConstraint("source <> 'imap' OR options IS NOT NULL", name="imap_needs_options"),
        UniqueConstraint("csv_dashboard_id", "name"),
    )


class CsvDashboardRow(Base):
    __tablename__ = "csv_dashboard_rows"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    csv_dashboard_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboards.id", ondelete="CASCADE"), nullable=False
    )
    row_key: Mapped[str] = mapped_column(Text, nullable=False)
    # True on DEDUP dashboards, where row_key is unique per dashboard (partial unique index).
    is_dedup: Mapped[bool] = mapped_column(Boolean, nullable=False)
    row_data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    supplement_data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    data_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # Version components (numbers; NULL = unknown) compared by the stale guard.
    version_values: Mapped[list[Any]] = mapped_column(JSONDocument, nullable=False)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=true())
    first_run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="SET NULL"), nullable=True
    )
    last_changed_run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="SET NULL"), nullable=True
    )
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)

    __table_args__ = (
        CheckConstraint("length(data_hash) = 64", name="data_hash_length"),
        CheckConstraint(
            "(is_active AND retired_at IS NULL) OR (NOT is_active AND retired_at IS NOT NULL)",
            name="retired_at_matches_active",
        ),
        # Target of the operator tables' composite FK: an operator record's dashboard is its row's.
        UniqueConstraint("id", "csv_dashboard_id"),
        Index(
            "uq_csv_dashboard_rows_dedup_key",
            "csv_dashboard_id",
            "row_key",
            unique=True,
            sqlite_where=text("is_dedup"),
            postgresql_where=text("is_dedup"),
        ),
        Index("ix_csv_dashboard_rows_active", "csv_dashboard_id", "is_active"),
    )
