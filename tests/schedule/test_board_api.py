"""The kiosk board's HTTP routes, through the real app on both engines.

- ``/seibans``: the registered 製番 with optimistic concurrency (ETag ``"seibans-N"``, If-Match
  required, 412 on a stale version, exactly one of two racing edits wins) and its validation;
  nothing stored changes on any refusal.
- The database's own CHECK and UNIQUE constraints on the registered 製番, written around the
  service.
- ``/lookup`` (a board's poll, with ETag / If-None-Match), and the scope of ``/rows``,
  ``/summary`` and ``/resources`` with their 400s.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from csvboard.dashboards.models import CsvDashboard
from csvboard.schedule.models import (
    MAX_REGISTERED_SEIBANS,
    ProductionScheduleRegisteredSeiban,
    ProductionScheduleSeibanList,
)
from support import Api, Harness, schedule_line

from .test_api import BASE, all_rows, ingest, new_schedule, ok, problem, put

SEIBANS_URL = f"{BASE}/seibans"


def lines() -> list[str]:
    """Three 製番 on M01–M03; AA000001 has a machine row and a step the source completed."""
    return [
        schedule_line(1_000_000_001, "AA000001", "MH-1", 1, resource="M01", name="組立機A"),
        schedule_line(1_000_000_001, "AA000001", "P1", 10, resource="M01", name="軸"),
        schedule_line(1_000_000_001, "AA000001", "P1", 20, resource="M02", name="軸"),
        schedule_line(1_000_000_001, "AA000001", "P2", 10, resource="M01", progress="完了"),
        schedule_line(1_000_000_001, "AA000001", "P2", 20, resource="M03", name="蓋"),
        schedule_line(1_000_000_002, "AA000002", "P1", 10, resource="M02"),
        schedule_line(1_000_000_002, "AA000002", "P1", 20, resource="M03"),
        schedule_line(1_000_000_003, "AB000003", "P5", 10, resource="M01"),
    ]


@pytest.fixture
def loaded(api: Api) -> CsvDashboard:
    return new_schedule(api, lines())


def row_ids(api: Api, **params: Any) -> dict[tuple[str, str, str], str]:
    """(製番, 品番, 工順) → id of the active steps."""
    return {
        (r["row_data"]["FSEIBAN"], r["row_data"]["FHINCD"], r["row_data"]["FKOJUN"]): r["id"]
        for r in all_rows(api, **params)
    }


# --- the registered 製番 -----------------------------------------------------------------------


def get_list(api: Api, as_: str = "viewer") -> tuple[str, dict[str, Any]]:
    response = api.get(SEIBANS_URL, as_=as_)
    doc = ok(response)
    return response.headers["ETag"], doc


def put_list(
    api: Api, seibans: Iterable[Any], if_match: str | None, *, as_: str = "operator"
) -> Any:
    headers = {} if if_match is None else {"If-Match": if_match}
    return api.put(SEIBANS_URL, json={"seibans": list(seibans)}, headers=headers, as_=as_)


def stored(api: Api, dashboard: CsvDashboard) -> tuple[Any, ...]:
    """The list's tables as stored: (version, updated_by, updated_at), [(position, 製番)]."""
    with api.harness.read() as session:
        head = session.execute(
            select(
                ProductionScheduleSeibanList.version,
                ProductionScheduleSeibanList.updated_by,
                ProductionScheduleSeibanList.updated_at,
            ).where(ProductionScheduleSeibanList.csv_dashboard_id == dashboard.id)
        ).one_or_none()
        items = session.execute(
            select(
                ProductionScheduleRegisteredSeiban.position,
                ProductionScheduleRegisteredSeiban.fseiban,
            )
            .where(ProductionScheduleRegisteredSeiban.csv_dashboard_id == dashboard.id)
            .order_by(ProductionScheduleRegisteredSeiban.position)
        ).all()
    return (None if head is None else tuple(head), [tuple(i) for i in items])


def test_the_list_starts_empty_at_version_0(api: Api, loaded: CsvDashboard) -> None:
    etag, doc = get_list(api)
    assert etag == '"seibans-0"'
    assert doc == {"version": 0, "limit": MAX_REGISTERED_SEIBANS, "items": []}
    assert stored(api, loaded) == (None, [])
    problem(api.get(SEIBANS_URL, as_=None), 401, "UNAUTHENTICATED")
    problem(api.get("/api/v1/schedules/nope/seibans", as_="viewer"), 404, "DASHBOARD_NOT_FOUND")


