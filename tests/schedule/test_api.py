"""The production-schedule HTTP API, through the real app on both engines.

Composed rows and their filters and paging, every kiosk write with its error codes, the order
of checks (401/403 → 400 → 404 → 409), roles, idempotency of completion, scoping of row ids to
the dashboard in the path, and operator writes racing real ingestions that update and retire
the very rows being written.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import select

from csvboard.dashboards.models import CsvDashboard
from csvboard.dashboards.service import get_dashboard
from csvboard.ingest.ledger import RunOutcome
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule.models import ProductionScheduleProgress, ProductionScheduleRowNote
from support import SCHEDULE_HEADER, Api, schedule_line

SLUG = "production-schedule"
BASE = f"/api/v1/schedules/{SLUG}"
PROBLEM = "application/problem+json"
SEIBAN = "AB123456"
Key = tuple[str, str, str, str]  # FSEIBAN, FHINCD, FSIGENCD, FKOJUN


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert a problem+json response of this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def csv_text(lines: Iterable[str]) -> str:
    return "\n".join([SCHEDULE_HEADER, *lines]) + "\n"


def board(api: Api, slug: str = SLUG) -> CsvDashboard:
    with api.harness.read() as session:
        return get_dashboard(session, slug)


def ingest(
    api: Api, lines: Iterable[str], *, slug: str = SLUG, kind: str = "official_ingestion"
) -> RunOutcome:
    outcome = api.harness.ingest(board(api, slug), csv_text(lines), kind=kind)
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    return outcome


def new_schedule(api: Api, lines: Iterable[str]) -> CsvDashboard:
    """The schedule created through the API and filled by an official ingestion of
    ``lines``."""
    created = api.post("/api/v1/dashboards", json={"slug": SLUG, "preset": "production-schedule"})
    assert created.status_code == 201, created.text
    ingest(api, lines)
    return board(api)


def key_of(row: dict[str, Any]) -> Key:
    d = row["row_data"]
    return (d["FSEIBAN"], d["FHINCD"], d["FSIGENCD"], d["FKOJUN"])


def all_rows(api: Api, slug: str = SLUG, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        response = api.get(f"/api/v1/schedules/{slug}/rows", params=query, as_="viewer")
        assert response.status_code == 200, response.text
        page = response.json()
        out.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def ids(api: Api, slug: str = SLUG) -> dict[Key, str]:
    every = all_rows(api, slug, include_retired="true", include_machine_rows="true")
    return {key_of(r): r["id"] for r in every}


def put(api: Api, row_id: str, what: str, body: dict[str, Any], *, as_: str = "operator") -> Any:
    return api.put(f"{BASE}/rows/{row_id}/{what}", json=body, as_=as_)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def steps() -> list[str]:
    """The machine row, four steps of P100 on R01 and one on R02, one step of another 製番."""
    return [
        schedule_line(1_000_000_001, SEIBAN, "MH-0001", 1, resource="R00", name="組立機①"),
        *(
            schedule_line(1_000_000_001, SEIBAN, "P100", k, name="シャフト")
            for k in (10, 20, 30, 40)
        ),
        schedule_line(1_000_000_001, SEIBAN, "P100", 50, resource="R02", name="シャフト"),
        schedule_line(1_000_000_002, "CD000002", "P200", 10, name="㈱髙田カバー"),
    ]


def step(kojun: int, resource: str = "R01") -> Key:
    return (SEIBAN, "P100", resource, str(kojun))


@pytest.fixture
def loaded(api: Api) -> dict[Key, str]:
    """The schedule created through the API and filled by an official ingestion."""
    new_schedule(api, steps())
    return ids(api)


# --- reads --------------------------------------------------------------------------------


def test_rows_are_composed_in_kiosk_order(api: Api, loaded: dict[Key, str]) -> None:
    rows = all_rows(api)
    assert [key_of(r) for r in rows] == [
        *(step(k) for k in (10, 20, 30, 40)),
        step(50, "R02"),
        ("CD000002", "P200", "R01", "10"),
    ]
    first = rows[0]
    assert first["row_data"]["progress"] == ""
    assert first["row_data"]["FHINMEI"] == "シャフト"
    assert first["machine_name"] == "組立機①"
    assert first["completed"] is False and first["manual_completed"] is False
    assert first["note"] is None and first["due_date"] is None and first["order"] is None
    assert first["is_active"] is True
    one = ok(api.get(f"{BASE}/rows/{first['id']}", as_="viewer"))
    assert one == first
    with_machine = all_rows(api, include_machine_rows="true")
    assert len(with_machine) == len(rows) + 1


def test_filters_and_search(api: Api, loaded: dict[Key, str]) -> None:
    ok(put(api, loaded[step(10)], "completion", {"intent": "complete"}))
    ok(put(api, loaded[step(20)], "note", {"note": "治具待ち"}))
    ok(put(api, loaded[step(30)], "due-date", {"due_date": "2026-03-01"}))

    def keys(**params: Any) -> set[Key]:
        return {key_of(r) for r in all_rows(api, **params)}

    assert keys(resource="R02") == {step(50, "R02")}
    assert len(keys(resource=["R01", "R02"])) == 6
    assert keys(completion="complete") == {step(10)}
    assert len(keys(completion="incomplete")) == 5
    assert keys(has_note="true") == {step(20)}
    assert len(keys(has_note="false")) == 5
    assert keys(has_due_date="true") == {step(30)}
    assert keys(q="CD000002") == {("CD000002", "P200", "R01", "10")}
    assert keys(q="髙田") == {("CD000002", "P200", "R01", "10")}
    assert keys(q="p100", resource="R02") == {step(50, "R02")}
    assert keys(q="P200, R02-nothing", completion="incomplete") == {
        ("CD000002", "P200", "R01", "10")
    }
    assert keys(q="zzz") == set()


def test_paging_returns_every_row_exactly_once(api: Api, loaded: dict[Key, str]) -> None:
    lines = [
        schedule_line(1_000_000_100 + i, f"S{i:07d}", f"P{i % 7}", 10 * (i % 5 + 1))
        for i in range(57)
    ]
    ingest(api, lines, kind="incremental_update")
    expected = [r["id"] for r in all_rows(api, limit=2000)]
    assert len(expected) == 57 + 6
    for limit in (1, 7, 62, 63, 64):
        got = [r["id"] for r in all_rows(api, limit=limit)]
        assert got == expected, limit
    first = ok(api.get(f"{BASE}/rows", params={"limit": 10}, as_="viewer"))
    assert len(first["items"]) == 10 and first["next_cursor"]


def test_list_validation(api: Api, loaded: dict[Key, str]) -> None:
    for limit in (0, 2001, -5):
        problem(api.get(f"{BASE}/rows?limit={limit}", as_="viewer"), 400, "INVALID_LIMIT")
    assert ok(api.get(f"{BASE}/rows?limit=2000", as_="viewer"))["next_cursor"] is None
    problem(api.get(f"{BASE}/rows?cursor=nonsense", as_="viewer"), 400, "INVALID_CURSOR")
    problem(api.get(f"{BASE}/rows?q=1,2,3,4,5,6,7,8,9", as_="viewer"), 400, "TOO_MANY_TOKENS")
    body = problem(api.get(f"{BASE}/rows?completion=maybe", as_="viewer"), 400, "VALIDATION_FAILED")
    assert body["errors"][0]["field"] == "completion"
    assert body["errors"][0]["location"] == "query"
    problem(api.get(f"{BASE}/rows?has_note=perhaps", as_="viewer"), 400, "VALIDATION_FAILED")
    # 400 before 404.
    problem(api.get("/api/v1/schedules/nope/rows?limit=0", as_="viewer"), 400, "INVALID_LIMIT")


def test_unknown_and_generic_dashboards(api: Api, loaded: dict[Key, str]) -> None:
    row_id = loaded[step(10)]
    for path in ("/rows", f"/rows/{row_id}", "/summary"):
        problem(api.get(f"/api/v1/schedules/nope{path}", as_="viewer"), 404, "DASHBOARD_NOT_FOUND")
    problem(
        api.put(f"/api/v1/schedules/nope/rows/{row_id}/note", json={"note": "x"}, as_="operator"),
        404,
        "DASHBOARD_NOT_FOUND",
    )
    generic = {"slug": "parts", "columns": [{"name": "code"}], "key_columns": ["code"]}
    assert api.post("/api/v1/dashboards", json=generic).status_code == 201
    for path in ("/rows", f"/rows/{row_id}", "/summary"):
        problem(api.get(f"/api/v1/schedules/parts{path}", as_="viewer"), 400, "NOT_A_SCHEDULE")
    problem(
        api.put(
            f"/api/v1/schedules/parts/rows/{row_id}/completion",
            json={"intent": "complete"},
            as_="operator",
        ),
        400,
        "NOT_A_SCHEDULE",
    )
    assert ok(api.get(f"{BASE}/rows/{row_id}", as_="viewer"))["completed"] is False


def test_a_row_of_another_dashboard_is_404_and_left_alone(api: Api, loaded: dict[Key, str]) -> None:
    other = api.post(
        "/api/v1/dashboards", json={"slug": "plant-2", "preset": "production-schedule"}
    )
    assert other.status_code == 201
    ingest(api, [schedule_line(1_000_000_009, "ZZ000009", "Q1", 10)], slug="plant-2")
    foreign = next(iter(ids(api, "plant-2").values()))

    problem(api.get(f"{BASE}/rows/{foreign}", as_="viewer"), 404, "ROW_NOT_FOUND")
    writes: list[tuple[str, dict[str, Any]]] = [
        ("completion", {"intent": "complete"}),
        ("note", {"note": "not mine"}),
        ("due-date", {"due_date": "2026-01-01"}),
        ("processing-type", {"processing_type": "塗装"}),
        ("order", {"resource_cd": "R01", "order_number": 1}),
    ]
    for what, body in writes:
        problem(put(api, foreign, what, body), 404, "ROW_NOT_FOUND")
    # Nothing was written to it (each write was rolled back).
    row = ok(api.get(f"/api/v1/schedules/plant-2/rows/{foreign}", as_="viewer"))
    assert row["completed"] is False and row["note"] is None and row["due_date"] is None
    assert row["processing_type"] is None and row["order"] is None

    missing = str(uuid.uuid4())
    problem(api.get(f"{BASE}/rows/{missing}", as_="viewer"), 404, "ROW_NOT_FOUND")
    problem(put(api, missing, "note", {"note": "x"}), 404, "ROW_NOT_FOUND")
    problem(api.get(f"{BASE}/rows/not-a-uuid", as_="viewer"), 400, "VALIDATION_FAILED")
    problem(put(api, "not-a-uuid", "note", {"note": "x"}), 400, "VALIDATION_FAILED")
    # 400 before 404: an invalid body is reported even for an unknown row or dashboard.
    problem(put(api, missing, "note", {"note": "two\nlines"}), 400, "INVALID_NOTE")
    problem(put(api, foreign, "completion", {"intent": "flip"}), 400, "VALIDATION_FAILED")


def test_summary(api: Api, loaded: dict[Key, str]) -> None:
    ok(put(api, loaded[step(10)], "completion", {"intent": "complete"}))
    summary = ok(api.get(f"{BASE}/summary", as_="viewer"))
    assert (summary["total"], summary["completed"]) == (6, 1)
    assert summary["by_resource"] == [
        {"resource_cd": "R01", "resource_name": "資源R01", "total": 5, "completed": 1},
        {"resource_cd": "R02", "resource_name": "資源R02", "total": 1, "completed": 0},
    ]
    by_seiban = {s["fseiban"]: s for s in summary["by_seiban"]}
    assert by_seiban[SEIBAN] == {
        "fseiban": SEIBAN,
        "machine_name": "組立機①",
        "total": 5,
        "completed": 1,
        "incomplete_parts": ["シャフト"],
    }
    assert by_seiban["CD000002"]["incomplete_parts"] == ["㈱髙田カバー"]


# --- writes -------------------------------------------------------------------------------


def test_completion_is_idempotent_never_a_toggle(api: Api, loaded: dict[Key, str]) -> None:
    row_id = loaded[step(10)]
    first = ok(put(api, row_id, "completion", {"intent": "complete"}))
    second = ok(put(api, row_id, "completion", {"intent": "complete"}))
    assert first["completed"] is second["completed"] is True
    assert first["row_data"]["progress"] == second["row_data"]["progress"] == "完了"
    assert first["updated_at"] == second["updated_at"]  # the repeat changed nothing at all
    assert ok(api.get(f"{BASE}/rows/{row_id}", as_="viewer"))["completed"] is True

    undone = ok(put(api, row_id, "completion", {"intent": "incomplete"}))
    again = ok(put(api, row_id, "completion", {"intent": "incomplete"}))
    assert undone["completed"] is again["completed"] is False
    assert again["row_data"]["progress"] == ""

    for bad in ({"intent": "toggle"}, {}, {"intent": True}, {"intent": "complete", "x": 1}):
        body = problem(put(api, row_id, "completion", bad), 400, "VALIDATION_FAILED")
        assert body["errors"], bad
    problem(
        api.put(f"{BASE}/rows/{row_id}/completion", content=b"[", as_="operator"),
        400,
        "VALIDATION_FAILED",
    )
    assert ok(api.get(f"{BASE}/rows/{row_id}", as_="viewer"))["completed"] is False

    with api.harness.read() as session:
        mark = session.get(ProductionScheduleProgress, uuid.UUID(row_id))
        assert mark is not None and mark.updated_by == "token:test-operator"


def test_an_externally_completed_step_stays_complete(api: Api, loaded: dict[Key, str]) -> None:
    lines = steps()
    lines[1] = schedule_line(1_000_000_001, SEIBAN, "P100", 10, name="シャフト", progress="完了")
    ingest(api, lines)
    row = ok(put(api, loaded[step(10)], "completion", {"intent": "incomplete"}))
    assert row["completed"] is True and row["external_completed"] is True
    assert row["manual_completed"] is False and row["row_data"]["progress"] == "完了"


def test_note(api: Api, loaded: dict[Key, str]) -> None:
    row_id = loaded[step(20)]
    assert ok(put(api, row_id, "note", {"note": "  治具待ち  "}))["note"] == "治具待ち"
    assert ok(put(api, row_id, "note", {"note": "x" * 100}))["note"] == "x" * 100
    for bad in ("a\nb", "a\rb", "x" * 101):
        problem(put(api, row_id, "note", {"note": bad}), 400, "INVALID_NOTE")
    problem(put(api, row_id, "note", {"note": None}), 400, "VALIDATION_FAILED")
    problem(put(api, row_id, "note", {}), 400, "VALIDATION_FAILED")
    assert ok(put(api, row_id, "note", {"note": ""}))["note"] is None
    with api.harness.read() as session:
        assert session.get(ProductionScheduleRowNote, uuid.UUID(row_id)) is None


def test_due_date(api: Api, loaded: dict[Key, str]) -> None:
    row_id = loaded[step(20)]
    assert ok(put(api, row_id, "due-date", {"due_date": "2026-02-28"}))["due_date"] == "2026-02-28"
    for bad in ("2026-02-30", "28/02/2026", "2026-02-28T10:00:00", "soon"):
        problem(put(api, row_id, "due-date", {"due_date": bad}), 400, "INVALID_DUE_DATE")
    problem(put(api, row_id, "due-date", {}), 400, "VALIDATION_FAILED")
    assert ok(api.get(f"{BASE}/rows/{row_id}", as_="viewer"))["due_date"] == "2026-02-28"
    assert ok(put(api, row_id, "due-date", {"due_date": None}))["due_date"] is None
    ok(put(api, row_id, "due-date", {"due_date": "2026-03-01"}))
    assert ok(put(api, row_id, "due-date", {"due_date": ""}))["due_date"] is None


def test_processing_type(api: Api, loaded: dict[Key, str]) -> None:
    row_id = loaded[step(20)]
    assert (
        ok(put(api, row_id, "processing-type", {"processing_type": "塗装"}))["processing_type"]
        == "塗装"
    )
    problem(
        put(api, row_id, "processing-type", {"processing_type": "メッキ"}),
        400,
        "INVALID_PROCESSING_TYPE",
    )
    # The admin adds a processing type; now it can be chosen.
    patched = api.patch(f"/api/v1/dashboards/{SLUG}", json={"processing_types": ["塗装", "メッキ"]})
    assert patched.status_code == 200, patched.text
    chosen = ok(put(api, row_id, "processing-type", {"processing_type": "メッキ"}))
    assert chosen["processing_type"] == "メッキ"
    assert (
        ok(put(api, row_id, "processing-type", {"processing_type": None}))["processing_type"]
        is None
    )


def test_order(api: Api, loaded: dict[Key, str]) -> None:
    a, b, c = loaded[step(10)], loaded[step(20)], loaded[step(30)]
    row = ok(put(api, a, "order", {"resource_cd": "R01", "order_number": 1}))
    assert row["order"] == {"resource_cd": "R01", "order_number": 1}
    ok(put(api, b, "order", {"resource_cd": "R01", "order_number": 2}))
    ok(put(api, c, "order", {"resource_cd": "R01", "order_number": 3}))
    problem(
        put(api, c, "order", {"resource_cd": "R01", "order_number": 1}), 409, "ORDER_NUMBER_TAKEN"
    )
    problem(
        put(api, c, "order", {"resource_cd": "R02", "order_number": 5}), 400, "RESOURCE_MISMATCH"
    )
    for bad in (0, 11, "one", 2.5):
        problem(
            put(api, c, "order", {"resource_cd": "R01", "order_number": bad}),
            400,
            "VALIDATION_FAILED",
        )
    # Completing a step releases its number and closes the gap behind it.
    ok(put(api, a, "completion", {"intent": "complete"}))
    orders = {rid: ok(api.get(f"{BASE}/rows/{rid}", as_="viewer"))["order"] for rid in (a, b, c)}
    assert orders == {
        a: None,
        b: {"resource_cd": "R01", "order_number": 1},
        c: {"resource_cd": "R01", "order_number": 2},
    }
    problem(put(api, a, "order", {"resource_cd": "R01", "order_number": 4}), 409, "STEP_COMPLETED")
    assert ok(put(api, b, "order", {"resource_cd": "R01", "order_number": None}))["order"] is None
    assert ok(api.get(f"{BASE}/rows/{c}", as_="viewer"))["order"]["order_number"] == 1


def test_retired_rows_are_readable_but_refuse_writes(api: Api, loaded: dict[Key, str]) -> None:
    gone = loaded[step(40)]
    ok(put(api, gone, "note", {"note": "before retirement"}))
    ingest(api, [line for line in steps() if ",40," not in line])
    row = ok(api.get(f"{BASE}/rows/{gone}", as_="viewer"))
    assert row["is_active"] is False and row["note"] == "before retirement"
    assert gone not in {r["id"] for r in all_rows(api)}
    assert gone in {r["id"] for r in all_rows(api, include_retired="true")}
    problem(put(api, gone, "completion", {"intent": "complete"}), 409, "ROW_RETIRED")
    problem(put(api, gone, "note", {"note": "after"}), 409, "ROW_RETIRED")
    problem(put(api, gone, "due-date", {"due_date": "2026-01-01"}), 409, "ROW_RETIRED")
    problem(put(api, gone, "processing-type", {"processing_type": "塗装"}), 409, "ROW_RETIRED")
    problem(put(api, gone, "order", {"resource_cd": "R01", "order_number": 1}), 409, "ROW_RETIRED")
    # 400 before 409.
    problem(put(api, gone, "note", {"note": "a\nb"}), 400, "INVALID_NOTE")
    assert ok(api.get(f"{BASE}/rows/{gone}", as_="viewer"))["note"] == "before retirement"


def test_roles(api: Api, loaded: dict[Key, str]) -> None:
    row_id = loaded[step(10)]
    body = {"intent": "complete"}
    problem(put(api, row_id, "completion", body, as_="viewer"), 403, "FORBIDDEN")
    # The role is checked before the body: a viewer's malformed body is still a 403.
    problem(api.put(f"{BASE}/rows/{row_id}/note", content=b"{", as_="viewer"), 403, "FORBIDDEN")
    problem(
        api.put(f"{BASE}/rows/{row_id}/note", json={"note": "x"}, as_=None), 401, "UNAUTHENTICATED"
    )
    for path in ("/rows", f"/rows/{row_id}", "/summary"):
        problem(api.get(f"{BASE}{path}", as_=None), 401, "UNAUTHENTICATED")
        for role in ("viewer", "operator", "admin"):
            assert api.get(f"{BASE}{path}", as_=role).status_code == 200
    assert ok(api.get(f"{BASE}/rows/{row_id}", as_="viewer"))["completed"] is False
    assert ok(put(api, row_id, "completion", body, as_="operator"))["completed"] is True
    assert ok(put(api, row_id, "note", {"note": "admin"}, as_="admin"))["note"] == "admin"
    # An operator cannot create dashboards.
    create = {"slug": "mine", "preset": "production-schedule"}
    problem(api.post("/api/v1/dashboards", json=create, as_="operator"), 403, "FORBIDDEN")


# --- concurrency --------------------------------------------------------------------------

CYCLES = 4


def test_operator_writes_race_ingestions_that_update_and_retire_their_rows(api: Api) -> None:
    """Kiosk writes while official ingestions rewrite and retire the very rows being written.

    Snapshots run in a thread, in cycles of three: every step changes (new 品名 and hours),
    half the steps vanish and retire, they all come back (changed again). Meanwhile the main
    thread keeps writing notes and completions over all rows through the API. A write to an
    active row must succeed (never a lock error); one that lands after its row retired is
    refused 409 ROW_RETIRED. Afterwards every accepted write is there, on the same row id.
    """
    created = api.post("/api/v1/dashboards", json={"slug": SLUG, "preset": "production-schedule"})
    assert created.status_code == 201
    count = 200

    def snapshot(version: int, keep: range) -> list[str]:
        return [
            schedule_line(
                1_000_000_001,
                f"S{i // 10:07d}",
                f"P{i % 10}",
                10,
                name=f"部品{i}-v{version}",
                hours=f"{version}.5",
            )
            for i in keep
        ]

    ingest(api, snapshot(0, range(count)))
    before = ids(api)
    assert len(before) == count
    # The middle snapshot of each cycle keeps lines 0–99: 製番 S0000000–S0000009.
    retiring = [rid for key, rid in before.items() if int(key[0][1:]) >= count // 20]
    staying = [rid for rid in before.values() if rid not in set(retiring)]
    assert len(retiring) == len(staying) == count // 2
    # Alternate, so that rows of both kinds are written while any snapshot applies.
    row_ids = [rid for pair in zip(staying, retiring, strict=True) for rid in pair]

    go = threading.Event()
    outcomes: list[RunOutcome] = []
    failure: list[BaseException] = []

    def ingestions() -> None:
        try:
            go.wait(30)
            dashboard = board(api)
            for version in range(1, 3 * CYCLES + 1):
                keep = range(count // 2) if version % 3 == 2 else range(count)
                text = csv_text(snapshot(version, keep))
                outcomes.append(api.harness.ingest(dashboard, text, kind="official_ingestion"))
        except BaseException as exc:  # surfaced in the main thread
            failure.append(exc)

    thread = threading.Thread(target=ingestions, daemon=True)
    thread.start()
    notes: dict[str, str] = {}
    completed: set[str] = set()
    accepted = refused = during = 0
    i = 0
    while thread.is_alive() or i < 2 * count:
        row_id = row_ids[i % count]
        if i % 2 == 0:
            note = f"n{i}"
            response = put(api, row_id, "note", {"note": note})
        else:
            response = put(api, row_id, "completion", {"intent": "complete"})
        if i == 0:
            go.set()
        if thread.is_alive():
            during += 1
        if response.status_code == 200:
            accepted += 1
            if i % 2 == 0:
                notes[row_id] = note
            else:
                completed.add(row_id)
        else:
            body = problem(response, 409, "ROW_RETIRED")
            assert row_id in set(retiring), body
            refused += 1
        i += 1
    thread.join(60)
    assert not failure, failure
    assert [o.status for o in outcomes] == [RunStatus.SUCCEEDED] * (3 * CYCLES)
    assert during > 1

    after = ids(api)
    assert after == before  # same step → same row id, through update, retirement and return
    rows = {r["id"]: r for r in all_rows(api, include_retired="true")}
    assert all(r["is_active"] for r in rows.values())
    for row_id, note in notes.items():
        assert rows[row_id]["note"] == note, row_id
    for row_id in completed:
        assert rows[row_id]["completed"] is True
        assert rows[row_id]["row_data"]["progress"] == "完了"
    assert all(r["row_data"]["FHINMEI"].endswith(f"-v{3 * CYCLES}") for r in rows.values())
    with api.harness.read() as session:
        stored = session.scalars(select(ProductionScheduleRowNote.csv_dashboard_row_id)).all()
    assert {str(s) for s in stored} == set(notes)
    assert accepted + refused == i and accepted >= count
