"""Browser tests: a real ``csvboard`` server (uvicorn, in a thread, on 127.0.0.1 and a free
port, with its in-process run executor) over a fresh SQLite database, driven by Playwright in
Debian's headless Chromium (``/usr/bin/chromium``; ``scripts/test`` installs it).

A missing Chromium is a failure, not a skip: the web UI must be tested.

Screenshots go to ``test-artifacts/`` at the repository root (ignored by git).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import Harness

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SLUG = "production-schedule"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


@dataclass
class LiveServer:
    base_url: str
    harness: Harness
    tokens: dict[str, str]
    thread: threading.Thread
    server: Any
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def serve(
    url: str, data_dir: Path, prepare: Callable[[Harness, Any], None] | None = None
) -> Iterator[LiveServer]:
    """A live server over the database ``url`` with a schedule dashboard and a token per role;
    ``prepare(harness, dashboard)`` fills the database before the server starts."""
    import uvicorn

    from csvboard.app import create_app
    from csvboard.auth import Role, create_token

    harness = Harness(url, data_dir)
    board = harness.dashboard(SLUG)
    if prepare is not None:
        prepare(harness, board)
    tokens: dict[str, str] = {}
    with harness.write() as session:
        for role in Role:
            tokens[role.value] = create_token(session, f"e2e-{role.value}", role)

    app = create_app(harness.settings, run_executor=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    live = LiveServer(f"http://127.0.0.1:{port}", harness, tokens, thread, server)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        harness.close()


@pytest.fixture
def live_server(sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with serve(sqlite_url, tmp_path / "data") as live:
        yield live


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def signed_in_page(
    browser: Any,
    live: LiveServer,
    role: str,
    *,
    width: int = 1920,
    height: int = 1080,
    next_path: str = "/admin",
) -> tuple[Any, Any]:
    """A new browser context signed in through the login form (as a person would), and its
    page. The caller closes the context."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="ja-JP", timezone_id="Asia/Tokyo"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(live.url(f"/login?next={next_path}"))
    page.fill("#token", live.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_url(live.url(next_path))
    return context, page


@pytest.fixture
def sign_in(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """``sign_in(role, width=, height=, next_path=)``: a new browser context signed in through
    the login form (as a person would); returns its page. Contexts close after the test."""
    contexts: list[Any] = []

    def open_page(
        role: str, *, width: int = 1920, height: int = 1080, next_path: str = "/admin"
    ) -> Any:
        context, page = signed_in_page(
            browser, live_server, role, width=width, height=height, next_path=next_path
        )
        contexts.append(context)
        return page

    yield open_page
    for context in contexts:
        context.close()
