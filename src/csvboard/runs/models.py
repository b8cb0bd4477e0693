"""The run ledger's tables.

``ingestion_runs`` is exactly the table of docs/design/ingestion_runs_table.md — column for column,
CHECK for CHECK, index for index, plus counts ≥ 0 and finished_at ≥ started_at. Everything
else a run needs lives in the companion tables below it (docs/contract.md §2.3).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
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
)
from sqlalchemy.orm import Mapped, mapped_column

from csvboard.db.base import NOW, Base, JSONDocument, TextArray, UTCDateTime
from csvboard.runs.vocabulary import (
    EventStatus,
    ItemStatus,
    RunKind,
    RunMode,
    RunStatus,
    TargetType,
    UpdateType,
    sql_in,
)

COUNT_COLUMNS = (
    "target_count",
    "processed_count",
    "success_count",
    "failed_count",
    "unprocessed_count",
)
# SQLite has no arrays: target_types is a JSON array there, and this CHECK keeps it one.
SQLITE_TARGET_TYPES_CHECK = "json_valid(target_types) AND json_type(target_types) = 'array'"


class IngestionRun(Base):
    __tablename__ = "ingestion_runs"

    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    run_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    target_types: Mapped[list[str]] = mapped_column(TextArray, nullable=False)
    parent_run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="SET NULL"), nullable=True
    )
    requested_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    target_count: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", default=0
    )
    processed_count: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", default=0
    )
    success_count: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", default=0
    )
    failed_count: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", default=0
    )
    unprocessed_count: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", default=0
    )
    trace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)

    __table_args__ = (
        CheckConstraint(sql_in("run_kind", RunKind), name="run_kind"),
        CheckConstraint(sql_in("mode", RunMode), name="mode"),
        CheckConstraint(sql_in("status", RunStatus), name="status"),
        *(CheckConstraint(f"{c} >= 0", name=f"{c}_non_negative") for c in COUNT_COLUMNS),
        CheckConstraint(
            "finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at",
            name="finished_after_started",
        ),
        CheckConstraint(SQLITE_TARGET_TYPES_CHECK, name="target_types_array").ddl_if(
            dialect="sqlite"
        ),
        Index("idx_ingestion_runs_status_created", "status", text("created_at DESC")),
        Index("idx_ingestion_runs_started_at", text("started_at DESC")),
        Index("idx_ingestion_runs_trace_id", "trace_id"),
    )


class IngestionRunSource(Base):
    """One file a run reads, and the stored copy of its bytes (so a re-run reads the same)."""

    __tablename__ = "ingestion_run_sources"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="CASCADE"), nullable=False, index=True
    )
    csv_dashboard_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboards.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Indexed: a feed's runs are read by the alerts (csvboard/alerts/problems.py, the overdue
    # rule in feeds/health.py) and the metrics every minute.
    feed_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("csv_dashboard_feeds.id", ondelete="SET NULL"), nullable=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detected_encoding: Mapped[str | None] = mapped_column(String(16), nullable=True)
    stored_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    # When retention removed the stored copy (csvboard/runs/retention.py): the run can no
    # longer be re-run, and says so.
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint(sql_in("role", TargetType), name="role"),
        CheckConstraint("size_bytes IS NULL OR size_bytes >= 0", name="size_non_negative"),
        CheckConstraint("sha256 IS NULL OR length(sha256) = 64", name="sha256_length"),
        UniqueConstraint("run_id", "position"),
    )


class IngestionItem(Base):
    """A row of a run whose state changed, or that was rejected or excluded."""

    __tablename__ = "ingestion_items"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="CASCADE"), nullable=False
    )
    source_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ingestion_run_sources.id", ondelete="CASCADE"), nullable=True
    )
    csv_dashboard_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboards.id", ondelete="CASCADE"), nullable=False
    )
    csv_dashboard_row_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    line_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    row_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    update_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        CheckConstraint(sql_in("status", ItemStatus), name="status"),
        CheckConstraint(
            f"update_type IS NULL OR {sql_in('update_type', UpdateType)}", name="update_type"
        ),
        CheckConstraint("line_number IS NULL OR line_number >= 1", name="line_positive"),
        UniqueConstraint("run_id", "line_number", "source_id"),
        Index("ix_ingestion_items_run_status", "run_id", "status", "id"),
    )


class IngestionEvent(Base):
    __tablename__ = "ingestion_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="CASCADE"), nullable=False
    )
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    event_status: Mapped[str] = mapped_column(String(16), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    trace_id: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        CheckConstraint(sql_in("event_status", EventStatus), name="event_status"),
        CheckConstraint(
            f"from_status IS NULL OR {sql_in('from_status', RunStatus)}", name="from_status"
        ),
        CheckConstraint(f"to_status IS NULL OR {sql_in('to_status', RunStatus)}", name="to_status"),
        Index("ix_ingestion_events_run_id", "run_id", "id"),
    )


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128), primary_key=True)
    payload_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)

    __table_args__ = (CheckConstraint("expires_at > created_at", name="expires_after_created"),)


class IngestionRunLease(Base):
    """Who executes a running run, their heartbeat, and whether cancel was requested."""

    __tablename__ = "ingestion_run_leases"

    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    cancel_requested: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=false(), default=False
    )


class WorkerPresence(Base):
    """That a worker process is alive, said every ``CSVBOARD_REAPER_INTERVAL_SECONDS`` whether
    or not it executes a run (csvboard/worker/worker.py): a lease says only that a running
    run's worker is alive; this says a worker is there to take the next one. Rows of workers
    not seen for a week are deleted by the workers themselves."""

    __tablename__ = "worker_presence"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    # Set when the worker stopped on request (SIGTERM); a worker that died leaves it null.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint("seen_at >= started_at", name="seen_after_started"),
        CheckConstraint(
            "stopped_at IS NULL OR stopped_at >= started_at", name="stopped_after_started"
        ),
    )


class MaintenanceRecord(Base):
    """What a maintenance job removed (a prune: files, bytes, items, events, rows), kept as
    the ledger's account of it: the runs it touched keep their ledger rows."""

    __tablename__ = "maintenance_records"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    requested_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)

    __table_args__ = (
        CheckConstraint("kind IN ('prune')", name="kind"),
        Index("ix_maintenance_records_kind_occurred_at", "kind", "occurred_at"),
    )
