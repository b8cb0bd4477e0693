"""The worker in-process (docs/contract.md §2.1 lifecycle and outcome, §3 ordering, §4 worker
and reaper).

Claiming takes the oldest *eligible* queued run (none earlier queued or running on the same
dashboard) and gives it a lease; concurrent claimers never share a run; the reaper fails runs
whose lease went stale (``WORKER_LOST``, nothing committed); ``Worker.run_one`` executes a run
end to end while a heartbeat thread renews the lease; stopping a worker either lets the current
run finish or fails it ``WORKER_SHUTDOWN`` with nothing committed.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.ingest.ledger import RunOutcome
from csvboard.ingest.runner import execute_run
from csvboard.runs import lifecycle
from csvboard.runs.lifecycle import RunCounts, TransitionConflict
from csvboard.runs.models import IngestionEvent, IngestionItem, IngestionRun, IngestionRunLease
from csvboard.runs.service import retry_run
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule.sample import write_schedule_csv
from csvboard.settings import Settings
from csvboard.worker import worker as worker_module
from csvboard.worker.worker import (
    Worker,
    WorkerThread,
    claim_next_run,
    reap_lost_runs,
)
from support import Harness, batches_of, ledger, wait_until

BIG_ROWS = 40_000  # 20 staging batches: plenty of checkpoints to stop a run at


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _small_batches(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "settings", batches_of(harness.settings, BIG_ROWS // 20))


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40,000-row export (seed 1); its first rows are the same steps as ``small_file(seed=1)``."""
    return write_schedule_csv(tmp_path_factory.mktemp("big") / "big.csv", BIG_ROWS, seed=1)


def small_file(h: Harness, rows: int, seed: int) -> Path:
    return write_schedule_csv(h.files / f"small-{seed}-{uuid.uuid4().hex[:6]}.csv", rows, seed=seed)


def lease_of(h: Harness, run_id: uuid.UUID) -> dict[str, Any] | None:
    with h.read() as session:
        row = (
            session.execute(
                select(IngestionRunLease.__table__).where(IngestionRunLease.run_id == run_id)
            )
            .mappings()
            .first()
        )
        return dict(row) if row is not None else None


def events_of(h: Harness, run_id: uuid.UUID) -> list[dict[str, Any]]:
    with h.read() as session:
        return [
            dict(r)
            for r in session.execute(
                select(IngestionEvent.__table__)
                .where(IngestionEvent.run_id == run_id)
                .order_by(IngestionEvent.id)
            ).mappings()
        ]


def transitions(h: Harness, run_id: uuid.UUID) -> list[tuple[str | None, str | None]]:
    return [
        (e["from_status"], e["to_status"])
        for e in events_of(h, run_id)
        if e["event_type"] == "status_changed"
    ]


def rows_of(h: Harness, dashboard: CsvDashboard) -> dict[str, tuple[Any, ...]]:
    """Every stored row of the dashboard by key: id, hash, active, data, last changing run."""
    with h.read() as session:
        return {
            r.row_key: (r.id, r.data_hash, r.is_active, r.row_data, r.last_changed_run_id)
            for r in session.execute(
                select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == dashboard.id)
            ).scalars()
        }


def items_of(h: Harness, run_id: uuid.UUID) -> int:
    with h.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(IngestionItem)
                .where(IngestionItem.run_id == run_id)
            )
            or 0
        )


def backdate(h: Harness, run_id: uuid.UUID, seconds: float) -> None:
    """Make a running run look abandoned ``seconds`` ago: its start and its last heartbeat.

    (A heartbeat is never older than the run's start, so both move back together.)
    """
    then = utcnow() - timedelta(seconds=seconds)
    with h.write() as session:
        session.execute(
            update(IngestionRun).where(IngestionRun.run_id == run_id).values(started_at=then)
        )
        session.execute(
            update(IngestionRunLease)
            .where(IngestionRunLease.run_id == run_id)
            .values(heartbeat_at=then)
        )


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- claiming ---------------------------------------------------------------------------------


