"""A dashboard's operations settings (docs/contract.md §2.1 "Automatic re-runs", §2.3
"Retention"): how long retention keeps its stored files, its runs' items and events and its
retired rows, and whether the retry policy re-runs its failed manual runs.

A retention column holds a number of days, or NULL for the process default
(``CSVBOARD_RETENTION_*``, csvboard.settings); the database refuses anything outside
1–``MAX_RETENTION_DAYS`` (a CHECK per column), and :func:`change_operations` refuses it
first with a message naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csvboard.dashboards.models import MAX_RETENTION_DAYS, RETENTION_COLUMNS, CsvDashboard
from csvboard.errors import InvalidRequest
from csvboard.settings import Settings

RETRY_MANUAL_RUNS = "retry_manual_runs"
OPERATIONS_FIELDS = (RETRY_MANUAL_RUNS, *RETENTION_COLUMNS)
RETENTION_RULE = f"a whole number of days from 1 to {MAX_RETENTION_DAYS}, or null for the default"


@dataclass(frozen=True)
class Retention:
    """The retention in force for a dashboard, in days (its own, else the default)."""

    file_days: int
    ledger_days: int
    retired_row_days: int


def default_retention(settings: Settings) -> Retention:
    return Retention(
        file_days=settings.retention_file_days,
        ledger_days=settings.retention_ledger_days,
        retired_row_days=settings.retention_retired_row_days,
    )


def effective_retention(dashboard: CsvDashboard, settings: Settings) -> Retention:
    default = default_retention(settings)
    return Retention(
        file_days=dashboard.retention_file_days or default.file_days,
        ledger_days=dashboard.retention_ledger_days or default.ledger_days,
        retired_row_days=dashboard.retention_retired_row_days or default.retired_row_days,
    )


def retention_problem(value: object) -> str | None:
    """Why ``value`` is not a retention a dashboard can have; None if it is one."""
    # bool is an int in Python; true is not a number of days.
    if value is None or (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_RETENTION_DAYS
    ):
        return None
    return f"must be {RETENTION_RULE}; got {value!r}"


def check_operations(changes: dict[str, Any]) -> None:
    """400 ``INVALID_OPERATIONS``, naming the setting and the rule, unless every one of
    ``changes`` (setting → value) is a value that setting can have."""
    for name, value in changes.items():
        if name == RETRY_MANUAL_RUNS:
            if value is not None and not isinstance(value, bool):
                raise InvalidRequest(
                    "INVALID_OPERATIONS",
                    f"operations.{name} must be true or false (null: false); got {value!r}",
                )
        elif name in RETENTION_COLUMNS:
            problem = retention_problem(value)
            if problem is not None:
                raise InvalidRequest("INVALID_OPERATIONS", f"operations.{name} {problem}")
        else:
            raise InvalidRequest(
                "INVALID_OPERATIONS",
                f"operations.{name} is not a setting; the settings are "
                f"{', '.join(OPERATIONS_FIELDS)}",
            )


def change_operations(dashboard: CsvDashboard, changes: dict[str, Any]) -> bool:
    """Apply ``changes`` (setting → value; an absent setting stays, None goes back to the
    default: the process's retention, no manual re-runs) once every one is checked
    (:func:`check_operations`, so a refusal changes nothing); whether anything changed."""
    check_operations(changes)
    changed = False
    for name, value in changes.items():
        if name == RETRY_MANUAL_RUNS and value is None:
            value = False
        if getattr(dashboard, name) != value:
            setattr(dashboard, name, value)
            changed = True
    return changed


__all__ = [
    "OPERATIONS_FIELDS", "RETENTION_RULE", "RETRY_MANUAL_RUNS", "Retention", "change_operations",
    "check_operations", "default_retention", "effective_retention", "retention_problem",
]  # fmt: skip
