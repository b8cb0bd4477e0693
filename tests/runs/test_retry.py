"""Re-runs (docs/contract.md §2.1, "Re-runs") and reading the ledger, through real ingestion
(the Harness)."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update

from csvboard.dashboards.models import CsvDashboard
from csvboard.errors import Conflict, CsvboardError, InvalidRequest, NotFound
from csvboard.feeds.start import start_upload_run
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionRun, IngestionRunSource
from csvboard.runs.queries import LEDGER_COLUMNS, list_items, list_runs, run_detail
from csvboard.runs.service import retry_run, sources_of
from csvboard.runs.vocabulary import RunStatus
from csvboard.storage import store_file
from support import SCHEDULE_HEADER, Harness, schedule_line

# A production-schedule export without its 製番 (FSEIBAN) column: the run fails HEADER_MISMATCH.
MISSING_SEIBAN = (
    "ProductNo,FHINCD,FHINMEI,FSIGENCD,FSIGENMEI,FSIGENSHOYORYO,FKOJUN\n"
    "0000000001,P001,部品,R01,資源R01,1.5,10\n"
    "0000000001,P002,部品,R01,資源R01,2.0,20\n"
)


def good_file(*steps: int, seiban: str = "ABCD1234") -> str:
    lines = [schedule_line(1, seiban, f"P{k:03d}", k * 10) for k in steps]
    return "\n".join([SCHEDULE_HEADER, *lines]) + "\n"


def partial_file() -> str:
    """Two valid rows and two rejected ones (ProductNo not 10 digits; FKOJUN not a number)."""
    return (
        "\n".join(
            [
                SCHEDULE_HEADER,
                schedule_line(1, "ABCD1234", "P001", 10),
                "12,ABCD1234,P002,部品,R01,資源R01,1.5,20,,",
                schedule_line(1, "ABCD1234", "P003", 30),
                "0000000001,ABCD1234,P004,部品,R01,資源R01,1.5,x,,",
            ]
        )
        + "\n"
    )


@pytest.fixture
def h(harness: Harness) -> Harness:
    """The shared ``harness`` (tests/conftest.py) under this module's short name."""
    return harness


@pytest.fixture
def dash(h: Harness) -> CsvDashboard:
    return h.dashboard()


def retry(h: Harness, run_id: uuid.UUID, by: str = "alice") -> uuid.UUID:
    with h.write() as session:
        return retry_run(session, run_id, requested_by=by).run_id


def refusal(h: Harness, run_id: uuid.UUID | str, by: str = "alice") -> CsvboardError:
    with pytest.raises(CsvboardError) as info, h.write() as session:
        retry_run(session, run_id, requested_by=by)
    return info.value


def run_of(h: Harness, run_id: uuid.UUID) -> IngestionRun:
    with h.read() as session:
        return session.get_one(IngestionRun, run_id)


def run_count(h: Harness) -> int:
    with h.read() as session:
        return session.scalar(select(func.count()).select_from(IngestionRun)) or 0


def failed_run(h: Harness, dash: CsvDashboard) -> uuid.UUID:
    outcome = h.ingest(dash, MISSING_SEIBAN)
    assert outcome.status is RunStatus.FAILED
    assert outcome.error_code == "HEADER_MISMATCH"
    return outcome.run_id


def start_run(h: Harness, run_id: uuid.UUID) -> None:
    """Claim a queued run without executing it (as a worker does first)."""
    with h.write() as session:
        lifecycle.transition(session, run_id, expected=RunStatus.QUEUED, to=RunStatus.RUNNING)


# --- re-running -----------------------------------------------------------------------------


