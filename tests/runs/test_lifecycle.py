"""The run lifecycle (docs/contract.md §2.1, "Lifecycle"): compare-and-set transitions,
events, cancel."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Table, insert, select, text
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard
from csvboard.dashboards.service import create_dashboard, upload_feed
from csvboard.db.engine import make_engine, read_session, write_session
from csvboard.db.models import metadata
from csvboard.errors import Conflict, NotFound
from csvboard.runs import lifecycle
from csvboard.runs.lifecycle import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    RunCounts,
    TransitionConflict,
)
from csvboard.runs.models import IngestionRun, IngestionRunLease
from csvboard.runs.queries import error_summary
from csvboard.runs.service import NewSource, create_run
from csvboard.runs.vocabulary import TERMINAL_STATUSES, EventStatus, RunStatus

RUNS: Table = metadata.tables["ingestion_runs"]
EVENTS: Table = metadata.tables["ingestion_events"]

# docs/contract.md §2.1: the only transitions are queued → running and running → each
# terminal status.
SPEC_ALLOWED: frozenset[tuple[RunStatus, RunStatus]] = frozenset(
    (RunStatus(a), RunStatus(b))
    for a, b in (
        ("queued", "running"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "partial"),
        ("running", "cancelled"),
    )
)
TERMINALS = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.CANCELLED]


# --- helpers (also used by test_lifecycle_properties.py) ----------------------------------


@dataclass
class Ledger:
    engine: Engine
    dashboard: CsvDashboard


def open_ledger(url: str, slug: str = "lifecycle") -> Ledger:
    engine = make_engine(url)
    with write_session(engine) as session:
        dashboard = create_dashboard(session, slug, preset="production-schedule")
    return Ledger(engine, dashboard)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    led = open_ledger(db_url)
    try:
        yield led
    finally:
        led.engine.dispose()


def new_run(ledger: Ledger, *, requested_by: str = "tester") -> uuid.UUID:
    """A queued run (through the service, so its 'queued' event exists)."""
    with write_session(ledger.engine) as session:
        feed = upload_feed(session, ledger.dashboard.id, "official")
        run = create_run(
            session,
            dashboard=ledger.dashboard,
            run_kind="incremental_update",
            target_types=["official"],
            sources=[NewSource(feed=feed, stored=None, missing_location="export.csv")],
            requested_by=requested_by,
        )
        return run.run_id


def move(
    ledger: Ledger,
    run_id: uuid.UUID,
    expected: RunStatus,
    to: RunStatus,
    **kwargs: Any,
) -> None:
    if to is RunStatus.FAILED:
        kwargs.setdefault("error_code", "TEST_FAILURE")
    with write_session(ledger.engine) as session:
        lifecycle.transition(session, run_id, expected=expected, to=to, **kwargs)


def put_in(ledger: Ledger, run_id: uuid.UUID, status: RunStatus) -> None:
    """Drive a queued run along the allowed path to ``status``."""
    if status is RunStatus.QUEUED:
        return
    move(ledger, run_id, RunStatus.QUEUED, RunStatus.RUNNING)
    if status is not RunStatus.RUNNING:
        move(ledger, run_id, RunStatus.RUNNING, status)


def run_row(ledger: Ledger, run_id: uuid.UUID) -> dict[str, Any]:
    table = RUNS
    with ledger.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.run_id == run_id)).one()
    return dict(row._mapping)


def events_of(ledger: Ledger, run_id: uuid.UUID) -> list[dict[str, Any]]:
    table = EVENTS
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.run_id == run_id).order_by(table.c.id)
        ).all()
    return [dict(r._mapping) for r in rows]


def status_events(ledger: Ledger, run_id: uuid.UUID) -> list[tuple[str | None, str | None]]:
    return [
        (e["from_status"], e["to_status"])
        for e in events_of(ledger, run_id)
        if e["to_status"] is not None
    ]


def snapshot(ledger: Ledger, run_id: uuid.UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return run_row(ledger, run_id), events_of(ledger, run_id)


# --- the transition graph -----------------------------------------------------------------


def test_allowed_transitions_are_exactly_the_spec_graph() -> None:
    pairs = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert pairs == SPEC_ALLOWED
    assert frozenset(TERMINALS) == TERMINAL_STATUSES


def test_queued_to_running_sets_started_at_only(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    before = run_row(ledger, run_id)
    assert before["status"] == "queued"
    assert before["started_at"] is None and before["finished_at"] is None
    at = datetime(2026, 2, 19, 0, 5, tzinfo=UTC)
    move(ledger, run_id, RunStatus.QUEUED, RunStatus.RUNNING, at=at)
    after = run_row(ledger, run_id)
    assert after["status"] == "running"
    assert after["started_at"] == at
    assert after["finished_at"] is None
    assert after["created_at"] == before["created_at"]


@pytest.mark.parametrize("terminal", TERMINALS)
def test_running_to_terminal_sets_finished_at(ledger: Ledger, terminal: RunStatus) -> None:
    run_id = new_run(ledger)
    started = datetime(2026, 2, 19, 0, 5, tzinfo=UTC)
    move(ledger, run_id, RunStatus.QUEUED, RunStatus.RUNNING, at=started)
    finished = started + timedelta(seconds=42, microseconds=7)
    counts = RunCounts(target=10, success=7, failed=2)
    move(ledger, run_id, RunStatus.RUNNING, terminal, at=finished, counts=counts)
    row = run_row(ledger, run_id)
    assert row["status"] == terminal.value
    assert row["started_at"] == started
    assert row["finished_at"] == finished
    assert row["finished_at"] >= row["started_at"]
    assert (
        row["target_count"],
        row["processed_count"],
        row["success_count"],
        row["failed_count"],
        row["unprocessed_count"],
    ) == (10, 9, 7, 2, 1)


def test_transition_without_explicit_time_uses_now(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    before = datetime.now(UTC)
    put_in(ledger, run_id, RunStatus.SUCCEEDED)
    after = datetime.now(UTC)
    row = run_row(ledger, run_id)
    assert before <= row["started_at"] <= row["finished_at"] <= after


@pytest.mark.parametrize("current", list(RunStatus))
def test_disallowed_pairs_raise_and_change_nothing(ledger: Ledger, current: RunStatus) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, current)
    before = snapshot(ledger, run_id)
    refused = [to for to in RunStatus if (current, to) not in SPEC_ALLOWED]
    assert refused  # every status has at least one target it may not move to
    for to in refused:
        with pytest.raises(IllegalTransition) as info, write_session(ledger.engine) as session:
            lifecycle.transition(
                session, run_id, expected=current, to=to, error_code="X", message="nope"
            )
        assert info.value.code == "ILLEGAL_TRANSITION"
        assert info.value.status == 409
        assert snapshot(ledger, run_id) == before, f"{current} → {to}"


def test_transition_of_an_unknown_run_is_a_conflict(ledger: Ledger) -> None:
    missing = uuid.uuid4()
    with pytest.raises(TransitionConflict) as info, write_session(ledger.engine) as session:
        lifecycle.transition(session, missing, expected=RunStatus.QUEUED, to=RunStatus.RUNNING)
    assert info.value.code == "TRANSITION_CONFLICT"
    assert "missing" in info.value.message


# --- compare-and-set ----------------------------------------------------------------------


def test_stale_expectation_is_a_conflict_never_an_overwrite(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    # Two actors read "queued"; the first moves it, the second still expects queued.
    move(ledger, run_id, RunStatus.QUEUED, RunStatus.RUNNING)
    before = snapshot(ledger, run_id)
    with pytest.raises(TransitionConflict) as info:
        move(ledger, run_id, RunStatus.QUEUED, RunStatus.RUNNING)
    assert info.value.status == 409
    assert "running" in info.value.message
    assert snapshot(ledger, run_id) == before  # started_at not moved, no second event

    # Same at the end: the worker succeeds, a late reaper that still expects running loses.
    move(ledger, run_id, RunStatus.RUNNING, RunStatus.SUCCEEDED)
    before = snapshot(ledger, run_id)
    with pytest.raises(TransitionConflict):
        move(ledger, run_id, RunStatus.RUNNING, RunStatus.FAILED, error_code="WORKER_LOST")
    assert snapshot(ledger, run_id) == before
    assert run_row(ledger, run_id)["status"] == "succeeded"


def test_a_conflict_rolls_back_with_the_callers_other_writes(
    ledger: Ledger,
) -> None:
    """A conflict inside a larger transaction: the caller's other writes roll back with it."""
    run_id = new_run(ledger)
    put_in(ledger, run_id, RunStatus.RUNNING)
    before = snapshot(ledger, run_id)
    with pytest.raises(TransitionConflict), write_session(ledger.engine) as session:
        lifecycle.record_event(session, run_id, "t", "note", EventStatus.WARN, message="half done")
        lifecycle.transition(session, run_id, expected=RunStatus.QUEUED, to=RunStatus.RUNNING)
    assert snapshot(ledger, run_id) == before


