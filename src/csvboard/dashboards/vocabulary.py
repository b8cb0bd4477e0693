"""The closed vocabularies of dashboards and their feeds (docs/contract.md §1, §4) as enums.

``TargetType`` is both a run's target and a feed's role: a feed of role ``appearance`` feeds
``appearance_supplement`` runs. It lives here, below the ledger, because the feed table does.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class DashboardKind(StrEnum):
    GENERIC = "generic"
    PRODUCTION_SCHEDULE = "production_schedule"


class IngestMode(StrEnum):
    DEDUP = "DEDUP"
    APPEND = "APPEND"


class TargetType(StrEnum):
    OFFICIAL = "official"
    APPEARANCE = "appearance"


class FeedSource(StrEnum):
    UPLOAD = "upload"
    FOLDER = "folder"
    URL = "url"
    IMAP = "imap"


#: Sources whose files the scheduler fetches itself (every source but uploads).
FETCHED_SOURCES = (FeedSource.FOLDER, FeedSource.URL, FeedSource.IMAP)


def sql_in(column: str, values: Iterable[StrEnum]) -> str:
    """``column IN ('a', 'b')`` for a CHECK constraint from a vocabulary."""
    items = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({items})"
