"""What people enter on the schedule survives every kind of ingestion (the seed ADR's point).

A realistic schedule (three 製番, three resources, CP932 with ①/㈱/髙 in names) gets worker
completions, notes, due dates, processing types and machining orders. Then every kind of file
the ERP and the status report produce is ingested — changed values, reordered lines, a partial
snapshot (rows retire and come back), a newer manufacturing order, an empty ``progress``
column, a delta and an appearance supplement. After each, every operator record must still
exist byte for byte (same values, same who/when: ingestion never wrote it), hang off the same
row id for the same step, and every step a worker completed must still be complete.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.runs.vocabulary import RunStatus
from csvboard.schedule import commands, progress, queries
from csvboard.schedule.models import OPERATOR_TABLES, ProductionScheduleExternalCompletion
from support import SCHEDULE_HEADER, Harness, schedule_line

Key = tuple[str, str, str, str]  # FSEIBAN, FHINCD, FSIGENCD, FKOJUN

SEIBANS = ("AA000001", "BB000002", "CC000003")
MACHINES = {"AA000001": ("MH-1001", "マシニングセンタ①"), "BB000002": ("SH-2002", "㈱髙田製旋盤")}
PARTS = (
    ("P001", "ブラケット①"),
    ("P002", "㈱山田製シャフト"),
    ("P003", "髙橋カバー"),
    ("P004", "ギア②"),
)
RESOURCES = ("R01", "R02", "R03")


def step_keys() -> list[Key]:
    """36 steps: every part of every 製番 passes R01 → R02 → R03 (工順 10, 20, 30)."""
    return [
        (seiban, part, resource, str((i + 1) * 10))
        for seiban in SEIBANS
        for part, _ in PARTS
        for i, resource in enumerate(RESOURCES)
    ]


STEPS = step_keys()
NAMES = dict(PARTS)


def line(
    key: Key,
    *,
    product_no: int = 1_000_000_001,
    name_suffix: str = "",
    hours: str = "1.5",
    progress: str = "",
) -> str:
    seiban, part, resource, kojun = key
    return schedule_line(
        product_no,
        seiban,
        part,
        int(kojun),
        resource=resource,
        name=NAMES[part] + name_suffix,
        hours=hours,
        progress=progress,
    )


def machine_lines(product_no: int = 1_000_000_001) -> list[str]:
    return [
        schedule_line(product_no, seiban, hincd, 1, resource="R00", name=name)
        for seiban, (hincd, name) in MACHINES.items()
    ]


def file_of(lines: Iterable[str]) -> str:
    return "\n".join([SCHEDULE_HEADER, *lines]) + "\n"


def ingest(harness: Harness, dashboard: CsvDashboard, content: str, *, kind: str) -> None:
    outcome = harness.ingest(dashboard, content, kind=kind)  # CP932 on disk
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    assert outcome.counts.failed == 0


def key_of(row: dict[str, Any]) -> Key:
    d = row["row_data"]
    return (d["FSEIBAN"], d["FHINCD"], d["FSIGENCD"], d["FKOJUN"])


def all_rows(harness: Harness, dashboard: CsvDashboard) -> dict[Key, dict[str, Any]]:
    with harness.read() as session:
        rows, cursor = queries.list_rows(
            session, dashboard, include_retired=True, include_machine_rows=True, limit=2000
        )
    assert cursor is None
    return {key_of(r): r for r in rows}


def operator_records(harness: Harness) -> dict[str, dict[uuid.UUID, tuple[Any, ...]]]:
    """Every operator-owned record, every column (values, who, when), by table and row id."""
    snapshot: dict[str, dict[uuid.UUID, tuple[Any, ...]]] = {}
    with harness.read() as session:
        for model in OPERATOR_TABLES:
            table = model.__table__
            records = session.execute(select(table)).all()
            snapshot[model.__tablename__] = {r.csv_dashboard_row_id: tuple(r) for r in records}
    return snapshot


def external(harness: Harness) -> dict[uuid.UUID, bool]:
    with harness.read() as session:
        return {
            rid: bool(done)
            for rid, done in session.execute(
                select(
                    ProductionScheduleExternalCompletion.csv_dashboard_row_id,
                    ProductionScheduleExternalCompletion.is_completed,
                )
            )
        }


class Board:
    """The schedule under test and what the operators put on it."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.dashboard = harness.dashboard()
        ingest(harness, self.dashboard, file_of(self.lines()), kind="official_ingestion")
        rows = all_rows(harness, self.dashboard)
        assert len(rows) == len(STEPS) + len(MACHINES)
        self.ids: dict[Key, uuid.UUID] = {k: uuid.UUID(r["id"]) for k, r in rows.items()}
        self.worker_completed: list[Key] = []
        self.expected_orders: dict[Key, int] = {}

    def lines(self, keys: Sequence[Key] = STEPS, **kwargs: Any) -> list[str]:
        product_no = kwargs.get("product_no", 1_000_000_001)
        return [*machine_lines(product_no), *(line(k, **kwargs) for k in keys)]

    def write(self, fn: Any, key: Key, *args: Any) -> dict[str, Any]:
        with self.harness.write() as session:
            result: dict[str, Any] = fn(session, self.ids[key], *args, by="operator-7")
            return result

    def enter_operator_data(self) -> None:
        # Completions on every 製番 and resource (including the last step of a part).
        self.worker_completed = [STEPS[i] for i in (0, 4, 8, 13, 17, 22, 27, 35)]
        for key in self.worker_completed:
            assert self.write(commands.set_completion, key, "complete")["completed"] is True
        notes = {
            STEPS[0]: "急ぎ①",
            STEPS[5]: "㈱山田さんへ連絡",
            STEPS[11]: "髙橋: 再検査",
            STEPS[30]: "x",
        }
        for key, note in notes.items():
            self.write(commands.set_note, key, note)
        for i, key in enumerate((STEPS[1], STEPS[4], STEPS[11], STEPS[26], STEPS[33])):
            self.write(commands.set_due_date, key, f"2026-03-{i + 10:02d}")
        for key, kind in zip(
            (STEPS[2], STEPS[6], STEPS[11], STEPS[34]),
            ("塗装", "カニゼン", "LSLH", "その他02"),
            strict=True,
        ):
            self.write(commands.set_processing_type, key, kind)
        # Machining order on R01 and R02, for steps nobody completed.
        r01 = [k for k in STEPS if k[2] == "R01" and k not in self.worker_completed][:3]
        r02 = [k for k in STEPS if k[2] == "R02" and k not in self.worker_completed][:2]
        for queue in (r01, r02):
            for number, key in enumerate(queue, start=1):
                self.write(commands.set_order, key, key[2], number)
                self.expected_orders[key] = number
        # Every table now holds something, or the checks below would prove nothing.
        records = operator_records(self.harness)
        assert all(records.values()), {t: len(r) for t, r in records.items()}

    def assert_intact(
        self, records: dict[str, dict[uuid.UUID, tuple[Any, ...]]], *, retired: Iterable[Key] = ()
    ) -> dict[Key, dict[str, Any]]:
        """Same records, same steps, same ids; worker completions still effective."""
        assert operator_records(self.harness) == records
        rows = all_rows(self.harness, self.dashboard)
        assert {k: uuid.UUID(r["id"]) for k, r in rows.items()} == self.ids
        retired = set(retired)
        for key, row in rows.items():
            assert row["is_active"] is (key not in retired), key
        for key in self.worker_completed:
            row = rows[key]
            assert row["completed"] is True and row["manual_completed"] is True, key
            assert row["row_data"]["progress"] == "完了", key
        for key, number in self.expected_orders.items():
            assert rows[key]["order"] == {"resource_cd": key[2], "order_number": number}, key
        with self.harness.read() as session:
            stored = session.scalars(select(CsvDashboardRow.row_data)).all()
        assert all("progress" not in d for d in stored)
        return rows


