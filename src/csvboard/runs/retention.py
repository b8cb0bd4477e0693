"""Retention: what a factory's csvboard removes as it ages, and the account it keeps of it.

A prune removes, each by the dashboard's own setting or else the process default
(``csv_dashboards.retention_*_days``, ``CSVBOARD_RETENTION_*``; csvboard.dashboards.operations):

- the stored copies of files whose runs all ended more than ``retention_file_days`` ago (a
  stored copy is content-addressed: it goes only when no run that still needs it names it,
  whatever that run's dashboard); each such source is marked ``pruned_at``, and its run can
  no longer be re-run (409 ``SOURCE_PRUNED``, csvboard.runs.service.retry_run);
- the items and events of runs that ended more than ``retention_ledger_days`` ago — never a
  run's ledger row;
- rows retired more than ``retention_retired_row_days`` ago, with the operator records beside
  them (csvboard.dashboards.service.purge_retired).

A run's dashboard is its sources' (``ingestion_run_sources.csv_dashboard_id``); each query
judges every run at once against its own dashboard's cutoff (a CASE over the dashboards,
which are few). Every prune that removes anything is recorded in ``maintenance_records``
with its counts and the days each dashboard was pruned by. The database work is one
transaction; the files are unlinked after it commits, each after a last check that no
source still needing it appeared meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, case, delete, func, literal, select, update
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard
from csvboard.dashboards.operations import Retention, default_retention, effective_retention
from csvboard.dashboards.service import purge_retired
from csvboard.db.base import UTCDateTime
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
    # Per dashboard slug, the days it was pruned by: {"files", "ledger", "retired_rows"}.
    retention_days: dict[str, dict[str, int]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    # Per path, when the newest source the prune removes it for named it (POSIX time): a
    # copy touched after that was stored again (see _unlink).
    named_until: dict[str, float] = field(default_factory=dict)

    @property
    def removed_anything(self) -> bool:
        return any((self.sources, self.items, self.events, self.rows))

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("paths")
        doc.pop("named_until")
        return doc


@dataclass(frozen=True)
class _Cutoffs:
    """Per dashboard id, the instant before which a run ended (or a row retired) ages out;
    ``default`` for a run whose dashboard is not known (it has no source)."""

    by_dashboard: dict[uuid.UUID, datetime]
    default: datetime


def _ended_before(cutoffs: _Cutoffs) -> Any:
    """The ids of terminal runs that ended before their own dashboard's cutoff."""
    cutoff: Any = literal(cutoffs.default, UTCDateTime)
    if cutoffs.by_dashboard:
        cutoff = case(
            {d: literal(c, UTCDateTime) for d, c in cutoffs.by_dashboard.items()},
            value=_Src.csv_dashboard_id,
            else_=cutoff,
        )
    # The outer join keeps a run without sources (judged by the default).
    return (
        select(IngestionRun.run_id)
        .outerjoin(_Src, _Src.run_id == IngestionRun.run_id)
        .where(
            IngestionRun.status.in_([s.value for s in TERMINAL_STATUSES]),
            IngestionRun.finished_at < cutoff,
        )
    )


def prune(
    engine: Engine, settings: Settings, *, now: datetime, dry_run: bool, requested_by: str
) -> PruneReport:
    """Remove what has aged out (see the module); with ``dry_run``, only count it."""
    report = PruneReport(dry_run=dry_run)
    with write_session(engine) as session:
        dashboards = list(session.scalars(select(CsvDashboard).order_by(CsvDashboard.slug)))
        retention = {d.id: effective_retention(d, settings) for d in dashboards}
        report.retention_days = {
            d.slug: {
                "files": retention[d.id].file_days,
                "ledger": retention[d.id].ledger_days,
                "retired_rows": retention[d.id].retired_row_days,
            }
            for d in dashboards
        }
        default = default_retention(settings)

        def cutoffs(days: Callable[[Retention], int]) -> _Cutoffs:
            return _Cutoffs(
                {d: now - timedelta(days=days(r)) for d, r in retention.items()},
                now - timedelta(days=days(default)),
            )

        _stored_copies(session, cutoffs(lambda r: r.file_days), report, now)
        _ledger(session, cutoffs(lambda r: r.ledger_days), report)
        for dashboard in dashboards:
            rows_before = now - timedelta(days=retention[dashboard.id].retired_row_days)
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


def _stored_copies(session: Session, cutoffs: _Cutoffs, report: PruneReport, now: datetime) -> None:
    aged = _ended_before(cutoffs)
    candidates = session.execute(
        select(_Src.id, _Src.stored_path, _Src.size_bytes, _Src.created_at).where(
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
    for c in doomed:
        named = c.created_at.timestamp()
        report.named_until[c.stored_path] = max(named, report.named_until.get(c.stored_path, 0.0))
    if not report.dry_run and doomed:
        ids = sorted(c.id for c in doomed)
        postgresql = session.get_bind().dialect.name == "postgresql"
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            if postgresql:
                # In id order, as a re-run share-locks its sources (runs/service.py): the two
                # never take a run's sources in opposite orders (a deadlock).
                session.execute(
                    select(_Src.id).where(_Src.id.in_(chunk)).order_by(_Src.id).with_for_update()
                )
            session.execute(update(_Src).where(_Src.id.in_(chunk)).values(pruned_at=now))


def _ledger(session: Session, cutoffs: _Cutoffs, report: PruneReport) -> None:
    aged = _ended_before(cutoffs)
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
    new upload of the same bytes names the same stored copy) and the copy was not stored
    again after the last aged source named it: an upload stores (touches) the copy before
    its run commits (csvboard.storage.store_stream), so a copy newer than every source the
    prune saw is one a run about to commit will need."""
    for path in report.paths:
        with read_session(engine) as session:
            still_needed = session.scalar(
                select(_Src.id).where(_Src.stored_path == path, _Src.pruned_at.is_(None)).limit(1)
            )
        if still_needed is not None:
            continue
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_mtime > report.named_until.get(path, float("inf")):
                continue
            os.unlink(Path(path))


def last_prune(session: Session) -> datetime | None:
    return session.scalar(
        select(func.max(MaintenanceRecord.occurred_at)).where(MaintenanceRecord.kind == "prune")
    )


__all__ = ["PruneReport", "last_prune", "prune"]
