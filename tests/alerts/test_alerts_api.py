"""Alerts as an admin sees them, on both engines: ``GET /api/v1/ops/alerts`` (a viewer reads),
``POST /api/v1/ops/alerts/test`` (an admin only), ``csvboard alerts list|check|test``, and the
``csvboard_alerts_open`` metric."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from csvboard.alerts import evaluate
from csvboard.cli import app
from support import Api, failed_run

ALERTS = "/api/v1/ops/alerts"
runner = CliRunner()


def test_the_api_lists_alerts_and_sends_a_test(api: Api) -> None:
    h = api.harness
    board = h.dashboard()
    assert api.get(ALERTS, as_="viewer").json() == {"items": []}
    _, ended = failed_run(h, board, "HEADER_MISMATCH")
    evaluate(h.engine, h.settings, ended)
    (alert,) = api.get(ALERTS, as_="viewer").json()["items"]
    assert alert["kind"] == "run_failed" and alert["cleared_at"] is None
    assert "HEADER_MISMATCH" in alert["body"] and alert["deliveries"] == []  # no channel
    assert len(api.get(f"{ALERTS}?state=open").json()["items"]) == 1
    assert api.get(f"{ALERTS}?limit=0").status_code == 400
    assert api.get(ALERTS, as_=None).status_code == 401

    assert api.post(f"{ALERTS}/test", as_="viewer").status_code == 403
    assert api.post(f"{ALERTS}/test").json() == {"channels": {}}  # none configured

    text = api.get("/metrics", as_=None).text
    assert 'csvboard_alerts_open{kind="run_failed"} 1.0' in text
    assert 'csvboard_alerts_open{kind="worker_silent"} 0.0' in text


def test_the_command_line(api: Api) -> None:
    h = api.harness
    failed_run(h, h.dashboard(), "HEADER_MISMATCH")
    env = {"CSVBOARD_DATABASE_URL": h.url, "CSVBOARD_DATA_DIR": str(h.data_dir)}
    checked = runner.invoke(app, ["alerts", "check", "--json"], env=env)
    assert checked.exit_code == 0, checked.stderr
    doc = json.loads(checked.stdout)
    assert len(doc["opened"]) == 1 and doc["sent"] == 0
    listed = runner.invoke(app, ["alerts", "list", "--open", "--json"], env=env)
    assert listed.exit_code == 0
    (alert,) = json.loads(listed.stdout)
    assert alert["kind"] == "run_failed" and alert["deliveries"] == []
    plain = runner.invoke(app, ["alerts", "list"], env=env)
    assert "run failed" in plain.stdout and "no channel" in plain.stdout
    tested = runner.invoke(app, ["alerts", "test"], env=env)
    assert tested.exit_code == 1 and "no channel is configured" in tested.stdout
    assert json.loads(runner.invoke(app, ["alerts", "check", "--json"], env=env).stdout) == {
        "opened": [],
        "cleared": [],
        "sent": 0,
        "failed": [],
    }  # told once


def test_health_and_metrics_say_when_no_worker_was_seen(api: Api) -> None:
    from datetime import timedelta

    from csvboard.clock import utcnow
    from csvboard.runs.models import WorkerPresence

    health = "/api/v1/ops/diagnostics/health"
    assert api.get(health, as_=None).json()["checks"]["workers"] == "ok"
    metric = re.compile(r"^csvboard_worker_last_seen_timestamp_seconds (\S+)$", re.MULTILINE)
    found = metric.search(api.get("/metrics", as_=None).text)
    assert found and float(found[1]) == 0.0
    long_ago = utcnow() - timedelta(minutes=5)
    with api.harness.write() as session:
        session.add(WorkerPresence(worker_id="w", started_at=long_ago, seen_at=long_ago))
    doc = api.get(health, as_=None).json()
    assert doc["status"] == "degraded"
    assert doc["checks"]["workers"] == f"no worker seen since {long_ago.isoformat()}"
    found = metric.search(api.get("/metrics", as_=None).text)
    assert found and abs(float(found[1]) - long_ago.timestamp()) < 1e-3