def test_claim_takes_the_oldest_eligible_run_per_dashboard(harness: Harness) -> None:
    a = harness.dashboard("board-a")
    b = harness.dashboard("board-b")
    a1 = harness.queue(a, small_file(harness, 30, seed=11))
    a2 = harness.queue(a, small_file(harness, 30, seed=12))
    b1 = harness.queue(b, small_file(harness, 30, seed=21))

    assert claim_next_run(harness.engine, "w1") == a1
    # A2 is older than B1 but must wait: A1 (same dashboard) is running.
    assert claim_next_run(harness.engine, "w2") == b1
    assert claim_next_run(harness.engine, "w3") is None
    assert ledger(harness, a2)["status"] == RunStatus.QUEUED.value

    outcome = execute_run(
        harness.engine, a1, settings=harness.settings, worker_id="w1", claimed=True
    )
    assert outcome.status is RunStatus.SUCCEEDED
    # A1 ended: A2 is eligible although B1 (another dashboard) is still running.
    assert ledger(harness, b1)["status"] == RunStatus.RUNNING.value
    assert claim_next_run(harness.engine, "w3") == a2
    assert claim_next_run(harness.engine, "w4") is None
    a1_doc, a2_doc = ledger(harness, a1), ledger(harness, a2)
    assert a2_doc["started_at"] >= a1_doc["finished_at"]


def test_an_ended_earlier_run_no_longer_blocks_its_dashboard(harness: Harness) -> None:
    """A queued run cancelled before it started frees the next run of its dashboard."""
    a = harness.dashboard("board-a")
    a1 = harness.queue(a, small_file(harness, 10, seed=1))
    a2 = harness.queue(a, small_file(harness, 10, seed=2))
    with harness.write() as session:
        assert lifecycle.cancel(session, a1, by="tester") is RunStatus.CANCELLED
    # A1 is terminal now: A2 is the oldest eligible run.
    assert claim_next_run(harness.engine, "w1") == a2


def test_a_claimed_run_is_running_with_a_lease_of_this_worker(harness: Harness) -> None:
    board = harness.dashboard("board")
    run_id = harness.queue(board, small_file(harness, 20, seed=3))
    before = utcnow()

    assert claim_next_run(harness.engine, "worker:test:1") == run_id

    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.RUNNING.value
    assert doc["started_at"] is not None and aware(doc["started_at"]) >= before
    assert doc["finished_at"] is None
    lease = lease_of(harness, run_id)
    assert lease is not None
    assert lease["worker_id"] == "worker:test:1"
    assert lease["cancel_requested"] is False
    assert lease["heartbeat_at"] is not None
    assert before <= aware(lease["heartbeat_at"]) <= utcnow()
    started = [e for e in events_of(harness, run_id) if e["to_status"] == "running"]
    assert len(started) == 1
    assert started[0]["from_status"] == "queued"
    assert started[0]["message"] == "started by worker:test:1"


def test_concurrent_claims_never_share_a_run(harness: Harness) -> None:
    """20 runs on 20 dashboards, 4 threads claiming until nothing is left: each run once."""
    runs: list[uuid.UUID] = []
    for i in range(20):
        board = harness.dashboard(f"board-{i:02d}")
        runs.append(harness.queue(board, small_file(harness, 5, seed=100 + i)))

    claimed: dict[str, list[uuid.UUID]] = {}
    conflicts: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def claimer(name: str) -> None:
        mine: list[uuid.UUID] = []
        claimed[name] = mine
        try:
            barrier.wait(timeout=10)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    run_id = claim_next_run(harness.engine, name)
                except TransitionConflict:
                    conflicts.append(name)  # lost a race: allowed, never a double claim
                    continue
                if run_id is None:
                    return
                mine.append(run_id)
        except BaseException as exc:  # report it in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    everything = [r for mine in claimed.values() for r in mine]
    assert len(everything) == len(set(everything)), f"a run was claimed twice: {claimed}"
    assert sorted(everything) == sorted(runs)
    for name, mine in claimed.items():
        for run_id in mine:
            lease = lease_of(harness, run_id)
            assert lease is not None and lease["worker_id"] == name
            assert transitions(harness, run_id) == [("queued", "running")]


