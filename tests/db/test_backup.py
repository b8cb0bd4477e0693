"""Backups (csvboard.db.backup, ``csvboard maintenance backup|restore``) on both engines: a
backup restored into a fresh place holds every table as it was and the stored files under the
new data directory (a re-run reads them); a backup taken while a kiosk writes and a run
ingests is a consistent snapshot; a full disk leaves no half backup; bad destinations and
sources are refused with a clear reason and nothing stored changes."""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from csvboard.db import backup as backup_module
from csvboard.db.backup import BackupFailed, backup, restore
from csvboard.db.base import Base
from csvboard.db.engine import make_engine
from csvboard.errors import Conflict, InvalidRequest
from csvboard.runs.models import IngestionRunSource
from csvboard.schedule import commands, queries
from csvboard.settings import Settings
from support import SCHEDULE_HEADER, Harness, schedule_line


def export(n: int, name: str = "部品") -> str:
    lines = [schedule_line(1000000001, f"A{i:07d}", "P-1", 10, name=name) for i in range(n)]
    return "\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n"


@pytest.fixture
def target(harness: Harness, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings for a fresh place: a new SQLite file or an empty PostgreSQL database."""
    if harness.engine.dialect.name == "sqlite":
        yield Settings(database_url=f"sqlite:///{tmp_path / 'restored.db'}",
                       data_dir=tmp_path / "restored-data")  # fmt: skip
        return
    from pg_cluster import temporary_database

    cluster = request.getfixturevalue("_pg_cluster")
    with temporary_database(cluster) as url:
        yield Settings(database_url=url, data_dir=tmp_path / "restored-data")


def tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = make_engine(url)
    try:
        out = {}
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                rows = conn.execute(select(table)).all()
                out[table.name] = sorted(tuple(str(v) for v in r) for r in rows)
        return out
    finally:
        engine.dispose()


def test_a_restored_backup_holds_every_table_and_file(
    harness: Harness, target: Settings, tmp_path: Path
) -> None:
    board = harness.dashboard()
    harness.ingest(board, export(20), kind="official_ingestion")
    harness.ingest(board, export(5, "ギヤ"), kind="official_ingestion")  # retires 15
    with harness.read() as session:
        rows, _ = queries.list_rows(session, board, limit=3)
    with harness.write() as session:
        commands.set_note(session, rows[0]["id"], "髙精度 ①", by="kiosk")
    settings = harness.settings
    before = tables(harness.url)

    manifest = backup(settings, tmp_path / "backup")
    assert manifest["files"] == 2 and manifest["schema_revision"]
    restore(target, tmp_path / "backup")
    after = tables(target.database_url)

    src_table = IngestionRunSource.__tablename__
    for name in before:
        if name != src_table:
            assert after[name] == before[name], name
    engine = make_engine(target.database_url)
    try:
        with engine.connect() as conn:
            paths = [Path(p) for p in conn.scalars(select(IngestionRunSource.stored_path))]
    finally:
        engine.dispose()
    assert len(paths) == 2
    assert all(p.is_relative_to(target.data_dir.absolute()) and p.is_file() for p in paths)


def test_a_backup_while_a_kiosk_writes_and_a_run_ingests(
    harness: Harness, target: Settings, tmp_path: Path
) -> None:
    board = harness.dashboard()
    harness.ingest(board, export(300), kind="official_ingestion")
    with harness.read() as session:
        ids = [r["id"] for r in queries.list_rows(session, board, limit=50)[0]]
    stop = threading.Event()
    written: list[int] = []

    def kiosk() -> None:
        n = 0
        while not stop.is_set():
            with harness.write() as session:
                commands.set_note(session, ids[n % len(ids)], f"note {n}", by="kiosk")
            n += 1
        written.append(n)

    writer = threading.Thread(target=kiosk)
    writer.start()
    try:
        run = harness.queue(
            board, harness.write_file(export(2000, "カバー")), kind="official_ingestion"
        )
        ingesting = threading.Thread(target=harness.run, args=(run,))
        ingesting.start()
        backup(harness.settings, tmp_path / "busy")
        ingesting.join()
    finally:
        stop.set()
        writer.join()
    assert written and written[0] > 0
    restore(target, tmp_path / "busy")
    engine = make_engine(target.database_url)
    try:
        with engine.connect() as conn:
            statuses = set(conn.scalars(text("SELECT status FROM ingestion_runs")))
            notes = conn.scalar(text("SELECT count(*) FROM production_schedule_row_notes"))
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    finally:
        engine.dispose()
    # A snapshot: the run was queued, running or done at that instant, never half-applied.
    assert statuses <= {"queued", "running", "succeeded"}
    assert 0 < (notes or 0) <= len(ids)


def test_a_full_disk_leaves_no_half_backup(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = harness.dashboard()
    harness.ingest(board, export(3))

    def full(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backup_module.shutil, "copytree", full)
    with pytest.raises(BackupFailed) as failed:
        backup(harness.settings, tmp_path / "full")
    assert "No space left on device" in str(failed.value)
    assert list(tmp_path.glob("*full*")) == []


def test_bad_destinations_and_sources_are_refused(
    harness: Harness, target: Settings, tmp_path: Path
) -> None:
    board = harness.dashboard()
    harness.ingest(board, export(3))
    (tmp_path / "taken").mkdir()
    with pytest.raises(InvalidRequest) as exists:
        backup(harness.settings, tmp_path / "taken")
    assert exists.value.code == "BACKUP_EXISTS"
    with pytest.raises(InvalidRequest) as nowhere:
        backup(harness.settings, tmp_path / "missing" / "b")
    assert nowhere.value.code == "BACKUP_NOT_WRITABLE"

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text('{"format": "something else"}')
    for src in (tmp_path / "taken", tmp_path / "junk"):
        with pytest.raises(InvalidRequest) as not_one:
            restore(target, src)
        assert not_one.value.code == "NOT_A_BACKUP"

    backup(harness.settings, tmp_path / "good")
    manifest = json.loads((tmp_path / "good" / "manifest.json").read_text())
    (tmp_path / "newer").mkdir()
    (tmp_path / "newer" / "manifest.json").write_text(
        json.dumps({**manifest, "schema_revision": "9999"})
    )
    with pytest.raises(InvalidRequest) as newer:
        restore(target, tmp_path / "newer")
    assert newer.value.code == "BACKUP_FROM_NEWER_SCHEMA"

    restore(target, tmp_path / "good")
    with pytest.raises(Conflict) as again:  # the target is no longer fresh
        restore(target, tmp_path / "good")
    assert again.value.code == "RESTORE_TARGET_NOT_EMPTY"


def test_the_cli_backs_up_and_restores(
    harness: Harness, target: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from csvboard.cli import app

    harness.ingest(harness.dashboard(), export(3))
    monkeypatch.setenv("CSVBOARD_DATABASE_URL", harness.url)
    monkeypatch.setenv("CSVBOARD_DATA_DIR", str(harness.data_dir))
    made = CliRunner().invoke(app, ["maintenance", "backup", str(tmp_path / "b"), "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["format"] == "csvboard-backup"
    refused = CliRunner().invoke(app, ["maintenance", "backup", str(tmp_path / "b")])
    assert refused.exit_code == 2 and "exists" in refused.output

    monkeypatch.setenv("CSVBOARD_DATABASE_URL", target.database_url)
    monkeypatch.setenv("CSVBOARD_DATA_DIR", str(target.data_dir))
    restored = CliRunner().invoke(app, ["maintenance", "restore", str(tmp_path / "b")])
    assert restored.exit_code == 0, restored.output
    assert tables(target.database_url)["ingestion_runs"] == tables(harness.url)["ingestion_runs"]
