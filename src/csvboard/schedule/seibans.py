"""The registered 製番 of a dashboard: the list of buttons every kiosk of it shares.

A planner registers the 製番 the floor is working on; each kiosk shows them as large buttons
(machine name and progress) and a tap scopes the board to that 製番. The list is operator
data (ingestion never writes it) and is edited with optimistic concurrency: a read returns
its version, an edit replaces the whole list and must name the version it read
(``If-Match``), so two planners editing at once never silently undo each other — the second
is refused (412) and sees the list as it now is.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Table, delete, exists, insert, select, update
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.db import upsert
from csvboard.db.engine import write_session
from csvboard.errors import InvalidRequest, PreconditionFailed, PreconditionRequired
from csvboard.schedule.access import schedule_dashboard
from csvboard.schedule.board import scoped_summary
from csvboard.schedule.commands import actor
from csvboard.schedule.expressions import fields
from csvboard.schedule.models import (
    MAX_REGISTERED_SEIBANS,
    SEIBAN_PATTERN,
    ProductionScheduleRegisteredSeiban,
    ProductionScheduleSeibanList,
)

_SEIBAN = re.compile(SEIBAN_PATTERN)
_ETAG = re.compile(r'^(?:W/)?"seibans-([0-9]{1,12})"$')
_List = ProductionScheduleSeibanList
_Item = ProductionScheduleRegisteredSeiban
_LIST_TABLE: Table = ProductionScheduleSeibanList.__table__  # type: ignore[assignment]


def etag(version: int) -> str:
    return f'"seibans-{version}"'


def parse_if_match(header: str | None) -> int:
    """The version an ``If-Match`` header names (428 when missing, 400 when malformed)."""
    if header is None or not header.strip():
        raise PreconditionRequired(
            "IF_MATCH_REQUIRED",
            "an edit of the registered 製番 must send If-Match with the ETag it read",
        )
    found = _ETAG.match(header.strip())
    if found is None:
        raise InvalidRequest(
            "INVALID_IF_MATCH",
            f'If-Match {header.strip()[:80]!r} is not an ETag of this list (like "seibans-3")',
        )
    return int(found.group(1))


def current_version(session: Session, dashboard: CsvDashboard) -> int:
    version = session.scalar(select(_List.version).where(_List.csv_dashboard_id == dashboard.id))
    return int(version or 0)


def registered(session: Session, dashboard: CsvDashboard) -> tuple[int, list[str]]:
    """The list's version and its 製番 in button order."""
    version = current_version(session, dashboard)
    seibans = session.scalars(
        select(_Item.fseiban).where(_Item.csv_dashboard_id == dashboard.id).order_by(_Item.position)
    ).all()
    return version, list(seibans)


def check_list(values: Sequence[Any]) -> list[str]:
    """The list as it will be stored (NFKC, trimmed), or 400 ``INVALID_SEIBAN`` /
    ``DUPLICATE_SEIBAN`` / ``TOO_MANY_SEIBANS`` naming the item at fault."""
    if len(values) > MAX_REGISTERED_SEIBANS:  # the list's length first, whatever it holds
        raise InvalidRequest(
            "TOO_MANY_SEIBANS",
            f"{len(values)} 製番; at most {MAX_REGISTERED_SEIBANS} can be registered",
        )
    cleaned: list[str] = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidRequest("INVALID_SEIBAN", f"item {index + 1} is not text")
        seiban = unicodedata.normalize("NFKC", value).strip()
        if _SEIBAN.fullmatch(seiban) is None:
            raise InvalidRequest(
                "INVALID_SEIBAN",
                f"{value!r} (item {index + 1}) is not a 製番: 8 of A–Z, a–z, 0–9 or *",
            )
        if seiban in cleaned:
            raise InvalidRequest("DUPLICATE_SEIBAN", f"{seiban} is in the list twice")
        cleaned.append(seiban)
    return cleaned


def unknown_seibans(session: Session, dashboard: CsvDashboard, seibans: list[str]) -> list[str]:
    """Those of ``seibans`` that no row of the dashboard carries, active or retired (one
    probe of the schedule index each): a 製番 whose steps have all retired stays valid."""
    f = fields(session)  # the schedule index's very expressions
    missing = []
    for seiban in seibans:
        found = session.scalar(
            select(
                exists().where(
                    CsvDashboardRow.csv_dashboard_id == dashboard.id,
                    f.seiban == seiban,
                )
            )
        )
        if not found:
            missing.append(seiban)
    return missing


