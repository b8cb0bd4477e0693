"""Crash safety on PostgreSQL with real ``csvboard worker`` processes.

- N official ingestions (CI 6, soak 30) of a generated schedule (CI 20,000 rows, soak 50,000),
  each export the previous one with steps re-timed, gone and new, each with its worker killed
  by SIGKILL. The kills cycle through the five failpoints of
  ``csvboard.ingest.failpoints`` (the worker SIGKILLs itself while parsing, with a batch in
  staging, with the rows written but not committed, just before and just after the commit)
  and a seeded random delay (classified by the phase seen just before it: ``claim``,
  ``staging``, ``apply`` when ``pg_stat_activity`` shows an apply statement, or
  ``after_commit``). A second worker (lease timeout 5 s, heartbeat 1 s) reaps the lost run,
  and a lost run is re-run with ``retry_run``.
  Checked after each: the run is terminal; a run killed before its commit ended
  ``failed / WORKER_LOST`` and changed nothing (a digest of every stored row of the dashboard
  equals the one taken before the run was queued), one killed after it ``succeeded``; every
  re-run succeeds; every stored row (values, hash, active flag, by key) and the committed
  run's counts equal those of a mirror dashboard that received the same files in the same
  order without interruption (the stale guard and retirement depend on what was stored
  before, so the mirror, not the file alone, says what must be there); and every
  record of the five operator tables — completions, notes, due dates, processing types,
  machining orders, written between runs through ``csvboard.schedule.commands`` — is exactly
  as the people left it, column for column.
- The PostgreSQL server killed (``pg_ctl stop -m immediate``) in the middle of an apply and
  started again on the same data directory: the run ends failed (``DATABASE_ERROR`` or
  ``WORKER_LOST``) and its re-run succeeds.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.db.migrate import upgrade_database
from csvboard.errors import Conflict
from csvboard.ingest.failpoints import FAILPOINTS
from csvboard.runs.service import retry_run
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule import commands as schedule
from csvboard.schedule.models import OPERATOR_TABLES
from csvboard.schedule.sample import HEADER, write_schedule_csv
from pg_cluster import create_database, start_cluster
from reliability.common import SOAK, report, size
from support import Harness, ledger, status_of, wait_until
from worker.test_worker_processes import APPLY_STATEMENTS_SQL, WorkerProcess

RUNS = size(6, 30)
ROWS = size(20_000, 50_000)
TERMINAL = {"succeeded", "failed", "partial", "cancelled"}
KILL_MODES = (*FAILPOINTS, "random")  # CI: each once; soak: each five times
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
def db_url(pg_url: str) -> str:
    """PostgreSQL only: the shared ``harness`` and ``api`` fixtures use it."""
    return pg_url


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


def next_export(previous: Path, target: Path, rng: random.Random) -> Path:
    """The ERP's next export: the previous one with 3 % of the steps re-timed, 1 % gone and
    1 % new (a new 工順 cloned from a neighbour), like the files that arrive day after day."""
    hours, kojun = HEADER.index("FSIGENSHOYORYO"), HEADER.index("FKOJUN")
    with (
        previous.open(encoding="cp932", newline="") as src,
        target.open("w", encoding="cp932", newline="") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst, lineterminator="\r\n")
        writer.writerow(next(reader))
        for row in reader:
            roll = rng.random()
            if roll < 0.01:
                continue  # gone from the schedule
            if roll < 0.04:
                row[hours] = f"{float(row[hours] or 0) + 0.25:.2f}"
            writer.writerow(row)
            if roll > 0.99:
                writer.writerow([*row[:kojun], str(900 + rng.randrange(99)), *row[kojun + 1 :]])
    return target


def rows_by_key(h: Harness, board: CsvDashboard) -> dict[str, tuple[Any, ...]]:
    """Every stored row of the dashboard, retired ones included, by key: values, hash, flag."""
    with h.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT row_key, row_data, data_hash, is_active FROM csv_dashboard_rows"
                " WHERE csv_dashboard_id = :b"
            ),
            {"b": board.id},
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def operator_state(h: Harness) -> dict[str, dict[uuid.UUID, tuple[Any, ...]]]:
    """Every record of every operator-owned table, every column, by table and row id."""
    state: dict[str, dict[uuid.UUID, tuple[Any, ...]]] = {}
    with h.read() as session:
        for model in OPERATOR_TABLES:
            table = model.__table__
            state[table.name] = {
                row.csv_dashboard_row_id: tuple(row) for row in session.execute(select(table)).all()
            }
    return state


def write_operator_data(
    h: Harness, board: CsvDashboard, rng: random.Random, i: int
) -> Counter[str]:
    """What planners and workers do between exports: completions, notes, due dates,
    processing types and machining orders on random active steps (refusals such as an order
    number already taken are part of the game and skipped)."""
    done: Counter[str] = Counter()
    with h.read() as session:
        steps = session.execute(
            select(CsvDashboardRow.id, CsvDashboardRow.row_data).where(
                CsvDashboardRow.csv_dashboard_id == board.id, CsvDashboardRow.is_active
            )
        ).all()
    for row_id, data in rng.sample(steps, 25):
        what = rng.choice(["completion", "note", "due", "processing", "order"])
        try:
            with h.write() as session:
                if what == "completion":
                    intent = rng.choice(["complete", "incomplete"])
                    schedule.set_completion(session, row_id, intent, by="作業者")
                elif what == "note":
                    schedule.set_note(session, row_id, f"注意 {i}-{rng.randrange(1000)}", by="計画")
                elif what == "due":
                    due = date(2027, 1 + rng.randrange(12), 1 + rng.randrange(28))
                    schedule.set_due_date(session, row_id, due, by="計画")
                elif what == "processing":
                    kind = rng.choice(["塗装", "カニゼン", "LSLH"])
                    schedule.set_processing_type(session, row_id, kind, by="計画")
                else:
                    resource = data["FSIGENCD"]
                    n = 1 + rng.randrange(10)
                    schedule.set_order(session, row_id, resource, n, by="計画")
            done[what] += 1
        except Conflict:
            done[f"{what}_refused"] += 1
    return done


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


def test_sigkill_at_every_phase_never_half_commits(harness: Harness, workers: Workers) -> None:
    rng = random.Random(6_2026)
    board = harness.dashboard("schedule")
    # Seed: the first file, committed in-process, so kills land on a dashboard with data.
    # The mirror receives every file too, in-process and never interrupted: what the
    # dashboard must hold after each run (the stale guard and retirement depend on what was
    # stored before, so "the file" alone is not the answer).
    mirror = harness.dashboard("mirror")
    seed_path = write_schedule_csv(harness.files / "seed.csv", ROWS, seed=500)
    seeded_at = time.monotonic()
    assert harness.run(harness.queue(board, seed_path, kind="official_ingestion")).status is (
        RunStatus.SUCCEEDED
    )
    full = (time.monotonic() - seeded_at) * 1.5  # a worker's run: claim, stage, apply
    assert harness.run(harness.queue(mirror, seed_path, kind="official_ingestion")).status is (
        RunStatus.SUCCEEDED
    )
    previous = seed_path
    phases: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    written: Counter[str] = Counter()
    retries = 0

    for i in range(RUNS):
        mode = KILL_MODES[i % len(KILL_MODES)]
        written.update(write_operator_data(harness, board, rng, i))
        people_entered = operator_state(harness)
        path = next_export(previous, harness.files / f"export-{i:02d}.csv", rng)
        previous = path
        # The uninterrupted run of the same file (no worker is alive now to claim it).
        expected = harness.run(harness.queue(mirror, path, kind="official_ingestion"))
        assert expected.status is RunStatus.SUCCEEDED, expected
        before = snapshot(harness, board)

        run_id = harness.queue(board, path, kind="official_ingestion")
        if mode == "random":
            victim = workers.spawn()
            wait_until(victim.started, timeout=60, what="the worker to start")
            time.sleep(rng.uniform(0.0, full))
            phase = phase_now(harness, run_id)
            os.kill(victim.pid, signal.SIGKILL)
            victim.proc.wait(10)
        else:  # the worker kills itself at exactly that point
            victim = workers.spawn(CSVBOARD_FAILPOINT=mode)
            victim.proc.wait(300)
            assert victim.proc.returncode == -signal.SIGKILL, tail_of(victim)
            phase = mode
        phases[phase] += 1

        # Workers reap at start-up and then every 15 s: start the reaper once the lease is
        # stale (lease timeout 5 s), so its first reap finds the run.
        wait_until(partial(lease_stale, harness, run_id), timeout=30, what="stale lease")
        reaper = workers.spawn()
        wait_until(
            partial(is_terminal, harness, run_id),
            timeout=120,
            interval=0.1,
            what="the lost run to end",
            diagnostics=partial(tail_of, reaper),
        )
        doc = ledger(harness, run_id)
        outcomes[f"{phase}:{doc['status']}"] += 1
        if phase == "after_commit":
            assert doc["status"] == "succeeded", doc
        elif phase in FAILPOINTS:
            assert doc["status"] == "failed", doc
        committed_run = run_id
        if doc["status"] != "succeeded":
            # Nothing of it committed: the dashboard is exactly as before the run.
            assert doc["status"] == "failed", doc
            assert doc["error_summary"].startswith("WORKER_LOST"), doc
            assert doc["success_count"] == 0, doc
            assert snapshot(harness, board) == before, f"run {i} ({phase}) changed rows"
            with harness.write() as session:
                rerun = retry_run(session, run_id, requested_by="admin").run_id
            wait_until(
                partial(is_terminal, harness, rerun),
                timeout=180,
                interval=0.1,
                what="the re-run to end",
                diagnostics=partial(tail_of, reaper),
            )
            assert status_of(harness, rerun) == "succeeded", ledger(harness, rerun)
            committed_run = rerun
            retries += 1
        # The dashboard is as if the run had never been interrupted; people's data untouched.
        assert rows_by_key(harness, board) == rows_by_key(harness, mirror), f"run {i} ({phase})"
        committed = ledger(harness, committed_run)
        assert (committed["target_count"], committed["success_count"]) == (
            expected.counts.target,
            expected.counts.success,
        ), committed
        assert operator_state(harness) == people_entered, f"run {i} ({phase})"
        reaper.stop()  # idle: the next victim must be the one that claims the next run

    with harness.engine.connect() as conn:
        open_runs = conn.execute(
            text(
                "SELECT count(*) FROM ingestion_runs WHERE status NOT IN "
                "('succeeded','failed','partial','cancelled')"
            )
        ).scalar_one()
    assert open_runs == 0
    assert set(FAILPOINTS) <= set(phases), phases
    records = sum(len(t) for t in operator_state(harness).values())
    report(
        f"crash-safety: {RUNS} runs x {ROWS} rows, each worker killed (soak={SOAK}); "
        f"kills by phase {dict(sorted(phases.items()))}; outcomes {dict(sorted(outcomes.items()))};"
        f" {retries} re-runs all succeeded; {RUNS} dashboards equal the uninterrupted mirror; "
        f"operator writes {dict(sorted(written.items()))}, {records} operator records intact"
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
