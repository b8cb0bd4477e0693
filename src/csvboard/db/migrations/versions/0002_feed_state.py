"""feed state: what the scheduler remembers about each feed

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from csvboard.db.base import UTCDateTime

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('csv_dashboard_feed_state',
    sa.Column('feed_id', sa.Uuid(), nullable=False),
    sa.Column('last_fired_at', UTCDateTime(), nullable=True),
    sa.Column('last_polled_at', UTCDateTime(), nullable=True),
    sa.Column('last_message', sa.Text(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_run_id', sa.Uuid(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['feed_id'], ['csv_dashboard_feeds.id'], name=op.f('fk_csv_dashboard_feed_state_feed_id_csv_dashboard_feeds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['last_run_id'], ['ingestion_runs.run_id'], name=op.f('fk_csv_dashboard_feed_state_last_run_id_ingestion_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('feed_id', name=op.f('pk_csv_dashboard_feed_state'))
    )


def downgrade() -> None:
    op.drop_table('csv_dashboard_feed_state')