def _race(
    ledger: Ledger, run_id: uuid.UUID, expected: RunStatus, targets: list[RunStatus]
) -> list[RunStatus | Exception]:
    """Each target in its own thread and session, all released at once."""
    barrier = threading.Barrier(len(targets))
    results: list[RunStatus | Exception] = [RuntimeError("not run")] * len(targets)

    def worker(i: int, to: RunStatus) -> None:
        try:
            with Session(ledger.engine, expire_on_commit=False) as session:
                barrier.wait(timeout=10)
                with session.begin():
                    lifecycle.transition(
                        session, run_id, expected=expected, to=to, error_code="RACE"
                    )
            results[i] = to
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_racing_the_same_transition_exactly_one_wins(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    results = _race(ledger, run_id, RunStatus.QUEUED, [RunStatus.RUNNING] * 4)
    wins = [r for r in results if r is RunStatus.RUNNING]
    losses = [r for r in results if isinstance(r, TransitionConflict)]
    assert len(wins) == 1, results
    assert len(losses) == 3, results
    assert status_events(ledger, run_id) == [(None, "queued"), ("queued", "running")]


def test_racing_different_endings_exactly_one_wins(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, RunStatus.RUNNING)
    results = _race(ledger, run_id, RunStatus.RUNNING, TERMINALS)
    wins = [r for r in results if isinstance(r, RunStatus)]
    assert len(wins) == 1, results
    assert all(isinstance(r, TransitionConflict) for r in results if r not in wins), results
    assert run_row(ledger, run_id)["status"] == wins[0].value
    assert status_events(ledger, run_id)[-1] == ("running", wins[0].value)
    assert len(status_events(ledger, run_id)) == 3


@pytest.mark.parametrize("winner_commits", [True, False])
def test_postgresql_loser_waits_for_the_winner_then_rechecks(
    pg_url: str, winner_commits: bool
) -> None:
    """Two real connections: B's UPDATE blocks on A's row lock and re-evaluates the status."""
    ledger = open_ledger(pg_url)
    try:
        run_id = new_run(ledger)
        outcome: list[RunStatus | Exception] = []
        pid_b: list[int] = []

        def second() -> None:
            try:
                with Session(ledger.engine) as session, session.begin():
                    pid_b.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                    lifecycle.transition(
                        session, run_id, expected=RunStatus.QUEUED, to=RunStatus.RUNNING
                    )
                outcome.append(RunStatus.RUNNING)
            except Exception as exc:
                outcome.append(exc)

        with Session(ledger.engine) as session_a:
            session_a.begin()
            lifecycle.transition(session_a, run_id, expected=RunStatus.QUEUED, to=RunStatus.RUNNING)
            thread = threading.Thread(target=second)
            thread.start()
            # Wait until B is really blocked on A's row lock.
            deadline = time.monotonic() + 10
            waiting = False
            while time.monotonic() < deadline and not waiting:
                time.sleep(0.05)
                if pid_b:
                    with ledger.engine.connect() as conn:
                        waiting = (
                            conn.execute(
                                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"),
                                {"p": pid_b[0]},
                            ).scalar()
                            == "Lock"
                        )
            assert waiting, "the second transition never waited for the first"
            assert thread.is_alive()
            if winner_commits:
                session_a.commit()
            else:
                session_a.rollback()
        thread.join(timeout=30)
        assert not thread.is_alive()
        if winner_commits:
            assert len(outcome) == 1 and isinstance(outcome[0], TransitionConflict), outcome
        else:
            # A never happened: B's compare-and-set sees queued and wins.
            assert outcome == [RunStatus.RUNNING]
        assert status_events(ledger, run_id) == [(None, "queued"), ("queued", "running")]
    finally:
        ledger.engine.dispose()


@pytest.mark.parametrize("terminal", TERMINALS)
def test_a_terminal_status_never_changes(ledger: Ledger, terminal: RunStatus) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, terminal)
    before = snapshot(ledger, run_id)
    for to in RunStatus:
        # Asked from the terminal status: not a transition that exists.
        with pytest.raises(IllegalTransition), write_session(ledger.engine) as session:
            lifecycle.transition(session, run_id, expected=terminal, to=to, error_code="X")
        # Asked by someone who still believes it is running: a lost race.
        if to in TERMINAL_STATUSES:
            with pytest.raises(TransitionConflict), write_session(ledger.engine) as session:
                lifecycle.transition(
                    session, run_id, expected=RunStatus.RUNNING, to=to, error_code="X"
                )
    with write_session(ledger.engine) as session:
        assert lifecycle.update_progress(session, run_id, RunCounts(5, 5, 0)) is False
    assert snapshot(ledger, run_id) == before


