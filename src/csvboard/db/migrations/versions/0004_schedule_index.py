"""schedule index: production-schedule rows by dashboard, 製番 and ProductNo

Every kiosk write answers with its composed row, which names the machine of the step's 製番
(the FHINMEI of that 製番's MH/SH row); the board pages through steps in 製番, ProductNo
order. Both looked at every row of the dashboard, extracting JSON values one by one — a
full scan per tap, growing with the schedule. This index holds the very expressions the
schedule queries use (``csvboard.schedule.expressions.Fields``), so both planners find the
rows of one 製番, and the board's first sort keys, in the index.

Only text extractions are indexed: they cannot fail on any row's data (a numeric cast of
工順 could, for a generic dashboard's rows, which share the table).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_csv_dashboard_rows_schedule_order"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE INDEX {INDEX} ON csv_dashboard_rows (csv_dashboard_id,"
            " (coalesce(row_data ->> 'FSEIBAN', '')) COLLATE \"C\","
            " (coalesce(row_data ->> 'ProductNo', '')) COLLATE \"C\")"
        )
    else:
        op.execute(
            f"CREATE INDEX {INDEX} ON csv_dashboard_rows (csv_dashboard_id,"
            """ coalesce(json_extract(row_data, '$."FSEIBAN"'), ''),"""
            """ coalesce(json_extract(row_data, '$."ProductNo"'), ''))"""
        )


def downgrade() -> None:
    op.execute(f"DROP INDEX {INDEX}")
