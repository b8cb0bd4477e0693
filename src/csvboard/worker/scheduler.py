"""The scheduler: one leader among any number of processes ticks and dispatches each feed to
its source (docs/contract.md §4, "Scheduler").

One pass is a :meth:`Scheduler.tick`; :meth:`Scheduler.run_forever` repeats it until stopped.
A tick fires cron feeds when a slot is due, hands folder feeds to
:class:`csvboard.feeds.folder_runs.FolderSource`, URL feeds to
:class:`csvboard.feeds.url.UrlSource` and imap feeds to :class:`csvboard.feeds.mail.MailPoller`,
records each feed's outcome (``csvboard.feeds.state``), and settles the folders' processed files.
It also queues due automatic re-runs (``runs/retry_policy.py``), prunes once a night
(``runs/retention.py``) and tells the admins of problems (``alerts/service.py``).

**Leadership.** Any number of scheduler processes may run (every ``csvboard serve`` has one);
only the leader fires and scans, so a cron slot becomes one run, not one per process
(``worker/leadership.py``). A follower retries every poll, at most every 10 s, so it takes
over well within 30 s of the leader's death.

Leadership is the first line only; correctness never depends on it, because a failover can
briefly overlap two leaders (the old one may be mid-tick when its connection drops):

- a dropped file is claimed by an atomic ``os.rename`` (``feeds/folder.py``);
- a cron slot is taken by a compare-and-set on the feed state's ``last_fired_at``
  (``feeds/state.py``);
- a mail message is claimed by a unique row in its run's transaction (``feeds/mail_claims.py``);
- an alert is one open row per problem and a claimed delivery (``alerts/service.py``).
"""

from __future__ import annotations

import os
import threading
from datetime import date, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from csvboard import alerts
from csvboard.clock import utcnow
from csvboard.dashboards.vocabulary import FeedSource
from csvboard.db.engine import write_session
from csvboard.feeds import state
from csvboard.feeds.folder import FolderLayout
from csvboard.feeds.folder_runs import FolderSource
from csvboard.feeds.mail import MailPoller
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.feeds.state import FeedOutcome, FeedSnapshot, TickReport
from csvboard.feeds.url import UrlSource
from csvboard.runs import retention, retry_policy
from csvboard.runs.vocabulary import RunKind
from csvboard.settings import Settings
from csvboard.worker.leadership import (
    AdvisoryLockLeadership,
    FileLockLeadership,
    Leadership,
    lock_file_for,
)

log = structlog.get_logger("csvboard.scheduler")

#: A follower retries at least this often, so takeover stays well within 30 s.
MAX_FOLLOWER_RETRY_SECONDS = 10.0


def _or(given: float | None, setting: float) -> float:
    return setting if given is None else given


