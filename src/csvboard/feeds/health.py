"""Which feeds are failing, for the health endpoint (docs/contract.md §5, "Health")."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.vocabulary import FeedSource
from csvboard.feeds.imap_options import ImapOptions
from csvboard.feeds.models import CsvDashboardFeedState

#: A mail feed's error counts once it has outlasted this many poll intervals (at least
#: MAIL_MIN_OUTAGE) since the last successful poll (or since the feed was created): one
#: failed poll of a flaky server is not an outage.
MAIL_OUTAGE_POLLS = 3
MAIL_MIN_OUTAGE = timedelta(minutes=5)
_DEFAULT_POLL_SECONDS = ImapOptions.model_fields["poll_seconds"].default


def failing_mail_feeds(session: Session, now: datetime) -> list[str]:
    """``slug/feed: error`` of each enabled imap feed whose error has persisted."""
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
            failing.append(f"{slug}/{feed.name}: {state.last_error}")
    return failing
