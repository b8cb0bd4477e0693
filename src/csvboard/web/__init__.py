"""The browser UI: sign-in, the admin console (``/admin``) and kiosk boards (``/kiosk/{slug}``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from csvboard.web.routes import STATIC_DIR, router


def install_web(app: FastAPI) -> None:
    """Add the pages and their static files (``/static``) to the app."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")


__all__ = ["install_web"]
