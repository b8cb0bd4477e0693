"""負荷 (``/load``, ``/capacities/{resource}``): the hours of each resource's open steps per week
of their due date against its weekly capacity, overloaded weeks named; capacities set by an
admin, refused when not a positive number of hours or for an unknown resource, and kept in
range by the database itself. Both engines."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard
from csvboard.schedule.load import week_of
from csvboard.schedule.models import ProductionScheduleResourceCapacity
from support import Api, schedule_line

from .test_api import BASE, SLUG, new_schedule, ok, problem, put
from .test_board_api import row_ids

LOAD = f"{BASE}/load"
CAPACITIES = f"/api/v1/dashboards/{SLUG}/capacities"


def lines() -> list[str]:
    return [
        schedule_line(1_000_000_001, "AA000001", "MH-1", 1, resource="M01", hours="99"),
        schedule_line(1_000_000_001, "AA000001", "P1", 10, resource="M01", hours="6.5"),
        schedule_line(1_000_000_001, "AA000001", "P2", 10, resource="M01", hours="4"),
        schedule_line(1_000_000_001, "AA000001", "P3", 10, resource="M01", hours="3"),
        schedule_line(
            1_000_000_001, "AA000001", "P4", 10, resource="M01", hours="2", progress="完了"
        ),
        schedule_line(1_000_000_002, "AB000002", "Q1", 10, resource="M02", hours="1.25"),
    ]


@pytest.fixture
def loaded(api: Api) -> CsvDashboard:
    return new_schedule(api, lines())


def monday(weeks_from_now: int) -> date:
    """A Monday in the factory's calendar (the default CSVBOARD_TIMEZONE), as the API's today."""
    return week_of(utcnow().astimezone(ZoneInfo("Asia/Tokyo")).date()) + timedelta(
        weeks=weeks_from_now
    )


def test_hours_by_week_against_capacity(api: Api, loaded: CsvDashboard) -> None:
    ids = row_ids(api)
    ok(
        put(
            api,
            ids[("AA000001", "P1", "10")],
            "due-date",
            {"due_date": str(monday(0) + timedelta(days=2))},
        )
    )
    ok(put(api, ids[("AA000001", "P2", "10")], "due-date", {"due_date": str(monday(0))}))
    ok(put(api, ids[("AA000001", "P3", "10")], "due-date", {"due_date": str(monday(-1))}))
    # a done step's hours do not count, whatever its due date
    ok(put(api, ids[("AA000001", "P4", "10")], "due-date", {"due_date": str(monday(1))}))
    ok(api.put(f"{CAPACITIES}/M01", json={"weekly_hours": 10}))
    doc = ok(api.get(LOAD, params={"weeks": 4}))
    assert doc["weeks"] == [str(monday(i)) for i in range(4)]
    m01 = next(r for r in doc["resources"] if r["resource_cd"] == "M01")
    assert m01["week_hours"] == [10.5, 0.0, 0.0, 0.0]  # the machine row is not a step
    assert m01["overdue_hours"] == 3.0 and m01["later_hours"] == 0.0
    assert m01["no_due_date_hours"] == 0.0
    assert m01["weekly_hours"] == 10.0 and m01["overloaded_weeks"] == [str(monday(0))]
    m02 = next(r for r in doc["resources"] if r["resource_cd"] == "M02")
    assert m02["no_due_date_hours"] == 1.25 and m02["weekly_hours"] is None
    assert m02["overloaded_weeks"] == []

    ok(api.put(f"{CAPACITIES}/M01", json={"weekly_hours": 12.5}))
    m01 = next(r for r in ok(api.get(LOAD))["resources"] if r["resource_cd"] == "M01")
    assert m01["overloaded_weeks"] == [] and len(m01["week_hours"]) == 8
    ok(api.put(f"{CAPACITIES}/M01", json={"weekly_hours": None}))
    m01 = next(r for r in ok(api.get(LOAD))["resources"] if r["resource_cd"] == "M01")
    assert m01["weekly_hours"] is None


def test_bad_capacities_change_nothing(api: Api, loaded: CsvDashboard) -> None:
    ok(api.put(f"{CAPACITIES}/M01", json={"weekly_hours": 40}))
    for bad in (0, -1, 16801):
        body = problem(api.put(f"{CAPACITIES}/M01", json={"weekly_hours": bad}), 400,
                       "INVALID_CAPACITY")  # fmt: skip
        assert "positive number of hours" in body["detail"]
    assert api.put(f"{CAPACITIES}/M01", json={"weekly_hours": "abc"}).status_code == 400
    problem(api.put(f"{CAPACITIES}/ZZ9", json={"weekly_hours": 8}), 400, "UNKNOWN_RESOURCE")
    for blank in ("%20", "%1E"):  # a name that normalises to nothing (found by Schemathesis)
        problem(api.put(f"{CAPACITIES}/{blank}", json={"weekly_hours": None}), 400,
                "UNKNOWN_RESOURCE")  # fmt: skip
    problem(api.get(LOAD, params={"weeks": 0}), 400, "INVALID_WEEKS")
    assert api.put(f"{CAPACITIES}/M01", json={"weekly_hours": 8}, as_="operator").status_code == 403
    m01 = next(r for r in ok(api.get(LOAD))["resources"] if r["resource_cd"] == "M01")
    assert m01["weekly_hours"] == 40.0


def test_the_database_keeps_capacities_in_range(api: Api, loaded: CsvDashboard) -> None:
    for bad in (Decimal(0), Decimal(-5), Decimal(16801)):
        with pytest.raises(IntegrityError), api.harness.write() as session:
            session.execute(
                insert(ProductionScheduleResourceCapacity).values(
                    csv_dashboard_id=loaded.id, resource_cd="M01", weekly_hours=bad
                )
            )
