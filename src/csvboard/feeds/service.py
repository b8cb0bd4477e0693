"""Feeds: where a dashboard's files come from (upload, folder, URL, IMAP) and the rules a
feed's settings obey together. The admin API and console call these; the scheduler and the
mail poller (``worker/``) act on the feeds they describe.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.columns import AppearanceMapping
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.vocabulary import FeedSource, TargetType
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.feeds.cron import validate_cron
from csvboard.feeds.imap_options import MailConfigError, parse_options
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.runs.vocabulary import RunKind

FeedWithState = tuple[CsvDashboardFeed, CsvDashboardFeedState | None]


def check_feed(
    dashboard: CsvDashboard,
    *,
    role: str,
    source: str,
    location: str | None,
    schedule: str | None,
    mapping: AppearanceMapping | None,
    options: dict[str, Any] | None = None,
) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """Validate a feed's settings together; returns the normalised (location, schedule,
    options). An imap feed's location is derived from its options (``imap://user@host/…``)."""
    if location is not None:
        location = location.strip() or None
    if source == FeedSource.IMAP:
        try:
            imap = parse_options(options)
        except MailConfigError as exc:
            raise InvalidRequest("INVALID_OPTIONS", str(exc)) from None
        if imap.run_kind is not None:
            expected = (
                TargetType.APPEARANCE
                if imap.run_kind == RunKind.APPEARANCE_SUPPLEMENT
                else TargetType.OFFICIAL
            )
            if role != expected:
                raise InvalidRequest(
                    "INVALID_OPTIONS", f"run_kind {imap.run_kind} does not fit a {role} feed"
                )
        location = imap.display_location()
        options = imap.model_dump(mode="json", exclude_none=True)
    elif options is not None:
        raise InvalidRequest("INVALID_OPTIONS", f"a {source} feed has no options; remove them")
    if source == FeedSource.UPLOAD:
        if location is not None:
            raise InvalidRequest("INVALID_LOCATION", "an upload feed has no location")
        if schedule is not None:
            raise InvalidRequest(
                "INVALID_SCHEDULE", "an upload feed has no schedule: files arrive by hand"
            )
    elif location is None:
        raise InvalidRequest(
            "LOCATION_REQUIRED", f"a {source} feed needs a location (a folder path or a URL)"
        )
    if (
        source == FeedSource.URL
        and location is not None
        and not re.match(r"(?i)https?://\S+$", location)
    ):
        raise InvalidRequest("INVALID_LOCATION", f"{location!r} is not an http(s) URL")
    if schedule is not None:
        schedule = validate_cron(schedule)
    if role == TargetType.OFFICIAL and mapping is not None:
        raise InvalidRequest(
            "INVALID_MAPPING", "only appearance feeds have a column mapping; remove it"
        )
    if role == TargetType.APPEARANCE:
        if mapping is None:
            raise InvalidRequest(
                "MAPPING_REQUIRED",
                "an appearance feed needs a mapping: the feed's header for each key column",
            )
        keys = list(dashboard.key_columns)
        missing = [k for k in keys if k not in mapping.key_columns]
        unknown = [k for k in mapping.key_columns if k not in keys]
        if missing or unknown:
            parts = []
            if missing:
                parts.append("no header given for key column(s) " + ", ".join(missing))
            if unknown:
                parts.append(", ".join(unknown) + " is not a key column of this dashboard")
            raise InvalidRequest("INVALID_MAPPING", "; ".join(parts))
        if any(not v.strip() for v in mapping.key_columns.values()):
            raise InvalidRequest("INVALID_MAPPING", "a mapped header must not be blank")
    return location, schedule, options


def feed_of(session: Session, dashboard: CsvDashboard, feed_id: uuid.UUID) -> CsvDashboardFeed:
    feed = session.get(CsvDashboardFeed, feed_id)
    if feed is None or feed.csv_dashboard_id != dashboard.id:
        raise NotFound("FEED_NOT_FOUND", f"dashboard {dashboard.slug!r} has no feed {feed_id}")
    return feed


def _name_taken(
    session: Session, dashboard_id: uuid.UUID, name: str, but: uuid.UUID | None = None
) -> bool:
    query = select(CsvDashboardFeed.id).where(
        CsvDashboardFeed.csv_dashboard_id == dashboard_id, CsvDashboardFeed.name == name
    )
    if but is not None:
        query = query.where(CsvDashboardFeed.id != but)
    return session.scalar(query) is not None