def _race_to_claim(h: Harness, threads: int) -> list[uuid.UUID | str | None]:
    """``threads`` claimers start together; each claims once (a lost race: "conflict")."""
    results: list[uuid.UUID | str | None] = []
    barrier = threading.Barrier(threads)

    def claimer(name: str) -> None:
        barrier.wait(timeout=10)
        try:
            results.append(claim_next_run(h.engine, name))
        except TransitionConflict:
            results.append("conflict")

    pool = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(30)
    assert len(results) == threads
    return results


def test_concurrent_claims_on_one_dashboard_take_only_its_oldest_run(harness: Harness) -> None:
    """4 threads race on one dashboard with 3 queued runs: exactly one claim, the oldest."""
    for round_ in range(3):
        board = harness.dashboard(f"board-{round_}")
        runs = [
            harness.queue(board, small_file(harness, 5, seed=10 * round_ + k)) for k in range(3)
        ]
        results = _race_to_claim(harness, 4)
        got = [r for r in results if isinstance(r, uuid.UUID)]
        assert got == [runs[0]], f"round {round_}: {results}"
        assert [ledger(harness, r)["status"] for r in runs] == ["running", "queued", "queued"]
        execute_run(harness.engine, runs[0], settings=harness.settings, worker_id="w", claimed=True)
        for r in runs[1:]:  # leave the dashboard idle for the next round
            with harness.write() as session:
                lifecycle.cancel(session, r)


# -- the reaper -------------------------------------------------------------------------------


def test_reaper_fails_a_run_whose_lease_went_stale(harness: Harness) -> None:
    lost_board = harness.dashboard("lost")
    fresh_board = harness.dashboard("fresh")
    lost = harness.queue(lost_board, small_file(harness, 20, seed=1))
    fresh = harness.queue(fresh_board, small_file(harness, 20, seed=2))
    assert claim_next_run(harness.engine, "worker:gone") == lost
    assert claim_next_run(harness.engine, "worker:alive") == fresh
    with harness.write() as session:  # the lost worker had published some progress
        lifecycle.update_progress(session, lost, RunCounts(target=4000, success=0, failed=3))
    backdate(harness, lost, harness.settings.lease_timeout_seconds + 60)
    fresh_lease = lease_of(harness, fresh)

    reaped = reap_lost_runs(harness.engine, harness.settings)

    assert reaped == [lost]
    doc = ledger(harness, lost)
    assert doc["status"] == RunStatus.FAILED.value
    assert doc["error_summary"] is not None
    assert doc["error_summary"].startswith("WORKER_LOST: ")
    assert "worker:gone" in doc["error_summary"]
    assert doc["success_count"] == 0
    assert (doc["target_count"], doc["failed_count"]) == (4000, 3)
    assert doc["processed_count"] == 3
    assert doc["unprocessed_count"] == 3997
    assert doc["finished_at"] is not None and doc["finished_at"] >= doc["started_at"]
    assert lease_of(harness, lost) is None
    assert transitions(harness, lost) == [("queued", "running"), ("running", "failed")]
    failure = events_of(harness, lost)[-1]
    assert (failure["error_code"], failure["event_status"]) == ("WORKER_LOST", "failure")

    # The fresh run (lease renewed just now) is left alone, lease and all.
    assert ledger(harness, fresh)["status"] == RunStatus.RUNNING.value
    assert lease_of(harness, fresh) == fresh_lease
    # Reaping again finds nothing; the lost run is safe to re-run.
    assert reap_lost_runs(harness.engine, harness.settings) == []
    with harness.write() as session:
        child = retry_run(session, lost, requested_by="admin")
        child_id = child.run_id
    assert ledger(harness, child_id)["parent_run_id"] == lost