def test_a_failed_run_is_rerun_with_the_same_sources(h: Harness, dash: CsvDashboard) -> None:
    path = h.write_file(MISSING_SEIBAN, file_name="schedule.csv")
    stored = store_file(h.data_dir, path)
    with h.write() as session:
        original_id = start_upload_run(
            session,
            dashboard=dash,
            stored=stored,
            run_kind="official_ingestion",
            requested_by="scheduler",
            mode="scheduled",
        ).run_id
    assert h.run(original_id).error_code == "HEADER_MISMATCH"
    path.unlink()  # the incoming file is gone; the stored copy remains

    rerun_id = retry(h, original_id, by="alice")

    original, rerun = run_of(h, original_id), run_of(h, rerun_id)
    assert rerun_id != original_id
    assert rerun.parent_run_id == original_id
    assert rerun.status == "queued"
    assert rerun.run_kind == original.run_kind == "official_ingestion"
    assert rerun.target_types == original.target_types == ["official"]
    assert original.mode == "scheduled" and rerun.mode == "manual"
    assert original.requested_by == "scheduler" and rerun.requested_by == "alice"
    assert rerun.trace_id and rerun.trace_id != original.trace_id
    assert rerun.started_at is None and rerun.finished_at is None
    with h.read() as session:
        before = sources_of(session, original_id)
        after = sources_of(session, rerun_id)
    assert len(after) == len(before) == 1
    for a, b in zip(before, after, strict=True):
        assert b.id != a.id
        assert (b.sha256, b.stored_path, b.file_name, b.size_bytes) == (
            a.sha256,
            a.stored_path,
            a.file_name,
            a.size_bytes,
        )
        assert (b.feed_id, b.role, b.csv_dashboard_id) == (a.feed_id, a.role, a.csv_dashboard_id)
    assert after[0].sha256 == stored.sha256

    # The re-run reads the stored bytes: the same failure, not FILE_MISSING.
    outcome = h.run(rerun_id)
    assert outcome.status is RunStatus.FAILED
    assert outcome.error_code == "HEADER_MISMATCH"


@pytest.mark.parametrize("how", ["partial", "cancelled", "all_rejected"])
def test_partial_cancelled_and_all_rejected_runs_can_be_rerun(
    h: Harness, dash: CsvDashboard, how: str
) -> None:
    if how == "partial":
        outcome = h.ingest(dash, partial_file())
        assert outcome.status is RunStatus.PARTIAL
        run_id = outcome.run_id
    elif how == "all_rejected":
        outcome = h.ingest(dash, SCHEDULE_HEADER + "\n12,ABCD1234,P002,部品,R01,資源R01,1.5,20,,\n")
        assert outcome.status is RunStatus.FAILED
        assert outcome.error_code == "ALL_ROWS_REJECTED"
        run_id = outcome.run_id
    else:
        run_id = h.queue(dash, h.write_file(good_file(1)))
        with h.write() as session:
            lifecycle.cancel(session, run_id)
        assert run_of(h, run_id).status == "cancelled"
    rerun_id = retry(h, run_id)
    assert run_of(h, rerun_id).parent_run_id == run_id
    rerun = h.run(rerun_id)
    if how == "partial":
        # Same bytes: the valid rows are now unchanged, the rejected ones rejected again.
        assert rerun.status is RunStatus.PARTIAL
        assert (rerun.counts.target, rerun.counts.success, rerun.counts.failed) == (4, 2, 2)
    elif how == "cancelled":
        assert rerun.status is RunStatus.SUCCEEDED
        assert rerun.counts.success == 1


def test_rerun_of_a_succeeded_run_is_refused(h: Harness, dash: CsvDashboard) -> None:
    outcome = h.ingest(dash, good_file(1, 2))
    assert outcome.status is RunStatus.SUCCEEDED
    n = run_count(h)
    err = refusal(h, outcome.run_id)
    assert isinstance(err, Conflict)
    assert (err.code, err.status) == ("RUN_NOT_RETRYABLE", 409)
    assert run_count(h) == n


def test_rerun_of_a_queued_or_running_run_is_refused(h: Harness, dash: CsvDashboard) -> None:
    queued = h.queue(dash, h.write_file(good_file(1)))
    n = run_count(h)
    assert refusal(h, queued).code == "RUN_NOT_RETRYABLE"
    start_run(h, queued)
    assert refusal(h, queued).code == "RUN_NOT_RETRYABLE"
    assert run_count(h) == n