def test_an_edit_must_name_the_version_it_read(api: Api, loaded: CsvDashboard) -> None:
    wanted = ["AA000002", "AA000001"]
    problem(put_list(api, wanted, None), 428, "IF_MATCH_REQUIRED")
    problem(put_list(api, wanted, "  "), 428, "IF_MATCH_REQUIRED")
    for bad in ("seibans-0", '"seibans-x"', '"seibans-"', "*", '"other-0"', '"seibans-0", "x"'):
        problem(put_list(api, wanted, bad), 400, "INVALID_IF_MATCH")
    assert stored(api, loaded) == (None, [])

    response = put_list(api, wanted, '"seibans-0"')
    doc = ok(response)
    assert response.headers["ETag"] == '"seibans-1"'
    assert doc == {
        "version": 1,
        "limit": MAX_REGISTERED_SEIBANS,
        "items": [  # in the order given; progress of the active steps, machine rows excluded
            {"fseiban": "AA000002", "machine_name": None, "total": 2, "completed": 0},
            {"fseiban": "AA000001", "machine_name": "組立機A", "total": 4, "completed": 1},
        ],
    }
    etag, read = get_list(api)
    assert (etag, read) == ('"seibans-1"', doc)
    (version, by, _), items = stored(api, loaded)
    assert (version, by, items) == (1, "token:test-operator", [(1, "AA000002"), (2, "AA000001")])

    # The version read before that edit is stale now: 412, and the list is as it was.
    before = stored(api, loaded)
    body = problem(put_list(api, ["AB000003"], '"seibans-0"'), 412, "SEIBAN_LIST_CHANGED")
    assert "version 1" in body["detail"]
    problem(put_list(api, ["AB000003"], '"seibans-7"'), 412, "SEIBAN_LIST_CHANGED")
    assert stored(api, loaded) == before
    assert get_list(api) == ('"seibans-1"', doc)

    # With the current version the edit goes through (a weak ETag names it as well).
    response = put_list(api, ["AB000003"], 'W/"seibans-1"')
    assert ok(response)["version"] == 2 and response.headers["ETag"] == '"seibans-2"'
    emptied = put_list(api, [], '"seibans-2"')
    assert ok(emptied) == {"version": 3, "limit": MAX_REGISTERED_SEIBANS, "items": []}
    assert stored(api, loaded)[1] == []


def test_seibans_are_normalised_and_validated(api: Api, loaded: CsvDashboard) -> None:
    ok(put_list(api, ["AA000001"], '"seibans-0"'))
    before = stored(api, loaded)
    refusals: list[tuple[list[Any], int, str]] = [
        (["AA00001"], 400, "INVALID_SEIBAN"),  # 7 characters
        (["AA000001", "AA-00001"], 400, "INVALID_SEIBAN"),
        (["AA0000012"], 400, "INVALID_SEIBAN"),
        ([""], 400, "INVALID_SEIBAN"),
        (["AA00000あ"], 400, "INVALID_SEIBAN"),
        (["AA000001", "AA000002", "AA000001"], 400, "DUPLICATE_SEIBAN"),
        (["AA000001", " ＡＡ０００００１ "], 400, "DUPLICATE_SEIBAN"),  # the same after NFKC
        ([f"S{i:07d}" for i in range(MAX_REGISTERED_SEIBANS + 1)], 400, "TOO_MANY_SEIBANS"),
        (["AA000001"] * (MAX_REGISTERED_SEIBANS + 1), 400, "TOO_MANY_SEIBANS"),
        (["AA000001", "ZZ999999"], 400, "UNKNOWN_SEIBAN"),
        (["aa000001"], 400, "UNKNOWN_SEIBAN"),  # 製番 are matched exactly
        ([12345678], 400, "VALIDATION_FAILED"),
    ]
    for seibans, status, code in refusals:
        body = problem(put_list(api, seibans, '"seibans-1"'), status, code)
        assert stored(api, loaded) == before, (seibans, body)
    problem(put_list(api, ["AA000001"], '"seibans-1"', as_="viewer"), 403, "FORBIDDEN")
    problem(put_list(api, ["AA000001"], '"seibans-1"', as_=None), 401, "UNAUTHENTICATED")
    bad_body = api.put(
        SEIBANS_URL, json={"seibans": [], "x": 1}, headers={"If-Match": '"seibans-1"'}
    )
    problem(bad_body, 400, "VALIDATION_FAILED")
    assert stored(api, loaded) == before
    assert get_list(api)[0] == '"seibans-1"'

    # NFKC and trimmed, then checked: a full-width 製番 typed on a kiosk is the 製番.
    doc = ok(put_list(api, [" ＡＢ０００００３", "AA000002 "], '"seibans-1"'))
    assert [i["fseiban"] for i in doc["items"]] == ["AB000003", "AA000002"]
    # The whole list at its limit is accepted.
    ingest(
        api,
        [*lines(), *(schedule_line(1_000_000_009, f"S{i:07d}", "P1", 10) for i in range(100))],
    )
    full = [f"S{i:07d}" for i in range(MAX_REGISTERED_SEIBANS)]
    doc = ok(put_list(api, full, '"seibans-2"'))
    assert [i["fseiban"] for i in doc["items"]] == full
    assert [p for p, _ in stored(api, loaded)[1]] == list(range(1, MAX_REGISTERED_SEIBANS + 1))


