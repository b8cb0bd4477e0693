"""Real ``csvboard worker`` processes sharing one PostgreSQL (docs/contract.md §2.1 outcome,
§3 ordering, §4).

- four workers drain 40 runs over 5 dashboards: per dashboard in creation order and never
  overlapping, no run executed twice, the work spread over several workers;
- a worker killed with SIGKILL in the middle of its apply: another worker's reaper fails the run
  ``WORKER_LOST``, nothing of it is committed (rows and operator data exactly as before), and a
  re-run executed by the surviving worker succeeds;
- a cancel during a 200,000-row run ends it ``cancelled`` with nothing committed;
- SIGTERM with ``--grace 1`` fails the current run ``WORKER_SHUTDOWN`` and the process exits.

The 200,000-row export is generated once per module.
"""

from __future__ import annotations

import csv
import itertools
import os
import random
import re
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionEvent, IngestionItem, IngestionRun, IngestionRunLease
from csvboard.runs.service import retry_run
from csvboard.runs.vocabulary import TERMINAL_STATUSES, RunStatus
from csvboard.schedule import commands as schedule
from csvboard.schedule.models import OPERATOR_TABLES, ProductionScheduleExternalCompletion
from csvboard.schedule.sample import HEADER, generate_rows, write_schedule_csv
from support import Harness, csvboard_command, ledger, status_of, wait_until

BIG_ROWS = 200_000
SEED_ROWS = 3_000  # the dashboard's schedule before the big run: the big file's first steps
BIG_SEED = 7
TERMINAL = {s.value for s in TERMINAL_STATUSES}
Key = tuple[str, str, str, str]  # FSEIBAN, FHINCD, FSIGENCD, FKOJUN

# Statements only the apply transaction runs, from the upsert on: rows are being written.
APPLY_STATEMENTS_SQL = """
SELECT pid, left(query, 80) AS query FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
  AND (query LIKE 'INSERT INTO csv_dashboard_rows%'
       OR query LIKE 'UPDATE csv_dashboard_rows%'
       OR query LIKE 'INSERT INTO ingestion_items%'
       OR query LIKE 'INSERT INTO production_schedule_external_completion%')
"""


# -- the exports ------------------------------------------------------------------------------


def key_of(row: list[str] | dict[str, Any]) -> Key:
    if isinstance(row, dict):
        return (row["FSEIBAN"], row["FHINCD"], row["FSIGENCD"], row["FKOJUN"])
    return (row[1], row[2], row[4], row[7])


