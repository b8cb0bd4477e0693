"""The operations metrics on both engines (a queued run's age, a silent worker, feeds' last
success, stored bytes, run durations), and docs/prometheus-alerts.yml: valid YAML whose every
rule names only metrics csvboard exports."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import select, update

from csvboard.clock import utcnow
from csvboard.runs.models import IngestionRun, IngestionRunLease, IngestionRunSource
from support import Api

RULES = Path(__file__).resolve().parents[2] / "docs" / "prometheus-alerts.yml"
FILE = b"ProductNo,FSEIBAN\r\n"


def value(text: str, metric: str) -> float:
    match = re.search(rf"^{re.escape(metric)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{metric} not in /metrics"
    return float(match[1])


def test_operations_metrics(api: Api) -> None:
    h = api.harness
    board = h.dashboard()
    text = api.get("/metrics", as_=None).text
    assert value(text, "csvboard_oldest_queued_run_age_seconds") == 0.0
    assert value(text, "csvboard_oldest_heartbeat_age_seconds") == 0.0
    done = h.ingest(board, "\r\n".join(["ProductNo,FSEIBAN,FHINCD"]) + "\r\n")  # fails fast
    queued = h.queue(board, h.write_file(b"x\r\n"))
    with h.write() as session:
        session.execute(update(IngestionRun).where(IngestionRun.run_id == queued)
                        .values(created_at=utcnow() - timedelta(minutes=20)))  # fmt: skip
        sizes = [s for s in session.scalars(select(IngestionRunSource.size_bytes))]
    text = api.get("/metrics", as_=None).text
    assert value(text, "csvboard_oldest_queued_run_age_seconds") >= 20 * 60
    assert value(text, "csvboard_stored_bytes") == float(sum(s or 0 for s in sizes))
    runs = value(text, "csvboard_run_duration_seconds_count")
    assert runs >= 1.0
    # every run here took well under an hour: the last finite bucket holds them all
    last = re.search(r'^csvboard_run_duration_seconds_bucket\{le="3600(?:\.0)?"\} (\S+)$', text,
                     re.MULTILINE)  # fmt: skip
    assert last and float(last[1]) == runs
    assert 0 <= value(text, "csvboard_run_duration_seconds_sum") < 3600 * runs
    assert done.status == "failed"
    with h.write() as session:
        session.execute(update(IngestionRun).where(IngestionRun.run_id == queued)
                        .values(status="running", started_at=utcnow()))  # fmt: skip
        session.add(IngestionRunLease(run_id=queued, worker_id="w",
                                      heartbeat_at=utcnow() - timedelta(minutes=5)))  # fmt: skip
    text = api.get("/metrics", as_=None).text
    assert value(text, "csvboard_oldest_heartbeat_age_seconds") >= 5 * 60


def test_the_alerting_rules_name_only_exported_metrics(api: Api) -> None:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [r for group in doc["groups"] for r in group["rules"]]
    assert {"CsvboardRunFailed", "CsvboardQueueStuck", "CsvboardWorkerSilent",
            "CsvboardFeedStale"} <= {r["alert"] for r in rules}  # fmt: skip
    exported = api.get("/metrics", as_=None).text
    names = set(re.findall(r"^# TYPE (\w+) ", exported, re.MULTILINE))
    histograms = {f"{n}_bucket" for n in names}
    for rule in rules:
        for metric in re.findall(r"\bcsvboard_\w+", rule["expr"]):
            assert metric in names or metric in histograms, (rule["alert"], metric)
