"""Prometheus metrics: request latency, plus ledger figures read from the database at scrape
time (so every process reports the same truth, whoever executed the runs)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from csvboard.dashboards.models import CsvDashboard
from csvboard.db.engine import read_session
from csvboard.runs.models import IngestionRun, IngestionRunSource
from csvboard.runs.vocabulary import RunStatus


class LedgerCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
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
