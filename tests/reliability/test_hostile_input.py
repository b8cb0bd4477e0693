"""Hostile input files, on top of the 38-file malformed corpus of
``tests/ingest/corpus.py`` (ingested for real by ``tests/ingest/test_corpus_through_database.py``).

Added here (10 files, 48 in total, plus Hypothesis-generated ones): a zip bomb named .csv; a
50 MB line without a newline (1 GB with ``CSVBOARD_SOAK=1``) as the header and as a data
row, ingested by ``csvboard ingest`` in a subprocess whose address space is capped at 1.5 GB;
100,000 header columns; invalid bytes in the middle of a CP932 file; duplicate header names;
keys differing only by full-width/half-width form or trailing spaces; SQL and script text in
cells; bytes Python's CP932 codec maps to private-use characters. Every run ends
``succeeded|partial|failed`` with consistent counts; the dashboard holds valid rows only.
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import subprocess
import time
import unicodedata
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.ingest.ledger import RunOutcome
from csvboard.runs.models import IngestionRun
from csvboard.runs.queries import error_summary
from reliability.common import report, size
from support import SCHEDULE_HEADER, Harness, csvboard_command, schedule_line

LONG_LINE_BYTES = size(50 * 2**20, 2**30)
ADDRESS_SPACE_LIMIT = 1536 * 2**20
HYPOTHESIS_EXAMPLES = size(40, 400)


@pytest.fixture
def h(harness: Harness) -> Harness:
    """The shared ``harness`` (tests/conftest.py) under this module's short name."""
    return harness


def ledger(h: Harness, run_id: uuid.UUID) -> dict[str, Any]:
    with h.read() as session:
        run = session.get_one(IngestionRun, run_id, populate_existing=True)
        doc = {
            c: getattr(run, c)
            for c in (
                "status",
                "target_count",
                "success_count",
                "failed_count",
                "processed_count",
                "unprocessed_count",
            )
        }
        doc["error_summary"] = error_summary(session, run_id)
    return doc


def stored_rows(h: Harness, board: CsvDashboard) -> list[dict[str, Any]]:
    with h.read() as session:
        return [
            r.row_data
            for r in session.scalars(
                select(CsvDashboardRow).where(CsvDashboardRow.csv_dashboard_id == board.id)
            )
        ]


def check_consistent(h: Harness, outcome: RunOutcome) -> dict[str, Any]:
    doc = ledger(h, outcome.run_id)
    assert doc["status"] in ("succeeded", "partial", "failed"), doc
    assert doc["processed_count"] == doc["success_count"] + doc["failed_count"], doc
    assert doc["unprocessed_count"] == doc["target_count"] - doc["processed_count"], doc
    if doc["status"] == "failed":
        assert doc["success_count"] == 0 and doc["error_summary"], doc
    if doc["status"] == "succeeded":
        assert doc["failed_count"] == 0, doc
    if doc["status"] == "partial":
        assert doc["failed_count"] > 0 and doc["success_count"] > 0, doc
    return doc


def valid_row(row: dict[str, Any]) -> bool:
    return bool(
        re.fullmatch(r"[0-9]{10}", row["ProductNo"])
        and re.fullmatch(r"[A-Za-z0-9*]{8}", row["FSEIBAN"])
        and row["FHINCD"]
        and row["FSIGENCD"]
    )


# -- named hostile files -------------------------------------------------------------------


def test_zip_bomb_named_csv_is_refused_quickly(h: Harness) -> None:
    board = h.dashboard()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("schedule.csv", b"0" * (200 * 2**20))  # 200 MB of zeros, ~200 KB zipped
    started = time.monotonic()
    outcome = h.ingest(board, buf.getvalue(), file_name="schedule.csv")
    elapsed = time.monotonic() - started
    doc = check_consistent(h, outcome)
    assert doc["status"] == "failed", doc
    assert doc["error_summary"].split(":")[0] in ("ENCODING_UNSUPPORTED", "HEADER_MISMATCH"), doc
    assert stored_rows(h, board) == []
    assert elapsed < 10, elapsed


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


