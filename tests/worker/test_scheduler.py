"""The scheduler (docs/contract.md §4): cron feeds in Asia/Tokyo, folder watching with
exactly-once claims, URL feeds over HTTP, and one leader among many schedulers.

Most tests call ``Scheduler.tick(now)`` directly with a fixed ``now`` (cron reads only that
clock); the concurrency tests run real ``run_forever`` loops in threads, each scheduler with an
engine of its own, as separate processes would have.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.pool import NullPool

from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.db.engine import make_engine
from csvboard.feeds import state as cron_state
from csvboard.feeds.folder import FolderLayout, claim, waiting_files
from csvboard.feeds.models import CsvDashboardFeedState
from csvboard.runs.models import IngestionRun, IngestionRunSource
from csvboard.runs.vocabulary import RunStatus
from csvboard.settings import Settings
from csvboard.worker.leadership import AdvisoryLockLeadership
from csvboard.worker.scheduler import Scheduler, SchedulerThread
from support import SCHEDULE_HEADER, Harness, schedule_line

TOKYO = ZoneInfo("Asia/Tokyo")
EVERY_MINUTE = "* * * * *"


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def dashboard(harness: Harness) -> CsvDashboard:
    return harness.dashboard("sched")


@pytest.fixture
def new_scheduler(harness: Harness) -> Iterator[Callable[..., Scheduler]]:
    """Schedulers with engines of their own (as separate processes would have)."""
    made: list[tuple[Scheduler, Engine]] = []

    def make(name: str = "s1", *, settings: Settings | None = None, **kwargs: Any) -> Scheduler:
        engine = make_engine(harness.url)
        kwargs.setdefault("poll_seconds", 0.05)
        kwargs.setdefault("settle_seconds", 0.0)
        scheduler = Scheduler(engine, settings or harness.settings, scheduler_id=name, **kwargs)
        made.append((scheduler, engine))
        return scheduler

    yield make
    for scheduler, engine in made:
        scheduler.close()
        engine.dispose()


def add_feed(
    harness: Harness,
    dashboard: CsvDashboard,
    *,
    name: str,
    source: str,
    location: str,
    schedule: str | None = None,
    role: str = "official",
    enabled: bool = True,
) -> uuid.UUID:
    now = datetime.now(UTC)
    feed_id = uuid.uuid4()
    with harness.write() as session:
        session.add(
            CsvDashboardFeed(
                id=feed_id,
                csv_dashboard_id=dashboard.id,
                name=name,
                role=role,
                source=source,
                location=location,
                schedule=schedule,
                enabled=enabled,
                created_at=now,
                updated_at=now,
            )
        )
    return feed_id


def csv_bytes(seiban: str, rows: int = 2) -> bytes:
    lines = [SCHEDULE_HEADER] + [
        schedule_line(1000 + i, seiban, f"P{i:03d}", i + 1) for i in range(rows)
    ]
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def drop(folder: Path, name: str, content: bytes, *, age: float = 0.0) -> Path:
    """Drop a file the way a copy tool should: written under a dot name, renamed into place."""
    tmp = folder / f".{name}.part"
    tmp.write_bytes(content)
    path = folder / name
    os.rename(tmp, path)
    if age:
        past = time.time() - age
        os.utime(path, (past, past))
    return path


def runs(harness: Harness) -> list[IngestionRun]:
    with harness.read() as session:
        return list(session.scalars(select(IngestionRun).order_by(IngestionRun.created_at)))


def source_shas(harness: Harness) -> list[str | None]:
    with harness.read() as session:
        return list(session.scalars(select(IngestionRunSource.sha256)))


def feed_state(harness: Harness, feed_id: uuid.UUID) -> CsvDashboardFeedState | None:
    with harness.read() as session:
        return session.get(CsvDashboardFeedState, feed_id)


def csv_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".csv")


def jst(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=TOKYO)


# --- cron ---------------------------------------------------------------------------------


def test_cron_fires_once_per_slot_without_catch_up_storm(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in range(5):
        drop(folder, f"f{i}.csv", csv_bytes(f"CRON000{i}"), age=60 - i)
    feed_id = add_feed(
        harness, dashboard, name="nightly", source="folder", location=str(folder),
        schedule=EVERY_MINUTE,
    )  # fmt: skip
    scheduler = new_scheduler()

    # First sight arms the schedule: nothing fires for times before the scheduler saw it.
    armed = scheduler.tick(jst(2026, 5, 1, 10, 0, 30))
    assert armed.is_leader and armed.run_ids == []
    state = feed_state(harness, feed_id)
    assert state is not None and state.last_fired_at == jst(2026, 5, 1, 10, 0, 30)
    assert scheduler.tick(jst(2026, 5, 1, 10, 0, 50)).run_ids == []

    # Crossing 10:01:00 fires exactly once, and takes one file (the oldest).
    fired = scheduler.tick(jst(2026, 5, 1, 10, 1, 5))
    assert len(fired.run_ids) == 1
    assert scheduler.tick(jst(2026, 5, 1, 10, 1, 30)).run_ids == []
    (run,) = runs(harness)
    assert (run.mode, run.requested_by, run.run_kind) == (
        "scheduled",
        "scheduler",
        "official_ingestion",
    )
    assert run.target_types == ["official"]
    assert csv_names(folder) == ["f1.csv", "f2.csv", "f3.csv", "f4.csv"]

    # Five hours down: one run on return, not three hundred.
    assert len(scheduler.tick(jst(2026, 5, 1, 15, 0, 5)).run_ids) == 1
    assert scheduler.tick(jst(2026, 5, 1, 15, 0, 6)).run_ids == []
    assert len(runs(harness)) == 2
    state = feed_state(harness, feed_id)
    assert state is not None and state.last_run_id == runs(harness)[-1].run_id


def test_cron_is_evaluated_in_tokyo_time(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    drop(folder, "a.csv", csv_bytes("TOKYO001"))
    add_feed(
        harness, dashboard, name="morning", source="folder", location=str(folder),
        schedule="0 9 * * *",
    )  # fmt: skip
    scheduler = new_scheduler()
    scheduler.tick(jst(2026, 5, 1, 8, 59))
    # 09:00 UTC would be 18:00 in Tokyo; the schedule means 09:00 in Tokyo (00:00 UTC).
    assert scheduler.tick(datetime(2026, 5, 1, 0, 0, 1, tzinfo=UTC)).run_ids != []


def test_an_empty_folder_at_a_scheduled_time_queues_nothing(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    feed_id = add_feed(
        harness, dashboard, name="nightly", source="folder", location=str(folder),
        schedule=EVERY_MINUTE,
    )  # fmt: skip
    scheduler = new_scheduler()
    scheduler.tick(jst(2026, 5, 1, 10, 0, 30))
    assert scheduler.tick(jst(2026, 5, 1, 10, 1, 1)).run_ids == []
    state = feed_state(harness, feed_id)
    assert state is not None and "no file waiting" in (state.last_message or "")
    assert runs(harness) == []


def test_a_cron_slot_is_taken_once(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    """Two schedulers overlapping in a failover: the cursor's compare-and-set lets one fire."""
    feed_id = add_feed(
        harness, dashboard, name="u", source="url", location="http://127.0.0.1:9/x.csv",
        schedule=EVERY_MINUTE,
    )  # fmt: skip
    a, b = new_scheduler("a"), new_scheduler("b")
    t0 = jst(2026, 5, 1, 10, 0, 30)
    cron_state.arm(a.engine, feed_id, t0)
    assert cron_state.take_slot(a.engine, feed_id, t0, t0 + timedelta(minutes=1)) is True
    assert cron_state.take_slot(b.engine, feed_id, t0, t0 + timedelta(minutes=1)) is False


