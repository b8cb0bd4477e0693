"""Folder feeds and the ledger: a claimed file becomes a run, an ended run settles its file.

Two callers take files, both through the one claim of ``feeds/folder.py``:

- the scheduler's leader, each tick (:class:`FolderSource`): a watching feed takes every
  waiting file (up to a limit), a scheduled one its oldest when its time comes; and after the
  feeds, :meth:`FolderSource.settle` moves each processing file on once its run has ended;
- a start request naming a folder feed (``POST /api/v1/ops/ingestion/runs`` with JSON),
  through :class:`RequestClaims` around the request's transaction (``runs/start_api.py``,
  which starts the run with ``feeds/start.py``).

Either way the file is named after its run before the run commits and goes back to the folder
if the run does not commit, so the scheduler settles both alike and neither re-takes the
other's file.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Protocol

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from csvboard.dashboards.models import CsvDashboardFeed
from csvboard.db.engine import read_session, write_session
from csvboard.errors import Conflict, CsvboardError
from csvboard.feeds.folder import (
    ClaimedFile,
    FolderLayout,
    claim,
    claim_age,
    claim_oldest,
    layout_of,
    move,
    put_back,
    run_named,
    set_aside,
    split_processing_name,
    undo_run_name,
    waiting_files,
    write_reason,
)
from csvboard.feeds.runs import queue_feed_run
from csvboard.feeds.state import (
    REQUESTED_BY,
    FeedGone,
    FeedOutcome,
    FeedSnapshot,
    dashboard_and_feed,
)
from csvboard.runs.models import IngestionRun
from csvboard.runs.queries import error_summary
from csvboard.runs.vocabulary import RunKind, RunStatus
from csvboard.settings import Settings
from csvboard.storage import StoredFile, store_stream

log = structlog.get_logger("csvboard.scheduler")

#: How long a file must have rested before a start request takes it. Not the scheduler's 2 s:
#: tests/runs/test_api.py (test_start_from_a_folder_feed_by_json) asserts that a file written
#: just before the request is taken. Dot files and other files are skipped all the same.
REQUEST_SETTLE_SECONDS = 0.0


class SettleLog(Protocol):
    """Where :meth:`FolderSource.settle` reports what it moved (a tick's ``TickReport``)."""

    archived: list[Path]
    set_aside: list[Path]
    returned: list[Path]
    unknown: list[Path]


def _run_exists(engine: Engine, run_id: uuid.UUID) -> bool:
    """Whether a run committed after all (its commit failed on our side, perhaps not theirs)."""
    try:
        with read_session(engine) as session:
            return session.get(IngestionRun, run_id) is not None
    except SQLAlchemyError:
        return False


class FolderSource:
    """Takes a folder feed's files for the scheduler and settles them once their run ends.

    ``settle_seconds``: a file modified more recently is not taken (it may be half-written).
    ``orphan_seconds``: a processing file naming no committed run is put back after this long.
    ``max_files_per_tick``: files a watching feed takes per tick (the rest on the next one).
    ``official_run_kind``: the run kind of an official feed's runs.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        settle_seconds: float,
        orphan_seconds: float,
        max_files_per_tick: int,
        official_run_kind: RunKind | str,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.settle_seconds = settle_seconds
        self.orphan_seconds = orphan_seconds
        self.max_files_per_tick = max_files_per_tick
        self.official_run_kind = official_run_kind

    def take_due(self, feed: FeedSnapshot, outcome: FeedOutcome) -> None:
        """A scheduled feed whose time has come: its oldest waiting file becomes a run."""
        layout = layout_of(feed.location)
        claimed = claim_oldest(layout, settle_seconds=self.settle_seconds)
        if claimed is None:
            outcome.message = f"scheduled time passed; no file waiting in {layout.folder}"
            return
        self._ingest(feed, layout, claimed, outcome)

    def watch(self, feed: FeedSnapshot, outcome: FeedOutcome) -> None:
        """A watching feed: every waiting file becomes a run of its own, oldest first."""
        layout = layout_of(feed.location)
        taken = 0
        for path in waiting_files(layout.folder, settle_seconds=self.settle_seconds):
            if taken >= self.max_files_per_tick:
                break  # the rest next tick; a tick stays short
            claimed = claim(layout, path)
            if claimed is not None:
                taken += 1
                self._ingest(feed, layout, claimed, outcome)
        if taken == 0 and outcome.error is None:
            outcome.message = f"watching {layout.folder}: no file waiting"

    def _ingest(
        self, feed: FeedSnapshot, layout: FolderLayout, claimed: ClaimedFile, outcome: FeedOutcome
    ) -> None:
        """Store a claimed file and queue its run; the file ends named after the run."""
        try:
            with claimed.path.open("rb") as stream:
                stored = store_stream(self.settings.data_dir, stream, claimed.original_name)
        except OSError as exc:
            # Usually the environment (data directory full, a share's hiccup), not the file:
            # give it back to be tried again next tick; the error shows on the feed meanwhile.
            put_back(layout, claimed.path, claimed.original_name)
            outcome.error = f"{claimed.original_name}: could not store the file: {exc}"
            return
        final: Path | None = None
        run_id: uuid.UUID | None = None
        try:
            with write_session(self.engine) as session:
                dashboard, db_feed = dashboard_and_feed(session, feed)
                run = queue_feed_run(
                    session,
                    dashboard,
                    db_feed,
                    stored,
                    official_run_kind=self.official_run_kind,
                    requested_by=REQUESTED_BY,
                )
                run_id = run.run_id
                final = run_named(layout, claimed, run_id)  # before the commit: feeds/folder.py
        except CsvboardError as exc:
            # The feed cannot take this file (configuration); a person must look at it.
            undo_run_name(final, claimed)
            set_aside(layout, claimed.path, exc.args[0])
            outcome.error = f"{claimed.original_name}: {exc.args[0]}"
            return
        except FeedGone as exc:
            undo_run_name(final, claimed)
            put_back(layout, claimed.path, claimed.original_name)
            outcome.error = exc.args[0]
            return
        except Exception:
            # Database trouble: did the commit land after all? If not, the file goes back.
            if run_id is not None and final is not None and _run_exists(self.engine, run_id):
                outcome.run_ids.append(run_id)
                raise
            undo_run_name(final, claimed)
            put_back(layout, claimed.path, claimed.original_name)
            raise
        outcome.run_ids.append(run_id)
        outcome.message = f"queued run {run_id} of {claimed.original_name}"
        log.info("scheduler_run_queued", feed=outcome.feed_name, run_id=str(run_id))

    def settle(self, layout: FolderLayout, report: SettleLog) -> None:
        """Move processed files on once their run has ended; recover orphans."""
        if not layout.processing.is_dir():
            return
        entries: list[tuple[Path, uuid.UUID | None, str]] = []
        for path in sorted(layout.processing.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            run_id, original = split_processing_name(path.name)
            entries.append((path, run_id, original))
        if not entries:
            return
        ids = [run_id for _, run_id, _ in entries if run_id is not None]
        with read_session(self.engine) as session:
            statuses: dict[uuid.UUID, str] = {
                run_id: status
                for run_id, status in session.execute(
                    select(IngestionRun.run_id, IngestionRun.status).where(
                        IngestionRun.run_id.in_(ids)
                    )
                )
            }
            for path, run_id, original in entries:
                status = statuses.get(run_id) if run_id is not None else None
                if status is None:
                    self._orphan(layout, path, original, report)
                elif status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
                    dest = move(path, layout.archive)
                    if dest is not None:
                        report.archived.append(dest)
                elif status in (RunStatus.FAILED, RunStatus.CANCELLED):
                    assert run_id is not None
                    summary = error_summary(session, run_id)
                    reason = f"run {run_id} {status}" + (f": {summary}" if summary else "")
                    # Reason first: if we die between the two, the next tick rewrites it.
                    write_reason(layout.failed / path.name, reason)
                    dest = move(path, layout.failed)
                    if dest is not None:
                        report.set_aside.append(dest)

    def _orphan(self, layout: FolderLayout, path: Path, original: str, report: SettleLog) -> None:
        """A processing file whose run never committed: put it back once surely abandoned.

        Young ones may be mid-claim in another process and are left alone.
        """
        age = claim_age(path)
        if age is None:
            return
        if age < self.orphan_seconds:
            report.unknown.append(path)
            return
        returned = put_back(layout, path, original)
        if returned is not None:
            log.warning("scheduler_orphan_returned", file=str(returned))
            report.returned.append(returned)


class RequestClaims:
    """Files a start request claims from folder feeds for the one run its transaction creates.

    Enter it around the request's transaction (outside ``write_session``, so it leaves after
    the commit)::

        with RequestClaims(engine, data_dir) as claims, write_session(engine) as session:
            stored = claims.take(feed)        # claimed by rename and stored
            run = create_run(...)
            claims.name_after(run.run_id)      # before the commit, as the scheduler does

    A file is taken once (the rename is atomic), named after its run before the run commits,
    and put back in its folder when the run does not commit; :meth:`FolderSource.settle`
    archives or sets it aside once the run has ended, as it does the scheduler's own.
    """

    def __init__(
        self, engine: Engine, data_dir: Path, *, settle_seconds: float = REQUEST_SETTLE_SECONDS
    ) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.settle_seconds = settle_seconds
        self._claims: list[tuple[FolderLayout, ClaimedFile]] = []
        self._named: list[Path] = []
        self._run_id: uuid.UUID | None = None

    def take(self, feed: CsvDashboardFeed) -> StoredFile | None:
        """Claim and store the oldest waiting file of a folder feed; None when none waits."""
        try:
            layout = layout_of(feed.location)
            claimed = claim_oldest(layout, settle_seconds=self.settle_seconds)
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            # Taking a file renames it inside the folder, as the scheduler does.
            raise Conflict(
                "FOLDER_NOT_WRITABLE", f"feed {feed.name}: cannot claim a file there: {exc}"
            ) from None
        if claimed is None:
            return None
        self._claims.append((layout, claimed))  # from here on, __exit__ gives it back
        with claimed.path.open("rb") as stream:
            return store_stream(self.data_dir, stream, claimed.original_name)

    def name_after(self, run_id: uuid.UUID) -> None:
        """Rename every claimed file after the run, inside the transaction creating it."""
        self._run_id = run_id
        for layout, claimed in self._claims:
            self._named.append(run_named(layout, claimed, run_id))

    def __enter__(self) -> RequestClaims:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None and self._run_id is not None:
            return  # committed: the scheduler settles the files once the run has ended
        if self._run_id is not None and _run_exists(self.engine, self._run_id):
            return  # the commit failed on our side but landed in the database
        for index, (layout, claimed) in enumerate(self._claims):
            undo_run_name(self._named[index] if index < len(self._named) else None, claimed)
            put_back(layout, claimed.path, claimed.original_name)


__all__ = ["REQUEST_SETTLE_SECONDS", "FolderSource", "RequestClaims", "SettleLog"]
