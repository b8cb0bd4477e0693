"""The one way a feed's file becomes a queued run (folder, URL and IMAP sources alike)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.vocabulary import TargetType
from csvboard.runs.models import IngestionRun
from csvboard.runs.service import NewSource, create_run
from csvboard.runs.vocabulary import RunKind, RunMode
from csvboard.storage import StoredFile


def queue_feed_run(
    session: Session,
    dashboard: CsvDashboard,
    feed: CsvDashboardFeed,
    stored: StoredFile,
    *,
    official_run_kind: RunKind | str,
    requested_by: str,
    message_id: str | None = None,
) -> IngestionRun:
    """Create a scheduled run of one stored file for ``feed``, inside the caller's transaction.

    An appearance feed's run is always an ``appearance_supplement``; an official feed's is
    ``official_run_kind`` (a mail feed's options may name one, the scheduler's setting
    otherwise). ``message_id`` records the mail a file came from.
    """
    # create_run checks the kind: a wrong one is a CsvboardError the sources report.
    if feed.role == TargetType.APPEARANCE:
        run_kind = RunKind.APPEARANCE_SUPPLEMENT.value
    else:
        run_kind = str(official_run_kind)
    return create_run(
        session,
        dashboard=dashboard,
        run_kind=run_kind,
        target_types=[feed.role],
        sources=[NewSource(feed=feed, stored=stored, message_id=message_id)],
        mode=RunMode.SCHEDULED.value,
        requested_by=requested_by[:64],
    )