def test_rerun_of_an_unknown_run_is_not_found(h: Harness, dash: CsvDashboard) -> None:
    for ref in (uuid.uuid4(), "not-a-uuid"):
        err = refusal(h, ref)
        assert isinstance(err, NotFound)
        assert (err.code, err.status) == ("RUN_NOT_FOUND", 404)


def test_a_second_rerun_while_the_first_is_active_is_refused(
    h: Harness, dash: CsvDashboard
) -> None:
    original = failed_run(h, dash)
    first = retry(h, original)
    n = run_count(h)
    err = refusal(h, original)
    assert (err.code, err.status) == ("RETRY_ALREADY_ACTIVE", 409)
    start_run(h, first)
    assert refusal(h, original).code == "RETRY_ALREADY_ACTIVE"
    assert run_count(h) == n
    # Once the first re-run has ended, the original may be re-run again.
    with h.write() as session:
        lifecycle.transition(
            session, first, expected=RunStatus.RUNNING, to=RunStatus.FAILED, error_code="X"
        )
    second = retry(h, original)
    assert run_of(h, second).parent_run_id == original


def test_at_most_three_reruns_descend_from_one_original(h: Harness, dash: CsvDashboard) -> None:
    original = failed_run(h, dash)
    r1 = retry(h, original)
    assert h.run(r1).status is RunStatus.FAILED
    r2 = retry(h, r1)  # a re-run of a re-run counts against the same original
    assert h.run(r2).status is RunStatus.FAILED
    r3 = retry(h, original)
    assert h.run(r3).status is RunStatus.FAILED
    assert run_of(h, r2).parent_run_id == r1
    assert run_of(h, r3).parent_run_id == original

    n = run_count(h)
    for ref in (original, r1, r2, r3):
        err = refusal(h, ref)
        assert (err.code, err.status) == ("RETRY_LIMIT_EXCEEDED", 409), ref
    assert run_count(h) == n
    with h.read() as session:
        assert run_detail(session, original)["retryable"] is False
        assert run_detail(session, r3)["retryable"] is False


def test_the_limit_is_per_original(h: Harness, dash: CsvDashboard) -> None:
    a = failed_run(h, dash)
    for _ in range(3):
        assert h.run(retry(h, a)).status is RunStatus.FAILED
    b = failed_run(h, dash)
    assert run_of(h, retry(h, b)).parent_run_id == b


def test_order_of_checks_not_retryable_then_active_then_limit(
    h: Harness, dash: CsvDashboard
) -> None:
    original = failed_run(h, dash)
    r1 = retry(h, original)
    assert h.run(r1).status is RunStatus.FAILED
    r2 = retry(h, r1)
    assert h.run(r2).status is RunStatus.FAILED
    r3 = retry(h, original)  # the third re-run, left queued: the lineage is at its limit
    # r3 itself: queued → not retryable comes before the limit.
    assert refusal(h, r3).code == "RUN_NOT_RETRYABLE"
    # original: has an active re-run → already active comes before the limit.
    assert refusal(h, original).code == "RETRY_ALREADY_ACTIVE"
    # r1 has no active child: the limit.
    assert refusal(h, r1).code == "RETRY_LIMIT_EXCEEDED"
    start_run(h, r3)
    assert refusal(h, r3).code == "RUN_NOT_RETRYABLE"
    assert refusal(h, original).code == "RETRY_ALREADY_ACTIVE"


def test_concurrent_reruns_of_one_run_create_exactly_one(h: Harness, dash: CsvDashboard) -> None:
    original = failed_run(h, dash)
    barrier = threading.Barrier(3)
    results: list[uuid.UUID | Exception] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            rid = retry(h, original)
            with lock:
                results.append(rid)
        except Exception as exc:
            with lock:
                results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    created = [r for r in results if isinstance(r, uuid.UUID)]
    refused = [r for r in results if isinstance(r, CsvboardError)]
    assert len(created) == 1, results
    assert [e.code for e in refused] == ["RETRY_ALREADY_ACTIVE"] * 2, results
    with h.read() as session:
        children = session.scalars(
            select(IngestionRun.run_id).where(IngestionRun.parent_run_id == original)
        ).all()
    assert children == created