def keys_of_file(path: Path) -> set[Key]:
    with path.open(encoding="cp932", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        return {key_of(r) for r in reader if r}


@dataclass
class BigExport:
    """200,000 steps; the first ``SEED_ROWS`` are the seed schedule's steps with new hours."""

    path: Path
    keys: set[Key] = field(default_factory=set)
    hours: dict[Key, str] = field(default_factory=dict)  # keys that occur once in the file


@pytest.fixture(scope="module")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> BigExport:
    path = tmp_path_factory.mktemp("exports") / "生産日程_changed.csv"
    export = BigExport(path)
    seen: Counter[Key] = Counter()
    with path.open("w", encoding="cp932", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADER)
        for row in generate_rows(BIG_ROWS, seed=BIG_SEED):
            row[6] = f"{float(row[6]) + 0.25:.2f}"  # every step's required time changed
            writer.writerow(row)
            key = key_of(row)
            seen[key] += 1
            export.hours[key] = row[6]
    export.keys = set(seen)
    for key, n in seen.items():
        if n > 1:
            del export.hours[key]
    return export


# -- worker processes -------------------------------------------------------------------------


class WorkerProcess:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*csvboard_command(), "worker", "--poll", "0.2", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def started(self) -> bool:
        assert self.proc.poll() is None, f"worker {self.pid} exited:\n{self.output()[-3000:]}"
        return "worker_started" in self.output()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def db_url(pg_url: str) -> str:
    """PostgreSQL only: the shared ``harness`` and ``api`` fixtures use it."""
    return pg_url


@pytest.fixture
def spawn(harness: Harness, tmp_path: Path) -> Iterator[Spawn]:
    """Start ``csvboard worker`` processes on the harness's database and data dir; all are
    killed at the end of the test, whatever happened."""
    started: list[WorkerProcess] = []

    def start(*args: str, **env_overrides: str) -> WorkerProcess:
        env = dict(os.environ)
        env.update(
            CSVBOARD_DATABASE_URL=harness.url,
            CSVBOARD_DATA_DIR=str(harness.data_dir),
            PYTHONUNBUFFERED="1",
            **env_overrides,
        )
        process = WorkerProcess(list(args), env, tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


# -- helpers ----------------------------------------------------------------------------------


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


def items_of(h: Harness, run_id: uuid.UUID) -> Counter[str | None]:
    with h.read() as session:
        return Counter(
            dict(
                session.execute(
                    select(IngestionItem.update_type, func.count())
                    .where(IngestionItem.run_id == run_id)
                    .group_by(IngestionItem.update_type)
                ).all()
            )
        )


def rows_of(h: Harness, dashboard: CsvDashboard) -> dict[str, tuple[Any, ...]]:
    """Every stored row by key: id, hash, active flag, values, last changing run, updated_at."""
    with h.read() as session:
        return {
            r.row_key: (
                r.id, r.data_hash, r.is_active, r.row_data, r.last_changed_run_id, r.updated_at
            )
            for r in session.execute(
                select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == dashboard.id)
            ).scalars()
        }  # fmt: skip


def active_steps(h: Harness, dashboard: CsvDashboard) -> dict[Key, tuple[uuid.UUID, str]]:
    """Active rows by step: (row id, required time). The fields are read in SQL (200,000 rows)."""
    fields = ", ".join(f"row_data->>'{f}'" for f in ("FSEIBAN", "FHINCD", "FSIGENCD", "FKOJUN"))
    with h.engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT id, {fields}, row_data->>'FSIGENSHOYORYO' FROM csv_dashboard_rows"
                " WHERE csv_dashboard_id = :board AND is_active"
            ),
            {"board": dashboard.id},
        ).all()
    return {(r[1], r[2], r[3], r[4]): (r[0], r[5]) for r in rows}


def operator_records(h: Harness) -> dict[str, dict[uuid.UUID, tuple[Any, ...]]]:
    """Every operator-owned record, every column, plus the source-owned external completion."""
    snapshot: dict[str, dict[uuid.UUID, tuple[Any, ...]]] = {}
    with h.read() as session:
        for model in (*OPERATOR_TABLES, ProductionScheduleExternalCompletion):
            records = session.execute(select(model.__table__)).all()
            snapshot[model.__tablename__] = {r.csv_dashboard_row_id: tuple(r) for r in records}
    return snapshot


def worker_ids_of(h: Harness, run_id: uuid.UUID) -> list[str]:
    """Who took the run: the ``started by <worker>`` message of each queued → running event."""
    return [
        str(e["message"]).removeprefix("started by ")
        for e in events_of(h, run_id)
        if (e["from_status"], e["to_status"]) == ("queued", "running")
    ]


def pid_of_worker_id(worker_id: str) -> int:
    match = re.fullmatch(r"worker:[^:]*:(\d+):[0-9a-f]+", worker_id)
    assert match, f"unexpected worker id {worker_id!r}"
    return int(match.group(1))


