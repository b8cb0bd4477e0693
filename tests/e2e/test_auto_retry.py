"""The admin console shows a run's pending automatic re-run and when, and an admin stops it."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from csvboard.dashboards.models import CsvDashboard
from support import failed_run

from .test_console_and_kiosk import SignIn


def test_the_run_page_shows_and_stops_a_pending_rerun(sign_in: SignIn, live_server: Any) -> None:
    h = live_server.harness
    with h.read() as session:
        board = session.scalars(select(CsvDashboard)).one()
    run_id, _ = failed_run(h, board, "WORKER_LOST")
    page = sign_in("admin", next_path=f"/admin/runs/{run_id}")
    pending = page.locator("[data-testid=auto-retry]")
    expect(pending).to_be_visible()
    expect(pending).to_contain_text("自動再実行 1回目")
    page.locator("[data-testid=auto-retry-cancel]").click()
    expect(pending).to_be_hidden()

    viewer = sign_in("viewer", next_path=f"/admin/runs/{run_id}")
    expect(viewer.locator("[data-testid=run-status]")).to_have_attribute("data-status", "failed")
    expect(viewer.locator("[data-testid=auto-retry-cancel]")).to_have_count(0)