@pytest.mark.parametrize("where", ["header", "data_row"])
def test_one_huge_line_without_newline_under_a_memory_cap(
    sqlite_url: str, tmp_path: Path, where: str
) -> None:
    h = Harness(sqlite_url, tmp_path / "data")
    try:
        board = h.dashboard()
        path = tmp_path / "long.csv"
        with path.open("wb") as fh:
            if where == "data_row":
                fh.write(SCHEDULE_HEADER.encode("cp932") + b"\r\n")
                fh.write(b"0000000001,AB123456,P1,")
            chunk = b"A" * 2**20
            written = 0
            while written < LONG_LINE_BYTES:
                fh.write(chunk)
                written += len(chunk)
        env = dict(os.environ, CSVBOARD_DATABASE_URL=sqlite_url, CSVBOARD_DATA_DIR=str(h.data_dir))
        started = time.monotonic()
        result = subprocess.run(
            [*csvboard_command(), "ingest", str(path), "--dashboard", board.slug, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=_limit_address_space,
        )
        elapsed = time.monotonic() - started
        assert "MemoryError" not in result.stderr, result.stderr[-2000:]
        assert result.returncode in (0, 1), (result.returncode, result.stderr[-2000:])
        doc = json.loads(result.stdout)
        assert doc["status"] in ("failed", "partial"), doc
        if where == "header":
            assert doc["status"] == "failed" and doc["error_summary"], doc
        else:
            assert doc["failed_count"] >= 1 or doc["status"] == "failed", doc
        assert stored_rows(h, board) == []
        report(
            f"hostile: {LONG_LINE_BYTES >> 20} MB single line as {where} under RLIMIT_AS "
            f"1.5 GB → {doc['status']} {doc.get('error_summary')!r:.80} in {elapsed:.1f} s"
        )
    finally:
        h.close()


def test_one_hundred_thousand_header_columns(h: Harness) -> None:
    board = h.dashboard()
    extra = ",".join(f"c{i}" for i in range(100_000))
    data = schedule_line(1, "AB123456", "P1", 10) + "," * 100_000
    outcome = h.ingest(board, f"{SCHEDULE_HEADER},{extra}\n{data}\n")
    doc = check_consistent(h, outcome)
    rows = stored_rows(h, board)
    assert len(rows) <= 1 and all(valid_row(r) for r in rows), doc


@pytest.mark.parametrize(
    "bad", [b"\x81\x20", b"\x81\x7f"], ids=["stray-0x81-space", "stray-0x81-del"]
)
def test_invalid_bytes_in_the_middle_of_a_cp932_file(h: Harness, bad: bytes) -> None:
    board = h.dashboard()
    lines = [schedule_line(i, "AB123456", f"品{i}", 10) for i in range(200)]
    raw = "\n".join([SCHEDULE_HEADER, *lines]).encode("cp932")
    middle = raw.index(b"\n", len(raw) // 2) - 3  # inside a cell, not at a line break
    outcome = h.ingest(board, raw[:middle] + bad + raw[middle:] + b"\n")
    doc = check_consistent(h, outcome)
    assert doc["status"] == "failed", doc
    assert doc["error_summary"].startswith("ENCODING_UNSUPPORTED"), doc
    assert stored_rows(h, board) == []


def test_bytes_pythons_cp932_maps_to_private_use_are_not_a_silent_success(h: Harness) -> None:
    """0x80, 0xA0 and 0xFD–0xFF are undefined in CP932 but Python's codec decodes them (to
    U+0080 and private-use characters), so such a file is not ENCODING_UNSUPPORTED; the
    damaged row must still end rejected or stored with its bytes shown, never crash."""
    board = h.dashboard()
    lines = [schedule_line(i, "AB123456", f"品{i}", 10) for i in range(20)]
    raw = "\n".join([SCHEDULE_HEADER, *lines]).encode("cp932")
    middle = len(raw) // 2
    outcome = h.ingest(board, raw[:middle] + b"\xff\xfe\x80" + raw[middle:] + b"\n")
    doc = check_consistent(h, outcome)
    assert doc["status"] in ("partial", "failed", "succeeded"), doc
    assert all(valid_row(r) for r in stored_rows(h, board))


def test_duplicate_header_names(h: Harness) -> None:
    board = h.dashboard()
    header = SCHEDULE_HEADER + ",FSEIBAN,FHINCD"
    line = schedule_line(1, "AB123456", "P1", 10) + ",ZZ999999,Q9"
    outcome = h.ingest(board, f"{header}\n{line}\n")
    check_consistent(h, outcome)
    for row in stored_rows(h, board):  # if accepted, the named columns are the first ones
        assert row["FSEIBAN"] == "AB123456" and row["FHINCD"] == "P1", row


def test_keys_differing_by_width_or_trailing_spaces_are_one_key(h: Harness) -> None:
    board = h.dashboard()
    lines = [
        schedule_line(1, "AB123456", "P1", 10, hours="1"),
        schedule_line(2, "ＡＢ１２３４５６", "Ｐ１", 10, hours="2"),
        schedule_line(3, "AB123456 ", "P1  ", 10, hours="3"),
    ]
    outcome = h.ingest(board, "\n".join([SCHEDULE_HEADER, *lines]) + "\n")
    doc = check_consistent(h, outcome)
    with h.read() as session:
        keys = list(
            session.scalars(
                select(CsvDashboardRow.row_key).where(CsvDashboardRow.csv_dashboard_id == board.id)
            )
        )
    assert len(keys) == 1, (keys, doc)
    assert doc["success_count"] == 3, doc  # one applied, two excluded as duplicates


def test_sql_and_script_text_stored_verbatim(h: Harness) -> None:
    board = h.dashboard()
    sql = "'); DROP TABLE csv_dashboard_rows;--"
    script = "<script>alert(1)</script>"
    body = (
        "\n".join(
            [
                SCHEDULE_HEADER,
                schedule_line(1, "AB123456", "P1", 10, name=f'"{sql}"'),
                schedule_line(2, "AB123456", "P2", 20, name=script),
            ]
        )
        + "\n"
    )
    outcome = h.ingest(board, body)
    assert check_consistent(h, outcome)["status"] == "succeeded"
    names = sorted(r["FHINMEI"] for r in stored_rows(h, board))
    assert names == sorted([sql, script])
    with h.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM csv_dashboard_rows")).scalar_one() == 2


# -- generated files ------------------------------------------------------------------------

HOSTILE_TEXT = st.text(
    alphabet=st.sampled_from(list("\",\n\r\x00 ;'\\AZaz09*製番品名①㈱髙ｱＡ\t")), max_size=12
)
SEIBAN = st.one_of(st.from_regex(r"[A-Z0-9]{8}", fullmatch=True), HOSTILE_TEXT)
PRODUCT = st.one_of(st.from_regex(r"[0-9]{10}", fullmatch=True), HOSTILE_TEXT)
NUMBER = st.one_of(st.integers(0, 999).map(str), HOSTILE_TEXT)
ROW = st.tuples(
    PRODUCT, SEIBAN, HOSTILE_TEXT, HOSTILE_TEXT, HOSTILE_TEXT, HOSTILE_TEXT, NUMBER, NUMBER
)


def _cell(value: str) -> str:
    if any(c in value for c in ',"\n\r') and value.count('"') % 2 == 0:
        return '"' + value.replace('"', '""') + '"'
    return value  # sometimes left unquoted on purpose: broken quoting is part of the test


@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(ROW, max_size=15),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp932", "utf-16"]),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_generated_files_end_cleanly_with_consistent_counts(
    sqlite_url: str, tmp_path: Path, rows: list[tuple[str, ...]], encoding: str, newline: str
) -> None:
    h = Harness(sqlite_url, tmp_path / f"data-{uuid.uuid4().hex[:6]}")
    try:
        board = h.dashboard(f"gen-{uuid.uuid4().hex[:8]}")
        lines = [SCHEDULE_HEADER] + [",".join(_cell(c) for c in r) + ",," for r in rows]
        content = newline.join(lines) + newline
        outcome = h.ingest(board, content.encode(encoding, errors="replace"))
        doc = check_consistent(h, outcome)
        sent = {
            (
                unicodedata.normalize("NFKC", r[0]).strip(),
                unicodedata.normalize("NFKC", r[1]).strip(),
            )
            for r in rows
        }
        for row in stored_rows(h, board):
            assert valid_row(row), (row, doc)
            assert (row["ProductNo"], row["FSEIBAN"]) in sent, (row, doc)
        if doc["status"] == "failed":
            assert stored_rows(h, board) == []
    finally:
        h.close()
