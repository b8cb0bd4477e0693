"""Idempotency keys for requests that create something (docs/contract.md §5).

A client sends ``Idempotency-Key`` with a create request. The same key with the same payload
within :data:`TTL` returns what the first request created; with a different payload it is a
409. The key row is inserted in the transaction that creates the thing, so of two concurrent
identical requests exactly one creates it (PostgreSQL makes the second insert wait for the
first transaction, then do nothing).

Today one endpoint uses it (starting a run), so a key records the run it created.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import update
from sqlalchemy.orm import Session

from csvboard.db import upsert
from csvboard.errors import Conflict, InvalidRequest
from csvboard.runs.models import IdempotencyKey

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255  # idempotency_keys.key is varchar(255)


def key_from(request: Request) -> str:
    """The request's ``Idempotency-Key``; a clear 400 when it is missing or too long."""
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        raise InvalidRequest(
            "MISSING_IDEMPOTENCY_KEY",
            "send an Idempotency-Key header (e.g. a UUID) with each start",
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            "INVALID_IDEMPOTENCY_KEY", f"the Idempotency-Key is over {MAX_KEY_LENGTH} characters"
        )
    return key


def payload_hash(document: dict[str, Any]) -> str:
    """A stable hash of what a request asked for (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class IdempotentRequest:
    """One create request's key, as seen by one principal at one endpoint."""

    key: str
    principal: str
    endpoint: str
    payload_hash: str
    now: datetime

    def replay(self, session: Session) -> uuid.UUID | None:
        """The run an earlier identical request created, or None to go on and create one.

        A key past its time is forgotten; the same key with another payload is a 409.
        """
        row = session.get(IdempotencyKey, (self.key, self.principal, self.endpoint))
        if row is None:
            return None
        if row.expires_at <= self.now:
            session.delete(row)
            session.flush()
            return None
        if row.payload_hash != self.payload_hash:
            raise Conflict(
                "IDEMPOTENCY_CONFLICT",
                "this Idempotency-Key was used with a different request in the last 24 hours",
            )
        return row.run_id

    def claim(self, session: Session) -> bool:
        """Insert the key unless it exists; True for exactly one of concurrent requests."""
        statement = upsert.insert(session, IdempotencyKey).values(
            key=self.key,
            principal=self.principal,
            endpoint=self.endpoint,
            payload_hash=self.payload_hash,
            run_id=None,
            created_at=self.now,
            expires_at=self.now + TTL,
        )
        # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT DO NOTHING here.
        inserted = session.execute(
            statement.on_conflict_do_nothing().returning(IdempotencyKey.key)
        ).scalar_one_or_none()
        return inserted is not None

    def record(self, session: Session, run_id: uuid.UUID) -> None:
        """Remember what the claimed key created, in the same transaction."""
        session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.key == self.key,
                IdempotencyKey.principal == self.principal,
                IdempotencyKey.endpoint == self.endpoint,
            )
            .values(run_id=run_id)
        )