def test_operator_data_survives_every_kind_of_ingestion(harness: Harness) -> None:
    board = Board(harness)
    board.enter_operator_data()
    records = operator_records(harness)
    dashboard = board.dashboard

    # (a) A changed version: other names and hours for every step, same ProductNo.
    ingest(
        harness,
        dashboard,
        file_of(board.lines(name_suffix="（改）", hours="2.25")),
        kind="official_ingestion",
    )
    rows = board.assert_intact(records)
    assert rows[STEPS[0]]["row_data"]["FHINMEI"] == "ブラケット①（改）"
    assert rows[STEPS[0]]["row_data"]["FSIGENSHOYORYO"] == "2.25"
    assert rows[STEPS[0]]["note"] == "急ぎ①"

    # (b) The same rows in another order.
    shuffled = board.lines(name_suffix="（改）", hours="2.25")
    random.Random(20260219).shuffle(shuffled)
    ingest(harness, dashboard, file_of(shuffled), kind="official_ingestion")
    board.assert_intact(records)

    # (c) A partial snapshot: the steps it omits retire with their operator data attached,
    # and come back with it when a later snapshot lists them again.
    missing = [k for k in STEPS if k[0] == "BB000002" or k in (STEPS[0], STEPS[35])]
    present = [k for k in STEPS if k not in missing]
    ingest(harness, dashboard, file_of(board.lines(present)), kind="official_ingestion")
    rows = board.assert_intact(records, retired=missing)
    assert rows[STEPS[0]]["note"] == "急ぎ①" and rows[STEPS[0]]["completed"] is True
    with harness.read() as session:
        visible, _ = queries.list_rows(session, dashboard, limit=2000)
    assert {key_of(r) for r in visible} == set(present)
    ingest(harness, dashboard, file_of(board.lines()), kind="official_ingestion")
    board.assert_intact(records)
    with harness.read() as session:
        visible, _ = queries.list_rows(session, dashboard, limit=2000)
        noted, _ = queries.list_rows(session, dashboard, has_note=True)
    assert {key_of(r) for r in visible} == set(STEPS)
    assert {key_of(r) for r in noted} == {STEPS[0], STEPS[5], STEPS[11], STEPS[30]}

    # (d) A newer manufacturing order (higher ProductNo) for the same steps.
    newer = 1_000_000_002
    ingest(harness, dashboard, file_of(board.lines(product_no=newer)), kind="official_ingestion")
    rows = board.assert_intact(records)
    assert rows[STEPS[3]]["row_data"]["ProductNo"] == f"{newer:010d}"

    # (e) The source reports some steps done (a worker-completed one among them), then sends
    # the same steps with an empty progress column.
    reported = {STEPS[0], STEPS[1], STEPS[2]}
    with_progress = [
        line(k, product_no=newer, progress="完了" if k in reported else "") for k in STEPS
    ]
    ingest(
        harness,
        dashboard,
        file_of([*machine_lines(newer), *with_progress]),
        kind="official_ingestion",
    )
    rows = board.assert_intact(records)
    assert all(rows[k]["external_completed"] and rows[k]["completed"] for k in reported)
    assert rows[STEPS[1]]["manual_completed"] is False
    ingest(harness, dashboard, file_of(board.lines(product_no=newer)), kind="official_ingestion")
    rows = board.assert_intact(records)
    assert not any(rows[k]["external_completed"] for k in reported)
    assert rows[STEPS[0]]["completed"] is True  # the worker's mark
    assert rows[STEPS[1]]["completed"] is False and rows[STEPS[2]]["completed"] is False

    # (f) A delta (only some steps, changed) and an appearance supplement from the status
    # report, which also reports one step done.
    delta = [line(k, product_no=newer, hours="9.5") for k in STEPS[:10]]
    ingest(harness, dashboard, file_of(delta), kind="incremental_update")
    rows = board.assert_intact(records)
    assert rows[STEPS[0]]["row_data"]["FSIGENSHOYORYO"] == "9.5"
    assert rows[STEPS[20]]["row_data"]["FSIGENSHOYORYO"] == "1.5"

    status_lines = ["FSEIBAN,FHINCD,FSIGENCD,FKOJUN,status,検査"]
    for i, (seiban, part, resource, kojun) in enumerate(STEPS):
        code = "C" if i == 7 else ("X" if i == 0 else ("" if i % 2 else "W"))
        status_lines.append(f"{seiban},{part},{resource},{kojun},{code},検査{i}①")
    status_lines.append("ZZ999999,NOPE,R01,10,C,unknown step")
    ingest(harness, dashboard, "\n".join(status_lines) + "\n", kind="appearance_supplement")
    rows = board.assert_intact(records)
    assert rows[STEPS[7]]["external_completed"] is True and rows[STEPS[7]]["completed"] is True
    assert rows[STEPS[0]]["completed"] is True
    assert rows[STEPS[9]]["supplement_data"].get("検査") == "検査9①"
    assert rows[STEPS[9]]["row_data"]["FHINMEI"] == "ギア②"  # official columns untouched

    # Workers keep working on the same rows afterwards. STEPS[0] is reported done (X) by the
    # status report, so a worker's "incomplete" clears only their own mark.
    row = board.write(commands.set_completion, STEPS[0], "incomplete")
    assert row["manual_completed"] is False and row["completed"] is True
    assert row["note"] == "急ぎ①"
    row = board.write(commands.set_completion, STEPS[4], "incomplete")
    assert row["completed"] is False and row["due_date"] == "2026-03-11"


