"""The scheduler: fires cron feeds and watches folder feeds (docs/contract.md §4,
"Scheduler"); polls imap feeds through :class:`csvboard.worker.mail.MailPoller`.

One pass is a :meth:`Scheduler.tick`; :meth:`Scheduler.run_forever` repeats it until stopped.

**Leadership.** Any number of scheduler processes may run (every ``csvboard serve`` has one);
only the leader fires and scans, so a cron slot becomes one run, not one per process.
PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated connection held for the
scheduler's life: when the leader dies its session ends, the lock is free, and a follower
(which retries every poll, at most every 10 s) takes over well within 30 s. The server is
told to probe the leader's socket (TCP keepalives) so a leader whose machine vanished is also
noticed in about 25 s. SQLite: an exclusive non-blocking ``flock`` on a lock file next to the
database, released by the kernel when the process dies.

Leadership is the first line only; correctness never depends on it, because a failover can
briefly overlap two leaders (the old one may be mid-tick when its connection drops):

- a dropped file is claimed by an atomic ``os.rename`` into ``.csvboard/processing/`` — of two
  processes renaming the same file exactly one succeeds, the other gets ``FileNotFoundError``;
- a cron slot is taken by a compare-and-set on the feed state's ``last_fired_at``.

**Folder life cycle** (all inside the watched folder, so every rename stays on one file
system and is atomic)::

    <folder>/report.csv
      -> .csvboard/processing/<claim-uuid>__report.csv   claimed (only one process wins)
      -> .csvboard/processing/<run-id>__report.csv       renamed before the run commits
      -> .csvboard/archive/<run-id>__report.csv          run succeeded or partial
      -> .csvboard/failed/<run-id>__report.csv (+ .reason.txt)   run failed or cancelled

Because the rename to the run id happens *before* the run's transaction commits (and is undone
if the commit fails), a processing file whose prefix names no run is one whose run never
committed: after ``orphan_seconds`` (the process that claimed it crashed) it is put back into
the folder to be claimed again, so a crash loses no file and duplicates none.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import structlog
from croniter import croniter  # type: ignore[import-untyped]
from sqlalchemy import Connection, Engine, create_engine, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.db import upsert
from csvboard.db.engine import read_session, write_session
from csvboard.errors import CsvboardError
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.feeds.runs import queue_feed_run
from csvboard.runs.models import IngestionRun
from csvboard.runs.queries import error_summary
from csvboard.runs.service import active_identical_run
from csvboard.runs.vocabulary import RunKind, RunStatus
from csvboard.settings import Settings
from csvboard.storage import StoredFile, store_stream
from csvboard.worker.mail import MailPoller

log = structlog.get_logger("csvboard.scheduler")

#: ``requested_by`` of every run the scheduler creates.
REQUESTED_BY = "scheduler"
#: The advisory lock key every csvboard scheduler contends for ("csvbSchd" as a bigint).
ADVISORY_LOCK_KEY = int.from_bytes(b"csvbSchd", "big")
#: A follower retries at least this often, so takeover stays well within 30 s.
MAX_FOLLOWER_RETRY_SECONDS = 10.0
#: The scheduler's bookkeeping directory inside a watched folder (a dot-dir: never scanned).
STATE_DIR = ".csvboard"
CLAIM_SEPARATOR = "__"


# --- leadership ---------------------------------------------------------------------------


class Leadership(Protocol):
    def acquire(self) -> bool:
        """Become or stay leader; False when another process leads."""
        ...

    def release(self) -> None: ...


class AdvisoryLockLeadership:
    """PostgreSQL: a session advisory lock on a connection of its own.

    The connection comes from a private one-connection engine rather than the shared pool: it
    lives as long as the scheduler, must never be handed to other code (a ``DISCARD ALL`` or a
    reset on check-in would not release a session lock, but closing it would), and runs in
    autocommit so it is never left "idle in transaction".
    """

    def __init__(self, engine: Engine, scheduler_id: str) -> None:
        self._engine = create_engine(engine.url, poolclass=NullPool)
        self._application_name = f"csvboard-scheduler:{scheduler_id}"[:63]
        self._conn: Connection | None = None
        self._held = False

    @property
    def connection(self) -> Connection | None:
        """The lock's connection (tests end its backend to simulate a dying leader)."""
        return self._conn

    def _connect(self) -> Connection:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        # Server-side keepalives: if the leader's machine disappears without closing the
        # socket, the server drops the session (and the lock) after ~10 + 3 x 5 s.
        conn.execute(
            text(
                "SELECT set_config('application_name', :name, false),"
                " set_config('tcp_keepalives_idle', '10', false),"
                " set_config('tcp_keepalives_interval', '5', false),"
                " set_config('tcp_keepalives_count', '3', false)"
            ),
            {"name": self._application_name},
        )
        return conn

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def acquire(self) -> bool:
        if self._conn is not None and self._held:
            try:
                # The session (and so the lock) is alive as long as this round trip works.
                self._conn.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                log.warning("scheduler_leadership_lost")
                self._drop()
        try:
            if self._conn is None:
                self._conn = self._connect()
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar()
        except DBAPIError:
            self._drop()
            return False
        self._held = bool(got)
        return self._held

    def release(self) -> None:
        # Ending the session releases the lock; an explicit unlock would add nothing.
        self._drop()
        self._engine.dispose()