# --- events -------------------------------------------------------------------------------


def test_each_transition_writes_exactly_one_event(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    trace_id = run_row(ledger, run_id)["trace_id"]
    events = events_of(ledger, run_id)
    assert [(e["event_type"], e["from_status"], e["to_status"]) for e in events] == [
        ("queued", None, "queued")
    ]
    for expected, to in ((RunStatus.QUEUED, RunStatus.RUNNING), (RunStatus.RUNNING, "partial")):
        to = RunStatus(to)
        n = len(events_of(ledger, run_id))
        move(ledger, run_id, expected, to, message=f"to {to.value}")
        events = events_of(ledger, run_id)
        assert len(events) == n + 1
        last = events[-1]
        assert last["event_type"] == "status_changed"
        assert (last["from_status"], last["to_status"]) == (expected.value, to.value)
        assert last["trace_id"] == trace_id
        assert last["message"] == f"to {to.value}"
    row = run_row(ledger, run_id)
    running, partial = events_of(ledger, run_id)[-2:]
    assert running["occurred_at"] == row["started_at"]
    assert partial["occurred_at"] == row["finished_at"]
    assert partial["event_status"] == "warn"


@pytest.mark.parametrize("terminal", TERMINALS)
def test_event_status_marks_failures(ledger: Ledger, terminal: RunStatus) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, terminal)
    running, last = events_of(ledger, run_id)[-2:]
    assert running["event_status"] == "success"
    if terminal is RunStatus.FAILED:
        assert last["event_status"] == "failure"
        assert last["error_code"] == "TEST_FAILURE"
    else:
        assert last["event_status"] in ("success", "warn")
        assert last["error_code"] is None


