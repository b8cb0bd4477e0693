"""A dashboard's rows as a searchable, keyset-paged list, with effective completion for a
production schedule (the rows API; the kiosk's schedule rows are ``schedule.queries``'s).

Completion is the production schedule's (its tables, its rule): it comes from what the
schedule registered for its kind (``dashboards/kinds.py``), not from an import of it."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, String, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from csvboard.dashboards import kinds
from csvboard.dashboards.models import CsvDashboardRow
from csvboard.dashboards.service import get_dashboard
from csvboard.db.cursor import bad_cursor, decode_cursor, encode_cursor
from csvboard.errors import InvalidRequest

MAX_ROWS_PAGE = 500
RowState = Literal["active", "retired", "all"]
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = _ASCII_UPPER.lower()


@dataclass(frozen=True)
class RowPage:
    """Rows with their effective completion (``None`` on a generic dashboard)."""

    rows: list[tuple[CsvDashboardRow, bool | None]]
    next_cursor: str | None


def page_rows(
    session: Session, slug: str, *, q: str | None, state: RowState, cursor: str | None, limit: int
) -> RowPage:
    """One page of rows in the order they were first ingested (then by id).

    The cursor is a keyset (``created_at``, ``id``): a row changed, retired or added while a
    client pages is never returned twice nor skipped. 400 ``INVALID_LIMIT`` /
    ``INVALID_CURSOR`` before 404 ``DASHBOARD_NOT_FOUND``.
    """
    if not 1 <= limit <= MAX_ROWS_PAGE:
        raise InvalidRequest("INVALID_LIMIT", f"limit must be 1–{MAX_ROWS_PAGE}, not {limit}")
    after = _decode_cursor(cursor) if cursor else None
    dashboard = get_dashboard(session, slug)
    extension = kinds.extension(dashboard.kind)
    stmt: Select[Any] = select(CsvDashboardRow)
    if extension is not None:
        stmt = stmt.add_columns(extension.completed(CsvDashboardRow.id).label("completed"))
    stmt = stmt.where(CsvDashboardRow.csv_dashboard_id == dashboard.id)
    if state == "active":
        stmt = stmt.where(CsvDashboardRow.is_active == True)  # noqa: E712
    elif state == "retired":
        stmt = stmt.where(CsvDashboardRow.is_active == False)  # noqa: E712
    if q is not None and q.strip():
        stmt = stmt.where(_value_search(session, q))
    if after is not None:
        at, row_id = after
        stmt = stmt.where(
            or_(
                CsvDashboardRow.created_at > at,
                and_(CsvDashboardRow.created_at == at, CsvDashboardRow.id > row_id),
            )
        )
    stmt = stmt.order_by(CsvDashboardRow.created_at, CsvDashboardRow.id).limit(limit + 1)
    rows = list(session.execute(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [(r[0], bool(r[1]) if extension is not None else None) for r in rows]
    last = rows[-1][0] if rows else None
    next_cursor = _encode_cursor(last.created_at, last.id) if more and last is not None else None
    return RowPage(items, next_cursor)


def _encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    return encode_cursor([created_at.astimezone(UTC).isoformat(), str(row_id)])


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    at, row_id = decode_cursor(cursor, str, str)
    try:
        created_at = datetime.fromisoformat(at)
        parsed = uuid.UUID(row_id)
    except ValueError as exc:
        raise bad_cursor() from exc
    if created_at.tzinfo is None:
        raise bad_cursor()
    return created_at.astimezone(UTC), parsed


def _ascii_lower(value: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in value)


def _value_search(session: Session, q: str) -> ColumnElement[bool]:
    """Some value of ``row_data`` contains ``q`` (ASCII letters in either case).

    Values only, never keys: PostgreSQL ``jsonb_each_text``, SQLite ``json_each``. ``%``,
    ``_`` and ``\\`` in ``q`` match themselves. Both the text as typed and its NFKC form are
    tried (key columns are stored NFKC-normalised, other columns as the ERP wrote them).
    """
    is_pg = session.get_bind().dialect.name == "postgresql"
    each = func.jsonb_each_text if is_pg else func.json_each
    pairs = each(CsvDashboardRow.row_data).table_valued("key", "value").alias("kv")
    value: ColumnElement[str] = func.coalesce(pairs.c.value, "", type_=String)
    folded = (
        func.translate(value, _ASCII_UPPER, _ASCII_LOWER, type_=String)
        if is_pg
        else func.lower(value, type_=String)
    )
    terms = []
    for form in dict.fromkeys((q.strip(), unicodedata.normalize("NFKC", q).strip())):
        escaped = form.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms.append(folded.like(f"%{_ascii_lower(escaped)}%", escape="\\"))
    return exists(select(1).select_from(pairs).where(or_(*terms)))
