"""Production-schedule data that is not the CSV's own
(docs/design/adr_production_schedule_progress.md).

Operator-owned tables are written only by people through the API/CLI, never by ingestion; the
external-completion table is written only by ingestion. Each is 1:1 with a dashboard row, keyed
by the row id, and goes with the row when an admin purges it (ON DELETE CASCADE). The composite
foreign key (row id, dashboard id) guarantees the dashboard column names the row's own dashboard.

Defining these tables also registers them with the dashboards domain (``dashboards/kinds.py``),
which the schedule is built on and which does not import it: a purge then reports their
records, and the generic rows list shows a schedule row's effective completion.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SQLColumnExpression,
    String,
    UniqueConstraint,
    Uuid,
    exists,
    or_,
)
from sqlalchemy.orm import Mapped, mapped_column

from csvboard.dashboards import kinds
from csvboard.dashboards.vocabulary import DashboardKind
from csvboard.db.base import NOW, Base, UTCDateTime

MAX_NOTE_LENGTH = 100
MAX_ORDER_NUMBER = 10


class _RowAttached:
    """Columns and keys shared by every table that hangs 1:1 off a dashboard row."""

    csv_dashboard_row_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    csv_dashboard_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboards.id", ondelete="CASCADE"), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)


def _row_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["csv_dashboard_row_id", "csv_dashboard_id"],
        ["csv_dashboard_rows.id", "csv_dashboard_rows.csv_dashboard_id"],
        ondelete="CASCADE",
    )


class _OperatorOwned(_RowAttached):
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ProductionScheduleProgress(_OperatorOwned, Base):
    __tablename__ = "production_schedule_progress"

    is_completed: Mapped[bool] = mapped_column(Boolean, nullable=False)

    __table_args__ = (
        _row_fk(),
        Index(
            "ix_production_schedule_progress_dashboard_completed",
            "csv_dashboard_id",
            "is_completed",
        ),
    )


class ProductionScheduleRowNote(_OperatorOwned, Base):
    __tablename__ = "production_schedule_row_notes"

    note: Mapped[str] = mapped_column(String(MAX_NOTE_LENGTH), nullable=False)

    __table_args__ = (
        _row_fk(),
        CheckConstraint(f"length(note) BETWEEN 1 AND {MAX_NOTE_LENGTH}", name="note_length"),
        # No line breaks: a note is one line on the kiosk card.
        CheckConstraint(
            "instr(note, char(10)) = 0 AND instr(note, char(13)) = 0", name="note_single_line"
        ).ddl_if(dialect="sqlite"),
        CheckConstraint("note !~ '[\\r\\n]'", name="note_single_line").ddl_if(dialect="postgresql"),
        Index("ix_production_schedule_row_notes_dashboard", "csv_dashboard_id"),
    )


class ProductionScheduleRowDueDate(_OperatorOwned, Base):
    __tablename__ = "production_schedule_row_due_dates"

    due_date: Mapped[date] = mapped_column(Date, nullable=False)

    __table_args__ = (
        _row_fk(),
        Index("ix_production_schedule_row_due_dates_dashboard", "csv_dashboard_id"),
    )


class ProductionScheduleRowProcessing(_OperatorOwned, Base):
    __tablename__ = "production_schedule_row_processing"

    processing_type: Mapped[str] = mapped_column(String(32), nullable=False)

    __table_args__ = (
        _row_fk(),
        CheckConstraint("length(processing_type) >= 1", name="processing_type_not_empty"),
        Index("ix_production_schedule_row_processing_dashboard", "csv_dashboard_id"),
    )


class ProductionScheduleRowOrder(_OperatorOwned, Base):
    """Machining order: a number 1–10 per resource, unique per dashboard and resource."""

    __tablename__ = "production_schedule_row_orders"

    resource_cd: Mapped[str] = mapped_column(String(64), nullable=False)
    order_number: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (
        _row_fk(),
        CheckConstraint(f"order_number BETWEEN 1 AND {MAX_ORDER_NUMBER}", name="order_range"),
        CheckConstraint("length(resource_cd) >= 1", name="resource_not_empty"),
        UniqueConstraint("csv_dashboard_id", "resource_cd", "order_number"),
    )


class ProductionScheduleExternalCompletion(_RowAttached, Base):
    """Completion reported by a source file (official ``progress`` or appearance status codes)."""

    __tablename__ = "production_schedule_external_completion"

    is_completed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    source_feed_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("csv_dashboard_feeds.id", ondelete="SET NULL"), nullable=True
    )
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="SET NULL"), nullable=True
    )

    __table_args__ = (
        _row_fk(),
        Index(
            "ix_production_schedule_external_completion_dashboard",
            "csv_dashboard_id",
            "is_completed",
        ),
    )


OPERATOR_TABLES = (
    ProductionScheduleProgress,
    ProductionScheduleRowNote,
    ProductionScheduleRowDueDate,
    ProductionScheduleRowProcessing,
    ProductionScheduleRowOrder,
)


def completed_exists(row_id: SQLColumnExpression[uuid.UUID]) -> ColumnElement[bool]:
    """Effective completion of the row ``row_id`` names, as EXISTS tests: the worker's mark
    OR the source's (docs/contract.md §2.2; a missing record is "not done")."""
    return or_(
        exists().where(
            ProductionScheduleProgress.csv_dashboard_row_id == row_id,
            ProductionScheduleProgress.is_completed == True,  # noqa: E712
        ),
        exists().where(
            ProductionScheduleExternalCompletion.csv_dashboard_row_id == row_id,
            ProductionScheduleExternalCompletion.is_completed == True,  # noqa: E712
        ),
    )


