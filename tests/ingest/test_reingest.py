"""Re-ingests on SQLite and PostgreSQL: what is unchanged stays untouched, what is absent
retires, repeats fold, and the match made before the apply lock gives what a match under the
lock gives.

The property test runs the same random sequence of files against two dashboards: one whose
runs keep their pre-lock match, one whose runs always find it outdated and match again under
the lock (ingest/runner.py). Outcomes, items, rows and external completion must agree after
every run.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.ingest import merge as merge_module
from csvboard.ingest import runner as runner_module
from csvboard.ingest import stage as stage_module
from csvboard.ingest.ledger import RunOutcome
from csvboard.runs.models import IngestionItem
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule.models import ProductionScheduleExternalCompletion
from support import Harness, schedule_csv, schedule_line


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


def test_only_changed_and_new_rows_are_written_and_absent_ones_retire(harness: Harness) -> None:
    board = harness.dashboard()
    first = harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    changed = BASE[0].replace(",1.5,", ",2.5,")
    new = schedule_line(1000000001, "A0000001", "P-3", 10)
    out = harness.ingest(board, schedule_csv(changed, BASE[2], new), kind="official_ingestion")
    # The unchanged row is not rewritten: it still names the run that wrote it.
    assert row_of(harness, board, ("A0000001", "P-2", "R01", "10")).last_changed_run_id == (
        first.run_id
    )
    assert row_of(harness, board, KEY).last_changed_run_id == out.run_id
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
        # the unchanged row comes first; a newer order of the same step follows
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
def test_a_repeat_of_an_unchanged_row_goes_through_the_fold(
    harness: Harness, lines: list[str], winner_line: int, excluded_line: int, winner_name: str
) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(schedule_line(1000000001, *KEY[:2], 10)))
    out = harness.ingest(board, schedule_csv(*lines), kind="official_ingestion")
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


def test_a_file_of_repeated_rows_keeps_one_of_each(harness: Harness) -> None:
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    out = harness.ingest(board, schedule_csv(*BASE, *BASE), kind="official_ingestion")
    assert out.status is RunStatus.SUCCEEDED
    assert (out.counts.target, out.counts.success) == (6, 6)
    assert out.summary["unchanged"] == 3 and out.summary["duplicates_excluded"] == 3
    assert out.summary["retired"] == 0
    excluded = [(i[0], i[4]) for i in items(harness, out.run_id) if i[2] == "excluded"]
    assert excluded == [(2, "DUPLICATE_KEY_IN_SOURCE"), (3, "DUPLICATE_KEY_IN_SOURCE"),
                        (4, "DUPLICATE_KEY_IN_SOURCE")]  # fmt: skip


def test_completion_set_by_a_status_feed_is_not_mistaken_for_unchanged(harness: Harness) -> None:
    """Same data, but the stored external completion differs: the row must be staged."""
    board = harness.dashboard()
    harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    harness.ingest(
        board,
        "FSEIBAN,FHINCD,FSIGENCD,FKOJUN,status\r\nA0000001,P-1,R01,10,C\r\n",
        kind="appearance_supplement",
    )
    row = row_of(harness, board, KEY)
    with harness.read() as s:
        assert s.get_one(ProductionScheduleExternalCompletion, row.id).is_completed is True
    out = harness.ingest(board, schedule_csv(*BASE), kind="official_ingestion")
    assert out.summary["unchanged"] == 3  # same data; only the completion differs
    with harness.read() as s:  # the official file's empty cell wins
        assert s.get_one(ProductionScheduleExternalCompletion, row.id).is_completed is False


# -- the property: matched before the lock or under it, every run ends the same ---------------
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
)


def _content(kind: str, lines: list[str]) -> str:
    if kind == "appearance_supplement":
        return "FSEIBAN,FHINCD,FSIGENCD,FKOJUN,status\r\n" + "".join(f"{x}\r\n" for x in lines)
    return schedule_csv(*lines)


def _comparable(out: RunOutcome) -> tuple[Any, ...]:
    summary = {
        k: v for k, v in out.summary.items() if k not in ("duration_seconds", "lock_seconds")
    }
    return out.status, out.counts, out.error_code, summary


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=st.lists(_run, min_size=1, max_size=6))
def test_matching_before_the_lock_changes_no_outcome(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, runs: list[tuple[str, list[str]]]
) -> None:
    early = harness.dashboard(f"early-{uuid.uuid4().hex[:8]}")
    late = harness.dashboard(f"late-{uuid.uuid4().hex[:8]}")
    real = runner_module.rows_marker
    calls = {"early": 0, "late": 0}

    def rows_marker(conn: Any, dashboard_id: uuid.UUID) -> tuple[int, int]:
        if dashboard_id == late.id:
            # Another answer every time: the pre-lock match is always outdated.
            calls["late"] += 1
            return -calls["late"], 0
        calls["early"] += 1
        return real(conn, dashboard_id)

    with monkeypatch.context() as patch:
        patch.setattr(runner_module, "rows_marker", rows_marker)
        last: list[str] = []
        for kind, spec in runs:
            if kind == "again":
                kind, lines = "official_ingestion", list(last)
                for at, line in spec:
                    lines.insert(at, line)
            else:
                lines = spec
            if kind != "appearance_supplement":
                last = lines
            content = _content(kind, lines)
            a = harness.ingest(early, content, kind=kind)
            b = harness.ingest(late, content, kind=kind)
            assert _comparable(a) == _comparable(b), (kind, lines)
            assert items(harness, a.run_id) == items(harness, b.run_id), (kind, lines)
            assert state(harness, early) == state(harness, late), (kind, lines)
    # Both paths ran: every pre-lock match is checked under the lock (two calls a run).
    assert calls["early"] % 2 == 0 and calls["late"] % 2 == 0


def test_sqlite_match_looks_staged_keys_up_instead_of_walking_the_dashboard(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few changed rows against many stored ones: the match is driven by the staged rows.

    (As a join, SQLite's planner walked every stored row to probe the staging table: 1.2 s
    at 1M stored rows, inside the write lock.)
    """
    harness = Harness(sqlite_url, tmp_path / "data")
    board = harness.dashboard()
    steps = [schedule_line(1000000001, "A0000001", f"P-{i}", 10) for i in range(2_000)]
    harness.ingest(board, schedule_csv(*steps), kind="official_ingestion")
    statements: list[tuple[str, dict[str, Any]]] = []
    real = merge_module.Merge._exec

    def recording(merge: merge_module.Merge, sql: str, **extra: Any) -> int:
        statements.append((sql, merge._params(**extra)))
        return real(merge, sql, **extra)

    monkeypatch.setattr(merge_module.Merge, "_exec", recording)
    changed = [steps[5].replace("部品", "変更"), *steps[:5], *steps[6:]]
    out = harness.ingest(board, schedule_csv(*changed), kind="official_ingestion")
    assert out.summary["updated"] == 1
    match_sql, params = next(
        (sql, p) for sql, p in statements if sql.startswith("UPDATE stg_off") and "row_id" in sql
    )
    with harness.engine.connect() as conn:
        # The staging table is gone with the run; an identical one stands in, with as many
        # staged rows as a 1 % change of a 20,000-row dashboard.
        stage_name = match_sql.split()[1]
        stage = stage_module.Stage(conn, "official", 2)  # ProductNo, updatedAt
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


