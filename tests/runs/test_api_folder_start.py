"""A JSON start naming a folder feed takes its file with the scheduler's claim
(csvboard.feeds.folder_runs.RequestClaims), on SQLite and PostgreSQL: only regular,
non-dot ``*.csv`` files; claimed by an atomic rename, so neither a second request nor the
scheduler takes the file again; the file then follows the scheduler's life cycle.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.db.engine import make_engine
from csvboard.feeds.folder import FolderLayout
from csvboard.feeds.folder_runs import RequestClaims
from csvboard.runs.vocabulary import RunStatus
from csvboard.worker.scheduler import Scheduler
from support import SCHEDULE_HEADER, Api, Harness, schedule_line

RUNS = "/api/v1/ops/ingestion/runs"
CONTENT = (
    "\r\n".join([SCHEDULE_HEADER, schedule_line(1000000001, "A0000001", "P-1", 10)]) + "\r\n"
).encode("cp932")
START = {"dashboard": "production-schedule", "run_kind": "official_ingestion", "feeds": ["drop"]}


@pytest.fixture
def folder(api: Api, tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    harness = api.harness
    harness.dashboard()
    with harness.write() as session:
        board = session.scalars(select(CsvDashboard)).one()
        now = datetime.now(UTC)
        session.add(
            CsvDashboardFeed(
                id=uuid.uuid4(), csv_dashboard_id=board.id, name="drop", role="official",
                source="folder", location=str(path), enabled=True, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    return path


@pytest.fixture
def scheduler(api: Api) -> Iterator[Scheduler]:
    engine = make_engine(api.harness.url)
    s = Scheduler(engine, api.settings, scheduler_id="test", settle_seconds=0.0)
    yield s
    s.close()
    engine.dispose()


def write(path: Path, content: bytes, *, age: float = 0.0) -> Path:
    path.write_bytes(content)
    if age:
        past = time.time() - age
        os.utime(path, (past, past))
    return path


def the_feed(harness: Harness) -> CsvDashboardFeed:
    with harness.read() as session:
        return session.scalars(
            select(CsvDashboardFeed).where(CsvDashboardFeed.name == "drop")
        ).one()


def test_only_a_regular_csv_file_is_taken_and_never_again(
    api: Api, folder: Path, scheduler: Scheduler
) -> None:
    write(folder / ".hidden.csv", CONTENT, age=60)  # a copy tool's temporary
    write(folder / "notes.txt", CONTENT, age=60)
    (folder / "dir.csv").mkdir()

    refused = api.post(RUNS, json=START, headers={"Idempotency-Key": "none"})
    assert refused.status_code == 409 and refused.json()["code"] == "NO_FILE_WAITING"

    write(folder / "export.csv", CONTENT, age=10)
    accepted = api.post(RUNS, json=START, headers={"Idempotency-Key": "one"})
    assert accepted.status_code == 202, accepted.text
    run_id = uuid.UUID(accepted.json()["run_id"])
    layout = FolderLayout(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".csvboard", ".hidden.csv", "dir.csv", "notes.txt",
    ]  # fmt: skip
    assert [p.name for p in layout.processing.iterdir()] == [f"{run_id}__export.csv"]
    detail = api.get(f"{RUNS}/{run_id}").json()
    assert detail["sources"][0]["file_name"] == "export.csv"

    # Claimed: a second request finds nothing, and the scheduler takes nothing while it runs.
    again = api.post(RUNS, json=START, headers={"Idempotency-Key": "two"})
    assert again.status_code == 409 and again.json()["code"] == "NO_FILE_WAITING"
    report = scheduler.tick()
    assert report.run_ids == [] and report.unknown == [] and report.returned == []
    assert [p.name for p in layout.processing.iterdir()] == [f"{run_id}__export.csv"]

    # Once the run ends the scheduler archives the file, as it does its own.
    assert api.harness.run(run_id).status == RunStatus.SUCCEEDED
    settled = scheduler.tick()
    assert settled.run_ids == []
    assert [p.name for p in settled.archived] == [f"{run_id}__export.csv"]
    assert (folder / ".hidden.csv").exists()


def test_an_unsettled_file_is_left_and_a_rolled_back_claim_put_back(api: Api, folder: Path) -> None:
    harness = api.harness
    feed = the_feed(harness)
    write(folder / "half.csv", CONTENT[:20])  # still being written
    with RequestClaims(harness.engine, harness.data_dir, settle_seconds=2.0) as claims:
        assert claims.take(feed) is None
    assert (folder / "half.csv").exists()

    # Claimed, named after a run, then the transaction fails: the file goes back as it was.
    with (
        pytest.raises(RuntimeError),
        RequestClaims(harness.engine, harness.data_dir, settle_seconds=0.0) as claims,
        harness.write(),
    ):
        assert claims.take(feed) is not None
        claims.name_after(uuid.uuid4())
        assert not (folder / "half.csv").exists()  # claimed ...
        raise RuntimeError("the request fails before its run commits")
    assert (folder / "half.csv").read_bytes() == CONTENT[:20]  # ... and put back
    assert list(FolderLayout(folder).processing.iterdir()) == []

    # Claimed but no run was created (nothing failed, nothing named): not taken after all.
    with RequestClaims(harness.engine, harness.data_dir, settle_seconds=0.0) as claims:
        assert claims.take(feed) is not None
    assert (folder / "half.csv").exists()
    assert list(FolderLayout(folder).processing.iterdir()) == []


def test_a_folder_that_cannot_be_written_is_a_clear_conflict(
    api: Api, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claiming renames inside the folder; when the folder refuses (as root, permissions would
    not, so the rename's refusal is simulated), the start is a 409 naming it and nothing is
    created."""
    write(folder / "export.csv", CONTENT, age=10)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr("csvboard.feeds.folder_runs.claim_oldest", refuse)
    refused = api.post(RUNS, json=START, headers={"Idempotency-Key": "ro"})
    assert refused.status_code == 409 and refused.json()["code"] == "FOLDER_NOT_WRITABLE"
    assert str(folder) in refused.json()["detail"]
    assert api.get(RUNS).json()["items"] == []
    assert (folder / "export.csv").read_bytes() == CONTENT
