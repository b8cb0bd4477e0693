"""``csvboard ingest`` and ``csvboard runs``: run an ingestion now; the ledger."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from csvboard.cli._common import (
    JsonFlag,
    _configure_logs,
    _engine,
    _fail,
    _principal,
    _print_json,
    _read,
    _settings,
    _uuid,
    _write,
    app,
    err,
    out,
)
from csvboard.runs.vocabulary import RunKind, RunStatus
from csvboard.settings import Settings

runs_app = typer.Typer(help="The run ledger.", no_args_is_help=True)


def _worker_id() -> str:
    return f"cli:{socket.gethostname()}:{os.getpid()}"


def _execute_with_progress(
    engine: Engine, settings: Settings, run_id: uuid.UUID, label: str
) -> Any:
    from csvboard.ingest.runner import execute_run

    _configure_logs()
    started = datetime.now(UTC)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        TextColumn("{task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=None, rate="–")

        def on_progress(counts: Any) -> None:
            seconds = max((datetime.now(UTC) - started).total_seconds(), 1e-6)
            progress.update(task, completed=counts.target, rate=f"{counts.target / seconds:,.0f}")

        return execute_run(
            engine, run_id, settings=settings, worker_id=_worker_id(), on_progress=on_progress
        )


def _run_document(session: Session, run_id: uuid.UUID) -> dict[str, Any]:
    from csvboard.runs.queries import ledger_dict
    from csvboard.runs.service import get_run

    return ledger_dict(session, get_run(session, run_id))


_COLOURS = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.PARTIAL: "yellow",
    RunStatus.FAILED: "red",
    RunStatus.CANCELLED: "red",
}


def print_run(doc: dict[str, Any]) -> None:
    status = doc["status"]
    colour = _COLOURS.get(status, "cyan")
    table = Table(show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("run", doc["run_id"])
    table.add_row("status", f"[{colour}]{status}[/{colour}]")
    for key in ("run_kind", "mode", "requested_by", "parent_run_id", "started_at", "finished_at"):
        if doc.get(key):
            table.add_row(key, str(doc[key]))
    table.add_row(
        "rows",
        f"{doc['target_count']:,} read · {doc['success_count']:,} committed · "
        f"{doc['failed_count']:,} rejected · {doc['unprocessed_count']:,} unprocessed",
    )
    if doc.get("error_summary"):
        table.add_row("error", f"[red]{doc['error_summary']}[/red]")
    table.add_row("trace", doc["trace_id"])
    out.print(table)


def exit_for(status: str) -> None:
    if status in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise typer.Exit(1)


@app.command("ingest")
def ingest(
    file: Annotated[Path, typer.Argument(help="The CSV file to ingest.")],
    dashboard: Annotated[str, typer.Option(help="Dashboard slug.")],
    kind: Annotated[RunKind, typer.Option(help="Run kind.")] = RunKind.INCREMENTAL_UPDATE,
    as_json: JsonFlag = False,
) -> None:
    """Ingest a file now; exit 0 for succeeded/partial, 1 for failed/cancelled."""
    from csvboard.storage import store_file

    settings = _settings()
    if not file.is_file():
        _fail(f"{file}: no such file")
    engine = _engine(settings)
    stored = store_file(settings.data_dir, file)
    doc = ingest_stored(
        engine, settings, dashboard, stored, kind.value, f"{file.name} → {dashboard}"
    )
    if as_json:
        _print_json(doc)
    else:
        print_run(doc)
    exit_for(doc["status"])


def ingest_stored(
    engine: Engine, settings: Settings, slug: str, stored: Any, kind: str, label: str
) -> dict[str, Any]:
    """Queue a run of a stored file, execute it here with a progress bar, return its ledger."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.feeds.start import start_upload_run

    with _write(engine) as session:
        run = start_upload_run(
            session, dashboard=get_dashboard(session, slug), stored=stored, run_kind=kind,
            requested_by=_principal(),
        )  # fmt: skip
        run_id = run.run_id
    _execute_with_progress(engine, settings, run_id, label)
    with _read(engine) as session:
        return _run_document(session, run_id)


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Runs, newest first."""
    from csvboard.runs.queries import ledger_dict, list_runs

    engine = _engine(_settings())
    with _read(engine) as session:
        runs, _ = list_runs(session, status=status, limit=limit)
        docs = [ledger_dict(session, r) for r in runs]
    if as_json:
        _print_json(docs)
        return
    table = Table("run", "created", "kind", "status", "read", "ok", "rejected", "error")
    for d in docs:
        table.add_row(
            d["run_id"][:8],
            d["created_at"][:19],
            d["run_kind"],
            d["status"],
            f"{d['target_count']:,}",
            f"{d['success_count']:,}",
            f"{d['failed_count']:,}",
            (d["error_summary"] or "")[:60],
        )
    out.print(table)


@runs_app.command("show")
def runs_show(
    run_id: str,
    items_limit: Annotated[int, typer.Option(min=1, max=200)] = 200,
    as_json: JsonFlag = False,
) -> None:
    """One run with its sources, items and events."""
    from csvboard.runs.queries import event_dict, item_dict, list_events, list_items, run_detail

    rid = _uuid(run_id)
    engine = _engine(_settings())
    with _read(engine) as session:
        doc = run_detail(session, rid)
        items, next_cursor = list_items(session, rid, limit=items_limit)
        doc["items"] = [item_dict(i) for i in items]
        doc["items_truncated"] = next_cursor is not None
        doc["events"] = [event_dict(e) for e in list_events(session, rid)]
    if as_json:
        _print_json(doc)
        return
    print_run(doc)
    for source in doc["sources"]:
        out.print(
            f"source: {source['file_name']} ({source['role']}, {source['size_bytes'] or 0:,} bytes,"
            f" {source['detected_encoding'] or 'not decoded'})"
        )
    if doc["items"]:
        table = Table("line", "key", "status", "update", "reason", "message", title="items")
        for item in doc["items"]:
            table.add_row(
                str(item["line_number"] or ""),
                item["row_key"] or "",
                item["status"],
                item["update_type"] or "",
                item["reason_code"] or "",
                item["message"] or "",
            )
        out.print(table)
    events = Table("at", "event", "from → to", "code", "message", title="events")
    for event in doc["events"]:
        arrow = f"{event['from_status'] or ''} → {event['to_status'] or ''}".strip(" →")
        events.add_row(
            event["occurred_at"][:23], event["event_type"], arrow, event["error_code"] or "",
            event["message"] or "",
        )  # fmt: skip
    out.print(events)


@runs_app.command("retry")
def runs_retry(
    run_id: str,
    queue_only: Annotated[
        bool, typer.Option(help="Only queue the re-run (a worker executes it).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Re-run a failed, partial or cancelled run (new run, parent linked)."""
    from csvboard.runs.service import retry_run

    settings = _settings()
    engine = _engine(settings)
    with _write(engine) as session:
        new_run = retry_run(session, _uuid(run_id), requested_by=_principal())
        new_id = new_run.run_id
    if not queue_only:
        _execute_with_progress(engine, settings, new_id, f"re-run of {run_id[:8]}")
    with _read(engine) as session:
        doc = _run_document(session, new_id)
    if as_json:
        _print_json(doc)
    else:
        print_run(doc)
    if not queue_only:
        exit_for(doc["status"])


@runs_app.command("cancel")
def runs_cancel(run_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a queued run now, or ask a running one to stop before it commits."""
    from csvboard.runs import lifecycle

    engine = _engine(_settings())
    rid = _uuid(run_id)
    with _write(engine) as session:
        status = lifecycle.cancel(session, rid, by=_principal())
    with _read(engine) as session:
        doc = _run_document(session, rid)
    if as_json:
        _print_json(doc)
    elif status is RunStatus.CANCELLED:
        out.print(f"run {run_id} cancelled")
    else:
        out.print(f"run {run_id} is running; it will stop before it commits")
