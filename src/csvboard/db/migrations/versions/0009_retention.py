"""retention: a source's stored copy can be pruned, and every prune is recorded

``ingestion_run_sources.pruned_at`` says when retention removed the stored copy of the file
(the run can then not be re-run, and says so); ``maintenance_records`` keeps what each prune
removed — files, bytes, items, events, rows — as the ledger's account of it
(csvboard/runs/retention.py). No run's ledger row is ever deleted.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from csvboard.db.base import UTCDateTime

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingestion_run_sources") as batch_op:
        batch_op.add_column(sa.Column("pruned_at", UTCDateTime(), nullable=True))
    op.create_table(
        "maintenance_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", UTCDateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.CheckConstraint("kind IN ('prune')", name=op.f("ck_maintenance_records_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_records")),
    )
    op.create_index("ix_maintenance_records_kind_occurred_at", "maintenance_records", ["kind", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_records_kind_occurred_at", table_name="maintenance_records")
    op.drop_table("maintenance_records")
    with op.batch_alter_table("ingestion_run_sources") as batch_op:
        batch_op.drop_column("pruned_at")
