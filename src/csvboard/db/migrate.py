"""Create or migrate a database to the newest schema (Alembic ``upgrade head``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from csvboard.db.engine import make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade_database(url: str) -> None:
    """Upgrade to head.

    SQLite: foreign keys are switched off for the migration (SQLite's documented procedure
    for a schema change). Batch migrations rebuild a table by copying it and dropping the old
    one, and with foreign keys on that DROP would run the children's ``ON DELETE`` actions
    (feed state and claimed mail messages deleted, run sources' feed set null). The keys are
    checked afterwards and the upgrade fails if any is broken.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            raw: Any = conn.connection.driver_connection
            if sqlite:
                # Outside any transaction (inside one this pragma is a no-op).
                raw.execute("PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    config = alembic_config(url)
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
                    if sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                if sqlite:
                    raw.execute("PRAGMA foreign_keys = ON")
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