# --- run_detail -----------------------------------------------------------------------------


def test_run_detail_of_a_failed_run(h: Harness, dash: CsvDashboard) -> None:
    original = failed_run(h, dash)
    with h.read() as session:
        doc = run_detail(session, original)
    assert set(LEDGER_COLUMNS) <= set(doc)
    assert doc["run_id"] == str(original)
    assert doc["status"] == "failed"
    assert doc["dashboard"] == dash.slug
    assert doc["retryable"] is True
    assert doc["children"] == []
    assert doc["error_summary"].startswith("HEADER_MISMATCH: ")
    assert "FSEIBAN" in doc["error_summary"]  # names the missing column
    assert doc["finished_at"] is not None and doc["started_at"] is not None
    assert datetime.fromisoformat(doc["finished_at"]) >= datetime.fromisoformat(doc["started_at"])
    (source,) = doc["sources"]
    with h.read() as session:
        stored = sources_of(session, original)[0]
    assert source["sha256"] == stored.sha256 and len(source["sha256"]) == 64
    assert source["file_name"] == stored.file_name
    assert source["role"] == "official"
    assert source["size_bytes"] == len(MISSING_SEIBAN.encode("cp932"))
    assert source["detected_encoding"] == "cp932"
    json.dumps(doc)  # JSON-ready

    rerun = retry(h, original)
    with h.read() as session:
        doc = run_detail(session, original)
        child_doc = run_detail(session, rerun)
    assert doc["children"] == [{"run_id": str(rerun), "status": "queued"}]
    assert doc["retryable"] is False  # its re-run is active
    assert child_doc["parent_run_id"] == str(original)
    assert child_doc["error_summary"] is None
    assert child_doc["retryable"] is False  # queued
    h.run(rerun)
    with h.read() as session:
        doc = run_detail(session, original)
    assert doc["children"] == [{"run_id": str(rerun), "status": "failed"}]
    assert doc["retryable"] is True


def test_run_detail_of_a_succeeded_run(h: Harness, dash: CsvDashboard) -> None:
    outcome = h.ingest(dash, good_file(1, 2, 3))
    with h.read() as session:
        doc = run_detail(session, outcome.run_id)
    assert doc["status"] == "succeeded"
    assert doc["retryable"] is False
    assert doc["error_summary"] is None
    assert doc["children"] == []
    assert (doc["target_count"], doc["success_count"], doc["failed_count"]) == (3, 3, 0)
    assert (doc["processed_count"], doc["unprocessed_count"]) == (3, 0)
    assert doc["requested_by"] == "tester"


# --- list_runs --------------------------------------------------------------------------------


def _queue_many(h: Harness, dash: CsvDashboard, other: CsvDashboard) -> list[uuid.UUID]:
    """Seven runs, oldest first, of several kinds, modes and dashboards."""
    created: list[uuid.UUID] = []
    specs = [
        (dash, "incremental_update", "manual"),
        (dash, "official_ingestion", "scheduled"),
        (other, "incremental_update", "manual"),
        (dash, "incremental_update", "scheduled"),
        (other, "official_ingestion", "manual"),
        (dash, "incremental_update", "manual"),
        (dash, "official_ingestion", "manual"),
    ]
    for i, (board, kind, mode) in enumerate(specs):
        stored = store_file(h.data_dir, h.write_file(good_file(i + 1)))
        with h.write() as session:
            run = start_upload_run(
                session,
                dashboard=board,
                stored=stored,
                run_kind=kind,
                requested_by="tester",
                mode=mode,
            )
            created.append(run.run_id)
    return created


def _all_pages(h: Harness, limit: int, **filters: Any) -> list[list[uuid.UUID]]:
    pages: list[list[uuid.UUID]] = []
    cursor: str | None = None
    while True:
        with h.read() as session:
            runs, cursor = list_runs(session, cursor=cursor, limit=limit, **filters)
        pages.append([r.run_id for r in runs])
        if cursor is None:
            return pages
        assert len(pages) < 20, "paging never ends"