def test_a_retired_seiban_stays_registered(api: Api, loaded: CsvDashboard) -> None:
    """Progress counts active steps only; a list naming a 製番 whose steps all retired since
    can still be saved again (reordered), so a retirement never blocks an edit."""
    ok(put_list(api, ["AB000003", "AA000002"], '"seibans-0"'))
    ingest(api, [line for line in lines() if "AB000003" not in line])
    _, doc = get_list(api)
    assert doc["items"][0] == {
        "fseiban": "AB000003",
        "machine_name": None,
        "total": 0,
        "completed": 0,
    }
    again = ok(put_list(api, ["AA000002", "AB000003"], '"seibans-1"'))
    assert [i["fseiban"] for i in again["items"]] == ["AA000002", "AB000003"]


def race(api: Api, etag: str, proposals: list[list[str]]) -> list[Any]:
    """PUT each proposal with the same If-Match, all at once (one thread each)."""
    barrier = threading.Barrier(len(proposals))
    responses: list[Any] = [None] * len(proposals)

    def edit(i: int) -> None:
        barrier.wait(10)
        responses[i] = put_list(api, proposals[i], etag)

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(len(proposals))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return responses


@pytest.mark.parametrize("from_version", [0, 1])
def test_of_two_racing_edits_exactly_one_wins(
    api: Api, loaded: CsvDashboard, from_version: int
) -> None:
    if from_version:
        ok(put_list(api, ["AB000003"], '"seibans-0"'))
    etag = f'"seibans-{from_version}"'
    proposals = [["AA000001"], ["AA000002", "AB000003"]]
    for _round in range(3):
        responses = race(api, etag, proposals)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 412], [r.text for r in responses]
        winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
        loser = responses[1 - winner]
        problem(loser, 412, "SEIBAN_LIST_CHANGED")
        current, doc = get_list(api)
        assert doc["version"] == int(etag.strip('"').split("-")[1]) + 1
        assert [i["fseiban"] for i in doc["items"]] == proposals[winner]
        assert stored(api, loaded)[1] == [(p + 1, s) for p, s in enumerate(proposals[winner])]
        etag = current


# --- the database's own constraints --------------------------------------------------------------


def test_the_database_refuses_bad_registered_seibans(harness: Harness) -> None:
    """CHECK (8 of A–Z, a–z, 0–9, *), CHECK (position 1–100) and UNIQUE (dashboard, position),
    written around the service."""
    dashboard = harness.dashboard()
    with harness.write() as session:
        session.execute(
            insert(ProductionScheduleSeibanList).values(csv_dashboard_id=dashboard.id, version=1)
        )

    def add(fseiban: str, position: int) -> None:
        with harness.write() as session:
            session.execute(
                insert(ProductionScheduleRegisteredSeiban).values(
                    csv_dashboard_id=dashboard.id, fseiban=fseiban, position=position
                )
            )

    add("AB12cd**", 1)
    add("********", 100)
    for fseiban, position in (
        ("AB12345", 2),  # 7 characters
        ("AB-12345", 2),
        ("AB 12345", 2),
        ("AB12345あ", 2),
        ("", 2),
        ("AB123456", 0),
        ("AB123456", 101),
        ("AB123456", -1),
        ("AB123456", 1),  # position 1 is taken
    ):
        with pytest.raises(IntegrityError):
            add(fseiban, position)
    other = harness.dashboard("plant-2")
    with pytest.raises(IntegrityError), harness.write() as session:  # version ≥ 1
        session.execute(
            insert(ProductionScheduleSeibanList).values(csv_dashboard_id=other.id, version=0)
        )
    with harness.read() as session:
        kept = session.execute(
            select(
                ProductionScheduleRegisteredSeiban.position,
                ProductionScheduleRegisteredSeiban.fseiban,
            ).order_by(ProductionScheduleRegisteredSeiban.position)
        ).all()
    assert [tuple(k) for k in kept] == [(1, "AB12cd**"), (100, "********")]


