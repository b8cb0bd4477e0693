"""The test infrastructure itself: throwaway PostgreSQL clusters and per-test databases."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from pg_cluster import (
    ENV_EXTERNAL_URL,
    ExternalCluster,
    PgCluster,
    find_pg_bindir,
    start_cluster,
    temporary_database,
)

_own_cluster = pytest.mark.skipif(
    bool(os.environ.get(ENV_EXTERNAL_URL)), reason=f"{ENV_EXTERNAL_URL} is set"
)


def _scalar(url: str, sql: str) -> object:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def _row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
            return {
                t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one())
                for t in tables
            }
    finally:
        engine.dispose()


def test_find_pg_bindir_is_version_15_or_newer() -> None:
    bindir = find_pg_bindir()
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert int(out.split()[-1].split(".")[0]) >= 15


@_own_cluster
def test_cluster_runs_as_non_root_on_loopback_and_is_removed_by_stop() -> None:
    cluster = start_cluster()
    try:
        assert cluster.data_dir.is_dir()
        url = make_url(cluster.admin_url)
        assert url.drivername == "postgresql+psycopg"
        assert url.host == "127.0.0.1"
        assert url.database == "postgres"
        assert _scalar(cluster.admin_url, "SELECT 1") == 1
        assert str(_scalar(cluster.admin_url, "SELECT inet_server_addr()")) == "127.0.0.1"
        assert _scalar(cluster.admin_url, "SHOW fsync") == "off"
        assert _scalar(cluster.admin_url, "SHOW max_connections") == "200"
        # The server process belongs to a non-root user (PostgreSQL refuses root).
        pid = int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])
        uid = os.stat(f"/proc/{pid}").st_uid
        assert uid != 0
        if os.geteuid() == 0:
            assert cluster.run_as is not None
            assert pwd.getpwnam(cluster.run_as).pw_uid == uid
        else:
            assert uid == os.geteuid()
    finally:
        cluster.stop()
    assert not cluster.base_dir.exists()
    assert not Path(f"/proc/{pid}").exists() or _is_zombie_or_gone(pid)
    cluster.stop()  # idempotent


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@_own_cluster
def test_session_cluster_is_the_spec_shape(pg_admin_url: str) -> None:
    url = make_url(pg_admin_url)
    assert url.host == "127.0.0.1"
    assert url.database == "postgres"
    assert _scalar(pg_admin_url, "SELECT current_setting('synchronous_commit')") == "off"
    assert _scalar(pg_admin_url, "SELECT current_setting('full_page_writes')") == "off"


def test_db_url_is_a_fresh_migrated_database(db_url: str) -> None:
    url = make_url(db_url)
    assert url.get_backend_name() in {"sqlite", "postgresql"}
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
    finally:
        engine.dispose()
    assert "alembic_version" in tables  # upgrade_database() ran
    counts = _row_counts(db_url)
    assert counts == dict.fromkeys(counts, 0), f"a fresh database has rows: {counts}"
    assert os.environ["CSVBOARD_DATABASE_URL"] == db_url


@pytest.mark.parametrize("round_", [1, 2])
def test_writes_do_not_leak_between_tests(db_url: str, round_: int) -> None:
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            exists = inspect(conn).has_table("infra_probe")
            assert not exists, "a previous test's table is visible"
            conn.execute(text("CREATE TABLE infra_probe (n INTEGER)"))
            conn.execute(text("INSERT INTO infra_probe VALUES (:n)"), {"n": round_})
    finally:
        engine.dispose()


def test_pg_url_is_a_per_test_database(pg_url: str, pg_admin_url: str) -> None:
    name = make_url(pg_url).database
    assert name is not None and name.startswith("t_")
    assert make_url(pg_admin_url).database == "postgres"
    assert _scalar(pg_url, "SELECT current_database()") == name


def test_temporary_database_is_dropped_even_with_open_connections(
    _pg_cluster: PgCluster | ExternalCluster, _pg_template: str
) -> None:
    # The same helper pg_url uses, driven by hand so the drop can be observed.
    with temporary_database(_pg_cluster, template=_pg_template) as url:
        name = make_url(url).database
        engine = create_engine(url)
        conn = engine.connect()  # left open on purpose: DROP ... WITH (FORCE) ends it
        assert conn.execute(text("SELECT current_database()")).scalar() == name
        assert "alembic_version" in inspect(conn).get_table_names()
    try:
        gone = _scalar(
            _pg_cluster.admin_url, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        )
        assert gone == 0, f"database {name} was not dropped"
    finally:
        conn.invalidate()
        engine.dispose()


def test_sqlite_url_is_a_file_in_tmp_path(sqlite_url: str, tmp_path: Path) -> None:
    assert make_url(sqlite_url).database == str(tmp_path / "csvboard.db")
    assert (tmp_path / "csvboard.db").is_file()


def test_env_points_into_tmp_path(tmp_path: Path) -> None:
    assert os.environ["CSVBOARD_DATA_DIR"] == str(tmp_path / "csvboard-data")
    assert str(tmp_path) in os.environ["CSVBOARD_DATABASE_URL"]