def test_list_runs_newest_first_with_cursor_paging(h: Harness, dash: CsvDashboard) -> None:
    other = h.dashboard("other-board")
    created = _queue_many(h, dash, other)
    pages = _all_pages(h, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [rid for page in pages for rid in page]
    assert flat == list(reversed(created))
    assert len(set(flat)) == 7
    with h.read() as session:
        runs, cursor = list_runs(session, limit=7)
        assert cursor is None and [r.run_id for r in runs] == list(reversed(created))
        runs, cursor = list_runs(session, limit=6)
        assert cursor is not None and len(runs) == 6


def test_list_runs_paging_is_stable_while_runs_are_added(h: Harness, dash: CsvDashboard) -> None:
    other = h.dashboard("other-board")
    created = _queue_many(h, dash, other)
    with h.read() as session:
        first, cursor = list_runs(session, limit=3)
    newer = h.queue(dash, h.write_file(good_file(99)))
    seen = [r.run_id for r in first]
    while cursor is not None:
        with h.read() as session:
            page, cursor = list_runs(session, limit=3, cursor=cursor)
        seen.extend(r.run_id for r in page)
    assert seen == list(reversed(created))
    assert newer not in seen


def test_list_runs_pages_through_equal_creation_times(h: Harness, dash: CsvDashboard) -> None:
    other = h.dashboard("other-board")
    created = _queue_many(h, dash, other)
    same = datetime(2026, 2, 19, 9, 0, 0, 123456, tzinfo=UTC)
    with h.write() as session:
        session.execute(update(IngestionRun).values(created_at=same))
    pages = _all_pages(h, 2)
    flat = [rid for page in pages for rid in page]
    assert sorted(flat) == sorted(created)
    assert len(flat) == len(set(flat)) == 7
    # Ties go by run_id, newest-first order being descending.
    assert flat == sorted(created, reverse=True, key=lambda u: str(u))


def test_list_runs_filters(h: Harness, dash: CsvDashboard) -> None:
    other = h.dashboard("other-board")
    created = _queue_many(h, dash, other)
    h.run(created[0])  # succeeded
    with h.write() as session:
        lifecycle.cancel(session, created[3])

    def ids(**filters: Any) -> list[uuid.UUID]:
        return [rid for page in _all_pages(h, 2, **filters) for rid in page]

    newest_first = list(reversed(created))
    assert ids(status="succeeded") == [created[0]]
    assert ids(status="cancelled") == [created[3]]
    assert ids(status="queued") == [r for r in newest_first if r not in (created[0], created[3])]
    assert ids(run_kind="official_ingestion") == [created[6], created[4], created[1]]
    assert ids(mode="scheduled") == [created[3], created[1]]
    assert ids(dashboard_id=other.id) == [created[4], created[2]]
    assert ids(dashboard_id=dash.id, run_kind="incremental_update", mode="manual") == [
        created[5],
        created[0],
    ]
    assert ids(status="failed") == []


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!not-a-cursor!!!",
        _b64({"created": "2026-01-01"}),
        _b64(["yesterday", "6f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6"]),
        _b64(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        _b64(["2026-01-01T00:00:00+00:00"]),
        _b64([1, 2]),
        base64.urlsafe_b64encode(b"\xff\xfe[").decode(),
    ],
    ids=[
        "not-base64",
        "not-a-list",
        "bad-time",
        "bad-uuid",
        "one-value",
        "numbers",
        "not-utf8",
    ],
)
def test_list_runs_refuses_a_bad_cursor(h: Harness, dash: CsvDashboard, cursor: str) -> None:
    with pytest.raises(InvalidRequest) as info, h.read() as session:
        list_runs(session, cursor=cursor)
    assert (info.value.code, info.value.status) == ("INVALID_CURSOR", 400)


@pytest.mark.parametrize("limit", [0, -1, 201, 10_000])
def test_list_runs_and_items_refuse_a_bad_limit(h: Harness, dash: CsvDashboard, limit: int) -> None:
    with pytest.raises(InvalidRequest) as info, h.read() as session:
        list_runs(session, limit=limit)
    assert (info.value.code, info.value.status) == ("INVALID_LIMIT", 400)
    with pytest.raises(InvalidRequest) as info, h.read() as session:
        list_items(session, uuid.uuid4(), limit=limit)
    assert info.value.code == "INVALID_LIMIT"


