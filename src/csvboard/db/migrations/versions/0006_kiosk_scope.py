"""kiosk scope: registered 製番 lists, and the schedule by resource

The kiosk board works within a scope — one or several resources and/or registered 製番 —
instead of listing a whole dashboard (at 60,000 steps that was two million DOM elements).

- ``production_schedule_seiban_lists`` / ``production_schedule_registered_seibans``: the
  registered 製番 every kiosk of a dashboard shares, versioned for optimistic concurrency
  (``If-Match``). Operator data: ingestion never writes them.
- ``ix_csv_dashboard_rows_schedule_resource``: the rows of one resource in kiosk order
  (製番, ProductNo), so a page of a resource's steps, its progress and the list of a
  dashboard's resources read one resource's index range, never every row of the dashboard.
  It also carries what the board filters and counts by (active, 品番 for the machine rows,
  the row id for the operator-data joins): counting a resource's progress then reads the
  index alone (SQLite, 27,000 steps of a 200,000-step schedule: 84 ms -> 24 ms).
  The expressions are the very ones of ``csvboard.schedule.expressions.Fields`` (and of 0004's
  index), which both planners match structurally.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from csvboard.db.base import UTCDateTime

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_csv_dashboard_rows_schedule_resource"
MAX_REGISTERED_SEIBANS = 100


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "production_schedule_seiban_lists",
        sa.Column("csv_dashboard_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_production_schedule_seiban_lists_version_positive")),
        sa.ForeignKeyConstraint(["csv_dashboard_id"], ["csv_dashboards.id"], name=op.f("fk_production_schedule_seiban_lists_csv_dashboard_id_csv_dashboards"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("csv_dashboard_id", name=op.f("pk_production_schedule_seiban_lists")),
    )
    pattern = (
        "fseiban ~ '^[A-Za-z0-9*]{8}$'"
        if pg
        else "length(fseiban) = 8 AND fseiban NOT GLOB '*[^A-Za-z0-9*]*'"
    )
    op.create_table(
        "production_schedule_registered_seibans",
        sa.Column("csv_dashboard_id", sa.Uuid(), nullable=False),
        sa.Column("fseiban", sa.String(length=8), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint(f"position BETWEEN 1 AND {MAX_REGISTERED_SEIBANS}", name=op.f("ck_production_schedule_registered_seibans_position_range")),
        sa.CheckConstraint(pattern, name=op.f("ck_production_schedule_registered_seibans_fseiban_pattern")),
        sa.ForeignKeyConstraint(["csv_dashboard_id"], ["production_schedule_seiban_lists.csv_dashboard_id"], name=op.f("fk_production_schedule_registered_seibans_csv_dashboard_id_production_schedule_seiban_lists"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("csv_dashboard_id", "fseiban", name=op.f("pk_production_schedule_registered_seibans")),
        sa.UniqueConstraint("csv_dashboard_id", "position", name=op.f("uq_production_schedule_registered_seibans_csv_dashboard_id_position")),
    )
    if pg:
        op.execute(
            f"CREATE INDEX {INDEX} ON csv_dashboard_rows (csv_dashboard_id,"
            " (coalesce(row_data ->> 'FSIGENCD', '')) COLLATE \"C\","
            " (coalesce(row_data ->> 'FSEIBAN', '')) COLLATE \"C\","
            " (coalesce(row_data ->> 'ProductNo', '')) COLLATE \"C\","
            " is_active, (coalesce(row_data ->> 'FHINCD', '')) COLLATE \"C\", id)"
        )
    else:
        op.execute(
            f"CREATE INDEX {INDEX} ON csv_dashboard_rows (csv_dashboard_id,"
            """ coalesce(json_extract(row_data, '$."FSIGENCD"'), ''),"""
            """ coalesce(json_extract(row_data, '$."FSEIBAN"'), ''),"""
            """ coalesce(json_extract(row_data, '$."ProductNo"'), ''),"""
            """ is_active, coalesce(json_extract(row_data, '$."FHINCD"'), ''), id)"""
        )


def downgrade() -> None:
    op.execute(f"DROP INDEX {INDEX}")
    op.drop_table("production_schedule_registered_seibans")
    op.drop_table("production_schedule_seiban_lists")