def test_new_row_ids_are_version_7_uuids_in_file_order_and_later_runs_sort_after(
    harness: Harness,
) -> None:
    """Ids of new rows follow the file and the runs (ingest/merge.py ``_new_row_id``), so a
    large insert appends to the primary-key indexes; they stay unique across runs."""
    board = harness.dashboard()
    other = harness.dashboard("other")
    first = [schedule_line(1000000001, "A0000001", f"P-{i}", 10) for i in range(300)]
    harness.ingest(board, schedule_csv(*first), kind="official_ingestion")
    harness.ingest(other, schedule_csv(*first), kind="official_ingestion")  # same keys, same seqs
    later = [schedule_line(1000000001, "A0000001", f"Q-{i}", 10) for i in range(3)]
    harness.ingest(board, schedule_csv(*first, *later), kind="official_ingestion")

    def ids(dashboard: CsvDashboard, part: str) -> list[uuid.UUID]:
        with harness.read() as s:
            rows = s.scalars(
                select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == dashboard.id)
            ).all()
        # File order: P-0, P-1, …, P-299 (the key's 品番 part), then Q-0 … Q-2.
        found = {json.loads(r.row_key)[1]: r.id for r in rows}
        return [found[f"{part}-{i}"] for i in range(300 if part == "P" else 3)]

    board_ids, other_ids, later_ids = ids(board, "P"), ids(other, "P"), ids(board, "Q")
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in board_ids + later_ids)
    assert board_ids == sorted(board_ids) and later_ids == sorted(later_ids)
    assert max(board_ids) < min(later_ids)
    assert len(set(board_ids) | set(other_ids)) == 600
