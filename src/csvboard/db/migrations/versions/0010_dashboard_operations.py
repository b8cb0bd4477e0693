"""dashboard operations: retention per dashboard, and whether its manual runs are re-run

``csv_dashboards`` gains ``retention_file_days``, ``retention_ledger_days`` and
``retention_retired_row_days`` (NULL: the process default, ``CSVBOARD_RETENTION_*``; else
1–36500 days, a CHECK each) and ``retry_manual_runs`` (NOT NULL, false by default), which
replaces the hand-edited ``options.retry_manual_runs``: the upgrade moves that key into the
column, the downgrade moves it back.

Every column is added in place (``ALTER TABLE … ADD COLUMN``, the CHECK with its column) and
dropped in place, on both engines: SQLite's batch mode would copy ``csv_dashboards``, which
nearly every table references, only to add four columns.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from csvboard.db.base import JSONDocument

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RETENTION_COLUMNS = ("retention_file_days", "retention_ledger_days", "retention_retired_row_days")
MAX_RETENTION_DAYS = 36500  # csvboard.dashboards.models, as of this revision
OPTION = "retry_manual_runs"

dashboards = sa.table(
    "csv_dashboards",
    sa.column("id", sa.Uuid()),
    sa.column("options", JSONDocument),
    sa.column("retry_manual_runs", sa.Boolean()),
)


def upgrade() -> None:
    for column in RETENTION_COLUMNS:
        op.execute(
            f"ALTER TABLE csv_dashboards ADD COLUMN {column} INTEGER"
            f" CONSTRAINT ck_csv_dashboards_{column}_range"
            f" CHECK ({column} IS NULL OR {column} BETWEEN 1 AND {MAX_RETENTION_DAYS})"
        )
    # Not in a batch: on SQLite that copies the table (and its column CHECKs become table
    # CHECKs, which the downgrade's DROP COLUMN cannot drop).
    op.add_column(
        "csv_dashboards",
        sa.Column(OPTION, sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # In Python, row by row (dashboards are few): the same JSON handling on both engines.
    bind = op.get_bind()
    for row in bind.execute(sa.select(dashboards.c.id, dashboards.c.options)).all():
        options = dict(row.options or {})
        if OPTION not in options:
            continue
        retried = bool(options.pop(OPTION))
        bind.execute(
            dashboards.update()
            .where(dashboards.c.id == row.id)
            .values(options=options, retry_manual_runs=retried)
        )


def downgrade() -> None:
    bind = op.get_bind()
    chosen = sa.select(dashboards.c.id, dashboards.c.options).where(dashboards.c.retry_manual_runs)
    for row in bind.execute(chosen).all():
        options = {**(row.options or {}), OPTION: True}
        bind.execute(dashboards.update().where(dashboards.c.id == row.id).values(options=options))
    # In place on both engines (SQLite ≥ 3.35 drops a column with its own column CHECK).
    for column in (OPTION, *reversed(RETENTION_COLUMNS)):
        op.execute(f"ALTER TABLE csv_dashboards DROP COLUMN {column}")
