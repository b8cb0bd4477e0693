"""Signage: what the shop floor's TVs show, computed once per refresh and shared by every
screen (docs/contract.md §6).

A snapshot holds the progress of the registered 製番 (or, with none registered, the first
製番 of the schedule) — the % done and the names of the first open parts — and, per
resource, the first open steps in working order (the 順位ボード's column). It is computed at
most once per ``SNAPSHOT_SECONDS`` per dashboard and process: ten screens asking within that
time get the same snapshot, so they cost the database one computation, and a screen's refresh
never takes a kiosk's write lock (it only reads).

Concurrent requests for an expired snapshot wait for the one computing it (one lock per
dashboard) instead of each computing their own.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard
from csvboard.schedule.access import require_schedule
from csvboard.schedule.board import resources, scoped_summary
from csvboard.schedule.cards import first_seibans
from csvboard.schedule.order_board import order_column
from csvboard.schedule.seibans import registered

SNAPSHOT_SECONDS = 30.0  # screens refresh every 30–60 s; a snapshot is shared within this
SEIBANS_SHOWN = 20  # without registered 製番: the schedule's first 20
OPEN_PARTS_NAMED = 3  # "+残り N件" for the rest
STEPS_PER_RESOURCE = 8


@dataclass
class _Cached:
    lock: threading.Lock = field(default_factory=threading.Lock)
    at: float = 0.0
    snapshot: dict[str, Any] | None = None
    computed: int = 0  # how many times it was computed (the tests read it)


_cache: dict[tuple[int, object], _Cached] = {}
_cache_guard = threading.Lock()


def cached_snapshot(session: Session, dashboard: CsvDashboard) -> dict[str, Any]:
    """The dashboard's snapshot, computed again only once the last one is older than
    ``SNAPSHOT_SECONDS``."""
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    key = (id(session.get_bind().engine), dashboard.id)
    with _cache_guard:
        entry = _cache.setdefault(key, _Cached())
    with entry.lock:
        if entry.snapshot is None or time.monotonic() - entry.at >= SNAPSHOT_SECONDS:
            entry.snapshot = snapshot(session, dashboard)
            entry.at = time.monotonic()
            entry.computed += 1
        return entry.snapshot


def computations(dashboard: CsvDashboard) -> int:
    """How often the snapshot of ``dashboard`` was computed in this process (any database)."""
    return sum(c.computed for (_, board), c in _cache.items() if board == dashboard.id)


def snapshot(session: Session, dashboard: CsvDashboard) -> dict[str, Any]:
    """What every screen shows now (not cached: see :func:`cached_snapshot`)."""
    _, seibans = registered(session, dashboard)
    if not seibans:
        seibans = first_seibans(session, dashboard, SEIBANS_SHOWN)
    progress = []
    if seibans:
        summary = scoped_summary(session, dashboard, seiban_list=seibans)
        for s in summary["by_seiban"]:
            open_parts = s["incomplete_parts"]
            progress.append(
                {
                    "fseiban": s["fseiban"],
                    "machine_name": s["machine_name"],
                    "total": s["total"],
                    "completed": s["completed"],
                    "open_parts": open_parts[:OPEN_PARTS_NAMED],
                    "more_open_parts": max(len(open_parts) - OPEN_PARTS_NAMED, 0),
                }
            )
    boards = []
    for resource in resources(session, dashboard):
        column = order_column(session, dashboard, resource["resource_cd"], limit=STEPS_PER_RESOURCE)
        boards.append(
            {
                **resource,
                "steps": [_step(row) for row in column["items"]],
                "more": column["next_cursor"] is not None,
            }
        )
    return {
        "generated_at": utcnow().isoformat(),
        "seibans": progress,
        "resources": boards,
    }


def _step(row: dict[str, Any]) -> dict[str, Any]:
    d = row["row_data"]
    return {
        "fseiban": d.get("FSEIBAN", ""),
        "fhincd": d.get("FHINCD", ""),
        "fhinmei": d.get("FHINMEI", ""),
        "fkojun": d.get("FKOJUN", ""),
        "order": row["order"]["order_number"] if row.get("order") else None,
        "due_date": row.get("due_date"),
    }


__all__ = ["SNAPSHOT_SECONDS", "cached_snapshot", "computations", "snapshot"]