@pytest.mark.parametrize("code", [None, ""])
def test_a_failed_transition_needs_an_error_code(ledger: Ledger, code: str | None) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, RunStatus.RUNNING)
    before = snapshot(ledger, run_id)
    with pytest.raises(ValueError, match="error code"), write_session(ledger.engine) as session:
        lifecycle.transition(
            session, run_id, expected=RunStatus.RUNNING, to=RunStatus.FAILED, error_code=code
        )
    assert snapshot(ledger, run_id) == before


def test_error_summary_is_code_and_message_of_the_failure_event(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, RunStatus.RUNNING)
    move(
        ledger,
        run_id,
        RunStatus.RUNNING,
        RunStatus.FAILED,
        error_code="WORKER_LOST",
        message="no heartbeat for 61 s; nothing was committed",
    )
    with read_session(ledger.engine) as session:
        assert (
            error_summary(session, run_id)
            == "WORKER_LOST: no heartbeat for 61 s; nothing was committed"
        )


def test_error_summary_without_message_is_the_code(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, RunStatus.RUNNING)
    move(ledger, run_id, RunStatus.RUNNING, RunStatus.FAILED, error_code="RUN_TIMEOUT")
    with read_session(ledger.engine) as session:
        assert error_summary(session, run_id) == "RUN_TIMEOUT"