def test_an_invalid_schedule_is_reported_on_the_feed(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    feed_id = add_feed(
        harness, dashboard, name="bad", source="folder", location=str(tmp_path),
        schedule="61 * * * *",
    )  # fmt: skip
    new_scheduler().tick(jst(2026, 5, 1, 10, 0, 30))
    state = feed_state(harness, feed_id)
    assert state is not None and "invalid schedule" in (state.last_error or "")


# --- folder watching ----------------------------------------------------------------------


def test_folder_watch_ingests_archives_and_sets_aside(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    feed_id = add_feed(harness, dashboard, name="watch", source="folder", location=str(folder))
    scheduler = new_scheduler()
    layout = FolderLayout(folder)

    drop(folder, "good.csv", csv_bytes("GOOD0001"))
    report = scheduler.tick()
    (good_run,) = report.run_ids
    assert csv_names(folder) == []
    assert [p.name for p in layout.processing.iterdir()] == [f"{good_run}__good.csv"]
    state = feed_state(harness, feed_id)
    assert state is not None and state.last_run_id == good_run and state.last_error is None
    assert state.last_polled_at is not None

    # Not settled while the run is queued.
    assert scheduler.tick().archived == []
    assert harness.run(good_run).status == RunStatus.SUCCEEDED
    settled = scheduler.tick()
    assert [p.name for p in settled.archived] == [f"{good_run}__good.csv"]
    assert (layout.archive / f"{good_run}__good.csv").read_bytes() == csv_bytes("GOOD0001")
    assert list(layout.processing.iterdir()) == []

    # A file the run rejects: set aside with the run's error summary next to it.
    drop(folder, "bad.csv", "品番,数量\r\nX,1\r\n".encode("cp932"))
    (bad_run,) = scheduler.tick().run_ids
    assert harness.run(bad_run).status == RunStatus.FAILED
    settled = scheduler.tick()
    assert [p.name for p in settled.set_aside] == [f"{bad_run}__bad.csv"]
    reason = (layout.failed / f"{bad_run}__bad.csv.reason.txt").read_text(encoding="utf-8")
    assert str(bad_run) in reason and "HEADER_MISMATCH" in reason
    assert list(layout.processing.iterdir()) == []


def test_only_settled_regular_csv_files_are_taken(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    add_feed(harness, dashboard, name="watch", source="folder", location=str(folder))
    scheduler = new_scheduler(settle_seconds=2.0)

    fresh = folder / "half.csv"
    fresh.write_bytes(csv_bytes("HALF0001")[:40])  # a copy still in progress
    (folder / ".hidden.csv").write_bytes(csv_bytes("HIDE0001"))
    (folder / "notes.txt").write_text("not a csv")
    (folder / "dir.csv").mkdir()
    drop(folder, "UPPER.CSV", csv_bytes("UPPR0001"), age=10)

    report = scheduler.tick()
    assert len(report.run_ids) == 1  # UPPER.CSV only
    assert sorted(p.name for p in folder.iterdir()) == [
        ".csvboard", ".hidden.csv", "dir.csv", "half.csv", "notes.txt",
    ]  # fmt: skip

    # The copy finishes and the file rests: now it is taken, complete.
    fresh.write_bytes(csv_bytes("HALF0001"))
    past = time.time() - 5
    os.utime(fresh, (past, past))
    assert len(scheduler.tick().run_ids) == 1
    assert hashlib.sha256(csv_bytes("HALF0001")).hexdigest() in source_shas(harness)


def test_files_are_taken_oldest_first(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    add_feed(harness, dashboard, name="watch", source="folder", location=str(folder))
    drop(folder, "b.csv", csv_bytes("ORDR0002"), age=30)
    drop(folder, "a.csv", csv_bytes("ORDR0003"), age=20)
    drop(folder, "c.csv", csv_bytes("ORDR0001"), age=40)
    new_scheduler().tick()
    with harness.read() as session:
        names = list(
            session.scalars(
                select(IngestionRunSource.file_name)
                .join(IngestionRun, IngestionRun.run_id == IngestionRunSource.run_id)
                .order_by(IngestionRun.created_at)
            )
        )
    assert names == ["c.csv", "b.csv", "a.csv"]


def test_an_orphaned_claim_is_put_back_and_taken_again(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    """A process that died between claim and commit: its file is not lost, nor doubled."""
    folder = tmp_path / "drop"
    folder.mkdir()
    add_feed(harness, dashboard, name="watch", source="folder", location=str(folder))
    layout = FolderLayout(folder)
    layout.ensure()
    orphan = layout.processing / f"{uuid.uuid4()}__lost.csv"
    orphan.write_bytes(csv_bytes("LOST0001"))

    patient = new_scheduler("patient")
    assert patient.tick().unknown == [orphan]  # young: maybe mid-claim elsewhere
    patient.close()

    eager = new_scheduler("eager", orphan_seconds=0.0)
    report = eager.tick()
    assert [p.name for p in report.returned] == ["lost.csv"]
    assert len(eager.tick().run_ids) == 1
    assert source_shas(harness) == [hashlib.sha256(csv_bytes("LOST0001")).hexdigest()]


def test_a_missing_folder_is_an_error_on_the_feed(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    feed_id = add_feed(
        harness, dashboard, name="gone", source="folder", location=str(tmp_path / "nope")
    )
    report = new_scheduler().tick()
    assert report.run_ids == []
    state = feed_state(harness, feed_id)
    assert state is not None and "does not exist" in (state.last_error or "")


def test_disabled_feeds_are_not_watched(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    add_feed(harness, dashboard, name="off", source="folder", location=str(folder), enabled=False)
    drop(folder, "a.csv", csv_bytes("OFFF0001"))
    assert new_scheduler().tick().run_ids == []
    assert csv_names(folder) == ["a.csv"]


def test_concurrent_claims_take_each_file_once(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in range(40):
        drop(folder, f"f{i:02d}.csv", b"x" * i)
    layout = FolderLayout(folder)
    layout.ensure()
    won: list[list[str]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def racer(slot: int) -> None:
        barrier.wait()
        for path in waiting_files(folder, settle_seconds=0):
            claimed = claim(layout, path)
            if claimed is not None:
                won[slot].append(claimed.original_name)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [name for names in won for name in names]
    assert sorted(taken) == [f"f{i:02d}.csv" for i in range(40)]
    assert len(list(layout.processing.iterdir())) == 40


# --- URL feeds ----------------------------------------------------------------------------

URL_BODY = csv_bytes("URLF0001")


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/export/ok.csv":
            self._send(200, URL_BODY)
        elif self.path == "/missing.csv":
            self._send(404, b"not here")
        elif self.path == "/declared-big.csv":
            self._send(200, b"x" * 5000)
        elif self.path == "/chunked-big.csv":
            # No Content-Length: the limit must be enforced while reading.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/slow.csv":
            time.sleep(1.5)
            self._send(200, URL_BODY)
        else:
            self._send(500, b"?")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_feeds(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    http_server: str,
) -> None:
    paths = ("/export/ok.csv", "/missing.csv", "/declared-big.csv", "/chunked-big.csv", "/slow.csv")
    feeds: dict[str, uuid.UUID] = {}
    for path in paths:
        feeds[path] = add_feed(
            harness, dashboard, name=path.strip("/").replace("/", "-"), source="url",
            location=f"{http_server}{path}", schedule=EVERY_MINUTE,
        )  # fmt: skip
    settings = harness.settings.model_copy(update={"max_upload_bytes": 2000})
    scheduler = new_scheduler(settings=settings, read_timeout=0.3, connect_timeout=1.0)
    scheduler.tick(jst(2026, 5, 1, 10, 0, 30))
    report = scheduler.tick(jst(2026, 5, 1, 10, 1, 0))

    (run_id,) = report.run_ids
    with harness.read() as session:
        (source,) = session.scalars(
            select(IngestionRunSource).where(IngestionRunSource.run_id == run_id)
        )
        assert source.file_name == "ok.csv"
        assert source.sha256 == hashlib.sha256(URL_BODY).hexdigest()
        assert source.feed_id == feeds["/export/ok.csv"]
        assert Path(source.stored_path or "").read_bytes() == URL_BODY

    def error_of(path: str) -> str:
        state = feed_state(harness, feeds[path])
        assert state is not None
        return state.last_error or ""

    assert error_of("/export/ok.csv") == ""
    assert "HTTP 404" in error_of("/missing.csv")
    assert "too large" in error_of("/declared-big.csv")
    assert "too large" in error_of("/chunked-big.csv")
    assert "timed out" in error_of("/slow.csv")
    assert len(runs(harness)) == 1
    # No temporary download is left behind.
    assert list((settings.data_dir / "downloads").iterdir()) == []

    # The next slot fetches the same bytes while their run is still queued: no second run.
    again = scheduler.tick(jst(2026, 5, 1, 10, 2, 0))
    assert again.run_ids == []
    state = feed_state(harness, feeds["/export/ok.csv"])
    assert state is not None and "still queued" in (state.last_message or "")
    assert state.last_run_id == run_id


# --- leadership ---------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_leadership_on_postgresql_fails_over(
    new_scheduler: Callable[..., Scheduler], harness: Harness
) -> None:
    a, b = new_scheduler("lead-a"), new_scheduler("lead-b")
    assert a.tick().is_leader
    assert not b.tick().is_leader
    assert a.tick().is_leader and a.is_leader and not b.is_leader

    # The leader's session dies (crash, network): the lock goes with it.
    assert isinstance(a.leadership, AdvisoryLockLeadership)
    killer = create_engine(harness.engine.url, poolclass=NullPool)
    try:
        with killer.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'csvboard-scheduler:lead-a'"
                )
            ).all()
            assert killed == [(True,)]
    finally:
        killer.dispose()
    # pg_terminate_backend only signals: the backend releases the lock when it has exited.
    deadline = time.monotonic() + 10
    while not b.tick().is_leader:
        assert time.monotonic() < deadline, "the follower never took over"
        time.sleep(0.1)
    assert not a.tick().is_leader  # notices the loss, cannot retake the lock
    b.close()
    # Closing b's connection ends its backend asynchronously too: poll, as above.
    deadline = time.monotonic() + 10
    while not a.tick().is_leader:
        assert time.monotonic() < deadline, "the old leader never retook the lock"
        time.sleep(0.1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_leadership_on_sqlite_is_a_file_lock(
    new_scheduler: Callable[..., Scheduler], harness: Harness
) -> None:
    a, b = new_scheduler("lead-a"), new_scheduler("lead-b")
    assert a.tick().is_leader
    assert not b.tick().is_leader
    a.close()  # as the kernel does when the process dies
    assert b.tick().is_leader
    assert not a.tick().is_leader


def test_a_follower_takes_over_within_its_poll(new_scheduler: Callable[..., Scheduler]) -> None:
    a = new_scheduler("a", poll_seconds=0.05)
    b = new_scheduler("b", poll_seconds=0.05)
    assert a.tick().is_leader
    thread = SchedulerThread(b)  # as ``csvboard serve`` runs it
    thread.start()
    try:
        time.sleep(0.2)
        assert not b.is_leader
        a.close()
        deadline = time.monotonic() + 5
        while not b.is_leader and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b.is_leader
    finally:
        thread.stop(10)
    assert not b.is_leader  # run_forever gives leadership up on the way out


# --- the acceptance test ----------------------------------------------------------


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("forced_overlap", [False, True], ids=["one-leader", "two-leaders"])
def test_ten_files_dropped_while_two_schedulers_run(
    harness: Harness,
    dashboard: CsvDashboard,
    new_scheduler: Callable[..., Scheduler],
    tmp_path: Path,
    forced_overlap: bool,
) -> None:
    """10 files → 10 runs, each file's bytes in exactly one run, the folder emptied.

    ``two-leaders`` also defeats leadership (both schedulers believe they lead, as during a
    failover overlap), so the rename claim alone must keep every file to one run.
    """
    folder = tmp_path / "drop"
    folder.mkdir()
    add_feed(harness, dashboard, name="watch", source="folder", location=str(folder))
    schedulers = [new_scheduler("s1"), new_scheduler("s2")]
    if forced_overlap:
        for scheduler in schedulers:
            scheduler.leadership.acquire = lambda: True  # type: ignore[method-assign]
    stop = threading.Event()
    threads = [threading.Thread(target=s.run_forever, args=(stop,)) for s in schedulers]
    for t in threads:
        t.start()
    contents = [csv_bytes(f"TEN{i:05d}", rows=3) for i in range(10)]
    try:
        for i, content in enumerate(contents):
            drop(folder, f"export-{i:02d}.csv", content)
            time.sleep(0.03)
        _wait_for(lambda: len(runs(harness)) >= 10 and csv_names(folder) == [])
        time.sleep(0.3)  # a duplicate, if any, would land now
        leaders = [s.is_leader for s in schedulers]
    finally:
        stop.set()
        for t in threads:
            t.join(10)

    expected_leaders = [True, True] if forced_overlap else [False, True]
    assert sorted(leaders) == expected_leaders
    all_runs = runs(harness)
    assert len(all_runs) == 10
    assert all(r.mode == "scheduled" and r.requested_by == "scheduler" for r in all_runs)
    shas = source_shas(harness)
    assert sorted(s or "" for s in shas) == sorted(hashlib.sha256(c).hexdigest() for c in contents)
    assert csv_names(folder) == []
    layout = FolderLayout(folder)
    assert len(list(layout.processing.iterdir())) == 10

    # Run them all; a tick then archives every file.
    for run in all_runs:
        assert harness.run(run.run_id).status == RunStatus.SUCCEEDED
    settler = new_scheduler("settler")
    assert len(settler.tick().archived) == 10
    assert list(layout.processing.iterdir()) == []
