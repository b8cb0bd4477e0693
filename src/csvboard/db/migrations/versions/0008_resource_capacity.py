"""resource capacity: the hours a week each resource of a production schedule can work

負荷 (the load view) sets the required hours of a resource's open steps per week against
it. Set by an admin per dashboard and resource; the CHECK keeps it a positive number of
hours below a bound that catches typos (csvboard.schedule.models.MAX_WEEKLY_HOURS).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from csvboard.db.base import UTCDateTime

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "production_schedule_resource_capacities",
        sa.Column("csv_dashboard_id", sa.Uuid(), nullable=False),
        sa.Column("resource_cd", sa.String(length=64), nullable=False),
        sa.Column("weekly_hours", sa.Numeric(8, 2), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column(
            "updated_at", UTCDateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False
        ),
        sa.CheckConstraint(
            "weekly_hours > 0 AND weekly_hours <= 16800",
            name=op.f("ck_production_schedule_resource_capacities_weekly_hours_range"),
        ),
        sa.CheckConstraint(
            "length(resource_cd) >= 1",
            name=op.f("ck_production_schedule_resource_capacities_resource_cd_not_empty"),
        ),
        sa.ForeignKeyConstraint(
            ["csv_dashboard_id"], ["csv_dashboards.id"], ondelete="CASCADE",
            name=op.f("fk_production_schedule_resource_capacities_csv_dashboard_id_csv_dashboards"),
        ),
        sa.PrimaryKeyConstraint(
            "csv_dashboard_id", "resource_cd",
            name=op.f("pk_production_schedule_resource_capacities"),
        ),
    )


def downgrade() -> None:
    op.drop_table("production_schedule_resource_capacities")
