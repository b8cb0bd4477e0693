"""Kiosk writes racing ingestions, on both engines, through a real server.

``csvboard serve`` runs in a process of its own, as deployed; on PostgreSQL it serves only
(``--no-worker``) and a ``csvboard worker`` process executes the runs, as a scaled
deployment does; on SQLite the server's own worker thread does (the embedded case). K kiosk
clients (CI 8 threads for 15 s; soak 30 for 60 s), each on its own keep-alive HTTP
connection like a kiosk browser, set completion (explicit intents) and notes on random steps,
tapping again 0.375–1.125 s after each answer (a worker at a touch screen, at a pace no shop
floor keeps up for a minute; ``CSVBOARD_KIOSK_PAUSE=0`` makes them tap back to back, a load
test whose latency is bound by the server's throughput rather than a kiosk), while
full-snapshot and incremental ingestions of the same dashboard run back to back (some
snapshots drop steps, the next restores them). Every acknowledged (2xx) write is recorded
with its time. Each client owns its own steps, so "the last acknowledged write" of a step is
well defined. At the end the operator state of every step equals its last acknowledged write
(zero lost writes) and every row id still carries its key (zero writes on the wrong step). A
409 ``ROW_RETIRED`` while a step is retired is fine (not acknowledged); anything else (5xx,
other 4xx, a dropped connection) fails the test. On PostgreSQL no request may take more than
1 s at soak size (3 s at CI size, where other tests share the cores); on SQLite the longest
wait is reported (a kiosk write queues behind the merge's write lock there, docs/contract.md §3).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from csvboard.auth import Role, create_token
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.schedule.models import ProductionScheduleProgress, ProductionScheduleRowNote
from reliability.common import SOAK, report, size
from support import (
    SCHEDULE_HEADER,
    Harness,
    ServeProcess,
    schedule_line,
    status_of,
    wait_until,
)
from worker.test_worker_processes import WorkerProcess

CLIENTS = size(8, 30)
# Seconds a kiosk client waits after an answer before its next tap: uniform in [p/2, 3p/2].
PAUSE = float(os.environ.get("CSVBOARD_KIOSK_PAUSE", "0.75"))
SECONDS = size(15, 60)
STEPS = size(600, 3000)
BASE = "/api/v1/schedules/production-schedule"
TERMINAL = {"succeeded", "failed", "partial", "cancelled"}


@dataclass(frozen=True)
class Step:
    product_no: int
    seiban: str
    hincd: str
    kojun: int
    resource: str


def steps_of(n: int) -> list[Step]:
    return [
        Step(1_000 + i, f"S{i // 10:07d}", f"P{i % 10:03d}", 10 * (1 + i % 10), f"R{i % 7:02d}")
        for i in range(n)
    ]


def export(steps: list[Step], version: int) -> str:
    lines = [
        schedule_line(
            s.product_no,
            s.seiban,
            s.hincd,
            s.kojun,
            resource=s.resource,
            hours=f"{1 + version % 5}.5",
        )
        for s in steps
    ]
    return "\n".join([SCHEDULE_HEADER, *lines]) + "\n"


@dataclass
class Write:
    client: int
    row_id: str
    what: str  # completion | note
    value: Any
    sent: float
    took: float
    status: int
    code: str | None


def run_ended(h: Harness, run_id: Any) -> bool:
    return status_of(h, run_id) in TERMINAL


@dataclass
class Deployment:
    harness: Harness
    server: ServeProcess
    operator_token: str


@pytest.fixture
def deployment(db_url: str, tmp_path: Path) -> Iterator[Deployment]:
    harness = Harness(db_url, tmp_path / "data")
    worker: WorkerProcess | None = None
    server: ServeProcess | None = None
    try:
        with harness.write() as session:
            token = create_token(session, "kiosk", Role.OPERATOR)
        if db_url.startswith("postgresql"):
            server = ServeProcess(harness, tmp_path / "serve.log", "--no-worker", "--no-scheduler")
            worker = WorkerProcess([], server.env, tmp_path / "worker.log")
            wait_until(worker.started, timeout=60, what="the worker to start")
        else:
            server = ServeProcess(harness, tmp_path / "serve.log", "--no-scheduler")
        yield Deployment(harness, server, token)
    finally:
        if worker is not None:
            worker.stop()
        if server is not None:
            server.stop()
        harness.close()


class Kiosk:
    """One kiosk's keep-alive connection to the server."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def put(self, path: str, body: dict[str, Any]) -> tuple[int, str | None]:
        self.conn.request("PUT", path, body=json.dumps(body), headers=self.headers)
        response = self.conn.getresponse()
        payload = response.read()
        code = None if response.status < 300 else json.loads(payload).get("code")
        return response.status, code

    def close(self) -> None:
        self.conn.close()


