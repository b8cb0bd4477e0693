"""The ``csvboard`` command line (SPEC 7). Signatures here are a documented interface.

``--json`` prints exactly one JSON document on stdout; logs and progress go to stderr.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from csvboard.errors import CsvboardError
from csvboard.ingest.errors import RunError
from csvboard.settings import Settings

app = typer.Typer(
    name="csvboard",
    help="Ingest ERP CSV exports into dashboards; an auditable run ledger; kiosk schedule data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
dashboards_app = typer.Typer(help="CSV dashboards.", no_args_is_help=True)
runs_app = typer.Typer(help="The run ledger.", no_args_is_help=True)
schedule_app = typer.Typer(help="Production-schedule operator data.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(runs_app, name="runs")
app.add_typer(schedule_app, name="schedule")
app.add_typer(tokens_app, name="tokens")

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


class RunKindOption(StrEnum):
    official_ingestion = "official_ingestion"
    incremental_update = "incremental_update"
    appearance_supplement = "appearance_supplement"


class Role(StrEnum):
    admin = "admin"
    operator = "operator"
    viewer = "viewer"


class Mode(StrEnum):
    DEDUP = "DEDUP"
    APPEND = "APPEND"


# -- plumbing ---------------------------------------------------------------------------------


def _settings() -> Settings:
    return Settings.from_env()


def _engine(settings: Settings) -> Engine:
    from csvboard.db.engine import make_engine

    return make_engine(settings.database_url)


def _principal() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:64]


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Refusals become one clear line on stderr, never a traceback."""
    try:
        yield
    except (CsvboardError, RunError) as exc:
        _fail(str(exc))
    except IntegrityError as exc:
        _fail(f"the database refused the change: {exc.orig}")


@contextmanager
def _write(engine: Engine) -> Iterator[Session]:
    from csvboard.db.engine import write_session

    with _errors(), write_session(engine) as session:
        yield session


@contextmanager
def _read(engine: Engine) -> Iterator[Session]:
    from csvboard.db.engine import read_session

    with _errors(), read_session(engine) as session:
        yield session


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str, indent=2) + "\n")


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        _fail(f"{value!r} is not a valid id")


def _configure_logs() -> None:
    from csvboard.observability import configure_logging

    configure_logging(stream="stderr")


