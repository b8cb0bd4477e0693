"""``csvboard tokens``: API tokens."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from csvboard.auth import Role
from csvboard.cli._common import (
    _engine,
    _settings,
    _write,
    err,
)

tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)


@tokens_app.command("create")
def tokens_create(
    name: str, role: Annotated[Role, typer.Option(help="admin | operator | viewer")]
) -> None:
    """Create an API token; only its hash is stored. The token is the last line printed."""
    from csvboard.auth import create_token

    engine = _engine(_settings())
    with _write(engine) as session:
        token = create_token(session, name, role)
    err.print(f"token {name!r} ({role.value}) created; it is shown once:")
    sys.stdout.write(token + "\n")


@tokens_app.command("revoke")
def tokens_revoke(name: str) -> None:
    """Revoke a token: requests with it are refused from now on."""
    from csvboard.auth import revoke_token

    engine = _engine(_settings())
    with _write(engine) as session:
        revoke_token(session, name)
    err.print(f"token {name!r} revoked")
