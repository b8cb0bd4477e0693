"""The run ledger over HTTP, through the real ASGI app, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import select, update

from csvboard.runs.models import IngestionRun
from support import SCHEDULE_HEADER, Api, schedule_line

RUNS = "/api/v1/ops/ingestion/runs"
GOOD = (
    "\r\n".join(
        [
            SCHEDULE_HEADER,
            schedule_line(1000000001, "A0000001", "P-1", 10, name="軸①"),
            schedule_line(1000000001, "A0000001", "P-2", 10, name="髙"),
        ]
    )
    + "\r\n"
).encode("cp932")
BAD_HEADER = b"ProductNo,FSEIBAN\r\n1,2\r\n"


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    a = Api(db_url, tmp_path / "data")
    a.harness.dashboard()
    yield a
    a.close()


@pytest.fixture
def queued_api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """No executor: runs stay queued until a test moves them."""
    a = Api(db_url, tmp_path / "data", run_executor=False)
    a.harness.dashboard()
    yield a
    a.close()


def start(
    api: Api,
    content: bytes = GOOD,
    *,
    key: str | None = None,
    kind: str = "incremental_update",
    as_: str | None = "admin",
    dashboard: str = "production-schedule",
    name: str = "schedule.csv",
    headers: dict[str, str] | None = None,
    **fields: str,
) -> Any:
    h = dict(headers or {})
    if key is not None:
        h["Idempotency-Key"] = key
    data = {"dashboard": dashboard, "run_kind": kind, **fields}
    return api.post(
        RUNS, as_=as_, headers=h, data=data, files={"file": (name, content, "text/csv")}
    )


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail", "instance", "code", "trace_id"}
    assert body["trace_id"] == response.headers["x-trace-id"]
    return body


def test_start_returns_202_and_the_run_reaches_succeeded(api: Api) -> None:
    response = start(api, key="k1")
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"run_id", "status", "accepted_at", "trace_id"}
    assert body["status"] == "queued" and body["trace_id"] == response.headers["x-trace-id"]
    assert response.headers["location"] == f"{RUNS}/{body['run_id']}"
    run = api.wait_for_run(body["run_id"])
    assert run["status"] == "succeeded" and run["success_count"] == 2
    assert run["requested_by"] == "token:test-admin" and run["mode"] == "manual"
    assert run["dashboard"] == "production-schedule"
    assert run["sources"][0]["file_name"] == "schedule.csv"
    assert run["sources"][0]["detected_encoding"] == "cp932"


def test_traceparent_is_honoured_into_the_run_and_its_log_lines(api: Api) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with structlog.testing.capture_logs() as logs:
        response = start(api, key="tp", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
        run = api.wait_for_run(response.json()["run_id"])
    assert response.headers["x-trace-id"] == trace
    assert response.headers["traceparent"].startswith(f"00-{trace}-")
    assert run["trace_id"] == trace
    finished = [e for e in logs if e["event"] == "run_finished"]
    assert finished and all(e["trace_id"] == trace for e in finished)
    assert finished[0]["run_id"] == run["run_id"]
    # A malformed traceparent is ignored: a fresh trace id is issued.
    other = api.get(RUNS, headers={"traceparent": "00-zz-00-01"})
    assert len(other.headers["x-trace-id"]) == 32 and other.headers["x-trace-id"] != trace


def test_idempotency_key_rules(api: Api) -> None:
    assert_problem(start(api), 400, "MISSING_IDEMPOTENCY_KEY")
    first = start(api, key="same")
    again = start(api, key="same")
    assert again.status_code == 202 and again.json()["run_id"] == first.json()["run_id"]
    body = assert_problem(start(api, GOOD + b"\r\n", key="same"), 409, "IDEMPOTENCY_CONFLICT")
    assert "Idempotency-Key" in body["detail"]
    assert_problem(start(api, key="same", kind="official_ingestion"), 409, "IDEMPOTENCY_CONFLICT")
    # Keys are per principal: another admin-less principal cannot replay ours.
    with api.harness.read() as s:
        assert len(list(s.scalars(select(IngestionRun)))) == 1


def test_an_expired_idempotency_key_starts_a_new_run(api: Api) -> None:
    from csvboard.runs.models import IdempotencyKey

    first = start(api, key="old").json()
    api.wait_for_run(first["run_id"])
    with api.harness.write() as s:
        s.execute(
            update(IdempotencyKey).values(
                created_at=datetime(2020, 1, 1, tzinfo=UTC),
                expires_at=datetime(2020, 1, 2, tzinfo=UTC),
            )
        )
    second = start(api, key="old")
    assert second.status_code == 202 and second.json()["run_id"] != first["run_id"]


def test_twenty_concurrent_identical_starts_create_exactly_one_run(queued_api: Api) -> None:
    results: list[Any] = []
    barrier = threading.Barrier(20)

    def go() -> None:
        barrier.wait()
        results.append(start(queued_api, key="burst"))

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in results] == [202] * 20, [r.text for r in results]
    assert len({r.json()["run_id"] for r in results}) == 1
    with queued_api.harness.read() as s:
        assert len(list(s.scalars(select(IngestionRun)))) == 1


def test_an_identical_file_already_queued_is_refused(queued_api: Api) -> None:
    first = start(queued_api, key="a")
    assert first.status_code == 202
    body = assert_problem(start(queued_api, key="b"), 409, "RUN_ALREADY_ACTIVE")
    assert first.json()["run_id"] in body["detail"]
    assert start(queued_api, GOOD + b"\r\n", key="c").status_code == 202  # other bytes: fine


def test_validation_errors_and_their_order(api: Api) -> None:
    assert_problem(start(api, key="t1", kind="no_such_kind"), 400, "INVALID_RUN_KIND")
    assert_problem(
        start(api, key="t2", kind="appearance_supplement", target_types="official,appearance"),
        400,
        "INVALID_TARGET",
    )
    assert_problem(start(api, key="t3", target_types=" , "), 400, "INVALID_TARGET")
    assert_problem(start(api, key="t4", dashboard="nope"), 404, "DASHBOARD_NOT_FOUND")
    # 401/403 come before 400, 400 before 404.
    assert_problem(start(api, as_=None, dashboard="nope"), 401, "UNAUTHENTICATED")
    assert_problem(start(api, as_="operator", dashboard="nope"), 403, "FORBIDDEN")
    assert_problem(start(api, as_="viewer"), 403, "FORBIDDEN")
    assert_problem(start(api, dashboard="nope"), 400, "MISSING_IDEMPOTENCY_KEY")
    assert_problem(start(api, as_="revoked-token-value"), 401, "UNAUTHENTICATED")
    no_file = api.post(
        RUNS,
        headers={"Idempotency-Key": "nf"},
        data={"dashboard": "x", "run_kind": "incremental_update"},
    )
    assert_problem(no_file, 400, "FILE_REQUIRED")
    wrong_type = api.post(
        RUNS,
        headers={"Idempotency-Key": "wt"},
        content=b"x",
    )
    assert_problem(wrong_type, 400, "UNSUPPORTED_MEDIA_TYPE")


def test_revoked_token_is_refused(api: Api) -> None:
    from csvboard.auth import revoke_token

    assert api.get(RUNS, as_="viewer").status_code == 200
    with api.harness.write() as s:
        revoke_token(s, "test-viewer")
    assert_problem(api.get(RUNS, as_="viewer"), 401, "UNAUTHENTICATED")


def test_upload_over_the_limit_is_413(db_url: str, tmp_path: Path) -> None:
    a = Api(db_url, tmp_path / "data", run_executor=False)
    try:
        a.harness.dashboard()
        object.__setattr__(a.settings, "max_upload_bytes", 1000)
        body = assert_problem(start(a, GOOD + b"x" * 2000, key="big"), 413, "PAYLOAD_TOO_LARGE")
        assert "1,000" in body["detail"]
        with a.harness.read() as s:
            assert list(s.scalars(select(IngestionRun))) == []
    finally:
        a.close()


def test_failed_run_detail_retry_lineage_items_and_events(api: Api) -> None:
    failed = api.wait_for_run(
        start(api, BAD_HEADER, key="f", kind="official_ingestion").json()["run_id"]
    )
    assert failed["status"] == "failed" and failed["retryable"] is True
    assert failed["error_summary"].startswith("HEADER_MISMATCH: schedule.csv")
    retry = api.post(f"{RUNS}/{failed['run_id']}/retry")
    assert retry.status_code == 202
    child = api.wait_for_run(retry.json()["run_id"])
    assert child["parent_run_id"] == failed["run_id"] and child["parent"]["status"] == "failed"
    assert child["run_kind"] == "official_ingestion" and child["mode"] == "manual"
    assert child["sources"][0]["sha256"] == failed["sources"][0]["sha256"]
    parent = api.get(f"{RUNS}/{failed['run_id']}").json()
    assert [c["run_id"] for c in parent["children"]] == [child["run_id"]]
    ok = api.wait_for_run(start(api, key="ok").json()["run_id"])
    assert_problem(api.post(f"{RUNS}/{ok['run_id']}/retry"), 409, "RUN_NOT_RETRYABLE")
    assert_problem(api.post(f"{RUNS}/{ok['run_id']}/retry", as_="operator"), 403, "FORBIDDEN")
    assert_problem(api.post(f"{RUNS}/{uuid.uuid4()}/retry"), 404, "RUN_NOT_FOUND")
    assert_problem(api.get(f"{RUNS}/not-a-uuid"), 404, "RUN_NOT_FOUND")
    events = api.get(f"{RUNS}/{ok['run_id']}/events", as_="viewer").json()
    assert [e["to_status"] for e in events if e["to_status"]] == ["queued", "running", "succeeded"]
    assert any(e["event_type"] == "summary" for e in events)
    items = api.get(f"{RUNS}/{ok['run_id']}/items", as_="viewer").json()
    assert [i["update_type"] for i in items["items"]] == ["new", "new"]


def test_items_filter_and_cursor(api: Api) -> None:
    lines = [schedule_line(1000000001, "B0000001", f"P-{i}", 10) for i in range(7)]
    lines += ["bad,row"] * 3
    content = ("\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n").encode("cp932")
    run = api.wait_for_run(start(api, content, key="items").json()["run_id"])
    assert run["status"] == "partial"
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"{RUNS}/{run['run_id']}/items", params=params).json()
        seen += [i["line_number"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(2, 12))
    failed = api.get(f"{RUNS}/{run['run_id']}/items", params={"status": "failed"}).json()
    assert [i["reason_code"] for i in failed["items"]] == ["ROW_SHAPE"] * 3
    for bad in ({"limit": 0}, {"limit": 201}):
        assert_problem(api.get(f"{RUNS}/{run['run_id']}/items", params=bad), 400, "INVALID_LIMIT")
    assert_problem(
        api.get(f"{RUNS}/{run['run_id']}/items", params={"cursor": "@@"}), 400, "INVALID_CURSOR"
    )
    assert_problem(api.get(f"{RUNS}/{uuid.uuid4()}/items"), 404, "RUN_NOT_FOUND")


def test_list_runs_newest_first_with_filters_and_cursor(api: Api) -> None:
    ids = []
    for i in range(5):
        content = GOOD + b"\r\n" * i
        ids.append(api.wait_for_run(start(api, content, key=f"l{i}").json()["run_id"])["run_id"])
    failed = api.wait_for_run(start(api, BAD_HEADER, key="lf").json()["run_id"])["run_id"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get(RUNS, params=params, as_="viewer").json()
        seen += [r["run_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [failed, *reversed(ids)]
    only_failed = api.get(RUNS, params={"status": "failed"}).json()["items"]
    assert [r["run_id"] for r in only_failed] == [failed]
    assert only_failed[0]["error_summary"].startswith("HEADER_MISMATCH")
    assert len(api.get(RUNS, params={"dashboard": "production-schedule"}).json()["items"]) == 6
    assert api.get(RUNS, params={"mode": "scheduled"}).json()["items"] == []
    assert_problem(api.get(RUNS, params={"limit": 500}), 400, "INVALID_LIMIT")
    assert_problem(api.get(RUNS, params={"cursor": "nope"}), 400, "INVALID_CURSOR")
    assert_problem(api.get(RUNS, params={"dashboard": "nope"}), 404, "DASHBOARD_NOT_FOUND")


def test_cancel_a_queued_run(queued_api: Api) -> None:
    run_id = start(queued_api, key="c").json()["run_id"]
    result = queued_api.post(f"{RUNS}/{run_id}/cancel")
    assert result.status_code == 202 and result.json()["status"] == "cancelled"
    detail = queued_api.get(f"{RUNS}/{run_id}").json()
    assert detail["status"] == "cancelled" and detail["retryable"] is True
    assert_problem(queued_api.post(f"{RUNS}/{run_id}/cancel"), 409, "RUN_NOT_CANCELLABLE")


def test_latest_and_health(queued_api: Api) -> None:
    api = queued_api
    assert api.get("/api/v1/ops/ingestion/latest").json() == {
        "latest": None,
        "dashboards": [
            {"dashboard": "production-schedule", "latest_run": None, "last_success_at": None}
        ],
    }
    health = api.get("/api/v1/ops/diagnostics/health", as_=None)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    run_id = start(api, key="h").json()["run_id"]
    with api.harness.write() as s:
        s.execute(
            update(IngestionRun)
            .where(IngestionRun.run_id == uuid.UUID(run_id))
            .values(created_at=datetime(2020, 1, 1, tzinfo=UTC))
        )
    health = api.get("/api/v1/ops/diagnostics/health", as_=None).json()
    assert health["status"] == "degraded" and "waited" in health["checks"]["queue"]
    latest = api.get("/api/v1/ops/ingestion/latest").json()
    assert latest["latest"]["run_id"] == run_id


def test_start_from_a_folder_feed_by_json(api: Api, tmp_path: Path) -> None:
    from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed

    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "export.csv").write_bytes(GOOD)
    with api.harness.write() as s:
        board = s.scalars(select(CsvDashboard)).one()
        s.add(
            CsvDashboardFeed(
                id=uuid.uuid4(), csv_dashboard_id=board.id, name="erp-drop", role="official",
                source="folder", location=str(folder), enabled=True,
                created_at=board.created_at, updated_at=board.created_at,
            )
        )  # fmt: skip
    body = {
        "dashboard": "production-schedule",
        "run_kind": "official_ingestion",
        "feeds": ["erp-drop"],
    }
    response = api.post(RUNS, json=body, headers={"Idempotency-Key": "j1"})
    assert response.status_code == 202, response.text
    run = api.wait_for_run(response.json()["run_id"])
    assert run["status"] == "succeeded" and run["sources"][0]["file_name"] == "export.csv"
    missing = api.post(RUNS, json={**body, "feeds": ["nope"]}, headers={"Idempotency-Key": "j2"})
    assert_problem(missing, 404, "FEED_NOT_FOUND")
    bad = api.post(
        RUNS, json={"dashboard": "production-schedule"}, headers={"Idempotency-Key": "j3"}
    )
    assert_problem(bad, 400, "VALIDATION_FAILED")


def test_an_unexpected_error_is_a_problem_without_internals(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals: SELECT * FROM ingestion_runs")

    monkeypatch.setattr("csvboard.runs.api.list_runs", boom)
    with structlog.testing.capture_logs() as logs:
        response = api.get(RUNS)
    body = assert_problem(response, 500, "INTERNAL_ERROR")
    assert "secret" not in response.text and "SELECT" not in response.text
    assert "Traceback" not in response.text
    errors = [e for e in logs if e["event"] == "unhandled_error"]
    assert errors and errors[0]["log_level"] == "error"
    assert body["trace_id"]


def test_metrics_exposes_latency_runs_rows_and_last_success(api: Api) -> None:
    api.wait_for_run(start(api, key="m").json()["run_id"])
    text = api.get("/metrics", as_=None).text
    assert 'csvboard_runs{status="succeeded"} 1.0' in text
    assert "csvboard_rows_ingested_total 2.0" in text
    assert 'csvboard_last_successful_run_timestamp_seconds{dashboard="production-schedule"}' in text
    assert 'csvboard_http_request_duration_seconds_bucket{le="0.005",method="POST"' in text
