"""What the scheduler reads and writes about its feeds each tick (docs/contract.md §4).

A tick reads every fetched feed (folder, URL, imap) as a plain :class:`FeedSnapshot`, so no
session outlives the read; each feed's source fills a :class:`FeedOutcome`, and
:func:`record` writes it to the feed's ``csv_dashboard_feed_state`` row (``feeds.models``).
A :class:`TickReport` collects the outcomes and the folder files a tick settled.

The cron cursor ``last_fired_at`` is moved only by compare-and-set (:func:`arm`,
:func:`take_slot`): two schedulers overlapping during a failover cannot both fire one slot.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import structlog
from croniter import croniter  # type: ignore[import-untyped]
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.vocabulary import FETCHED_SOURCES
from csvboard.db import upsert
from csvboard.db.engine import read_session, write_session
from csvboard.feeds.models import CsvDashboardFeedState

log = structlog.get_logger("csvboard.scheduler")

#: ``requested_by`` of every run the scheduler creates from a folder or URL feed.
REQUESTED_BY = "scheduler"


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
    # Re-runs the retry policy queued (csvboard.runs.retry_policy).
    retried: list[uuid.UUID] = field(default_factory=list)
    # What the nightly prune removed, when it ran (csvboard.runs.retention).
    pruned: dict[str, Any] | None = None
    # What the alerts check opened, cleared and sent, when it ran (csvboard.alerts).
    alerts: dict[str, Any] | None = None

    @property
    def run_ids(self) -> list[uuid.UUID]:
        return [run_id for outcome in self.feeds for run_id in outcome.run_ids]

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "is_leader": self.is_leader,
            "run_ids": [str(r) for r in self.run_ids],
            "retried": [str(r) for r in self.retried],
            "pruned": self.pruned,
            "alerts": self.alerts,
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


class FeedGone(Exception):
    """The feed was deleted or disabled since the tick read it: leave its files alone."""


def dashboard_and_feed(
    session: Session, feed: FeedSnapshot
) -> tuple[CsvDashboard, CsvDashboardFeed]:
    """The snapshot's rows in ``session``; :class:`FeedGone` when the feed no longer runs."""
    db_feed = session.get(CsvDashboardFeed, feed.id)
    dashboard = session.get(CsvDashboard, feed.dashboard_id)
    if db_feed is None or dashboard is None or not db_feed.enabled:
        raise FeedGone(f"feed {feed.name} was deleted or disabled")
    return dashboard, db_feed


# --- reading --------------------------------------------------------------------------------


def load_feeds(engine: Engine) -> list[FeedSnapshot]:
    """Every feed whose files csvboard fetches itself, by dashboard then name."""
    with read_session(engine) as session:
        rows = session.execute(
            select(CsvDashboardFeed, CsvDashboard.slug)
            .join(CsvDashboard, CsvDashboard.id == CsvDashboardFeed.csv_dashboard_id)
            .where(CsvDashboardFeed.source.in_(FETCHED_SOURCES))
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


def load_states(engine: Engine) -> dict[uuid.UUID, CsvDashboardFeedState]:
    with read_session(engine) as session:
        return {s.feed_id: s for s in session.scalars(select(CsvDashboardFeedState))}


# --- writing --------------------------------------------------------------------------------


def _upsert(session: Session, values: dict[str, Any], update_keys: list[str]) -> None:
    stmt = upsert.insert(session, CsvDashboardFeedState).values(**values)
    if update_keys:
        stmt = stmt.on_conflict_do_update(
            index_elements=["feed_id"], set_={k: stmt.excluded[k] for k in update_keys}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["feed_id"])
    session.execute(stmt)


def arm(engine: Engine, feed_id: uuid.UUID, now: datetime) -> None:
    """Set the cron cursor of a feed seen for the first time (never moves a set cursor)."""
    with write_session(engine) as session:
        _upsert(session, {"feed_id": feed_id, "last_fired_at": now, "updated_at": now}, [])
        session.execute(
            update(CsvDashboardFeedState)
            .where(
                CsvDashboardFeedState.feed_id == feed_id,
                CsvDashboardFeedState.last_fired_at.is_(None),
            )
            .values(last_fired_at=now, updated_at=now)
        )


def take_slot(engine: Engine, feed_id: uuid.UUID, cursor: datetime, now: datetime) -> bool:
    """Compare-and-set the cron cursor: True for exactly one of any concurrent takers."""
    with write_session(engine) as session:
        result = session.execute(
            update(CsvDashboardFeedState)
            .where(
                CsvDashboardFeedState.feed_id == feed_id,
                CsvDashboardFeedState.last_fired_at == cursor,
            )
            .values(last_fired_at=now, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


def record(engine: Engine, feed_id: uuid.UUID, now: datetime, outcome: FeedOutcome) -> None:
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
    with write_session(engine) as session:
        _upsert(session, values, keys)


def cron_due(
    engine: Engine,
    tz: tzinfo,
    feed: FeedSnapshot,
    feed_state: CsvDashboardFeedState | None,
    now: datetime,
    outcome: FeedOutcome,
) -> bool:
    """Whether a scheduled time (in ``tz``) has passed since the cursor; if so, take the slot.

    The cursor then moves to ``now`` (not to the next scheduled time), so after downtime
    a feed fires once, not once per missed slot. First sight arms the schedule without
    firing: a new or re-deployed feed does not run for times before it existed.
    """
    cursor = feed_state.last_fired_at if feed_state is not None else None
    try:
        if cursor is None:
            following = croniter(feed.schedule, now.astimezone(tz)).get_next(datetime)
            arm(engine, feed.id, now)
            outcome.message = f"schedule armed; next run at {following.isoformat()}"
            return False
        due = croniter(feed.schedule, cursor.astimezone(tz)).get_next(datetime)
    except (ValueError, KeyError) as exc:
        outcome.error = f"invalid schedule {feed.schedule!r}: {exc}"
        return False
    if due > now:
        return False
    if not take_slot(engine, feed.id, cursor, now):
        return False  # another scheduler fired this slot
    log.info("scheduler_cron_due", feed=outcome.feed_name, scheduled_for=due.isoformat())
    return True
