"""Unchanged rows recognised while parsing (ingest/fingerprints.py), on SQLite and PostgreSQL.

The fast path must give exactly the result of staging every row: the property test runs the
same random sequence of files against two dashboards, one with fingerprints and one without,
and compares outcomes, items, rows and external completion after every run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.presets import production_schedule_schema
from csvboard.ingest import apply as apply_module
from csvboard.ingest import fingerprints as fp_module
from csvboard.ingest.parse import Record
from csvboard.ingest.runner import RunOutcome
from csvboard.ingest.validate import RowValidator
from csvboard.runs.models import IngestionItem
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule.models import ProductionScheduleExternalCompletion
from support import SCHEDULE_HEADER, Harness, schedule_line


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    # Fingerprints belong to the record-at-a-time path (the columnar one matches in SQL).
    h = Harness(db_url, tmp_path / "data", ingest_engine="rows")
    yield h
    h.close()


@pytest.fixture
def staged_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each staging flush wrote (official and appearance stages alike)."""
    flushed: list[int] = []
    real = apply_module.Stage.flush

    def counting(stage: apply_module.Stage) -> None:
        flushed.append(len(stage._buffer))
        real(stage)

    monkeypatch.setattr(apply_module.Stage, "flush", counting)
    return flushed


def csv_text(*lines: str) -> str:
    return "\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n"


def items(h: Harness, run_id: uuid.UUID) -> list[tuple[Any, ...]]:
    with h.read() as s:
        found = s.scalars(select(IngestionItem).where(IngestionItem.run_id == run_id))
        return sorted(
            (i.line_number or 0, i.row_key or "", i.status, i.update_type or "",
             i.reason_code or "", i.message or "")
            for i in found
        )  # fmt: skip


def state(h: Harness, board: CsvDashboard) -> dict[str, tuple[Any, ...]]:
    """Per row key: everything ingestion can change, ids left out (they differ per board)."""
    with h.read() as s:
        rows = s.scalars(
            select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == board.id)
        )
        ext = {
            e.csv_dashboard_row_id: e.is_completed
            for e in s.scalars(
                select(ProductionScheduleExternalCompletion).where(
                    ProductionScheduleExternalCompletion.csv_dashboard_id == board.id
                )
            )
        }
        return {
            r.row_key: (
                json.dumps(r.row_data, sort_keys=True, ensure_ascii=False), r.data_hash,
                r.is_active, json.dumps(r.supplement_data, sort_keys=True, ensure_ascii=False),
                json.dumps(r.version_values), ext.get(r.id),
            )
            for r in rows
        }  # fmt: skip


KEY = ("A0000001", "P-1", "R01", "10")
BASE = [
    schedule_line(1000000001, "A0000001", "P-1", 10),
    schedule_line(1000000001, "A0000001", "P-1", 20, resource="R02"),
    schedule_line(1000000001, "A0000001", "P-2", 10),
]


def row_of(h: Harness, board: CsvDashboard, key: tuple[str, ...]) -> CsvDashboardRow:
    with h.read() as s:
        return s.scalars(
            select(CsvDashboardRow).where(
                CsvDashboardRow.csv_dashboard_id == board.id,
                CsvDashboardRow.row_key
                == json.dumps(list(key), ensure_ascii=False, separators=(",", ":")),
            )
        ).one()


def test_an_unchanged_reingest_stages_no_row(harness: Harness, staged_rows: list[int]) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert sum(staged_rows) == 3
    staged_rows.clear()
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED
    assert out.summary["unchanged"] == 3 and out.summary["unchanged_not_staged"] == 3
    assert out.summary["retired"] == 0
    assert sum(staged_rows) == 0  # nothing staged: the merge has nothing to walk
    assert items(harness, out.run_id) == []


