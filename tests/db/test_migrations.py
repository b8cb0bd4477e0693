"""Migrations 0005–0007 (record hashes in and out, kiosk scope) and 0010 (dashboard
operations) up and down, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine, inspect

from csvboard.dashboards.models import RETENTION_COLUMNS
from csvboard.dashboards.operations import change_operations
from csvboard.dashboards.service import create_dashboard, get_dashboard
from csvboard.db.base import JSONDocument
from csvboard.db.engine import make_engine, write_session
from csvboard.db.migrate import alembic_config, current_revision


def _index_names(engine: Engine) -> list[str]:
    # From the catalogue: the inspector skips SQLite's expression indexes (the schedule one).
    sql = (
        "SELECT indexname FROM pg_indexes WHERE tablename = 'csv_dashboard_rows'"
        if engine.dialect.name == "postgresql"
        else "SELECT name FROM sqlite_master WHERE type = 'index'"
        " AND tbl_name = 'csv_dashboard_rows'"
    )
    with engine.connect() as conn:
        return sorted(conn.exec_driver_sql(sql).scalars())


def _rows_table(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {
            "columns": [c["name"] for c in found.get_columns("csv_dashboard_rows")],
            "indexes": _index_names(engine),
            "checks": sorted(
                c["name"] or "" for c in found.get_check_constraints("csv_dashboard_rows")
            ),
        }
    finally:
        engine.dispose()


RESOURCE_INDEX = "ix_csv_dashboard_rows_schedule_resource"


def test_kiosk_scope_migration_goes_down_to_0005_and_up_again(db_url: str) -> None:
    head = _rows_table(db_url)
    assert RESOURCE_INDEX in head["indexes"]
    tables = set(inspect(make_engine(db_url)).get_table_names())
    assert {"production_schedule_seiban_lists", "production_schedule_registered_seibans"} <= tables
    command.downgrade(alembic_config(db_url), "0005")
    assert current_revision(db_url) == "0005"
    down = _rows_table(db_url)
    assert down["indexes"] == [i for i in head["indexes"] if i != RESOURCE_INDEX]
    left = set(inspect(make_engine(db_url)).get_table_names())
    assert "production_schedule_registered_seibans" not in left
    assert "production_schedule_seiban_lists" not in left
    command.upgrade(alembic_config(db_url), "head")
    assert _rows_table(db_url) == head


def test_record_hash_is_dropped_in_place_and_comes_back_on_downgrade(db_url: str) -> None:
    head = _rows_table(db_url)
    assert "record_hash" not in head["columns"]
    assert not any("record_hash" in c for c in head["checks"])
    command.downgrade(alembic_config(db_url), "0006")
    assert current_revision(db_url) == "0006"
    down = _rows_table(db_url)
    assert down["columns"] == [*head["columns"], "record_hash"]
    assert down["checks"] == sorted([*head["checks"], "ck_csv_dashboard_rows_record_hash_length"])
    # Dropped and added in place: both expression indexes (0004, 0006) are still there.
    assert down["indexes"] == head["indexes"]
    assert {"ix_csv_dashboard_rows_schedule_order", RESOURCE_INDEX} <= set(head["indexes"])
    command.upgrade(alembic_config(db_url), "head")
    assert _rows_table(db_url) == head


def test_record_hash_migration_goes_down_to_0004_and_up_again(db_url: str) -> None:
    head = _rows_table(db_url)
    command.downgrade(alembic_config(db_url), "0005")
    at_0005 = _rows_table(db_url)
    assert "record_hash" in at_0005["columns"]
    assert "ck_csv_dashboard_rows_record_hash_length" in at_0005["checks"]
    assert "ix_csv_dashboard_rows_schedule_order" in at_0005["indexes"]
    command.downgrade(alembic_config(db_url), "0004")
    assert current_revision(db_url) == "0004"
    down = _rows_table(db_url)
    assert down["columns"] == head["columns"]
    assert down["checks"] == head["checks"]
    # The schedule index of 0004 survives (SQLite's batch copy of the table would drop it);
    # 0006's resource index went with 0006.
    assert down["indexes"] == [i for i in head["indexes"] if i != RESOURCE_INDEX]
    command.upgrade(alembic_config(db_url), "head")
    assert _rows_table(db_url) == head


def _dashboards(url: str) -> dict[str, dict[str, Any]]:
    """slug → options and (where the column exists) retry_manual_runs, read without models."""
    engine = make_engine(url)
    try:
        table = sa.table("csv_dashboards", sa.column("slug"), sa.column("options", JSONDocument))
        if "retry_manual_runs" in {c["name"] for c in inspect(engine).get_columns(table.name)}:
            table.append_column(sa.column("retry_manual_runs", sa.Boolean()))
        with engine.connect() as conn:
            return {
                row.slug: {k: v for k, v in row._mapping.items() if k != "slug"}
                for row in conn.execute(sa.select(table))
            }
    finally:
        engine.dispose()


def test_operations_migration_moves_retry_manual_runs_between_options_and_column(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    try:
        with write_session(engine) as session:
            create_dashboard(session, "retried", preset="production-schedule")
            create_dashboard(session, "plain", preset="production-schedule")
            change_operations(get_dashboard(session, "retried"), {"retry_manual_runs": True})
            change_operations(get_dashboard(session, "plain"), {"retention_file_days": 30})
    finally:
        engine.dispose()
    head = _dashboards(db_url)

    command.downgrade(alembic_config(db_url), "0009")
    down = _dashboards(db_url)
    assert down["retried"]["options"] == {**head["retried"]["options"], "retry_manual_runs": True}
    assert down["plain"]["options"] == head["plain"]["options"]
    assert "retry_manual_runs" not in down["plain"]
    checks = [
        c["name"] for c in inspect(make_engine(db_url)).get_check_constraints("csv_dashboards")
    ]
    assert not any("retention" in (c or "") for c in checks)

    command.upgrade(alembic_config(db_url), "head")
    up = _dashboards(db_url)
    assert up["retried"] == head["retried"] and up["retried"]["retry_manual_runs"] is True
    assert "retry_manual_runs" not in up["retried"]["options"]
    assert up["plain"]["retry_manual_runs"] is False  # no option to move: the default
    checks = [
        c["name"] for c in inspect(make_engine(db_url)).get_check_constraints("csv_dashboards")
    ]
    assert {f"ck_csv_dashboards_{c}_range" for c in RETENTION_COLUMNS} <= set(checks)
