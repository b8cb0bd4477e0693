"""What a kiosk board reads within its scope, at a size that does not grow with the schedule.

A terminal works within a scope — one or several resources and/or registered 製番 — and every
read here touches only that scope's range of an index (migrations 0004 and 0006), never every
row of the dashboard: the resources to choose from (a skip scan: one index probe per
resource), the scope's progress, and the rows a board already shows, re-read by id for its
poll. ``tests/schedule/test_board_plans.py`` reads both engines' plans of these queries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.errors import InvalidRequest
from csvboard.schedule.access import require_schedule, schedule_dashboard
from csvboard.schedule.composed import compose, composed_by_id, machine_names, sort_values
from csvboard.schedule.expressions import Fields, fields
from csvboard.schedule.models import (
    ProductionScheduleExternalCompletion,
    ProductionScheduleProgress,
)
from csvboard.schedule.progress import (
    active_steps,
    done_count,
    effective,
    incomplete_parts,
    progress_summary,
)
from csvboard.schedule.queries import MAX_PAGE_SIZE, CompletionFilter, list_rows
from csvboard.schedule.search import normalized_codes, search_tokens

MAX_SCOPE_RESOURCES = 50
MAX_SCOPE_SEIBANS = 100
MAX_LOOKUP_IDS = 200  # a GET's query string stays under 8 KB

_R = CsvDashboardRow
_Progress = ProductionScheduleProgress
_External = ProductionScheduleExternalCompletion


def resource_codes(session: Session, dashboard: CsvDashboard) -> list[str]:
    """The dashboard's distinct resource codes (FSIGENCD), in code order.

    A recursive "next code after this one" walk of the resource index: one probe per resource
    instead of reading the index entry of every row.
    """
    f = fields(session)
    first = (
        select(func.min(f.resource).label("code"))
        .where(_R.csv_dashboard_id == dashboard.id)
        .cte("codes", recursive=True)
    )
    following = (
        select(func.min(f.resource))
        .where(_R.csv_dashboard_id == dashboard.id, f.resource > first.c.code)
        .correlate(first)
        .scalar_subquery()
    )
    codes = first.union_all(select(following).where(first.c.code.is_not(None)))
    return [c for c in session.scalars(select(codes.c.code)) if c is not None]


def resources(session: Session, dashboard: CsvDashboard) -> list[dict[str, Any]]:
    """Every resource code of the dashboard with its name (FSIGENMEI of one of its rows)."""
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    return [
        {"resource_cd": code, "resource_name": _resource_name(session, dashboard, code)}
        for code in resource_codes(session, dashboard)
    ]


def check_scope(
    session: Session,
    dashboard: CsvDashboard,
    resource_list: Sequence[str],
    seiban_list: Sequence[str],
) -> tuple[list[str], list[str]]:
    """The scope's codes, normalised; 400 for too many or for resource codes the dashboard
    does not have (a kiosk configured for a machine that is gone should say so, not show an
    empty board)."""
    wanted = normalized_codes(resource_list)
    seibans = normalized_codes(seiban_list)
    if len(wanted) > MAX_SCOPE_RESOURCES:
        raise InvalidRequest(
            "SCOPE_TOO_LARGE", f"{len(wanted)} resources; a scope has at most {MAX_SCOPE_RESOURCES}"
        )
    if len(seibans) > MAX_SCOPE_SEIBANS:
        raise InvalidRequest(
            "SCOPE_TOO_LARGE", f"{len(seibans)} 製番; a scope has at most {MAX_SCOPE_SEIBANS}"
        )
    if wanted:
        f = fields(session)
        unknown = [
            code
            for code in wanted
            if session.scalar(
                select(_R.id)
                .where(_R.csv_dashboard_id == dashboard.id, f.resource == code)
                # ordered by the index's next key: PostgreSQL then probes the resource index
                # instead of a sequential scan that stops at the first match
                .order_by(f.seiban)
                .limit(1)
            )
            is None
        ]
        if unknown:
            raise InvalidRequest(
                "UNKNOWN_RESOURCE",
                "this schedule has no resource " + ", ".join(unknown[:10]),
            )
    return wanted, seibans


def one_resource(session: Session, dashboard: CsvDashboard, resource: str) -> str:
    """The one resource code a request names (normalised as a scope's), or 400
    ``UNKNOWN_RESOURCE`` — a blank name included."""
    codes, _ = check_scope(session, dashboard, [resource], [])
    if len(codes) != 1:
        raise InvalidRequest("UNKNOWN_RESOURCE", f"no resource {resource!r} in this schedule")
    return codes[0]


def list_steps(
    session: Session,
    slug: str,
    *,
    q: str | None,
    resource_list: Sequence[str],
    seiban_list: Sequence[str],
    completion: CompletionFilter,
    has_note: bool | None,
    has_due_date: bool | None,
    include_retired: bool,
    include_machine_rows: bool,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the schedule ``slug`` names, within a kiosk's scope, and the next cursor.

    Checks in the API's order (docs/contract.md §5): the limit and the search's tokens (400)
    before the dashboard (404), then the scope (400 ``SCOPE_TOO_LARGE``,
    ``UNKNOWN_RESOURCE``), then the page's own (:func:`csvboard.schedule.queries.list_rows`).
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest("INVALID_LIMIT", f"limit must be 1–{MAX_PAGE_SIZE}, not {limit}")
    search_tokens(q)  # 400 TOO_MANY_TOKENS before the dashboard's 404
    dashboard = schedule_dashboard(session, slug)
    resources, seibans = check_scope(session, dashboard, resource_list, seiban_list)
    return list_rows(
        session,
        dashboard,
        q=q,
        resources=resources,
        seibans=seibans,
        completion=completion,
        has_note=has_note,
        has_due_date=has_due_date,
        include_retired=include_retired,
        include_machine_rows=include_machine_rows,
        cursor=cursor,
        limit=limit,
    )


def summary(
    session: Session,
    dashboard: CsvDashboard,
    *,
    resource_list: Sequence[str] = (),
    seiban_list: Sequence[str] = (),
) -> dict[str, Any]:
    """A scope's progress (:func:`scoped_summary`) or, without a scope, the whole
    dashboard's (:func:`csvboard.schedule.progress.progress_summary`)."""
    if resource_list or seiban_list:
        return scoped_summary(
            session, dashboard, resource_list=resource_list, seiban_list=seiban_list
        )
    return progress_summary(session, dashboard)


def _counted(f: Fields, dashboard: CsvDashboard) -> Select[Any]:
    """The number of active steps and how many of them are effectively complete."""
    return active_steps(f, dashboard, func.count(), done_count())


def scoped_summary(
    session: Session,
    dashboard: CsvDashboard,
    *,
    resource_list: Sequence[str] = (),
    seiban_list: Sequence[str] = (),
) -> dict[str, Any]:
    """Progress of the active steps in a scope: by resource and, for a scope of 製番, by 製番
    (with the names of each 製番's incomplete parts). Same shape as the whole-dashboard
    :func:`csvboard.schedule.progress.progress_summary`, bounded by the scope."""
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    wanted, seibans = check_scope(session, dashboard, resource_list, seiban_list)
    if not wanted and not seibans:
        raise InvalidRequest("SCOPE_REQUIRED", "name at least one resource or 製番")
    f = fields(session)
    by_resource: list[dict[str, Any]] = []
    by_seiban: list[dict[str, Any]] = []
    if seibans:
        # One pass over the 製番' range of the schedule index, grouped by 製番 first (grouping
        # by resource first would make SQLite walk the whole resource index in its order).
        # Per step, summed here: grouped in SQL, SQLite (which has no statistics) walks the
        # whole resource index (it covers the query) instead of the 製番' few entries of the
        # schedule index. A scope of 製番 is at most a few thousand steps.
        stmt = active_steps(
            f, dashboard, f.seiban, f.resource, case((effective(), 1), else_=0)
        ).where(f.seiban.in_(seibans))
        if wanted:
            stmt = stmt.where(f.resource.in_(wanted))
        per_seiban: dict[str, list[int]] = {}
        per_resource: dict[str, list[int]] = {}
        for seiban, code, done in session.execute(stmt):
            for bucket in (
                per_seiban.setdefault(seiban, [0, 0]),
                per_resource.setdefault(code, [0, 0]),
            ):
                bucket[0] += 1
                bucket[1] += int(done)
        by_resource = [
            _progress(session, dashboard, code, total, done)
            for code, (total, done) in sorted(per_resource.items())
        ]
        incomplete = incomplete_parts(
            session,
            f,
            dashboard,
            f.seiban.in_(seibans),
            *([f.resource.in_(wanted)] if wanted else []),
        )
        names = machine_names(session, f, dashboard.id, set(seibans))
        by_seiban = [
            {
                "fseiban": seiban,
                "machine_name": names.get(seiban),
                "total": total,
                "completed": done,
                "incomplete_parts": incomplete.get(seiban, []),
            }
            for seiban, (total, done) in sorted(per_seiban.items())
        ]
    else:
        for code in wanted:
            # One resource at a time: each reads its own range of the resource index.
            total, done = session.execute(_counted(f, dashboard).where(f.resource == code)).one()
            if total:
                by_resource.append(_progress(session, dashboard, code, total, done))
    return {
        "total": sum(r["total"] for r in by_resource),
        "completed": sum(r["completed"] for r in by_resource),
        "by_resource": by_resource,
        "by_seiban": by_seiban,
    }


def _resource_name(session: Session, dashboard: CsvDashboard, code: str) -> str | None:
    """FSIGENMEI of one of the resource's rows that names it (its index range, first hit)."""
    f = fields(session)
    name = session.scalar(
        select(f.resource_name)
        .where(_R.csv_dashboard_id == dashboard.id, f.resource == code, f.resource_name != "")
        .order_by(f.seiban)  # the resource index's order (see check_scope)
        .limit(1)
    )
    return name or None


def _progress(
    session: Session, dashboard: CsvDashboard, code: str, total: int, done: int
) -> dict[str, Any]:
    return {
        "resource_cd": code,
        "resource_name": _resource_name(session, dashboard, code),
        "total": int(total),
        "completed": int(done),
    }


def rows_by_id(
    session: Session, dashboard: CsvDashboard, ids: Sequence[uuid.UUID]
) -> list[dict[str, Any]]:
    """The composed rows of ``ids`` that belong to the dashboard (retired ones included, so a
    board sees a step leave), in kiosk order: what a board's poll re-reads."""
    require_schedule(dashboard.kind, f"dashboard {dashboard.slug!r}")
    if len(ids) > MAX_LOOKUP_IDS:
        raise InvalidRequest(
            "TOO_MANY_IDS", f"{len(ids)} row ids; at most {MAX_LOOKUP_IDS} per request"
        )
    if not ids:
        return []
    f = fields(session)
    # By primary key only, sorted here: with the dashboard or the sort in the statement,
    # SQLite's planner walks the dashboard's schedule index instead of probing the ids.
    found = composed_by_id(session, f, sorted(set(ids)))
    rows = sorted((r for r in found if r.csv_dashboard_id == dashboard.id), key=sort_values)
    names = machine_names(session, f, dashboard.id, {r.sort_0 for r in rows})
    return [compose(r, names) for r in rows]


__all__ = [
    "MAX_LOOKUP_IDS",
    "MAX_SCOPE_RESOURCES",
    "MAX_SCOPE_SEIBANS",
    "check_scope",
    "list_steps",
    "one_resource",
    "resources",
    "rows_by_id",
    "scoped_summary",
    "summary",
]
