"""The documented CLI (docs/contract.md §7), driven as a script would drive it, on both
databases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from csvboard.cli import app
from support import SCHEDULE_HEADER, schedule_line

runner = CliRunner()


def cli(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def cli_json(*args: str, code: int = 0) -> Any:
    result = cli(*args, "--json", code=code)
    return json.loads(result.stdout)  # the whole of stdout is one JSON document


def write_csv(path: Path, *lines: str) -> Path:
    path.write_bytes(("\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n").encode("cp932"))
    return path


LINES = [
    schedule_line(1000000001, "A0000001", "P-1", 10, name="軸①"),
    schedule_line(1000000001, "A0000001", "P-1", 20, resource="R02", name="㈱製"),
    schedule_line(1000000001, "A0000001", "P-2", 10, name="髙精度"),
]


@pytest.fixture
def board(db_url: str) -> str:
    cli("db", "upgrade")
    doc = cli_json("dashboards", "create", "sched", "--preset", "production-schedule")
    assert doc["kind"] == "production_schedule" and doc["ingest_mode"] == "DEDUP"
    return "sched"


def test_dashboards_create_and_list(board: str) -> None:
    docs = cli_json("dashboards", "list")
    assert [d["slug"] for d in docs] == ["sched"]
    assert docs[0]["key_columns"] == ["FSEIBAN", "FHINCD", "FSIGENCD", "FKOJUN"]
    assert docs[0]["version_columns"] == ["ProductNo", "updatedAt"]
    result = cli("dashboards", "create", "sched", "--preset", "production-schedule", code=2)
    assert "DASHBOARD_EXISTS" in result.stderr
    result = cli("dashboards", "create", "Bad Slug!", "--preset", "production-schedule", code=2)
    assert "INVALID_SLUG" in result.stderr


def test_ingest_json_prints_the_ledger_columns_and_exit_codes(board: str, tmp_path: Path) -> None:
    doc = cli_json("ingest", str(write_csv(tmp_path / "a.csv", *LINES)), "--dashboard", board)
    assert doc["status"] == "succeeded" and doc["run_kind"] == "incremental_update"
    assert (doc["target_count"], doc["success_count"], doc["failed_count"]) == (3, 3, 0)
    assert doc["error_summary"] is None and doc["mode"] == "manual"
    assert set(doc) >= {
        "run_id", "run_kind", "mode", "status", "target_types", "parent_run_id", "requested_by",
        "started_at", "finished_at", "target_count", "processed_count", "success_count",
        "failed_count", "unprocessed_count", "trace_id", "created_at", "error_summary",
    }  # fmt: skip
    partial = cli_json(
        "ingest", str(write_csv(tmp_path / "b.csv", LINES[0], "x,bad")), "--dashboard", board
    )
    assert partial["status"] == "partial"  # exit 0
    missing_column = tmp_path / "c.csv"
    missing_column.write_text("ProductNo,FSEIBAN\r\n1,2\r\n", encoding="utf-8")
    failed = cli_json("ingest", str(missing_column), "--dashboard", board, code=1)
    assert failed["status"] == "failed"
    assert failed["error_summary"].startswith("HEADER_MISMATCH: c.csv")
    result = cli("ingest", str(tmp_path / "nope.csv"), "--dashboard", board, code=2)
    assert "no such file" in result.stderr


def test_runs_list_show_retry_cancel(board: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ProductNo,FSEIBAN\r\n1,2\r\n", encoding="utf-8")
    failed = cli_json(
        "ingest", str(bad), "--dashboard", board, "--kind", "official_ingestion", code=1
    )
    ok = cli_json("ingest", str(write_csv(tmp_path / "ok.csv", *LINES)), "--dashboard", board)
    listed = cli_json("runs", "list")
    assert [r["run_id"] for r in listed] == [ok["run_id"], failed["run_id"]]
    assert [r["run_id"] for r in cli_json("runs", "list", "--status", "failed")] == [
        failed["run_id"]
    ]
    shown = cli_json("runs", "show", ok["run_id"])
    assert [i["update_type"] for i in shown["items"]] == ["new", "new", "new"]
    assert [e["to_status"] for e in shown["events"] if e["to_status"]] == [
        "queued", "running", "succeeded",
    ]  # fmt: skip
    assert shown["sources"][0]["detected_encoding"] == "cp932"
    # The failed run re-runs the same stored bytes: it fails the same way, linked to its parent.
    rerun = cli_json("runs", "retry", failed["run_id"], code=1)
    assert rerun["parent_run_id"] == failed["run_id"]
    assert rerun["run_kind"] == "official_ingestion" and rerun["mode"] == "manual"
    refused = cli("runs", "retry", ok["run_id"], code=2)
    assert "RUN_NOT_RETRYABLE" in refused.stderr
    queued = cli_json("runs", "retry", rerun["run_id"], "--queue-only")
    assert queued["status"] == "queued"
    cancelled = cli_json("runs", "cancel", queued["run_id"])
    assert cancelled["status"] == "cancelled"
    again = cli("runs", "cancel", queued["run_id"], code=2)
    assert "RUN_NOT_CANCELLABLE" in again.stderr
    cli("runs", "show", "not-a-uuid", code=2)


def test_schedule_commands_compose_operator_data(board: str, tmp_path: Path) -> None:
    cli_json("ingest", str(write_csv(tmp_path / "a.csv", *LINES)), "--dashboard", board)
    rows = cli_json("schedule", "rows", "--dashboard", board)
    # Kiosk order: 製番, ProductNo, numeric 工順, 品番.
    assert [r["row_data"]["FHINMEI"] for r in rows] == ["軸①", "髙精度", "㈱製"]
    assert all(r["row_data"]["progress"] == "" for r in rows)
    by_name = {r["row_data"]["FHINMEI"]: r["id"] for r in rows}
    first, noted, ordered_id = by_name["軸①"], by_name["㈱製"], by_name["髙精度"]
    done = cli_json("schedule", "complete", first)
    assert done["row_data"]["progress"] == "完了"
    assert cli_json("schedule", "complete", first)["row_data"]["progress"] == "完了"  # idempotent
    assert cli_json("schedule", "note", noted, "段取り注意")["note"] == "段取り注意"
    assert cli_json("schedule", "due", noted, "2026-12-01")["due_date"] == "2026-12-01"
    ordered = cli_json("schedule", "order", ordered_id, "R01", "1")
    assert ordered["order"] == {"resource_cd": "R01", "order_number": 1}
    wrong = cli("schedule", "order", ordered_id, "R99", "2", code=2)
    assert "RESOURCE_MISMATCH" in wrong.stderr
    too_long = cli("schedule", "note", noted, "x" * 101, code=2)
    assert "INVALID_NOTE" in too_long.stderr
    # Re-ingesting the very same steps keeps every operator record on its step.
    cli_json("ingest", str(write_csv(tmp_path / "b.csv", *LINES)), "--dashboard", board,
             "--kind", "official_ingestion")  # fmt: skip
    after = {r["id"]: r for r in cli_json("schedule", "rows", "--dashboard", board)}
    assert after[first]["row_data"]["progress"] == "完了"
    assert after[noted]["note"] == "段取り注意"
    assert after[ordered_id]["order"] == {"resource_cd": "R01", "order_number": 1}
    undone = cli_json("schedule", "complete", first, "--undo")
    assert undone["row_data"]["progress"] == ""
    summary = cli_json("schedule", "summary", "--dashboard", board)
    assert summary["total"] == 3 and summary["completed"] == 0


def test_purge_reports_rows_and_operator_records(board: str, tmp_path: Path) -> None:
    cli_json("ingest", str(write_csv(tmp_path / "a.csv", *LINES)), "--dashboard", board)
    rows = cli_json("schedule", "rows", "--dashboard", board)
    cli_json("schedule", "note", rows[0]["id"], "消える")
    cli_json("ingest", str(write_csv(tmp_path / "b.csv", *LINES[1:])), "--dashboard", board,
             "--kind", "official_ingestion")  # fmt: skip
    dry = cli_json("dashboards", "purge", board, "--retired-before", "2999-01-01", "--dry-run")
    assert dry["rows"] == 1 and dry["operator_records"]["production_schedule_row_notes"] == 1
    nothing = cli_json("dashboards", "purge", board, "--retired-before", "2000-01-01")
    assert nothing["rows"] == 0
    done = cli_json("dashboards", "purge", board, "--retired-before", "2999-01-01")
    assert done["rows"] == 1
    remaining = cli_json("schedule", "rows", "--dashboard", board, "--include-retired")
    assert len(remaining) == 2


def test_tokens_create_prints_the_token_last_and_stores_only_a_hash(
    db_url: str,
) -> None:
    from sqlalchemy import select

    from csvboard.auth import ApiToken, hash_token
    from csvboard.db.engine import make_engine, read_session

    result = cli("tokens", "create", "kiosk-1", "--role", "operator")
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("csvb_") and len(token) > 40
    engine = make_engine(db_url)
    with read_session(engine) as s:
        stored = s.scalars(select(ApiToken)).one()
    engine.dispose()
    assert stored.role == "operator" and stored.token_hash == hash_token(token)
    assert token not in stored.token_hash
    cli("tokens", "create", "x", "--role", "root", code=2)


def test_demo_creates_the_dashboard_and_ingests_a_cp932_export(db_url: str) -> None:
    doc = cli_json("demo", "--steps", "400")
    assert doc["status"] == "succeeded" and doc["target_count"] == 400
    rows = cli_json("schedule", "rows", "--dashboard", "production-schedule")
    assert rows and all(not r["row_data"]["FHINCD"].startswith(("MH", "SH")) for r in rows)
    assert any(r["machine_name"] for r in rows)
    again = cli_json("demo", "--steps", "400")  # rerunnable: same export, nothing changes
    assert again["status"] == "succeeded" and again["success_count"] == 400


def test_an_invalid_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSVBOARD_RUN_TIMEOUT_SECONDS", "0")
    result = runner.invoke(app, ["dashboards", "list"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "invalid setting: CSVBOARD_RUN_TIMEOUT_SECONDS" in " ".join(result.output.split())


def test_dashboards_operations_show_and_change_retention_and_manual_reruns(board: str) -> None:
    doc = cli_json("dashboards", "operations", "sched")
    assert doc["retention_file_days"] is None and doc["retry_manual_runs"] is False
    assert doc["effective"]["retention_file_days"] == 90  # CSVBOARD_RETENTION_FILE_DAYS
    doc = cli_json(
        "dashboards", "operations", "sched", "--retention-file-days", "7", "--retry-manual-runs"
    )
    assert doc["retention_file_days"] == 7 and doc["effective"]["retention_file_days"] == 7
    assert doc["retry_manual_runs"] is True
    result = cli("dashboards", "operations", "sched", "--retention-ledger-days", "0",
                 "--retention-file-days", "30", code=2)  # fmt: skip
    message = " ".join(result.stderr.split())  # the console wraps long lines
    assert (
        "INVALID_OPERATIONS: operations.retention_ledger_days must be a whole number of"
        " days from 1 to 36500" in message
    )
    result = cli("dashboards", "operations", "sched", "--retention-file-days", "week", code=2)
    assert "'week'" in result.stderr
    assert cli_json("dashboards", "operations", "sched")["retention_file_days"] == 7  # unchanged
    doc = cli_json("dashboards", "operations", "sched", "--retention-file-days", "default",
                   "--no-retry-manual-runs")  # fmt: skip
    assert doc["retention_file_days"] is None and doc["retry_manual_runs"] is False
    (listed,) = cli_json("dashboards", "list")
    assert listed["operations"] == doc
    assert "retention file days: 90 (default)" in cli("dashboards", "operations", "sched").stdout
