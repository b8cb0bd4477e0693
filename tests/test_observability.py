"""JSON log lines on stdout carry timestamp, level, event, trace_id, request_id and run_id, and an
incoming W3C traceparent's trace id follows the run into the ledger and the executor's lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from csvboard.observability import configure_logging
from support import SCHEDULE_HEADER, Api, schedule_line


@pytest.fixture
def json_logs() -> Iterator[None]:
    configure_logging(stream="stdout")
    yield
    structlog.reset_defaults()


def test_request_and_run_log_lines_share_the_trace_id(
    json_logs: None, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = Api(db_url, tmp_path / "data")
    try:
        api.harness.dashboard()
        capsys.readouterr()
        trace = "0af7651916cd43dd8448eb211c80319c"
        content = SCHEDULE_HEADER + "\r\n" + schedule_line(1000000001, "A0000001", "P", 10)
        response = api.post(
            "/api/v1/ops/ingestion/runs",
            headers={"Idempotency-Key": "log", "traceparent": f"00-{trace}-b7ad6b7169203331-01"},
            data={"dashboard": "production-schedule", "run_kind": "incremental_update"},
            files={"file": ("s.csv", content.encode("cp932"), "text/csv")},
        )
        run = api.wait_for_run(response.json()["run_id"])
    finally:
        api.close()
    lines: list[dict[str, Any]] = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert lines, "no JSON log lines on stdout"
    for line in lines:
        assert {"timestamp", "level", "event"} <= set(line)
    start = [x for x in lines if x["event"] == "request" and x.get("path", "").endswith("/runs")]
    assert start[0]["trace_id"] == trace and len(start[0]["request_id"]) == 32
    assert start[0]["status"] == 202 and start[0]["method"] == "POST"
    finished = [x for x in lines if x["event"] == "run_finished"]
    assert finished[0]["trace_id"] == trace and finished[0]["run_id"] == run["run_id"]
    assert run["trace_id"] == trace
    # No token ever reaches a log line.
    assert all(token not in json.dumps(lines) for token in api.tokens.values())