# -- record hashes: a known line is not even validated ---------------------------------------
@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Line numbers RowValidator.validate was called for."""
    lines: list[int] = []
    real = RowValidator.validate

    def counting(validator: RowValidator, record: Record) -> Any:
        lines.append(record.line)
        return real(validator, record)

    monkeypatch.setattr(RowValidator, "validate", counting)
    return lines


def record_hashes(h: Harness, board: CsvDashboard) -> dict[str, str | None]:
    with h.read() as s:
        rows = s.scalars(
            select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == board.id)
        )
        return {r.row_key: r.record_hash for r in rows}


def forget_record_hashes(h: Harness, board: CsvDashboard) -> None:
    """As rows stored before the column existed."""
    with h.engine.begin() as conn:
        conn.execute(
            update(CsvDashboardRow)
            .where(CsvDashboardRow.csv_dashboard_id == board.id)
            .values(record_hash=None)
        )


def test_an_unchanged_reingest_validates_no_line(harness: Harness, validated: list[int]) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert sorted(validated) == [2, 3, 4]  # a first ingest validates every line
    first = record_hashes(harness, board)
    assert all(h is not None and len(h) == 32 for h in first.values())
    assert len(set(first.values())) == 3
    validated.clear()
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert out.summary["unchanged"] == 3 and out.summary["unchanged_not_validated"] == 3
    assert validated == []
    assert record_hashes(harness, board) == first


def test_a_changed_line_is_validated_and_its_new_record_hash_stored(
    harness: Harness, validated: list[int]
) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    before = record_hashes(harness, board)
    validated.clear()
    changed = [BASE[0].replace("部品", "部品B"), *BASE[1:]]
    out = harness.ingest(board, csv_text(*changed), kind="official_ingestion")
    assert out.summary["updated"] == 1 and out.summary["unchanged_not_validated"] == 2
    assert validated == [2]
    after = record_hashes(harness, board)
    key = json.dumps(list(KEY), ensure_ascii=False, separators=(",", ":"))
    assert after[key] != before[key] and after[key] is not None
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in before.items() if k != key
    }


def test_rows_without_record_hash_are_matched_by_data_and_get_one(
    harness: Harness, validated: list[int], staged_rows: list[int]
) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    first = record_hashes(harness, board)
    forget_record_hashes(harness, board)
    validated.clear()
    staged_rows.clear()
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    # Validated (the record hashes are unknown), still not staged, and hashed after the commit.
    assert out.summary["unchanged_not_staged"] == 3
    assert out.summary["unchanged_not_validated"] == 0
    assert sorted(validated) == [2, 3, 4] and sum(staged_rows) == 0
    assert record_hashes(harness, board) == first
    validated.clear()
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert out.summary["unchanged_not_validated"] == 3 and validated == []


def test_a_new_header_order_or_spacing_rehashes_the_records(
    harness: Harness, validated: list[int]
) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    first = record_hashes(harness, board)
    # The same rows, two columns swapped: another context, so other record hashes.
    header = SCHEDULE_HEADER.split(",")
    swapped_header = ",".join([header[1], header[0], *header[2:]])

    def swap(line: str) -> str:
        cells = line.split(",")
        return ",".join([cells[1], cells[0], *cells[2:]])

    swapped = "\r\n".join([swapped_header, *map(swap, BASE)]) + "\r\n"
    validated.clear()
    out = harness.ingest(board, swapped, kind="official_ingestion")
    assert out.summary["unchanged"] == 3 and out.summary["unchanged_not_validated"] == 0
    second = record_hashes(harness, board)
    assert set(second) == set(first) and not set(second.values()) & set(first.values())
    validated.clear()
    out = harness.ingest(board, swapped, kind="official_ingestion")
    assert out.summary["unchanged_not_validated"] == 3 and validated == []
    # A cell padded with spaces: the same row (validation strips), another record.
    padded = [BASE[0].replace("部品", " 部品 "), *BASE[1:]]
    out = harness.ingest(board, csv_text(*padded), kind="official_ingestion")
    assert out.summary["unchanged"] == 3 and out.summary["unchanged_not_validated"] == 0
    validated.clear()
    out = harness.ingest(board, csv_text(*padded), kind="official_ingestion")
    assert out.summary["unchanged_not_validated"] == 3 and validated == []


def test_a_line_differing_only_in_spaces_is_staged_once_then_known_by_its_record(
    harness: Harness, validated: list[int], staged_rows: list[int]
) -> None:
    """Same header, so the stored rows are in the table by record hash only: a padded cell
    misses it, is staged, ends unchanged, and its row takes the padded record's hash."""
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    first = record_hashes(harness, board)
    padded = [BASE[0].replace("部品", " 部品 "), *BASE[1:]]
    validated.clear()
    staged_rows.clear()
    out = harness.ingest(board, csv_text(*padded), kind="official_ingestion")
    assert out.summary["unchanged"] == 3 and out.summary["updated"] == 0
    assert out.summary["unchanged_not_validated"] == 2 and validated == [2]
    assert sum(staged_rows) == 1
    second = record_hashes(harness, board)
    key = json.dumps(list(KEY), ensure_ascii=False, separators=(",", ":"))
    assert second[key] not in (None, first[key])
    assert {k: v for k, v in second.items() if k != key} == {
        k: v for k, v in first.items() if k != key
    }
    validated.clear()
    staged_rows.clear()
    out = harness.ingest(board, csv_text(*padded), kind="official_ingestion")
    assert out.summary["unchanged_not_validated"] == 3 and validated == []
    assert sum(staged_rows) == 0