@pytest.mark.parametrize("status", ["queued", "running", "succeeded", "partial", "cancelled"])
def test_no_error_summary_without_a_failure(ledger: Ledger, status: str) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, RunStatus(status))
    with read_session(ledger.engine) as session:
        assert error_summary(session, run_id) is None


# --- cancel -------------------------------------------------------------------------------


def test_cancel_of_a_queued_run_passes_through_running_in_one_transaction(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger)
    with write_session(ledger.engine) as session:
        assert lifecycle.cancel(session, run_id, by="admin") is RunStatus.CANCELLED
    row = run_row(ledger, run_id)
    assert row["status"] == "cancelled"
    assert row["started_at"] is not None
    assert row["finished_at"] == row["started_at"]
    assert status_events(ledger, run_id) == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "cancelled"),
    ]
    running, cancelled = events_of(ledger, run_id)[-2:]
    assert running["occurred_at"] == cancelled["occurred_at"] == row["finished_at"]
    assert "admin" in (cancelled["message"] or "")
    assert row["target_count"] == row["processed_count"] == row["unprocessed_count"] == 0


def test_cancel_of_a_queued_run_is_atomic(ledger: Ledger) -> None:
    """Both transitions live in the caller's transaction: roll it back and neither happened."""
    run_id = new_run(ledger)
    before = snapshot(ledger, run_id)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), write_session(ledger.engine) as session:
        lifecycle.cancel(session, run_id)
        # Inside the transaction, the run is already cancelled, via running.
        assert (
            session.scalar(select(IngestionRun.status).where(IngestionRun.run_id == run_id))
            == "cancelled"
        )
        raise Abort()
    assert snapshot(ledger, run_id) == before


def test_cancel_of_a_queued_run_hides_the_intermediate_running_from_readers(
    pg_url: str,
) -> None:
    """Another connection sees queued until commit, then cancelled — never running."""
    ledger = open_ledger(pg_url)
    try:
        run_id = new_run(ledger)
        with Session(ledger.engine) as session:
            session.begin()
            lifecycle.cancel(session, run_id)
            assert run_row(ledger, run_id)["status"] == "queued"
            assert len(events_of(ledger, run_id)) == 1
            session.commit()
        assert run_row(ledger, run_id)["status"] == "cancelled"
    finally:
        ledger.engine.dispose()