def test_reaper_honours_the_configured_lease_timeout(harness: Harness) -> None:
    board = harness.dashboard("board")
    run_id = harness.queue(board, small_file(harness, 20, seed=5))
    assert claim_next_run(harness.engine, "worker:slow") == run_id
    backdate(harness, run_id, 30)

    assert harness.settings.lease_timeout_seconds == 60
    assert reap_lost_runs(harness.engine, harness.settings) == []  # 30 s < 60 s
    assert ledger(harness, run_id)["status"] == RunStatus.RUNNING.value

    short = harness.settings.model_copy(update={"lease_timeout_seconds": 20})
    assert reap_lost_runs(harness.engine, short) == [run_id]
    assert ledger(harness, run_id)["error_summary"].startswith("WORKER_LOST")


def test_reaper_fails_a_long_running_run_without_any_lease(harness: Harness) -> None:
    board = harness.dashboard("board")
    run_id = harness.queue(board, small_file(harness, 20, seed=6))
    assert claim_next_run(harness.engine, "worker:x") == run_id
    backdate(harness, run_id, 600)
    with harness.write() as session:
        session.execute(delete(IngestionRunLease).where(IngestionRunLease.run_id == run_id))

    assert reap_lost_runs(harness.engine, harness.settings) == [run_id]
    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.FAILED.value
    assert doc["error_summary"].startswith("WORKER_LOST")


def test_a_reaped_run_whose_worker_comes_back_commits_nothing(harness: Harness) -> None:
    """The worker was only slow: it finishes its staging, but the run stays failed WORKER_LOST
    and none of its rows, items or counts are committed."""
    board = harness.dashboard("board")
    seed = harness.ingest(
        board, small_file(harness, 300, seed=1).read_bytes(), kind="official_ingestion"
    )
    assert seed.status is RunStatus.SUCCEEDED
    before = rows_of(harness, board)
    run_id = harness.queue(board, small_file(harness, 6000, seed=2), kind="official_ingestion")
    reaped: list[uuid.UUID] = []

    def on_progress(counts: RunCounts) -> None:
        if not reaped:  # first checkpoint: the worker "stalls", the reaper steps in
            backdate(harness, run_id, harness.settings.lease_timeout_seconds + 5)
            reaped.extend(reap_lost_runs(harness.engine, harness.settings))

    outcome = execute_run(
        harness.engine,
        run_id,
        settings=harness.settings,
        worker_id="worker:slow",
        on_progress=on_progress,
    )

    assert reaped == [run_id]
    assert outcome.status is RunStatus.FAILED
    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.FAILED.value
    assert doc["error_summary"].startswith("WORKER_LOST")
    assert doc["success_count"] == 0
    assert transitions(harness, run_id) == [("queued", "running"), ("running", "failed")]
    assert rows_of(harness, board) == before
    assert items_of(harness, run_id) == 0


# -- Worker -----------------------------------------------------------------------------------


def test_run_one_executes_a_run_end_to_end(harness: Harness) -> None:
    board = harness.dashboard("board")
    path = small_file(harness, 250, seed=8)
    run_id = harness.queue(board, path, kind="official_ingestion")
    worker = Worker(harness.engine, harness.settings, worker_id="worker:e2e")

    outcome = worker.run_one()

    assert isinstance(outcome, RunOutcome)
    assert (outcome.run_id, outcome.status) == (run_id, RunStatus.SUCCEEDED)
    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.SUCCEEDED.value
    assert doc["target_count"] == 250
    assert doc["success_count"] == 250
    assert (doc["failed_count"], doc["unprocessed_count"]) == (0, 0)
    assert lease_of(harness, run_id) is None
    assert transitions(harness, run_id) == [("queued", "running"), ("running", "succeeded")]
    assert events_of(harness, run_id)[1]["message"] == "started by worker:e2e"
    stored = rows_of(harness, board)
    assert 0 < len(stored) <= 250
    assert all(active for _, _, active, _, _ in stored.values())
    assert {changed for *_, changed in stored.values()} == {run_id}
    assert worker.run_one() is None  # nothing left


