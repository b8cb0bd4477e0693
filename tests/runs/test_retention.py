"""Retention (csvboard.runs.retention) on both engines, with time moved by the test: stored
copies of aged runs' files, their items and events, and long-retired rows are removed, counted
the same by a dry run, and recorded; a run's ledger row stays; a run whose copy is gone says so
instead of re-running; a copy still needed by a newer run stays; the CLI and the scheduler's
nightly prune drive it; each dashboard is pruned by its own retention (else the default); a
prune racing a re-run never leaves a queued run naming a missing file."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from csvboard.cli import app
from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.operations import change_operations
from csvboard.dashboards.service import get_dashboard
from csvboard.db.engine import write_session
from csvboard.errors import Conflict
from csvboard.runs import retention
from csvboard.runs.models import (
    IngestionEvent,
    IngestionItem,
    IngestionRun,
    IngestionRunSource,
    MaintenanceRecord,
)
from csvboard.runs.retention import prune
from csvboard.runs.service import is_retryable, retry_run
from csvboard.runs.vocabulary import RunStatus
from csvboard.worker.scheduler import Scheduler
from support import SCHEDULE_HEADER, Harness, fail, schedule_line


def export(*seibans: str) -> str:
    lines = [schedule_line(1000000001, s, "P-1", 10) for s in seibans]
    return "\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n"


def count(h: Harness, model: type) -> int:
    with h.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def stored_paths(h: Harness) -> list[Path]:
    """Every source's stored copy, in the order the sources were made."""
    with h.read() as session:
        paths = session.scalars(
            select(IngestionRunSource.stored_path).order_by(IngestionRunSource.created_at)
        )
        return [Path(p) for p in paths if p]


def test_prune_removes_what_aged_and_keeps_the_ledger(harness: Harness) -> None:
    h = harness
    board = h.dashboard()
    first = h.ingest(board, export("A0000001", "B0000001"), kind="official_ingestion")
    second = h.ingest(board, export("A0000001"), kind="official_ingestion")  # B0000001 retires
    broken = h.ingest(board, "ProductNo\r\n1\r\n")  # fails: a re-runnable run
    assert first.status == second.status == "succeeded" and broken.status == "failed"
    with h.read() as session:
        assert is_retryable(session, session.get_one(IngestionRun, broken.run_id))
    paths = stored_paths(h)
    assert len(paths) == 3 and all(p.exists() for p in paths)
    items, events = count(h, IngestionItem), count(h, IngestionEvent)
    assert items and events

    soon = prune(h.engine, h.settings, now=utcnow(), dry_run=False, requested_by="t")
    assert not soon.removed_anything and count(h, MaintenanceRecord) == 0

    later = utcnow() + timedelta(days=400 + 1)
    dry = prune(h.engine, h.settings, now=later, dry_run=True, requested_by="t")
    assert (dry.files, dry.sources, dry.rows) == (3, 3, 1)
    assert (dry.items, dry.events) == (items, events)
    assert all(p.exists() for p in paths) and count(h, IngestionItem) == items  # nothing gone

    done = prune(h.engine, h.settings, now=later, dry_run=False, requested_by="t")
    assert done.as_dict() == {**dry.as_dict(), "dry_run": False}
    assert not any(p.exists() for p in paths)
    assert count(h, IngestionItem) == count(h, IngestionEvent) == 0
    assert count(h, IngestionRun) == 3  # the ledger rows stay
    with h.read() as session:
        record = session.scalars(select(MaintenanceRecord)).one()
        assert record.kind == "prune" and record.details["files"] == 3
        assert record.details["bytes"] == sum(
            s.size_bytes or 0 for s in session.scalars(select(IngestionRunSource))
        )
        run = session.get_one(IngestionRun, broken.run_id)
        assert not is_retryable(session, run)
    with pytest.raises(Conflict) as refused, h.write() as session:
        retry_run(session, broken.run_id, requested_by="admin")
    assert refused.value.code == "SOURCE_PRUNED" and "removed by retention" in str(refused.value)


def test_a_copy_a_queued_run_needs_stays(harness: Harness) -> None:
    """The same bytes queued again (an upload, a re-run) name the same stored copy: a prune
    meanwhile leaves it, however old the first run is."""
    h = harness
    board = h.dashboard()
    h.ingest(board, export("A0000001"), file_name="export.csv")
    (path,) = stored_paths(h)
    h.queue(board, h.write_file(export("A0000001"), file_name="export.csv"))  # not yet run
    assert stored_paths(h) == [path, path]
    later = utcnow() + timedelta(days=200)
    report = prune(h.engine, h.settings, now=later, dry_run=False, requested_by="t")
    assert report.files == 0 and report.sources == 0 and path.exists()