def test_a_record_hash_is_not_written_to_a_row_changed_meanwhile(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    forget_record_hashes(harness, board)
    key = json.dumps(list(KEY), ensure_ascii=False, separators=(",", ":"))
    real = fp_module.Fingerprints.write_record_hashes

    def after_a_concurrent_change(fp: fp_module.Fingerprints) -> int:
        # Another run rewrote one row between this run's commit and the hashes' write.
        with harness.engine.begin() as conn:
            conn.execute(
                update(CsvDashboardRow)
                .where(CsvDashboardRow.csv_dashboard_id == board.id)
                .where(CsvDashboardRow.row_key == key)
                .values(data_hash="f" * 64)
            )
        return real(fp)

    monkeypatch.setattr(fp_module.Fingerprints, "write_record_hashes", after_a_concurrent_change)
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED
    hashes = record_hashes(harness, board)
    assert hashes[key] is None
    assert all(v is not None for k, v in hashes.items() if k != key)


def test_a_failed_record_hash_write_does_not_fail_the_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    forget_record_hashes(harness, board)

    def refused(fp: fp_module.Fingerprints) -> int:
        raise OperationalError("UPDATE", {}, Exception("database is locked"))

    monkeypatch.setattr(fp_module.Fingerprints, "write_record_hashes", refused)
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED and out.summary["unchanged"] == 3
    assert set(record_hashes(harness, board).values()) == {None}
    monkeypatch.undo()
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")  # hashes them now
    assert out.summary["unchanged_not_validated"] == 0
    assert None not in set(record_hashes(harness, board).values())


def test_record_hash_length_is_checked_by_the_database(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    with pytest.raises(IntegrityError), harness.engine.begin() as conn:
        conn.execute(
            update(CsvDashboardRow)
            .where(CsvDashboardRow.csv_dashboard_id == board.id)
            .values(record_hash="0" * 31)
        )


def test_record_hasher_separates_cells_context_and_width() -> None:
    schema = production_schedule_schema()
    header = SCHEDULE_HEADER.split(",")
    hasher = fp_module.RecordHasher(schema, header, "Asia/Tokyo")
    cells = BASE[0].split(",")
    assert hasher.digest(cells) == hasher.digest(list(cells))
    assert hasher.digest(cells[:-1]) is None and hasher.digest([*cells, ""]) is None
    moved = [cells[0] + cells[1], "", *cells[2:]]  # the same characters, split elsewhere
    assert hasher.digest(moved) != hasher.digest(cells)
    assert fp_module.RecordHasher(schema, header, "UTC").digest(cells) != hasher.digest(cells)
    assert fp_module.RecordHasher(schema, [h.lower() for h in header], "Asia/Tokyo").digest(
        cells
    ) != hasher.digest(cells)
    digest = hasher.digest(cells)
    assert digest is not None
    done, open_ = (hasher.stored(digest, c) for c in (True, False))
    # 96 bits of the digest, the context tag, then the completion the record gives.
    assert done[:24] == open_[:24] == digest.hex() and len(done) == 32
    assert done[24:31] == open_[24:31] == hasher.tag and (done[31], open_[31]) == ("1", "0")
    assert hasher.stored(digest, None) == open_
    tags = {
        fp_module.RecordHasher(schema, h, tz).tag
        for h in (header, header[::-1]) for tz in ("Asia/Tokyo", "UTC")
    }  # fmt: skip
    assert len(tags) == 4 and fp_module.RecordHasher(schema, header, "UTC").tag in tags


def test_only_changed_and_new_rows_are_staged_and_absent_ones_retire(
    harness: Harness, staged_rows: list[int]
) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    staged_rows.clear()
    changed = BASE[0].replace(",1.5,", ",2.5,")
    new = schedule_line(1000000001, "A0000001", "P-3", 10)
    out = harness.ingest(board, csv_text(changed, BASE[2], new), kind="official_ingestion")
    assert sum(staged_rows) == 2
    assert (out.summary["updated"], out.summary["inserted"], out.summary["unchanged"]) == (1, 1, 1)
    assert out.summary["retired"] == 1
    assert [(i[0], i[2], i[3]) for i in items(harness, out.run_id)] == [
        (0, "succeeded", "retired"),  # P-1 / R02 / 20: absent from the snapshot
        (2, "succeeded", "existing"),
        (4, "succeeded", "new"),
    ]
    assert state(harness, board)['["A0000001","P-1","R02","20"]'][2] is False


@pytest.mark.parametrize(
    ("lines", "winner_line", "excluded_line", "winner_name"),
    [
        # the skipped (unchanged) row comes first; a newer order of the same step follows
        ([schedule_line(1000000001, *KEY[:2], 10), schedule_line(1000000002, *KEY[:2], 10,
          name="新")], 3, 2, "新"),
        # the newer order first; the unchanged, older one later loses to it
        ([schedule_line(1000000002, *KEY[:2], 10, name="新"),
          schedule_line(1000000001, *KEY[:2], 10)], 2, 3, "新"),
        # the unchanged row twice: ties go to the last
        ([schedule_line(1000000001, *KEY[:2], 10), schedule_line(1000000001, *KEY[:2], 10)],
         3, 2, "部品"),
    ],
)  # fmt: skip
def test_a_duplicate_of_a_skipped_row_goes_through_the_fold(
    harness: Harness, lines: list[str], winner_line: int, excluded_line: int, winner_name: str
) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(schedule_line(1000000001, *KEY[:2], 10)))
    out = harness.ingest(board, csv_text(*lines), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED
    assert (out.counts.target, out.counts.success) == (2, 2)
    assert out.summary["duplicates_excluded"] == 1
    found = items(harness, out.run_id)
    excluded = [(i[0], i[4]) for i in found if i[2] == "excluded"]
    assert excluded == [(excluded_line, "DUPLICATE_KEY_IN_SOURCE")]
    assert row_of(harness, board, KEY).row_data["FHINMEI"] == winner_name
    if winner_name == "部品":
        assert out.summary["unchanged"] == 1 and out.summary["updated"] == 0
    else:
        assert [(i[0], i[3]) for i in found if i[2] == "succeeded"] == [(winner_line, "existing")]


def test_a_file_of_repeated_rows_restores_every_skipped_one(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    out = harness.ingest(board, csv_text(*BASE, *BASE), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED
    assert (out.counts.target, out.counts.success) == (6, 6)
    assert out.summary["unchanged"] == 3 and out.summary["duplicates_excluded"] == 3
    assert out.summary["unchanged_not_staged"] == 0  # all three skipped rows were restored
    assert out.summary["retired"] == 0
    excluded = [(i[0], i[4]) for i in items(harness, out.run_id) if i[2] == "excluded"]
    assert excluded == [(2, "DUPLICATE_KEY_IN_SOURCE"), (3, "DUPLICATE_KEY_IN_SOURCE"),
                        (4, "DUPLICATE_KEY_IN_SOURCE")]  # fmt: skip


def test_above_the_size_limit_a_run_stages_every_row(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, staged_rows: list[int]
) -> None:
    """Memory stays bounded: a dashboard over MAX_STORED_ROWS gets no table, same result."""
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    monkeypatch.setattr(fp_module, "MAX_STORED_ROWS", 2)
    staged_rows.clear()
    out = harness.ingest(board, csv_text(*BASE[:2]), kind="official_ingestion")
    assert "unchanged_not_staged" not in out.summary
    assert sum(staged_rows) == 2
    assert (out.summary["unchanged"], out.summary["retired"]) == (2, 1)


def test_more_rows_than_counted_restage_instead_of_overfilling_the_table(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, staged_rows: list[int]
) -> None:
    """PostgreSQL reads the count and the rows in two statements; a commit between them."""
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    real = fp_module.Fingerprints._query

    def undercounted(fp: fp_module.Fingerprints, sql: str) -> Iterator[tuple[Any, ...]]:
        if sql.startswith("SELECT count(*) FROM csv_dashboard_rows"):
            return iter([(2,)])  # the table sized for 2 rows; 3 arrive
        return real(fp, sql)

    monkeypatch.setattr(fp_module.Fingerprints, "_query", undercounted)
    staged_rows.clear()
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED
    assert "unchanged_not_staged" not in out.summary and sum(staged_rows) == 3
    assert (out.summary["unchanged"], out.counts.target) == (3, 3)


def test_completion_set_by_a_status_feed_is_not_mistaken_for_unchanged(harness: Harness) -> None:
    """Same data, but the stored external completion differs: the row must be staged."""
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    harness.ingest(
        board,
        "FSEIBAN,FHINCD,FSIGENCD,FKOJUN,status\r\nA0000001,P-1,R01,10,C\r\n",
        kind="appearance_supplement",
    )
    row = row_of(harness, board, KEY)
    with harness.read() as s:
        assert s.get_one(ProductionScheduleExternalCompletion, row.id).is_completed is True
    out = harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    assert out.summary["unchanged_not_staged"] == 2  # the other two
    with harness.read() as s:  # as without fingerprints: the official file's empty cell wins
        assert s.get_one(ProductionScheduleExternalCompletion, row.id).is_completed is False


def test_a_run_committed_meanwhile_makes_the_run_stage_everything(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fingerprints read, then another run changes the dashboard before this one applies."""
    board = harness.dashboard()
    harness.ingest(board, csv_text(*BASE), kind="official_ingestion")
    real = fp_module.Fingerprints.load
    interleaved: list[RunOutcome] = []
    calls: list[uuid.UUID] = []

    def load_then_interleave(
        conn: Any, dashboard_id: uuid.UUID, *, with_completion: bool, hasher: Any
    ) -> fp_module.Fingerprints | None:
        loaded = real(conn, dashboard_id, with_completion=with_completion, hasher=hasher)
        calls.append(dashboard_id)
        if len(calls) == 1:  # another run changes P-1/R01/10 after the read
            other = csv_text(BASE[0].replace("部品", "他"), *BASE[1:])
            interleaved.append(harness.ingest(board, other, kind="official_ingestion"))
        return loaded

    monkeypatch.setattr(fp_module.Fingerprints, "load", staticmethod(load_then_interleave))
    queued = harness.queue(board, harness.write_file(csv_text(*BASE)), kind="official_ingestion")
    out = harness.run(queued)
    assert interleaved[0].summary["updated"] == 1
    assert len(calls) == 2  # this run's read and the interleaved run's; none on the re-stage
    assert out.status is RunStatus.SUCCEEDED
    # Fingerprints said "unchanged" for BASE[0]; the run noticed and staged everything again.
    assert "unchanged_not_staged" not in out.summary
    assert (out.summary["updated"], out.summary["unchanged"]) == (1, 2)
    assert out.counts.target == 3  # counted once, not once per attempt
    assert row_of(harness, board, KEY).row_data["FHINMEI"] == "部品"


# -- the property: with and without fingerprints, every run ends the same ---------------------
_KEYS = [("P-1", 10, "R01"), ("P-1", 20, "R02"), ("P-2", 10, "R01"), ("P-3", 30, "R03")]
_official_line = st.builds(
    lambda key, order, name, progress, updated: schedule_line(
        order, "A0000001", key[0], key[1], resource=key[2], name=name, progress=progress,
        updated=updated,
    ),
    st.sampled_from(_KEYS),
    st.sampled_from([1000000001, 1000000002]),
    # " 甲" is 甲 once validated: the same row from another record.
    st.sampled_from(["甲", "乙", " 甲"]),
    st.sampled_from(["", "完了"]),
    st.sampled_from(["", "2026/1/1 10:00", "2026/1/2 10:00"]),
)  # fmt: skip
# A rejected row whose key is valid (it still counts as mentioned by a snapshot).
_bad_line = st.sampled_from(_KEYS).map(
    lambda key: schedule_line(1000000001, "A0000001", key[0], key[1], resource=key[2]).replace(
        "1.5", "一時間"
    )
)
_status_line = st.builds(
    lambda key, code: f"A0000001,{key[0]},{key[2]},{key[1]},{code}",
    st.sampled_from([*_KEYS, ("Q-9", 10, "R01")]),
    st.sampled_from(["C", "A", "X"]),
)
_run = st.one_of(
    st.tuples(
        st.sampled_from(["official_ingestion", "incremental_update"]),
        st.lists(st.one_of(_official_line, _official_line, _official_line, _bad_line), max_size=7),
    ),
    st.tuples(st.just("appearance_supplement"), st.lists(_status_line, min_size=1, max_size=4)),
    # The last official file again (so rows are unchanged), with up to two lines added
    # anywhere (new rows, newer orders or repeats of the same step).
    st.tuples(st.just("again"), st.lists(st.tuples(st.integers(0, 7), _official_line), max_size=2)),
    # Rows stored before record hashes existed (or by an older validation code).
    st.tuples(st.just("forget_record_hashes"), st.just([])),
)


def _content(kind: str, lines: list[str]) -> str:
    if kind == "appearance_supplement":
        return "FSEIBAN,FHINCD,FSIGENCD,FKOJUN,status\r\n" + "".join(f"{x}\r\n" for x in lines)
    return csv_text(*lines)


def _comparable(out: RunOutcome) -> tuple[Any, ...]:
    summary = {
        k: v
        for k, v in out.summary.items()
        if k
        not in (
            "duration_seconds",
            "lock_seconds",
            "unchanged_not_staged",
            "unchanged_not_validated",
        )
    }
    return out.status, out.counts, out.error_code, summary


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=st.lists(_run, min_size=1, max_size=6))
def test_fingerprints_change_no_outcome(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, runs: list[tuple[str, list[str]]]
) -> None:
    fast = harness.dashboard(f"fast-{uuid.uuid4().hex[:8]}")
    plain = harness.dashboard(f"plain-{uuid.uuid4().hex[:8]}")
    real = fp_module.Fingerprints.load
    used: list[bool] = []

    def load(
        conn: Any, dashboard_id: uuid.UUID, *, with_completion: bool, hasher: Any
    ) -> fp_module.Fingerprints | None:
        if dashboard_id == plain.id:
            return None
        loaded = real(conn, dashboard_id, with_completion=with_completion, hasher=hasher)
        used.append(loaded is not None)
        return loaded

    with monkeypatch.context() as patch:
        patch.setattr(fp_module.Fingerprints, "load", staticmethod(load))
        last: list[str] = []
        for kind, spec in runs:
            if kind == "forget_record_hashes":
                with harness.engine.begin() as conn:
                    conn.execute(
                        update(CsvDashboardRow)
                        .where(CsvDashboardRow.csv_dashboard_id == fast.id)
                        .values(record_hash=None)
                    )
                continue
            if kind == "again":
                kind, lines = "official_ingestion", list(last)
                for at, line in spec:
                    lines.insert(at, line)
            else:
                lines = spec
            if kind != "appearance_supplement":
                last = lines
            content = _content(kind, lines)
            a = harness.ingest(fast, content, kind=kind)
            b = harness.ingest(plain, content, kind=kind)
            assert _comparable(a) == _comparable(b), (kind, lines)
            assert items(harness, a.run_id) == items(harness, b.run_id), (kind, lines)
            assert state(harness, fast) == state(harness, plain), (kind, lines)


def test_sqlite_match_looks_staged_keys_up_instead_of_walking_the_dashboard(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few changed rows against many stored ones: the match is driven by the staged rows.

    (As a join, SQLite's planner walked every stored row to probe the staging table: 1.2 s
    at 1M stored rows, inside the write lock.)
    """
    harness = Harness(sqlite_url, tmp_path / "data", ingest_engine="rows")
    board = harness.dashboard()
    steps = [schedule_line(1000000001, "A0000001", f"P-{i}", 10) for i in range(2_000)]
    harness.ingest(board, csv_text(*steps), kind="official_ingestion")
    statements: list[tuple[str, dict[str, Any]]] = []
    real = apply_module.Merge._exec

    def recording(merge: apply_module.Merge, sql: str, **extra: Any) -> int:
        statements.append((sql, merge._params(**extra)))
        return real(merge, sql, **extra)

    monkeypatch.setattr(apply_module.Merge, "_exec", recording)
    changed = [steps[5].replace("部品", "変更"), *steps[:5], *steps[6:]]
    out = harness.ingest(board, csv_text(*changed), kind="official_ingestion")
    assert out.summary["updated"] == 1
    match_sql, params = next(
        (sql, p) for sql, p in statements if sql.startswith("UPDATE stg_off") and "row_id" in sql
    )
    with harness.engine.connect() as conn:
        # The staging table is gone with the run; an identical one stands in, with as many
        # staged rows as a 1 % change of a 20,000-row dashboard.
        stage_name = match_sql.split()[1]
        stage = apply_module.Stage(conn, "official", 2)  # ProductNo, updatedAt
        stage.name = stage_name
        stage.create()
        conn.exec_driver_sql(
            f"INSERT INTO {stage_name} (seq, line, row_key) VALUES (?, ?, ?)",
            [(i, i + 1, f"k{i}") for i in range(1, 201)],
        )
        stage.index()
        plan = [
            str(row[3])
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + match_sql.replace(":dash", "?").replace(":run", "?")
                .replace(":now", "?"),
                tuple(params[name] for name in ("dash",) * match_sql.count(":dash")),
            )
        ]  # fmt: skip
    harness.close()
    assert plan[0].startswith(f"SCAN {stage_name}"), plan
    assert not any(step.startswith("SCAN r") or "ix_csv_dashboard_rows" in step for step in plan)
    assert any("uq_csv_dashboard_rows_dedup_key" in step for step in plan), plan


def test_sqlite_reads_the_fingerprints_in_row_order(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load walks the index of (dashboard, is_active), which keeps the table's row order,
    not the key index (a page read per row in key order)."""
    harness = Harness(sqlite_url, tmp_path / "data", ingest_engine="rows")
    board = harness.dashboard()
    steps = [schedule_line(1000000001, "A0000001", f"P-{i}", 10) for i in range(200)]
    harness.ingest(board, csv_text(*steps), kind="official_ingestion")
    queries: list[str] = []
    real = fp_module.Fingerprints._query

    def recording(fp: fp_module.Fingerprints, sql: str) -> Any:
        queries.append(sql)
        return real(fp, sql)

    monkeypatch.setattr(fp_module.Fingerprints, "_query", recording)
    out = harness.ingest(board, csv_text(*steps), kind="official_ingestion")
    assert out.summary["unchanged_not_validated"] == 200
    load_sql = next(sql for sql in queries if sql.startswith("SELECT r.id, coalesce(CASE"))
    with harness.engine.connect() as conn:
        plan = [
            str(row[3])
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {load_sql}", (board.id.hex,))
        ]
    harness.close()
    assert plan == [
        "SEARCH r USING INDEX ix_csv_dashboard_rows_active (csv_dashboard_id=? AND is_active=?)"
    ], plan


def test_kiosk_writes_do_not_wait_for_the_record_hash_rewrite_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC 3: the rewrite after the commit updates a non-key column (FOR NO KEY UPDATE
    locks) under the dashboard's apply lock, neither of which a kiosk write waits for. Hold
    its transaction open after the UPDATE and write operator data for those rows."""
    import threading

    from sqlalchemy import text

    from csvboard.schedule import service

    h = Harness(pg_url, tmp_path / "data", ingest_engine="rows")
    try:
        board = h.dashboard()
        h.ingest(board, csv_text(*BASE), kind="official_ingestion")
        forget_record_hashes(h, board)
        with h.read() as s:
            ids = list(
                s.scalars(
                    select(CsvDashboardRow.id).where(CsvDashboardRow.csv_dashboard_id == board.id)
                )
            )
        inside, release = threading.Event(), threading.Event()
        real = fp_module.Fingerprints.write_record_hashes

        def held(fp: fp_module.Fingerprints) -> int:
            commit = fp.conn.commit

            def commit_later() -> None:  # the UPDATE ran; its row locks are held until here
                inside.set()
                assert release.wait(30)
                commit()

            fp.conn.commit = commit_later  # type: ignore[method-assign]
            try:
                return real(fp)
            finally:
                del fp.conn.commit

        monkeypatch.setattr(fp_module.Fingerprints, "write_record_hashes", held)
        run_id = h.queue(board, h.write_file(csv_text(*BASE)), kind="official_ingestion")
        result: dict[str, RunOutcome] = {}
        worker = threading.Thread(target=lambda: result.setdefault("out", h.run(run_id)))
        worker.start()
        assert inside.wait(30)
        try:
            with h.write() as session:
                session.execute(text("SET LOCAL lock_timeout = '1s'"))
                service.set_completion(session, ids[0], "complete", by="w")
                service.set_note(session, ids[1], "during the rewrite", by="w")
                service.set_due_date(session, ids[2], "2026-05-01", by="w")
        finally:
            release.set()
            worker.join(60)
        assert result["out"].status is RunStatus.SUCCEEDED
        assert None not in set(record_hashes(h, board).values())
        with h.read() as s:
            notes = s.execute(text("SELECT count(*) FROM production_schedule_row_notes")).scalar()
        assert notes == 1
    finally:
        h.close()
