"""The newest run overall and, per dashboard, its newest run and last success
(``GET /api/v1/ops/ingestion/latest``; the admin console shows the same)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard
from csvboard.dashboards.service import list_dashboards
from csvboard.runs.models import IngestionRun
from csvboard.runs.queries import list_runs
from csvboard.runs.vocabulary import RunStatus


@dataclass(frozen=True)
class DashboardRuns:
    dashboard: CsvDashboard
    newest: IngestionRun | None
    # When its last succeeded or partial run finished: a partial run also updated the board.
    last_success_at: datetime | None


def latest_runs(session: Session) -> tuple[IngestionRun | None, list[DashboardRuns]]:
    newest, _ = list_runs(session, limit=1)
    boards = []
    for board in list_dashboards(session):
        runs, _ = list_runs(session, dashboard_id=board.id, limit=1)
        finished: list[datetime] = []
        for status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
            done, _ = list_runs(session, dashboard_id=board.id, status=status.value, limit=1)
            finished.extend(r.finished_at for r in done if r.finished_at)
        boards.append(
            DashboardRuns(
                dashboard=board,
                newest=runs[0] if runs else None,
                last_success_at=max(finished) if finished else None,
            )
        )
    return (newest[0] if newest else None), boards
