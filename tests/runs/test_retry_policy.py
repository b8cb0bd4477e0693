"""Automatic re-runs (csvboard.runs.retry_policy) on both engines, with time moved by the test:
a scheduled run failed for a reason that may pass is re-run by the scheduler after 1, 5 and
15 minutes, as the contract's re-run (parent, same sources, ``requested_by = retry-policy``),
three times at most; a failure in the file, a manual run (unless its dashboard says so) and a
stopped chain are never re-run; the API shows the pending re-run and an admin stops it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from csvboard.dashboards.models import CsvDashboard
from csvboard.dashboards.operations import change_operations
from csvboard.runs.models import IngestionRun
from csvboard.runs.vocabulary import RunMode
from csvboard.worker.scheduler import Scheduler
from support import Api, Harness, fail, failed_run

RUNS = "/api/v1/ops/ingestion/runs"


def children(h: Harness, run_id: uuid.UUID) -> list[IngestionRun]:
    with h.read() as session:
        return list(
            session.scalars(select(IngestionRun).where(IngestionRun.parent_run_id == run_id))
        )


@pytest.fixture
def scheduler(harness: Harness) -> Any:
    s = Scheduler(harness.engine, harness.settings, scheduler_id="test")
    yield s
    s.close()


def test_a_transient_failure_is_rerun_after_its_back_off(harness: Harness, scheduler: Any) -> None:
    board = harness.dashboard()
    first, ended = failed_run(harness, board, "WORKER_LOST")
    assert scheduler.tick(ended + timedelta(seconds=59)).retried == []
    report = scheduler.tick(ended + timedelta(seconds=61))
    (child,) = children(harness, first)
    assert report.retried == [child.run_id]
    # a re-run is manual (docs/contract.md §2.1); the policy still follows its own chain
    assert (child.requested_by, child.mode, child.status) == ("retry-policy", "manual", "queued")
    assert scheduler.tick(ended + timedelta(minutes=30)).retried == []  # once per failure

    # the re-run fails too: the second back-off is 5 minutes from its end, then 15, then done
    ended2 = fail(harness, child.run_id, "DATABASE_ERROR")
    assert scheduler.tick(ended2 + timedelta(minutes=4)).retried == []
    assert len(scheduler.tick(ended2 + timedelta(minutes=5, seconds=1)).retried) == 1
    (third,) = children(harness, child.run_id)
    ended3 = fail(harness, third.run_id, "RUN_TIMEOUT")
    assert scheduler.tick(ended3 + timedelta(minutes=14)).retried == []
    assert len(scheduler.tick(ended3 + timedelta(minutes=15, seconds=1)).retried) == 1
    (fourth,) = children(harness, third.run_id)
    ended4 = fail(harness, fourth.run_id, "WORKER_LOST")
    assert scheduler.tick(ended4 + timedelta(hours=1)).retried == []  # three re-runs: done
    assert children(harness, fourth.run_id) == []


@pytest.mark.parametrize("code", ["HEADER_MISMATCH", "DECODE_ERROR", "ALL_ROWS_REJECTED"])
def test_a_failure_in_the_file_is_never_rerun(harness: Harness, scheduler: Any, code: str) -> None:
    board = harness.dashboard()
    run_id, ended = failed_run(harness, board, code)
    assert scheduler.tick(ended + timedelta(hours=1)).retried == []
    assert children(harness, run_id) == []


def test_a_manual_run_is_rerun_only_when_its_dashboard_says_so(
    harness: Harness, scheduler: Any
) -> None:
    board = harness.dashboard()
    run_id, ended = failed_run(harness, board, "WORKER_SHUTDOWN", mode=RunMode.MANUAL)
    assert scheduler.tick(ended + timedelta(minutes=2)).retried == []
    with harness.write() as session:  # the old hand-edited option no longer counts
        stored = session.get_one(CsvDashboard, board.id)
        stored.options = {**stored.options, "retry_manual_runs": True}
    assert scheduler.tick(ended + timedelta(minutes=2)).retried == []
    with harness.write() as session:
        change_operations(session.get_one(CsvDashboard, board.id), {"retry_manual_runs": True})
    (child,) = scheduler.tick(ended + timedelta(minutes=2)).retried
    assert [c.run_id for c in children(harness, run_id)] == [child]


def test_the_api_shows_and_stops_a_pending_rerun(api: Api) -> None:
    h = api.harness
    board = h.dashboard()
    run_id, ended = failed_run(h, board, "WORKER_LOST")
    detail = api.get(f"{RUNS}/{run_id}").json()
    assert detail["auto_retry"]["attempt"] == 1
    due = datetime.fromisoformat(detail["auto_retry"]["due_at"])
    assert due == ended + timedelta(minutes=1)
    assert api.post(f"{RUNS}/{run_id}/auto-retry/cancel", as_="operator").status_code == 403
    stopped = api.post(f"{RUNS}/{run_id}/auto-retry/cancel")
    assert stopped.status_code == 200, stopped.text
    assert api.get(f"{RUNS}/{run_id}").json()["auto_retry"] is None
    again = api.post(f"{RUNS}/{run_id}/auto-retry/cancel")
    assert again.status_code == 409 and again.json()["code"] == "NO_PENDING_RETRY"
    s = Scheduler(h.engine, h.settings, scheduler_id="api-test")
    try:
        assert s.tick(ended + timedelta(hours=1)).retried == []
    finally:
        s.close()
    events = api.get(f"{RUNS}/{run_id}/events").json()
    assert any(e["event_type"] == "auto_retry_cancelled" for e in events)
