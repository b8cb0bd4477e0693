"""What is wrong right now: the problems an admin is told about (docs/contract.md §4, "Alerts").

Each problem has a key that stays the same while the problem lasts, so the alerts service
(csvboard/alerts/service.py) tells it once and again only when it has cleared:

- ``run_failed`` — the latest run of a dashboard's feed (uploads are the ``upload`` feed)
  failed; it clears when a later run of that feed succeeds (or partly succeeds), or the
  feed is deleted, never by age alone (:func:`still_holds`). Cancelled runs neither open nor
  clear it.
- ``retries_exhausted`` — that failure may pass, the retry policy re-ran it as often as it
  may (csvboard/runs/retry_policy.py), and it still failed: someone must look.
- ``feed_overdue`` — a scheduled feed's latest slot brought no successful run within the
  grace (csvboard/feeds/health.py).
- ``feed_failing`` — a mail feed's polls have kept failing (the health endpoint's rule).
- ``worker_silent`` — a running run's worker stopped renewing its lease; ``worker_missing`` —
  no worker has announced itself for two minutes (once one ever has), whether or not runs
  wait; ``queue_stuck`` — a run has waited too long: no worker is taking runs
  (csvboard/runs/health.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from csvboard.alerts.models import AlertKind
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.feeds.health import failing_mail_feeds, last_deliveries, overdue_feeds
from csvboard.runs.health import (
    LOST_HEARTBEAT,
    STALE_QUEUE,
    WORKER_ABSENT,
    last_worker_seen,
    ledger_health,
)
from csvboard.runs.models import IngestionRun, IngestionRunSource
from csvboard.runs.queries import error_summary
from csvboard.runs.retry_policy import pending_retry, retries_exhausted
from csvboard.runs.vocabulary import DELIVERED_STATUSES, RunStatus
from csvboard.settings import Settings

#: Runs that ended longer ago neither open nor clear a run problem (a feed silent for a
#: month is the overdue rule's business).
RUN_LOOK_BACK = timedelta(days=30)
_DECIDING = (*DELIVERED_STATUSES, RunStatus.FAILED)


@dataclass(frozen=True)
class Problem:
    key: str
    kind: AlertKind
    summary: str  # one line, the message's subject
    body: str
    details: dict[str, Any] = field(default_factory=dict)


def current_problems(session: Session, settings: Settings, now: datetime) -> dict[str, Problem]:
    """Every problem that holds at ``now``, by key."""
    found = [
        *_run_problems(session, settings, now),
        *_feed_problems(session, settings, now),
        *_worker_problems(session, now),
    ]
    return {p.key: p for p in found}


def _run_problems(session: Session, settings: Settings, now: datetime) -> list[Problem]:
    src = IngestionRunSource
    rank = (
        func.row_number()
        .over(
            partition_by=(src.csv_dashboard_id, src.feed_id),
            order_by=(IngestionRun.finished_at.desc(), IngestionRun.created_at.desc()),
        )
        .label("rank")
    )
    latest = (
        select(IngestionRun.run_id, IngestionRun.status, src.csv_dashboard_id, src.feed_id, rank)
        .join(src, src.run_id == IngestionRun.run_id)
        .where(
            src.position == 0,
            IngestionRun.status.in_(_DECIDING),
            IngestionRun.finished_at >= now - RUN_LOOK_BACK,
        )
        .subquery()
    )
    failing = session.execute(
        select(latest.c.run_id, latest.c.csv_dashboard_id, latest.c.feed_id).where(
            latest.c.rank == 1,
            latest.c.status == RunStatus.FAILED.value,
            latest.c.feed_id.is_not(None),  # a deleted feed's runs: nobody to tell about
        )
    ).all()
    delays = settings.auto_retry_delays
    problems = []
    for run_id, dashboard_id, feed_id in failing:
        run = session.get_one(IngestionRun, run_id)
        label = _feed_label(session, dashboard_id, feed_id)
        error = error_summary(session, run_id) or "no error recorded"
        finished = run.finished_at.isoformat() if run.finished_at else "?"
        details = {"run_id": str(run_id), "feed": label, "error": error, "finished_at": finished}
        pending = pending_retry(session, run, delays)
        if pending is not None:
            next_step = (
                f"The retry policy re-runs it (re-run {pending.attempt} of"
                f" {len(delays)}) at {pending.due_at.isoformat()}."
            )
            details["retry_due_at"] = pending.due_at.isoformat()
        else:
            next_step = "It is not re-run automatically."
        problems.append(
            Problem(
                key=f"run-failed:{dashboard_id}:{feed_id}",
                kind=AlertKind.RUN_FAILED,
                summary=f"[csvboard] 取込失敗 / run failed: {label}",
                body=f"Run {run_id} of {label} failed at {finished}: {error}.\n{next_step}",
                details=details,
            )
        )
        made = retries_exhausted(session, run, delays)
        if made is not None:
            problems.append(
                Problem(
                    key=f"retries-exhausted:{dashboard_id}:{feed_id}",
                    kind=AlertKind.RETRIES_EXHAUSTED,
                    summary=f"[csvboard] 再実行の上限 / retries exhausted: {label}",
                    body=(
                        f"{made} automatic re-runs of {label} failed; the last, run {run_id},"
                        f" with {error}. Nothing re-runs it now: someone must look."
                    ),
                    details={**details, "retries": made},
                )
            )
    return problems


_RUN_KINDS = {AlertKind.RUN_FAILED.value, AlertKind.RETRIES_EXHAUSTED.value}


def still_holds(session: Session, kind: str, key: str, details: dict[str, Any]) -> bool:
    """Whether an open run problem that :func:`current_problems` no longer lists still holds:
    its failed run left the look-back window, but no later run of its feed succeeded. It
    clears on a success (or when its feed is deleted), never by age alone."""
    if kind not in _RUN_KINDS:
        return False
    try:
        feed_id = uuid.UUID(key.rsplit(":", 1)[1])
        failed_at = datetime.fromisoformat(details["finished_at"])
    except (IndexError, KeyError, ValueError):
        return False
    if session.get(CsvDashboardFeed, feed_id) is None:
        return False
    delivered = last_deliveries(session, [feed_id]).get(feed_id)
    return delivered is None or delivered <= failed_at


def _feed_label(session: Session, dashboard_id: uuid.UUID, feed_id: uuid.UUID | None) -> str:
    slug = session.scalar(select(CsvDashboard.slug).where(CsvDashboard.id == dashboard_id))
    name = None
    if feed_id is not None:
        name = session.scalar(select(CsvDashboardFeed.name).where(CsvDashboardFeed.id == feed_id))
    return f"{slug}/{name or '(deleted feed)'}"


def _feed_problems(session: Session, settings: Settings, now: datetime) -> list[Problem]:
    grace = timedelta(minutes=settings.alert_feed_grace_minutes)
    problems = [
        Problem(
            key=f"feed-overdue:{feed.feed_id}",
            kind=AlertKind.FEED_OVERDUE,
            summary=f"[csvboard] 取込の遅れ / feed overdue: {feed.label}",
            body=f"Feed {feed.label}: {feed.detail}.",
            details={"feed": feed.label, "detail": feed.detail},
        )
        for feed in overdue_feeds(session, now, settings.timezone, grace)
    ]
    problems.extend(
        Problem(
            key=f"feed-failing:{feed.feed_id}",
            kind=AlertKind.FEED_FAILING,
            summary=f"[csvboard] メール取得の失敗 / mail feed failing: {feed.label}",
            body=f"Mail feed {feed.label} keeps failing: {feed.detail}.",
            details={"feed": feed.label, "detail": feed.detail},
        )
        for feed in failing_mail_feeds(session, now)
    )
    return problems


def _worker_problems(session: Session, now: datetime) -> list[Problem]:
    ledger = ledger_health(session, now)
    problems = []
    if ledger.without_heartbeat:
        seconds = int(LOST_HEARTBEAT.total_seconds())
        problems.append(
            Problem(
                key="worker-silent",
                kind=AlertKind.WORKER_SILENT,
                summary="[csvboard] ワーカー応答なし / worker silent",
                body=(
                    f"{ledger.without_heartbeat} running run(s) have had no heartbeat from their"
                    f" worker for over {seconds} s; the reaper fails them WORKER_LOST."
                ),
                details={"runs": ledger.without_heartbeat},
            )
        )
    last = last_worker_seen(session)
    if last is not None and now - last.seen_at > WORKER_ABSENT:
        how = (
            "stopped on request"
            if last.stopped_at is not None
            else "stopped announcing itself: killed, crashed, or its machine is down"
        )
        problems.append(
            Problem(
                key="worker-missing",
                kind=AlertKind.WORKER_MISSING,
                summary="[csvboard] ワーカー停止 / no worker is running",
                body=(
                    f"No worker has announced itself since {last.seen_at.isoformat()} (the last,"
                    f" {last.worker_id}, {how}). Runs wait until `csvboard worker` or"
                    " `csvboard serve` runs again."
                ),
                details={"last_seen_at": last.seen_at.isoformat(), "worker_id": last.worker_id},
            )
        )
    if ledger.stale_since is not None:
        minutes = int(STALE_QUEUE.total_seconds() // 60)
        problems.append(
            Problem(
                key="queue-stuck",
                kind=AlertKind.QUEUE_STUCK,
                summary="[csvboard] 取込待ちが進まない / no worker is taking runs",
                body=(
                    f"A run has waited since {ledger.stale_since.isoformat()} (over {minutes}"
                    " min): is `csvboard worker` (or `csvboard serve`) running?"
                ),
                details={"queued_since": ledger.stale_since.isoformat()},
            )
        )
    return problems


__all__ = ["RUN_LOOK_BACK", "Problem", "current_problems", "still_holds"]
