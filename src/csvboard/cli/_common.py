"""What every command group shares: the root app, consoles, settings, sessions, errors."""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from csvboard.errors import CsvboardError
from csvboard.ingest.errors import RunError
from csvboard.settings import Settings

app = typer.Typer(
    name="csvboard",
    help="Ingest ERP CSV exports into dashboards; an auditable run ledger; kiosk schedule data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
# -- plumbing ---------------------------------------------------------------------------------


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValidationError as exc:
        problems = "; ".join(
            f"CSVBOARD_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        _fail(f"invalid setting: {problems}")


def _engine(settings: Settings) -> Engine:
    from csvboard.db.engine import make_engine

    return make_engine(settings.database_url, settings)


def _principal() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:64]


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Refusals become one clear line on stderr, never a traceback."""
    try:
        yield
    except (CsvboardError, RunError) as exc:
        _fail(str(exc))
    except IntegrityError as exc:
        _fail(f"the database refused the change: {exc.orig}")


@contextmanager
def _write(engine: Engine) -> Iterator[Session]:
    from csvboard.db.engine import write_session

    with _errors(), write_session(engine) as session:
        yield session


@contextmanager
def _read(engine: Engine) -> Iterator[Session]:
    from csvboard.db.engine import read_session

    with _errors(), read_session(engine) as session:
        yield session


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str, indent=2) + "\n")


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        _fail(f"{value!r} is not a valid id")


def _configure_logs() -> None:
    from csvboard.observability import configure_logging

    configure_logging(stream="stderr")
