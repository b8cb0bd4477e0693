"""record hash: csv_dashboard_rows.record_hash, the hash of the CSV record a row came from

A re-ingest compares each line's record hash with the stored rows' before validating it, so
an unchanged line costs a hash and a lookup instead of a validation (the dominant cost of an
unchanged re-ingest). Existing rows start NULL ("not known"); the first re-ingest of each
dashboard after the upgrade recognises them by their data hash as before and fills the
column in.

One ``ALTER TABLE … ADD COLUMN`` with a column CHECK on both engines: nullable without a
default, so neither rewrites the table (SQLite's batch mode would copy it whole).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE csv_dashboard_rows ADD COLUMN record_hash VARCHAR(32)"
        " CONSTRAINT ck_csv_dashboard_rows_record_hash_length"
        " CHECK (record_hash IS NULL OR length(record_hash) = 32)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE csv_dashboard_rows DROP COLUMN record_hash")  # and its CHECK
        return
    # SQLite cannot drop a column its CHECK names: batch mode copies the table, and the copy
    # loses the expression index of 0004 (Alembic cannot reflect it), so it is made again.
    with op.batch_alter_table("csv_dashboard_rows") as batch:
        batch.drop_constraint(op.f("ck_csv_dashboard_rows_record_hash_length"), type_="check")
        batch.drop_column("record_hash")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_csv_dashboard_rows_schedule_order ON csv_dashboard_rows"
        """ (csv_dashboard_id, coalesce(json_extract(row_data, '$."FSEIBAN"'), ''),"""
        """ coalesce(json_extract(row_data, '$."ProductNo"'), ''))"""
    )
