"""進捗一覧: the progress board's cards, one per 製番 (docs/contract.md §6).

A card names the 製番's machine (its MH/SH row's 品名), the nearest due date a person set on
one of its open steps, how many of its active steps are done, and each part (an order's
品番) with its process steps as chips in 工順 order — the resource and done / open — so a
tap can open the step.

Paged by 製番 with a keyset cursor, at most ``MAX_CARDS`` cards a page and
``MAX_PARTS_PER_CARD`` parts a card (the rest counted, not listed), so a page's size does not
grow with the schedule: which 製番 a page shows comes from the schedule index (a walk of its
distinct 製番, or the given ones), and its steps are read by 製番 from the same index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, distinct, func, literal, select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.db.cursor import decode_cursor, encode_cursor
from csvboard.errors import InvalidRequest
from csvboard.schedule.access import require_schedule
from csvboard.schedule.composed import machine_names
from csvboard.schedule.expressions import Fields, fields
from csvboard.schedule.models import ProductionScheduleRowDueDate, completed_exists
from csvboard.schedule.progress import active_steps, done_count, effective
from csvboard.schedule.search import normalized_codes, split_search, token_condition
from csvboard.schedule.seibans import unknown_seibans

MAX_CARDS = 50
DEFAULT_CARDS = 12
MAX_PARTS_PER_CARD = 40
MAX_STEPS_READ = 400  # a card's chips read per 製番 (its parts' steps) at most
MAX_SEIBANS = 100  # a scope of 製番, as the registered list allows

_R = CsvDashboardRow
_Due = ProductionScheduleRowDueDate


def seiban_cards(
    session: Session,
    dashboard: CsvDashboard,
    *,
    seibans: Sequence[str] = (),
    q: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_CARDS,
) -> dict[str, Any]:
    """One page of cards: for ``seibans`` (a terminal's scope) when given, else for the 製番
    whose steps match the search ``q``, else for every 製番 of the schedule; in 製番 order.

    400 ``INVALID_LIMIT``, ``INVALID_CURSOR``, ``SCOPE_TOO_LARGE``, ``UNKNOWN_SEIBAN`` (a
    scope 製番 the schedule has no step of).
    """
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    if not 1 <= limit <= MAX_CARDS:
        raise InvalidRequest("INVALID_LIMIT", f"limit must be between 1 and {MAX_CARDS}")
    after = decode_cursor(cursor, str)[0] if cursor else None
    f = fields(session)
    codes = normalized_codes(seibans)
    if len(codes) > MAX_SEIBANS:
        raise InvalidRequest("SCOPE_TOO_LARGE", f"at most {MAX_SEIBANS} 製番 at a time")
    if codes:
        unknown = unknown_seibans(session, dashboard, codes)
        if unknown:
            raise InvalidRequest(
                "UNKNOWN_SEIBAN", f"the schedule has no step of 製番 {', '.join(unknown[:10])}"
            )
        page = [c for c in codes if after is None or c > after][: limit + 1]
    elif q and q.strip():
        page = _searched(session, f, dashboard, q, after, limit + 1)
    else:
        page = _walk(session, f, dashboard, after, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    cards = _cards(session, f, dashboard, page)
    return {
        "items": [cards[s] for s in page if s in cards],
        "next_cursor": encode_cursor([page[-1]]) if more and page else None,
    }


def first_seibans(session: Session, dashboard: CsvDashboard, n: int) -> list[str]:
    """The schedule's first ``n`` 製番 (in 製番 order), from its index."""
    return _walk(session, fields(session), dashboard, None, n)


def _walk(
    session: Session, f: Fields, dashboard: CsvDashboard, after: str | None, n: int
) -> list[str]:
    """The next ``n`` distinct 製番 after ``after``: one probe of the schedule index each
    (a recursive "next 製番" walk), not a read of every row."""
    start = select(func.min(f.seiban).label("code")).where(_R.csv_dashboard_id == dashboard.id)
    if after is not None:
        start = start.where(f.seiban > after)
    walk = start.cte("seibans", recursive=True)
    following = (
        select(func.min(f.seiban))
        .where(_R.csv_dashboard_id == dashboard.id, f.seiban > walk.c.code)
        .correlate(walk)
        .scalar_subquery()
    )
    walk = walk.union_all(select(following).where(walk.c.code.is_not(None)))
    return [c for c in session.scalars(select(walk.c.code).limit(n)) if c is not None]


def _searched(
    session: Session, f: Fields, dashboard: CsvDashboard, q: str, after: str | None, n: int
) -> list[str]:
    """The next ``n`` 製番 with an active step matching every search token."""
    conditions = [token_condition(f, token) for token in split_search(q)]
    query = (
        select(f.seiban)
        .where(_R.csv_dashboard_id == dashboard.id, f.active(), *conditions)
        .group_by(f.seiban)
        .order_by(f.seiban)
        .limit(n)
    )
    if after is not None:
        query = query.where(f.seiban > after)
    return list(session.scalars(query))


def _steps(f: Fields, dashboard: CsvDashboard, page: list[str]) -> Select[Any]:
    columns = (f.seiban, f.product_no, f.hincd, f.hinmei, f.kojun, f.resource, f.resource_name)
    return (
        active_steps(f, dashboard, *columns, _R.id, effective().label("done"))
        .where(f.seiban.in_(page))
        .order_by(*f.sort_keys)
    )


def _cards(
    session: Session, f: Fields, dashboard: CsvDashboard, page: list[str]
) -> dict[str, dict[str, Any]]:
    """The page's cards. Counts, parts and due dates are aggregated in SQL; the chips are read
    per 製番 up to ``MAX_STEPS_READ`` steps, so one 製番 of thousands of steps (``********``,
    not yet assigned) costs a page no more than any other."""
    if not page:
        return {}
    names = machine_names(session, f, dashboard.id, set(page))
    part_key = f.product_no + literal("/") + f.hincd
    counts = session.execute(
        active_steps(f, dashboard, f.seiban, func.count(), done_count())
        .add_columns(func.count(distinct(part_key)))
        .where(f.seiban.in_(page))
        .group_by(f.seiban)
    )  # fmt: skip
    cards: dict[str, dict[str, Any]] = {
        seiban: {
            "fseiban": seiban,
            "machine_name": names.get(seiban),
            "due_date": None,
            "total": int(total),
            "completed": int(completed),
            "parts": [],
            "more_parts": int(n_parts),
        }
        for seiban, total, completed, n_parts in counts
    }
    for seiban, due in session.execute(
        select(f.seiban, func.min(_Due.due_date))
        .select_from(_Due)
        .join(_R, _R.id == _Due.csv_dashboard_row_id)
        .where(
            _Due.csv_dashboard_id == dashboard.id,
            f.seiban.in_(page),
            f.active(),
            ~f.machine_row(),
            ~completed_exists(_R.id),
        )
        .group_by(f.seiban)
    ):
        if seiban in cards:
            cards[seiban]["due_date"] = due.isoformat()
    for seiban, card in cards.items():
        card["parts"] = _parts(session, f, dashboard, seiban)
        card["more_parts"] -= len(card["parts"])
    return cards


def _parts(
    session: Session, f: Fields, dashboard: CsvDashboard, seiban: str
) -> list[dict[str, Any]]:
    """The 製番's first parts (at most ``MAX_PARTS_PER_CARD``, each with all its steps), read
    in the schedule index's order. That order interleaves an order's parts by 工順, so when
    the read stops early the last order's parts may be missing steps: they are left out
    (counted, not listed)."""
    rows = list(session.execute(_steps(f, dashboard, [seiban]).limit(MAX_STEPS_READ + 1)))
    if len(rows) > MAX_STEPS_READ:
        cut = rows[MAX_STEPS_READ - 1][1]  # its order (ProductNo)
        rows = [r for r in rows[:MAX_STEPS_READ] if r[1] != cut]
    parts: dict[tuple[str, str], dict[str, Any]] = {}
    for _, product_no, hincd, hinmei, kojun, resource, resource_name, row_id, done in rows:
        part = parts.get((product_no, hincd))
        if part is None:
            if len(parts) == MAX_PARTS_PER_CARD:
                continue
            part = parts[(product_no, hincd)] = {
                "product_no": product_no, "fhincd": hincd, "fhinmei": hinmei, "steps": [],
            }  # fmt: skip
        part["steps"].append(
            {
                "id": row_id, "fkojun": int(kojun), "fsigencd": resource,
                "fsigenmei": resource_name or None, "completed": bool(done),
            }
        )  # fmt: skip
    for part in parts.values():
        part["completed"] = all(step["completed"] for step in part["steps"])
    return list(parts.values())


__all__ = ["DEFAULT_CARDS", "MAX_CARDS", "MAX_PARTS_PER_CARD", "first_seibans", "seiban_cards"]
