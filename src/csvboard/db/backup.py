"""Backups: the database and the stored copies of ingested files, and their restore.

A backup is a new directory holding ``manifest.json`` (format, schema revision, engine, the
data directory it came from), the database — SQLite: ``database.sqlite`` made with SQLite's
online backup API in one step, a consistent snapshot while kiosks and runs keep writing;
PostgreSQL: ``database.dump`` from ``pg_dump --format=custom``, a snapshot of one transaction —
and ``files/``, the stored copies (``CSVBOARD_DATA_DIR/files``).

It is written under a temporary name beside the destination and renamed into place only when
complete, so a failure (a full disk) leaves nothing that looks like a backup. A restore goes
into a fresh place only (a new SQLite file, an empty PostgreSQL database), moves the stored
files' paths to the new data directory, and migrates an older schema to the newest.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import inspect, select, update
from sqlalchemy.engine import make_url

from csvboard.clock import utcnow
from csvboard.db.engine import make_engine, write_session
from csvboard.db.migrate import MIGRATIONS_DIR, current_revision, upgrade_database
from csvboard.errors import Conflict, CsvboardError, InvalidRequest
from csvboard.settings import Settings

FORMAT = "csvboard-backup"
VERSION = 1
MANIFEST = "manifest.json"


class BackupFailed(CsvboardError):
    """The backup could not be written (disk full, a tool failed); nothing was left behind."""

    status: ClassVar[int] = 500


def backup(settings: Settings, dest: Path) -> dict[str, Any]:
    """Back the database and the stored files up into the new directory ``dest``."""
    dest = dest.absolute()
    if dest.exists():
        raise InvalidRequest("BACKUP_EXISTS", f"{dest} exists: a backup goes to a new place")
    if not dest.parent.is_dir() or not os.access(dest.parent, os.W_OK):
        raise InvalidRequest("BACKUP_NOT_WRITABLE", f"cannot write into {dest.parent}")
    url = make_url(settings.database_url)
    work = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        if url.get_backend_name() == "sqlite":
            _sqlite_copy(Path(url.database or ""), work / "database.sqlite")
            engine = "sqlite"
        else:
            _run(["pg_dump", "--format=custom", "--file", str(work / "database.dump"),
                  "--dbname", _libpq(settings.database_url)])  # fmt: skip
            engine = "postgresql"
        files = settings.data_dir / "files"
        copied = 0
        if files.is_dir():
            shutil.copytree(files, work / "files")
            copied = sum(1 for p in (work / "files").rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "engine": engine,
            "schema_revision": current_revision(settings.database_url),
            "data_dir": str(settings.data_dir.absolute()),
            "files": copied,
            "created_at": utcnow().isoformat(),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.rename(work, dest)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupFailed("BACKUP_FAILED", f"backup to {dest} failed: {exc}") from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def restore(settings: Settings, src: Path) -> dict[str, Any]:
    """Restore the backup ``src`` into the (fresh) database and data directory of
    ``settings``; the schema is then migrated to the newest."""
    manifest = read_manifest(src)
    url = make_url(settings.database_url)
    engine_name = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
    if manifest["engine"] != engine_name:
        raise InvalidRequest(
            "BACKUP_ENGINE_MISMATCH",
            f"{src} is a {manifest['engine']} backup; the target is {engine_name}",
        )
    if engine_name == "sqlite":
        target = Path(url.database or "")
        if target.exists() and target.stat().st_size > 0:
            raise Conflict("RESTORE_TARGET_NOT_EMPTY", f"{target} exists: restore into a new file")
        _sqlite_copy(src / "database.sqlite", target)
    else:
        engine = make_engine(settings.database_url, settings)
        try:
            if inspect(engine).get_table_names():
                raise Conflict(
                    "RESTORE_TARGET_NOT_EMPTY", "the target database has tables: use an empty one"
                )
        finally:
            engine.dispose()
        _run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname",
              _libpq(settings.database_url), str(src / "database.dump")])  # fmt: skip
    files = settings.data_dir / "files"
    if (src / "files").is_dir():
        shutil.copytree(src / "files", files, dirs_exist_ok=True)
    upgrade_database(settings.database_url)
    _move_stored_paths(settings, Path(manifest["data_dir"]) / "files", files.absolute())
    return manifest


def read_manifest(src: Path) -> dict[str, Any]:
    """The backup's manifest, or 400 ``NOT_A_BACKUP`` / ``BACKUP_FROM_NEWER_SCHEMA``."""
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InvalidRequest(
            "NOT_A_BACKUP", f"{src} is not a csvboard backup (no manifest)"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidRequest("NOT_A_BACKUP", f"{src} is not a csvboard backup")
    if manifest.get("version") != VERSION or manifest.get("engine") not in ("sqlite", "postgresql"):
        raise InvalidRequest("NOT_A_BACKUP", f"{src}: an unknown backup format version")
    known = {p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("*.py")}
    if manifest.get("schema_revision") not in known:
        raise InvalidRequest(
            "BACKUP_FROM_NEWER_SCHEMA",
            f"{src} has schema {manifest.get('schema_revision')!r}, which this csvboard does"
            " not know: restore it with the version that made it (or a newer one)",
        )
    return manifest


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup, in one step: a consistent snapshot; writers go on."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise OSError(f"SQLite backup of {source}: {exc}") from exc
    finally:
        src.close()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise BackupFailed(
            "BACKUP_FAILED", f"{argv[0]} is not installed (Debian: postgresql-client)"
        )
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"{argv[0]} failed: {done.stderr.strip()[-500:]}")


def _move_stored_paths(settings: Settings, old: Path, new: Path) -> None:
    """Stored copies are named by absolute path: point the restored ones at their new home."""
    if old == new:
        return
    from csvboard.runs.models import IngestionRunSource as Src

    engine = make_engine(settings.database_url, settings)
    try:
        with write_session(engine) as session:
            for source_id, path in session.execute(select(Src.id, Src.stored_path)).all():
                if path and Path(path).is_relative_to(old):
                    moved = str(new / Path(path).relative_to(old))
                    session.execute(
                        update(Src).where(Src.id == source_id).values(stored_path=moved)
                    )
    finally:
        engine.dispose()


__all__ = ["BackupFailed", "backup", "read_manifest", "restore"]
