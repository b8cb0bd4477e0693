"""drop record hash: csv_dashboard_rows.record_hash goes with the record-at-a-time engine

0005 added the hash of the CSV record each row came from, so that a re-ingest could skip
validating unchanged lines. The columnar engine (csvboard/ingest/blocks.py, batches.py)
validates a whole file faster than that cache could be read and written back, and matches
rows by their data hash in SQL, so nothing reads the column any more.

Both engines drop the column in place: PostgreSQL with its CHECK; SQLite (3.35 or newer)
with ``ALTER TABLE … DROP COLUMN``, which it allows because 0005 made the CHECK a constraint
of the column itself. No table copy, so the expression indexes of 0004 and 0006 stay.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE csv_dashboard_rows DROP COLUMN record_hash")


def downgrade() -> None:
    # As 0005 made it: nullable, no default, so neither engine rewrites the table.
    op.execute(
        "ALTER TABLE csv_dashboard_rows ADD COLUMN record_hash VARCHAR(32)"
        " CONSTRAINT ck_csv_dashboard_rows_record_hash_length"
        " CHECK (record_hash IS NULL OR length(record_hash) = 32)"
    )
