"""Progress of a production schedule: how many active steps there are and how many are
effectively complete, by resource and by 製番 (docs/contract.md §5, §6).

Set-based: a few GROUP BY queries over the dashboard's active steps, never the rows
themselves; ``board.scoped_summary`` counts a kiosk's scope with the same pieces.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.schedule.access import require_schedule
from csvboard.schedule.composed import machine_names
from csvboard.schedule.expressions import Fields, fields
from csvboard.schedule.models import (
    ProductionScheduleExternalCompletion,
    ProductionScheduleProgress,
)

_Progress = ProductionScheduleProgress
_External = ProductionScheduleExternalCompletion
_R = CsvDashboardRow


def effective() -> ColumnElement[bool]:
    """Effective completion in SQL: the worker's mark OR the source's (missing = not done)."""
    return or_(
        func.coalesce(_Progress.is_completed, false()) == True,  # noqa: E712
        func.coalesce(_External.is_completed, false()) == True,  # noqa: E712
    )


def active_steps(f: Fields, dashboard: CsvDashboard, *columns: Any) -> Select[Any]:
    """``columns`` over the dashboard's active steps (machine rows excluded), each with its
    two completion records; the joins are restricted to the dashboard so the
    (csv_dashboard_id, is_completed) indexes serve them. What every progress count reads."""
    return (
        select(*columns)
        .select_from(_R)
        .outerjoin(
            _Progress,
            and_(
                _Progress.csv_dashboard_row_id == _R.id, _Progress.csv_dashboard_id == dashboard.id
            ),
        )
        .outerjoin(
            _External,
            and_(
                _External.csv_dashboard_row_id == _R.id, _External.csv_dashboard_id == dashboard.id
            ),
        )
        .where(_R.csv_dashboard_id == dashboard.id, f.active(), ~f.machine_row())
    )


def done_count() -> ColumnElement[int]:
    """How many of the counted steps are effectively complete."""
    return func.coalesce(func.sum(case((effective(), 1), else_=0)), 0)


def incomplete_parts(
    session: Session, f: Fields, dashboard: CsvDashboard, *where: ColumnElement[bool]
) -> dict[str, list[str]]:
    """品名 of the parts with incomplete active steps, per 製番, in kiosk order of the parts."""
    parts: dict[str, list[str]] = {}
    for seiban, hinmei in session.execute(
        active_steps(f, dashboard, f.seiban, f.hinmei)
        .where(~effective(), *where)
        .group_by(f.seiban, f.hinmei)
        .order_by(f.seiban, func.min(f.product_no), func.min(f.hincd), f.hinmei)
    ):
        parts.setdefault(seiban, []).append(hinmei)
    return parts


def progress_summary(session: Session, dashboard: CsvDashboard) -> dict[str, Any]:
    """Totals by resource and by 製番 over active steps, with effective completion.

    Set-based: a few GROUP BY queries; the progress join is restricted to the dashboard so the
    (csv_dashboard_id, is_completed) index serves it. Only the names of incomplete parts come
    back per 製番, never the rows.
    """
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    f = fields(session)
    done = done_count()
    total = func.count()
    base = functools.partial(active_steps, f, dashboard)
    by_resource = [
        {
            "resource_cd": resource_cd,
            "resource_name": resource_name or None,
            "total": int(n),
            "completed": int(c),
        }
        for resource_cd, resource_name, n, c in session.execute(
            base(f.resource, func.max(f.resource_name), total, done)
            .group_by(f.resource)
            .order_by(f.resource)
        )
    ]
    seiban_rows = list(
        session.execute(base(f.seiban, total, done).group_by(f.seiban).order_by(f.seiban))
    )
    incomplete = incomplete_parts(session, f, dashboard)
    names = machine_names(session, f, dashboard.id, {r[0] for r in seiban_rows})
    by_seiban = [
        {
            "fseiban": seiban,
            "machine_name": names.get(seiban),
            "total": int(n),
            "completed": int(c),
            "incomplete_parts": incomplete.get(seiban, []),
        }
        for seiban, n, c in seiban_rows
    ]
    return {
        "total": sum(r["total"] for r in by_resource),
        "completed": sum(r["completed"] for r in by_resource),
        "by_resource": by_resource,
        "by_seiban": by_seiban,
    }


__all__ = ["active_steps", "done_count", "effective", "incomplete_parts", "progress_summary"]