def test_heartbeat_renews_the_lease_while_a_run_executes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard("board")
    run_id = harness.queue(board, small_file(harness, 50, seed=9))
    settings = harness.settings.model_copy(update={"heartbeat_seconds": 0.05})
    real_execute = execute_run
    beats: list[datetime] = []
    owners: set[str | None] = set()

    def busy_execute(engine: Any, rid: uuid.UUID, **kwargs: Any) -> RunOutcome:
        # A run that does nothing for a while (no checkpoints): only the heartbeat thread
        # can move the lease's heartbeat_at forward.
        def renewed_three_times() -> bool:
            lease = lease_of(harness, rid)
            assert lease is not None
            owners.add(lease["worker_id"])
            if not beats or lease["heartbeat_at"] != beats[-1]:
                beats.append(lease["heartbeat_at"])
            return len(beats) >= 4

        wait_until(renewed_three_times, timeout=20, what="three heartbeats")
        return real_execute(engine, rid, **kwargs)

    monkeypatch.setattr(worker_module, "execute_run", busy_execute)
    worker = Worker(harness.engine, settings, worker_id="worker:beating")

    outcome = worker.run_one()

    assert outcome is not None and outcome.status is RunStatus.SUCCEEDED
    assert owners == {"worker:beating"}
    assert beats == sorted(beats) and len(set(beats)) == len(beats) >= 4
    assert lease_of(harness, run_id) is None
    # The heartbeat thread ends with the run.
    wait_until(
        lambda: not any(t.name == "csvboard-heartbeat" for t in threading.enumerate()),
        timeout=10,
        what="the heartbeat thread to end",
    )


def _run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run_forever, name="test-worker", daemon=True)
    thread.start()
    return thread


def _staging(h: Harness, run_id: uuid.UUID) -> bool:
    doc = ledger(h, run_id)
    assert doc["status"] in ("queued", "running"), doc  # it must not have ended yet
    return bool(doc["status"] == "running" and doc["target_count"] > 0)


def test_stop_with_abort_fails_the_current_run_with_nothing_committed(
    harness: Harness, big_file: Path
) -> None:
    board = harness.dashboard("board")
    seed = harness.ingest(
        board, small_file(harness, 500, seed=1).read_bytes(), kind="official_ingestion"
    )
    assert seed.status is RunStatus.SUCCEEDED
    before = rows_of(harness, board)
    run_id = harness.queue(board, big_file, kind="official_ingestion")
    worker = Worker(
        harness.engine, harness.settings, worker_id="worker:stopping", poll_seconds=0.05
    )
    thread = _run_in_thread(worker)
    try:
        wait_until(lambda: _staging(harness, run_id), timeout=30, what="staging to start")
        worker.stop(abort_current=True)
        thread.join(60)
        assert not thread.is_alive(), "the worker loop did not exit after stop()"
    finally:
        worker.stop(abort_current=True)
        thread.join(60)

    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.FAILED.value
    assert doc["error_summary"].startswith("WORKER_SHUTDOWN: ")
    assert doc["success_count"] == 0
    assert 0 < doc["target_count"] < BIG_ROWS
    assert doc["unprocessed_count"] == doc["target_count"] - doc["failed_count"]
    assert lease_of(harness, run_id) is None
    assert rows_of(harness, board) == before
    assert items_of(harness, run_id) == 0


