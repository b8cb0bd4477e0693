"""Every malformed file of the corpus, ingested for real over a dashboard holding data.

Each file ends in a clear run error or a correct partial run; rows that were valid are the only
thing that changes, and operator data is exactly what it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.runs.models import IngestionItem
from csvboard.runs.queries import error_summary
from csvboard.runs.vocabulary import RunStatus
from ingest.corpus import CASE_NAMES, CorpusCase, build_corpus
from support import SCHEDULE_HEADER, Harness, schedule_line

OPERATOR_TABLES = (
    "production_schedule_progress",
    "production_schedule_row_notes",
    "production_schedule_row_due_dates",
    "production_schedule_row_orders",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusCase]:
    return {c.name: c for c in build_corpus(tmp_path_factory.mktemp("corpus"))}


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[tuple[Harness, CsvDashboard]]:
    """A dashboard with three steps, one completed, annotated and ordered by a worker."""
    h = Harness(db_url, tmp_path / "data")
    board = h.dashboard()
    lines = [
        schedule_line(1000000001, "S0000001", "Q-1", 10, name="既存①"),
        schedule_line(1000000001, "S0000001", "Q-1", 20, name="既存㈱"),
        schedule_line(1000000001, "S0000001", "Q-2", 10, name="既存髙"),
    ]
    h.ingest(board, "\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n", kind="official_ingestion")
    with h.write() as s:
        ids = list(
            s.scalars(
                select(CsvDashboardRow.id)
                .where(CsvDashboardRow.csv_dashboard_id == board.id)
                .order_by(CsvDashboardRow.row_key)
            )
        )
        # Raw SQL binds uuids as SQLAlchemy's Uuid type stores them (hex text on SQLite).
        sqlite = h.engine.dialect.name == "sqlite"
        params = {
            k: (v.hex if sqlite else v)
            for k, v in {"d": board.id, "a": ids[0], "b": ids[1], "c": ids[2]}.items()
        }
        now = "CURRENT_TIMESTAMP"
        s.execute(
            text(
                "INSERT INTO production_schedule_progress (csv_dashboard_row_id, csv_dashboard_id,"
                f" is_completed, updated_by, updated_at) VALUES (:a, :d, true, 'w1', {now})"
            ),
            params,
        )
        s.execute(
            text(
                "INSERT INTO production_schedule_row_notes (csv_dashboard_row_id,"
                f" csv_dashboard_id, note, updated_by, updated_at) VALUES (:b, :d, '注意', 'w1',"
                f" {now})"
            ),
            params,
        )
        s.execute(
            text(
                "INSERT INTO production_schedule_row_orders (csv_dashboard_row_id,"
                " csv_dashboard_id, resource_cd, order_number, updated_by, updated_at)"
                f" VALUES (:c, :d, 'R01', 1, 'w1', {now})"
            ),
            params,
        )
    yield h, board
    h.close()


def operator_state(h: Harness) -> dict[str, list[tuple[Any, ...]]]:
    with h.read() as s:
        return {
            t: [tuple(r) for r in s.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]
            for t in OPERATOR_TABLES
        }


def rows_state(h: Harness, board: CsvDashboard) -> dict[str, tuple[Any, ...]]:
    with h.read() as s:
        return {
            r.row_key: (r.id, r.data_hash, r.is_active)
            for r in s.scalars(
                select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == board.id)
            )
        }


@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus_file_through_the_database(
    name: str, corpus: dict[str, CorpusCase], seeded: tuple[Harness, CsvDashboard]
) -> None:
    case = corpus[name]
    h, board = seeded
    if case.encoding != "auto":
        with h.write() as s:
            s.execute(
                update(CsvDashboard)
                .where(CsvDashboard.id == board.id)
                .values(encoding=case.encoding)
            )
        with h.read() as s:
            board = s.get_one(CsvDashboard, board.id)
    operators_before = operator_state(h)
    rows_before = rows_state(h, board)
    out = h.run(h.queue(board, case.path, kind="incremental_update"))

    assert operator_state(h) == operators_before, "ingestion must never touch operator data"
    with h.read() as s:
        summary = error_summary(s, out.run_id)
        items = list(
            s.scalars(
                select(IngestionItem)
                .where(IngestionItem.run_id == out.run_id)
                .order_by(IngestionItem.id)
            )
        )
    if case.run_error:
        assert out.status is RunStatus.FAILED and out.error_code == case.run_error
        assert summary is not None and summary.startswith(case.run_error + ": ")
        for fragment in case.run_error_mentions:
            assert fragment in summary
        assert rows_state(h, board) == rows_before
        return

    assert out.counts.target == case.valid + case.rejected
    assert out.counts.failed == case.rejected
    assert out.counts.success == case.valid
    failed = [(i.line_number, i.reason_code) for i in items if i.status == "failed"]
    assert failed == list(zip(case.rejected_lines, case.reasons, strict=True))
    for item in items:
        if item.status == "failed":
            assert item.message and f"line {item.line_number}" in item.message
    duplicates = [i.line_number for i in items if i.reason_code == "DUPLICATE_KEY_IN_SOURCE"]
    assert duplicates == list(case.excluded_duplicate_lines)
    if case.rejected and not case.valid:
        assert out.status is RunStatus.FAILED and out.error_code == "ALL_ROWS_REJECTED"
        assert rows_state(h, board) == rows_before
    elif case.rejected:
        assert out.status is RunStatus.PARTIAL
    else:
        assert out.status is RunStatus.SUCCEEDED
    # Stored rows that the file did not (validly) mention are exactly as they were.
    after = rows_state(h, board)
    for key, state in rows_before.items():
        assert after[key] == state or key in {i.row_key for i in items if i.status == "succeeded"}
    applied = case.valid - len(case.excluded_duplicate_lines)
    new_or_changed = [i for i in items if i.status == "succeeded"]
    assert len(new_or_changed) <= applied
