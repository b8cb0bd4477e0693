"""Crash safety on PostgreSQL with real ``csvboard worker`` processes (issue #6, item 1).

- N official ingestions (CI 6, soak 30) of a generated schedule (CI 20,000 rows, soak 50,000),
  each with its worker killed by SIGKILL after a seeded random delay. Each kill is classified
  by the phase seen just before it: ``claim`` (not yet reading), ``staging``
  (``target_count < total``), ``apply`` (``pg_stat_activity`` shows the upsert or the items
  insert) or ``after_commit`` (run terminal). A second worker (lease timeout 5 s, heartbeat
  1 s) reaps the lost run, and a lost run is re-run with ``retry_run``.
  Checked: every run ends terminal; every succeeded run's rows equal its file exactly (the
  file parsed by csvboard itself: the same file ingested into a reference dashboard, compared
  row_data by row_data); a run that did not commit changed nothing (the dashboard snapshot
  right before the reap equals the one after it); operator data written between runs
  (completions and notes through ``csvboard.schedule.service``) is exactly as expected.
- The PostgreSQL server killed (``pg_ctl stop -m immediate``) in the middle of an apply and
  started again on the same data directory: the run ends failed (``DATABASE_ERROR`` or
  ``WORKER_LOST``) and its re-run succeeds.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.db.migrate import upgrade_database
from csvboard.runs.lifecycle import TransitionConflict
from csvboard.runs.service import retry_run
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule import service as schedule
from csvboard.schedule.models import ProductionScheduleProgress, ProductionScheduleRowNote
from csvboard.schedule.sample import write_schedule_csv
from pg_cluster import create_database, start_cluster
from reliability.common import SOAK, report, size
from support import Harness, ledger, status_of, wait_until
from worker.test_worker_processes import APPLY_STATEMENTS_SQL, WorkerProcess

RUNS = size(6, 30)
ROWS = size(20_000, 50_000)
TERMINAL = {"succeeded", "failed", "partial", "cancelled"}
LEASE_ENV = {"CSVBOARD_LEASE_TIMEOUT_SECONDS": "5", "CSVBOARD_HEARTBEAT_SECONDS": "1"}


class Workers:
    def __init__(self, harness: Harness, logs: Path) -> None:
        self.harness = harness
        self.logs = logs
        self.started: list[WorkerProcess] = []

    def spawn(self, **env_overrides: str) -> WorkerProcess:
        env = dict(os.environ)
        env.update(
            CSVBOARD_DATABASE_URL=self.harness.url,
            CSVBOARD_DATA_DIR=str(self.harness.data_dir),
            PYTHONUNBUFFERED="1",
            **LEASE_ENV,
            **env_overrides,
        )
        process = WorkerProcess([], env, self.logs / f"worker-{len(self.started)}.log")
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@pytest.fixture
def harness(pg_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(pg_url, tmp_path / "data")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def workers(harness: Harness, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(harness, tmp_path)
    try:
        yield w
    finally:
        w.stop_all()


def snapshot(h: Harness, board: CsvDashboard) -> tuple[int, str]:
    """A digest of every stored row of the dashboard (id, key, hash, active flag, values,
    last changing run, updated_at), computed in SQL: equal digests, equal rows."""
    with h.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', id, row_key, data_hash,"
                " is_active, row_data::text, last_changed_run_id, updated_at), ',' ORDER BY id),"
                " '')) FROM csv_dashboard_rows WHERE csv_dashboard_id = :b"
            ),
            {"b": board.id},
        ).one()
    return int(row[0]), str(row[1])


def active_data(h: Harness, board: CsvDashboard) -> dict[str, dict[str, Any]]:
    with h.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT row_key, row_data FROM csv_dashboard_rows"
                " WHERE csv_dashboard_id = :b AND is_active"
            ),
            {"b": board.id},
        ).all()
    return {r[0]: r[1] for r in rows}


def operator_state(h: Harness) -> tuple[dict[uuid.UUID, bool], dict[uuid.UUID, str]]:
    with h.read() as session:
        done = dict(
            session.execute(
                select(
                    ProductionScheduleProgress.csv_dashboard_row_id,
                    ProductionScheduleProgress.is_completed,
                )
            ).all()
        )
        notes = dict(
            session.execute(
                select(
                    ProductionScheduleRowNote.csv_dashboard_row_id, ProductionScheduleRowNote.note
                )
            ).all()
        )
    return done, notes


def lease_age(h: Harness, run_id: uuid.UUID) -> float:
    """Seconds since the run's last heartbeat (infinite when it holds no lease)."""
    with h.engine.connect() as conn:
        age = conn.execute(
            text(
                "SELECT extract(epoch FROM now() - heartbeat_at) FROM ingestion_run_leases"
                " WHERE run_id = :r"
            ),
            {"r": run_id},
        ).scalar()
    return float("inf") if age is None else float(age)