def seed_schedule(h: Harness, dashboard: CsvDashboard, rows: int) -> None:
    """The schedule before the big run (its first ``rows`` steps) and operator data on it."""
    path = write_schedule_csv(h.files / "seed.csv", rows, seed=BIG_SEED)
    outcome = h.run(h.queue(dashboard, path, kind="official_ingestion"))
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    with h.read() as session:
        done_upstream = set(
            session.scalars(
                select(ProductionScheduleExternalCompletion.csv_dashboard_row_id).where(
                    ProductionScheduleExternalCompletion.is_completed
                )
            )
        )
        steps = [
            (r.id, r.row_data)
            for r in session.execute(
                select(CsvDashboardRow)
                .where(CsvDashboardRow.csv_dashboard_id == dashboard.id)
                .order_by(CsvDashboardRow.row_key)
            ).scalars()
            if not r.row_data["FHINCD"].startswith(("MH", "SH")) and r.id not in done_upstream
        ]
    orders: Counter[str] = Counter()
    with h.write() as session:
        for i, (row_id, data) in enumerate(steps[:40]):
            kind = i % 5
            if kind == 0:
                schedule.set_completion(session, row_id, "complete", by="作業者A")
            elif kind == 1:
                schedule.set_note(session, row_id, f"段取り注意 #{i}", by="計画B")
            elif kind == 2:
                schedule.set_due_date(session, row_id, "2026-12-24", by="計画B")
            elif kind == 3:
                schedule.set_processing_type(session, row_id, "塗装", by="計画B")
            else:
                resource = data["FSIGENCD"]
                orders[resource] += 1
                if orders[resource] <= 10:
                    schedule.set_order(session, row_id, resource, orders[resource], by="計画B")
    records = operator_records(h)
    assert all(records[m.__tablename__] for m in OPERATOR_TABLES), "seed every operator table"


def running_with_target(h: Harness, run_id: uuid.UUID) -> bool:
    doc = ledger(h, run_id)
    assert doc["status"] in ("queued", "running"), f"the run ended too early: {doc}"
    return bool(doc["status"] == "running" and doc["target_count"] > 0)


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- a. many workers, many dashboards ----------------------------------------------------------


def test_four_workers_drain_forty_runs_in_order_per_dashboard(
    harness: Harness, spawn: Spawn
) -> None:
    workers = [spawn() for _ in range(4)]
    wait_until(
        lambda: all(w.started() for w in workers),
        timeout=60,
        what="four workers to start",
        diagnostics=lambda: "\n".join(w.output()[-2000:] for w in workers),
    )
    boards = [harness.dashboard(f"line-{i}") for i in range(5)]
    rng = random.Random(20261124)
    plan: list[tuple[CsvDashboard, int, bool]] = []  # dashboard, steps, bad header
    for n in range(40):
        board = boards[rng.randrange(5) if n >= 5 else n]
        plan.append((board, rng.randrange(200, 2001), n >= 5 and rng.random() < 0.2))
    plan[7] = (plan[7][0], plan[7][1], True)  # at least one bad header, whatever the dice say

    runs: list[tuple[uuid.UUID, CsvDashboard, Path, bool]] = []
    for n, (board, steps, bad) in enumerate(plan):
        path = write_schedule_csv(harness.files / f"export-{n:02d}.csv", steps, seed=1000 + n)
        if bad:  # the 製番 column is missing: the run fails HEADER_MISMATCH
            path.write_bytes(path.read_bytes().replace(b"FSEIBAN", b"SEIBAN", 1))
        runs.append((harness.queue(board, path, kind="official_ingestion"), board, path, bad))

    def all_terminal() -> bool:
        with harness.read() as session:
            open_runs = session.scalar(
                select(func.count())
                .select_from(IngestionRun)
                .where(IngestionRun.status.not_in(TERMINAL))
            )
        return open_runs == 0

    wait_until(
        all_terminal,
        timeout=150,
        what="all 40 runs to end",
        interval=0.2,
        diagnostics=lambda: "\n".join(w.output()[-2000:] for w in workers),
    )

    docs = {run_id: ledger(harness, run_id) for run_id, *_ in runs}
    for run_id, _board, _path, bad in runs:
        doc = docs[run_id]
        if bad:
            assert doc["status"] == RunStatus.FAILED.value, doc
            assert doc["error_summary"].startswith("HEADER_MISMATCH"), doc
        else:
            assert doc["status"] == RunStatus.SUCCEEDED.value, doc
        # Executed exactly once: one queued → running and one terminal transition.
        moves = [
            (e["from_status"], e["to_status"])
            for e in events_of(harness, run_id)
            if e["event_type"] == "status_changed"
        ]
        assert moves == [("queued", "running"), ("running", doc["status"])], moves

    # Per dashboard: started in creation order, each after the previous one finished.
    for board in boards:
        mine = sorted(
            (docs[r] for r, b, _, _ in runs if b.id == board.id),
            key=lambda d: (d["created_at"], str(d["run_id"])),
        )
        assert len(mine) >= 1
        for earlier, later in itertools.pairwise(mine):
            assert later["started_at"] >= earlier["finished_at"], (board.slug, earlier, later)

        # The last successful snapshot is what the dashboard shows: applied in order.
        last_good = [p for r, b, p, bad in runs if b.id == board.id and not bad][-1]
        assert set(active_steps(harness, board)) == keys_of_file(last_good), board.slug

    # No run taken twice, and the work was shared by several of our processes.
    takers = {run_id: worker_ids_of(harness, run_id) for run_id, *_ in runs}
    assert all(len(ids) == 1 for ids in takers.values()), takers
    worker_ids = {ids[0] for ids in takers.values()}
    assert {pid_of_worker_id(w) for w in worker_ids} <= {w.pid for w in workers}
    assert len(worker_ids) >= 2, f"only {worker_ids} did any work"

    # Idle workers stop promptly and cleanly on SIGTERM.
    for w in workers:
        w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        assert w.proc.wait(20) == 0, w.output()[-2000:]


