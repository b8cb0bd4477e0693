"""Signage's snapshot (``/signage``): the registered 製番' progress with their first open
parts, each resource's first open steps in working order; one computation shared by every
screen within its lifetime (and 304 for a screen that already shows it). Both engines."""

from __future__ import annotations

import pytest

from csvboard.dashboards.models import CsvDashboard
from csvboard.schedule import signage
from support import Api

from .test_api import BASE, new_schedule, ok, put
from .test_board_api import get_list, lines, put_list, row_ids

SIGNAGE = f"{BASE}/signage"


@pytest.fixture
def loaded(api: Api) -> CsvDashboard:
    return new_schedule(api, lines())


def test_snapshot_is_shared_and_shows_progress_and_boards(
    api: Api,
    loaded: CsvDashboard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = signage.computations(loaded)
    first = api.get(SIGNAGE)
    doc = ok(first)
    # nothing registered: the schedule's first 製番
    assert [s["fseiban"] for s in doc["seibans"]] == ["AA000001", "AA000002", "AB000003"]
    aa = doc["seibans"][0]
    assert (aa["machine_name"], aa["total"], aa["completed"]) == ("組立機A", 4, 1)
    assert aa["open_parts"] and aa["more_open_parts"] == 0
    boards = {r["resource_cd"]: r for r in doc["resources"]}
    assert set(boards) == {"M01", "M02", "M03"}
    assert [s["fseiban"] for s in boards["M01"]["steps"]] == ["AA000001", "AB000003"]

    # ten screens within the snapshot's life: one computation, the same answer
    for _ in range(9):
        assert ok(api.get(SIGNAGE)) == doc
    assert signage.computations(loaded) == before + 1
    again = api.get(SIGNAGE, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304

    # once it has expired the next screen sees the change (a step ordered, 製番 registered)
    ids = row_ids(api)
    ok(put(api, ids[("AB000003", "P5", "10")], "order", {"resource_cd": "M01", "order_number": 1}))
    tag, _ = get_list(api)
    assert put_list(api, ["AB000003"], tag).status_code == 200
    monkeypatch.setattr(signage, "SNAPSHOT_SECONDS", 0.0)
    fresh = ok(api.get(SIGNAGE))
    assert signage.computations(loaded) == before + 2
    assert [s["fseiban"] for s in fresh["seibans"]] == ["AB000003"]
    m01 = next(r for r in fresh["resources"] if r["resource_cd"] == "M01")
    assert (m01["steps"][0]["fseiban"], m01["steps"][0]["order"]) == ("AB000003", 1)
