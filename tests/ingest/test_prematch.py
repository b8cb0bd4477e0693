"""Columnar runs match their rows before the apply lock (ingest/runner.py), and check it.

Matching outside the lock is safe only because the run reads its dashboard's rows marker
(committed runs, stored rows) before matching and again under the lock: a run that committed
in between, or a purge of retired rows, makes it match again, so what it applies is judged
against the rows as they are then. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.service import purge_retired
from csvboard.ingest import merge as merge_module
from csvboard.ingest import stage as stage_module
from csvboard.ingest.ledger import RunOutcome
from csvboard.runs.models import IngestionItem
from csvboard.runs.vocabulary import RunStatus
from support import Harness, schedule_csv, schedule_line

BASE = [
    schedule_line(1000000001, "A0000001", "P-1", 10),
    schedule_line(1000000001, "A0000001", "P-1", 20, resource="R02"),
    schedule_line(1000000001, "A0000001", "P-2", 10),
]
KEY = ("A0000001", "P-1", "R01", "10")


def name_of(h: Harness, board: CsvDashboard) -> str:
    with h.read() as s:
        row = s.scalars(
            select(CsvDashboardRow).where(
                CsvDashboardRow.csv_dashboard_id == board.id,
                CsvDashboardRow.row_key
                == json.dumps(list(KEY), ensure_ascii=False, separators=(",", ":")),
            )
        ).one()
        return str(row.row_data["FHINMEI"])


def test_unchanged_rows_are_matched_before_the_lock(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    out = harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED
    assert (out.summary["unchanged"], out.summary["updated"], out.summary["retired"]) == (3, 0, 0)


def test_a_run_committed_meanwhile_makes_the_run_match_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    real = merge_module.Merge.stage_absent
    interleaved: list[RunOutcome] = []
    calls: list[int] = []

    def match_then_interleave(merge: merge_module.Merge, stage: stage_module.Stage) -> int:
        found = real(merge, stage)
        calls.append(found)
        if len(calls) == 1:  # another run renames P-1/R01/10 after this run matched it
            other = schedule_csv(BASE[0].replace("部品", "他"), *BASE[1:])
            interleaved.append(harness.ingest(board, other, kind="official_ingestion"))
        return found

    monkeypatch.setattr(merge_module.Merge, "stage_absent", match_then_interleave)
    queued = harness.queue(
        board, harness.write_file(schedule_csv(*BASE)), kind="official_ingestion"
    )
    out = harness.run(queued)
    assert interleaved[0].summary["updated"] == 1
    assert out.status is RunStatus.SUCCEEDED
    # Matched before the lock as unchanged; under the lock, matched again and written back.
    assert (out.summary["updated"], out.summary["unchanged"]) == (1, 2)
    assert name_of(harness, board) == "部品"


def test_a_purge_of_retired_rows_meanwhile_makes_the_run_match_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge is not a run: the rows marker counts the rows too, so a retired row matched
    before the lock and purged before it is not written back as 'existing'."""
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    retiring = harness.ingest(board, schedule_csv(*BASE[1:]), kind="official_ingestion")
    assert retiring.summary["retired"] == 1  # P-1 / R01 / 10
    real = merge_module.Merge.stage_absent
    purged: list[int] = []

    def match_then_purge(merge: merge_module.Merge, stage: stage_module.Stage) -> int:
        found = real(merge, stage)
        if not purged:  # the run matched P-1 to its retired row: 'updated' (revived)
            with harness.write() as s:
                dashboard = s.get_one(CsvDashboard, board.id)
                later = utcnow() + timedelta(days=1)
                purged.append(purge_retired(s, dashboard, later).rows)
        return found

    monkeypatch.setattr(merge_module.Merge, "stage_absent", match_then_purge)
    out = harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    assert purged == [1]
    assert out.status is RunStatus.SUCCEEDED
    assert (out.summary["inserted"], out.summary["updated"]) == (1, 0)
    with harness.read() as s:
        kinds = sorted(
            i.update_type
            for i in s.scalars(select(IngestionItem).where(IngestionItem.run_id == out.run_id))
        )
    assert kinds == ["new"]
    assert name_of(harness, board) == "部品"
