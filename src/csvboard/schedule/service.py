"""What people enter on the production schedule, and the rows composed with it
(docs/contract.md §2.2, §5).

Why this module exists (docs/design/adr_production_schedule_progress.md): completion, notes, due
dates, processing types and machining order used to live inside the CSV row and were lost when
an ingestion replaced ``row_data``. They now live in operator-owned tables keyed by row id,
written only by the functions here — ingestion never names those tables — and every read
composes them back into the row, with ``row_data.progress`` synthesised as ``"完了"`` / ``""``
so clients keep seeing one row.

Conventions shared by every function:

- The caller owns the transaction (``write_session`` / ``read_session``) and commits it.
- Writes are upserts keyed by the row id (``INSERT … ON CONFLICT DO UPDATE``), so two identical
  taps leave the same state, and nothing reads the row ``FOR UPDATE``: on PostgreSQL an
  ingestion holds only ``FOR NO KEY UPDATE`` locks on rows it changes, which the foreign-key
  check of an operator write (``FOR KEY SHARE``) does not wait for. A kiosk tap never waits on
  an ingestion.
- Checks run in the API's order: invalid input (400) before a missing row (404) before a
  conflict with the row's state (409).
- Completion is *effective*: a worker's mark (``production_schedule_progress``) OR the source's
  (``production_schedule_external_completion``). An empty ``progress`` cell in a later file can
  clear the source's flag but never a worker's.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    Select,
    String,
    and_,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased

from csvboard.clock import utcnow
from csvboard.dashboards.columns import COMPLETED_MARK, PRODUCTION_SCHEDULE
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.presets import MACHINE_PART_PREFIXES
from csvboard.dashboards.service import processing_types
from csvboard.db import upsert
from csvboard.db.cursor import bad_cursor, decode_cursor, encode_cursor
from csvboard.errors import Conflict, InvalidRequest, NotFound
from csvboard.schedule.models import (
    MAX_NOTE_LENGTH,
    MAX_ORDER_NUMBER,
    ProductionScheduleExternalCompletion,
    ProductionScheduleProgress,
    ProductionScheduleRowDueDate,
    ProductionScheduleRowNote,
    ProductionScheduleRowOrder,
    ProductionScheduleRowProcessing,
)

CompletionFilter = Literal["all", "complete", "incomplete"]
CompletionIntent = Literal["complete", "incomplete"]

MAX_SEARCH_TOKENS = 8
SEIBAN_LENGTH = 8
MAX_PAGE_SIZE = 2000
MAX_SEARCH_IDS = 1000  # a search's matches fetched by id at most (see _searched_ids)
MAX_ACTOR_LENGTH = 64  # updated_by is varchar(64)

# Search separators as typed: every character whose NFKC form is "," or "、" (full-width ，,
# half-width ､, small and vertical presentation forms).
_TYPED_SEPARATORS = re.compile("[,、，､﹐﹑︐︑]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_COLUMN_NAME = re.compile(r"[A-Za-z0-9_]+")
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = _ASCII_UPPER.lower()

_Progress = ProductionScheduleProgress
_External = ProductionScheduleExternalCompletion
_Note = ProductionScheduleRowNote
_Due = ProductionScheduleRowDueDate
_Processing = ProductionScheduleRowProcessing
_Order = ProductionScheduleRowOrder
_R = CsvDashboardRow


def _actor(by: str | None) -> str | None:
    # Who tapped is informational; a long principal name must not make the tap fail.
    return None if by is None else by[:MAX_ACTOR_LENGTH]


# --- SQL building blocks ------------------------------------------------------------------


class _Fields:
    """The CSV values the schedule sorts, filters and groups by, extracted in SQL.

    PostgreSQL reads ``row_data->>'X'``, SQLite ``json_extract(row_data, '$."X"')``. Text sort
    keys use the C collation on PostgreSQL so that ordering (and the keyset cursor's
    comparisons) are byte order on both engines, whatever the database's locale.
    """

    def __init__(self, dialect: str, table: Any = CsvDashboardRow) -> None:
        self.dialect = dialect
        self.table = table  # the rows table, or an alias of it
        self.is_pg = dialect == "postgresql"
        self.seiban = self.sort_text("FSEIBAN")
        self.product_no = self.sort_text("ProductNo")
        self.hincd = self.sort_text("FHINCD")
        self.hinmei = self.text("FHINMEI")
        self.resource = self.sort_text("FSIGENCD")  # byte order on both engines, like 製番
        self.resource_name = self.text("FSIGENMEI")
        kojun = func.nullif(self.raw("FKOJUN"), "")
        self.kojun: ColumnElement[int] = cast(func.coalesce(kojun, "0"), BigInteger)
        self.sort_keys: tuple[ColumnElement[Any], ...] = (
            self.seiban,
            self.product_no,
            self.kojun,
            self.hincd,
            table.id.expression,
        )

    def raw(self, name: str) -> ColumnElement[str]:
        # The key is rendered as a literal, not a bind parameter: only then is the expression
        # the very one of the schedule index (migration 0004), which both planners match
        # structurally. Names come from the preset, never from a request.
        if not _COLUMN_NAME.fullmatch(name):
            raise ValueError(f"not a preset column name: {name!r}")
        if self.is_pg:
            key = literal_column(f"'{name}'", String)
            return type_coerce(self.table.row_data, JSONB).op("->>", return_type=String)(key)
        path: ColumnElement[str] = literal_column(f"""'$."{name}"'""")
        return func.json_extract(self.table.row_data, path, type_=String)

    def text(self, name: str) -> ColumnElement[str]:
        return func.coalesce(self.raw(name), literal_column("''", String), type_=String)

    def sort_text(self, name: str) -> ColumnElement[str]:
        value = self.text(name)
        return value.collate("C") if self.is_pg else value

    def fold(self, expr: ColumnElement[str]) -> ColumnElement[str]:
        """Lower-case ASCII letters only, the same on both engines.

        SQLite's ``lower`` folds ASCII only; PostgreSQL's folds every script by locale. A
        ``translate`` of A–Z on PostgreSQL keeps "case-insensitive for ASCII" identical there.
        """
        if self.is_pg:
            return func.translate(expr, _ASCII_UPPER, _ASCII_LOWER, type_=String)
        return func.lower(expr, type_=String)

    def active(self) -> ColumnElement[bool]:
        """The row is active (in the official schedule), as each planner reads it best.

        SQLite, which has no statistics, would pick the (dashboard, is_active) index for the
        bare column and read and sort every active row of the dashboard instead of walking a
        scope's range of a schedule index in kiosk order; an expression keeps it off that
        index. PostgreSQL estimates the expression at 0.5 % of the rows and then prefers
        sorting a resource's every step to walking it in order (200,000 steps: 43 ms against
        0.5 ms for a page), so it gets the column, whose statistics it has.
        """
        active: ColumnElement[bool] = (
            self.table.is_active == True  # noqa: E712
            if self.is_pg
            else _active_first(self.table) == 0
        )
        return active

    def machine_row(self) -> ColumnElement[bool]:
        """品番 MH…/SH…: the machine being built, not a step (case-sensitive, like the preset)."""
        return func.substr(self.hincd, 1, 2).in_(MACHINE_PART_PREFIXES)


@functools.cache
def _fields_for(dialect: str) -> _Fields:
    return _Fields(dialect)


def _fields(session: Session) -> _Fields:
    # Built once per dialect: constructing these expressions is a good part of a kiosk
    # write's CPU time, and they never change (SQLAlchemy statements are immutable).
    return _fields_for(session.get_bind().dialect.name)


def _active_first(table: Any) -> ColumnElement[Any]:
    return case((table.is_active == True, 0), else_=1)  # noqa: E712


@functools.cache
def _machine_name_column(f: _Fields) -> Any:
    """The machine name of the outer row's 製番, as a correlated subquery (same rule as
    :func:`_machine_names`: an active machine row first, then the newest order)."""
    m = _Fields(f.dialect, aliased(CsvDashboardRow, name="machine"))
    return (
        select(m.hinmei)
        .where(
            m.table.csv_dashboard_id == _R.csv_dashboard_id,
            m.machine_row(),
            m.seiban == f.seiban,
        )
        # "active first" as an expression: a bare is_active would tempt SQLite (which has no
        # statistics) into the (dashboard, is_active) index, reading the whole dashboard.
        .order_by(_active_first(m.table), m.product_no.desc(), m.hincd, m.table.id)
        .limit(1)
        .correlate(_R)
        .scalar_subquery()
        .label("machine_name")
    )


def _effective() -> ColumnElement[bool]:
    """Effective completion in SQL: the worker's mark OR the source's (missing = not done)."""
    return or_(
        func.coalesce(_Progress.is_completed, false()) == True,  # noqa: E712
        func.coalesce(_External.is_completed, false()) == True,  # noqa: E712
    )


@functools.cache
def _composed_select(f: _Fields) -> Select[Any]:
    """One row per dashboard row with every operator record LEFT JOINed (1:1 tables)."""
    return (
        select(
            _R.id,
            _R.csv_dashboard_id,
            _R.row_key,
            _R.row_data,
            _R.supplement_data,
            _R.is_active,
            _R.updated_at,
            _Progress.is_completed.label("manual_completed"),
            _Progress.updated_at.label("progress_at"),
            _External.is_completed.label("external_completed"),
            _External.updated_at.label("external_at"),
            _Note.note,
            _Note.updated_at.label("note_at"),
            _Due.due_date,
            _Due.updated_at.label("due_at"),
            _Processing.processing_type,
            _Processing.updated_at.label("processing_at"),
            _Order.resource_cd.label("order_resource_cd"),
            _Order.order_number,
            _Order.updated_at.label("order_at"),
            *(key.label(f"sort_{i}") for i, key in enumerate(f.sort_keys[:4])),
        )
        .select_from(_R)
        .outerjoin(_Progress, _Progress.csv_dashboard_row_id == _R.id)
        .outerjoin(_External, _External.csv_dashboard_row_id == _R.id)
        .outerjoin(_Note, _Note.csv_dashboard_row_id == _R.id)
        .outerjoin(_Due, _Due.csv_dashboard_row_id == _R.id)
        .outerjoin(_Processing, _Processing.csv_dashboard_row_id == _R.id)
        .outerjoin(_Order, _Order.csv_dashboard_row_id == _R.id)
    )


def _machine_names(
    session: Session, f: _Fields, dashboard_id: uuid.UUID, seibans: set[str]
) -> dict[str, str]:
    """FHINMEI of each 製番's machine row (an active one first, then the newest order)."""
    if not seibans:
        return {}
    rows = session.execute(
        select(f.seiban, f.hinmei)
        .where(
            _R.csv_dashboard_id == dashboard_id,
            f.machine_row(),
            f.seiban.in_(sorted(seibans)),
        )
        .order_by(f.seiban, _active_first(_R), f.product_no.desc(), f.hincd, _R.id)
    )
    names: dict[str, str] = {}
    for seiban, hinmei in rows:
        names.setdefault(seiban, hinmei)
    return names


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _compose(row: Row[Any], machine_names: dict[str, str]) -> dict[str, Any]:
    """The API's row: the CSV's values plus operator data, ``progress`` synthesised on a copy."""
    manual = bool(row.manual_completed)
    external = bool(row.external_completed)
    completed = manual or external
    row_data = dict(row.row_data or {})  # a copy: the stored row_data never holds progress
    row_data["progress"] = COMPLETED_MARK if completed else ""
    stamps = [
        s
        for s in (
            row.updated_at,
            row.progress_at,
            row.note_at,
            row.due_at,
            row.processing_at,
            row.order_at,
            row.external_at,
        )
        if s is not None
    ]
    order = (
        None
        if row.order_number is None
        else {"resource_cd": row.order_resource_cd, "order_number": int(row.order_number)}
    )
    return {
        "id": str(row.id),
        "row_key": row.row_key,
        "row_data": row_data,
        "supplement_data": dict(row.supplement_data or {}),
        "is_active": bool(row.is_active),
        "completed": completed,
        "manual_completed": manual,
        "external_completed": external,
        "note": row.note,
        "due_date": None if row.due_date is None else row.due_date.isoformat(),
        "processing_type": row.processing_type,
        "order": order,
        "machine_name": machine_names.get(row.sort_0),
        "updated_at": _iso(max(stamps)) if stamps else None,
    }


