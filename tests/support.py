"""Test helpers shared across domains: a small harness that creates dashboards and ingests text."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard
from csvboard.dashboards.service import create_dashboard
from csvboard.db.engine import make_engine, read_session, write_session
from csvboard.feeds.start import start_upload_run
from csvboard.ingest.ledger import RunOutcome
from csvboard.ingest.runner import execute_run
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionRun
from csvboard.runs.queries import error_summary
from csvboard.runs.vocabulary import RunMode, RunStatus
from csvboard.settings import Settings
from csvboard.storage import store_file


def batches_of(settings: Settings, rows: int) -> Settings:
    """``settings`` whose runs read ``rows`` lines a block (to act between two blocks)."""
    return settings.model_copy(update={"ingest_batch_rows": rows})


SCHEDULE_HEADER = (
    "ProductNo,FSEIBAN,FHINCD,FHINMEI,FSIGENCD,FSIGENMEI,FSIGENSHOYORYO,FKOJUN,progress,更新日時"
)


def schedule_line(
    product_no: int,
    seiban: str,
    hincd: str,
    kojun: int,
    *,
    resource: str = "R01",
    name: str = "部品",
    hours: str = "1.5",
    progress: str = "",
    updated: str = "",
) -> str:
    return (
        f"{product_no:010d},{seiban},{hincd},{name},{resource},資源{resource},{hours},{kojun},"
        f"{progress},{updated}"
    )


def schedule_csv(*lines: str) -> str:
    """A production-schedule export: the header, then ``lines``, CRLF-terminated."""
    return "\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n"


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    diagnostics: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``predicate`` until it holds, or fail naming ``what`` (and any diagnostics)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{diagnostics()}")
        time.sleep(interval)


def ledger(h: Harness, run_id: uuid.UUID) -> dict[str, Any]:
    """A run's ledger columns, read fresh, plus its ``error_summary``."""
    with h.read() as session:
        doc = dict(
            session.execute(select(IngestionRun.__table__).where(IngestionRun.run_id == run_id))
            .mappings()
            .one()
        )
        doc["error_summary"] = error_summary(session, run_id)
        return doc


def status_of(h: Harness, run_id: uuid.UUID) -> str:
    with h.read() as session:
        return str(session.get_one(IngestionRun, run_id, populate_existing=True).status)