# --- the board's reads ----------------------------------------------------------------------------


def test_lookup_rereads_rows_with_an_etag(api: Api, loaded: CsvDashboard) -> None:
    ids = row_ids(api)
    asked = [
        ids[("AB000003", "P5", "10")],
        ids[("AA000001", "P1", "20")],
        ids[("AA000002", "P1", "10")],
    ]
    url = f"{BASE}/lookup?" + "&".join(f"id={i}" for i in asked)
    first = api.get(url, as_="viewer")
    doc = ok(first)
    # In kiosk order, whatever the order asked.
    assert [r["id"] for r in doc["items"]] == [asked[1], asked[2], asked[0]]
    assert doc["items"][0]["machine_name"] == "組立機A"
    assert all(r["completed"] is False for r in doc["items"])
    etag = first.headers["ETag"]
    assert etag

    unchanged = api.get(url, as_="viewer", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["ETag"] == etag
    listed = api.get(url, as_="viewer", headers={"If-None-Match": f'W/"other", {etag}'})
    assert listed.status_code == 304
    assert api.get(url, as_="viewer", headers={"If-None-Match": 'W/"other"'}).status_code == 200

    # Another terminal completes one of the steps: the poll sees it.
    ok(put(api, asked[2], "completion", {"intent": "complete"}))
    changed = api.get(url, as_="viewer", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    rows = {r["id"]: r for r in changed.json()["items"]}
    assert rows[asked[2]]["completed"] is True
    assert rows[asked[2]]["row_data"]["progress"] == "完了"
    assert rows[asked[0]] == doc["items"][2]
    again = api.get(url, as_="viewer", headers={"If-None-Match": changed.headers["ETag"]})
    assert again.status_code == 304


def test_lookup_scope_and_limits(api: Api, loaded: CsvDashboard) -> None:
    ids = row_ids(api)
    mine = ids[("AA000001", "P1", "10")]
    other = api.post(
        "/api/v1/dashboards", json={"slug": "plant-2", "preset": "production-schedule"}
    )
    assert other.status_code == 201
    ingest(api, [schedule_line(1_000_000_009, "ZZ000009", "Q1", 10)], slug="plant-2")
    foreign = next(iter(row_ids(api, slug="plant-2").values()))
    doc = ok(api.get(f"{BASE}/lookup?id={mine}&id={foreign}&id={uuid.uuid4()}", as_="viewer"))
    assert [r["id"] for r in doc["items"]] == [mine]
    assert ok(api.get(f"{BASE}/lookup", as_="viewer")) == {"items": []}
    many = "&".join(f"id={uuid.uuid4()}" for _ in range(201))
    problem(api.get(f"{BASE}/lookup?{many}", as_="viewer"), 400, "TOO_MANY_IDS")
    at_limit = "&".join(f"id={uuid.uuid4()}" for _ in range(199))
    assert (
        ok(api.get(f"{BASE}/lookup?id={mine}&{at_limit}", as_="viewer"))["items"][0]["id"] == mine
    )
    problem(api.get(f"{BASE}/lookup?id=nope", as_="viewer"), 400, "VALIDATION_FAILED")
    problem(api.get(f"{BASE}/lookup?id={mine}", as_=None), 401, "UNAUTHENTICATED")


def test_rows_scope(api: Api, loaded: CsvDashboard) -> None:
    every = all_rows(api)
    for params in (
        {"resource": ["M01", "M03"]},
        {"resource": ["M03", "M02", "M01"]},
        {"seiban": ["AA000001", "AB000003"]},
        {"seiban": "AA000001", "resource": ["M01", "M03"]},
    ):
        resources = params.get("resource", [])
        seibans = params.get("seiban", [])
        seibans = [seibans] if isinstance(seibans, str) else seibans
        expected = [
            r["id"]
            for r in every
            if (not resources or r["row_data"]["FSIGENCD"] in resources)
            and (not seibans or r["row_data"]["FSEIBAN"] in seibans)
        ]
        assert expected
        for limit in (1, 2, 500):
            got = [r["id"] for r in all_rows(api, limit=limit, **params)]
            assert got == expected, (params, limit)

    body = problem(api.get(f"{BASE}/rows?resource=UNKNOWN", as_="viewer"), 400, "UNKNOWN_RESOURCE")
    assert "UNKNOWN" in body["detail"]
    problem(
        api.get(f"{BASE}/rows?resource=M01&resource=NOPE", as_="viewer"), 400, "UNKNOWN_RESOURCE"
    )
    problem(api.get(f"{BASE}/rows?q=a,b,c,d,e,f,g,h,i", as_="viewer"), 400, "TOO_MANY_TOKENS")
    problem(api.get(f"{BASE}/rows?limit=100000", as_="viewer"), 400, "INVALID_LIMIT")
    many = "&".join(f"resource=X{i:02d}" for i in range(51))
    problem(api.get(f"{BASE}/rows?{many}", as_="viewer"), 400, "SCOPE_TOO_LARGE")
    # An unknown 製番 is no error: it has no steps.
    assert ok(api.get(f"{BASE}/rows?seiban=ZZ999999", as_="viewer"))["items"] == []


def test_summary_of_a_scope(api: Api, loaded: CsvDashboard) -> None:
    ok(put(api, row_ids(api)[("AA000001", "P1", "10")], "completion", {"intent": "complete"}))
    doc = ok(api.get(f"{BASE}/summary?resource=M01", as_="viewer"))
    assert doc == {
        "total": 3,
        "completed": 2,  # one by a worker, one by the source; the machine row is no step
        "by_resource": [
            {"resource_cd": "M01", "resource_name": "資源M01", "total": 3, "completed": 2}
        ],
        "by_seiban": [],
    }
    doc = ok(api.get(f"{BASE}/summary?seiban=AA000001&resource=M01&resource=M03", as_="viewer"))
    assert doc == {
        "total": 3,
        "completed": 2,
        "by_resource": [
            {"resource_cd": "M01", "resource_name": "資源M01", "total": 2, "completed": 2},
            {"resource_cd": "M03", "resource_name": "資源M03", "total": 1, "completed": 0},
        ],
        "by_seiban": [
            {
                "fseiban": "AA000001",
                "machine_name": "組立機A",
                "total": 3,
                "completed": 2,
                "incomplete_parts": ["蓋"],
            }
        ],
    }
    problem(api.get(f"{BASE}/summary?resource=NOPE", as_="viewer"), 400, "UNKNOWN_RESOURCE")
    many = "&".join(f"seiban=S{i:07d}" for i in range(101))
    problem(api.get(f"{BASE}/summary?{many}", as_="viewer"), 400, "SCOPE_TOO_LARGE")
    # Without a scope it is the whole dashboard's report.
    whole = ok(api.get(f"{BASE}/summary", as_="viewer"))
    assert (whole["total"], len(whole["by_seiban"])) == (7, 3)


def test_resources(api: Api, loaded: CsvDashboard) -> None:
    assert ok(api.get(f"{BASE}/resources", as_="viewer")) == {
        "items": [
            {"resource_cd": "M01", "resource_name": "資源M01"},
            {"resource_cd": "M02", "resource_name": "資源M02"},
            {"resource_cd": "M03", "resource_name": "資源M03"},
        ]
    }
    problem(api.get(f"{BASE}/resources", as_=None), 401, "UNAUTHENTICATED")
    problem(api.get("/api/v1/schedules/nope/resources", as_="viewer"), 404, "DASHBOARD_NOT_FOUND")


def test_a_poll_of_the_registered_seibans_sees_their_progress(
    api: Api, loaded: CsvDashboard
) -> None:
    ok(put_list(api, ["AA000002"], '"seibans-0"'))
    etag, before = get_list(api)
    ok(put(api, row_ids(api)[("AA000002", "P1", "10")], "completion", {"intent": "complete"}))
    poll = api.get(SEIBANS_URL, as_="viewer", headers={"If-None-Match": etag})
    assert poll.status_code == 200, "304: the kiosk keeps completed = 0"
    assert poll.json()["items"][0]["completed"] == before["items"][0]["completed"] + 1
