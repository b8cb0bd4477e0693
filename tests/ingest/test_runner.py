"""The ingestion engine end to end, through the real database, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.ingest import apply as apply_module
from csvboard.ingest import merge as merge_module
from csvboard.ingest import stage as stage_module
from csvboard.ingest.ledger import RunOutcome
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionEvent, IngestionItem, IngestionRun
from csvboard.runs.queries import error_summary
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule.models import ProductionScheduleExternalCompletion
from support import SCHEDULE_HEADER, Harness, batches_of, schedule_csv, schedule_line


def rows_by_key(h: Harness, board: CsvDashboard) -> dict[tuple[str, ...], CsvDashboardRow]:
    with h.read() as s:
        rows = s.scalars(
            select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == board.id)
        )
        return {tuple(json.loads(r.row_key)): r for r in rows}


def items_of(h: Harness, run_id: uuid.UUID) -> list[IngestionItem]:
    with h.read() as s:
        return list(
            s.scalars(
                select(IngestionItem)
                .where(IngestionItem.run_id == run_id)
                .order_by(IngestionItem.id)
            )
        )


def ledger(h: Harness, run_id: uuid.UUID) -> IngestionRun:
    with h.read() as s:
        return s.get_one(IngestionRun, run_id)


def snapshot(h: Harness, board: CsvDashboard) -> list[tuple[Any, ...]]:
    """Everything ingestion could change on a dashboard, for before/after comparisons."""
    with h.read() as s:
        rows = s.execute(
            select(
                CsvDashboardRow.id, CsvDashboardRow.row_key, CsvDashboardRow.data_hash,
                CsvDashboardRow.is_active, CsvDashboardRow.supplement_data,
            ).where(CsvDashboardRow.csv_dashboard_id == board.id).order_by(CsvDashboardRow.row_key)
        ).all()  # fmt: skip
        ext = s.execute(
            select(
                ProductionScheduleExternalCompletion.csv_dashboard_row_id,
                ProductionScheduleExternalCompletion.is_completed,
            ).order_by(ProductionScheduleExternalCompletion.csv_dashboard_row_id)
        ).all()
    return [tuple(r) for r in rows] + [tuple(e) for e in ext]


def assert_counts(out: RunOutcome, *, target: int, success: int, failed: int) -> None:
    assert (out.counts.target, out.counts.success, out.counts.failed) == (target, success, failed)
    assert out.counts.processed == success + failed
    assert out.counts.unprocessed == target - success - failed


BASE = [
    schedule_line(1000000001, "A0000001", "P-1", 10),
    schedule_line(1000000001, "A0000001", "P-1", 20, resource="R02"),
    schedule_line(1000000001, "A0000001", "P-2", 10),
]


def test_first_ingest_inserts_every_row_and_counts_them(harness: Harness) -> None:
    board = harness.dashboard()
    out = harness.ingest(board, schedule_csv(*BASE))
    assert out.status is RunStatus.SUCCEEDED
    assert_counts(out, target=3, success=3, failed=0)
    rows = rows_by_key(harness, board)
    assert set(rows) == {
        ("A0000001", "P-1", "R01", "10"),
        ("A0000001", "P-1", "R02", "20"),
        ("A0000001", "P-2", "R01", "10"),
    }
    row = rows[("A0000001", "P-1", "R01", "10")]
    assert row.row_data["FHINMEI"] == "部品"
    assert "progress" not in row.row_data  # the completion column never goes into row_data
    assert row.first_run_id == out.run_id == row.last_changed_run_id
    # Ids are made by the database (ingest/merge.py _new_row_id): version-7 UUIDs, distinct.
    ids = [r.id for r in rows.values()]
    assert all(
        isinstance(i, uuid.UUID) and i.version == 7 and i.variant == uuid.RFC_4122 for i in ids
    )
    assert len(set(ids)) == len(ids)
    items = items_of(harness, out.run_id)
    assert [(i.line_number, i.status, i.update_type) for i in items] == [
        (2, "succeeded", "new"),
        (3, "succeeded", "new"),
        (4, "succeeded", "new"),
    ]
    run = ledger(harness, out.run_id)
    assert run.status == "succeeded" and run.finished_at is not None
    assert run.started_at is not None and run.finished_at >= run.started_at


def test_reingest_unchanged_writes_nothing_and_changed_rows_are_updated(harness: Harness) -> None:
    board = harness.dashboard()
    first = harness.ingest(board, schedule_csv(*BASE))
    before = rows_by_key(harness, board)
    changed = [BASE[0], BASE[1].replace(",1.5,", ",2.5,"), BASE[2]]
    out = harness.ingest(board, schedule_csv(*changed))
    assert out.status is RunStatus.SUCCEEDED
    assert_counts(out, target=3, success=3, failed=0)
    assert out.summary["updated"] == 1 and out.summary["unchanged"] == 2
    after = rows_by_key(harness, board)
    assert {k: r.id for k, r in after.items()} == {k: r.id for k, r in before.items()}
    key = ("A0000001", "P-1", "R02", "20")
    assert after[key].row_data["FSIGENSHOYORYO"] == "2.5"
    assert after[key].last_changed_run_id == out.run_id
    untouched = ("A0000001", "P-1", "R01", "10")
    assert after[untouched].last_changed_run_id == first.run_id
    assert after[untouched].updated_at == before[untouched].updated_at
    # Unchanged rows are only counted, never itemised.
    assert [(i.line_number, i.update_type) for i in items_of(harness, out.run_id)] == [
        (3, "existing")
    ]


def test_stale_rows_are_excluded_and_stored_rows_kept(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(schedule_line(1000000005, "A0000001", "P-1", 10, name="新")))
    out = harness.ingest(
        board,
        schedule_csv(
            schedule_line(1000000004, "A0000001", "P-1", 10, name="古"),  # lower ProductNo
            schedule_line(1000000005, "A0000001", "P-1", 20, name="別"),
        ),
    )
    assert out.status is RunStatus.SUCCEEDED
    assert_counts(out, target=2, success=2, failed=0)
    rows = rows_by_key(harness, board)
    assert rows[("A0000001", "P-1", "R01", "10")].row_data["FHINMEI"] == "新"
    stale = [i for i in items_of(harness, out.run_id) if i.status == "excluded"]
    assert [(i.line_number, i.reason_code) for i in stale] == [(2, "STALE_ROW")]
    assert stale[0].csv_dashboard_row_id == rows[("A0000001", "P-1", "R01", "10")].id


def test_equal_or_unknown_version_applies_when_data_changed(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(
        board,
        schedule_csv(schedule_line(1000000005, "A0000001", "P-1", 10, updated="2026/1/2 10:00")),
    )
    # Same ProductNo, unknown updatedAt: compares equal, so the changed data applies.
    out = harness.ingest(
        board, schedule_csv(schedule_line(1000000005, "A0000001", "P-1", 10, name="変更"))
    )
    assert out.summary["updated"] == 1
    # Same ProductNo, older updatedAt: stale.
    out = harness.ingest(
        board,
        schedule_csv(
            schedule_line(1000000005, "A0000001", "P-1", 10, name="古", updated="2026/1/1 10:00")
        ),
    )
    assert out.summary.get("stale_excluded") == 0  # stored row's updatedAt is now unknown
    assert out.summary["updated"] == 1


def test_duplicates_in_one_file_highest_version_wins_ties_go_last(harness: Harness) -> None:
    board = harness.dashboard()
    out = harness.ingest(
        board,
        schedule_csv(
            schedule_line(1000000002, "A0000001", "P-1", 10, name="高い"),
            schedule_line(1000000001, "A0000001", "P-1", 10, name="低い"),
            schedule_line(1000000003, "A0000001", "P-2", 10, name="先"),
            schedule_line(1000000003, "A0000001", "P-2", 10, name="後"),
        ),
    )
    assert out.status is RunStatus.SUCCEEDED
    assert_counts(out, target=4, success=4, failed=0)
    rows = rows_by_key(harness, board)
    assert rows[("A0000001", "P-1", "R01", "10")].row_data["FHINMEI"] == "高い"
    assert rows[("A0000001", "P-2", "R01", "10")].row_data["FHINMEI"] == "後"
    excluded = [
        (i.line_number, i.reason_code)
        for i in items_of(harness, out.run_id)
        if i.status == "excluded"
    ]
    assert excluded == [(3, "DUPLICATE_KEY_IN_SOURCE"), (4, "DUPLICATE_KEY_IN_SOURCE")]


def test_rejected_rows_make_a_partial_run_with_line_and_reason(harness: Harness) -> None:
    board = harness.dashboard()
    out = harness.ingest(
        board,
        schedule_csv(
            BASE[0],
            "1000000001,TOO-LONG-SEIBAN,P-9,x,R01,,1,10,,",
            BASE[2],
            "1000000001,A0000001,P-3,x,R01,,1",  # ragged
        ),
    )
    assert out.status is RunStatus.PARTIAL
    assert_counts(out, target=4, success=2, failed=2)
    failed = [
        (i.line_number, i.reason_code)
        for i in items_of(harness, out.run_id)
        if i.status == "failed"
    ]
    assert failed == [(3, "PATTERN"), (5, "ROW_SHAPE")]
    assert len(rows_by_key(harness, board)) == 2
    with harness.read() as s:
        assert error_summary(s, out.run_id) is None


def test_every_row_rejected_fails_the_run_and_commits_nothing(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE))
    before = snapshot(harness, board)
    out = harness.ingest(
        board,
        schedule_csv("x,A0000001,P-1,a,R01,,1,10,,", "1000000001,bad,P-1,a,R01,,1,10,,"),
        kind="official_ingestion",
    )
    assert out.status is RunStatus.FAILED
    assert out.error_code == "ALL_ROWS_REJECTED"
    assert_counts(out, target=2, success=0, failed=2)
    assert snapshot(harness, board) == before  # nothing retired, nothing written
    with harness.read() as s:
        summary = error_summary(s, out.run_id)
    assert summary is not None and summary.startswith("ALL_ROWS_REJECTED: ")
    assert len([i for i in items_of(harness, out.run_id) if i.status == "failed"]) == 2


@pytest.mark.parametrize(
    ("content", "code", "mentions"),
    [
        (b"\xff\xfe\x00A,B\r\n\x81\x00\x80\xff\r\n", "ENCODING_UNSUPPORTED", "schedule.csv"),
        ("ProductNo,FSEIBAN,FHINCD\r\n1,2,3\r\n".encode("cp932"), "HEADER_MISMATCH", "FHINMEI"),
    ],
    ids=["undecodable", "missing-required-column"],
)
def test_run_level_errors_fail_the_run_and_leave_data_untouched(
    harness: Harness, content: bytes, code: str, mentions: str
) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE))
    before = snapshot(harness, board)
    out = harness.ingest(board, content, kind="official_ingestion", file_name="schedule.csv")
    assert out.status is RunStatus.FAILED and out.error_code == code
    assert out.counts.success == 0
    assert snapshot(harness, board) == before
    with harness.read() as s:
        summary = error_summary(s, out.run_id)
    assert summary is not None and summary.startswith(f"{code}: ") and mentions in summary


def test_missing_stored_file_fails_with_file_missing(harness: Harness) -> None:
    board = harness.dashboard()
    run_id = harness.queue(board, harness.write_file(schedule_csv(*BASE)))
    with harness.read() as s:
        from csvboard.runs.service import sources_of

        stored = Path(sources_of(s, run_id)[0].stored_path or "")
    stored.unlink()
    out = harness.run(run_id)
    assert out.status is RunStatus.FAILED and out.error_code == "FILE_MISSING"


@pytest.mark.parametrize(
    "content", ["", SCHEDULE_HEADER + "\r\n", SCHEDULE_HEADER + "\r\n\r\n\r\n"]
)
def test_empty_and_header_only_files_succeed_with_zero_counts(
    harness: Harness, content: str
) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE))
    out = harness.ingest(board, content, kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED
    assert_counts(out, target=0, success=0, failed=0)
    # An empty snapshot retires nothing: an empty export is far likelier an ERP hiccup.
    assert all(r.is_active for r in rows_by_key(harness, board).values())


def test_official_snapshot_retires_absent_rows_and_reactivates_returning_ones(
    harness: Harness,
) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    ids = {k: r.id for k, r in rows_by_key(harness, board).items()}
    out = harness.ingest(board, schedule_csv(BASE[0], BASE[2]), kind="official_ingestion")
    assert_counts(out, target=2, success=2, failed=0)  # retired rows are not rows of the file
    assert out.summary["retired"] == 1
    rows = rows_by_key(harness, board)
    gone = ("A0000001", "P-1", "R02", "20")
    assert rows[gone].is_active is False and rows[gone].retired_at is not None
    retired_items = [i for i in items_of(harness, out.run_id) if i.update_type == "retired"]
    assert [(i.row_key, i.line_number) for i in retired_items] == [(rows[gone].row_key, None)]
    # An incremental update never retires.
    harness.ingest(board, schedule_csv(BASE[0]))
    assert rows_by_key(harness, board)[("A0000001", "P-2", "R01", "10")].is_active
    # The step comes back: same row (same id), active again.
    back = harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    assert back.summary["updated"] == 1
    rows = rows_by_key(harness, board)
    assert rows[gone].is_active and rows[gone].retired_at is None
    assert {k: r.id for k, r in rows.items()} == ids


def test_a_rejected_row_does_not_retire_its_step(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    broken = BASE[1].replace(",1.5,", ",abc,")  # key valid, hours not a number
    out = harness.ingest(board, schedule_csv(BASE[0], broken, BASE[2]), kind="official_ingestion")
    assert out.status is RunStatus.PARTIAL and out.summary["retired"] == 0
    assert all(r.is_active for r in rows_by_key(harness, board).values())


def test_progress_column_sets_external_completion_only(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(
        board, schedule_csv(schedule_line(1000000001, "A0000001", "P-1", 10, progress="完了"))
    )
    key = ("A0000001", "P-1", "R01", "10")
    row = rows_by_key(harness, board)[key]
    assert "progress" not in row.row_data
    with harness.read() as s:
        ext = s.get_one(ProductionScheduleExternalCompletion, row.id)
    assert ext.is_completed is True
    # An empty progress later clears the *external* flag (a worker's mark lives elsewhere).
    out = harness.ingest(board, schedule_csv(schedule_line(1000000001, "A0000001", "P-1", 10)))
    assert out.summary["updated"] == 1
    with harness.read() as s:
        assert s.get_one(ProductionScheduleExternalCompletion, row.id).is_completed is False


def test_appearance_supplement_merges_known_keys_and_excludes_unknown(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE))
    before = rows_by_key(harness, board)
    status = (
        "FSEIBAN,FHINCD,FSIGENCD,FKOJUN,status,担当\r\n"
        "A0000001,P-1,R01,10,C,佐藤\r\n"
        "A0000001,P-2,R01,10,A,髙橋\r\n"
        "Z9999999,P-1,R01,10,C,誰\r\n"
    )
    out = harness.ingest(board, status, kind="appearance_supplement")
    assert out.status is RunStatus.SUCCEEDED
    assert_counts(out, target=3, success=3, failed=0)
    after = rows_by_key(harness, board)
    done = after[("A0000001", "P-1", "R01", "10")]
    assert done.supplement_data == {"担当": "佐藤"}
    assert done.row_data == before[("A0000001", "P-1", "R01", "10")].row_data  # official untouched
    assert after[("A0000001", "P-2", "R01", "10")].supplement_data == {"担当": "髙橋"}
    with harness.read() as s:
        ext = s.get(ProductionScheduleExternalCompletion, done.id)
        assert ext is not None and ext.is_completed is True
        open_step = after[("A0000001", "P-2", "R01", "10")].id
        assert s.get(ProductionScheduleExternalCompletion, open_step) is None
    items = items_of(harness, out.run_id)
    assert [(i.line_number, i.status, i.update_type, i.reason_code) for i in items] == [
        (2, "succeeded", "supplement", None),
        (3, "succeeded", "supplement", None),
        (4, "excluded", None, "UNKNOWN_KEY"),
    ]
    # The same status report again changes nothing.
    again = harness.ingest(board, status, kind="appearance_supplement")
    assert again.summary["supplemented"] == 0 and again.summary["unchanged"] == 2


def test_a_status_report_never_undoes_completion_reported_by_the_official_file(
    harness: Harness,
) -> None:
    board = harness.dashboard()
    harness.ingest(
        board, schedule_csv(schedule_line(1000000001, "A0000001", "P-1", 10, progress="完了"))
    )
    row = rows_by_key(harness, board)[("A0000001", "P-1", "R01", "10")]
    out = harness.ingest(
        board,
        "FSEIBAN,FHINCD,FSIGENCD,FKOJUN,status\r\nA0000001,P-1,R01,10,W\r\n",
        kind="appearance_supplement",
    )
    assert out.summary["unchanged"] == 1 and out.summary["supplemented"] == 0
    with harness.read() as s:
        assert s.get_one(ProductionScheduleExternalCompletion, row.id).is_completed is True


def test_append_mode_keeps_every_row(harness: Harness) -> None:
    board = harness.dashboard("log", mode="APPEND")
    harness.ingest(board, schedule_csv(*BASE))
    out = harness.ingest(board, schedule_csv(*BASE))
    assert out.summary["inserted"] == 3
    with harness.read() as s:
        n = s.scalar(select(func.count()).where(CsvDashboardRow.csv_dashboard_id == board.id))
    assert n == 6
    with harness.read() as s:
        ids = s.scalars(
            select(CsvDashboardRow.id).where(CsvDashboardRow.csv_dashboard_id == board.id)
        )
        assert {i.version for i in ids} == {7}


def test_invalid_target_for_appearance_kind_is_refused(harness: Harness) -> None:
    from csvboard.errors import InvalidRequest
    from csvboard.runs.service import validate_targets

    with pytest.raises(InvalidRequest) as exc:
        validate_targets("appearance_supplement", ["official", "appearance"])
    assert exc.value.code == "INVALID_TARGET"
    with pytest.raises(InvalidRequest):
        validate_targets("official_ingestion", [])


def test_cancel_between_batches_commits_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE))
    before = snapshot(harness, board)
    monkeypatch.setattr(harness, "settings", batches_of(harness.settings, 50))
    lines = [schedule_line(1000000001, "B0000001", f"P-{i}", 10) for i in range(500)]
    run_id = harness.queue(
        board, harness.write_file(schedule_csv(*lines)), kind="official_ingestion"
    )

    def cancel_on_first_batch(counts: lifecycle.RunCounts) -> None:
        with harness.write() as s:
            lifecycle.cancel(s, run_id, by="test")

    from csvboard.ingest.runner import execute_run

    out = execute_run(
        harness.engine, run_id, settings=harness.settings, worker_id="t",
        on_progress=cancel_on_first_batch,
    )  # fmt: skip
    assert out.status is RunStatus.CANCELLED
    assert out.counts.success == 0 and out.counts.target < 500
    assert snapshot(harness, board) == before
    with harness.read() as s:
        statuses = [
            (e.from_status, e.to_status)
            for e in s.scalars(
                select(IngestionEvent)
                .where(IngestionEvent.run_id == run_id, IngestionEvent.to_status.is_not(None))
                .order_by(IngestionEvent.id)
            )
        ]
    assert statuses == [(None, "queued"), ("queued", "running"), ("running", "cancelled")]


def test_database_error_mid_apply_rolls_back_everything(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    before = snapshot(harness, board)

    def explode(self: merge_module.Merge, stage: stage_module.Stage) -> int:
        self.conn.execute(text("SELECT * FROM no_such_table"))
        return 0

    monkeypatch.setattr(merge_module.Merge, "write_items", explode)
    changed = [BASE[0].replace("部品", "変更"), schedule_line(1000000001, "C0000001", "P-9", 10)]
    out = harness.ingest(board, schedule_csv(*changed), kind="official_ingestion")
    assert out.status is RunStatus.FAILED and out.error_code == "DATABASE_ERROR"
    assert out.counts.success == 0
    assert snapshot(harness, board) == before  # upsert and retire were rolled back
    assert items_of(harness, out.run_id) == []


def test_no_statement_binds_more_than_a_few_thousand_parameters(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard()
    seen: list[int] = []

    def count(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if many:
            seen.extend(len(p) for p in params)
        elif isinstance(params, dict | tuple | list):
            seen.append(len(params))

    event.listen(harness.engine, "before_cursor_execute", count)
    lines = [schedule_line(1000000001, "D0000001", f"P-{i}", 10) for i in range(5000)]
    out = harness.ingest(board, schedule_csv(*lines), kind="official_ingestion")
    event.remove(harness.engine, "before_cursor_execute", count)
    assert out.status is RunStatus.SUCCEEDED and out.counts.success == 5000
    assert seen and max(seen) <= 100


@pytest.mark.slow
def test_a_100000_row_file(harness: Harness, tmp_path: Path) -> None:
    from csvboard.schedule.sample import write_schedule_csv

    board = harness.dashboard()
    path = write_schedule_csv(tmp_path / "big.csv", 100_000, seed=3)
    first = harness.run(harness.queue(board, path, kind="official_ingestion"))
    assert first.status is RunStatus.SUCCEEDED
    assert first.counts.target == 100_000 and first.counts.success == 100_000
    with harness.read() as s:
        stored = s.scalar(select(func.count()).where(CsvDashboardRow.csv_dashboard_id == board.id))
    duplicates = first.summary["duplicates_excluded"]
    assert stored == 100_000 - duplicates
    again = harness.run(harness.queue(board, path, kind="official_ingestion"))
    assert again.status is RunStatus.SUCCEEDED
    assert again.summary["unchanged"] == stored and again.summary["updated"] == 0
    assert again.summary["retired"] == 0


def test_kiosk_write_does_not_wait_for_an_open_apply_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/contract.md §3: the upsert takes FOR NO KEY UPDATE locks, which an operator
    write's FK check (FOR KEY SHARE) does not wait for. Hold the apply transaction open after
    the upsert and retire, and write operator data for those very rows from another
    connection."""
    import threading

    h = Harness(pg_url, tmp_path / "data")
    try:
        board = h.dashboard()
        h.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
        rows = rows_by_key(h, board)
        updated_id = rows[("A0000001", "P-1", "R01", "10")].id
        retired_id = rows[("A0000001", "P-2", "R01", "10")].id
        inside = threading.Event()
        release = threading.Event()
        original = merge_module.Merge.write_items

        def hold(self: merge_module.Merge, stage: stage_module.Stage) -> int:
            inside.set()
            assert release.wait(30)
            return original(self, stage)

        monkeypatch.setattr(merge_module.Merge, "write_items", hold)
        changed = schedule_csv(BASE[0].replace("部品", "変更"), BASE[1])
        run_id = h.queue(board, h.write_file(changed), kind="official_ingestion")
        result: dict[str, RunOutcome] = {}
        worker = threading.Thread(target=lambda: result.setdefault("out", h.run(run_id)))
        worker.start()
        assert inside.wait(30)
        try:
            with h.engine.connect() as conn, conn.begin():
                conn.execute(text("SET LOCAL lock_timeout = '1s'"))
                for row_id in (updated_id, retired_id):
                    conn.execute(
                        text(
                            "INSERT INTO production_schedule_progress (csv_dashboard_row_id,"
                            " csv_dashboard_id, is_completed, updated_by, updated_at)"
                            " VALUES (:r, :d, true, 'kiosk', now())"
                        ),
                        {"r": row_id, "d": board.id},
                    )
        finally:
            release.set()
            worker.join(60)
        assert result["out"].status is RunStatus.SUCCEEDED
        assert result["out"].summary == result["out"].summary | {"updated": 1, "retired": 1}
        with h.read() as s:
            done = s.execute(text("SELECT count(*) FROM production_schedule_progress")).scalar()
        assert done == 2
    finally:
        h.close()


