"""Shared fixtures: fresh, fully migrated databases on SQLite and PostgreSQL.

- ``db_url``: parametrized ``sqlite`` / ``postgresql``; a SQLAlchemy URL of a fresh database,
  migrated to head, private to the test.
- ``sqlite_url`` / ``pg_url``: the same on one engine only.
- ``pg_admin_url``: superuser URL (database ``postgres``) of the session's PostgreSQL server.

Migrations (``csvboard.db.migrate.upgrade_database``) run once per session (per xdist worker)
into a template; each test gets a copy: SQLite copies a template file to
``tmp_path/csvboard.db``, PostgreSQL runs ``CREATE DATABASE t_<hex> TEMPLATE
csvboard_template`` and drops it after the test (``WITH (FORCE)``, so connections left open
by the test do not matter).

PostgreSQL: each pytest process (each xdist worker) starts its own throwaway cluster the first
time a test asks for it (see ``pg_cluster.py``) and stops it at the end of the session, so
workers share nothing. With ``CSVBOARD_TEST_POSTGRES_URL`` set, that server is used instead;
each worker then migrates its own uniquely named template there and drops it at the end.

Every test also runs with ``CSVBOARD_DATA_DIR`` and ``CSVBOARD_DATABASE_URL`` pointing into
its ``tmp_path`` (the database fixtures point the latter at their database), so no test writes
``./csvboard.db`` or ``./csvboard-data`` of the working tree.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pg_cluster import (
    ExternalCluster,
    PgCluster,
    cluster_from_env,
    create_database,
    drop_database,
    temporary_database,
)
from support import Api, Harness

TEMPLATE_DB = "csvboard_template"


def _upgrade(url: str) -> None:
    from csvboard.db.migrate import upgrade_database

    upgrade_database(url)


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSVBOARD_DATA_DIR", str(tmp_path / "csvboard-data"))
    monkeypatch.setenv("CSVBOARD_DATABASE_URL", _sqlite_url(tmp_path / "csvboard.db"))


# --- SQLite -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _upgrade(_sqlite_url(path))
    # Fold a WAL (if migrations left one) into the main file so a plain file copy is complete.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


@pytest.fixture
def sqlite_url(
    _sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    target = tmp_path / "csvboard.db"
    shutil.copyfile(_sqlite_template, target)
    url = _sqlite_url(target)
    monkeypatch.setenv("CSVBOARD_DATABASE_URL", url)
    yield url


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _pg_cluster() -> Iterator[PgCluster | ExternalCluster]:
    cluster = cluster_from_env()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_admin_url(_pg_cluster: PgCluster | ExternalCluster) -> str:
    return _pg_cluster.admin_url


@pytest.fixture(scope="session")
def _pg_template(_pg_cluster: PgCluster | ExternalCluster) -> Iterator[str]:
    # Our own cluster belongs to this process alone; a shared server gets a unique name.
    if isinstance(_pg_cluster, PgCluster):
        name = TEMPLATE_DB
    else:
        name = f"{TEMPLATE_DB}_{uuid.uuid4().hex[:12]}"
    admin_url = _pg_cluster.admin_url
    drop_database(admin_url, name)
    create_database(admin_url, name)
    try:
        _upgrade(_pg_cluster.url_for(name))
        # CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template:
        # end sessions a migration engine may have left in its pool.
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
        finally:
            engine.dispose()
        yield name
    finally:
        drop_database(admin_url, name)


@pytest.fixture
def pg_url(
    _pg_template: str,
    _pg_cluster: PgCluster | ExternalCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    with temporary_database(_pg_cluster, template=_pg_template) as url:
        monkeypatch.setenv("CSVBOARD_DATABASE_URL", url)
        yield url


# --- both ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


# --- what most tests work with -------------------------------------------------------------
# A module that needs one engine only overrides ``db_url`` (e.g. ``tests/test_serve.py``).


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    """A migrated database (each engine in turn) and a data directory, ingesting as the CLI."""
    h = Harness(db_url, tmp_path / "data")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """The real app in-process with one token per role; runs stay queued (no executor)."""
    client = Api(db_url, tmp_path / "data", run_executor=False)
    try:
        yield client
    finally:
        client.close()
