"""API tokens and roles: viewer reads, operator adds kiosk writes, admin adds everything else.

Only a SHA-256 of each token is stored. Tokens carry 256 bits of randomness, so a plain hash
(no salt, no stretching) is the right tool: it lets us look a token up by its hash, and the
final comparison is constant-time anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, String, Uuid, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from csvboard.clock import utcnow
from csvboard.db.base import NOW, Base, UTCDateTime
from csvboard.errors import Conflict, NotFound


class ApiToken(Base):
    """An API token: its name, role and the SHA-256 of the token (never the token)."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, server_default=NOW)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (CheckConstraint("role IN ('admin', 'operator', 'viewer')", name="role"),)


TOKEN_PREFIX = "csvb_"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @property
    def label(self) -> str:
        """What goes into requested_by / updated_by."""
        return f"token:{self.name}"[:64]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(session: Session, name: str, role: Role) -> str:
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict("TOKEN_EXISTS", f"a token named {name!r} already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            id=uuid.uuid4(),
            name=name,
            role=role.value,
            token_hash=hash_token(token),
            created_at=utcnow(),
        )
    )
    session.flush()
    return token


def revoke_token(session: Session, name: str) -> None:
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("TOKEN_NOT_FOUND", f"no active token named {name!r}")


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None (unknown or revoked)."""
    digest = hash_token(token)
    row = session.execute(
        select(ApiToken.name, ApiToken.role, ApiToken.token_hash, ApiToken.revoked_at).where(
            ApiToken.token_hash == digest
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.token_hash, digest):
        return None
    return Principal(name=row.name, role=Role(row.role))
