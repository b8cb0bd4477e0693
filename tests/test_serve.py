"""``csvboard serve`` as deployed: its own process, several processes on one port, and a
``csvboard worker`` beside it that yields the CPU to the API."""

from __future__ import annotations

import json
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from csvboard.cli import app as cli
from support import Harness, ServeProcess, wait_until
from worker.test_worker_processes import WorkerProcess


@pytest.fixture
def db_url(pg_url: str) -> str:
    """PostgreSQL only: the shared ``harness`` and ``api`` fixtures use it."""
    return pg_url


def test_processes_share_the_port_and_their_log_lines_never_interleave(
    harness: Harness, tmp_path: Path
) -> None:
    server = ServeProcess(
        harness, tmp_path / "serve.log", "--no-worker", "--no-scheduler", "--processes", "2"
    )
    try:
        pids = set()
        url = f"http://127.0.0.1:{server.port}/api/v1/ops/diagnostics/health"

        def get(_: int) -> int:
            with urllib.request.urlopen(url, timeout=30) as response:
                return int(response.status)

        # Concurrent, so that both processes write log lines at the same moments.
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(get, range(300))) == {200}
        # Each process logs its requests; both answered, and every line is one JSON document.
        log = tmp_path / "serve.log"
        wait_until(
            lambda: log.read_text(encoding="utf-8").count("/api/v1/ops/diagnostics/health") >= 300,
            timeout=10,
            what="the request log lines",
        )
    finally:
        server.stop()
    lines = log.read_text(encoding="utf-8").splitlines()
    # Every line that holds a log record is exactly one JSON document (the banner is not).
    documents = [json.loads(line) for line in lines if '"level"' in line]
    assert len(documents) >= 300
    for doc in documents:
        if doc.get("path") == "/api/v1/ops/diagnostics/health":
            pids.add(doc.get("pid"))
    assert len(pids) == 2, pids


def test_sqlite_refuses_several_processes_that_each_execute_runs(tmp_path: Path) -> None:
    env = {"CSVBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = CliRunner().invoke(cli, ["serve", "--processes", "2"], env=env)
    assert result.exit_code == 2
    assert "SQLite has one writer" in result.output


def test_worker_runs_at_a_lower_cpu_priority(harness: Harness, tmp_path: Path) -> None:
    env = dict(os.environ, CSVBOARD_DATABASE_URL=harness.url)
    worker = WorkerProcess([], env, tmp_path / "worker.log")
    try:
        wait_until(worker.started, timeout=60, what="the worker to start")
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(ours + 10, 19)
    finally:
        worker.stop()