class FileLockLeadership:
    """SQLite: ``flock`` on a lock file; the kernel releases it when the process dies.

    ``flock`` locks belong to the open file description, so two schedulers in one process
    (threads, tests) exclude each other too, unlike POSIX ``lockf`` record locks.
    """

    def __init__(self, path: Path, scheduler_id: str) -> None:
        self.path = path
        self._scheduler_id = scheduler_id
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        # Who leads, for a person looking at the file (the lock, not the content, is what counts).
        os.ftruncate(fd, 0)
        os.write(fd, f"{self._scheduler_id} pid={os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def lock_file_for(engine: Engine, settings: Settings) -> Path:
    """The SQLite leadership lock file: next to the database, or in the data directory."""
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        return Path(database).resolve().with_name(Path(database).name + ".scheduler.lock")
    return settings.data_dir / "scheduler.lock"


# --- folders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderLayout:
    """The watched folder and the scheduler's directories inside it."""

    folder: Path

    @property
    def processing(self) -> Path:
        return self.folder / STATE_DIR / "processing"

    @property
    def archive(self) -> Path:
        return self.folder / STATE_DIR / "archive"

    @property
    def failed(self) -> Path:
        return self.folder / STATE_DIR / "failed"

    def ensure(self) -> None:
        for path in (self.processing, self.archive, self.failed):
            path.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class ClaimedFile:
    """A file this process won: its name as dropped, and where it lies in processing/."""

    original_name: str
    path: Path


def waiting_files(folder: Path, *, settle_seconds: float) -> list[Path]:
    """Regular ``*.csv`` files ready to take, oldest first (mtime, then name).

    Dot files are skipped (editors' and copy tools' temporaries, our own ``.csvboard``), and so
    is a file modified in the last ``settle_seconds``: it may still be being written.
    """
    now = time.time()
    found: list[tuple[float, str, Path]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.lower().endswith(".csv"):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue  # claimed or removed while we looked
            if now - mtime < settle_seconds:
                continue
            found.append((mtime, entry.name, Path(entry.path)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [path for _, _, path in found]


def claim(layout: FolderLayout, path: Path) -> ClaimedFile | None:
    """Take one file for this process, or None if another process took it first.

    ``rename`` is atomic: of any number of processes renaming the same directory entry, one
    succeeds and the others find the source gone.
    """
    dest = layout.processing / f"{uuid.uuid4()}{CLAIM_SEPARATOR}{path.name}"
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    return ClaimedFile(original_name=path.name, path=dest)


def _split_processing_name(name: str) -> tuple[uuid.UUID | None, str]:
    prefix, sep, original = name.partition(CLAIM_SEPARATOR)
    if not sep:
        return None, name
    try:
        return uuid.UUID(prefix), original
    except ValueError:
        return None, name


def _put_back(layout: FolderLayout, path: Path, original_name: str) -> Path | None:
    """Return a processing file to the folder without overwriting a newer drop of that name."""
    target = layout.folder / original_name
    if target.exists():
        stem, dot, suffix = original_name.rpartition(".")
        target = layout.folder / f"{stem or suffix}.recovered-{uuid.uuid4().hex[:8]}{dot}{suffix}"
    try:
        os.link(path, target)  # fails rather than replace an existing file
        os.unlink(path)
    except FileExistsError:
        return None
    except FileNotFoundError:
        return None  # someone else moved it
    except OSError:
        # File systems without hard links (some network shares): a plain rename.
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
    return target


def _write_reason(path: Path, reason: str) -> None:
    """Write ``<path>.reason.txt`` atomically (a person opens it next to the failed file)."""
    target = path.with_name(path.name + ".reason.txt")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".reason-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(reason.rstrip("\n") + "\n")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _move(path: Path, directory: Path) -> Path | None:
    dest = directory / path.name
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None  # another scheduler settled it first
    return dest


# --- URL download -------------------------------------------------------------------------


class FetchError(Exception):
    """A URL feed's file could not be fetched; recorded as the feed's ``last_error``."""


_FILENAME_RE = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)


def _download_name(url: str, content_disposition: str | None, fallback: str) -> str:
    if content_disposition:
        match = _FILENAME_RE.search(content_disposition)
        if match:
            return unquote(match.group(1)).strip() or fallback
    last = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).strip()
    return last or fallback


def download(
    url: str,
    data_dir: Path,
    *,
    max_bytes: int,
    connect_timeout: float,
    read_timeout: float,
    total_seconds: float,
    fallback_name: str,
) -> StoredFile:
    """GET a URL into the content-addressed store, refusing errors and oversized bodies.

    The body is streamed to a temporary file (never held in memory) and counted as it comes, so
    a server that lies about or omits ``Content-Length`` still cannot exceed ``max_bytes``.
    ``read_timeout`` bounds each wait for data; ``total_seconds`` bounds a server that drips.
    """
    import httpx  # only URL feeds need it

    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise FetchError(f"{url!r} is not an http(s) URL")
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    downloads = data_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=downloads, prefix=".download-")
    deadline = time.monotonic() + total_seconds
    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.Client(
                timeout=timeout, follow_redirects=True, headers={"User-Agent": "csvboard"}
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code} from {url}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{url} is too large: {int(declared)} bytes (limit {max_bytes})")
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url} is too large: over {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{url} took longer than {total_seconds:g} s")
                out.write(chunk)
            name = _download_name(url, response.headers.get("content-disposition"), fallback_name)
        with open(tmp_name, "rb") as stream:
            return store_stream(data_dir, stream, name)
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out fetching {url} ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"could not fetch {url}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)


# --- reports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedSnapshot:
    """A feed as read at the start of a tick (plain values: no session outlives the read)."""

    id: uuid.UUID
    dashboard_id: uuid.UUID
    dashboard_slug: str
    name: str
    role: str
    source: str
    location: str | None
    schedule: str | None
    enabled: bool
    options: dict[str, Any] | None = None


@dataclass
class FeedOutcome:
    feed_id: uuid.UUID
    feed_name: str
    run_ids: list[uuid.UUID] = field(default_factory=list)
    message: str | None = None
    error: str | None = None
    # An imap feed not due this tick: nothing is recorded (``last_polled_at`` stays).
    idle: bool = False
    # When a poll completed without error (imap feeds): the state's ``last_success_at``.
    succeeded_at: datetime | None = None


@dataclass
class TickReport:
    """What one pass did; ``csvboard scheduler --once --json`` can print it."""

    now: datetime
    is_leader: bool
    feeds: list[FeedOutcome] = field(default_factory=list)
    archived: list[Path] = field(default_factory=list)
    set_aside: list[Path] = field(default_factory=list)
    returned: list[Path] = field(default_factory=list)
    # Processing files naming no committed run, younger than orphan_seconds: left alone.
    unknown: list[Path] = field(default_factory=list)

    @property
    def run_ids(self) -> list[uuid.UUID]:
        return [run_id for outcome in self.feeds for run_id in outcome.run_ids]

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "is_leader": self.is_leader,
            "run_ids": [str(r) for r in self.run_ids],
            "feeds": [
                {
                    "feed_id": str(o.feed_id),
                    "feed": o.feed_name,
                    "run_ids": [str(r) for r in o.run_ids],
                    "message": o.message,
                    "error": o.error,
                }
                for o in self.feeds
            ],
            "archived": [str(p) for p in self.archived],
            "set_aside": [str(p) for p in self.set_aside],
            "returned": [str(p) for p in self.returned],
            "unknown": [str(p) for p in self.unknown],
        }


