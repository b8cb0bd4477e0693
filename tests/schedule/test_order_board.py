"""順位ボード (``/order-board``): a resource's open steps with a machining order first (by
number), then those with a due date (earliest first, then kiosk order), then the rest in kiosk
order; paged across the three parts without a step twice or missing; a completion takes a step
off the column and closes the gap in the order; the refusals change nothing. Both engines."""

from __future__ import annotations

from typing import Any

import pytest

from csvboard.dashboards.models import CsvDashboard
from support import Api, schedule_line

from .test_api import BASE, new_schedule, ok, problem, put
from .test_board_api import row_ids

COLUMN = f"{BASE}/order-board"


def lines() -> list[str]:
    """Eight steps on M01 (two 製番), one on M02, and a machine row."""
    return [
        schedule_line(1_000_000_001, "AA000001", "MH-1", 1, resource="M01", name="組立機A"),
        *(
            schedule_line(1_000_000_001, "AA000001", f"P{i}", 10, resource="M01")
            for i in range(1, 6)
        ),
        schedule_line(1_000_000_002, "AB000002", "Q1", 10, resource="M01"),
        schedule_line(1_000_000_002, "AB000002", "Q1", 20, resource="M01"),
        schedule_line(1_000_000_002, "AB000002", "Q2", 10, resource="M01", progress="完了"),
        schedule_line(1_000_000_002, "AB000002", "Q3", 10, resource="M02"),
    ]


@pytest.fixture
def loaded(api: Api) -> CsvDashboard:
    return new_schedule(api, lines())


def key(row: dict[str, Any]) -> tuple[str, str, str]:
    d = row["row_data"]
    return d["FSEIBAN"], d["FHINCD"], d["FKOJUN"]


def column(api: Api, limit: int = 30, **params: Any) -> list[tuple[str, str, str]]:
    """Every page of the column, in order; no step twice."""
    seen: list[tuple[str, str, str]] = []
    cursor = None
    while True:
        query: dict[str, Any] = {"resource": "M01", "limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        page = ok(api.get(COLUMN, params=query))
        seen += [key(r) for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    return seen


def test_order_then_due_date_then_kiosk_order(api: Api, loaded: CsvDashboard) -> None:
    ids = row_ids(api)
    # without any order or due date: the kiosk order, open steps only (Q2 is done)
    plain = [("AA000001", f"P{i}", "10") for i in range(1, 6)] + [
        ("AB000002", "Q1", "10"),
        ("AB000002", "Q1", "20"),
    ]
    assert column(api) == plain

    ok(put(api, ids[("AB000002", "Q1", "20")], "order", {"resource_cd": "M01", "order_number": 1}))
    ok(put(api, ids[("AA000001", "P5", "10")], "order", {"resource_cd": "M01", "order_number": 2}))
    ok(put(api, ids[("AA000001", "P4", "10")], "due-date", {"due_date": "2026-12-20"}))
    ok(put(api, ids[("AA000001", "P2", "10")], "due-date", {"due_date": "2026-12-10"}))
    ok(put(api, ids[("AB000002", "Q1", "10")], "due-date", {"due_date": "2026-12-10"}))
    # an ordered step's due date does not move it out of the order part
    ok(put(api, ids[("AA000001", "P5", "10")], "due-date", {"due_date": "2026-12-01"}))
    expected = [
        ("AB000002", "Q1", "20"), ("AA000001", "P5", "10"),  # order 1, 2
        ("AA000001", "P2", "10"), ("AB000002", "Q1", "10"),  # 12-10 (kiosk order on a tie)
        ("AA000001", "P4", "10"),  # 12-20
        ("AA000001", "P1", "10"), ("AA000001", "P3", "10"),  # the rest
    ]  # fmt: skip
    assert column(api) == expected
    for limit in (1, 2, 3, 4, 6):  # a page boundary inside every part, and between them
        assert column(api, limit=limit) == expected, limit
    everything = column(api, completion="all")
    assert ("AB000002", "Q2", "10") in everything and len(everything) == 8
    assert column(api, completion="complete") == [("AB000002", "Q2", "10")]

    # completing the first in order takes it off the column and closes the gap
    ok(put(api, ids[("AB000002", "Q1", "20")], "completion", {"intent": "complete"}))
    page = ok(api.get(COLUMN, params={"resource": "M01", "limit": 2}))
    assert [key(r) for r in page["items"]] == [("AA000001", "P5", "10"), ("AA000001", "P2", "10")]
    assert page["items"][0]["order"]["order_number"] == 1


def test_refusals_change_nothing(api: Api, loaded: CsvDashboard) -> None:
    before = column(api)
    problem(api.get(COLUMN, params={"resource": "ZZ9"}), 400, "UNKNOWN_RESOURCE")
    problem(api.get(COLUMN, params={"resource": " "}), 400, "UNKNOWN_RESOURCE")
    problem(api.get(COLUMN, params={"resource": "M01", "limit": 0}), 400, "INVALID_LIMIT")
    problem(api.get(COLUMN, params={"resource": "M01", "limit": 201}), 400, "INVALID_LIMIT")
    problem(
        api.get(COLUMN, params={"resource": "M01", "cursor": "bm90LWEtY3Vyc29y"}),
        400,
        "INVALID_CURSOR",
    )
    problem(api.get("/api/v1/schedules/nope/order-board", params={"resource": "M01"}), 404,
            "DASHBOARD_NOT_FOUND")  # fmt: skip
    assert api.get(COLUMN).status_code == 400  # the resource is required
    assert column(api) == before