def test_list_runs_accepts_the_limit_bounds(h: Harness, dash: CsvDashboard) -> None:
    h.queue(dash, h.write_file(good_file(1)))
    h.queue(dash, h.write_file(good_file(2)))
    with h.read() as session:
        one, cursor = list_runs(session, limit=1)
        assert len(one) == 1 and cursor is not None
        many, cursor = list_runs(session, limit=200)
        assert len(many) == 2 and cursor is None


# --- list_items -------------------------------------------------------------------------------


def _mixed_file() -> str:
    """Five new rows, three rejected ones, interleaved (lines 2..9)."""
    return (
        "\n".join(
            [
                SCHEDULE_HEADER,
                schedule_line(1, "ABCD1234", "P001", 10),  # 2
                "12,ABCD1234,P002,部品,R01,資源R01,1.5,20,,",  # 3 PATTERN
                schedule_line(1, "ABCD1234", "P003", 30),  # 4
                schedule_line(1, "ABCD1234", "P004", 40),  # 5
                "0000000001,ABCD1234,P005,部品,R01,資源R01,1.5,x,,",  # 6 TYPE
                schedule_line(1, "ABCD1234", "P006", 60),  # 7
                "0000000001,ABCD1234,P007,部品,R01",  # 8 ROW_SHAPE
                schedule_line(1, "ABCD1234", "P008", 80),  # 9
            ]
        )
        + "\n"
    )


def test_list_items_pages_and_filters(h: Harness, dash: CsvDashboard) -> None:
    outcome = h.ingest(dash, _mixed_file())
    assert outcome.status is RunStatus.PARTIAL
    assert (outcome.counts.target, outcome.counts.success, outcome.counts.failed) == (8, 5, 3)

    seen: list[int] = []
    statuses: dict[int, tuple[str, str | None]] = {}
    cursor: str | None = None
    pages = 0
    while True:
        with h.read() as session:
            items, cursor = list_items(session, outcome.run_id, limit=3, cursor=cursor)
        pages += 1
        assert len(items) <= 3
        for item in items:
            assert item.line_number is not None
            seen.append(item.line_number)
            statuses[item.line_number] = (item.status, item.update_type)
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert len(seen) == len(set(seen))
    for line in (2, 4, 5, 7, 9):
        assert statuses[line] == ("succeeded", "new"), line
    for line in (3, 6, 8):
        assert statuses[line][0] == "failed", line

    with h.read() as session:
        failed, cursor = list_items(session, outcome.run_id, status="failed", limit=2)
        assert cursor is not None
        rest, cursor2 = list_items(session, outcome.run_id, status="failed", cursor=cursor)
        assert cursor2 is None
        excluded, _ = list_items(session, outcome.run_id, status="excluded")
    failed_items = [*failed, *rest]
    assert [i.line_number for i in failed_items] == [3, 6, 8]
    assert all(i.status == "failed" and i.reason_code for i in failed_items)
    assert [i.reason_code for i in failed_items][2] == "ROW_SHAPE"
    assert excluded == []


def test_unchanged_rows_are_counted_not_itemised(h: Harness, dash: CsvDashboard) -> None:
    h.ingest(dash, _mixed_file())
    again = h.ingest(dash, _mixed_file())
    assert again.status is RunStatus.PARTIAL
    assert again.counts.success == 5
    with h.read() as session:
        items, _ = list_items(session, again.run_id)
    assert sorted(i.line_number or 0 for i in items) == [3, 6, 8]


def test_list_items_refuses_bad_status_and_cursor(h: Harness, dash: CsvDashboard) -> None:
    outcome = h.ingest(dash, _mixed_file())
    with pytest.raises(InvalidRequest) as info, h.read() as session:
        list_items(session, outcome.run_id, status="bogus")
    assert info.value.code == "INVALID_STATUS"
    run_cursor = _b64(["2026-01-01T00:00:00+00:00", str(uuid.uuid4())])
    for cursor in (run_cursor, "%%%", _b64(["7"]), _b64({"id": 7})):
        with pytest.raises(InvalidRequest) as info, h.read() as session:
            list_items(session, outcome.run_id, cursor=cursor)
        assert info.value.code == "INVALID_CURSOR", cursor


