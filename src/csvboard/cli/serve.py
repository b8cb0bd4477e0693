"""``csvboard demo``, ``serve``, ``worker`` and ``scheduler``: the processes."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from csvboard.cli._common import (
    JsonFlag,
    _engine,
    _print_json,
    _read,
    _settings,
    _write,
    app,
    err,
    out,
)
from csvboard.cli.runs import exit_for, ingest_stored, print_run
from csvboard.runs.vocabulary import RunKind
from csvboard.settings import Settings

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
    from csvboard.schedule.sample import write_schedule_csv
    from csvboard.storage import store_file

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
    doc = ingest_stored(
        engine,
        settings,
        board.slug,
        stored,
        RunKind.OFFICIAL_INGESTION.value,
        f"demo export → {DEMO_SLUG}",
    )
    if as_json:
        _print_json(doc)
    else:
        print_run(doc)
        err.print(f"try: csvboard schedule rows --dashboard {DEMO_SLUG} --limit 20")
    exit_for(doc["status"])


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
    poll: Annotated[
        float | None,
        typer.Option(
            help="Seconds between looks for queued runs [default: CSVBOARD_WORKER_POLL_SECONDS]."
        ),
    ] = None,
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
    poll: Annotated[
        float | None, typer.Option(help="Seconds between passes (CSVBOARD_SCHEDULER_POLL_SECONDS).")
    ] = None,
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
    from csvboard.runs.queries import list_runs

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