def test_run_counts_move_forward_during_a_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard()
    monkeypatch.setattr(harness, "settings", batches_of(harness.settings, 100))
    lines = [schedule_line(1000000001, "E0000001", f"P-{i}", 10) for i in range(450)]
    run_id = harness.queue(board, harness.write_file(schedule_csv(*lines)))
    observed: list[int] = []

    def watch(counts: lifecycle.RunCounts) -> None:
        with harness.read() as s:
            observed.append(s.get_one(IngestionRun, run_id).target_count)

    from csvboard.ingest.runner import execute_run

    execute_run(harness.engine, run_id, settings=harness.settings, worker_id="t", on_progress=watch)
    assert observed[:4] == [100, 200, 300, 400]
    assert observed[-1] == 450


def test_a_run_ended_by_someone_else_is_reported_not_overwritten(harness: Harness) -> None:
    board = harness.dashboard()
    run_id = harness.queue(board, harness.write_file(schedule_csv(*BASE)))
    with harness.write() as s:
        lifecycle.transition(s, run_id, expected=RunStatus.QUEUED, to=RunStatus.RUNNING)
        lifecycle.transition(
            s, run_id, expected=RunStatus.RUNNING, to=RunStatus.FAILED,
            error_code="WORKER_LOST", message="reaped",
        )  # fmt: skip
    with pytest.raises(lifecycle.TransitionConflict):
        harness.run(run_id)
    assert ledger(harness, run_id).status == "failed"


