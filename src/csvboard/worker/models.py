"""What the scheduler remembers about each feed between ticks (and across restarts).

One row per folder/url feed the scheduler has looked at. It is the scheduler's own bookkeeping,
kept apart from ``csv_dashboard_feeds`` (which people edit through the API) so that a tick
never writes a row an administrator may be updating, and so the feed's configuration and its
operational state can be read separately (the admin console shows the latter).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from csvboard.db.base import Base, UTCDateTime

NOW = text("CURRENT_TIMESTAMP")


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
