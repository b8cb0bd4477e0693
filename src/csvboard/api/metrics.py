"""Prometheus metrics: request latency, plus ledger figures read from the database at scrape
time (so every process reports the same truth, whoever executed the runs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from csvboard.alerts.models import Alert, AlertKind
from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.vocabulary import FETCHED_SOURCES
from csvboard.db.engine import read_session
from csvboard.feeds.health import last_deliveries
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.runs.health import last_worker_seen, oldest_queued_at
from csvboard.runs.models import IngestionRun, IngestionRunLease, IngestionRunSource
from csvboard.runs.vocabulary import RunStatus

RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


def _seconds_between(dialect: str, start: Any, end: Any) -> Any:
    """``end - start`` in seconds, in SQL (timestamps are text on SQLite)."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


class LedgerCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(
        self,
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        runs = GaugeMetricFamily("csvboard_runs", "Runs in the ledger by status", labels=["status"])
        rows = CounterMetricFamily(
            "csvboard_rows_ingested", "Rows committed by terminal runs (success_count)"
        )
        last = GaugeMetricFamily(
            "csvboard_last_successful_run_timestamp_seconds",
            "When the newest succeeded or partial run of a dashboard finished",
            labels=["dashboard"],
        )
        with read_session(self.engine) as session:
            counts = dict(
                session.execute(
                    select(IngestionRun.status, func.count()).group_by(IngestionRun.status)
                ).all()
            )
            for status in RunStatus:
                runs.add_metric([status.value], counts.get(status.value, 0))
            total = session.scalar(
                select(func.coalesce(func.sum(IngestionRun.success_count), 0)).where(
                    IngestionRun.finished_at.is_not(None)
                )
            )
            rows.add_metric([], float(total or 0))
            finished = session.execute(
                select(CsvDashboard.slug, func.max(IngestionRun.finished_at))
                .join(IngestionRunSource, IngestionRunSource.csv_dashboard_id == CsvDashboard.id)
                .join(IngestionRun, IngestionRun.run_id == IngestionRunSource.run_id)
                .where(IngestionRun.status.in_([RunStatus.SUCCEEDED, RunStatus.PARTIAL]))
                .group_by(CsvDashboard.slug)
            ).all()
        for slug, at in finished:
            if at is not None:
                last.add_metric([slug], at.timestamp())
        yield runs
        yield rows
        yield last
        yield from self._operations()

    def _operations(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        """What the alerting rules (docs/prometheus-alerts.yml) watch."""
        now = utcnow()
        oldest = GaugeMetricFamily(
            "csvboard_oldest_queued_run_age_seconds",
            "How long the oldest queued run has waited (0 when none waits)",
        )
        silent = GaugeMetricFamily(
            "csvboard_oldest_heartbeat_age_seconds",
            "The longest a running run's worker has not renewed its lease (0 when none runs)",
        )
        feeds = GaugeMetricFamily(
            "csvboard_feed_last_success_timestamp_seconds",
            "When a fetched feed (folder, url, imap) last brought a file that was ingested (a"
            " run that succeeded, or partly), or a mail feed's poll last answered without error",
            labels=["dashboard", "feed"],
        )
        open_alerts = GaugeMetricFamily(
            "csvboard_alerts_open",
            "Problems csvboard has noticed that have not cleared (csvboard alerts list)",
            labels=["kind"],
        )
        workers = GaugeMetricFamily(
            "csvboard_worker_last_seen_timestamp_seconds",
            "When a worker last announced itself, busy or idle (0 if none ever did)",
        )
        stored = GaugeMetricFamily(
            "csvboard_stored_bytes", "Bytes of stored copies of ingested files not yet pruned"
        )
        with read_session(self.engine) as session:
            queued_since = oldest_queued_at(session)
            last_worker = last_worker_seen(session)
            beat = session.scalar(
                select(func.min(IngestionRunLease.heartbeat_at))
                .join(IngestionRun, IngestionRun.run_id == IngestionRunLease.run_id)
                .where(IngestionRun.status == RunStatus.RUNNING.value)
            )
            last_success: dict[tuple[str, str], datetime] = {}
            polled = (
                select(
                    CsvDashboard.slug, CsvDashboardFeed.name, CsvDashboardFeedState.last_success_at
                )
                .join(CsvDashboardFeed, CsvDashboardFeed.csv_dashboard_id == CsvDashboard.id)
                .join(CsvDashboardFeedState, CsvDashboardFeedState.feed_id == CsvDashboardFeed.id)
                .where(CsvDashboardFeedState.last_success_at.is_not(None))
            )
            for slug, name, at in session.execute(polled):
                if at is not None:
                    last_success[(slug, name)] = at
            # fetched feeds only: an upload feed has no rhythm to be late for
            fetched = {
                feed_id: (slug, name)
                for feed_id, slug, name in session.execute(
                    select(CsvDashboardFeed.id, CsvDashboard.slug, CsvDashboardFeed.name)
                    .join(CsvDashboard, CsvDashboard.id == CsvDashboardFeed.csv_dashboard_id)
                    .where(CsvDashboardFeed.source.in_(FETCHED_SOURCES))
                )
            }
            for feed_id, at in last_deliveries(session, fetched).items():
                key = fetched[feed_id]
                last_success[key] = max(at, last_success.get(key, at))
            for (slug, name), at in sorted(last_success.items()):
                feeds.add_metric([slug, name], at.timestamp())
            alerts_by_kind = dict(
                session.execute(
                    select(Alert.kind, func.count())
                    .where(Alert.cleared_at.is_(None))
                    .group_by(Alert.kind)
                ).all()
            )
            sizes = dict(
                session.execute(
                    select(IngestionRunSource.stored_path, func.max(IngestionRunSource.size_bytes))
                    .where(
                        IngestionRunSource.stored_path.is_not(None),
                        IngestionRunSource.pruned_at.is_(None),
                    )
                    .group_by(IngestionRunSource.stored_path)
                ).all()
            )
            # Bucketed in SQL: one row whatever the ledger's size, not a row per run.
            seconds = _seconds_between(
                session.get_bind().dialect.name, IngestionRun.started_at, IngestionRun.finished_at
            )
            counted = session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(seconds), 0.0),
                    *(
                        func.coalesce(func.sum(case((seconds <= b, 1), else_=0)), 0)
                        for b in RUN_BUCKETS
                    ),
                ).where(IngestionRun.started_at.is_not(None), IngestionRun.finished_at.is_not(None))
            ).one()
        oldest.add_metric([], (now - queued_since).total_seconds() if queued_since else 0.0)
        silent.add_metric([], (now - beat).total_seconds() if beat else 0.0)
        workers.add_metric([], last_worker.seen_at.timestamp() if last_worker else 0.0)
        stored.add_metric([], float(sum(v or 0 for v in sizes.values())))
        histogram = HistogramMetricFamily(
            "csvboard_run_duration_seconds", "How long runs took, from start to their end"
        )
        total, summed, *within = counted
        buckets = [(str(b), int(n)) for b, n in zip(RUN_BUCKETS, within, strict=True)]
        histogram.add_metric([], [*buckets, ("+Inf", int(total))], sum_value=float(summed))
        yield oldest
        yield silent
        yield workers
        yield feeds
        for kind in AlertKind:
            open_alerts.add_metric([kind.value], float(alerts_by_kind.get(kind.value, 0)))
        yield stored
        yield histogram
        yield open_alerts


class Metrics:
    """One registry per app, so tests can build many apps in one process."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "csvboard_http_request_duration_seconds",
            "HTTP request latency",
            labelnames=("method", "route", "status"),
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.registry.register(LedgerCollector(engine))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
