"""Which feeds are in trouble: mail feeds whose polls keep failing (the health endpoint,
docs/contract.md §5, "Health") and scheduled feeds that missed a slot (the alerts,
csvboard/alerts/problems.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from croniter import croniter  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.vocabulary import FETCHED_SOURCES, FeedSource
from csvboard.feeds.imap_options import ImapOptions
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.runs.models import IngestionRun, IngestionRunSource
from csvboard.runs.vocabulary import DELIVERED_STATUSES

#: A mail feed's error counts once it has outlasted this many poll intervals (at least
#: MAIL_MIN_OUTAGE) since the last successful poll (or since the feed was created): one
#: failed poll of a flaky server is not an outage.
MAIL_OUTAGE_POLLS = 3
MAIL_MIN_OUTAGE = timedelta(minutes=5)
_DEFAULT_POLL_SECONDS = ImapOptions.model_fields["poll_seconds"].default


@dataclass(frozen=True)
class FeedTrouble:
    feed_id: uuid.UUID
    label: str  # "slug/feed"
    detail: str


def failing_mail_feeds(session: Session, now: datetime) -> list[FeedTrouble]:
    """Each enabled imap feed whose error has persisted, with the error."""
    rows = session.execute(
        select(CsvDashboardFeed, CsvDashboard.slug, CsvDashboardFeedState)
        .join(CsvDashboard, CsvDashboard.id == CsvDashboardFeed.csv_dashboard_id)
        .join(CsvDashboardFeedState, CsvDashboardFeedState.feed_id == CsvDashboardFeed.id)
        .where(
            CsvDashboardFeed.source == FeedSource.IMAP,
            CsvDashboardFeed.enabled.is_(True),
            CsvDashboardFeedState.last_error.is_not(None),
        )
        .order_by(CsvDashboard.slug, CsvDashboardFeed.name)
    ).all()
    failing = []
    for feed, slug, state in rows:
        # Options are validated when stored; a hand-edited row falls back to the default.
        try:
            poll = float((feed.options or {}).get("poll_seconds", _DEFAULT_POLL_SECONDS))
        except (TypeError, ValueError):
            poll = float(_DEFAULT_POLL_SECONDS)
        allowed = max(timedelta(seconds=MAIL_OUTAGE_POLLS * poll), MAIL_MIN_OUTAGE)
        since = state.last_success_at or feed.created_at
        if now - since > allowed:
            failing.append(FeedTrouble(feed.id, f"{slug}/{feed.name}", state.last_error or ""))
    return failing


def last_deliveries(session: Session, feed_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """When each of these feeds last brought a file in: its latest run that succeeded (or
    partly); a feed that never did is absent. One grouped query (the sources' feed index)."""
    ids = list(feed_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(IngestionRunSource.feed_id, func.max(IngestionRun.finished_at))
        .join(IngestionRun, IngestionRun.run_id == IngestionRunSource.run_id)
        .where(IngestionRunSource.feed_id.in_(ids), IngestionRun.status.in_(DELIVERED_STATUSES))
        .group_by(IngestionRunSource.feed_id)
    ).all()
    return {feed_id: at for feed_id, at in rows if feed_id is not None and at is not None}


def overdue_feeds(
    session: Session, now: datetime, tz: tzinfo, grace: timedelta
) -> list[FeedTrouble]:
    """Each enabled scheduled feed whose latest slot, ``grace`` or more ago, was not followed
    by a run of its file that succeeded: "not succeeded for longer than its interval".

    A slot's run (and the retry policy's re-runs of it) has ``grace`` to succeed. The slot,
    not a fixed interval, is the measure, so a weekday feed is not overdue on Sunday.
    """
    rows = session.execute(
        select(CsvDashboardFeed, CsvDashboard.slug)
        .join(CsvDashboard, CsvDashboard.id == CsvDashboardFeed.csv_dashboard_id)
        .where(
            CsvDashboardFeed.enabled.is_(True),
            CsvDashboardFeed.schedule.is_not(None),
            CsvDashboardFeed.source.in_(FETCHED_SOURCES),
        )
        .order_by(CsvDashboard.slug, CsvDashboardFeed.name)
    ).all()
    delivered_at = last_deliveries(session, (feed.id for feed, _ in rows))
    overdue = []
    for feed, slug in rows:
        try:
            slot: datetime = croniter(feed.schedule, (now - grace).astimezone(tz)).get_prev(
                datetime
            )
        except ValueError:  # croniter's errors are ValueErrors
            continue  # a schedule stored by hand that does not parse: the feed's state says so
        if max(feed.created_at, feed.updated_at) > slot:
            # Its first slot since it was created, given this schedule or enabled has not
            # come yet (the scheduler arms a changed schedule without firing it).
            continue
        delivered = delivered_at.get(feed.id)
        if delivered is None or delivered < slot:
            since = "never" if delivered is None else f"last at {delivered.isoformat()}"
            overdue.append(
                FeedTrouble(
                    feed.id,
                    f"{slug}/{feed.name}",
                    f"no successful run since its slot at {slot.isoformat()} ({since})",
                )
            )
    return overdue