def _feed_exists(name: str) -> Conflict:
    return Conflict("FEED_EXISTS", f"this dashboard already has a feed named {name!r}")


def list_feeds(session: Session, dashboard: CsvDashboard) -> list[FeedWithState]:
    """Every feed of the dashboard, enabled or not, oldest first, with its state."""
    rows = session.execute(
        select(CsvDashboardFeed, CsvDashboardFeedState)
        .outerjoin(CsvDashboardFeedState, CsvDashboardFeedState.feed_id == CsvDashboardFeed.id)
        .where(CsvDashboardFeed.csv_dashboard_id == dashboard.id)
        .order_by(CsvDashboardFeed.created_at, CsvDashboardFeed.name)
    ).all()
    return [(feed, state) for feed, state in rows]


def create_feed(
    session: Session,
    dashboard: CsvDashboard,
    *,
    name: str,
    role: str,
    source: str,
    location: str | None,
    schedule: str | None,
    enabled: bool,
    mapping: AppearanceMapping | None,
    options: dict[str, Any] | None,
) -> CsvDashboardFeed:
    """A new feed of ``dashboard``, its settings checked together (:func:`check_feed`);
    409 ``FEED_EXISTS`` when the dashboard already has a feed of that name."""
    location, schedule, options = check_feed(
        dashboard, role=role, source=source, location=location, schedule=schedule,
        mapping=mapping, options=options,
    )  # fmt: skip
    if _name_taken(session, dashboard.id, name):
        raise _feed_exists(name)
    now = utcnow()
    feed = CsvDashboardFeed(
        id=uuid.uuid4(),
        csv_dashboard_id=dashboard.id,
        name=name,
        role=role,
        source=source,
        location=location,
        schedule=schedule,
        enabled=enabled,
        mapping=None if mapping is None else mapping.model_dump(mode="json"),
        options=options,
        created_at=now,
        updated_at=now,
    )
    session.add(feed)
    try:
        session.flush()
    except IntegrityError:
        raise _feed_exists(name) from None
    return feed


# Settings an update leaves as they are when given as null (the others: null clears them).
_KEPT_WHEN_NULL = ("name", "role", "source", "enabled")


def update_feed(
    session: Session, dashboard: CsvDashboard, feed_id: uuid.UUID, changes: dict[str, Any]
) -> FeedWithState:
    """Change the settings in ``changes`` (name, role, source, location, schedule, enabled,
    mapping, options); the result is checked as a whole, as on creation. 404
    ``FEED_NOT_FOUND`` for a feed of another dashboard, 409 ``FEED_EXISTS`` on a rename onto a
    taken name."""
    feed = feed_of(session, dashboard, feed_id)
    current: dict[str, Any] = {
        "name": feed.name,
        "role": feed.role,
        "source": feed.source,
        "location": feed.location,
        "schedule": feed.schedule,
        "enabled": feed.enabled,
        "mapping": (
            None if feed.mapping is None else AppearanceMapping.model_validate(feed.mapping)
        ),
        "options": feed.options,
    }
    wanted = dict(current)
    for key, value in changes.items():
        if value is not None or key not in _KEPT_WHEN_NULL:
            wanted[key] = value
    location, schedule, options = check_feed(
        dashboard,
        role=wanted["role"],
        source=wanted["source"],
        location=wanted["location"],
        schedule=wanted["schedule"],
        mapping=wanted["mapping"],
        options=wanted["options"],
    )
    name = wanted["name"]
    if name != feed.name and _name_taken(session, dashboard.id, name, but=feed.id):
        raise _feed_exists(name)
    mapping = wanted["mapping"]
    values: dict[str, Any] = {
        "name": name,
        "role": wanted["role"],
        "source": wanted["source"],
        "location": location,
        "schedule": schedule,
        "enabled": wanted["enabled"],
        "mapping": None if mapping is None else mapping.model_dump(mode="json"),
        "options": options,
    }
    if any(getattr(feed, k) != v for k, v in values.items()):
        for key, value in values.items():
            setattr(feed, key, value)
        feed.updated_at = utcnow()
        try:
            session.flush()
        except IntegrityError:
            raise _feed_exists(name) from None
    return feed, session.get(CsvDashboardFeedState, feed.id)
