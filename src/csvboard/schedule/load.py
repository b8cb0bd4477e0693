"""負荷: the hours each resource's open steps require, per week by their due date, against the
resource's weekly capacity (docs/contract.md §6). For planners filling a week.

A step's hours are its ``FSIGENSHOYORYO``; its week is the week (Monday first) of the due date
a person set on it. Steps due before the first week shown are overdue, after the last one
later; steps without a due date are a bar of their own. Only active, open steps count
(machine rows are not steps).

Capacities are set per resource by an admin (``production_schedule_resource_capacities``);
a week whose hours exceed its resource's capacity is overloaded.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Numeric, cast, delete, func, select
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.db import upsert
from csvboard.errors import InvalidRequest
from csvboard.schedule.access import require_schedule
from csvboard.schedule.board import one_resource, resources
from csvboard.schedule.commands import actor
from csvboard.schedule.expressions import Fields, fields
from csvboard.schedule.models import (
    MAX_WEEKLY_HOURS,
    ProductionScheduleResourceCapacity,
    ProductionScheduleRowDueDate,
    completed_exists,
)
from csvboard.schedule.progress import active_steps, effective
from csvboard.schedule.queries import has_record

DEFAULT_WEEKS = 8
MAX_WEEKS = 26

_R = CsvDashboardRow
_Due = ProductionScheduleRowDueDate
_Capacity = ProductionScheduleResourceCapacity


def week_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def resource_load(
    session: Session, dashboard: CsvDashboard, *, today: date, weeks: int = DEFAULT_WEEKS
) -> dict[str, Any]:
    """Hours by resource and week from ``today``'s week on, with capacities and overloads.

    400 ``INVALID_WEEKS``.
    """
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidRequest("INVALID_WEEKS", f"weeks must be 1–{MAX_WEEKS}, not {weeks}")
    f = fields(session)
    first = week_of(today)
    starts = [first + timedelta(weeks=i) for i in range(weeks)]
    end = starts[-1] + timedelta(weeks=1)
    per: dict[str, dict[str, Any]] = {}

    def entry(code: str) -> dict[str, Any]:
        return per.setdefault(
            code,
            {"overdue": Decimal(0), "weeks": [Decimal(0)] * weeks, "later": Decimal(0),
             "no_due": Decimal(0)},
        )  # fmt: skip

    hours = _hours(f)
    open_steps = ~completed_exists(_R.id)
    for code, due, total in session.execute(
        select(f.resource, _Due.due_date, func.sum(hours))
        .select_from(_Due)
        .join(_R, _R.id == _Due.csv_dashboard_row_id)
        .where(_Due.csv_dashboard_id == dashboard.id, f.active(), ~f.machine_row(), open_steps)
        .group_by(f.resource, _Due.due_date)
    ):
        e = entry(code)
        value = Decimal(str(total or 0))
        if due < first:
            e["overdue"] += value
        elif due >= end:
            e["later"] += value
        else:
            e["weeks"][(due - first).days // 7] += value
    for code, total in session.execute(
        active_steps(f, dashboard, f.resource, func.sum(hours))
        .where(~has_record(_Due), ~effective())  # active_steps joins the completion records
        .group_by(f.resource)
    ):
        entry(code)["no_due"] += Decimal(str(total or 0))
    capacities = {
        c.resource_cd: c.weekly_hours
        for c in session.scalars(
            select(_Capacity).where(_Capacity.csv_dashboard_id == dashboard.id)
        )
    }
    items = []
    for resource in resources(session, dashboard):
        code = resource["resource_cd"]
        e = entry(code)
        capacity = capacities.get(code)
        items.append(
            {
                **resource,
                "weekly_hours": _number(capacity),
                "overdue_hours": _number(e["overdue"]),
                "week_hours": [_number(h) for h in e["weeks"]],
                "later_hours": _number(e["later"]),
                "no_due_date_hours": _number(e["no_due"]),
                "overloaded_weeks": [
                    starts[i].isoformat()
                    for i, h in enumerate(e["weeks"])
                    if capacity is not None and h > capacity
                ],
            }
        )
    return {"weeks": [s.isoformat() for s in starts], "resources": items}


def set_capacity(
    session: Session,
    dashboard: CsvDashboard,
    resource: str,
    weekly_hours: Any,
    *,
    by: str | None,
) -> dict[str, Any]:
    """Set (or with ``None`` remove) a resource's weekly capacity. 400 ``INVALID_CAPACITY``
    (not a positive number of hours up to ``MAX_WEEKLY_HOURS``), ``UNKNOWN_RESOURCE``."""
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    hours = _hours_given(weekly_hours)
    code = one_resource(session, dashboard, resource)
    if hours is None:
        session.execute(
            delete(_Capacity).where(
                _Capacity.csv_dashboard_id == dashboard.id, _Capacity.resource_cd == code
            )
        )
        return {"resource_cd": code, "weekly_hours": None}
    values = {"weekly_hours": hours, "updated_by": actor(by), "updated_at": utcnow()}
    statement = upsert.insert(session, _Capacity).values(
        csv_dashboard_id=dashboard.id, resource_cd=code, **values
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["csv_dashboard_id", "resource_cd"], set_=values
        )
    )
    return {"resource_cd": code, "weekly_hours": _number(hours)}


def _hours_given(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _invalid(value)
    try:
        hours = Decimal(str(value).strip())
    except InvalidOperation:
        raise _invalid(value) from None
    if not hours.is_finite() or not 0 < hours <= MAX_WEEKLY_HOURS:
        raise _invalid(value)
    return hours.quantize(Decimal("0.01"))


def _invalid(value: Any) -> InvalidRequest:
    return InvalidRequest(
        "INVALID_CAPACITY",
        f"the weekly capacity must be a positive number of hours up to {MAX_WEEKLY_HOURS},"
        f" not {value!r}",
    )


def _hours(f: Fields) -> Any:
    """A step's FSIGENSHOYORYO as a number (validated as a decimal on ingestion; empty: 0)."""
    return cast(func.coalesce(func.nullif(f.raw("FSIGENSHOYORYO"), ""), "0"), Numeric(12, 4))


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


__all__ = ["DEFAULT_WEEKS", "MAX_WEEKS", "resource_load", "set_capacity", "week_of"]
