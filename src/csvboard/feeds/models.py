"""The feeds' operational state: what the scheduler remembers about each feed between ticks
(and across restarts), and the mail an imap feed has claimed.

One ``csv_dashboard_feed_state`` row per folder/url/imap feed the scheduler has looked at.
It is the scheduler's own bookkeeping, kept apart from ``csv_dashboard_feeds`` (which people
edit through the API) so that a tick
never writes a row an administrator may be updating, and so the feed's configuration and its
operational state can be read separately (the admin console shows the latter).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from csvboard.dashboards.vocabulary import sql_in
from csvboard.db.base import NOW, Base, UTCDateTime


class CsvDashboardFeedState(Base):
    __tablename__ = "csv_dashboard_feed_state"

    feed_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboard_feeds.id", ondelete="CASCADE"), primary_key=True
    )
    # The cron cursor: the last instant the schedule was evaluated as due (or first seen).
    # The next firing is the schedule's first time after it; it is compare-and-set so two
    # schedulers overlapping during a failover cannot both fire the same slot.
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="SET NULL"), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    # When a poll of the feed's source last completed without error (imap feeds): the health
    # endpoint reports a feed whose error has persisted past a few poll intervals.
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MailState(StrEnum):
    """``mail_messages.state``, in life-cycle order (see csvboard.feeds.mail_claims)."""

    QUEUED = "queued"  # claimed; its run is queued or running
    RETRY = "retry"  # released after a transient failure: the next poll may claim it again
    REJECTING = "rejecting"  # nothing to ingest; being moved to the rejected folder
    PROCESSED = "processed"  # its run succeeded (or was partial); moved to processed
    REJECTED = "rejected"  # moved to the rejected folder, with the reason


class MailMessage(Base):
    """One message an imap feed claimed: the durable record that makes a claim exactly-once.

    ``(feed_id, message_id)`` is unique, so of any number of schedulers polling the same
    mailbox exactly one inserts the row (in the transaction that creates the run), and a
    message already ingested (the same Message-ID delivered again) is never ingested twice.
    """

    __tablename__ = "mail_messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    feed_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("csv_dashboard_feeds.id", ondelete="CASCADE"), nullable=False
    )
    # The Message-ID header, or ``sha256:<hex>`` of the raw message when it has none.
    message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ingestion_runs.run_id", ondelete="SET NULL"), nullable=True
    )
    # Where the message was found: the folder's UIDVALIDITY and the message's UID in it.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    uid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sender: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint(sql_in("state", MailState), name="state"),
        UniqueConstraint("feed_id", "message_id"),
        Index("ix_mail_messages_feed_state", "feed_id", "state"),
    )
