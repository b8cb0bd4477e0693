"""Throwaway PostgreSQL clusters for tests (and the benchmark).

``start_cluster()`` runs ``initdb`` in a fresh temporary directory, starts the server on
127.0.0.1 on a free port (its unix socket lives in the same directory) and returns a
``PgCluster``; ``PgCluster.stop()`` stops it with ``pg_ctl stop -m immediate`` and removes the
directory. An ``atexit`` hook does the same if the caller never gets to call ``stop()``.

PostgreSQL refuses to run as root: when this process is root, the server runs as the Debian
``postgres`` user if it exists, else as a system user ``csvboard-pg`` created with ``useradd``
(commands go through ``runuser -u USER --``). A non-root process runs it as itself.

Binaries are found via ``pg_config --bindir``, then ``/usr/lib/postgresql/*/bin`` (highest
version >= 15), then ``PATH``. ``scripts/test`` installs Debian's ``postgresql`` when none is found.

The cluster is tuned for throwaway use: ``fsync``, ``synchronous_commit`` and
``full_page_writes`` off, trust authentication on loopback, ``max_connections = 200``.

``cluster_from_env()`` returns an ``ExternalCluster`` for ``CSVBOARD_TEST_POSTGRES_URL`` when
that variable is set (nothing is started or stopped), else ``start_cluster()``.

Outside pytest (e.g. bench/), import it with the tests directory on ``sys.path``::

    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from pg_cluster import start_cluster
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ENV_EXTERNAL_URL",
    "ExternalCluster",
    "PgCluster",
    "PgClusterError",
    "cluster_from_env",
    "find_pg_bindir",
    "start_cluster",
    "temporary_database",
]

ENV_EXTERNAL_URL = "CSVBOARD_TEST_POSTGRES_URL"
MIN_VERSION = 15
FALLBACK_USER = "csvboard-pg"
SUPERUSER = "postgres"

_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


class PgClusterError(RuntimeError):
    """The throwaway cluster could not be set up."""


def _version_of(bindir: Path) -> int | None:
    """Major version of the server binaries in ``bindir`` (None when unusable)."""
    postgres = bindir / "postgres"
    if not (bindir / "initdb").is_file() or not (bindir / "pg_ctl").is_file():
        return None
    if not postgres.is_file():
        return None
    try:
        out = subprocess.run(
            [str(postgres), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def find_pg_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (version >= 15)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    versioned: list[tuple[int, Path]] = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        with contextlib.suppress(ValueError):
            versioned.append((int(path.parent.name), path))
    candidates.extend(path for _, path in sorted(versioned, reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    seen: list[str] = []
    for bindir in candidates:
        version = _version_of(bindir)
        if version is not None and version >= MIN_VERSION:
            return bindir
        seen.append(f"{bindir} (version {version})")
    raise PgClusterError(
        f"no PostgreSQL >= {MIN_VERSION} server binaries found (looked at: "
        f"{', '.join(seen) or 'nothing'}); run ./scripts/test, which installs Debian's "
        f"'postgresql', or set {ENV_EXTERNAL_URL}"
    )


_user_lock = threading.Lock()


def _server_user() -> str | None:
    """The OS user to run the server as; None means 'this process's user'."""
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    with _user_lock:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                FALLBACK_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:  # another process (an xdist worker) may have created it first: fine
            pwd.getpwnam(FALLBACK_USER)
        except KeyError:
            raise PgClusterError(
                f"cannot create user {FALLBACK_USER}: {result.stderr.strip()}"
            ) from None
    return FALLBACK_USER


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class PgCluster:
    """A running throwaway cluster; ``stop()`` stops it and deletes its directory."""

    base_dir: Path
    port: int
    bindir: Path
    run_as: str | None
    superuser: str = SUPERUSER
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def admin_url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database as the superuser, over loopback TCP."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        result = subprocess.run(
            cmd,
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise PgClusterError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"{self._log_tail()}"
            )
        return result

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return "\n--- postgres.log (tail) ---\n" + "\n".join(lines)

    def stop(self) -> None:
        """Stop the server (immediate mode) and remove its directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if (self.data_dir / "postmaster.pid").exists():
                with contextlib.suppress(Exception):
                    self._run(
                        str(self.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "60",
                        check=False,
                    )
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            with contextlib.suppress(ValueError):
                _live.remove(self)


@dataclass
class ExternalCluster:
    """A server given by ``CSVBOARD_TEST_POSTGRES_URL``: used as is, never stopped."""

    admin_url: str

    def url_for(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def stop(self) -> None:
        return None


_live: list[PgCluster] = []


@atexit.register
def _stop_all() -> None:
    for cluster in list(_live):
        cluster.stop()


def _tmp_parent(run_as: str | None) -> str | None:
    """A temp parent the server user can traverse (the root's TMPDIR may not be)."""
    if run_as is None:
        return None
    parent = Path(tempfile.gettempdir())
    while parent != parent.parent:
        if not os.stat(parent).st_mode & 0o001:
            return "/tmp"
        parent = parent.parent
    return None


def start_cluster(*, attempts: int = 5) -> PgCluster:
    """initdb + start a throwaway cluster; the caller must ``stop()`` it (atexit also does)."""
    bindir = find_pg_bindir()
    run_as = _server_user()
    base = Path(tempfile.mkdtemp(prefix="csvboard-pg-", dir=_tmp_parent(run_as)))
    cluster = PgCluster(base_dir=base, port=0, bindir=bindir, run_as=run_as)
    _live.append(cluster)
    try:
        cluster.socket_dir.mkdir()
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            for path in (base, cluster.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        cluster._run(
            str(bindir / "initdb"),
            "-D",
            str(cluster.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )
        settings = dict(_SETTINGS, unix_socket_directories=_sql_quote(str(cluster.socket_dir)))
        conf = cluster.data_dir / "postgresql.conf"
        with conf.open("a") as fh:  # root may append; the file stays owned by the server user
            fh.write("\n# csvboard throwaway test cluster\n")
            fh.writelines(f"{key} = {value}\n" for key, value in settings.items())
        for attempt in range(attempts):
            cluster.port = _free_port()
            result = cluster._run(
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(cluster.data_dir),
                "-w",
                "-t",
                "60",
                "-l",
                str(cluster.log_file),
                "-o",
                f"-p {cluster.port}",
                check=False,
            )
            if result.returncode == 0:
                return cluster
            # A port taken between _free_port() and bind (another xdist worker): try another.
            if attempt == attempts - 1 or "could not bind" not in cluster._log_tail():
                raise PgClusterError(
                    f"pg_ctl start failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                    f"{cluster._log_tail()}"
                )
        raise AssertionError("unreachable")
    except BaseException:
        cluster.stop()
        raise


def cluster_from_env() -> PgCluster | ExternalCluster:
    """``CSVBOARD_TEST_POSTGRES_URL`` if set (driver forced to psycopg), else a new cluster."""
    url = os.environ.get(ENV_EXTERNAL_URL, "").strip()
    if not url:
        return start_cluster()
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise PgClusterError(f"{ENV_EXTERNAL_URL} must be a postgresql:// URL, got {url!r}")
    parsed = parsed.set(drivername="postgresql+psycopg")
    return ExternalCluster(admin_url=parsed.render_as_string(hide_password=False))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_database(admin_url: str, name: str, template: str | None = None) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    sql = f"CREATE DATABASE {_quote_ident(name)}"
    if template is not None:
        sql += f" TEMPLATE {_quote_ident(template)}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def drop_database(admin_url: str, name: str) -> None:
    """``DROP DATABASE IF EXISTS ... WITH (FORCE)``: open connections to it are ended."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"))
    finally:
        engine.dispose()


@contextlib.contextmanager
def temporary_database(
    cluster: PgCluster | ExternalCluster, template: str | None = None
) -> Iterator[str]:
    """A new database ``t_<hex>`` (copied from ``template`` if given); dropped on exit."""
    name = f"t_{uuid.uuid4().hex}"
    create_database(cluster.admin_url, name, template)
    try:
        yield cluster.url_for(name)
    finally:
        drop_database(cluster.admin_url, name)