def lease_stale(h: Harness, run_id: uuid.UUID) -> bool:
    return lease_age(h, run_id) > 5.2


def is_terminal(h: Harness, run_id: uuid.UUID) -> bool:
    return status_of(h, run_id) in TERMINAL


def tail_of(worker: WorkerProcess) -> str:
    return worker.output()[-3000:]


def phase_now(h: Harness, run_id: uuid.UUID) -> str:
    doc = ledger(h, run_id)
    if doc["status"] in TERMINAL:
        return "after_commit"
    with h.engine.connect() as conn:
        if conn.execute(text(APPLY_STATEMENTS_SQL)).first() is not None:
            return "apply"
    if doc["status"] == "running":
        return "staging"
    return "claim"


def test_sigkill_at_random_points_never_half_commits(harness: Harness, workers: Workers) -> None:
    rng = random.Random(6_2026)
    board = harness.dashboard("schedule")
    # Seed: the first file, committed in-process, so kills land on a dashboard with data.
    seed_path = write_schedule_csv(harness.files / "seed.csv", ROWS, seed=500)
    seeded_at = time.monotonic()
    assert harness.run(harness.queue(board, seed_path, kind="official_ingestion")).status is (
        RunStatus.SUCCEEDED
    )
    full = (time.monotonic() - seeded_at) * 1.5  # a worker's run: claim, stage, apply
    expected_done: dict[uuid.UUID, bool] = {}
    expected_notes: dict[uuid.UUID, str] = {}
    phases: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    checked_runs = 0
    pool = ThreadPoolExecutor(max_workers=1)

    def reference_of(i: int, path: Path) -> dict[str, dict[str, Any]]:
        ref = harness.dashboard(f"reference-{i}")
        run_id = harness.queue(ref, path, kind="official_ingestion")
        try:
            outcome = harness.run(run_id)
            assert outcome.status is RunStatus.SUCCEEDED, outcome
        except TransitionConflict:
            # A live worker process claimed the reference run first: let it finish it.
            wait_until(
                lambda: status_of(harness, run_id) not in ("queued", "running"),
                timeout=300,
                what="the reference run to end",
            )
            assert status_of(harness, run_id) == "succeeded", ledger(harness, run_id)
        return active_data(harness, ref)

    current = workers.spawn()
    wait_until(lambda: current.started(), timeout=60, what="the first worker to start")
    for i in range(RUNS):
        # Operator data between runs: completions and notes on random active steps.
        with harness.read() as session:
            ids = list(
                session.scalars(
                    select(CsvDashboardRow.id).where(
                        CsvDashboardRow.csv_dashboard_id == board.id, CsvDashboardRow.is_active
                    )
                )
            )
        with harness.write() as session:
            for row_id in rng.sample(ids, 20):
                if rng.random() < 0.5:
                    intent = rng.choice(["complete", "incomplete"])
                    schedule.set_completion(session, row_id, intent, by="作業者")
                    expected_done[row_id] = intent == "complete"
                else:
                    note = f"注意 {i}-{rng.randrange(1000)}"
                    schedule.set_note(session, row_id, note, by="計画")
                    expected_notes[row_id] = note

        path = write_schedule_csv(harness.files / f"export-{i:02d}.csv", ROWS, seed=600 + i)
        reference = pool.submit(reference_of, i, path)  # csvboard's own reading of the file
        run_id = harness.queue(board, path, kind="official_ingestion")
        time.sleep(rng.uniform(0.0, full))
        phase = phase_now(harness, run_id)
        os.kill(current.pid, signal.SIGKILL)
        current.proc.wait(10)
        phases[phase] += 1

        before_reap = snapshot(harness, board)
        # Workers reap at start-up and then every 15 s: start the reaper once the lease is
        # stale (lease timeout 5 s), so its first reap finds the run.
        wait_until(partial(lease_stale, harness, run_id), timeout=30, what="stale lease")
        reaper = workers.spawn()
        wait_until(
            partial(is_terminal, harness, run_id),
            timeout=90,
            interval=0.1,
            what="the lost run to end",
            diagnostics=partial(tail_of, reaper),
        )
        doc = ledger(harness, run_id)
        outcomes[doc["status"]] += 1
        if doc["status"] != "succeeded":
            # Nothing of it committed: the dashboard is exactly as right before the reap.
            assert doc["status"] == "failed", doc
            assert doc["error_summary"].startswith("WORKER_LOST"), doc
            assert doc["success_count"] == 0, doc
            assert snapshot(harness, board) == before_reap, f"run {i} ({phase}) changed rows"
            with harness.write() as session:
                rerun = retry_run(session, run_id, requested_by="admin").run_id
            wait_until(
                partial(is_terminal, harness, rerun),
                timeout=120,
                interval=0.1,
                what="the re-run to end",
                diagnostics=partial(tail_of, reaper),
            )
            assert status_of(harness, rerun) == "succeeded", ledger(harness, rerun)
        else:
            assert phase in ("claim", "apply", "after_commit"), (phase, doc)
        # The committed run's rows equal its file, parsed by csvboard itself.
        assert active_data(harness, board) == reference.result(timeout=120), f"run {i}"
        checked_runs += 1
        current = reaper  # the survivor takes the next run
    pool.shutdown()

    # Every run terminal; operator data exactly as written.
    with harness.engine.connect() as conn:
        open_runs = conn.execute(
            text(
                "SELECT count(*) FROM ingestion_runs WHERE status NOT IN "
                "('succeeded','failed','partial','cancelled')"
            )
        ).scalar_one()
    assert open_runs == 0
    done, notes = operator_state(harness)
    assert {k: done.get(k, False) for k in expected_done} == expected_done
    assert {k: notes.get(k) for k in expected_notes} == expected_notes
    report(
        f"crash-safety: {RUNS} runs x {ROWS} rows killed (soak={SOAK}); phases {dict(phases)}; "
        f"outcomes of killed runs {dict(outcomes)}; {checked_runs} committed states compared; "
        f"{len(expected_done)} completions + {len(expected_notes)} notes intact"
    )