def test_kiosk_writes_racing_ingestions_are_never_lost(deployment: Deployment, db_url: str) -> None:
    engine_name = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    h = deployment.harness
    board: CsvDashboard = h.dashboard()
    steps = steps_of(STEPS)
    assert h.ingest(board, export(steps, 0), kind="official_ingestion").status.value == "succeeded"
    with h.read() as session:
        id_to_key = {
            str(r.id): r.row_key
            for r in session.scalars(
                select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == board.id)
            )
        }
    row_ids = sorted(id_to_key)
    random.Random(1).shuffle(row_ids)
    owned = [row_ids[k::CLIENTS] for k in range(CLIENTS)]

    stop = threading.Event()
    writes: list[Write] = []
    writes_lock = threading.Lock()
    runs: Counter[str] = Counter()
    run_errors: list[Any] = []

    def ingest_loop() -> None:
        """Back to back: queue the next export as soon as the worker ended the last one."""
        rng = random.Random(2)
        version = 0
        try:
            while not stop.is_set():
                version += 1
                kind = version % 3
                if kind == 0:  # full snapshot, every step
                    text, run_kind, label = export(steps, version), "official_ingestion", "snapshot"
                elif kind == 1:  # snapshot without 10 % of the steps: they are retired
                    kept = [s for s in steps if rng.random() > 0.1]
                    text, run_kind, label = export(kept, version), "official_ingestion", "dropping"
                else:  # incremental: a quarter of the steps, new hours (restores none)
                    part = rng.sample(steps, len(steps) // 4)
                    text, run_kind = export(part, version), "incremental_update"
                    label = "incremental"
                run_id = h.queue(board, h.write_file(text), kind=run_kind)
                wait_until(
                    partial(run_ended, h, run_id),
                    timeout=120,
                    interval=0.05,
                    what=f"run {run_id} to end",
                    diagnostics=deployment.server.output,
                )
                runs[f"{label}:{status_of(h, run_id)}"] += 1
        except BaseException as exc:
            run_errors.append(exc)

    def client_loop(k: int) -> None:
        rng = random.Random(100 + k)
        mine = owned[k]
        kiosk = Kiosk(deployment.server.port, deployment.operator_token)
        n = 0
        stop.wait(rng.uniform(0, PAUSE * 1.5))  # kiosks are not switched on in lockstep
        try:
            while not stop.is_set():
                n += 1
                row_id = rng.choice(mine)
                if rng.random() < 0.5:
                    what, value = "completion", rng.choice(["complete", "incomplete"])
                    body: dict[str, Any] = {"intent": value}
                else:
                    what, value = "note", f"c{k} n{n} 段取り"
                    body = {"note": value}
                sent = time.monotonic()
                status, code = kiosk.put(f"{BASE}/rows/{row_id}/{what}", body)
                took = time.monotonic() - sent
                with writes_lock:
                    writes.append(Write(k, row_id, what, value, sent, took, status, code))
                if PAUSE:
                    stop.wait(rng.uniform(PAUSE / 2, PAUSE * 1.5))
        except BaseException as exc:
            run_errors.append(exc)
        finally:
            kiosk.close()

    ingester = threading.Thread(target=ingest_loop)
    clients = [threading.Thread(target=partial(client_loop, k)) for k in range(CLIENTS)]
    ingester.start()
    for t in clients:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in clients:
        t.join(60)
    ingester.join(180)
    assert not run_errors, run_errors

    statuses = Counter((w.status, w.code) for w in writes)
    unexpected = {k: v for k, v in statuses.items() if k[0] >= 300 and k != (409, "ROW_RETIRED")}
    assert not unexpected, statuses

    # The last acknowledged write of each step, per kind (each step has one client).
    last: dict[tuple[str, str], Any] = {}
    for w in sorted(writes, key=lambda w: w.sent):
        if 200 <= w.status < 300:
            last[(w.row_id, w.what)] = w.value
    with h.read() as session:
        done = {
            str(k): v
            for k, v in session.execute(
                select(
                    ProductionScheduleProgress.csv_dashboard_row_id,
                    ProductionScheduleProgress.is_completed,
                )
            ).all()
        }
        notes = {
            str(k): v
            for k, v in session.execute(
                select(
                    ProductionScheduleRowNote.csv_dashboard_row_id, ProductionScheduleRowNote.note
                )
            ).all()
        }
        keys_now = {
            str(r.id): r.row_key
            for r in session.scalars(
                select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == board.id)
            )
        }
    lost = []
    for (row_id, what), value in last.items():
        actual = done.get(row_id) if what == "completion" else notes.get(row_id)
        expected = (value == "complete") if what == "completion" else value
        if actual != expected:
            lost.append((row_id, what, expected, actual))
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    # No write landed on another step: ids keep their keys, and no state on unwritten rows.
    assert keys_now == id_to_key
    written = {row_id for row_id, _ in last}
    assert set(done) <= {w.row_id for w in writes if w.what == "completion"}
    assert set(notes) <= {w.row_id for w in writes if w.what == "note"}
    assert written <= set(id_to_key)

    acked = sum(1 for w in writes if 200 <= w.status < 300)
    latencies = [w.took for w in writes]
    worst = max(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 100 else worst
    p50 = statistics.median(latencies)
    report(
        f"concurrency ({engine_name}): {CLIENTS} clients x {SECONDS} s (pause {PAUSE} s),"
        f" {len(writes)} writes, "
        f"{acked} acknowledged, {statuses.get((409, 'ROW_RETIRED'), 0)} refused ROW_RETIRED, "
        f"0 lost, 0 on the wrong step; runs {dict(runs)}; "
        f"latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms"
    )
    per_client = Counter(w.client for w in writes if 200 <= w.status < 300)
    assert len(per_client) == CLIENTS and min(per_client.values()) >= 5, per_client
    assert sum(runs.values()) >= 3, runs
    if engine_name == "postgresql":
        # The 1 s target is asserted at soak size, run alone (README). At CI size the other
        # xdist worker shares the two cores with this test's server, worker and clients, so
        # only a stall (a write waiting on the apply, say) is caught there.
        limit = 1.0 if SOAK else 3.0
        assert worst <= limit, f"max kiosk write latency {worst:.3f} s on PostgreSQL"