def replace(
    session: Session,
    dashboard: CsvDashboard,
    seibans: Sequence[Any],
    *,
    if_match: str | None,
    by: str | None,
) -> tuple[int, list[str]]:
    """Replace the list with ``seibans`` (in button order) if ``if_match`` is current.

    400 ``INVALID_SEIBAN`` / ``DUPLICATE_SEIBAN`` / ``TOO_MANY_SEIBANS`` / ``UNKNOWN_SEIBAN``,
    428 ``IF_MATCH_REQUIRED``, 400 ``INVALID_IF_MATCH``, 412 ``SEIBAN_LIST_CHANGED``. The version
    check is a compare-and-set in the same transaction as the write, so of two edits of the
    same version exactly one wins. (Core statements with RETURNING: an ORM-enabled INSERT …
    ON CONFLICT DO NOTHING reports no rowcount on PostgreSQL.)
    """
    cleaned = check_list(seibans)
    expected = parse_if_match(if_match)
    unknown = unknown_seibans(session, dashboard, cleaned)
    if unknown:
        raise InvalidRequest(
            "UNKNOWN_SEIBAN",
            "no step of this schedule has 製番 " + ", ".join(unknown[:10]),
        )
    now = utcnow()
    actor_name = actor(by)
    if expected == 0:
        # The first edit creates the row; of two concurrent first edits one inserts nothing.
        created = session.execute(
            upsert.insert(session, _LIST_TABLE)
            .values(csv_dashboard_id=dashboard.id, version=1, updated_by=actor_name, updated_at=now)
            .on_conflict_do_nothing(index_elements=["csv_dashboard_id"])
            .returning(_LIST_TABLE.c.version)
        ).first()
        if created is None:
            raise _changed(current_version(session, dashboard))
        version = 1
    else:
        bumped = session.execute(
            update(_LIST_TABLE)
            .where(
                _LIST_TABLE.c.csv_dashboard_id == dashboard.id,
                _LIST_TABLE.c.version == expected,
            )
            .values(version=expected + 1, updated_by=actor_name, updated_at=now)
            .returning(_LIST_TABLE.c.version)
        ).first()
        if bumped is None:
            raise _changed(current_version(session, dashboard))
        version = expected + 1
    session.execute(delete(_Item).where(_Item.csv_dashboard_id == dashboard.id))
    if cleaned:
        session.execute(
            insert(_Item),
            [
                {"csv_dashboard_id": dashboard.id, "fseiban": s, "position": i + 1}
                for i, s in enumerate(cleaned)
            ],
        )
    return version, cleaned


def with_progress(session: Session, dashboard: CsvDashboard) -> tuple[int, list[dict[str, Any]]]:
    """The list's version and its 製番 in button order, each with its machine name and the
    progress of its active steps (0 of 0 for a 製番 whose steps have all retired)."""
    version, registered_seibans = registered(session, dashboard)
    progress: dict[str, dict[str, Any]] = {}
    if registered_seibans:
        doc = scoped_summary(session, dashboard, seiban_list=registered_seibans)
        progress = {p["fseiban"]: p for p in doc["by_seiban"]}
    items = [
        {
            "fseiban": s,
            "machine_name": progress.get(s, {}).get("machine_name"),
            "total": progress.get(s, {}).get("total", 0),
            "completed": progress.get(s, {}).get("completed", 0),
        }
        for s in registered_seibans
    ]
    return version, items


def edit(
    engine: Engine, slug: str, values: Sequence[Any], *, if_match: str | None, by: str | None
) -> tuple[int, list[dict[str, Any]]]:
    """Replace the list of the schedule ``slug`` names, in one transaction, and read it back
    (:func:`with_progress`). Every 400 of the list comes before the dashboard's 404."""
    check_list(values)
    with write_session(engine) as session:
        dashboard = schedule_dashboard(session, slug)
        replace(session, dashboard, values, if_match=if_match, by=by)
        return with_progress(session, dashboard)


def _changed(version: int) -> PreconditionFailed:
    return PreconditionFailed(
        "SEIBAN_LIST_CHANGED",
        f"the registered 製番 were changed by someone else (now version {version}); "
        "reload the list and make the edit again",
    )


__all__ = [
    "check_list",
    "current_version",
    "edit",
    "etag",
    "parse_if_match",
    "registered",
    "replace",
    "with_progress",
]