def test_the_cli_and_the_nightly_prune(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    board = h.dashboard()
    h.ingest(board, export("A0000001"))
    monkeypatch.setenv("CSVBOARD_DATABASE_URL", h.url)
    monkeypatch.setenv("CSVBOARD_DATA_DIR", str(h.data_dir))
    monkeypatch.setenv("CSVBOARD_RETENTION_LEDGER_DAYS", "1")
    result = CliRunner().invoke(app, ["maintenance", "prune", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dry_run"] is True

    scheduler = Scheduler(h.engine, h.settings, scheduler_id="prune-test")
    try:
        tokyo_noon_later = (utcnow() + timedelta(days=500)).replace(hour=3)  # 12:00 in Tokyo
        first = scheduler.tick(tokyo_noon_later)
        assert first.pruned is not None and first.pruned["events"] > 0
        assert scheduler.tick(tokyo_noon_later + timedelta(hours=1)).pruned is None  # once a day
    finally:
        scheduler.close()
    assert count(h, IngestionEvent) == 0 and count(h, MaintenanceRecord) == 1


# --- per dashboard ------------------------------------------------------------------------


def set_operations(h: Harness, board: CsvDashboard, **settings: Any) -> None:
    with h.write() as session:
        change_operations(get_dashboard(session, board.slug), settings)


def run_counts(h: Harness, model: Any, run_id: uuid.UUID) -> int:
    with h.read() as session:
        return (
            session.scalar(select(func.count()).select_from(model).where(model.run_id == run_id))
            or 0
        )


def test_each_dashboard_is_pruned_by_its_own_retention(harness: Harness) -> None:
    h = harness
    fast, slow = h.dashboard("fast"), h.dashboard("slow")
    set_operations(h, fast, retention_file_days=7, retention_ledger_days=7)
    fast_run = h.ingest(fast, export("A0000001"), file_name="fast.csv")
    slow_run = h.ingest(slow, export("B0000001"), file_name="slow.csv")
    # The same bytes in both: one stored copy, which the slow dashboard's run still needs.
    shared_fast = h.ingest(fast, export("C0000001"), file_name="shared.csv")
    shared_slow = h.ingest(slow, export("C0000001"), file_name="shared.csv")
    with h.read() as session:
        path_of = {
            s.run_id: Path(s.stored_path or "") for s in session.scalars(select(IngestionRunSource))
        }
    assert path_of[shared_fast.run_id] == path_of[shared_slow.run_id]

    later = utcnow() + timedelta(days=8)
    report = prune(h.engine, h.settings, now=later, dry_run=False, requested_by="t")
    assert (report.files, report.sources) == (1, 1)  # fast.csv; shared.csv stays
    assert not path_of[fast_run.run_id].exists()
    assert path_of[slow_run.run_id].exists() and path_of[shared_fast.run_id].exists()
    assert run_counts(h, IngestionEvent, fast_run.run_id) == 0
    assert run_counts(h, IngestionEvent, shared_fast.run_id) == 0
    assert run_counts(h, IngestionItem, fast_run.run_id) == 0
    assert run_counts(h, IngestionItem, slow_run.run_id) > 0
    assert run_counts(h, IngestionEvent, shared_slow.run_id) > 0
    assert report.retention_days == {
        "fast": {"files": 7, "ledger": 7, "retired_rows": 365},
        "slow": {"files": 90, "ledger": 400, "retired_rows": 365},
    }
    with h.read() as session:
        record = session.scalars(select(MaintenanceRecord)).one()
        assert record.details["retention_days"] == report.retention_days
        pruned = session.scalars(
            select(IngestionRunSource.run_id).where(IngestionRunSource.pruned_at.is_not(None))
        ).all()
        assert pruned == [fast_run.run_id]

    # Back to the default: nothing more ages out of the fast dashboard at 8 days.
    set_operations(h, fast, retention_file_days=None, retention_ledger_days=None)
    again = prune(h.engine, h.settings, now=later, dry_run=True, requested_by="t")
    assert not again.removed_anything


def test_retired_rows_are_deleted_by_their_dashboards_retention(harness: Harness) -> None:
    h = harness
    fast, slow = h.dashboard("fast"), h.dashboard("slow")
    set_operations(h, fast, retention_retired_row_days=7)
    for board in (fast, slow):
        h.ingest(board, export("A0000001", "B0000001"), kind="official_ingestion")
        h.ingest(board, export("A0000001"), kind="official_ingestion")  # B0000001 retires
    later = utcnow() + timedelta(days=8)
    dry = prune(h.engine, h.settings, now=later, dry_run=True, requested_by="t")
    assert dry.rows == 1 and dry.sources == dry.items == 0
    done = prune(h.engine, h.settings, now=later, dry_run=False, requested_by="t")
    assert done.rows == 1
    with h.read() as session:
        left = {
            get_dashboard(session, str(d)).slug: n
            for d, n in session.execute(
                select(CsvDashboardRow.csv_dashboard_id, func.count()).group_by(
                    CsvDashboardRow.csv_dashboard_id
                )
            )
        }
    assert left == {"fast": 1, "slow": 2}  # slow keeps its retired row for 365 days


# --- a prune racing a re-run --------------------------------------------------------------


def test_a_prune_racing_a_rerun_of_the_run_whose_file_it_would_delete(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a prune's transaction is open (it has marked the aged run's source pruned),
    another session re-runs that run. SQLite: the re-run waits for the write lock, then
    finds the copy pruned. PostgreSQL: it waits on the source's row or commits first, and
    then the prune's unlink sees the new run naming the copy. Either way, never a queued
    run whose file is gone."""
    h = harness
    board = h.dashboard()
    failed = h.queue(board, h.write_file(export("A0000001")))
    fail(h, failed, "WORKER_LOST")  # not the file's fault, so re-runnable
    (stored,) = stored_paths(h)

    outcome: dict[str, Any] = {}

    def rerun() -> None:
        try:
            with write_session(h.engine) as session:
                outcome["run_id"] = retry_run(session, failed, requested_by="admin").run_id
        except Conflict as exc:
            outcome["refused"] = exc.code

    racer = threading.Thread(target=rerun, name="rerun")
    real_ledger = retention._ledger

    def ledger_during_a_rerun(*args: Any) -> None:
        racer.start()
        racer.join(timeout=2.0)  # SQLite: it waits for this transaction's write lock
        real_ledger(*args)

    monkeypatch.setattr(retention, "_ledger", ledger_during_a_rerun)
    later = utcnow() + timedelta(days=91)
    report = prune(h.engine, h.settings, now=later, dry_run=False, requested_by="t")
    racer.join(timeout=60)
    assert not racer.is_alive()
    assert report.sources == 1  # the prune did mark the aged run's source

    with h.read() as session:
        reruns = list(
            session.scalars(select(IngestionRun).where(IngestionRun.parent_run_id == failed))
        )
        queued_sources = session.scalars(
            select(IngestionRunSource.stored_path)
            .join(IngestionRun, IngestionRun.run_id == IngestionRunSource.run_id)
            .where(IngestionRun.status == RunStatus.QUEUED.value)
        ).all()
    assert all(p is not None and Path(p).exists() for p in queued_sources)  # the invariant
    if "refused" in outcome:
        assert outcome["refused"] == "SOURCE_PRUNED" and reruns == []
        assert not stored.exists()
    else:
        (rerun_run,) = reruns
        assert rerun_run.run_id == outcome["run_id"] and stored.exists()
        assert h.run(rerun_run.run_id).status is RunStatus.SUCCEEDED


def test_a_prune_leaves_a_copy_an_upload_stored_again_before_its_run_commits(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload of the same bytes stores (reuses) the copy before its run commits: whether
    that happens just before the prune begins or while it runs, the prune must not unlink
    the copy under the upload's feet; without the upload, the copy goes."""
    from csvboard.storage import store_file

    h = harness
    board = h.dashboard()
    h.ingest(board, export("A0000001"), file_name="export.csv")
    h.ingest(board, export("A0000002"), file_name="other.csv")
    first, other = stored_paths(h)
    again = h.write_file(export("A0000001"), file_name="export.csv")
    assert store_file(h.data_dir, again).stored_path == first  # the run is not committed yet
    later = utcnow() + timedelta(days=91)
    report = prune(h.engine, h.settings, now=later, dry_run=False, requested_by="t")
    assert report.sources == 2 and report.files == 2
    assert first.exists() and not other.exists()

    real_unlink = retention._unlink

    def upload_then_unlink(*args: Any) -> None:  # the same, while the prune runs
        store_file(h.data_dir, h.write_file(export("A0000003"), file_name="third.csv"))
        real_unlink(*args)

    h.ingest(board, export("A0000003"), file_name="third.csv")
    third = stored_paths(h)[-1]
    monkeypatch.setattr(retention, "_unlink", upload_then_unlink)
    prune(h.engine, h.settings, now=later, dry_run=False, requested_by="t")
    assert third.exists()


def test_a_rerun_that_read_its_sources_before_the_prune_keeps_its_file(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: a re-run has read its parent's sources (not pruned yet) and commits
    only after a prune has run through. The re-run's share lock (PostgreSQL) or the write
    lock (SQLite) makes the prune wait for it, so the prune sees the new run naming the
    copy, and the copy stays."""
    from csvboard.runs import service

    h = harness
    board = h.dashboard()
    failed = h.queue(board, h.write_file(export("A0000001")))
    fail(h, failed, "WORKER_LOST")
    (stored,) = stored_paths(h)
    real_held = service._sources_held
    have_read = threading.Event()

    def held_then_slow(*args: Any) -> Any:
        sources = real_held(*args)
        have_read.set()
        threading.Event().wait(1.0)  # the prune runs meanwhile
        return sources

    monkeypatch.setattr(service, "_sources_held", held_then_slow)
    outcome: dict[str, Any] = {}

    def rerun() -> None:
        with write_session(h.engine) as session:
            outcome["run_id"] = retry_run(session, failed, requested_by="admin").run_id

    racer = threading.Thread(target=rerun, name="rerun")
    racer.start()
    assert have_read.wait(30)
    later = utcnow() + timedelta(days=91)
    prune(h.engine, h.settings, now=later, dry_run=False, requested_by="t")
    racer.join(timeout=60)
    assert "run_id" in outcome and stored.exists()
    monkeypatch.setattr(service, "_sources_held", real_held)
    assert h.run(outcome["run_id"]).status is RunStatus.SUCCEEDED
