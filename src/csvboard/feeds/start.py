"""Starting a run on request (the API's ``POST /api/v1/ops/ingestion/runs`` and the CLI's
``csvboard runs ingest``): uploaded files through the dashboard's upload feed, or the waiting
file of each named folder feed (docs/contract.md §5).

The scheduler and the mail poller queue their runs through ``feeds/runs.py``; every path ends
in ``runs.service.create_run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.service import feeds_of, upload_feed
from csvboard.dashboards.vocabulary import FeedSource, TargetType
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.feeds.folder_runs import RequestClaims
from csvboard.runs.models import IngestionRun
from csvboard.runs.service import NewSource, active_identical_run, create_run, validate_targets
from csvboard.runs.vocabulary import RunKind, RunMode
from csvboard.storage import StoredFile


def default_targets(run_kind: str) -> list[str]:
    """The target types a start that names none gets: an appearance run reads appearance
    files, every other kind official ones."""
    if run_kind == RunKind.APPEARANCE_SUPPLEMENT.value:
        return [TargetType.APPEARANCE.value]
    return [TargetType.OFFICIAL.value]


def check_start(
    run_kind: str, target_types: Sequence[str], mode: str, *, uploads: int
) -> tuple[RunKind, list[str]]:
    """The request's own consistency, before anything is looked up (400s come before 404s)."""
    kind, targets = validate_targets(run_kind, list(target_types))
    if mode not in {m.value for m in RunMode}:
        raise InvalidRequest("INVALID_TRIGGER_MODE", "trigger_mode must be manual or scheduled")
    if uploads and len(targets) != 1:
        raise InvalidRequest(
            "INVALID_TARGET", "an uploaded file belongs to exactly one target type"
        )
    return kind, targets


def start_run(
    session: Session,
    dashboard: CsvDashboard,
    *,
    kind: RunKind,
    targets: list[str],
    mode: str,
    uploads: Sequence[StoredFile] = (),
    feed_names: Sequence[str] | None = None,
    claims: RequestClaims | None = None,
    requested_by: str | None,
    trace_id: str | None = None,
) -> IngestionRun:
    """Queue a run of ``uploads``, or (without uploads) of the waiting file of each folder
    feed of the targets (only those in ``feed_names``, by name or id, when given), claimed
    through ``claims``. 409 ``RUN_ALREADY_ACTIVE`` when an uploaded file is already queued or
    running for this dashboard."""
    for file in uploads:
        active = active_identical_run(session, dashboard.id, file.sha256)
        if active is not None:
            raise Conflict(
                "RUN_ALREADY_ACTIVE",
                f"run {active} of the same file for {dashboard.slug} is queued or running",
            )
    if uploads:
        feed = upload_feed(session, dashboard.id, targets[0])
        sources = [NewSource(feed=feed, stored=f) for f in uploads]
    else:
        if claims is None:
            raise InvalidRequest("NO_SOURCE", "upload a file or name a folder feed")
        sources = _folder_sources(session, dashboard, targets, feed_names, claims)
    run = create_run(
        session,
        dashboard=dashboard,
        run_kind=kind.value,
        target_types=targets,
        sources=sources,
        mode=mode,
        requested_by=requested_by,
        trace_id=trace_id,
    )
    if claims is not None:
        claims.name_after(run.run_id)  # before the commit, as the scheduler does
    return run


def start_upload_run(
    session: Session,
    *,
    dashboard: CsvDashboard,
    stored: StoredFile,
    run_kind: str,
    requested_by: str | None,
    mode: str = RunMode.MANUAL.value,
    trace_id: str | None = None,
) -> IngestionRun:
    """Queue a run of one uploaded file, with the API's rules (``csvboard runs ingest``)."""
    kind, targets = check_start(run_kind, default_targets(run_kind), mode, uploads=1)
    return start_run(
        session, dashboard, kind=kind, targets=targets, mode=mode, uploads=[stored],
        requested_by=requested_by, trace_id=trace_id,
    )  # fmt: skip


def _folder_sources(
    session: Session,
    dashboard: CsvDashboard,
    targets: list[str],
    wanted: Sequence[str] | None,
    claims: RequestClaims,
) -> list[NewSource]:
    feeds: list[CsvDashboardFeed] = []
    for role in targets:
        feeds.extend(feeds_of(session, dashboard.id, role))
    if wanted:
        feeds = [f for f in feeds if f.name in wanted or str(f.id) in wanted]
        missing = set(wanted) - {f.name for f in feeds} - {str(f.id) for f in feeds}
        if missing:
            raise NotFound("FEED_NOT_FOUND", f"no enabled feed {', '.join(sorted(missing))}")
    feeds = [f for f in feeds if f.source != FeedSource.UPLOAD]
    if not feeds:
        raise InvalidRequest(
            "NO_SOURCE", "no folder feed to read: upload a file (multipart) or name a folder feed"
        )
    sources = []
    for feed in feeds:
        if feed.source != FeedSource.FOLDER:
            raise InvalidRequest(
                "UNSUPPORTED_FEED_SOURCE", f"feed {feed.name}: {feed.source} feeds are fetched"
                " by the scheduler, not on request",
            )  # fmt: skip
        stored = claims.take(feed)
        if stored is None:
            raise Conflict(
                "NO_FILE_WAITING", f"feed {feed.name}: no CSV file in {Path(feed.location or '')}"
            )
        sources.append(NewSource(feed=feed, stored=stored))
    return sources