def test_sqlite_run_cache_is_reset_before_its_connection_returns_to_the_pool(
    harness: Harness,
) -> None:
    """A run enlarges its connection's page cache (SQLite); the pool gets it back as it was."""
    seen: list[int] = []

    @event.listens_for(harness.engine, "before_cursor_execute")
    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("PRAGMA cache_size ="):  # the settings, not the read
            seen.append(int(statement.rsplit("=", 1)[1]))

    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE))
    event.remove(harness.engine, "before_cursor_execute", watch)
    if harness.engine.dialect.name != "sqlite":
        assert seen == []  # a SQLite setting only
        return
    assert seen == [-harness.settings.sqlite_run_cache_mib * 1024, -2000]
    with harness.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -2000


def test_a_large_change_refreshes_the_postgresql_statistics_at_once(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a dashboard's first large ingest, stale statistics (its id matching no
    row) made the next run's completion join visit every completion for every row. A run
    that changed many rows, and a good share of the table, runs ANALYZE after its commit."""
    from csvboard.ingest import runner as runner_module

    monkeypatch.setattr(apply_module, "ANALYZE_MIN_ROWS", 50)
    decided: list[bool] = []

    def recording(conn: Any, changed_rows: int) -> bool:
        decided.append(apply_module.refresh_statistics(conn, changed_rows))
        return decided[-1]

    monkeypatch.setattr(runner_module, "refresh_statistics", recording)
    h = Harness(pg_url, tmp_path / "data")
    try:
        with h.engine.begin() as conn:  # so that only csvboard's ANALYZE can refresh them
            for table in apply_module._ANALYZED_TABLES:
                conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))

        def estimate() -> float:
            with h.engine.connect() as conn:
                return float(
                    conn.execute(
                        text("SELECT reltuples FROM pg_class WHERE relname = 'csv_dashboard_rows'")
                    ).scalar_one()
                )

        small = h.dashboard("small")
        h.ingest(
            small, schedule_csv(*(schedule_line(1, "S0000001", f"P-{i}", 10) for i in range(10)))
        )
        assert decided == [False] and estimate() < 10  # 10 rows: below the minimum
        big = h.dashboard("big")
        lines = [schedule_line(2, "B0000001", f"P-{i}", 10) for i in range(3_000)]
        h.ingest(big, schedule_csv(*lines))
        assert decided == [False, True] and estimate() == 3_010
        changed = [line.replace("部品", "変更") for line in lines[:60]] + lines[60:]
        out = h.ingest(big, schedule_csv(*changed))
        assert out.summary["updated"] == 60
        assert decided == [False, True, False]  # 60 rows of 3,010: autovacuum's business
    finally:
        h.close()


def test_a_failed_statistics_refresh_does_not_fail_the_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from csvboard.ingest import runner as runner_module

    def refused(conn: Any, changed_rows: int) -> bool:
        conn.begin()
        raise OperationalError("ANALYZE", {}, Exception("canceling statement: lock timeout"))

    monkeypatch.setattr(runner_module, "refresh_statistics", refused)
    board = harness.dashboard()
    out = harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED and out.summary["inserted"] == len(BASE)
    with harness.read() as s:  # committed, and the connection was rolled back, not left open
        assert s.scalar(select(func.count()).select_from(CsvDashboardRow)) == len(BASE)
        assert s.get_one(IngestionRun, out.run_id).status == RunStatus.SUCCEEDED.value