# --- search, cursor -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """A search term: NFKC-normalised (what key columns hold) and as typed (for 品名)."""

    value: str
    typed: str


def _split_search(q: str | None) -> list[_Token]:
    if q is None:
        return []
    tokens: list[_Token] = []
    for piece in _TYPED_SEPARATORS.split(q):
        value = unicodedata.normalize("NFKC", piece).strip()
        if value:
            tokens.append(_Token(value=value, typed=piece.strip()))
    if len(tokens) > MAX_SEARCH_TOKENS:
        raise InvalidRequest(
            "TOO_MANY_TOKENS",
            f"{len(tokens)} search terms; at most {MAX_SEARCH_TOKENS} are allowed",
        )
    return tokens


def search_tokens(q: str | None) -> list[str]:
    """Split a search string into tokens: ``,`` / ``、`` / ``，``, NFKC, trimmed, non-empty."""
    return [t.value for t in _split_search(q)]


def _ascii_lower(value: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in value)


def _contains(f: _Fields, expr: ColumnElement[str], token: str) -> ColumnElement[bool]:
    escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{_ascii_lower(escaped)}%"
    if f.is_pg:
        return f.fold(expr).like(pattern, escape="\\")
    # SQLite's LIKE already ignores the case of ASCII letters (and only theirs), which is what
    # fold() means; without the lower() call a search reads the index about twice as fast.
    return expr.like(pattern, escape="\\")


