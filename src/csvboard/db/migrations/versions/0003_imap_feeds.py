"""imap feeds: the `imap` feed source, feed options, claimed mail messages, last success

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from csvboard.db.base import UTCDateTime

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SOURCES = "source IN ('upload', 'folder', 'url')"
NEW_SOURCES = "source IN ('upload', 'folder', 'url', 'imap')"
IMAP_OPTIONS = "source <> 'imap' OR options IS NOT NULL"


def upgrade() -> None:
    op.create_table('mail_messages',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('feed_id', sa.Uuid(), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=True),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=True),
    sa.Column('uid', sa.BigInteger(), nullable=True),
    sa.Column('sender', sa.String(length=255), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_at', UTCDateTime(), nullable=False),
    sa.Column('settled_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'retry', 'rejecting', 'processed', 'rejected')", name=op.f('ck_mail_messages_state')),
    sa.ForeignKeyConstraint(['feed_id'], ['csv_dashboard_feeds.id'], name=op.f('fk_mail_messages_feed_id_csv_dashboard_feeds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['ingestion_runs.run_id'], name=op.f('fk_mail_messages_run_id_ingestion_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_messages')),
    sa.UniqueConstraint('feed_id', 'message_id', name=op.f('uq_mail_messages_feed_id_message_id'))
    )
    op.create_index('ix_mail_messages_feed_state', 'mail_messages', ['feed_id', 'state'], unique=False)

    with op.batch_alter_table('csv_dashboard_feed_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_success_at', UTCDateTime(), nullable=True))

    # SQLite: the table is recreated (batch mode) with the new CHECKs; PostgreSQL: ALTERs.
    with op.batch_alter_table('csv_dashboard_feeds', schema=None, recreate='auto') as batch_op:
        batch_op.add_column(sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.drop_constraint(op.f('ck_csv_dashboard_feeds_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_csv_dashboard_feeds_source'), sa.text(NEW_SOURCES))
        batch_op.create_check_constraint(op.f('ck_csv_dashboard_feeds_imap_needs_options'), sa.text(IMAP_OPTIONS))


def downgrade() -> None:
    op.execute("DELETE FROM csv_dashboard_feeds WHERE source = 'imap'")
    with op.batch_alter_table('csv_dashboard_feeds', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_csv_dashboard_feeds_imap_needs_options'), type_='check')
        batch_op.drop_constraint(op.f('ck_csv_dashboard_feeds_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_csv_dashboard_feeds_source'), sa.text(OLD_SOURCES))
        batch_op.drop_column('options')

    with op.batch_alter_table('csv_dashboard_feed_state', schema=None) as batch_op:
        batch_op.drop_column('last_success_at')

    op.drop_index('ix_mail_messages_feed_state', table_name='mail_messages')
    op.drop_table('mail_messages')
