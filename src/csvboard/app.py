"""The ASGI application: the HTTP API of docs/contract.md §5, assembled from the domain routers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from csvboard.api.context import RequestContextMiddleware
from csvboard.api.metrics import Metrics
from csvboard.api.problems import install_problem_handlers
from csvboard.db.engine import make_engine
from csvboard.settings import Settings
from csvboard.worker.worker import Worker, WorkerThread

API_DESCRIPTION = """
Ingest ERP CSV exports into dashboards, audit every ingestion in the run ledger, and serve the
production schedule to kiosk boards. Authenticate with `Authorization: Bearer <token>`
(`csvboard tokens create NAME --role admin|operator|viewer`); errors are
`application/problem+json`; every response carries `traceparent` and `x-trace-id`.
"""


def _without_phantom_422(app: FastAPI) -> None:
    """FastAPI documents a 422 on every operation; validation errors here are 400 problems."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    if isinstance(operation, dict):
                        operation.get("responses", {}).pop("422", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings | None = None, *, run_executor: bool = True, run_scheduler: bool = False
) -> FastAPI:
    """Build the app. ``run_executor``: a worker thread executes queued runs in this process;
    ``run_scheduler``: a scheduler thread fires cron feeds and watches folders (both on for
    ``csvboard serve``, the embedded case; scaled deployments run ``csvboard worker`` and
    ``csvboard scheduler`` processes instead)."""
    from csvboard.worker.scheduler import Scheduler, SchedulerThread, scheduler_id_default

    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url, settings)
    executor = WorkerThread(Worker(engine, settings)) if run_executor else None
    scheduler = (
        SchedulerThread(Scheduler(engine, settings, scheduler_id=scheduler_id_default()))
        if run_scheduler
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for background in (executor, scheduler):
            if background is not None:
                background.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if executor is not None:
                executor.stop()
            engine.dispose()

    app = FastAPI(
        title="csvboard",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.executor = executor
    metrics = Metrics(engine)
    app.state.metrics = metrics
    install_problem_handlers(app)

    from csvboard.alerts.api import router as alerts_router
    from csvboard.api.health import router as health_router
    from csvboard.dashboards.api import router as dashboards_router
    from csvboard.runs.api import router as runs_router
    from csvboard.runs.start_api import router as start_router
    from csvboard.schedule.api import router as schedule_router
    from csvboard.schedule.boards_api import router as boards_router
    from csvboard.schedule.boards_api import settings_router

    routers = (
        start_router,
        runs_router,
        health_router,
        alerts_router,
        dashboards_router,
        schedule_router,
        boards_router,
        settings_router,
    )
    for router in routers:
        app.include_router(router)
    _without_phantom_422(app)

    from csvboard.web import install_web

    install_web(app)  # /login, /admin, /kiosk/{slug}, /static (not in the OpenAPI document)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(
        RequestContextMiddleware,
        fastapi_app=app,
        # The routers' own routes, matched before routing to enforce roles (tests/test_api_roles
        # proves every published route is covered).
        routes=[route for router in routers for route in router.routes],
        max_body_bytes=lambda: settings.max_upload_bytes,
        observe=metrics.observe,
    )
    return app


# `csvboard serve --processes N` hands these to its N server processes (uvicorn spawns them
# and builds each one's app with :func:`serving_app`).
SERVE_BACKGROUND_ENV = "CSVBOARD_SERVE_BACKGROUND"


def serving_app() -> FastAPI:
    """The app of one process of ``csvboard serve --processes N`` (a uvicorn factory)."""
    from csvboard.observability import configure_logging

    configure_logging(stream="stdout")
    background = os.environ.get(SERVE_BACKGROUND_ENV, "").split(",")
    return create_app(
        Settings.from_env(),
        run_executor="worker" in background,
        run_scheduler="scheduler" in background,
    )