kinds.register(
    DashboardKind.PRODUCTION_SCHEDULE,
    kinds.KindExtension(
        row_tables=(*OPERATOR_TABLES, ProductionScheduleExternalCompletion),
        completed=completed_exists,
    ),
)


# --- the registered 製番 of a dashboard ------------------------------------------------------

MAX_REGISTERED_SEIBANS = 100
SEIBAN_PATTERN = "^[A-Za-z0-9*]{8}$"  # the preset's FSEIBAN rule


class ProductionScheduleSeibanList(Base):
    """The version of a dashboard's registered 製番 list, for optimistic concurrency.

    Every kiosk of a dashboard shares one list; an edit names the version it read
    (``If-Match``) and bumps it, so two planners never silently undo each other. No row yet
    means version 0 (an empty list nobody has edited).
    """

    __tablename__ = "production_schedule_seiban_lists"

    csv_dashboard_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboards.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)

    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)


class ProductionScheduleRegisteredSeiban(Base):
    """One registered 製番, at its position (1 = first button) in the dashboard's list."""

    __tablename__ = "production_schedule_registered_seibans"

    csv_dashboard_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("production_schedule_seiban_lists.csv_dashboard_id", ondelete="CASCADE"),
        primary_key=True,
    )
    fseiban: Mapped[str] = mapped_column(String(8), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (
        UniqueConstraint("csv_dashboard_id", "position"),
        CheckConstraint(f"position BETWEEN 1 AND {MAX_REGISTERED_SEIBANS}", name="position_range"),
        CheckConstraint(
            "length(fseiban) = 8 AND fseiban NOT GLOB '*[^A-Za-z0-9*]*'", name="fseiban_pattern"
        ).ddl_if(dialect="sqlite"),
        CheckConstraint(f"fseiban ~ '{SEIBAN_PATTERN}'", name="fseiban_pattern").ddl_if(
            dialect="postgresql"
        ),
    )


# --- capacity of a resource (負荷) ----------------------------------------------------------

MAX_WEEKLY_HOURS = 168 * 100  # a resource may stand for many machines; beyond this is a typo


class ProductionScheduleResourceCapacity(Base):
    """The hours a week a resource can work, set by an admin; 負荷 sets the required hours of
    the resource's open steps per week against it. No row: no capacity set."""

    __tablename__ = "production_schedule_resource_capacities"

    csv_dashboard_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboards.id", ondelete="CASCADE"), primary_key=True
    )
    resource_cd: Mapped[str] = mapped_column(String(64), primary_key=True)
    weekly_hours: Mapped[Decimal] = mapped_column(Numeric(8, 2), nullable=False)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)

    __table_args__ = (
        CheckConstraint(
            f"weekly_hours > 0 AND weekly_hours <= {MAX_WEEKLY_HOURS}", name="weekly_hours_range"
        ),
        CheckConstraint("length(resource_cd) >= 1", name="resource_cd_not_empty"),
    )
