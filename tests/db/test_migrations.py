"""Migrations 0005–0007 (record hashes in and out, kiosk scope) up and down, on SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import Engine, inspect

from csvboard.db.engine import make_engine
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
