"""The production schedule's rows as a kiosk reads them: one page of composed steps in kiosk
order, searched, filtered and scoped, with its keyset cursor; and one composed step
(docs/contract.md §5).

Filtering, searching, sorting and paging all happen in SQL, so a page costs the same on a
schedule of 100 or 100,000 rows. The caller owns the transaction (``read_session``).
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, and_, exists, or_, select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.db.cursor import bad_cursor, decode_cursor, encode_cursor
from csvboard.errors import InvalidRequest, NotFound
from csvboard.schedule.access import require_schedule, row_uuid
from csvboard.schedule.composed import (
    compose,
    composed_by_id,
    composed_select,
    machine_name_column,
    machine_names,
    sort_values,
)
from csvboard.schedule.expressions import Fields, fields
from csvboard.schedule.models import (
    ProductionScheduleRowDueDate,
    ProductionScheduleRowNote,
    ProductionScheduleRowOrder,
    completed_exists,
)
from csvboard.schedule.search import (
    Token,
    index_only,
    normalized_codes,
    split_search,
    token_condition,
)

CompletionFilter = Literal["all", "complete", "incomplete"]

MAX_PAGE_SIZE = 2000
MAX_SEARCH_IDS = 1000  # a search's matches fetched by id at most (see _searched_ids)

_Note = ProductionScheduleRowNote
_Due = ProductionScheduleRowDueDate
_Order = ProductionScheduleRowOrder
_R = CsvDashboardRow


def _encode_cursor(row: Row[Any]) -> str:
    seiban, product_no, kojun, hincd, row_id = sort_values(row)
    return encode_cursor([seiban, product_no, kojun, hincd, str(row_id)])


def _decode_cursor(cursor: str) -> tuple[str, str, int, str, uuid.UUID]:
    seiban, product_no, kojun, hincd, row_id = decode_cursor(cursor, str, str, int, str, str)
    try:
        parsed_id = uuid.UUID(row_id)
    except ValueError as exc:
        raise bad_cursor() from exc
    return seiban, product_no, kojun, hincd, parsed_id


def keys_after(keys: Sequence[ColumnElement[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """Keyset predicate ``keys > values`` in lexicographic order, spelled out term by term."""
    terms = [
        and_(*(keys[j] == values[j] for j in range(i)), keys[i] > values[i])
        for i in range(len(keys))
    ]
    return or_(*terms)


def list_rows(
    session: Session,
    dashboard: CsvDashboard,
    *,
    q: str | None = None,
    resources: Sequence[str] = (),
    completion: CompletionFilter = "all",
    has_note: bool | None = None,
    has_due_date: bool | None = None,
    has_order: bool | None = None,
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
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest("INVALID_LIMIT", f"limit must be 1–{MAX_PAGE_SIZE}, not {limit!r}")
    done = completion_condition(completion)
    tokens = split_search(q)
    after = _decode_cursor(cursor) if cursor else None

    f = fields(session)
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
    page = page.where(*done)
    if has_note is not None:
        page = page.where(has_record(_Note) if has_note else ~has_record(_Note))
    if has_due_date is not None:
        page = page.where(has_record(_Due) if has_due_date else ~has_record(_Due))
    if has_order is not None:
        page = page.where(has_record(_Order) if has_order else ~has_record(_Order))
    if tokens:
        page = page.where(or_(*(token_condition(f, t) for t in tokens)))
    if after is not None:
        # The leading 製番 bound is implied by the keyset predicate but, unlike the OR of
        # terms, both planners can seek with it: a deep page starts at its place in the
        # index instead of reading the scope's range from its beginning.
        page = page.where(f.seiban >= after[0], keys_after(f.sort_keys, after))
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
            key=sort_values,
        )
        keys = list(itertools.islice(merged, limit + 1))
    else:
        if wanted:
            page = page.where(f.resource.in_(wanted))
        keys = list(session.execute(page))
    more = len(keys) > limit
    keys = keys[:limit]
    rows = composed_by_id(session, f, [k.id for k in keys])
    names = machine_names(session, f, dashboard.id, {r.sort_0 for r in rows})
    # From the page's own sort values: a row changed or purged between the two statements
    # cannot move the cursor.
    next_cursor = _encode_cursor(keys[-1]) if more and keys else None
    return [compose(r, names) for r in rows], next_cursor


def completion_condition(completion: CompletionFilter) -> list[ColumnElement[bool]]:
    """The row conditions of a completion filter; 400 ``INVALID_COMPLETION_FILTER``."""
    if completion == "complete":
        return [completed_exists(_R.id)]
    if completion == "incomplete":
        return [~completed_exists(_R.id)]
    if completion == "all":
        return []
    raise InvalidRequest(
        "INVALID_COMPLETION_FILTER",
        f"completion must be all, complete or incomplete, not {completion!r}",
    )


def has_record(model: Any) -> ColumnElement[bool]:
    """The row has a record in ``model`` (a 1:1 operator table), as an EXISTS test."""
    return exists().where(model.csv_dashboard_row_id == _R.id)


def _searched_ids(
    session: Session,
    f: Fields,
    dashboard: CsvDashboard,
    tokens: list[Token],
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
    if not tokens or scoped or not all(index_only(t) for t in tokens):
        return None
    ids = session.scalars(
        select(_R.id)
        .where(
            _R.csv_dashboard_id == dashboard.id,
            *rows_of,
            or_(*(token_condition(f, t) for t in tokens)),
        )
        .limit(MAX_SEARCH_IDS + 1)
    ).all()
    return list(ids) if len(ids) <= MAX_SEARCH_IDS else None


def get_row(session: Session, row_id: uuid.UUID) -> dict[str, Any]:
    """One composed row, retired or not (404 ROW_NOT_FOUND)."""
    f = fields(session)
    row = session.execute(
        composed_select(f)
        .add_columns(CsvDashboard.kind, machine_name_column(f))
        .join(CsvDashboard, CsvDashboard.id == _R.csv_dashboard_id)
        .where(_R.id == row_uuid(row_id))
    ).first()
    if row is None:
        raise NotFound("ROW_NOT_FOUND", f"no row {row_id}")
    require_schedule(row.kind, f"row {row_id}")
    names = {} if row.machine_name is None else {row.sort_0: row.machine_name}
    return compose(row, names)


__all__ = [
    "MAX_PAGE_SIZE", "CompletionFilter", "completion_condition", "get_row", "has_record",
    "keys_after", "list_rows",
]  # fmt: skip