# -- the database server killed mid-apply ------------------------------------------------------


def test_postgres_killed_mid_apply_run_fails_and_retry_succeeds(tmp_path: Path) -> None:
    cluster = start_cluster()
    try:
        create_database(cluster.admin_url, "crash")
        url = cluster.url_for("crash")
        upgrade_database(url)
        h = Harness(url, tmp_path / "data")
        w = Workers(h, tmp_path)
        try:
            board = h.dashboard("schedule")
            path = write_schedule_csv(h.files / "big.csv", size(40_000, 200_000), seed=77)
            run_id = h.queue(board, path, kind="official_ingestion")
            first = w.spawn()

            def in_apply() -> bool:
                with h.engine.connect() as conn:
                    return conn.execute(text(APPLY_STATEMENTS_SQL)).first() is not None

            wait_until(
                in_apply,
                timeout=120,
                interval=0.02,
                what="apply",
                diagnostics=lambda: first.output()[-3000:],
            )
            pg_ctl = str(cluster.bindir / "pg_ctl")
            cluster._run(pg_ctl, "stop", "-D", str(cluster.data_dir), "-m", "immediate", "-w")
            h.engine.dispose()
            cluster._run(
                pg_ctl,
                "start",
                "-D",
                str(cluster.data_dir),
                "-w",
                "-t",
                "60",
                "-l",
                str(cluster.log_file),
                "-o",
                f"-p {cluster.port}",
            )
            # The first worker may survive (it fails the run) or die; a second one reaps.
            second = w.spawn()
            wait_until(
                lambda: status_of(h, run_id) in TERMINAL,
                timeout=90,
                interval=0.3,
                what="the interrupted run to end",
                diagnostics=lambda: first.output()[-3000:] + second.output()[-3000:],
            )
            doc = ledger(h, run_id)
            assert doc["status"] == "failed", doc
            assert doc["error_summary"].split(":")[0] in ("DATABASE_ERROR", "WORKER_LOST"), doc
            assert doc["success_count"] == 0
            with h.write() as session:
                rerun = retry_run(session, run_id, requested_by="admin").run_id
            wait_until(
                lambda: status_of(h, rerun) in TERMINAL,
                timeout=120,
                interval=0.3,
                what="the re-run",
                diagnostics=lambda: second.output()[-3000:],
            )
            assert status_of(h, rerun) == "succeeded", ledger(h, rerun)
            report(f"postgres-kill: run ended {doc['error_summary'][:60]!r}; re-run succeeded")
        finally:
            w.stop_all()
            h.close()
    finally:
        cluster.stop()
