"""The run ledger's HTTP shapes: what the runs API (csvboard.runs.api) accepts and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from csvboard.runs.vocabulary import RunKind, RunMode, TargetType


class RunAccepted(BaseModel):
    run_id: uuid.UUID
    status: str
    accepted_at: datetime
    trace_id: str


class Run(BaseModel):
    """The ledger's columns (docs/design/ingestion_runs_table.md) plus what the admin needs."""

    run_id: uuid.UUID
    run_kind: str
    mode: str
    status: str
    target_types: list[str]
    parent_run_id: uuid.UUID | None
    requested_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    target_count: int
    processed_count: int
    success_count: int
    failed_count: int
    unprocessed_count: int
    trace_id: str
    created_at: datetime
    error_summary: str | None
    dashboard: str | None = None


class RunPage(BaseModel):
    items: list[Run]
    next_cursor: str | None


class Source(BaseModel):
    file_name: str
    role: str
    feed_id: uuid.UUID | None
    size_bytes: int | None
    sha256: str | None
    detected_encoding: str | None


class RunLink(BaseModel):
    run_id: uuid.UUID
    status: str


class AutoRetry(BaseModel):
    """The re-run the retry policy will queue, and when (csvboard.runs.retry_policy)."""

    attempt: int
    due_at: datetime


class RunDetail(Run):
    retryable: bool
    sources: list[Source]
    parent: RunLink | None
    children: list[RunLink]
    auto_retry: AutoRetry | None = None


class Item(BaseModel):
    line_number: int | None
    row_key: str | None
    status: str
    update_type: str | None
    reason_code: str | None
    message: str | None
    row_id: uuid.UUID | None


class ItemPage(BaseModel):
    items: list[Item]
    next_cursor: str | None


class Event(BaseModel):
    event_type: str
    event_status: str
    from_status: str | None
    to_status: str | None
    error_code: str | None
    message: str | None
    details: dict[str, Any] | None
    occurred_at: datetime
    trace_id: str


class CancelResult(BaseModel):
    run_id: uuid.UUID
    status: str
    detail: str


class DashboardLatest(BaseModel):
    dashboard: str
    latest_run: Run | None
    last_success_at: datetime | None


class Latest(BaseModel):
    latest: Run | None
    dashboards: list[DashboardLatest]


class StartRunJson(BaseModel):
    """A run of feeds that fetch their own files (no upload)."""

    dashboard: str = Field(min_length=1, max_length=64)
    run_kind: RunKind
    trigger_mode: RunMode = RunMode.MANUAL
    target_types: list[TargetType] = Field(default_factory=list)
    feeds: list[str] | None = None