class Scheduler:
    """Fires cron feeds and dispatches fetched feeds to their sources; one leader among any
    number of processes.

    ``settle_seconds``: a file modified more recently is not taken (it may be half-written).
    ``orphan_seconds``: a processing file naming no committed run is put back after this long.
    ``official_run_kind``: the run kind of an official feed's scheduled runs.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        scheduler_id: str,
        poll_seconds: float | None = None,
        settle_seconds: float | None = None,
        orphan_seconds: float | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        download_seconds: float | None = None,
        max_files_per_tick: int = 100,
        official_run_kind: RunKind | str = RunKind.OFFICIAL_INGESTION,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.scheduler_id = scheduler_id
        # Unset tunables come from the settings (CSVBOARD_SCHEDULER_POLL_SECONDS, ...).
        self.poll_seconds = _or(poll_seconds, settings.scheduler_poll_seconds)
        self.leadership: Leadership
        if engine.dialect.name == "postgresql":
            self.leadership = AdvisoryLockLeadership(engine, scheduler_id)
        else:
            self.leadership = FileLockLeadership(lock_file_for(engine, settings), scheduler_id)
        self._is_leader = False
        self._pruned_on: date | None = None  # the local day of this process's last prune
        self._alerts_checked_at: datetime | None = None
        self.folders = FolderSource(
            engine,
            settings,
            settle_seconds=_or(settle_seconds, settings.folder_settle_seconds),
            orphan_seconds=_or(orphan_seconds, settings.folder_orphan_seconds),
            max_files_per_tick=max_files_per_tick,
            official_run_kind=official_run_kind,
        )
        self.urls = UrlSource(
            engine,
            settings,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            download_seconds=_or(download_seconds, settings.url_download_timeout_seconds),
            official_run_kind=official_run_kind,
        )
        self.mail = MailPoller(
            engine,
            settings,
            timeout=read_timeout,
            max_messages=max_files_per_tick,
            official_run_kind=official_run_kind,
        )

    # -- life cycle --

    @property
    def is_leader(self) -> bool:
        """Whether the last tick held leadership."""
        return self._is_leader

    def run_forever(self, stop_event: threading.Event) -> None:
        """Tick until ``stop_event`` is set, then give up leadership.

        A follower polls at most every 10 s whatever ``poll_seconds`` says, so it takes over
        within 30 s of the leader's death. A failing tick (database down) is logged and retried.
        """
        log.info("scheduler_started", scheduler_id=self.scheduler_id)
        try:
            while not stop_event.is_set():
                try:
                    self.tick()
                except Exception:
                    log.exception("scheduler_tick_failed", scheduler_id=self.scheduler_id)
                wait = self.poll_seconds
                if not self._is_leader:
                    wait = min(wait, MAX_FOLLOWER_RETRY_SECONDS)
                stop_event.wait(wait)
        finally:
            self.close()
            log.info("scheduler_stopped", scheduler_id=self.scheduler_id)

    def close(self) -> None:
        """Give up leadership (a follower can take over at once)."""
        self._is_leader = False
        self.leadership.release()

    # -- one pass --

    def tick(self, now: datetime | None = None) -> TickReport:
        """One pass: (re)gain leadership; if leader, fire due cron feeds, take dropped files,
        settle processed files and queue due automatic re-runs. ``now`` (aware) drives cron
        and re-runs; file ages use the clock."""
        now = now or utcnow()
        if now.tzinfo is None:
            raise ValueError("tick(now) needs an aware datetime")
        was_leader = self._is_leader
        self._is_leader = self.leadership.acquire()
        if self._is_leader != was_leader:
            log.info(
                "scheduler_leadership",
                scheduler_id=self.scheduler_id,
                leader=self._is_leader,
            )
        report = TickReport(now=now, is_leader=self._is_leader)
        if not self._is_leader:
            return report
        feeds = state.load_feeds(self.engine)
        states = state.load_states(self.engine)
        for feed in feeds:
            if not feed.enabled:
                continue
            outcome = FeedOutcome(feed_id=feed.id, feed_name=f"{feed.dashboard_slug}/{feed.name}")
            try:
                self._process_feed(feed, states.get(feed.id), now, outcome)
            except Exception as exc:
                log.exception("scheduler_feed_failed", feed=outcome.feed_name)
                outcome.error = outcome.error or f"{type(exc).__name__}: {exc}"
            if outcome.idle:
                continue
            if outcome.message is not None or outcome.error is not None or outcome.run_ids:
                report.feeds.append(outcome)
            try:
                state.record(self.engine, feed.id, now, outcome)
            except SQLAlchemyError:
                log.exception("scheduler_state_write_failed", feed=outcome.feed_name)
        folders = {
            feed.location for feed in feeds if feed.source == FeedSource.FOLDER and feed.location
        }
        for folder in sorted(folders):
            if Path(folder).is_dir():
                try:
                    self.folders.settle(FolderLayout(Path(folder)), report)
                except (OSError, SQLAlchemyError):
                    log.exception("scheduler_settle_failed", folder=folder)
        # Re-runs of transient failures whose back-off has passed (runs/retry_policy.py);
        # ``now`` drives them like cron, so a test can move time instead of sleeping.
        try:
            with write_session(self.engine) as session:
                report.retried = retry_policy.fire_due(
                    session, now, self.settings.auto_retry_delays
                )
        except SQLAlchemyError:
            log.exception("scheduler_retries_failed")
        for run_id in report.retried:
            log.info("scheduler_auto_retry", run_id=str(run_id))
        self._nightly_prune(now, report)
        self._check_alerts(now, report)
        return report

    def _check_alerts(self, now: datetime, report: TickReport) -> None:
        """Every CSVBOARD_ALERT_CHECK_SECONDS: tell the admins of problems (csvboard/alerts)."""
        last = self._alerts_checked_at
        if last is not None and now - last < timedelta(seconds=self.settings.alert_check_seconds):
            return
        self._alerts_checked_at = now  # a check that fails waits for the next interval too
        try:
            checked = alerts.evaluate(self.engine, self.settings, now)
        except Exception:  # telling admins of problems must never stop the feeds
            log.exception("scheduler_alerts_failed")
            return
        report.alerts = checked.as_dict()
        if checked.opened or checked.cleared:
            log.info("scheduler_alerts", **checked.as_dict())

    def _nightly_prune(self, now: datetime, report: TickReport) -> None:
        """Once a day after CSVBOARD_PRUNE_HOUR (local time): retention (runs/retention.py)."""
        local = now.astimezone(self.settings.timezone)
        if local.hour < self.settings.prune_hour or self._pruned_on == local.date():
            return
        try:
            pruned = retention.prune(
                self.engine, self.settings, now=now, dry_run=False, requested_by="scheduler"
            )
        except (OSError, SQLAlchemyError):
            log.exception("scheduler_prune_failed")
            return
        self._pruned_on = local.date()
        report.pruned = pruned.as_dict()
        log.info("scheduler_pruned", **pruned.as_dict())

    # -- per feed --

    def _process_feed(
        self,
        feed: FeedSnapshot,
        feed_state: CsvDashboardFeedState | None,
        now: datetime,
        outcome: FeedOutcome,
    ) -> None:
        if feed.source == FeedSource.IMAP:
            self._poll_mail(feed, feed_state, now, outcome)
            return
        if feed.schedule:
            if not self._cron_due(feed, feed_state, now, outcome):
                return
            if feed.source == FeedSource.FOLDER:
                self.folders.take_due(feed, outcome)
            else:
                self.urls.fire(feed, outcome)
        elif feed.source == FeedSource.FOLDER:
            self.folders.watch(feed, outcome)
        # A url feed without a schedule is fetched only when someone asks; nothing to do here.

    def _poll_mail(
        self,
        feed: FeedSnapshot,
        feed_state: CsvDashboardFeedState | None,
        now: datetime,
        outcome: FeedOutcome,
    ) -> None:
        """An imap feed (csvboard.feeds.mail): due by its cron schedule or its interval."""
        if feed.schedule:
            if not self._cron_due(feed, feed_state, now, outcome):
                return
            result = self.mail.poll(feed, check_due=False)
        else:
            result = self.mail.poll(feed)
            if not result.polled and result.error is None:
                outcome.idle = True
                return
        outcome.run_ids.extend(result.run_ids)
        outcome.message = result.message
        outcome.error = result.error
        if result.succeeded:
            outcome.succeeded_at = now

    def _cron_due(
        self,
        feed: FeedSnapshot,
        feed_state: CsvDashboardFeedState | None,
        now: datetime,
        outcome: FeedOutcome,
    ) -> bool:
        """Whether a cron feed's slot is due in ``CSVBOARD_TIMEZONE``; if so, take it."""
        return state.cron_due(self.engine, self.settings.timezone, feed, feed_state, now, outcome)


class SchedulerThread:
    """A scheduler in a daemon thread of a serving process (``csvboard serve``,
    docs/contract.md §4)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self.scheduler.run_forever,
                args=(self._stop,),
                name="csvboard-scheduler",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current tick; leadership is released on the way out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def scheduler_id_default() -> str:
    """``host:pid`` — what shows in logs and in ``pg_stat_activity.application_name``."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


__all__ = [
    "Scheduler",
    "SchedulerThread",
    "TickReport",
    "scheduler_id_default",
]
