"""One switch between the two dialects' INSERT … ON CONFLICT constructs."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    """``INSERT INTO table`` in the session's dialect, with its ``on_conflict_do_update`` /
    ``on_conflict_do_nothing`` and ``excluded`` (PostgreSQL and SQLite spell them alike)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
