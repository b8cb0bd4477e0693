"""Races on the ledger, both engines, through the real API where it matters.

- the same Idempotency-Key with different payloads, sent concurrently: exactly one run exists,
  every other request is refused 409;
- concurrent re-runs of one failed parent: exactly one new run, the others 409
  ``RETRY_ALREADY_ACTIVE``;
- a cancel racing the run's commit, many iterations: the ledger only ever shows the path
  queued → running → terminal, and a terminal status never changes afterwards.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from csvboard.errors import Conflict
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionEvent, IngestionRun
from reliability.common import report, size
from support import SCHEDULE_HEADER, Api, Harness, schedule_line

RUNS = "/api/v1/ops/ingestion/runs"
THREADS = 8
CANCEL_ITERATIONS = size(25, 200)
TERMINAL = {"succeeded", "failed", "partial", "cancelled"}


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    client = Api(db_url, tmp_path / "data", run_executor=False)
    client.harness.dashboard()
    try:
        yield client
    finally:
        client.close()


def schedule_csv(n: int, seed: int) -> bytes:
    lines = [schedule_line(1000 + i, f"S{seed:07d}", f"P{i:04d}", 10) for i in range(n)]
    return ("\n".join([SCHEDULE_HEADER, *lines]) + "\n").encode("cp932")


def together(n: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` in n threads released at the same instant; return results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def body(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def run_count(h: Harness) -> int:
    with h.read() as session:
        return int(session.scalar(select(func.count()).select_from(IngestionRun)) or 0)


def test_same_key_different_payloads_concurrently_one_run(api: Api) -> None:
    key = str(uuid.uuid4())

    def start(i: int) -> Any:
        return api.post(
            RUNS,
            headers={"Idempotency-Key": key},
            data={"dashboard": "production-schedule", "run_kind": "incremental_update"},
            files={"file": (f"s{i}.csv", schedule_csv(5, seed=i), "text/csv")},
        )

    responses = together(THREADS, start)
    codes = Counter(r.status_code for r in responses)
    assert codes[202] == 1, [(r.status_code, r.text[:200]) for r in responses]
    assert codes[409] == THREADS - 1, codes
    for r in responses:
        if r.status_code == 409:
            assert r.json()["code"] in ("IDEMPOTENCY_CONFLICT", "RUN_ALREADY_ACTIVE"), r.text
    assert run_count(api.harness) == 1


def test_concurrent_retries_of_one_parent_make_exactly_one_run(api: Api) -> None:
    h = api.harness
    with h.read() as session:
        from csvboard.dashboards.service import get_dashboard

        board = get_dashboard(session, "production-schedule")
    bad = schedule_csv(3, seed=1).replace(b"FSEIBAN", b"SEIBAN", 1)
    failed = h.ingest(board, bad)
    assert failed.status.value == "failed", failed

    responses = together(THREADS, lambda i: api.post(f"{RUNS}/{failed.run_id}/retry", as_="admin"))
    codes = Counter(r.status_code for r in responses)
    assert codes[202] == 1, [(r.status_code, r.text[:200]) for r in responses]
    refused = [r.json()["code"] for r in responses if r.status_code != 202]
    assert refused == ["RETRY_ALREADY_ACTIVE"] * (THREADS - 1), refused
    with h.read() as session:
        children = session.scalar(
            select(func.count())
            .select_from(IngestionRun)
            .where(IngestionRun.parent_run_id == failed.run_id)
        )
    assert children == 1


def _moves(h: Harness, run_id: uuid.UUID) -> list[tuple[str | None, str | None]]:
    with h.read() as session:
        return [
            (e.from_status, e.to_status)
            for e in session.scalars(
                select(IngestionEvent)
                .where(
                    IngestionEvent.run_id == run_id, IngestionEvent.event_type == "status_changed"
                )
                .order_by(IngestionEvent.id)
            )
        ]


def _status(h: Harness, run_id: uuid.UUID) -> str:
    with h.read() as session:
        return str(session.get_one(IngestionRun, run_id, populate_existing=True).status)


def test_cancel_racing_the_commit_never_shows_an_illegal_transition(
    db_url: str, tmp_path: Path
) -> None:
    h = Harness(db_url, tmp_path / "data")
    rng = random.Random(33)
    outcomes: Counter[str] = Counter()
    try:
        board = h.dashboard()
        for i in range(CANCEL_ITERATIONS):
            run_id = h.queue(board, h.write_file(schedule_csv(rng.randrange(50, 400), seed=i)))
            cancel_result: list[Any] = []

            def cancel_soon(run_id: uuid.UUID = run_id, out: list[Any] = cancel_result) -> None:
                time.sleep(rng.uniform(0.0, 0.06))
                try:
                    with h.write() as session:
                        out.append(lifecycle.cancel(session, run_id, by="admin"))
                except Conflict as exc:  # already ended: refused, never a change
                    out.append(exc.code)

            t = threading.Thread(target=cancel_soon)
            t.start()
            try:
                executed: str | None = h.run(run_id).status.value
            except lifecycle.TransitionConflict:
                # The cancel won while the run was still queued: claiming it is refused (a lost
                # compare-and-set is an error, never an overwrite). Counted separately.
                executed = None
                outcomes["cancelled_while_queued"] += 1
            t.join(30)
            status = _status(h, run_id)
            assert status in TERMINAL
            assert status == (executed or "cancelled")
            moves = _moves(h, run_id)
            assert moves == [("queued", "running"), ("running", status)], (i, moves, cancel_result)
            # A terminal status never changes: a late cancel is refused.
            with pytest.raises(Conflict), h.write() as session:
                lifecycle.cancel(session, run_id, by="late")
            assert _status(h, run_id) == status
            assert _moves(h, run_id) == moves
            outcomes[status] += 1
    finally:
        h.close()
    report(
        f"cancel-vs-commit ({db_url.split(':')[0]}): {CANCEL_ITERATIONS} races → {dict(outcomes)}"
    )
