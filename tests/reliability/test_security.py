"""Security properties.

- bearer tokens are compared in constant time: ``auth.authenticate`` looks the token up by its
  SHA-256 digest and confirms with ``hmac.compare_digest`` (checked on the code path, and by
  patching ``hmac.compare_digest`` to prove it is the comparison actually used);
- neither a token nor a CSV cell value appears in any log line during an ingestion and API
  calls (structlog JSON output captured);
- uploaded file names are never used as paths: hostile names end up stored under the data dir
  only, with a sanitised display name;
- formula injection: csvboard has no CSV export, so there is nothing to neutralise (README).
"""

from __future__ import annotations

import hmac
import inspect
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from csvboard import auth
from csvboard.observability import configure_logging
from csvboard.runs.models import IngestionRunSource
from csvboard.storage import safe_display_name, store_stream
from support import SCHEDULE_HEADER, Api, schedule_line

RUNS = "/api/v1/ops/ingestion/runs"
SENTINEL = "ZZSENTINEL9731"  # a cell value that must never reach a log line


@pytest.fixture
def api(sqlite_url: str, tmp_path: Path) -> Iterator[Api]:
    client = Api(sqlite_url, tmp_path / "data", run_executor=True)
    client.harness.dashboard()
    try:
        yield client
    finally:
        client.close()


def test_token_comparison_is_constant_time(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    source = inspect.getsource(auth.authenticate)
    assert "hmac.compare_digest" in source
    assert "==" not in source.replace("ApiToken.token_hash == digest", "")  # SQL lookup only
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module auth.py uses
    assert api.get("/api/v1/dashboards", as_="viewer").status_code == 200
    assert calls, "authenticate did not go through hmac.compare_digest"
    assert api.get("/api/v1/dashboards", as_="not-a-token").status_code == 401


def test_no_token_or_cell_value_in_log_lines(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(stream="stdout")
    body = (
        "\n".join(
            [
                SCHEDULE_HEADER,
                schedule_line(1, "AB123456", "P1", 10, name=SENTINEL),
                schedule_line(2, "AB123456", SENTINEL[:8], 20, hours="x" + SENTINEL),
            ]
        )
        + "\n"
    )
    r = api.post(
        RUNS,
        headers={"Idempotency-Key": str(uuid.uuid4())},
        data={"dashboard": "production-schedule", "run_kind": "incremental_update"},
        files={"file": ("s.csv", body.encode("cp932"), "text/csv")},
    )
    assert r.status_code == 202, r.text
    doc = api.wait_for_run(r.json()["run_id"])
    assert doc["status"] == "partial", doc
    api.get(f"{RUNS}/{doc['run_id']}/items", as_="viewer")
    api.get("/api/v1/schedules/production-schedule/rows", as_="operator")
    api.get("/api/v1/dashboards", as_=api.tokens["admin"] + "x")  # a wrong token, logged 401
    captured = capsys.readouterr()
    logs = captured.out + captured.err
    assert "run_finished" in logs or "request" in logs, logs[-2000:]
    assert SENTINEL not in logs
    assert SENTINEL[:8] not in logs
    for token in api.tokens.values():
        assert token not in logs
        assert token[-16:] not in logs


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/abs/x.csv", "..\\x.csv", "a\x00b.csv", "..", "C:\\win\\x.csv"]
)
def test_upload_names_are_never_paths(name: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    stored = store_stream(data_dir, io.BytesIO(b"ProductNo\n1\n"), name)
    files = (data_dir / "files").resolve()
    assert stored.stored_path.resolve().is_relative_to(files), stored
    assert stored.stored_path.parent.parent == files
    assert "/" not in stored.file_name and "\\" not in stored.file_name
    assert "\x00" not in stored.file_name
    assert stored.file_name == safe_display_name(name)
    assert not (tmp_path / "etc").exists() and not Path("/abs/x.csv").exists()


def test_hostile_upload_names_through_the_api(api: Api) -> None:
    for name in ("../../etc/passwd", "/abs/x.csv", "..\\x.csv", "a\x00b.csv"):
        r = api.post(
            RUNS,
            headers={"Idempotency-Key": str(uuid.uuid4())},
            data={"dashboard": "production-schedule", "run_kind": "incremental_update"},
            files={
                "file": (
                    name,
                    f"{SCHEDULE_HEADER}\n{schedule_line(1, 'AB123456', name[:3], 10)}\n".encode(),
                    "text/csv",
                )
            },
        )
        assert r.status_code in (202, 409), r.text
    data_dir = api.settings.data_dir.resolve()
    with api.harness.read() as session:
        sources = list(session.scalars(select(IngestionRunSource)))
    assert sources
    for source in sources:
        assert source.stored_path is not None
        assert Path(source.stored_path).resolve().is_relative_to(data_dir), source.stored_path
        assert "/" not in source.file_name and "\\" not in source.file_name
        assert "\x00" not in source.file_name


def test_there_is_no_csv_export_to_inject_formulas_into(api: Api) -> None:
    paths = api.get("/openapi.json", as_=None).json()["paths"]
    assert not [p for p in paths if "export" in p or p.endswith(".csv")], list(paths)
    assert "text/csv" not in str(
        {p: {m: op.get("responses") for m, op in ops.items()} for p, ops in paths.items()}
    )
