"""負荷 in Chromium: the chart (the vendored Chart.js, no network) and the table of hours per
resource and week; an admin sets a capacity and the overloaded week turns red; a bad capacity
is refused with its reason and nothing changes; a viewer reads without the editor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from playwright.sync_api import expect

from csvboard.clock import utcnow
from csvboard.schedule.load import week_of

from .test_console_and_kiosk import FIRST_EXPORT, SignIn, api_ingest, api_rows

LOAD = "/admin/load/production-schedule"


def test_admin_sets_a_capacity_and_the_overloaded_week_stands_out(
    sign_in: SignIn, live_server: Any
) -> None:
    api_ingest(live_server, FIRST_EXPORT)
    rows = api_rows(live_server)
    due = str(week_of(utcnow().date()) + timedelta(days=9))  # next week (whatever the zone)
    headers = {"Authorization": f"Bearer {live_server.tokens['operator']}"}
    for key in (("P-100", "10"), ("P-200", "10")):  # both on R01, 1.5 h each
        response = httpx.put(
            f"{live_server.base_url}/api/v1/schedules/production-schedule/rows/"
            f"{rows[key]['id']}/due-date",
            json={"due_date": due},
            headers=headers,
        )
        assert response.status_code == 200, response.text

    page = sign_in("admin", next_path=LOAD)
    table = page.locator("[data-testid=load-table]")
    expect(table).to_have_attribute("data-state", "ready")
    r01 = page.locator("[data-testid=load-row][data-resource=R01]")
    expect(r01.locator("td.over")).to_have_count(0)
    chart = page.locator("[data-testid=load-chart]")
    page.locator("[data-testid=load-resource][data-resource=R01]").click()
    expect(chart).to_have_attribute("data-resource", "R01")
    assert page.evaluate("() => typeof window.Chart") == "function"

    r01.locator("[data-testid=capacity-input]").fill("2")
    r01.locator("[data-testid=capacity-save]").click()
    expect(r01.locator("td.over")).to_have_count(1)
    expect(r01.locator("td.over")).to_have_text("3")
    expect(chart).to_have_attribute("data-overloaded", "1")

    r01.locator("[data-testid=capacity-input]").fill("-1")
    r01.locator("[data-testid=capacity-save]").click()
    expect(page.locator("[data-testid=load-error]")).to_contain_text("positive number of hours")
    expect(r01.locator("[data-testid=capacity-input]")).to_have_value("-1")
    page.reload()
    expect(
        page.locator("[data-testid=load-row][data-resource=R01] [data-testid=capacity-input]")
    ).to_have_value("2")

    viewer = sign_in("viewer", next_path=LOAD)
    expect(viewer.locator("[data-testid=load-table]")).to_have_attribute("data-state", "ready")
    expect(viewer.locator("[data-testid=capacity-input]")).to_have_count(0)
    expect(
        viewer.locator("[data-testid=load-row][data-resource=R01] [data-testid=capacity]")
    ).to_have_text("2")