def test_progress_column_completes_externally_but_never_undoes_a_worker(harness: Harness) -> None:
    board = Board(harness)
    worker, upstream, both = STEPS[0], STEPS[1], STEPS[2]
    board.write(commands.set_completion, worker, "complete")
    board.write(commands.set_completion, both, "complete")

    done_upstream = [line(k, progress="完了" if k in (upstream, both) else "") for k in STEPS]
    ingest(harness, board.dashboard, file_of(done_upstream), kind="official_ingestion")
    rows = all_rows(harness, board.dashboard)
    flags = external(harness)
    assert {k for k in STEPS if flags.get(board.ids[k])} == {upstream, both}
    assert rows[upstream]["completed"] is True and rows[upstream]["manual_completed"] is False
    assert rows[upstream]["row_data"]["progress"] == "完了"
    assert rows[both]["manual_completed"] and rows[both]["external_completed"]

    # A later file with the progress column empty everywhere.
    ingest(harness, board.dashboard, file_of(board.lines()), kind="official_ingestion")
    rows = all_rows(harness, board.dashboard)
    assert not any(external(harness).values())
    assert rows[upstream]["completed"] is False and rows[upstream]["row_data"]["progress"] == ""
    assert rows[worker]["completed"] is True and rows[worker]["row_data"]["progress"] == "完了"
    assert rows[both]["completed"] is True and rows[both]["external_completed"] is False
    with harness.read() as session:
        summary = progress.progress_summary(session, board.dashboard)
    assert (summary["total"], summary["completed"]) == (len(STEPS), 2)


def test_a_file_without_a_progress_column_leaves_external_completion_alone(
    harness: Harness,
) -> None:
    board = Board(harness)
    upstream = STEPS[5]
    done = [line(k, progress="完了" if k == upstream else "") for k in STEPS]
    ingest(harness, board.dashboard, file_of(done), kind="official_ingestion")
    header = SCHEDULE_HEADER.replace(",progress", "")
    without = [",".join(v for i, v in enumerate(x.split(",")) if i != 8) for x in board.lines()]
    changed = [w.replace(",1.5,", ",3.0,") for w in without]
    ingest(
        harness, board.dashboard, "\n".join([header, *changed]) + "\n", kind="official_ingestion"
    )
    rows = all_rows(harness, board.dashboard)
    assert rows[upstream]["row_data"]["FSIGENSHOYORYO"] == "3.0"
    assert rows[upstream]["completed"] is True and rows[upstream]["external_completed"] is True