class _Skip(Exception):
    """Nothing to create (e.g. an identical file is already queued); not an error."""


class _FeedGone(Exception):
    """The feed was deleted or disabled since the tick read it: leave its files alone."""


# --- the scheduler ------------------------------------------------------------------------


class Scheduler:
    """Fires cron feeds and watches folder feeds; one leader among any number of processes.

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
        poll_seconds: float = 5.0,
        settle_seconds: float = 2.0,
        orphan_seconds: float = 600.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        download_seconds: float = 600.0,
        max_files_per_tick: int = 100,
        official_run_kind: str = RunKind.OFFICIAL_INGESTION.value,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.scheduler_id = scheduler_id
        self.poll_seconds = poll_seconds
        self.settle_seconds = settle_seconds
        self.orphan_seconds = orphan_seconds
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.download_seconds = download_seconds
        self.max_files_per_tick = max_files_per_tick
        self.official_run_kind = official_run_kind
        self.leadership: Leadership
        if engine.dialect.name == "postgresql":
            self.leadership = AdvisoryLockLeadership(engine, scheduler_id)
        else:
            self.leadership = FileLockLeadership(lock_file_for(engine, settings), scheduler_id)
        self._is_leader = False
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
        and settle processed files. ``now`` (aware) drives cron only; file ages use the clock."""
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
        feeds = self._load_feeds()
        states = self._load_states()
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
                self._record(feed.id, now, outcome)
            except SQLAlchemyError:
                log.exception("scheduler_state_write_failed", feed=outcome.feed_name)
        folders = {feed.location for feed in feeds if feed.source == "folder" and feed.location}
        for folder in sorted(folders):
            if Path(folder).is_dir():
                try:
                    self._settle(FolderLayout(Path(folder)), report)
                except (OSError, SQLAlchemyError):
                    log.exception("scheduler_settle_failed", folder=folder)
        return report

    # -- reading --

    def _load_feeds(self) -> list[FeedSnapshot]:
        with read_session(self.engine) as session:
            rows = session.execute(
                select(CsvDashboardFeed, CsvDashboard.slug)
                .join(CsvDashboard, CsvDashboard.id == CsvDashboardFeed.csv_dashboard_id)
                .where(CsvDashboardFeed.source.in_(("folder", "url", "imap")))
                .order_by(CsvDashboard.slug, CsvDashboardFeed.name)
            ).all()
            return [
                FeedSnapshot(
                    id=feed.id,
                    dashboard_id=feed.csv_dashboard_id,
                    dashboard_slug=slug,
                    name=feed.name,
                    role=feed.role,
                    source=feed.source,
                    location=feed.location,
                    schedule=feed.schedule,
                    enabled=feed.enabled,
                    options=feed.options,
                )
                for feed, slug in rows
            ]

    def _load_states(self) -> dict[uuid.UUID, CsvDashboardFeedState]:
        with read_session(self.engine) as session:
            return {s.feed_id: s for s in session.scalars(select(CsvDashboardFeedState))}

    # -- per feed --

    def _process_feed(
        self,
        feed: FeedSnapshot,
        state: CsvDashboardFeedState | None,
        now: datetime,
        outcome: FeedOutcome,
    ) -> None:
        if feed.source == "imap":
            self._poll_mail(feed, state, now, outcome)
            return
        if feed.schedule:
            if not self._cron_due(feed, state, now, outcome):
                return
            if feed.source == "folder":
                layout = self._layout(feed)
                for path in waiting_files(layout.folder, settle_seconds=self.settle_seconds):
                    claimed = claim(layout, path)
                    if claimed is not None:
                        self._ingest_claimed(feed, layout, claimed, now, outcome)
                        return
                outcome.message = f"scheduled time passed; no file waiting in {layout.folder}"
            else:
                self._fire_url(feed, now, outcome)
        elif feed.source == "folder":
            layout = self._layout(feed)
            taken = 0
            for path in waiting_files(layout.folder, settle_seconds=self.settle_seconds):
                if taken >= self.max_files_per_tick:
                    break  # the rest next tick; a tick stays short
                claimed = claim(layout, path)
                if claimed is not None:
                    taken += 1
                    self._ingest_claimed(feed, layout, claimed, now, outcome)
            if taken == 0 and outcome.error is None:
                outcome.message = f"watching {layout.folder}: no file waiting"
        # A url feed without a schedule is fetched only when someone asks; nothing to do here.

    def _poll_mail(
        self,
        feed: FeedSnapshot,
        state: CsvDashboardFeedState | None,
        now: datetime,
        outcome: FeedOutcome,
    ) -> None:
        """An imap feed (csvboard.worker.mail): due by its cron schedule or its interval."""
        if feed.schedule:
            if not self._cron_due(feed, state, now, outcome):
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

    def _layout(self, feed: FeedSnapshot) -> FolderLayout:
        folder = Path(feed.location or "")
        if not folder.is_dir():
            raise FileNotFoundError(f"folder {folder} does not exist or is not a directory")
        layout = FolderLayout(folder)
        layout.ensure()
        return layout

    def _cron_due(
        self,
        feed: FeedSnapshot,
        state: CsvDashboardFeedState | None,
        now: datetime,
        outcome: FeedOutcome,
    ) -> bool:
        """Whether a scheduled time has passed since the cursor; if so, take the slot.

        The cursor then moves to ``now`` (not to the next scheduled time), so after downtime
        a feed fires once, not once per missed slot. First sight arms the schedule without
        firing: a new or re-deployed feed does not run for times before it existed.
        """
        tz = self.settings.timezone
        cursor = state.last_fired_at if state is not None else None
        try:
            if cursor is None:
                following = croniter(feed.schedule, now.astimezone(tz)).get_next(datetime)
                self._arm(feed.id, now)
                outcome.message = f"schedule armed; next run at {following.isoformat()}"
                return False
            due = croniter(feed.schedule, cursor.astimezone(tz)).get_next(datetime)
        except (ValueError, KeyError) as exc:
            outcome.error = f"invalid schedule {feed.schedule!r}: {exc}"
            return False
        if due > now:
            return False
        if not self._take_slot(feed.id, cursor, now):
            return False  # another scheduler fired this slot
        log.info("scheduler_cron_due", feed=outcome.feed_name, scheduled_for=due.isoformat())
        return True

    def _fire_url(self, feed: FeedSnapshot, now: datetime, outcome: FeedOutcome) -> None:
        try:
            stored = download(
                feed.location or "",
                self.settings.data_dir,
                max_bytes=self.settings.max_upload_bytes,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                total_seconds=self.download_seconds,
                fallback_name=f"{feed.name}.csv",
            )
        except FetchError as exc:
            outcome.error = str(exc)
            log.warning("scheduler_fetch_failed", feed=outcome.feed_name, error=str(exc))
            return
        try:
            with write_session(self.engine) as session:
                dashboard, db_feed = self._dashboard_and_feed(session, feed)
                active = active_identical_run(session, dashboard.id, stored.sha256)
                if active is not None:
                    outcome.message = (
                        f"unchanged file; run {active} of it is still queued or running"
                    )
                    raise _Skip
                run = queue_feed_run(
                    session,
                    dashboard,
                    db_feed,
                    stored,
                    official_run_kind=self.official_run_kind,
                    requested_by=REQUESTED_BY,
                )
                outcome.run_ids.append(run.run_id)
                outcome.message = f"queued run {run.run_id} of {stored.file_name}"
        except _Skip:
            return
        except (CsvboardError, _FeedGone) as exc:
            outcome.error = exc.args[0]
            return
        log.info("scheduler_run_queued", feed=outcome.feed_name, run_id=str(run.run_id))

    def _ingest_claimed(
        self,
        feed: FeedSnapshot,
        layout: FolderLayout,
        claimed: ClaimedFile,
        now: datetime,
        outcome: FeedOutcome,
    ) -> None:
        """Store a claimed file and queue its run; the file ends named after the run."""
        try:
            with claimed.path.open("rb") as stream:
                stored = store_stream(self.settings.data_dir, stream, claimed.original_name)
        except OSError as exc:
            # Usually the environment (data directory full, a share's hiccup), not the file:
            # give it back to be tried again next tick; the error shows on the feed meanwhile.
            _put_back(layout, claimed.path, claimed.original_name)
            outcome.error = f"{claimed.original_name}: could not store the file: {exc}"
            return
        final: Path | None = None
        run_id: uuid.UUID | None = None
        try:
            with write_session(self.engine) as session:
                dashboard, db_feed = self._dashboard_and_feed(session, feed)
                run = queue_feed_run(
                    session,
                    dashboard,
                    db_feed,
                    stored,
                    official_run_kind=self.official_run_kind,
                    requested_by=REQUESTED_BY,
                )
                run_id = run.run_id
                # Named after the run before the commit: see the module docstring.
                final = layout.processing / f"{run_id}{CLAIM_SEPARATOR}{claimed.original_name}"
                os.rename(claimed.path, final)
        except CsvboardError as exc:
            # The feed cannot take this file (configuration); a person must look at it.
            self._undo_rename(final, claimed.path)
            self._set_aside(layout, claimed.path, exc.args[0])
            outcome.error = f"{claimed.original_name}: {exc.args[0]}"
            return
        except _FeedGone as exc:
            self._undo_rename(final, claimed.path)
            _put_back(layout, claimed.path, claimed.original_name)
            outcome.error = exc.args[0]
            return
        except Exception:
            # Database trouble: did the commit land after all? If not, the file goes back.
            if run_id is not None and final is not None and self._run_exists(run_id):
                outcome.run_ids.append(run_id)
                raise
            self._undo_rename(final, claimed.path)
            _put_back(layout, claimed.path, claimed.original_name)
            raise
        outcome.run_ids.append(run_id)
        outcome.message = f"queued run {run_id} of {claimed.original_name}"
        log.info("scheduler_run_queued", feed=outcome.feed_name, run_id=str(run_id))

    @staticmethod
    def _undo_rename(final: Path | None, claim_path: Path) -> None:
        if final is not None:
            with contextlib.suppress(FileNotFoundError):
                os.rename(final, claim_path)

    def _run_exists(self, run_id: uuid.UUID) -> bool:
        try:
            with read_session(self.engine) as session:
                return session.get(IngestionRun, run_id) is not None
        except SQLAlchemyError:
            return False

    def _set_aside(self, layout: FolderLayout, path: Path, reason: str) -> None:
        dest = _move(path, layout.failed)
        if dest is not None:
            _write_reason(dest, reason)

    @staticmethod
    def _dashboard_and_feed(
        session: Session, feed: FeedSnapshot
    ) -> tuple[CsvDashboard, CsvDashboardFeed]:
        db_feed = session.get(CsvDashboardFeed, feed.id)
        dashboard = session.get(CsvDashboard, feed.dashboard_id)
        if db_feed is None or dashboard is None or not db_feed.enabled:
            raise _FeedGone(f"feed {feed.name} was deleted or disabled")
        return dashboard, db_feed

    # -- settling processed files --

    def _settle(self, layout: FolderLayout, report: TickReport) -> None:
        """Move processed files on once their run has ended; recover orphans."""
        if not layout.processing.is_dir():
            return
        entries: list[tuple[Path, uuid.UUID | None, str]] = []
        for path in sorted(layout.processing.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            run_id, original = _split_processing_name(path.name)
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
                    dest = _move(path, layout.archive)
                    if dest is not None:
                        report.archived.append(dest)
                elif status in (RunStatus.FAILED, RunStatus.CANCELLED):
                    assert run_id is not None
                    summary = error_summary(session, run_id)
                    reason = f"run {run_id} {status}" + (f": {summary}" if summary else "")
                    # Reason first: if we die between the two, the next tick rewrites it.
                    _write_reason(layout.failed / path.name, reason)
                    dest = _move(path, layout.failed)
                    if dest is not None:
                        report.set_aside.append(dest)

    def _orphan(self, layout: FolderLayout, path: Path, original: str, report: TickReport) -> None:
        """A processing file whose run never committed: put it back once surely abandoned.

        Its age is the claim's: ``rename`` updates the inode's change time (the mtime is the
        drop's). Young ones may be mid-claim in another process and are left alone.
        """
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        if time.time() - max(st.st_ctime, st.st_mtime) < self.orphan_seconds:
            report.unknown.append(path)
            return
        returned = _put_back(layout, path, original)
        if returned is not None:
            log.warning("scheduler_orphan_returned", file=str(returned))
            report.returned.append(returned)

    # -- feed state --

    def _upsert(self, session: Session, values: dict[str, Any], update_keys: list[str]) -> None:
        stmt = upsert.insert(session, CsvDashboardFeedState).values(**values)
        if update_keys:
            stmt = stmt.on_conflict_do_update(
                index_elements=["feed_id"], set_={k: stmt.excluded[k] for k in update_keys}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["feed_id"])
        session.execute(stmt)

    def _arm(self, feed_id: uuid.UUID, now: datetime) -> None:
        with write_session(self.engine) as session:
            self._upsert(session, {"feed_id": feed_id, "last_fired_at": now, "updated_at": now}, [])
            session.execute(
                update(CsvDashboardFeedState)
                .where(
                    CsvDashboardFeedState.feed_id == feed_id,
                    CsvDashboardFeedState.last_fired_at.is_(None),
                )
                .values(last_fired_at=now, updated_at=now)
            )

    def _take_slot(self, feed_id: uuid.UUID, cursor: datetime, now: datetime) -> bool:
        """Compare-and-set the cron cursor: True for exactly one of any concurrent takers."""
        with write_session(self.engine) as session:
            result = session.execute(
                update(CsvDashboardFeedState)
                .where(
                    CsvDashboardFeedState.feed_id == feed_id,
                    CsvDashboardFeedState.last_fired_at == cursor,
                )
                .values(last_fired_at=now, updated_at=now)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def _record(self, feed_id: uuid.UUID, now: datetime, outcome: FeedOutcome) -> None:
        """Write what this tick saw of a feed. An idle tick moves only ``last_polled_at``."""
        values: dict[str, Any] = {"feed_id": feed_id, "last_polled_at": now, "updated_at": now}
        keys = ["last_polled_at", "updated_at"]
        if outcome.message is not None or outcome.error is not None or outcome.run_ids:
            values["last_message"] = outcome.message
            values["last_error"] = outcome.error
            keys += ["last_message", "last_error"]
        if outcome.run_ids:
            values["last_run_id"] = outcome.run_ids[-1]
            keys.append("last_run_id")
        if outcome.succeeded_at is not None:
            values["last_success_at"] = outcome.succeeded_at
            keys.append("last_success_at")
        with write_session(self.engine) as session:
            self._upsert(session, values, keys)


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
    "ADVISORY_LOCK_KEY",
    "REQUESTED_BY",
    "ClaimedFile",
    "FeedOutcome",
    "FetchError",
    "FolderLayout",
    "Scheduler",
    "SchedulerThread",
    "TickReport",
    "claim",
    "download",
    "scheduler_id_default",
    "waiting_files",
]