# -- b. kill -9 in the middle of the apply ------------------------------------------------------


def test_kill_9_mid_apply_commits_nothing_and_a_rerun_succeeds(
    harness: Harness, spawn: Spawn, big_export: BigExport
) -> None:
    board = harness.dashboard("schedule")
    seed_schedule(harness, board, SEED_ROWS)
    rows_before = rows_of(harness, board)
    operator_before = operator_records(harness)
    run_id = harness.queue(board, big_export.path, kind="official_ingestion")
    lease_env = {"CSVBOARD_LEASE_TIMEOUT_SECONDS": "15", "CSVBOARD_HEARTBEAT_SECONDS": "1"}
    first = spawn(**lease_env)

    def in_apply() -> bool:
        assert first.proc.poll() is None, first.output()[-3000:]
        assert status_of(harness, run_id) in ("queued", "running"), ledger(harness, run_id)
        with harness.engine.connect() as conn:
            return conn.execute(text(APPLY_STATEMENTS_SQL)).first() is not None

    wait_until(
        in_apply,
        timeout=120,
        interval=0.02,
        what="the worker to be inside the apply",
        diagnostics=lambda: first.output()[-3000:],
    )
    os.kill(first.pid, signal.SIGKILL)
    assert first.proc.wait(10) == -signal.SIGKILL
    assert status_of(harness, run_id) == RunStatus.RUNNING.value  # nothing ended the run

    second = spawn(**lease_env)
    wait_until(
        lambda: status_of(harness, run_id) in TERMINAL,
        timeout=90,
        interval=0.2,
        what="the reaper to end the lost run",
        diagnostics=lambda: second.output()[-3000:],
    )
    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.FAILED.value, doc
    assert doc["error_summary"].startswith("WORKER_LOST: "), doc
    assert doc["success_count"] == 0
    assert doc["target_count"] == BIG_ROWS  # it had read the whole file
    assert doc["unprocessed_count"] == BIG_ROWS - doc["failed_count"]
    with harness.read() as session:
        assert session.get(IngestionRunLease, run_id) is None
    assert items_of(harness, run_id) == Counter()
    # Nothing of the run was committed: rows and operator data exactly as before.
    assert rows_of(harness, board) == rows_before
    assert operator_records(harness) == operator_before

    with harness.write() as session:
        rerun = retry_run(session, run_id, requested_by="admin").run_id
    wait_until(
        lambda: status_of(harness, rerun) in TERMINAL,
        timeout=150,
        interval=0.2,
        what="the surviving worker to execute the re-run",
        diagnostics=lambda: second.output()[-3000:],
    )
    redo = ledger(harness, rerun)
    assert redo["status"] == RunStatus.SUCCEEDED.value, redo
    assert redo["parent_run_id"] == run_id
    assert redo["success_count"] == BIG_ROWS
    assert [pid_of_worker_id(w) for w in worker_ids_of(harness, rerun)] == [second.pid]

    # The rows now reflect the file; seeded steps kept their ids, and their operator data.
    steps = active_steps(harness, board)
    assert set(steps) == big_export.keys
    for key, hours in big_export.hours.items():
        assert steps[key][1] == hours, key
    before_ids = {key_of(data): rid for rid, _h, active, data, *_ in rows_before.values() if active}
    assert {key: steps[key][0] for key in before_ids} == before_ids
    operator_after = operator_records(harness)
    for model in OPERATOR_TABLES:
        name = model.__tablename__
        assert operator_after[name] == operator_before[name], name