class Harness:
    """One database + data directory; ingests files the way the CLI does."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        defaults = Settings.from_env()
        self.settings = Settings(
            database_url=url,
            data_dir=data_dir,
            timezone=defaults.timezone,
            run_timeout_seconds=defaults.run_timeout_seconds,
        )
        self.data_dir = data_dir
        self.files = data_dir / "incoming"
        self.files.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        with write_session(self.engine) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with read_session(self.engine) as session:
            yield session

    def dashboard(
        self,
        slug: str = "production-schedule",
        *,
        preset: str | None = "production-schedule",
        mode: str | None = None,
    ) -> CsvDashboard:
        with self.write() as session:
            return create_dashboard(session, slug, preset=preset, mode=mode)

    def write_file(
        self, content: str | bytes, *, encoding: str = "cp932", file_name: str | None = None
    ) -> Path:
        path = self.files / (file_name or f"{uuid.uuid4().hex[:8]}.csv")
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path

    def queue(
        self,
        dashboard: CsvDashboard,
        path: Path,
        *,
        kind: str = "incremental_update",
        requested_by: str = "tester",
    ) -> uuid.UUID:
        stored = store_file(self.data_dir, path)
        with self.write() as session:
            run = start_upload_run(
                session,
                dashboard=dashboard,
                stored=stored,
                run_kind=kind,
                requested_by=requested_by,
            )
            return run.run_id

    def run(self, run_id: uuid.UUID) -> RunOutcome:
        return execute_run(self.engine, run_id, settings=self.settings, worker_id="test")

    def ingest(
        self,
        dashboard: CsvDashboard,
        content: str | bytes,
        *,
        kind: str = "incremental_update",
        encoding: str = "cp932",
        file_name: str | None = None,
    ) -> RunOutcome:
        path = self.write_file(content, encoding=encoding, file_name=file_name)
        return self.run(self.queue(dashboard, path, kind=kind))

    def close(self) -> None:
        self.engine.dispose()


ONE_ROW_FILE = "\r\n".join([SCHEDULE_HEADER, schedule_line(1000000001, "A0000001", "P-1", 10)])


def failed_run(
    h: Harness, board: CsvDashboard, code: str, *, mode: RunMode = RunMode.SCHEDULED
) -> tuple[uuid.UUID, datetime]:
    """A run of a one-row file, queued as the scheduler would, that failed ``code``; its id
    and when it ended. Queued and failed in one transaction, so a worker of a live server
    never sees it queued."""
    with h.write() as session:
        stored = store_file(h.data_dir, h.write_file(ONE_ROW_FILE + "\r\n"))
        run_id = start_upload_run(
            session, dashboard=board, stored=stored, run_kind="official_ingestion",
            requested_by="scheduler", mode=mode.value,
        ).run_id  # fmt: skip
        return run_id, _fail_in(session, run_id, code)


def fail(h: Harness, run_id: uuid.UUID, code: str) -> datetime:
    """A queued run starts and fails ``code``; when it ended."""
    with h.write() as session:
        return _fail_in(session, run_id, code)


def _fail_in(session: Session, run_id: uuid.UUID, code: str) -> datetime:
    lifecycle.transition(session, run_id, expected=RunStatus.QUEUED, to=RunStatus.RUNNING)
    lifecycle.transition(
        session, run_id, expected=RunStatus.RUNNING, to=RunStatus.FAILED,
        error_code=code, message="test",
    )  # fmt: skip
    ended = session.get_one(IngestionRun, run_id).finished_at
    assert ended is not None
    return ended


class Api:
    """The real ASGI app over a test database, with one token per role.

    ``api.get("/path", as_="viewer")`` sends that role's bearer token; ``as_=None`` sends none.
    Queued runs are executed by the app's in-process executor (as ``csvboard serve`` does);
    ``wait_for_run`` polls the ledger until a run ends.
    """

    def __init__(self, url: str, data_dir: Path, *, run_executor: bool = True) -> None:
        from fastapi.testclient import TestClient

        from csvboard.app import create_app
        from csvboard.auth import Role, create_token

        self.harness = Harness(url, data_dir)
        self.settings = self.harness.settings
        self.app = create_app(self.settings, run_executor=run_executor)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.client.__enter__()  # runs the lifespan: starts the executor
        self.tokens: dict[str, str] = {}
        with self.harness.write() as session:
            for role in Role:
                self.tokens[role.value] = create_token(session, f"test-{role.value}", role)

    def headers(self, as_: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if as_ is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(as_, as_)}"
        return headers

    def request(self, method: str, path: str, *, as_: str | None = "admin", **kwargs: Any) -> Any:
        headers = self.headers(as_, kwargs.pop("headers", None))
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def wait_for_run(self, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while True:
            doc: dict[str, Any] = self.get(f"/api/v1/ops/ingestion/runs/{run_id}").json()
            if doc.get("finished_at") or time.monotonic() > deadline:
                return doc
            time.sleep(0.05)

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.harness.close()


def csvboard_command() -> list[str]:
    """The installed console script (``python -m csvboard.cli`` has no ``__main__`` guard)."""
    script = Path(sys.executable).parent / "csvboard"
    if script.exists():
        return [str(script)]
    found = shutil.which("csvboard")
    if found:
        return [found]
    return [sys.executable, "-c", "from csvboard.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``csvboard serve`` in a process of its own on 127.0.0.1 and a free port, as deployed:
    the clients of a test then share no interpreter (and no GIL) with the server."""

    def __init__(self, harness: Harness, log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = dict(os.environ)
        env.update(
            CSVBOARD_DATABASE_URL=harness.url,
            CSVBOARD_DATA_DIR=str(harness.data_dir),
            PYTHONUNBUFFERED="1",
        )
        self.env = env  # what a worker beside it needs too
        command = [*csvboard_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_until(
            self._healthy, timeout=60, what="csvboard serve to answer", diagnostics=self.output
        )

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, f"csvboard serve exited:\n{self.output()}"
        try:
            url = f"http://127.0.0.1:{self.port}/api/v1/ops/diagnostics/health"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(json.load(response).get("status"))
        except (OSError, urllib.error.URLError):
            return False

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
