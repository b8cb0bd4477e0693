"""The ledger's vocabularies (docs/design/ingestion_runs_table.md) as Python enums."""

from __future__ import annotations

from enum import StrEnum

from csvboard.dashboards.vocabulary import TargetType, sql_in

__all__ = [
    "ACTIVE_STATUSES", "DELIVERED_STATUSES", "RETRYABLE_STATUSES", "TERMINAL_STATUSES",
    "EventStatus", "ItemStatus",
    "RunKind", "RunMode", "RunStatus", "TargetType", "UpdateType", "sql_in",
]  # fmt: skip


class RunKind(StrEnum):
    OFFICIAL_INGESTION = "official_ingestion"
    APPEARANCE_SUPPLEMENT = "appearance_supplement"
    INCREMENTAL_UPDATE = "incremental_update"


class RunMode(StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.CANCELLED}
)
ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
#: A run that brought its file in: a partial run stored every row it could.
DELIVERED_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.PARTIAL})
RETRYABLE_STATUSES = frozenset({RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.CANCELLED})


class ItemStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNPROCESSED = "unprocessed"
    EXCLUDED = "excluded"


class UpdateType(StrEnum):
    NEW = "new"
    EXISTING = "existing"
    RETIRED = "retired"
    SUPPLEMENT = "supplement"


class EventStatus(StrEnum):
    SUCCESS = "success"
    WARN = "warn"
    FAILURE = "failure"