# -- c. cancel during a big run -----------------------------------------------------------------


def test_cancel_during_a_200k_row_run_commits_nothing(
    harness: Harness, spawn: Spawn, big_export: BigExport
) -> None:
    board = harness.dashboard("schedule")
    seed_schedule(harness, board, 1_000)
    rows_before = rows_of(harness, board)
    operator_before = operator_records(harness)
    run_id = harness.queue(board, big_export.path, kind="official_ingestion")
    worker = spawn()

    wait_until(
        lambda: running_with_target(harness, run_id),
        timeout=60,
        interval=0.02,
        what="staging to start",
        diagnostics=lambda: worker.output()[-3000:],
    )
    with harness.write() as session:
        assert lifecycle.cancel(session, run_id, by="admin") is RunStatus.RUNNING
    wait_until(
        lambda: status_of(harness, run_id) in TERMINAL,
        timeout=60,
        what="the run to end",
        diagnostics=lambda: worker.output()[-3000:],
    )

    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.CANCELLED.value, doc
    assert doc["success_count"] == 0
    assert 0 < doc["target_count"] < BIG_ROWS
    assert doc["error_summary"] is None
    assert [e["event_type"] for e in events_of(harness, run_id)][-2:] == [
        "cancel_requested",
        "status_changed",
    ]
    items = items_of(harness, run_id)
    assert items["new"] == 0 and items["existing"] == 0, items
    assert rows_of(harness, board) == rows_before
    assert operator_records(harness) == operator_before
    assert worker.proc.poll() is None  # the worker goes on


# -- d. SIGTERM with a grace period ------------------------------------------------------------


def test_sigterm_fails_the_current_run_after_the_grace_and_exits(
    harness: Harness, spawn: Spawn, big_export: BigExport
) -> None:
    board = harness.dashboard("schedule")
    other = harness.dashboard("other")
    seed_schedule(harness, board, 1_000)
    rows_before = rows_of(harness, board)
    run_id = harness.queue(board, big_export.path, kind="official_ingestion")
    waiting = harness.queue(
        other,
        write_schedule_csv(harness.files / "other.csv", 100, seed=3),
        kind="official_ingestion",
    )
    worker = spawn("--grace", "1")

    wait_until(
        lambda: running_with_target(harness, run_id),
        timeout=60,
        interval=0.02,
        what="staging to start",
        diagnostics=lambda: worker.output()[-3000:],
    )
    sent_at = utcnow()
    worker.proc.send_signal(signal.SIGTERM)
    try:
        code = worker.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit 30 s after SIGTERM:\n{worker.output()[-3000:]}")
    assert code == 0, worker.output()[-3000:]

    doc = ledger(harness, run_id)
    assert doc["status"] == RunStatus.FAILED.value, doc
    assert doc["error_summary"].startswith("WORKER_SHUTDOWN: "), doc
    assert doc["success_count"] == 0
    # The run had its grace: it was failed no earlier than a second after the signal.
    assert aware(doc["finished_at"]) >= sent_at + timedelta(seconds=0.95)
    assert rows_of(harness, board) == rows_before
    assert items_of(harness, run_id) == Counter()
    # Stopping means no new claims: the other dashboard's run is still queued.
    assert status_of(harness, waiting) == RunStatus.QUEUED.value
