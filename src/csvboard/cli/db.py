"""``csvboard db``: the database schema."""

from __future__ import annotations

import typer

from csvboard.cli._common import (
    _settings,
    err,
)

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database (CSVBOARD_DATABASE_URL; default ./csvboard.db)."""
    from csvboard.db.migrate import upgrade_database

    settings = _settings()
    upgrade_database(settings.database_url)
    err.print(f"database is at the newest schema: {_redact(settings.database_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
