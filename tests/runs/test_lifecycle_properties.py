"""Random sequences of transitions, cancels and progress updates against a real database.

Whatever is requested — legal or not, fresh or stale — the ledger keeps its invariants
(docs/contract.md §2.1, "Lifecycle" and "Counts"), and every refusal is the one a model of
the lifecycle predicts. One database per engine is reused across examples; each example
makes fresh runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from csvboard.db.engine import read_session, write_session
from csvboard.errors import Conflict
from csvboard.runs import lifecycle
from csvboard.runs.lifecycle import IllegalTransition, RunCounts, TransitionConflict
from csvboard.runs.models import IngestionRunLease
from csvboard.runs.vocabulary import TERMINAL_STATUSES, RunStatus

from .test_lifecycle import SPEC_ALLOWED, Ledger, events_of, new_run, open_ledger, run_row

RUNS_PER_EXAMPLE = 2


# --- programs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    run: int
    expected: RunStatus
    to: RunStatus
    counts: RunCounts | None
    error_code: str | None


@dataclass(frozen=True)
class Cancel:
    run: int


@dataclass(frozen=True)
class Progress:
    run: int
    counts: RunCounts


Action = Transition | Cancel | Progress


@st.composite
def run_counts(draw: st.DrawFn) -> RunCounts:
    target = draw(st.integers(min_value=0, max_value=50))
    success = draw(st.integers(min_value=0, max_value=target))
    failed = draw(st.integers(min_value=0, max_value=target - success))
    return RunCounts(target=target, success=success, failed=failed)


# The graph by source status: queued → [running], running → the four terminal statuses.
ALLOWED_FROM: dict[RunStatus, list[RunStatus]] = {}
for _a, _b in sorted(SPEC_ALLOWED):
    ALLOWED_FROM.setdefault(_a, []).append(_b)

ERROR_CODES = ["DATABASE_ERROR", "WORKER_LOST", "RUN_TIMEOUT", None]
# How the next request relates to the run's current status: a fresh, legal next step; a stale
# one (someone else moved the run first); a pair the graph lacks, mostly from where the run
# is (e.g. failed → running); any pair at all; a cancel; a progress update.
CATEGORIES = [
    "next",
    "next",
    "next",
    "stale",
    "illegal",
    "illegal",
    "arbitrary",
    "cancel",
    "progress",
]


def draw_action(data: st.DataObject, models: list[RunModel]) -> Action:
    """One request, drawn with knowledge of where the runs are (so runs get somewhere)."""
    run = data.draw(st.integers(min_value=0, max_value=len(models) - 1), label="run")
    current = models[run].status
    category = data.draw(st.sampled_from(CATEGORIES), label="category")
    counts = data.draw(st.none() | run_counts(), label="counts")
    code = data.draw(st.sampled_from(ERROR_CODES), label="error_code")
    if category == "next" and current in ALLOWED_FROM:
        to = data.draw(st.sampled_from(ALLOWED_FROM[current]), label="to")
        return Transition(run, current, to, counts, code)
    if category == "stale":
        expected = data.draw(st.sampled_from([s for s in ALLOWED_FROM if s is not current]))
        to = data.draw(st.sampled_from(ALLOWED_FROM[expected]), label="to")
        return Transition(run, expected, to, counts, code)
    if category == "illegal":
        expected = data.draw(st.sampled_from([current, current, *RunStatus]), label="expected")
        refused = [t for t in RunStatus if (expected, t) not in SPEC_ALLOWED]
        to = data.draw(st.sampled_from(refused), label="to")
        return Transition(run, expected, to, counts, code)
    if category == "cancel":
        return Cancel(run)
    if category == "progress":
        return Progress(run, data.draw(run_counts(), label="progress"))
    expected = data.draw(st.sampled_from(list(RunStatus)), label="expected")
    to = data.draw(st.sampled_from(list(RunStatus)), label="to")
    return Transition(run, expected, to, counts, code)


# --- the model ----------------------------------------------------------------------------


@dataclass
class RunModel:
    status: RunStatus = RunStatus.QUEUED
    counts: RunCounts = field(default_factory=RunCounts)
    cancel_requested: bool = False


def _expect(model: RunModel, action: Action) -> type[Exception] | None:
    """What the lifecycle must do with ``action``: the exception type, or None to apply it."""
    if isinstance(action, Transition):
        if (action.expected, action.to) not in SPEC_ALLOWED:
            return IllegalTransition
        if action.to is RunStatus.FAILED and not action.error_code:
            return ValueError
        if model.status is not action.expected:
            return TransitionConflict
        return None
    if isinstance(action, Cancel):
        return Conflict if model.status in TERMINAL_STATUSES else None
    return None


def _apply_to_model(model: RunModel, action: Action, result: Any) -> None:
    if isinstance(action, Transition):
        model.status = action.to
        if action.counts is not None:
            model.counts = action.counts
    elif isinstance(action, Cancel):
        if model.status is RunStatus.QUEUED:
            model.status = RunStatus.CANCELLED
        else:
            model.cancel_requested = True
        assert result is model.status
    else:
        assert result is (model.status is RunStatus.RUNNING)
        if result:
            model.counts = action.counts


def _perform(ledger: Ledger, run_id: uuid.UUID, action: Action) -> Any:
    with write_session(ledger.engine) as session:
        if isinstance(action, Transition):
            lifecycle.transition(
                session,
                run_id,
                expected=action.expected,
                to=action.to,
                counts=action.counts,
                error_code=action.error_code,
                message="property test",
            )
            return None
        if isinstance(action, Cancel):
            return lifecycle.cancel(session, run_id, by="hypothesis")
        return lifecycle.update_progress(session, run_id, action.counts)


# --- the invariants -----------------------------------------------------------------------


def _check_invariants(ledger: Ledger, run_id: uuid.UUID, model: RunModel) -> None:
    row = run_row(ledger, run_id)
    path = [(e["from_status"], e["to_status"]) for e in events_of(ledger, run_id)]
    path = [p for p in path if p[1] is not None]

    # The recorded status sequence is a path of the allowed graph starting at queued.
    assert path[0] == (None, "queued"), path
    for (_, prev_to), (frm, to) in pairwise(path):
        assert frm == prev_to, path
        assert (RunStatus(frm), RunStatus(to)) in SPEC_ALLOWED, path
    # Never a transition out of a terminal status.
    for frm, _ in path[1:]:
        assert RunStatus(frm) not in TERMINAL_STATUSES, path

    # The current status is the last event's to_status, and what the model says.
    assert row["status"] == path[-1][1]
    assert row["status"] == model.status.value

    reached_running = any(to == "running" for _, to in path)
    terminal = RunStatus(row["status"]) in TERMINAL_STATUSES
    assert (row["started_at"] is not None) is reached_running
    assert (row["finished_at"] is not None) is terminal
    if terminal:
        assert row["finished_at"] >= row["started_at"]

    # Counts: processed = success + failed, unprocessed = target − processed.
    assert row["processed_count"] == row["success_count"] + row["failed_count"]
    assert row["unprocessed_count"] == row["target_count"] - row["processed_count"]
    assert row["unprocessed_count"] >= 0
    assert {k: row[k] for k in model.counts.columns()} == model.counts.columns()

    with read_session(ledger.engine) as session:
        flag = session.scalar(
            select(IngestionRunLease.cancel_requested).where(IngestionRunLease.run_id == run_id)
        )
    assert bool(flag) is model.cancel_requested


def _run_program(ledger: Ledger, data: st.DataObject) -> None:
    run_ids = [new_run(ledger) for _ in range(RUNS_PER_EXAMPLE)]
    models = [RunModel() for _ in run_ids]
    steps = data.draw(st.integers(min_value=1, max_value=14), label="steps")
    for _ in range(steps):
        action = draw_action(data, models)
        model = models[action.run]
        expected_error = _expect(model, action)
        try:
            result = _perform(ledger, run_ids[action.run], action)
        except Exception as exc:
            assert expected_error is not None, f"{action} raised {exc!r}"
            assert type(exc) is expected_error, f"{action}: {exc!r}, expected {expected_error}"
            if isinstance(action, Cancel):
                assert isinstance(exc, Conflict) and exc.code == "RUN_NOT_CANCELLABLE"
        else:
            assert expected_error is None, f"{action} should have raised {expected_error}"
            _apply_to_model(model, action, result)
        _check_invariants(ledger, run_ids[action.run], model)
    for run_id, model in zip(run_ids, models, strict=True):
        _check_invariants(ledger, run_id, model)


def test_random_programs_keep_the_ledger_invariants(db_url: str) -> None:
    ledger = open_ledger(db_url, slug="properties")
    examples = 60 if ledger.engine.dialect.name == "sqlite" else 25

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        _run_program(ledger, data)

    try:
        check()
    finally:
        ledger.engine.dispose()


@settings(max_examples=200, deadline=None, database=None)
@given(counts=run_counts())
def test_run_counts_always_add_up(counts: RunCounts) -> None:
    cols = counts.columns()
    assert cols["processed_count"] == cols["success_count"] + cols["failed_count"]
    assert cols["unprocessed_count"] == cols["target_count"] - cols["processed_count"]
    assert min(cols.values()) >= 0


@settings(max_examples=100, deadline=None, database=None)
@given(
    target=st.integers(min_value=0, max_value=20),
    success=st.integers(min_value=0, max_value=25),
    failed=st.integers(min_value=0, max_value=25),
)
def test_run_counts_refuse_more_processed_than_read(target: int, success: int, failed: int) -> None:
    if success + failed > target:
        try:
            RunCounts(target=target, success=success, failed=failed)
        except ValueError:
            return
        raise AssertionError("RunCounts accepted more processed rows than read")
    assert RunCounts(target=target, success=success, failed=failed).unprocessed >= 0