def test_list_items_of_a_run_with_none(h: Harness, dash: CsvDashboard) -> None:
    run_id = failed_run(h, dash)  # failed before any row was read
    with h.read() as session:
        items, cursor = list_items(session, run_id)
        n_sources = session.scalar(
            select(func.count())
            .select_from(IngestionRunSource)
            .where(IngestionRunSource.run_id == run_id)
        )
    assert items == [] and cursor is None
    assert n_sources == 1


def test_a_rerun_copies_every_source_in_order(h: Harness, dash: CsvDashboard) -> None:
    """Official and appearance sources, target_types of both: all copied, same bytes, same order."""
    from csvboard.dashboards.service import upload_feed
    from csvboard.runs.service import NewSource, create_run

    official = store_file(h.data_dir, h.write_file(good_file(1, 2), file_name="official.csv"))
    status = store_file(
        h.data_dir,
        h.write_file(
            "FSEIBAN,FHINCD,FSIGENCD,FKOJUN,status\nABCD1234,P001,R01,10,C\n",
            file_name="status.csv",
        ),
    )
    with h.write() as session:
        run = create_run(
            session,
            dashboard=dash,
            run_kind="official_ingestion",
            target_types=["official", "appearance"],
            sources=[
                NewSource(feed=upload_feed(session, dash.id, "official"), stored=official),
                NewSource(feed=upload_feed(session, dash.id, "appearance"), stored=status),
            ],
            requested_by="planner",
        )
        original = run.run_id
    start_run(h, original)
    with h.write() as session:
        lifecycle.transition(
            session,
            original,
            expected=RunStatus.RUNNING,
            to=RunStatus.FAILED,
            error_code="DATABASE_ERROR",
            message="connection lost",
        )
    rerun_id = retry(h, original, by="x" * 100)
    rerun = run_of(h, rerun_id)
    assert rerun.target_types == ["official", "appearance"]
    assert rerun.run_kind == "official_ingestion"
    assert rerun.requested_by == "x" * 64  # varchar(64)
    with h.read() as session:
        before = [
            (s.role, s.sha256, s.stored_path, s.position) for s in sources_of(session, original)
        ]
        after = [
            (s.role, s.sha256, s.stored_path, s.position) for s in sources_of(session, rerun_id)
        ]
    assert after == before
    assert [b[1] for b in before] == [official.sha256, status.sha256]
    with h.read() as session:
        assert run_detail(session, original)["error_summary"] == "DATABASE_ERROR: connection lost"


def test_a_run_cancelled_while_running_commits_nothing_and_can_be_rerun(
    h: Harness, dash: CsvDashboard
) -> None:
    from csvboard.dashboards.models import CsvDashboardRow
    from csvboard.ingest.runner import execute_run
    from csvboard.runs.lifecycle import RunCounts

    run_id = h.queue(dash, h.write_file(good_file(1, 2, 3)))
    answers: list[RunStatus] = []

    def cancel_midway(_counts: RunCounts) -> None:
        if not answers:
            with h.write() as session:
                answers.append(lifecycle.cancel(session, run_id, by="admin"))

    outcome = execute_run(
        h.engine, run_id, settings=h.settings, worker_id="test", on_progress=cancel_midway
    )
    assert answers == [RunStatus.RUNNING]  # asked while running
    assert outcome.status is RunStatus.CANCELLED
    with h.read() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(CsvDashboardRow)
            .where(CsvDashboardRow.csv_dashboard_id == dash.id)
        )
        doc = run_detail(session, run_id)
    assert rows == 0
    assert doc["status"] == "cancelled"
    assert doc["success_count"] == 0
    assert doc["retryable"] is True
    rerun = retry(h, run_id)
    assert h.run(rerun).status is RunStatus.SUCCEEDED
