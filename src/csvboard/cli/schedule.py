"""``csvboard schedule``: production-schedule operator data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from csvboard.cli._common import (
    JsonFlag,
    _engine,
    _principal,
    _print_json,
    _read,
    _settings,
    _uuid,
    _write,
    err,
    out,
)

schedule_app = typer.Typer(help="Production-schedule operator data.", no_args_is_help=True)


def _schedule_write(fn: Callable[[Session], dict[str, Any]], as_json: bool) -> None:
    engine = _engine(_settings())
    with _write(engine) as session:
        row = fn(session)
    if as_json:
        _print_json(row)
    else:
        _print_schedule([row])


def _print_schedule(rows: list[dict[str, Any]]) -> None:
    table = Table("id", "製番", "品番", "品名", "資源", "工順", "完了", "備考", "納期", "順")
    for row in rows:
        data = row["row_data"]
        order = row.get("order") or {}
        table.add_row(
            row["id"],
            data.get("FSEIBAN", ""),
            data.get("FHINCD", ""),
            data.get("FHINMEI", ""),
            data.get("FSIGENCD", ""),
            data.get("FKOJUN", ""),
            data.get("progress", ""),
            row.get("note") or "",
            row.get("due_date") or "",
            str(order.get("order_number", "")),
        )
    out.print(table)


@schedule_app.command("rows")
def schedule_rows(
    dashboard: Annotated[str, typer.Option(help="Dashboard slug.")],
    q: Annotated[
        str | None, typer.Option(help="Search: 製番, 品番, 品名 tokens, comma-separated.")
    ] = None,
    resource: Annotated[list[str] | None, typer.Option(help="Only these resource codes.")] = None,
    completion: Annotated[str, typer.Option(help="all | complete | incomplete")] = "all",
    include_retired: Annotated[bool, typer.Option(help="Also rows retired by a snapshot.")] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Schedule rows with operator data and row_data.progress composed."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.schedule.queries import list_rows

    engine = _engine(_settings())
    rows: list[dict[str, Any]] = []
    with _read(engine) as session:
        board = get_dashboard(session, dashboard)
        cursor: str | None = None
        while True:
            page_size = 2000 if limit is None else min(2000, limit - len(rows))
            page, cursor = list_rows(
                session, board, q=q, resources=resource or (),
                completion=completion,  # type: ignore[arg-type]
                include_retired=include_retired, cursor=cursor, limit=page_size,
            )  # fmt: skip
            rows.extend(page)
            if cursor is None or (limit is not None and len(rows) >= limit):
                break
    if as_json:
        _print_json(rows)
    else:
        _print_schedule(rows)
        err.print(f"{len(rows)} row(s)")


@schedule_app.command("complete")
def schedule_complete(
    row_id: str,
    undo: Annotated[bool, typer.Option("--undo", help="Mark the step not complete.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Mark a step complete (idempotent), or not complete with --undo."""
    from csvboard.schedule.commands import set_completion

    rid = _uuid(row_id)
    intent = "incomplete" if undo else "complete"
    _schedule_write(lambda s: set_completion(s, rid, intent, by=_principal()), as_json)


@schedule_app.command("note")
def schedule_note(row_id: str, text: str, as_json: JsonFlag = False) -> None:
    """Set a step's note (≤ 100 characters, one line); an empty text clears it."""
    from csvboard.schedule.commands import set_note

    rid = _uuid(row_id)
    _schedule_write(lambda s: set_note(s, rid, text, by=_principal()), as_json)


@schedule_app.command("due")
def schedule_due(row_id: str, due: str, as_json: JsonFlag = False) -> None:
    """Set a step's due date (YYYY-MM-DD); an empty string clears it."""
    from csvboard.schedule.commands import set_due_date

    rid = _uuid(row_id)
    _schedule_write(lambda s: set_due_date(s, rid, due, by=_principal()), as_json)


@schedule_app.command("order")
def schedule_order(row_id: str, resource_cd: str, n: int, as_json: JsonFlag = False) -> None:
    """Give a step machining order N (1–10) on its resource."""
    from csvboard.schedule.commands import set_order

    rid = _uuid(row_id)
    _schedule_write(lambda s: set_order(s, rid, resource_cd, n, by=_principal()), as_json)


@schedule_app.command("summary")
def schedule_summary(
    dashboard: Annotated[str, typer.Option(help="Dashboard slug.")], as_json: JsonFlag = False
) -> None:
    """Progress by resource and by 製番."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.schedule.progress import progress_summary

    engine = _engine(_settings())
    with _read(engine) as session:
        summary = progress_summary(session, get_dashboard(session, dashboard))
    if as_json:
        _print_json(summary)
        return
    out.print(f"{summary['completed']:,} of {summary['total']:,} steps complete")
    table = Table("資源", "名称", "完了", "全体")
    for r in summary["by_resource"]:
        table.add_row(
            r["resource_cd"], r.get("resource_name") or "", str(r["completed"]), str(r["total"])
        )
    out.print(table)