@pytest.mark.parametrize("with_lease", [True, False])
def test_cancel_of_a_running_run_asks_its_worker_to_stop(ledger: Ledger, with_lease: bool) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, RunStatus.RUNNING)
    if with_lease:
        with write_session(ledger.engine) as session:
            session.execute(
                insert(IngestionRunLease).values(
                    run_id=run_id, worker_id="w1", heartbeat_at=datetime.now(UTC)
                )
            )
    with read_session(ledger.engine) as session:
        assert lifecycle.cancel_requested(session, run_id) is False
    before_row, before_events = snapshot(ledger, run_id)

    with write_session(ledger.engine) as session:
        assert lifecycle.cancel(session, run_id, by="admin") is RunStatus.RUNNING

    row, events = snapshot(ledger, run_id)
    assert row == before_row  # still running; the worker ends it at its next batch
    with read_session(ledger.engine) as session:
        lease = session.get_one(IngestionRunLease, run_id)
        assert lease.cancel_requested is True
        assert lease.worker_id == ("w1" if with_lease else None)
        assert lifecycle.cancel_requested(session, run_id) is True
    new = events[len(before_events) :]
    assert [(e["event_type"], e["to_status"]) for e in new] == [("cancel_requested", None)]
    assert new[0]["trace_id"] == row["trace_id"]
    # The worker then ends it; the ledger shows running → cancelled.
    move(ledger, run_id, RunStatus.RUNNING, RunStatus.CANCELLED)
    assert status_events(ledger, run_id)[-1] == ("running", "cancelled")


@pytest.mark.parametrize("terminal", TERMINALS)
def test_cancel_of_a_terminal_run_is_refused(ledger: Ledger, terminal: RunStatus) -> None:
    run_id = new_run(ledger)
    put_in(ledger, run_id, terminal)
    before = snapshot(ledger, run_id)
    with pytest.raises(Conflict) as info, write_session(ledger.engine) as session:
        lifecycle.cancel(session, run_id)
    assert info.value.code == "RUN_NOT_CANCELLABLE"
    assert info.value.status == 409
    assert not isinstance(info.value, (IllegalTransition, TransitionConflict))
    assert snapshot(ledger, run_id) == before


def test_cancel_of_an_unknown_run_is_not_found(ledger: Ledger) -> None:
    with pytest.raises(NotFound) as info, write_session(ledger.engine) as session:
        lifecycle.cancel(session, uuid.uuid4())
    assert info.value.code == "RUN_NOT_FOUND"
    assert info.value.status == 404


def test_cancelling_twice_queued_then_terminal(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    with write_session(ledger.engine) as session:
        lifecycle.cancel(session, run_id)
    with pytest.raises(Conflict) as info, write_session(ledger.engine) as session:
        lifecycle.cancel(session, run_id)
    assert info.value.code == "RUN_NOT_CANCELLABLE"
    assert len(status_events(ledger, run_id)) == 3


# --- counts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "success", "failed"),
    [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (3, 2, 2), (0, 1, 0)],
)
def test_run_counts_refuse_impossible_numbers(target: int, success: int, failed: int) -> None:
    with pytest.raises(ValueError):
        RunCounts(target=target, success=success, failed=failed)


def test_run_counts_derive_processed_and_unprocessed() -> None:
    counts = RunCounts(target=10, success=6, failed=3)
    assert counts.processed == 9
    assert counts.unprocessed == 1
    assert counts.columns() == {
        "target_count": 10,
        "processed_count": 9,
        "success_count": 6,
        "failed_count": 3,
        "unprocessed_count": 1,
    }


