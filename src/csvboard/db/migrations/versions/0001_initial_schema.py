"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from csvboard.db.base import TextArray, UTCDateTime

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _only(dialect: str, *constraints: sa.CheckConstraint) -> list[sa.CheckConstraint]:
    """Constraints whose SQL exists on one engine only (the other has an equivalent of its own)."""
    return list(constraints) if op.get_bind().dialect.name == dialect else []


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('created_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint("role IN ('admin', 'operator', 'viewer')", name=op.f('ck_api_tokens_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('csv_dashboards',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ingest_mode', sa.String(length=8), nullable=False),
    sa.Column('columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('key_columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('version_columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('encoding', sa.String(length=8), server_default='auto', nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("encoding IN ('auto', 'utf-8', 'cp932')", name=op.f('ck_csv_dashboards_encoding')),
    sa.CheckConstraint("ingest_mode IN ('DEDUP', 'APPEND')", name=op.f('ck_csv_dashboards_ingest_mode')),
    sa.CheckConstraint("kind IN ('generic', 'production_schedule')", name=op.f('ck_csv_dashboards_kind')),
    sa.CheckConstraint("length(slug) BETWEEN 1 AND 64 AND slug NOT LIKE '%/%' AND slug NOT LIKE '% %'", name=op.f('ck_csv_dashboards_slug_format')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_csv_dashboards')),
    sa.UniqueConstraint('slug', name=op.f('uq_csv_dashboards_slug'))
    )
    op.create_table('ingestion_runs',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('run_kind', sa.String(length=32), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('target_types', TextArray(), nullable=False),
    sa.Column('parent_run_id', sa.Uuid(), nullable=True),
    sa.Column('requested_by', sa.String(length=64), nullable=True),
    sa.Column('started_at', UTCDateTime(), nullable=True),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.Column('target_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('processed_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('success_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failed_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('unprocessed_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    *_only("sqlite", sa.CheckConstraint("json_valid(target_types) AND json_type(target_types) = 'array'", name=op.f('ck_ingestion_runs_target_types_array'))),
    sa.CheckConstraint("mode IN ('manual', 'scheduled')", name=op.f('ck_ingestion_runs_mode')),
    sa.CheckConstraint("run_kind IN ('official_ingestion', 'appearance_supplement', 'incremental_update')", name=op.f('ck_ingestion_runs_run_kind')),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'partial', 'cancelled')", name=op.f('ck_ingestion_runs_status')),
    sa.CheckConstraint('failed_count >= 0', name=op.f('ck_ingestion_runs_failed_count_non_negative')),
    sa.CheckConstraint('finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at', name=op.f('ck_ingestion_runs_finished_after_started')),
    sa.CheckConstraint('processed_count >= 0', name=op.f('ck_ingestion_runs_processed_count_non_negative')),
    sa.CheckConstraint('success_count >= 0', name=op.f('ck_ingestion_runs_success_count_non_negative')),
    sa.CheckConstraint('target_count >= 0', name=op.f('ck_ingestion_runs_target_count_non_negative')),
    sa.CheckConstraint('unprocessed_count >= 0', name=op.f('ck_ingestion_runs_unprocessed_count_non_negative')),
    sa.ForeignKeyConstraint(['parent_run_id'], ['ingestion_runs.run_id'], name=op.f('fk_ingestion_runs_parent_run_id_ingestion_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_ingestion_runs'))
    )
    with op.batch_alter_table('ingestion_runs', schema=None) as batch_op:
        batch_op.create_index('idx_ingestion_runs_trace_id', ['trace_id'], unique=False)
    # The seed document's two descending indexes (autogenerate cannot render expressions).
    op.create_index('idx_ingestion_runs_status_created', 'ingestion_runs', ['status', sa.text('created_at DESC')])
    op.create_index('idx_ingestion_runs_started_at', 'ingestion_runs', [sa.text('started_at DESC')])

    op.create_table('csv_dashboard_feeds',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('schedule', sa.String(length=64), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('mapping', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("role = 'official' OR mapping IS NOT NULL", name=op.f('ck_csv_dashboard_feeds_appearance_needs_mapping')),
    sa.CheckConstraint("role IN ('official', 'appearance')", name=op.f('ck_csv_dashboard_feeds_role')),
    sa.CheckConstraint("source = 'upload' OR location IS NOT NULL", name=op.f('ck_csv_dashboard_feeds_location_required')),
    sa.CheckConstraint("source IN ('upload', 'folder', 'url')", name=op.f('ck_csv_dashboard_feeds_source')),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_csv_dashboard_feeds_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_csv_dashboard_feeds')),
    sa.UniqueConstraint('csv_dashboard_id', 'name', name=op.f('uq_csv_dashboard_feeds_csv_dashboard_id_name'))
    )
    op.create_table('csv_dashboard_rows',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('row_key', sa.Text(), nullable=False),
    sa.Column('is_dedup', sa.Boolean(), nullable=False),
    sa.Column('row_data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('supplement_data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('data_hash', sa.String(length=64), nullable=False),
    sa.Column('version_values', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('occurred_at', UTCDateTime(), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('first_run_id', sa.Uuid(), nullable=True),
    sa.Column('last_changed_run_id', sa.Uuid(), nullable=True),
    sa.Column('retired_at', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint('(is_active AND retired_at IS NULL) OR (NOT is_active AND retired_at IS NOT NULL)', name=op.f('ck_csv_dashboard_rows_retired_at_matches_active')),
    sa.CheckConstraint('length(data_hash) = 64', name=op.f('ck_csv_dashboard_rows_data_hash_length')),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_csv_dashboard_rows_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['first_run_id'], ['ingestion_runs.run_id'], name=op.f('fk_csv_dashboard_rows_first_run_id_ingestion_runs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['last_changed_run_id'], ['ingestion_runs.run_id'], name=op.f('fk_csv_dashboard_rows_last_changed_run_id_ingestion_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_csv_dashboard_rows')),
    sa.UniqueConstraint('id', 'csv_dashboard_id', name=op.f('uq_csv_dashboard_rows_id_csv_dashboard_id'))
    )
    with op.batch_alter_table('csv_dashboard_rows', schema=None) as batch_op:
        batch_op.create_index('ix_csv_dashboard_rows_active', ['csv_dashboard_id', 'is_active'], unique=False)
        batch_op.create_index('uq_csv_dashboard_rows_dedup_key', ['csv_dashboard_id', 'row_key'], unique=True, sqlite_where=sa.text('is_dedup'), postgresql_where=sa.text('is_dedup'))

    op.create_table('idempotency_keys',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('principal', sa.String(length=64), nullable=False),
    sa.Column('endpoint', sa.String(length=128), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint('expires_at > created_at', name=op.f('ck_idempotency_keys_expires_after_created')),
    sa.ForeignKeyConstraint(['run_id'], ['ingestion_runs.run_id'], name=op.f('fk_idempotency_keys_run_id_ingestion_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', 'principal', 'endpoint', name=op.f('pk_idempotency_keys'))
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_keys_expires_at'), ['expires_at'], unique=False)

    op.create_table('ingestion_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('event_status', sa.String(length=16), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('occurred_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.CheckConstraint("event_status IN ('success', 'warn', 'failure')", name=op.f('ck_ingestion_events_event_status')),
    sa.CheckConstraint("from_status IS NULL OR from_status IN ('queued', 'running', 'succeeded', 'failed', 'partial', 'cancelled')", name=op.f('ck_ingestion_events_from_status')),
    sa.CheckConstraint("to_status IS NULL OR to_status IN ('queued', 'running', 'succeeded', 'failed', 'partial', 'cancelled')", name=op.f('ck_ingestion_events_to_status')),
    sa.ForeignKeyConstraint(['run_id'], ['ingestion_runs.run_id'], name=op.f('fk_ingestion_events_run_id_ingestion_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingestion_events'))
    )
    with op.batch_alter_table('ingestion_events', schema=None) as batch_op:
        batch_op.create_index('ix_ingestion_events_run_id', ['run_id', 'id'], unique=False)

    op.create_table('ingestion_run_leases',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('worker_id', sa.String(length=128), nullable=True),
    sa.Column('heartbeat_at', UTCDateTime(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['ingestion_runs.run_id'], name=op.f('fk_ingestion_run_leases_run_id_ingestion_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_ingestion_run_leases'))
    )
    with op.batch_alter_table('ingestion_run_leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingestion_run_leases_heartbeat_at'), ['heartbeat_at'], unique=False)

    op.create_table('ingestion_run_sources',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('feed_id', sa.Uuid(), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('detected_encoding', sa.String(length=16), nullable=True),
    sa.Column('stored_path', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("role IN ('official', 'appearance')", name=op.f('ck_ingestion_run_sources_role')),
    sa.CheckConstraint('sha256 IS NULL OR length(sha256) = 64', name=op.f('ck_ingestion_run_sources_sha256_length')),
    sa.CheckConstraint('size_bytes IS NULL OR size_bytes >= 0', name=op.f('ck_ingestion_run_sources_size_non_negative')),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_ingestion_run_sources_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['feed_id'], ['csv_dashboard_feeds.id'], name=op.f('fk_ingestion_run_sources_feed_id_csv_dashboard_feeds'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['ingestion_runs.run_id'], name=op.f('fk_ingestion_run_sources_run_id_ingestion_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingestion_run_sources')),
    sa.UniqueConstraint('run_id', 'position', name=op.f('uq_ingestion_run_sources_run_id_position'))
    )
    with op.batch_alter_table('ingestion_run_sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingestion_run_sources_csv_dashboard_id'), ['csv_dashboard_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ingestion_run_sources_run_id'), ['run_id'], unique=False)

    op.create_table('production_schedule_external_completion',
    sa.Column('is_completed', sa.Boolean(), nullable=False),
    sa.Column('source_feed_id', sa.Uuid(), nullable=True),
    sa.Column('run_id', sa.Uuid(), nullable=True),
    sa.Column('csv_dashboard_row_id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_production_schedule_external_completion_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['csv_dashboard_row_id', 'csv_dashboard_id'], ['csv_dashboard_rows.id', 'csv_dashboard_rows.csv_dashboard_id'], name=op.f('fk_production_schedule_external_completion_csv_dashboard_row_id_csv_dashboard_id_csv_dashboard_rows'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['ingestion_runs.run_id'], name=op.f('fk_production_schedule_external_completion_run_id_ingestion_runs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_feed_id'], ['csv_dashboard_feeds.id'], name=op.f('fk_production_schedule_external_completion_source_feed_id_csv_dashboard_feeds'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('csv_dashboard_row_id', name=op.f('pk_production_schedule_external_completion'))
    )
    with op.batch_alter_table('production_schedule_external_completion', schema=None) as batch_op:
        batch_op.create_index('ix_production_schedule_external_completion_dashboard', ['csv_dashboard_id', 'is_completed'], unique=False)

    op.create_table('production_schedule_progress',
    sa.Column('is_completed', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('csv_dashboard_row_id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_production_schedule_progress_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['csv_dashboard_row_id', 'csv_dashboard_id'], ['csv_dashboard_rows.id', 'csv_dashboard_rows.csv_dashboard_id'], name=op.f('fk_production_schedule_progress_csv_dashboard_row_id_csv_dashboard_id_csv_dashboard_rows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('csv_dashboard_row_id', name=op.f('pk_production_schedule_progress'))
    )
    with op.batch_alter_table('production_schedule_progress', schema=None) as batch_op:
        batch_op.create_index('ix_production_schedule_progress_dashboard_completed', ['csv_dashboard_id', 'is_completed'], unique=False)

    op.create_table('production_schedule_row_due_dates',
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('csv_dashboard_row_id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_production_schedule_row_due_dates_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['csv_dashboard_row_id', 'csv_dashboard_id'], ['csv_dashboard_rows.id', 'csv_dashboard_rows.csv_dashboard_id'], name=op.f('fk_production_schedule_row_due_dates_csv_dashboard_row_id_csv_dashboard_id_csv_dashboard_rows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('csv_dashboard_row_id', name=op.f('pk_production_schedule_row_due_dates'))
    )
    with op.batch_alter_table('production_schedule_row_due_dates', schema=None) as batch_op:
        batch_op.create_index('ix_production_schedule_row_due_dates_dashboard', ['csv_dashboard_id'], unique=False)

    op.create_table('production_schedule_row_notes',
    sa.Column('note', sa.String(length=100), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('csv_dashboard_row_id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    *_only("postgresql", sa.CheckConstraint("note !~ '[\\r\\n]'", name=op.f('ck_production_schedule_row_notes_note_single_line'))),
    *_only("sqlite", sa.CheckConstraint('instr(note, char(10)) = 0 AND instr(note, char(13)) = 0', name=op.f('ck_production_schedule_row_notes_note_single_line'))),
    sa.CheckConstraint('length(note) BETWEEN 1 AND 100', name=op.f('ck_production_schedule_row_notes_note_length')),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_production_schedule_row_notes_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['csv_dashboard_row_id', 'csv_dashboard_id'], ['csv_dashboard_rows.id', 'csv_dashboard_rows.csv_dashboard_id'], name=op.f('fk_production_schedule_row_notes_csv_dashboard_row_id_csv_dashboard_id_csv_dashboard_rows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('csv_dashboard_row_id', name=op.f('pk_production_schedule_row_notes'))
    )
    with op.batch_alter_table('production_schedule_row_notes', schema=None) as batch_op:
        batch_op.create_index('ix_production_schedule_row_notes_dashboard', ['csv_dashboard_id'], unique=False)

    op.create_table('production_schedule_row_orders',
    sa.Column('resource_cd', sa.String(length=64), nullable=False),
    sa.Column('order_number', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('csv_dashboard_row_id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint('length(resource_cd) >= 1', name=op.f('ck_production_schedule_row_orders_resource_not_empty')),
    sa.CheckConstraint('order_number BETWEEN 1 AND 10', name=op.f('ck_production_schedule_row_orders_order_range')),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_production_schedule_row_orders_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['csv_dashboard_row_id', 'csv_dashboard_id'], ['csv_dashboard_rows.id', 'csv_dashboard_rows.csv_dashboard_id'], name=op.f('fk_production_schedule_row_orders_csv_dashboard_row_id_csv_dashboard_id_csv_dashboard_rows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('csv_dashboard_row_id', name=op.f('pk_production_schedule_row_orders')),
    sa.UniqueConstraint('csv_dashboard_id', 'resource_cd', 'order_number', name=op.f('uq_production_schedule_row_orders_csv_dashboard_id_resource_cd_order_number'))
    )
    op.create_table('production_schedule_row_processing',
    sa.Column('processing_type', sa.String(length=32), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('csv_dashboard_row_id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint('length(processing_type) >= 1', name=op.f('ck_production_schedule_row_processing_processing_type_not_empty')),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_production_schedule_row_processing_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['csv_dashboard_row_id', 'csv_dashboard_id'], ['csv_dashboard_rows.id', 'csv_dashboard_rows.csv_dashboard_id'], name=op.f('fk_production_schedule_row_processing_csv_dashboard_row_id_csv_dashboard_id_csv_dashboard_rows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('csv_dashboard_row_id', name=op.f('pk_production_schedule_row_processing'))
    )
    with op.batch_alter_table('production_schedule_row_processing', schema=None) as batch_op:
        batch_op.create_index('ix_production_schedule_row_processing_dashboard', ['csv_dashboard_id'], unique=False)

    op.create_table('ingestion_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('source_id', sa.Uuid(), nullable=True),
    sa.Column('csv_dashboard_id', sa.Uuid(), nullable=False),
    sa.Column('csv_dashboard_row_id', sa.Uuid(), nullable=True),
    sa.Column('line_number', sa.Integer(), nullable=True),
    sa.Column('row_key', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('update_type', sa.String(length=16), nullable=True),
    sa.Column('reason_code', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('succeeded', 'failed', 'unprocessed', 'excluded')", name=op.f('ck_ingestion_items_status')),
    sa.CheckConstraint("update_type IS NULL OR update_type IN ('new', 'existing', 'retired', 'supplement')", name=op.f('ck_ingestion_items_update_type')),
    sa.CheckConstraint('line_number IS NULL OR line_number >= 1', name=op.f('ck_ingestion_items_line_positive')),
    sa.ForeignKeyConstraint(['csv_dashboard_id'], ['csv_dashboards.id'], name=op.f('fk_ingestion_items_csv_dashboard_id_csv_dashboards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['ingestion_runs.run_id'], name=op.f('fk_ingestion_items_run_id_ingestion_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['ingestion_run_sources.id'], name=op.f('fk_ingestion_items_source_id_ingestion_run_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingestion_items')),
    sa.UniqueConstraint('run_id', 'line_number', 'source_id', name=op.f('uq_ingestion_items_run_id_line_number_source_id'))
    )
    with op.batch_alter_table('ingestion_items', schema=None) as batch_op:
        batch_op.create_index('ix_ingestion_items_run_status', ['run_id', 'status', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ingestion_items', schema=None) as batch_op:
        batch_op.drop_index('ix_ingestion_items_run_status')

    op.drop_table('ingestion_items')
    with op.batch_alter_table('production_schedule_row_processing', schema=None) as batch_op:
        batch_op.drop_index('ix_production_schedule_row_processing_dashboard')

    op.drop_table('production_schedule_row_processing')
    op.drop_table('production_schedule_row_orders')
    with op.batch_alter_table('production_schedule_row_notes', schema=None) as batch_op:
        batch_op.drop_index('ix_production_schedule_row_notes_dashboard')

    op.drop_table('production_schedule_row_notes')
    with op.batch_alter_table('production_schedule_row_due_dates', schema=None) as batch_op:
        batch_op.drop_index('ix_production_schedule_row_due_dates_dashboard')

    op.drop_table('production_schedule_row_due_dates')
    with op.batch_alter_table('production_schedule_progress', schema=None) as batch_op:
        batch_op.drop_index('ix_production_schedule_progress_dashboard_completed')

    op.drop_table('production_schedule_progress')
    with op.batch_alter_table('production_schedule_external_completion', schema=None) as batch_op:
        batch_op.drop_index('ix_production_schedule_external_completion_dashboard')

    op.drop_table('production_schedule_external_completion')
    with op.batch_alter_table('ingestion_run_sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingestion_run_sources_run_id'))
        batch_op.drop_index(batch_op.f('ix_ingestion_run_sources_csv_dashboard_id'))

    op.drop_table('ingestion_run_sources')
    with op.batch_alter_table('ingestion_run_leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingestion_run_leases_heartbeat_at'))

    op.drop_table('ingestion_run_leases')
    with op.batch_alter_table('ingestion_events', schema=None) as batch_op:
        batch_op.drop_index('ix_ingestion_events_run_id')

    op.drop_table('ingestion_events')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_keys_expires_at'))

    op.drop_table('idempotency_keys')
    with op.batch_alter_table('csv_dashboard_rows', schema=None) as batch_op:
        batch_op.drop_index('uq_csv_dashboard_rows_dedup_key', sqlite_where=sa.text('is_dedup'), postgresql_where=sa.text('is_dedup'))
        batch_op.drop_index('ix_csv_dashboard_rows_active')

    op.drop_table('csv_dashboard_rows')
    op.drop_table('csv_dashboard_feeds')
    with op.batch_alter_table('ingestion_runs', schema=None) as batch_op:
        batch_op.drop_index('idx_ingestion_runs_trace_id')
        batch_op.drop_index('idx_ingestion_runs_status_created')
        batch_op.drop_index('idx_ingestion_runs_started_at')

    op.drop_table('ingestion_runs')
    op.drop_table('csv_dashboards')
    op.drop_table('api_tokens')
