"""alerts: the problems csvboard noticed and the messages it sent about them; worker presence

``alerts`` holds one row per problem from when an evaluation first sees it until one no longer
does (a partial unique index: one open alert per problem key); ``alert_deliveries`` one row
per message (opened or cleared) per channel, unique, so a problem is told once until it
clears (csvboard/alerts/service.py). No secret is stored. ``worker_presence`` says that a
worker process is alive whether or not it runs something (csvboard/worker/worker.py), so
"no worker" is an alert before a run has waited for one. An index on
``ingestion_run_sources.feed_id`` serves the per-feed reads of the alerts and the metrics.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from csvboard.db.base import UTCDateTime

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = "'run_failed', 'retries_exhausted', 'feed_overdue', 'feed_failing', 'worker_silent', 'worker_missing', 'queue_stuck'"


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("problem_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("cleared_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(f"kind IN ({_KINDS})", name=op.f("ck_alerts_kind")),
        sa.CheckConstraint("cleared_at IS NULL OR cleared_at >= opened_at", name=op.f("ck_alerts_cleared_after_opened")),
        sa.CheckConstraint("length(problem_key) > 0", name=op.f("ck_alerts_problem_key_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "uq_alerts_open_problem_key", "alerts", ["problem_key"], unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"), postgresql_where=sa.text("cleared_at IS NULL"),
    )
    op.create_index("ix_alerts_opened_at", "alerts", ["opened_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("channel IN ('webhook', 'mail')", name=op.f("ck_alert_deliveries_channel")),
        sa.CheckConstraint("event IN ('opened', 'cleared')", name=op.f("ck_alert_deliveries_event")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_alert_deliveries_attempts_non_negative")),
        sa.CheckConstraint("sent_at IS NULL OR attempts >= 1", name=op.f("ck_alert_deliveries_sent_after_an_attempt")),
        sa.CheckConstraint("last_error IS NULL OR length(last_error) <= 500", name=op.f("ck_alert_deliveries_last_error_length")),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_deliveries_alert_id_alerts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
        sa.UniqueConstraint("alert_id", "channel", "event", name=op.f("uq_alert_deliveries_alert_id_channel_event")),
    )
    op.create_index("ix_alert_deliveries_pending", "alert_deliveries", ["sent_at", "next_attempt_at"])
    op.create_table(
        "worker_presence",
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("seen_at >= started_at", name=op.f("ck_worker_presence_seen_after_started")),
        sa.CheckConstraint("stopped_at IS NULL OR stopped_at >= started_at", name=op.f("ck_worker_presence_stopped_after_started")),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_presence")),
    )
    op.create_index(op.f("ix_worker_presence_seen_at"), "worker_presence", ["seen_at"])
    # a feed's runs, read by the alerts and the metrics every minute
    op.create_index(op.f("ix_ingestion_run_sources_feed_id"), "ingestion_run_sources", ["feed_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ingestion_run_sources_feed_id"), table_name="ingestion_run_sources")
    op.drop_index(op.f("ix_worker_presence_seen_at"), table_name="worker_presence")
    op.drop_table("worker_presence")
    op.drop_index("ix_alert_deliveries_pending", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alerts_opened_at", table_name="alerts")
    op.drop_index("uq_alerts_open_problem_key", table_name="alerts")
    op.drop_table("alerts")