def test_progress_is_published_only_while_running(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    with write_session(ledger.engine) as session:
        assert lifecycle.update_progress(session, run_id, RunCounts(4, 1, 1)) is False
    assert run_row(ledger, run_id)["target_count"] == 0
    put_in(ledger, run_id, RunStatus.RUNNING)
    with write_session(ledger.engine) as session:
        assert lifecycle.update_progress(session, run_id, RunCounts(4, 1, 1)) is True
    row = run_row(ledger, run_id)
    assert (row["target_count"], row["processed_count"], row["unprocessed_count"]) == (4, 2, 2)
    assert row["status"] == "running"
    # Progress is not a transition: no event.
    assert len(status_events(ledger, run_id)) == 2


# --- cancel racing the worker (PostgreSQL: two real connections) ---------------------------


def _wait_until_blocked(ledger: Ledger, pid: list[int], thread: threading.Thread) -> bool:
    """True once the backend in ``pid`` waits on a lock; False if the thread finished first."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
        if not pid:
            continue
        with ledger.engine.connect() as conn:
            state = conn.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"),
                {"p": pid[0]},
            ).scalar()
        if state == "Lock":
            return True
    return False


def _cancel_in_thread(
    ledger: Ledger, run_id: uuid.UUID, pid: list[int], outcome: list[RunStatus | Exception]
) -> threading.Thread:
    def cancel() -> None:
        try:
            with Session(ledger.engine) as session, session.begin():
                pid.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                outcome.append(lifecycle.cancel(session, run_id, by="admin"))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=cancel)
    thread.start()
    return thread


def test_postgresql_cancel_racing_the_end_of_a_run_is_refused(pg_url: str) -> None:
    """The worker commits its terminal transition while a cancel is in flight.

    Whichever way the race goes, a cancel that arrives after the run ended must be refused
    (409 RUN_NOT_CANCELLABLE), must not report the run as still running, and must not leave a
    cancel request (lease) or a cancel event behind on a terminal run.
    """
    from sqlalchemy import delete

    ledger = open_ledger(pg_url)
    try:
        run_id = new_run(ledger)
        put_in(ledger, run_id, RunStatus.RUNNING)
        with write_session(ledger.engine) as session:
            session.execute(
                insert(IngestionRunLease).values(
                    run_id=run_id, worker_id="w1", heartbeat_at=datetime.now(UTC)
                )
            )
        pid: list[int] = []
        outcome: list[RunStatus | Exception] = []
        with Session(ledger.engine) as worker:
            worker.begin()
            # The runner's _finish: terminal transition and lease removal, one transaction.
            lifecycle.transition(
                worker,
                run_id,
                expected=RunStatus.RUNNING,
                to=RunStatus.SUCCEEDED,
                counts=RunCounts(3, 3, 0),
            )
            worker.execute(delete(IngestionRunLease).where(IngestionRunLease.run_id == run_id))
            thread = _cancel_in_thread(ledger, run_id, pid, outcome)
            _wait_until_blocked(ledger, pid, thread)
            worker.commit()
        thread.join(timeout=30)
        assert not thread.is_alive()

        assert run_row(ledger, run_id)["status"] == "succeeded"
        assert len(outcome) == 1
        result = outcome[0]
        assert isinstance(result, Conflict), (
            f"cancel of a run that ended succeeded returned {result!r}"
        )
        assert result.code == "RUN_NOT_CANCELLABLE"
        with read_session(ledger.engine) as session:
            assert session.get(IngestionRunLease, run_id) is None
        assert [e["event_type"] for e in events_of(ledger, run_id)][-1] == "status_changed"
    finally:
        ledger.engine.dispose()


def test_postgresql_cancel_racing_the_claim_of_a_queued_run_never_overwrites(
    pg_url: str,
) -> None:
    """A worker claims the run while a cancel of the queued run is in flight."""
    ledger = open_ledger(pg_url)
    try:
        run_id = new_run(ledger)
        pid: list[int] = []
        outcome: list[RunStatus | Exception] = []
        with Session(ledger.engine) as worker:
            worker.begin()
            lifecycle.transition(worker, run_id, expected=RunStatus.QUEUED, to=RunStatus.RUNNING)
            thread = _cancel_in_thread(ledger, run_id, pid, outcome)
            assert _wait_until_blocked(ledger, pid, thread)
            worker.commit()
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert len(outcome) == 1
        # Either the cancel lost the race (an error, 409) or it became a cancel request for the
        # now running run; never a second queued → running.
        result = outcome[0]
        if isinstance(result, Exception):
            assert isinstance(result, Conflict), repr(result)
        else:
            assert result is RunStatus.RUNNING
        assert status_events(ledger, run_id) == [(None, "queued"), ("queued", "running")]
        assert run_row(ledger, run_id)["status"] == "running"
    finally:
        ledger.engine.dispose()
