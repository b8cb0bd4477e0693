"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from csvboard.api.context import REQUIRED_ROLE
from csvboard.auth import Principal, Role
from csvboard.db.cursor import CURSOR_PATTERN
from csvboard.db.engine import read_session
from csvboard.settings import Settings


def needs(role: Role) -> dict[str, Any]:
    """``openapi_extra`` for a route: the role the request middleware enforces (and documents)."""
    return {REQUIRED_ROLE: role.value}


# The plain look-ups are ``async``: FastAPI runs a sync dependency in the thread pool, and three
# thread hops per kiosk tap cost more than the look-up (and queue behind the GIL under load).
async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def get_read_session(request: Request) -> Iterator[Session]:
    with read_session(request.app.state.engine) as session:
        yield session


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ReadSession = Annotated[Session, Depends(get_read_session)]

# Every paged list's cursor. The pattern is documented, not enforced here: the list decodes the
# cursor and answers a bad one 400 INVALID_CURSOR (csvboard.db.cursor), whatever its flaw.
CursorQuery = Annotated[
    str | None,
    Query(
        description="`next_cursor` of the previous page (400 `INVALID_CURSOR` otherwise).",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    ),
]
