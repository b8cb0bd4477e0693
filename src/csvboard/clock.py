"""The one clock: timezone-aware UTC now, for every timestamp the product writes."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