def test_stop_without_abort_lets_the_current_run_finish_and_claims_no_more(
    harness: Harness, big_file: Path
) -> None:
    board = harness.dashboard("board")
    other = harness.dashboard("other")
    run_id = harness.queue(board, big_file, kind="official_ingestion")
    waiting = harness.queue(other, small_file(harness, 20, seed=4))
    worker = Worker(
        harness.engine, harness.settings, worker_id="worker:draining", poll_seconds=0.05
    )
    thread = _run_in_thread(worker)
    try:
        wait_until(lambda: _staging(harness, run_id), timeout=30, what="staging to start")
        worker.stop()
        thread.join(120)
        assert not thread.is_alive(), "the worker loop did not exit after its run"
    finally:
        worker.stop(abort_current=True)
        thread.join(60)

    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.SUCCEEDED.value
    assert doc["success_count"] == BIG_ROWS
    assert ledger(harness, waiting)["status"] == RunStatus.QUEUED.value


def test_worker_thread_stop_aborts_a_run_that_outlives_the_grace(
    harness: Harness, big_file: Path
) -> None:
    board = harness.dashboard("board")
    run_id = harness.queue(board, big_file, kind="official_ingestion")
    worker = Worker(harness.engine, harness.settings, worker_id="worker:thread", poll_seconds=0.05)
    wt = WorkerThread(worker)
    wt.start()
    try:
        wait_until(lambda: _staging(harness, run_id), timeout=30, what="staging to start")
        started = time.monotonic()
        wt.stop(grace_seconds=0.2)
        assert time.monotonic() - started < 30
    finally:
        worker.stop(abort_current=True)
    wait_until(
        lambda: not any(t.name == "csvboard-worker" for t in threading.enumerate()),
        timeout=60,
        what="the worker thread to exit",
        interval=0.05,
    )
    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.FAILED.value
    assert doc["error_summary"].startswith("WORKER_SHUTDOWN")
    assert rows_of(harness, board) == {}


# -- settings ---------------------------------------------------------------------------------


def test_lease_and_heartbeat_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSVBOARD_LEASE_TIMEOUT_SECONDS", raising=False)
    monkeypatch.delenv("CSVBOARD_HEARTBEAT_SECONDS", raising=False)
    defaults = Settings.from_env()
    assert defaults.lease_timeout_seconds == 60
    assert defaults.heartbeat_seconds == 5

    monkeypatch.setenv("CSVBOARD_LEASE_TIMEOUT_SECONDS", "15")
    monkeypatch.setenv("CSVBOARD_HEARTBEAT_SECONDS", "0.5")
    tuned = Settings.from_env()
    assert (tuned.lease_timeout_seconds, tuned.heartbeat_seconds) == (15, 0.5)


# -- presence ---------------------------------------------------------------------------------


def test_a_worker_announces_itself_while_it_waits_and_when_it_stops(harness: Harness) -> None:
    from csvboard.runs.models import WorkerPresence
    from csvboard.worker.worker import announce

    h = harness
    with h.write() as session:  # a worker gone for over a week: the others clear it away
        gone = utcnow() - timedelta(days=8)
        session.add(WorkerPresence(worker_id="worker:gone", started_at=gone, seen_at=gone))
    worker = Worker(h.engine, h.settings, worker_id="worker:present", poll_seconds=0.05,
                    reap_every_seconds=0.1)  # fmt: skip
    wt = WorkerThread(worker)
    wt.start()

    def seen() -> list[WorkerPresence]:
        with h.read() as session:
            return list(session.scalars(select(WorkerPresence)))

    try:
        wait_until(lambda: [p.worker_id for p in seen()] == ["worker:present"], timeout=30,
                   what="the worker to announce itself")  # fmt: skip
        first = seen()[0].seen_at
        wait_until(lambda: seen()[0].seen_at > first, timeout=30, what="a second announcement")
        assert seen()[0].stopped_at is None
    finally:
        wt.stop(grace_seconds=5)
    (stopped,) = seen()
    assert stopped.stopped_at is not None and stopped.stopped_at >= stopped.started_at
    announce(h.engine, "worker:present", stopped.started_at)  # it comes back: seen again
    (back,) = seen()
    assert back.seen_at >= stopped.stopped_at and back.stopped_at is None
