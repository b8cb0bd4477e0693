"""Retention (csvboard.runs.retention) on both engines, with time moved by the test: stored
copies of aged runs' files, their items and events, and long-retired rows are removed, counted
the same by a dry run, and recorded; a run's ledger row stays; a run whose copy is gone says so
instead of re-running; a copy still needed by a newer run stays; the CLI and the scheduler's
nightly prune drive it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from csvboard.cli import app
from csvboard.clock import utcnow
from csvboard.errors import Conflict
from csvboard.runs.models import (
    IngestionEvent,
    IngestionItem,
    IngestionRun,
    IngestionRunSource,
    MaintenanceRecord,
)
from csvboard.runs.retention import prune
from csvboard.runs.service import is_retryable, retry_run
from csvboard.worker.scheduler import Scheduler
from support import SCHEDULE_HEADER, Harness, schedule_line


def export(*seibans: str) -> str:
    lines = [schedule_line(1000000001, s, "P-1", 10) for s in seibans]
    return "\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n"


def count(h: Harness, model: type) -> int:
    with h.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def stored_paths(h: Harness) -> list[Path]:
    with h.read() as session:
        return [Path(p) for p in session.scalars(select(IngestionRunSource.stored_path)) if p]


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