# -- db ---------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database (CSVBOARD_DATABASE_URL; default ./csvboard.db)."""
    from csvboard.db.migrate import upgrade_database

    settings = _settings()
    upgrade_database(settings.database_url)
    err.print(f"database is at the newest schema: {_redact(settings.database_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- dashboards -------------------------------------------------------------------------------


def _dashboard_doc(dashboard: Any) -> dict[str, Any]:
    return {
        "id": str(dashboard.id),
        "slug": dashboard.slug,
        "name": dashboard.name,
        "kind": dashboard.kind,
        "ingest_mode": dashboard.ingest_mode,
        "encoding": dashboard.encoding,
        "key_columns": dashboard.key_columns,
        "version_columns": dashboard.version_columns,
        "columns": [c["name"] for c in dashboard.columns],
        "created_at": dashboard.created_at.isoformat(),
    }


@dashboards_app.command("create")
def dashboards_create(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    preset: Annotated[str | None, typer.Option(help="Column preset: production-schedule.")] = None,
    mode: Annotated[Mode | None, typer.Option(help="DEDUP (upsert by key) or APPEND.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a dashboard (with its upload feeds)."""
    from csvboard.dashboards.service import create_dashboard

    engine = _engine(_settings())
    with _write(engine) as session:
        dashboard = create_dashboard(
            session, slug, name=name, preset=preset, mode=mode.value if mode else None
        )
        doc = _dashboard_doc(dashboard)
    if as_json:
        _print_json(doc)
    else:
        out.print(
            f"created dashboard [bold]{doc['slug']}[/bold] ({doc['kind']}, {doc['ingest_mode']})"
        )


@dashboards_app.command("list")
def dashboards_list(as_json: JsonFlag = False) -> None:
    """List dashboards."""
    from csvboard.dashboards.service import list_dashboards

    engine = _engine(_settings())
    with _read(engine) as session:
        docs = [_dashboard_doc(d) for d in list_dashboards(session)]
    if as_json:
        _print_json(docs)
        return
    table = Table("slug", "name", "kind", "mode", "key columns")
    for d in docs:
        table.add_row(
            d["slug"], d["name"], d["kind"], d["ingest_mode"], ", ".join(d["key_columns"])
        )
    out.print(table)


@dashboards_app.command("purge")
def dashboards_purge(
    slug: str,
    retired_before: Annotated[
        datetime, typer.Option(help="Delete rows retired before this date (YYYY-MM-DD).")
    ],
    dry_run: Annotated[bool, typer.Option(help="Only report what would go.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete rows retired before a date; their operator data goes with them (reported)."""
    from csvboard.dashboards.service import get_dashboard, purge_retired

    settings = _settings()
    cutoff = retired_before
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=settings.timezone)
    engine = _engine(settings)
    with _write(engine) as session:
        report = purge_retired(session, get_dashboard(session, slug), cutoff, dry_run=dry_run)
    doc = {"rows": report.rows, "operator_records": report.operator_records, "dry_run": dry_run}
    if as_json:
        _print_json(doc)
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{verb} {report.rows} retired row(s) of {slug}")
    for table_name, n in report.operator_records.items():
        if n:
            out.print(f"  with {n} record(s) of {table_name}")


# -- ingest -----------------------------------------------------------------------------------


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
    from csvboard.runs.service import get_run, ledger_dict

    return ledger_dict(session, get_run(session, run_id))


def _print_run(doc: dict[str, Any]) -> None:
    status = doc["status"]
    colour = {"succeeded": "green", "partial": "yellow", "failed": "red", "cancelled": "red"}.get(
        status, "cyan"
    )
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


def _exit_for(status: str) -> None:
    if status in ("failed", "cancelled"):
        raise typer.Exit(1)


@app.command("ingest")
def ingest(
    file: Annotated[Path, typer.Argument(help="The CSV file to ingest.")],
    dashboard: Annotated[str, typer.Option(help="Dashboard slug.")],
    kind: Annotated[
        RunKindOption, typer.Option(help="Run kind.")
    ] = RunKindOption.incremental_update,
    as_json: JsonFlag = False,
) -> None:
    """Ingest a file now; exit 0 for succeeded/partial, 1 for failed/cancelled."""
    from csvboard.ingest.storage import store_file

    settings = _settings()
    if not file.is_file():
        _fail(f"{file}: no such file")
    engine = _engine(settings)
    stored = store_file(settings.data_dir, file)
    doc = _ingest_stored(
        engine, settings, dashboard, stored, kind.value, f"{file.name} → {dashboard}"
    )
    if as_json:
        _print_json(doc)
    else:
        _print_run(doc)
    _exit_for(doc["status"])


def _ingest_stored(
    engine: Engine, settings: Settings, slug: str, stored: Any, kind: str, label: str
) -> dict[str, Any]:
    """Queue a run of a stored file, execute it here with a progress bar, return its ledger."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.runs.service import start_upload_run

    with _write(engine) as session:
        run = start_upload_run(
            session, dashboard=get_dashboard(session, slug), stored=stored, run_kind=kind,
            requested_by=_principal(),
        )  # fmt: skip
        run_id = run.run_id
    _execute_with_progress(engine, settings, run_id, label)
    with _read(engine) as session:
        return _run_document(session, run_id)


# -- runs -------------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Runs, newest first."""
    from csvboard.runs.service import ledger_dict, list_runs

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
    from csvboard.runs.service import event_dict, item_dict, list_events, list_items, run_detail

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
    _print_run(doc)
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
        _print_run(doc)
    if not queue_only:
        _exit_for(doc["status"])


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
    elif status.value == "cancelled":
        out.print(f"run {run_id} cancelled")
    else:
        out.print(f"run {run_id} is running; it will stop before it commits")


# -- schedule ---------------------------------------------------------------------------------


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
    from csvboard.schedule.service import list_rows

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
    from csvboard.schedule.service import set_completion

    rid = _uuid(row_id)
    intent = "incomplete" if undo else "complete"
    _schedule_write(lambda s: set_completion(s, rid, intent, by=_principal()), as_json)


@schedule_app.command("note")
def schedule_note(row_id: str, text: str, as_json: JsonFlag = False) -> None:
    """Set a step's note (≤ 100 characters, one line); an empty text clears it."""
    from csvboard.schedule.service import set_note

    rid = _uuid(row_id)
    _schedule_write(lambda s: set_note(s, rid, text, by=_principal()), as_json)


@schedule_app.command("due")
def schedule_due(row_id: str, due: str, as_json: JsonFlag = False) -> None:
    """Set a step's due date (YYYY-MM-DD); an empty string clears it."""
    from csvboard.schedule.service import set_due_date

    rid = _uuid(row_id)
    _schedule_write(lambda s: set_due_date(s, rid, due, by=_principal()), as_json)


@schedule_app.command("order")
def schedule_order(row_id: str, resource_cd: str, n: int, as_json: JsonFlag = False) -> None:
    """Give a step machining order N (1–10) on its resource."""
    from csvboard.schedule.service import set_order

    rid = _uuid(row_id)
    _schedule_write(lambda s: set_order(s, rid, resource_cd, n, by=_principal()), as_json)


@schedule_app.command("summary")
def schedule_summary(
    dashboard: Annotated[str, typer.Option(help="Dashboard slug.")], as_json: JsonFlag = False
) -> None:
    """Progress by resource and by 製番."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.schedule.service import progress_summary

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


# -- tokens -----------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    name: str, role: Annotated[Role, typer.Option(help="admin | operator | viewer")]
) -> None:
    """Create an API token; only its hash is stored. The token is the last line printed."""
    from csvboard.auth import Role as AuthRole
    from csvboard.auth import create_token

    engine = _engine(_settings())
    with _write(engine) as session:
        token = create_token(session, name, AuthRole(role.value))
    err.print(f"token {name!r} ({role.value}) created; it is shown once:")
    sys.stdout.write(token + "\n")


@tokens_app.command("revoke")
def tokens_revoke(name: str) -> None:
    """Revoke a token: requests with it are refused from now on."""
    from csvboard.auth import revoke_token

    engine = _engine(_settings())
    with _write(engine) as session:
        revoke_token(session, name)
    err.print(f"token {name!r} revoked")


# -- demo -------------------------------------------------------------------------------------

DEMO_SLUG = "production-schedule"
DEMO_STEPS = 3000


@app.command("demo")
def demo(
    steps: Annotated[int, typer.Option(help="About how many steps to generate.")] = DEMO_STEPS,
    seed: Annotated[int, typer.Option(help="Random seed of the generated export.")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Create the production-schedule dashboard and ingest a realistic CP932 export."""
    from csvboard.dashboards.service import create_dashboard, get_dashboard
    from csvboard.errors import NotFound
    from csvboard.ingest.storage import store_file
    from csvboard.schedule.sample import write_schedule_csv

    settings = _settings()
    engine = _engine(settings)
    with _write(engine) as session:
        try:
            board = get_dashboard(session, DEMO_SLUG)
        except NotFound:
            board = create_dashboard(
                session, DEMO_SLUG, name="生産スケジュール", preset="production-schedule"
            )
    export_dir = settings.data_dir / "demo"
    export_dir.mkdir(parents=True, exist_ok=True)
    export = write_schedule_csv(export_dir / "生産日程_export.csv", steps, seed=seed)
    stored = store_file(settings.data_dir, export)
    doc = _ingest_stored(
        engine, settings, board.slug, stored, "official_ingestion", f"demo export → {DEMO_SLUG}"
    )
    if as_json:
        _print_json(doc)
    else:
        _print_run(doc)
        err.print(f"try: csvboard schedule rows --dashboard {DEMO_SLUG} --limit 20")
    _exit_for(doc["status"])


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    demo_data: Annotated[
        bool, typer.Option("--demo", help="Migrate and load the demo schedule first (once).")
    ] = False,
    worker: Annotated[
        bool,
        typer.Option(
            help="Execute queued runs in this process (turn off when `csvboard worker`"
            " processes do it, e.g. beside a PostgreSQL database)."
        ),
    ] = True,
    scheduler: Annotated[
        bool, typer.Option(help="Run the scheduler in this process (one is active anyway).")
    ] = True,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port (PostgreSQL: one per core serves more"
            " kiosks; each runs its own worker thread and scheduler unless turned off).",
        ),
    ] = 1,
) -> None:
    """Serve the API, the admin console and kiosk, a worker and the scheduler (embedded case)."""
    import uvicorn

    from csvboard.app import create_app
    from csvboard.db.migrate import upgrade_database
    from csvboard.observability import configure_logging

    settings = _settings()
    if demo_data:
        upgrade_database(settings.database_url)
        _ensure_demo(settings)
    configure_logging(stream="stdout")
    err.print(f"csvboard API on http://{host}:{port}  (OpenAPI: /docs, metrics: /metrics)")
    if processes > 1:
        if settings.database_url.startswith("sqlite") and worker:
            raise typer.BadParameter(
                "on SQLite run one process with a worker (SQLite has one writer), or add"
                " --no-worker and run `csvboard worker` once beside it",
                param_hint="--processes",
            )
        import os

        from csvboard.app import SERVE_BACKGROUND_ENV

        background = [name for name, on in (("worker", worker), ("scheduler", scheduler)) if on]
        os.environ[SERVE_BACKGROUND_ENV] = ",".join(background)
        uvicorn.run(
            "csvboard.app:serving_app",
            factory=True,
            workers=processes,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
        )
        return
    app_ = create_app(settings, run_executor=worker, run_scheduler=scheduler)
    uvicorn.run(app_, host=host, port=port, log_config=None, access_log=False)


@app.command("worker")
def worker_command(
    grace: Annotated[
        float, typer.Option(help="Seconds a SIGTERM gives the current run before it is failed.")
    ] = 30.0,
    poll: Annotated[float, typer.Option(help="Seconds between looks for queued runs.")] = 1.0,
    nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="CPU niceness added to this process: ingestion is batch work, so on a machine"
            " shared with the API a kiosk tap goes first (0 = same priority).",
        ),
    ] = 10,
) -> None:
    """Execute queued runs until SIGTERM/SIGINT (run as many as you like, on any machine)."""
    import os
    import signal
    import threading

    from csvboard.observability import configure_logging
    from csvboard.worker.worker import Worker

    if nice:
        os.nice(nice)
    configure_logging(stream="stdout")
    settings = _settings()
    worker = Worker(_engine(settings), settings, poll_seconds=poll)

    def on_signal(signum: int, _frame: object) -> None:
        # Stop claiming now; let the current run finish within the grace period, then fail it
        # cleanly (nothing of it is committed) so the worker can exit.
        worker.stop()
        timer = threading.Timer(grace, lambda: worker.stop(abort_current=True))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.run_forever()


@app.command("scheduler")
def scheduler_command(
    poll: Annotated[float, typer.Option(help="Seconds between passes.")] = 5.0,
    once: Annotated[bool, typer.Option(help="One pass, then exit.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Fire cron feeds and watch folder feeds (one active scheduler at a time on PostgreSQL)."""
    import signal
    import threading

    from csvboard.observability import configure_logging
    from csvboard.worker.scheduler import Scheduler, scheduler_id_default

    configure_logging(stream="stderr" if as_json else "stdout")
    settings = _settings()
    scheduler = Scheduler(
        _engine(settings), settings, scheduler_id=scheduler_id_default(), poll_seconds=poll
    )
    if once:
        try:
            report = scheduler.tick()
        finally:
            scheduler.close()
        if as_json:
            _print_json(report.as_dict())
        else:
            out.print(report.as_dict())
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scheduler.run_forever(stop)


def _ensure_demo(settings: Settings) -> None:
    """The demo dashboard and its export, unless an earlier --demo already made them."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.errors import NotFound
    from csvboard.runs.service import list_runs

    engine = _engine(settings)
    with _read(engine) as session:
        try:
            board = get_dashboard(session, DEMO_SLUG)
            runs, _ = list_runs(session, dashboard_id=board.id, limit=1)
            if runs:
                return
        except NotFound:
            pass
    demo(steps=DEMO_STEPS, seed=1, as_json=False)


def main() -> None:
    app()