def _token_condition(f: _Fields, token: _Token) -> ColumnElement[bool]:
    """docs/contract.md §5: 8 characters → 製番 exactly or 品番/ProductNo partly; digits →
    ProductNo/品番 partly; anything else → 製番/品番/品名 partly. ASCII letters match in either
    case.

    Key columns and numbers are stored NFKC-normalised, so they are matched with the
    normalised token. 品名 keeps the characters the ERP wrote (㈱, ①), which NFKC would turn
    into (株), 1: it matches the token as normalised or as typed.
    """
    value = token.value
    if len(value) == SEIBAN_LENGTH:
        return or_(
            f.fold(f.seiban) == _ascii_lower(value),
            _contains(f, f.hincd, value),
            _contains(f, f.product_no, value),
        )
    if value.isascii() and value.isdigit():
        return or_(_contains(f, f.product_no, value), _contains(f, f.hincd, value))
    names = [_contains(f, f.hinmei, value)]
    if token.typed != value:
        names.append(_contains(f, f.hinmei, token.typed))
    return or_(_contains(f, f.seiban, value), _contains(f, f.hincd, value), *names)


def normalized_codes(values: Sequence[str]) -> list[str]:
    """Resource codes or 製番 as a scope names them: NFKC, trimmed, distinct, sorted."""
    return sorted({unicodedata.normalize("NFKC", v).strip() for v in values} - {""})


