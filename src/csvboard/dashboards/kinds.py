"""What a domain built on a kind of dashboard adds to its rows, registered by that domain.

The dashboards domain sits below the domains built on it (README, "Layers") and imports none
of them (an import-linter contract in pyproject.toml). Two generic operations still need to
know what such a domain keeps beside a row: the rows list shows a production-schedule row's
effective completion, and a purge reports the records that go with the rows it deletes (the
database deletes them: ON DELETE CASCADE). The production schedule registers both when its
tables are defined (``csvboard.schedule.models``), the moment SQLAlchemy learns of them too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression

from csvboard.dashboards.vocabulary import DashboardKind


@dataclass(frozen=True)
class KindExtension:
    """What one kind of dashboard keeps beside its rows."""

    #: Mapped classes keyed 1:1 by ``csv_dashboard_row_id`` and deleted with the row.
    row_tables: tuple[Any, ...]
    #: A row's effective completion, given the row id column to correlate with.
    completed: Callable[[SQLColumnExpression[uuid.UUID]], ColumnElement[bool]]


_registered: dict[DashboardKind, KindExtension] = {}


def register(kind: DashboardKind, extension: KindExtension) -> None:
    """Called once by the domain that owns the kind; registering it again replaces it."""
    _registered[kind] = extension


def extension(kind: str) -> KindExtension | None:
    """The kind's extension; None for a kind nothing extends (``generic``).

    A production schedule without its extension means ``csvboard.schedule.models`` was never
    imported: an error, not a silently incomplete answer.
    """
    found = _registered.get(DashboardKind(kind))
    if found is None and kind == DashboardKind.PRODUCTION_SCHEDULE:
        raise RuntimeError(
            "the production schedule's tables are not loaded (import csvboard.schedule.models)"
        )
    return found


def row_tables() -> tuple[Any, ...]:
    """Every registered table whose records go with a dashboard row, in registration order."""
    return tuple(table for ext in _registered.values() for table in ext.row_tables)


__all__ = ["KindExtension", "extension", "register", "row_tables"]
