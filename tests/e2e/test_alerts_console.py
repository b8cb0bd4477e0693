"""The admin console's runs page shows the open alerts and what was sent about each; an admin
sends a test message (none configured here: the page says so), a viewer cannot."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from csvboard.alerts import evaluate
from csvboard.dashboards.models import CsvDashboard
from support import failed_run

from .test_console_and_kiosk import SignIn


def test_the_runs_page_shows_open_alerts(sign_in: SignIn, live_server: Any) -> None:
    h = live_server.harness
    with h.read() as session:
        board = session.scalars(select(CsvDashboard)).one()
    page = sign_in("admin", next_path="/admin")
    expect(page.locator("#alerts-empty")).to_be_visible()
    run_id, ended = failed_run(h, board, "HEADER_MISMATCH")
    evaluate(h.engine, h.settings, ended)
    page.reload()
    item = page.locator("#alerts-list li.alert-item")
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-kind", "run_failed")
    expect(item).to_contain_text("取込失敗")
    expect(item).to_contain_text("HEADER_MISMATCH")
    expect(item).to_contain_text("通知先が設定されていません")
    expect(item.locator("a")).to_have_attribute("href", f"/admin/runs/{run_id}")
    page.locator("[data-testid=alerts-test]").click()
    expect(page.locator("[data-testid=alerts-test-result]")).to_contain_text(
        "通知先が設定されていません"
    )

    viewer = sign_in("viewer", next_path="/admin?lang=en")
    expect(viewer.locator("#alerts-list li.alert-item")).to_contain_text("run failed")
    expect(viewer.locator("[data-testid=alerts-test]")).to_have_count(0)