def _sort_values(row: Row[Any]) -> tuple[str, str, int, str, uuid.UUID]:
    """A composed row's kiosk sort key as Python compares it: code-point order of text is
    the byte order both engines sort by (C collation, SQLite's BINARY), and UUIDs compare as
    their 16 bytes there too."""
    return (row.sort_0, row.sort_1, int(row.sort_2), row.sort_3, row.id)


def _encode_cursor(row: Row[Any]) -> str:
    seiban, product_no, kojun, hincd, row_id = _sort_values(row)
    return encode_cursor([seiban, product_no, kojun, hincd, str(row_id)])


def _decode_cursor(cursor: str) -> tuple[str, str, int, str, uuid.UUID]:
    seiban, product_no, kojun, hincd, row_id = decode_cursor(cursor, str, str, int, str, str)
    try:
        parsed_id = uuid.UUID(row_id)
    except ValueError as exc:
        raise bad_cursor() from exc
    return seiban, product_no, kojun, hincd, parsed_id


def _after(keys: Sequence[ColumnElement[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """Keyset predicate ``keys > values`` in lexicographic order, spelled out term by term."""
    terms = [
        and_(*(keys[j] == values[j] for j in range(i)), keys[i] > values[i])
        for i in range(len(keys))
    ]
    return or_(*terms)


def _require_schedule(dashboard_kind: str, what: str) -> None:
    if dashboard_kind != PRODUCTION_SCHEDULE:
        raise InvalidRequest("NOT_A_SCHEDULE", f"{what} is not on a production-schedule dashboard")


# --- reads --------------------------------------------------------------------------------


def list_rows(
    session: Session,
    dashboard: CsvDashboard,
    *,
    q: str | None = None,
    resources: Sequence[str] = (),
    completion: CompletionFilter = "all",
    has_note: bool | None = None,
    has_due_date: bool | None = None,
    include_retired: bool = False,
    include_machine_rows: bool = False,
    seibans: Sequence[str] = (),
    cursor: str | None = None,
    limit: int = 500,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of composed steps in kiosk order, and the cursor of the next page (or None).

    Filtering, searching, sorting and paging all happen in SQL so a page costs the same on a
    schedule of 100 or 100,000 rows. The cursor is keyset (the last row's sort values), so a
    row changed or added between pages never makes another appear twice or be skipped.

    ``resources`` and ``seibans`` are the kiosk's scope (AND-ed with each other and the
    filters; each a set of alternatives). A scope of 製番 reads those 製番' ranges of the
    schedule index one after the other; a scope of several resources reads each resource's
    range of the resource index in kiosk order (one statement each, ``limit + 1`` rows at
    most) and merges the pages here: one statement with ``IN`` would read every step of those
    resources and sort them.
    """
    _require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest("INVALID_LIMIT", f"limit must be 1–{MAX_PAGE_SIZE}, not {limit!r}")
    if completion not in ("all", "complete", "incomplete"):
        raise InvalidRequest(
            "INVALID_COMPLETION_FILTER",
            f"completion must be all, complete or incomplete, not {completion!r}",
        )
    tokens = _split_search(q)
    after = _decode_cursor(cursor) if cursor else None

    f = _fields(session)
    wanted = normalized_codes(resources)
    wanted_seibans = normalized_codes(seibans)
    rows_of: list[ColumnElement[bool]] = []  # which rows of the dashboard (before filters)
    if not include_retired:
        rows_of.append(f.active())
    if not include_machine_rows:
        rows_of.append(~f.machine_row())
    # The page is chosen from the rows table alone — operator data as EXISTS tests, not joins
    # — so both planners walk the scope's index in kiosk order and stop at the page's end;
    # joined, PostgreSQL read and sorted a resource's every step (200,000 steps: 170 ms).
    # Then only the page's rows are composed.
    found = _searched_ids(session, f, dashboard, tokens, rows_of, wanted or wanted_seibans)
    page = select(_R.id, *(k.label(f"sort_{i}") for i, k in enumerate(f.sort_keys[:4])))
    page = page.where(*rows_of)
    if found is None:
        page = page.where(_R.csv_dashboard_id == dashboard.id)
    else:
        # By primary key, without the dashboard (every id is one of its rows): with it,
        # SQLite would walk the dashboard's schedule index instead of probing the ids.
        page = page.where(_R.id.in_(found))
    if completion == "complete":
        page = page.where(_effective_exists())
    elif completion == "incomplete":
        page = page.where(~_effective_exists())
    if has_note is not None:
        page = page.where(_has(_Note) if has_note else ~_has(_Note))
    if has_due_date is not None:
        page = page.where(_has(_Due) if has_due_date else ~_has(_Due))
    if tokens:
        page = page.where(or_(*(_token_condition(f, t) for t in tokens)))
    if after is not None:
        # The leading 製番 bound is implied by the keyset predicate but, unlike the OR of
        # terms, both planners can seek with it: a deep page starts at its place in the
        # index instead of reading the scope's range from its beginning.
        page = page.where(f.seiban >= after[0], _after(f.sort_keys, after))
    page = page.order_by(*f.sort_keys).limit(limit + 1)

    keys: list[Row[Any]] = []
    if wanted_seibans:
        # 製番 is the first sort key, so a scope of 製番 is the 製番' ranges one after the
        # other: read them in order until the page is full (with IN, PostgreSQL 15 walks the
        # dashboard's whole schedule index in order, filtering).
        if wanted:
            page = page.where(f.resource.in_(wanted))
        for seiban in wanted_seibans:
            if after is not None and seiban < after[0]:
                continue
            keys += session.execute(page.where(f.seiban == seiban).limit(limit + 1 - len(keys)))
            if len(keys) > limit:
                break
    elif len(wanted) > 1:
        merged = heapq.merge(
            *(session.execute(page.where(f.resource == code)).all() for code in wanted),
            key=_sort_values,
        )
        keys = list(itertools.islice(merged, limit + 1))
    else:
        if wanted:
            page = page.where(f.resource.in_(wanted))
        keys = list(session.execute(page))
    more = len(keys) > limit
    keys = keys[:limit]
    rows = _composed_by_id(session, f, [k.id for k in keys])
    names = _machine_names(session, f, dashboard.id, {r.sort_0 for r in rows})
    # From the page's own sort values: a row changed or purged between the two statements
    # cannot move the cursor.
    next_cursor = _encode_cursor(keys[-1]) if more and keys else None
    return [_compose(r, names) for r in rows], next_cursor


def _composed_by_id(session: Session, f: _Fields, ids: list[uuid.UUID]) -> list[Row[Any]]:
    """The composed rows of ``ids``, in that order (by primary key: at most a page)."""
    if not ids:
        return []
    found = {r.id: r for r in session.execute(_composed_select(f).where(_R.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def _has(model: Any) -> ColumnElement[bool]:
    """The row has a record in ``model`` (a 1:1 operator table), as an EXISTS test."""
    return exists().where(model.csv_dashboard_row_id == _R.id)


def _effective_exists() -> ColumnElement[bool]:
    """Effective completion as EXISTS tests (the worker's mark OR the source's)."""
    return or_(
        exists().where(_Progress.csv_dashboard_row_id == _R.id, _Progress.is_completed == True),  # noqa: E712
        exists().where(_External.csv_dashboard_row_id == _R.id, _External.is_completed == True),  # noqa: E712
    )


def _searched_ids(
    session: Session,
    f: _Fields,
    dashboard: CsvDashboard,
    tokens: list[_Token],
    rows_of: list[ColumnElement[bool]],
    scoped: Sequence[str],
) -> list[uuid.UUID] | None:
    """The ids a search without a scope matches, when few; else None (page the usual way).

    A search for a 製番 or a number (ProductNo, 品番) only looks at values the resource index
    holds (migration 0006), so the matches are found by reading that index alone, without
    parsing any row's JSON: 200,000 steps in tens of milliseconds instead of a scan of the
    table in kiosk order that reads and parses every row until the page is full. Text tokens
    also match 品名, which no index holds; they, and a scope (whose index range is small), go
    the usual way, as do many matches (the page then fills quickly in kiosk order).
    """
    if not tokens or scoped or not all(_index_only(t) for t in tokens):
        return None
    ids = session.scalars(
        select(_R.id)
        .where(
            _R.csv_dashboard_id == dashboard.id,
            *rows_of,
            or_(*(_token_condition(f, t) for t in tokens)),
        )
        .limit(MAX_SEARCH_IDS + 1)
    ).all()
    return list(ids) if len(ids) <= MAX_SEARCH_IDS else None


def _index_only(token: _Token) -> bool:
    """Whether :func:`_token_condition` looks only at 製番, 品番 and ProductNo for it."""
    value = token.value
    return len(value) == SEIBAN_LENGTH or (value.isascii() and value.isdigit())


def get_row(session: Session, row_id: uuid.UUID) -> dict[str, Any]:
    """One composed row, retired or not (404 ROW_NOT_FOUND)."""
    f = _fields(session)
    row = session.execute(
        _composed_select(f)
        .add_columns(CsvDashboard.kind, _machine_name_column(f))
        .join(CsvDashboard, CsvDashboard.id == _R.csv_dashboard_id)
        .where(_R.id == _row_uuid(row_id))
    ).first()
    if row is None:
        raise NotFound("ROW_NOT_FOUND", f"no row {row_id}")
    _require_schedule(row.kind, f"row {row_id}")
    names = {} if row.machine_name is None else {row.sort_0: row.machine_name}
    return _compose(row, names)


def _active_steps(f: _Fields, dashboard: CsvDashboard, *columns: Any) -> Select[Any]:
    """``columns`` over the dashboard's active steps (machine rows excluded), each with its
    two completion records; the joins are restricted to the dashboard so the
    (csv_dashboard_id, is_completed) indexes serve them. What every progress count reads."""
    return (
        select(*columns)
        .select_from(_R)
        .outerjoin(
            _Progress,
            and_(
                _Progress.csv_dashboard_row_id == _R.id, _Progress.csv_dashboard_id == dashboard.id
            ),
        )
        .outerjoin(
            _External,
            and_(
                _External.csv_dashboard_row_id == _R.id, _External.csv_dashboard_id == dashboard.id
            ),
        )
        .where(_R.csv_dashboard_id == dashboard.id, f.active(), ~f.machine_row())
    )


def _done_count() -> ColumnElement[int]:
    """How many of the counted steps are effectively complete."""
    return func.coalesce(func.sum(case((_effective(), 1), else_=0)), 0)


def _incomplete_parts(
    session: Session, f: _Fields, dashboard: CsvDashboard, *where: ColumnElement[bool]
) -> dict[str, list[str]]:
    """品名 of the parts with incomplete active steps, per 製番, in kiosk order of the parts."""
    parts: dict[str, list[str]] = {}
    for seiban, hinmei in session.execute(
        _active_steps(f, dashboard, f.seiban, f.hinmei)
        .where(~_effective(), *where)
        .group_by(f.seiban, f.hinmei)
        .order_by(f.seiban, func.min(f.product_no), func.min(f.hincd), f.hinmei)
    ):
        parts.setdefault(seiban, []).append(hinmei)
    return parts


def progress_summary(session: Session, dashboard: CsvDashboard) -> dict[str, Any]:
    """Totals by resource and by 製番 over active steps, with effective completion.

    Set-based: a few GROUP BY queries; the progress join is restricted to the dashboard so the
    (csv_dashboard_id, is_completed) index serves it. Only the names of incomplete parts come
    back per 製番, never the rows.
    """
    _require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    f = _fields(session)
    done = _done_count()
    total = func.count()
    base = functools.partial(_active_steps, f, dashboard)
    by_resource = [
        {
            "resource_cd": resource_cd,
            "resource_name": resource_name or None,
            "total": int(n),
            "completed": int(c),
        }
        for resource_cd, resource_name, n, c in session.execute(
            base(f.resource, func.max(f.resource_name), total, done)
            .group_by(f.resource)
            .order_by(f.resource)
        )
    ]
    seiban_rows = list(
        session.execute(base(f.seiban, total, done).group_by(f.seiban).order_by(f.seiban))
    )
    incomplete = _incomplete_parts(session, f, dashboard)
    names = _machine_names(session, f, dashboard.id, {r[0] for r in seiban_rows})
    by_seiban = [
        {
            "fseiban": seiban,
            "machine_name": names.get(seiban),
            "total": int(n),
            "completed": int(c),
            "incomplete_parts": incomplete.get(seiban, []),
        }
        for seiban, n, c in seiban_rows
    ]
    return {
        "total": sum(r["total"] for r in by_resource),
        "completed": sum(r["completed"] for r in by_resource),
        "by_resource": by_resource,
        "by_seiban": by_seiban,
    }


# --- writes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What a write needs to know about its row, read without any row lock."""

    id: uuid.UUID
    dashboard_id: uuid.UUID
    is_active: bool
    row_data: dict[str, Any]


def _row_uuid(row_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(row_id, uuid.UUID):
        return row_id
    try:
        return uuid.UUID(str(row_id))
    except ValueError as exc:
        raise NotFound("ROW_NOT_FOUND", f"no row {row_id}") from exc


def _target(session: Session, row_id: uuid.UUID) -> _Target:
    """The row a write is aimed at (404 ROW_NOT_FOUND, 400 NOT_A_SCHEDULE).

    A plain SELECT: on PostgreSQL it takes no row lock, so it never queues behind an
    ingestion's merge.
    """
    rid = _row_uuid(row_id)
    found = session.execute(
        select(
            _R.id,
            _R.csv_dashboard_id,
            _R.is_active,
            _R.row_data,
            CsvDashboard.kind,
        )
        .join(CsvDashboard, CsvDashboard.id == _R.csv_dashboard_id)
        .where(_R.id == rid)
    ).first()
    if found is None:
        raise NotFound("ROW_NOT_FOUND", f"no row {row_id}")
    _require_schedule(found.kind, f"row {row_id}")
    return _Target(
        id=found.id,
        dashboard_id=found.csv_dashboard_id,
        is_active=bool(found.is_active),
        row_data=dict(found.row_data or {}),
    )


def _require_active(target: _Target) -> None:
    if not target.is_active:
        raise Conflict(
            "ROW_RETIRED",
            "this step is no longer in the official schedule (retired); it is not on the board",
        )


def _upsert(
    session: Session, model: Any, target: _Target, values: dict[str, Any], by: str | None
) -> None:
    """INSERT … ON CONFLICT (row id) DO UPDATE; an identical repeat changes nothing at all."""
    payload = {
        "csv_dashboard_row_id": target.id,
        "csv_dashboard_id": target.dashboard_id,
        "updated_by": _actor(by),
        "updated_at": utcnow(),
        **values,
    }
    stmt = upsert.insert(session, model).values(**payload)
    changed = or_(*(getattr(model, k).is_distinct_from(stmt.excluded[k]) for k in values))
    stmt = stmt.on_conflict_do_update(
        index_elements=[model.csv_dashboard_row_id],
        set_={k: stmt.excluded[k] for k in ("updated_by", "updated_at", *values)},
        where=changed,
    )
    session.execute(stmt)


def _delete(session: Session, model: Any, target: _Target) -> None:
    session.execute(delete(model).where(model.csv_dashboard_row_id == target.id))


def _lock_resource_orders(session: Session, dashboard_id: uuid.UUID, resource_cd: str) -> None:
    """Serialise order-number changes of one dashboard+resource (PostgreSQL).

    Two planners renumbering the same machine at once would otherwise race between reading the
    numbers and shifting them. The lock is an advisory one on its own key: ingestion never
    takes it, so it never makes a kiosk write wait for a run. SQLite's write lock (taken at
    BEGIN IMMEDIATE) already serialises writers.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"csvboard:orders:{dashboard_id}:{resource_cd}"},
        )


def _resource_of(target: _Target) -> str:
    return str(target.row_data.get("FSIGENCD", "")).strip()


def _release_order(session: Session, target: _Target, by: str | None) -> None:
    """Delete the row's order number and move every later number of its resource up by one.

    UNIQUE (dashboard, resource, order) is checked row by row on both engines, so a single
    ``SET order_number = order_number - 1`` could collide mid-statement. Instead each later
    row is moved in ascending order, one statement each (at most 10): the number it moves to
    has just been vacated.
    """
    # An order's resource is always the row's FSIGENCD (a key column, so it never changes):
    # lock before reading, so a concurrent set_order on this resource is fully before or after.
    _lock_resource_orders(session, target.dashboard_id, _resource_of(target))
    current = session.execute(
        select(_Order.resource_cd, _Order.order_number).where(
            _Order.csv_dashboard_row_id == target.id
        )
    ).first()
    if current is None:
        return
    _delete(session, _Order, target)
    behind = session.execute(
        select(_Order.csv_dashboard_row_id, _Order.order_number)
        .where(
            _Order.csv_dashboard_id == target.dashboard_id,
            _Order.resource_cd == current.resource_cd,
            _Order.order_number > current.order_number,
        )
        .order_by(_Order.order_number)
    ).all()
    now = utcnow()
    for row_id, number in behind:
        session.execute(
            update(_Order)
            .where(_Order.csv_dashboard_row_id == row_id)
            .values(order_number=number - 1, updated_at=now, updated_by=_actor(by))
        )


def _effectively_completed(session: Session, target: _Target) -> bool:
    manual = session.scalar(
        select(_Progress.is_completed).where(_Progress.csv_dashboard_row_id == target.id)
    )
    external = session.scalar(
        select(_External.is_completed).where(_External.csv_dashboard_row_id == target.id)
    )
    return bool(manual) or bool(external)


def set_completion(
    session: Session, row_id: uuid.UUID, intent: str, *, by: str | None
) -> dict[str, Any]:
    """Mark a step complete or not complete — an intent, never a toggle.

    A double tap sends the same intent twice and lands in the same state. Completing releases
    the step's order number and closes the gap behind it in the same transaction. Marking a
    step incomplete clears only the worker's mark: if the source reports it done, it stays
    (effectively) complete, and the returned row says so.
    """
    if intent not in ("complete", "incomplete"):
        raise InvalidRequest(
            "INVALID_INTENT", f"intent must be 'complete' or 'incomplete', not {intent!r}"
        )
    target = _target(session, row_id)
    _require_active(target)
    completed = intent == "complete"
    _upsert(session, _Progress, target, {"is_completed": completed}, by)
    if completed:
        _release_order(session, target, by)
    return get_row(session, target.id)


def set_note(session: Session, row_id: uuid.UUID, note: str, *, by: str | None) -> dict[str, Any]:
    """Write the step's one-line note (≤ 100 characters); an empty note deletes it."""
    if not isinstance(note, str):
        raise InvalidRequest("INVALID_NOTE", "the note must be text")
    if "\r" in note or "\n" in note:
        raise InvalidRequest("INVALID_NOTE", "the note must be one line (no line breaks)")
    if "\x00" in note:
        raise InvalidRequest("INVALID_NOTE", "the note contains a NUL character")
    value = note.strip()
    if len(value) > MAX_NOTE_LENGTH:
        raise InvalidRequest(
            "INVALID_NOTE",
            f"the note is {len(value)} characters long; at most {MAX_NOTE_LENGTH} are allowed",
        )
    target = _target(session, row_id)
    _require_active(target)
    if value:
        _upsert(session, _Note, target, {"note": value}, by)
    else:
        _delete(session, _Note, target)
    return get_row(session, target.id)


def _parse_due(due: date | str | None) -> date | None:
    if due is None:
        return None
    if isinstance(due, datetime):
        raise InvalidRequest("INVALID_DUE_DATE", "the due date must be a date, not a date-time")
    if isinstance(due, date):
        return due
    if not isinstance(due, str):
        raise InvalidRequest("INVALID_DUE_DATE", "the due date must be YYYY-MM-DD")
    value = unicodedata.normalize("NFKC", due).strip()
    if not value:
        return None
    if _ISO_DATE.fullmatch(value) is None:
        raise InvalidRequest("INVALID_DUE_DATE", f"{due!r} is not a date of the form YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest("INVALID_DUE_DATE", f"{due!r} is not a valid date") from exc


def set_due_date(
    session: Session, row_id: uuid.UUID, due: date | str | None, *, by: str | None
) -> dict[str, Any]:
    """Set the step's due date (``YYYY-MM-DD`` or a date); empty or None clears it."""
    value = _parse_due(due)
    target = _target(session, row_id)
    _require_active(target)
    if value is None:
        _delete(session, _Due, target)
    else:
        _upsert(session, _Due, target, {"due_date": value}, by)
    return get_row(session, target.id)


def set_processing_type(
    session: Session, row_id: uuid.UUID, value: str | None, *, by: str | None
) -> dict[str, Any]:
    """Set the step's processing type from its dashboard's option list; empty clears it."""
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("INVALID_PROCESSING_TYPE", "the processing type must be text")
    wanted = unicodedata.normalize("NFKC", value or "").strip()
    target = _target(session, row_id)
    chosen: str | None = None
    if wanted:
        dashboard = session.get(CsvDashboard, target.dashboard_id)
        options = processing_types(dashboard) if dashboard is not None else ()
        chosen = next(
            (o for o in options if unicodedata.normalize("NFKC", o).strip() == wanted), None
        )
        if chosen is None:
            raise InvalidRequest(
                "INVALID_PROCESSING_TYPE",
                f"{value!r} is not one of this dashboard's processing types: " + ", ".join(options),
            )
    _require_active(target)
    if chosen is None:
        _delete(session, _Processing, target)
    else:
        _upsert(session, _Processing, target, {"processing_type": chosen}, by)
    return get_row(session, target.id)


def set_order(
    session: Session,
    row_id: uuid.UUID,
    resource_cd: str,
    order_number: int | None,
    *,
    by: str | None,
) -> dict[str, Any]:
    """Assign the step's machining order (1–10) on its resource, or clear it with None.

    The number must be free on the dashboard+resource (409 ORDER_NUMBER_TAKEN) — a planner
    picks a slot, nothing is silently displaced. Clearing closes the gap behind the number,
    as completing does. A completed step has no place in the queue (409 STEP_COMPLETED).
    """
    if order_number is not None and (
        isinstance(order_number, bool)
        or not isinstance(order_number, int)
        or not 1 <= order_number <= MAX_ORDER_NUMBER
    ):
        raise InvalidRequest(
            "INVALID_ORDER",
            f"the order number must be 1–{MAX_ORDER_NUMBER}, not {order_number!r}",
        )
    resource = unicodedata.normalize("NFKC", resource_cd or "").strip()
    target = _target(session, row_id)
    row_resource = _resource_of(target)
    if not resource or resource != row_resource:
        raise InvalidRequest(
            "RESOURCE_MISMATCH",
            f"this step is on resource {row_resource!r}, not {resource_cd!r}",
        )
    _require_active(target)
    if order_number is None:
        _release_order(session, target, by)
        return get_row(session, target.id)
    # Lock first: a completion committed while we waited releases orders, so check after it.
    _lock_resource_orders(session, target.dashboard_id, resource)
    if _effectively_completed(session, target):
        raise Conflict("STEP_COMPLETED", "a completed step cannot be given an order number")
    holder = session.scalar(
        select(_Order.csv_dashboard_row_id).where(
            _Order.csv_dashboard_id == target.dashboard_id,
            _Order.resource_cd == resource,
            _Order.order_number == order_number,
        )
    )
    if holder is not None and holder != target.id:
        raise Conflict(
            "ORDER_NUMBER_TAKEN",
            f"order number {order_number} on resource {resource} is already given to another step",
        )
    _upsert(
        session,
        _Order,
        target,
        {"resource_cd": resource, "order_number": order_number},
        by,
    )
    return get_row(session, target.id)


__all__ = [
    "CompletionFilter",
    "CompletionIntent",
    "get_row",
    "list_rows",
    "progress_summary",
    "search_tokens",
    "set_completion",
    "set_due_date",
    "set_note",
    "set_order",
    "set_processing_type",
]
