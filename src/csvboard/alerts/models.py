"""The alerts' tables: each problem csvboard has noticed, and each message sent about it.

An alert is open from the evaluation that first sees its problem until the first one that no
longer does; a partial unique index keeps one open alert per problem key, so a problem is
reported once until it clears (csvboard/alerts/service.py). A delivery is one message
(``opened`` or ``cleared``) to one channel; the unique (alert, channel, event) makes "at most
one message per problem per channel" a rule of the database, not only of the code.
No secret (webhook URL, SMTP password) is ever written here: they live in the process's
settings only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from csvboard.dashboards.vocabulary import sql_in
from csvboard.db.base import Base, JSONDocument, UTCDateTime

#: Longest stored delivery error (the channel's own message, shortened).
MAX_ERROR_LENGTH = 500


class AlertKind(StrEnum):
    RUN_FAILED = "run_failed"
    RETRIES_EXHAUSTED = "retries_exhausted"
    FEED_OVERDUE = "feed_overdue"
    FEED_FAILING = "feed_failing"
    WORKER_SILENT = "worker_silent"
    WORKER_MISSING = "worker_missing"
    QUEUE_STUCK = "queue_stuck"


class Channel(StrEnum):
    WEBHOOK = "webhook"
    MAIL = "mail"


class DeliveryEvent(StrEnum):
    OPENED = "opened"
    CLEARED = "cleared"


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    problem_key: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint(sql_in("kind", AlertKind), name="kind"),
        CheckConstraint(
            "cleared_at IS NULL OR cleared_at >= opened_at", name="cleared_after_opened"
        ),
        CheckConstraint("length(problem_key) > 0", name="problem_key_not_empty"),
        # One open alert per problem: the rule "one message until it clears" rests on it.
        Index(
            "uq_alerts_open_problem_key",
            "problem_key",
            unique=True,
            sqlite_where=text("cleared_at IS NULL"),
            postgresql_where=text("cleared_at IS NULL"),
        ),
        Index("ix_alerts_opened_at", "opened_at"),
    )


class AlertDelivery(Base):
    __tablename__ = "alert_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    alert_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    event: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        CheckConstraint(sql_in("channel", Channel), name="channel"),
        CheckConstraint(sql_in("event", DeliveryEvent), name="event"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("sent_at IS NULL OR attempts >= 1", name="sent_after_an_attempt"),
        CheckConstraint(
            f"last_error IS NULL OR length(last_error) <= {MAX_ERROR_LENGTH}",
            name="last_error_length",
        ),
        UniqueConstraint("alert_id", "channel", "event"),
        Index("ix_alert_deliveries_pending", "sent_at", "next_attempt_at"),
    )


__all__ = ["MAX_ERROR_LENGTH", "Alert", "AlertDelivery", "AlertKind", "Channel", "DeliveryEvent"]
