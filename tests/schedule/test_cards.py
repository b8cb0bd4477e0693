"""進捗一覧 (``/cards``): one card per 製番 with its machine, nearest open due date, counts and
parts with their steps in 工順 order, on both engines; paging, scope, search, the limits and
the refusals (nothing stored changes)."""

from __future__ import annotations

from typing import Any

import pytest

from csvboard.dashboards.models import CsvDashboard
from csvboard.schedule import cards as cards_module
from support import Api, schedule_line

from .test_api import BASE, new_schedule, ok, problem, put
from .test_board_api import row_ids

CARDS = f"{BASE}/cards"


def lines() -> list[str]:
    """AA000001: a machine row, part P1 (M01 → M02) and P2 (M01 done by the source → M03);
    AA000002: P1 on M02 → M03; AB000003: P5 on M01."""
    return [
        schedule_line(1_000_000_001, "AA000001", "MH-1", 1, resource="M01", name="組立機A"),
        schedule_line(1_000_000_001, "AA000001", "P1", 20, resource="M02", name="軸"),
        schedule_line(1_000_000_001, "AA000001", "P1", 10, resource="M01", name="軸"),
        schedule_line(
            1_000_000_001, "AA000001", "P2", 10, resource="M01", progress="完了", name="蓋"
        ),
        schedule_line(1_000_000_001, "AA000001", "P2", 20, resource="M03", name="蓋"),
        schedule_line(1_000_000_002, "AA000002", "P1", 10, resource="M02"),
        schedule_line(1_000_000_002, "AA000002", "P1", 20, resource="M03"),
        schedule_line(1_000_000_003, "AB000003", "P5", 10, resource="M01"),
    ]


@pytest.fixture
def loaded(api: Api) -> CsvDashboard:
    return new_schedule(api, lines())


def chips(card: dict[str, Any]) -> list[tuple[str, int, str, bool]]:
    return [
        (part["fhincd"], step["fkojun"], step["fsigencd"], step["completed"])
        for part in card["parts"]
        for step in part["steps"]
    ]


def test_a_card_per_seiban_with_its_parts_in_process_order(api: Api, loaded: CsvDashboard) -> None:
    page = ok(api.get(CARDS))
    assert [c["fseiban"] for c in page["items"]] == ["AA000001", "AA000002", "AB000003"]
    first = page["items"][0]
    assert first["machine_name"] == "組立機A"
    assert (first["total"], first["completed"]) == (4, 1)  # the machine row is not a step
    assert chips(first) == [
        ("P1", 10, "M01", False), ("P1", 20, "M02", False),
        ("P2", 10, "M01", True), ("P2", 20, "M03", False),
    ]  # fmt: skip
    assert [(p["fhinmei"], p["completed"]) for p in first["parts"]] == [
        ("軸", False),
        ("蓋", False),
    ]
    assert first["due_date"] is None and first["more_parts"] == 0
    assert page["next_cursor"] is None


def test_a_step_done_and_a_due_date_set_show_on_the_card(api: Api, loaded: CsvDashboard) -> None:
    ids = row_ids(api)
    ok(put(api, ids[("AA000001", "P1", "10")], "completion", {"intent": "complete"}))
    ok(put(api, ids[("AA000001", "P1", "20")], "due-date", {"due_date": "2026-12-24"}))
    ok(put(api, ids[("AA000001", "P2", "20")], "due-date", {"due_date": "2026-12-20"}))
    # a due date on a step that is done does not make the 製番 due
    ok(put(api, ids[("AA000001", "P1", "10")], "due-date", {"due_date": "2026-12-01"}))
    card = ok(api.get(CARDS, params={"seiban": "AA000001"}))["items"][0]
    assert (card["total"], card["completed"]) == (4, 2)
    assert card["due_date"] == "2026-12-20"
    assert chips(card)[0] == ("P1", 10, "M01", True)
    step_id = card["parts"][0]["steps"][0]["id"]
    assert step_id == ids[("AA000001", "P1", "10")]  # a chip opens that very step


def test_scope_search_and_paging(api: Api, loaded: CsvDashboard) -> None:
    scoped = ok(api.get(CARDS, params=[("seiban", "AB000003"), ("seiban", "AA000002")]))
    assert [c["fseiban"] for c in scoped["items"]] == ["AA000002", "AB000003"]
    found = ok(api.get(CARDS, params={"q": "AB000003"}))
    assert [c["fseiban"] for c in found["items"]] == ["AB000003"]
    by_name = ok(api.get(CARDS, params={"q": "蓋"}))
    assert [c["fseiban"] for c in by_name["items"]] == ["AA000001"]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = ok(api.get(CARDS, params=params))
        seen += [c["fseiban"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["AA000001", "AA000002", "AB000003"]


def test_a_card_lists_a_bounded_number_of_parts(
    api: Api, loaded: CsvDashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cards_module, "MAX_PARTS_PER_CARD", 1)
    card = ok(api.get(CARDS, params={"seiban": "AA000001"}))["items"][0]
    assert [p["fhincd"] for p in card["parts"]] == ["P1"]
    assert card["more_parts"] == 1
    assert (card["total"], card["completed"]) == (4, 1)  # counted all the same


def test_refusals(api: Api, loaded: CsvDashboard) -> None:
    before = ok(api.get(CARDS))
    body = problem(api.get(CARDS, params={"seiban": "ZZ999999"}), 400, "UNKNOWN_SEIBAN")
    assert "ZZ999999" in body["detail"]
    problem(api.get(CARDS, params={"limit": 0}), 400, "INVALID_LIMIT")
    problem(api.get(CARDS, params={"limit": cards_module.MAX_CARDS + 1}), 400, "INVALID_LIMIT")
    problem(api.get(CARDS, params={"cursor": "bm90LWEtY3Vyc29y"}), 400, "INVALID_CURSOR")
    problem(api.get(CARDS, params={"cursor": "no/such!"}), 400, "INVALID_CURSOR")  # any flaw
    many = [("seiban", f"S{i:07d}") for i in range(cards_module.MAX_SEIBANS + 1)]
    problem(api.get(CARDS, params=many), 400, "SCOPE_TOO_LARGE")
    problem(api.get("/api/v1/schedules/nope/cards"), 404, "DASHBOARD_NOT_FOUND")
    assert ok(api.get(CARDS)) == before


def test_a_generic_dashboard_has_no_cards(api: Api, loaded: CsvDashboard) -> None:
    created = api.post(
        "/api/v1/dashboards",
        json={"slug": "plain", "columns": [{"name": "k"}], "key_columns": ["k"]},
    )
    assert created.status_code == 201, created.text
    problem(api.get("/api/v1/schedules/plain/cards"), 400, "NOT_A_SCHEDULE")


def test_a_card_of_many_steps_reads_only_its_first_orders(
    api: Api, loaded: CsvDashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that stops inside an order leaves that order's parts out (their later steps
    may be missing) and counts them; the totals still count every step."""
    monkeypatch.setattr(cards_module, "MAX_STEPS_READ", 3)
    card = ok(api.get(CARDS, params={"seiban": "AA000001"}))["items"][0]
    assert card["parts"] == [] and card["more_parts"] == 2
    assert (card["total"], card["completed"]) == (4, 1)
    monkeypatch.setattr(cards_module, "MAX_STEPS_READ", 4)
    card = ok(api.get(CARDS, params={"seiban": "AA000001"}))["items"][0]
    assert [p["fhincd"] for p in card["parts"]] == ["P1", "P2"] and card["more_parts"] == 0
