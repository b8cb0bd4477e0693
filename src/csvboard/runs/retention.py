"""Retention: what a factory's csvboard removes as it ages, and the account it keeps of it.

A prune removes, each by its setting (``CSVBOARD_RETENTION_*``):

- the stored copies of files whose runs all ended more than ``retention_file_days`` ago (a
  stored copy is content-addressed: it goes only when no run that still needs it names it);
  each such source is marked ``pruned_at``, and its run can no longer be re-run (409
  ``SOURCE_PRUNED``, csvboard.runs.service.retry_run);
- the items and events of runs that ended more than ``retention_ledger_days`` ago — never a
  run's ledger row;
- rows retired more than ``retention_retired_row_days`` ago, with the operator records beside
  them (csvboard.dashboards.service.purge_retired).

Every prune that removes anything is recorded in ``maintenance_records`` with its counts. The
database work is one transaction; the files are unlinked after it commits, each after a
last check that no source still needing it appeared meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard
from csvboard.dashboards.service import purge_retired
from csvboard.db.engine import read_session, write_session
from csvboard.runs.models import (
    IngestionEvent,
    IngestionItem,
    IngestionRun,
    IngestionRunSource,
    MaintenanceRecord,
)
from csvboard.runs.vocabulary import TERMINAL_STATUSES
from csvboard.settings import Settings

_Src = IngestionRunSource


@dataclass
class PruneReport:
    dry_run: bool
    files: int = 0
    bytes: int = 0
    sources: int = 0  # sources marked pruned (several may share one stored file)
    items: int = 0
    events: int = 0
    rows: int = 0
    operator_records: dict[str, int] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)

    @property
    def removed_anything(self) -> bool:
        return any((self.sources, self.items, self.events, self.rows))

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("paths")
        return doc


def _ended_before(cutoff: datetime) -> Any:
    return select(IngestionRun.run_id).where(
        IngestionRun.status.in_([s.value for s in TERMINAL_STATUSES]),
        IngestionRun.finished_at < cutoff,
    )


def prune(
    engine: Engine, settings: Settings, *, now: datetime, dry_run: bool, requested_by: str
) -> PruneReport:
    """Remove what has aged out (see the module); with ``dry_run``, only count it."""
    report = PruneReport(dry_run=dry_run)
    with write_session(engine) as session:
        _stored_copies(session, now - timedelta(days=settings.retention_file_days), report, now)
        _ledger(session, now - timedelta(days=settings.retention_ledger_days), report)
        rows_before = now - timedelta(days=settings.retention_retired_row_days)
        for dashboard in session.scalars(select(CsvDashboard).order_by(CsvDashboard.slug)):
            purged = purge_retired(session, dashboard, rows_before, dry_run=dry_run)
            report.rows += purged.rows
            for table, n in purged.operator_records.items():
                report.operator_records[table] = report.operator_records.get(table, 0) + n
        if dry_run:
            return report  # nothing was written
        if report.removed_anything:
            session.add(
                MaintenanceRecord(
                    kind="prune", requested_by=requested_by[:64], occurred_at=now,
                    details=report.as_dict(),
                )
            )  # fmt: skip
    _unlink(engine, report)
    return report


def _stored_copies(session: Session, cutoff: datetime, report: PruneReport, now: datetime) -> None:
    aged = _ended_before(cutoff)
    candidates = session.execute(
        select(_Src.id, _Src.stored_path, _Src.size_bytes).where(
            _Src.run_id.in_(aged), _Src.stored_path.is_not(None), _Src.pruned_at.is_(None)
        )
    ).all()
    if not candidates:
        return
    # A stored copy is shared by every source with the same bytes: it stays while a run that
    # has not aged out (queued, running, or recent) names it.
    needed = set(
        session.scalars(
            select(_Src.stored_path).where(
                _Src.stored_path.in_({c.stored_path for c in candidates}),
                _Src.run_id.not_in(aged),
            )
        )
    )
    doomed = [c for c in candidates if c.stored_path not in needed]
    report.sources = len(doomed)
    sizes = {c.stored_path: c.size_bytes or 0 for c in doomed}
    report.files = len(sizes)
    report.bytes = sum(sizes.values())
    report.paths = sorted(sizes)
    if not report.dry_run and doomed:
        ids = [c.id for c in doomed]
        for start in range(0, len(ids), 500):
            session.execute(
                update(_Src).where(_Src.id.in_(ids[start : start + 500])).values(pruned_at=now)
            )


def _ledger(session: Session, cutoff: datetime, report: PruneReport) -> None:
    aged = _ended_before(cutoff)
    report.items = (
        session.scalar(
            select(func.count()).select_from(IngestionItem).where(IngestionItem.run_id.in_(aged))
        )
        or 0
    )
    report.events = (
        session.scalar(
            select(func.count()).select_from(IngestionEvent).where(IngestionEvent.run_id.in_(aged))
        )
        or 0
    )
    if not report.dry_run:
        session.execute(delete(IngestionItem).where(IngestionItem.run_id.in_(aged)))
        session.execute(delete(IngestionEvent).where(IngestionEvent.run_id.in_(aged)))


def _unlink(engine: Engine, report: PruneReport) -> None:
    """Remove the files, each only if no source that still needs it appeared meanwhile (a
    new upload of the same bytes names the same stored copy)."""
    for path in report.paths:
        with read_session(engine) as session:
            still_needed = session.scalar(
                select(_Src.id).where(_Src.stored_path == path, _Src.pruned_at.is_(None)).limit(1)
            )
        if still_needed is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(Path(path))


def last_prune(session: Session) -> datetime | None:
    return session.scalar(
        select(func.max(MaintenanceRecord.occurred_at)).where(MaintenanceRecord.kind == "prune")
    )


__all__ = ["PruneReport", "last_prune", "prune"]
