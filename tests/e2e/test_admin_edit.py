"""The admin console's editing and live views in headless Chromium, against a live server.

- Dashboards and feeds: an admin renames a dashboard, changes its encoding, adds a folder feed
  (a bad cron first: the API's refusal is shown and the form keeps its values), edits and
  disables it; everything survives a reload and reads the same through the API. Operators and
  viewers get no edit controls.
- Operations: an admin sets a dashboard's retention and manual re-runs (an out-of-range
  number is refused with the API's rule) and empties a box to go back to the default.
- Run history: rows loaded with "show more" follow their runs live, like the first page.
- Progress bars: a finished run's bar is full from the first paint; a running one shows
  processed/target.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, Route, expect

from e2e.test_console_and_kiosk import FIRST_EXPORT, api_ingest, no_horizontal_scroll

SLUG = "production-schedule"
DASHBOARDS = "/admin/dashboards"

SignIn = Callable[..., Page]


def api_get(live: Any, path: str) -> Any:
    headers = {"Authorization": f"Bearer {live.tokens['viewer']}"}
    response = httpx.get(f"{live.base_url}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def bar_widths(page: Page, fill: str) -> tuple[float, float]:
    widths = page.evaluate(
        """(sel) => {
            const fill = document.querySelector(sel);
            return [fill.getBoundingClientRect().width,
                    fill.parentElement.getBoundingClientRect().width];
        }""",
        fill,
    )
    return float(widths[0]), float(widths[1])


def set_run(live: Any, run_id: str, **values: Any) -> None:
    """Move a run's ledger row by hand (as a worker would), to watch the console follow it."""
    from csvboard.runs.models import IngestionRun

    with live.harness.write() as session:
        run = session.get(IngestionRun, uuid.UUID(run_id))
        assert run is not None
        for key, value in values.items():
            setattr(run, key, value)


# --- dashboards and feeds ------------------------------------------------------------------


def test_admin_edits_dashboard_and_feeds(
    sign_in: SignIn, live_server: Any, tmp_path: Path, artifacts: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    admin = sign_in("admin", next_path=DASHBOARDS)
    dash = admin.locator(f'.dash[data-slug="{SLUG}"]')
    expect(dash.locator("[data-testid=feed-row]").first).to_be_visible()
    feeds_before = dash.locator("[data-testid=feed-row]").count()

    # the dashboard's name and encoding
    dash.locator("[data-testid=dashboard-name]").fill("第一工場 生産スケジュール")
    dash.locator("[data-testid=dashboard-encoding]").select_option("cp932")
    dash.locator("[data-testid=dashboard-form] button[type=submit]").click()
    expect(dash.locator("[data-testid=flash]")).to_have_text("保存しました")
    expect(dash.locator("[data-testid=dashboard-title]")).to_have_text("第一工場 生産スケジュール")
    expect(dash.locator("[data-testid=dashboard-encoding-value]")).to_have_text("cp932")

    # a folder feed with a bad cron: refused, the API's reason shown, the form kept
    dash.locator("[data-testid=add-feed] > summary").click()
    form = dash.locator("[data-testid=feed-form]")
    form.locator("[data-testid=feed-name]").fill("共有フォルダー")
    form.locator("[data-testid=feed-source]").select_option("folder")
    form.locator("[data-testid=feed-location]").fill(str(drop))
    form.locator("[data-testid=feed-schedule]").fill("61 * * * *")
    form.locator("[data-testid=feed-add]").click()
    error = dash.locator("[data-testid=feed-error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("61")
    expect(error).to_contain_text("minute")
    expect(form.locator("[data-testid=feed-name]")).to_have_value("共有フォルダー")
    expect(form.locator("[data-testid=feed-source]")).to_have_value("folder")
    expect(form.locator("[data-testid=feed-location]")).to_have_value(str(drop))
    expect(form.locator("[data-testid=feed-schedule]")).to_have_value("61 * * * *")
    expect(form.locator("[data-testid=feed-schedule]")).to_have_attribute("aria-invalid", "true")
    expect(dash.locator("[data-testid=feed-row]")).to_have_count(feeds_before)
    admin.screenshot(path=str(artifacts / "console-dashboards-edit.png"), full_page=True)
    assert no_horizontal_scroll(admin)

    # corrected: the feed is added
    form.locator("[data-testid=feed-schedule]").fill("*/10 7-19 * * mon-fri")
    form.locator("[data-testid=feed-add]").click()
    feed = dash.locator('[data-testid=feed-row][data-feed-name="共有フォルダー"]')
    expect(feed).to_have_attribute("data-enabled", "true")
    expect(feed).to_contain_text("*/10 7-19 * * mon-fri")
    expect(dash.locator("[data-testid=flash]")).to_contain_text("共有フォルダー")

    # edit its schedule, then disable it
    feed.locator("[data-testid=feed-edit-open]").click()
    edit = dash.locator("[data-testid=feed-edit]:visible")
    edit.locator("[data-testid=feed-edit-schedule]").fill("0 7 * * *")
    edit.locator("[data-testid=feed-save]").click()
    expect(feed).to_contain_text("0 7 * * *")
    feed.locator("[data-testid=feed-enabled-toggle]").uncheck()
    expect(feed).to_have_attribute("data-enabled", "false")

    # a refused edit keeps what was typed
    feed.locator("[data-testid=feed-edit-open]").click()
    edit = dash.locator("[data-testid=feed-edit]:visible")
    edit.locator("[data-testid=feed-edit-schedule]").fill("61 * * * *")
    edit.locator("[data-testid=feed-save]").click()
    expect(edit.locator("[data-testid=feed-edit-error]")).to_contain_text("61")
    expect(edit.locator("[data-testid=feed-edit-schedule]")).to_have_value("61 * * * *")

    # after a reload, and through the API
    admin.reload()
    expect(dash.locator("[data-testid=dashboard-title]")).to_have_text("第一工場 生産スケジュール")
    expect(feed).to_have_attribute("data-enabled", "false")
    expect(feed.locator("[data-testid=feed-enabled-toggle]")).not_to_be_checked()
    expect(feed).to_contain_text("0 7 * * *")
    expect(dash.locator("[data-testid=feed-row]")).to_have_count(feeds_before + 1)
    board = api_get(live_server, f"/api/v1/dashboards/{SLUG}")
    assert (board["name"], board["encoding"]) == ("第一工場 生産スケジュール", "cp932")
    added = [f for f in api_get(live_server, f"/api/v1/dashboards/{SLUG}/feeds")["items"]
             if f["name"] == "共有フォルダー"]  # fmt: skip
    assert len(added) == 1
    assert added[0]["source"] == "folder" and added[0]["role"] == "official"
    assert added[0]["location"] == str(drop)
    assert added[0]["schedule"] == "0 7 * * *"
    assert added[0]["enabled"] is False

    # English on request
    admin.goto(live_server.url(DASHBOARDS + "?lang=en"))
    expect(dash.locator("[data-testid=add-feed] > summary")).to_have_text("Add a feed")
    expect(dash.locator("[data-testid=dashboard-form] button[type=submit]")).to_have_text("Save")

    # a tablet in portrait: the open forms still fit
    portrait = sign_in("admin", width=800, height=1280, next_path=DASHBOARDS)
    pdash = portrait.locator(f'.dash[data-slug="{SLUG}"]')
    pdash.locator("[data-testid=add-feed] > summary").click()
    pdash.locator("[data-testid=feed-name]").fill("共有フォルダー")
    pdash.locator("[data-testid=feed-source]").select_option("url")
    pdash.locator("[data-testid=feed-location]").fill("https://example.invalid/export.csv")
    pdash.locator("[data-testid=feed-add]").click()
    expect(pdash.locator("[data-testid=feed-error]")).to_contain_text("共有フォルダー")  # taken
    pdash.locator('[data-feed-name="共有フォルダー"] [data-testid=feed-edit-open]').click()
    assert no_horizontal_scroll(portrait)
    portrait.screenshot(
        path=str(artifacts / "console-dashboards-edit-portrait.png"), full_page=True
    )


def test_admin_sets_a_dashboards_retention_and_manual_reruns(
    sign_in: SignIn, live_server: Any
) -> None:
    admin = sign_in("admin", next_path=DASHBOARDS)
    dash = admin.locator(f'.dash[data-slug="{SLUG}"]')
    form = dash.locator("[data-testid=operations-form]")
    file_days = form.locator("[data-testid=operations-retention_file_days]")
    expect(dash.locator("[data-testid=operations-value-retention_file_days]")).to_have_text(
        "90日（既定）"
    )
    expect(file_days).to_have_attribute("placeholder", "90日（既定）")

    # out of range: the API's rule is shown, the form keeps what was typed, nothing saved
    file_days.fill("0")
    form.locator("button[type=submit]").click()
    error = dash.locator("[data-testid=operations-error]")
    expect(error).to_contain_text("operations.retention_file_days")
    expect(error).to_contain_text("36500")
    expect(file_days).to_have_attribute("aria-invalid", "true")
    expect(file_days).to_have_value("0")
    assert (
        api_get(live_server, f"/api/v1/dashboards/{SLUG}")["operations"]["retention_file_days"]
        is None
    )

    file_days.fill("30")
    form.locator("[data-testid=operations-retry_manual_runs]").check()
    form.locator("button[type=submit]").click()
    expect(dash.locator("[data-testid=flash]")).to_have_text("保存しました")
    expect(dash.locator("[data-testid=operations-value-retention_file_days]")).to_have_text("30日")
    expect(dash.locator("[data-testid=operations-value-retry_manual_runs]")).to_have_text("はい")
    ops = api_get(live_server, f"/api/v1/dashboards/{SLUG}")["operations"]
    assert (ops["retention_file_days"], ops["retry_manual_runs"]) == (30, True)
    assert ops["retention_ledger_days"] is None  # untouched boxes are not sent

    # emptied: back to the default
    dash.locator("[data-testid=operations-retention_file_days]").fill("")
    dash.locator("[data-testid=operations-form] button[type=submit]").click()
    expect(dash.locator("[data-testid=operations-value-retention_file_days]")).to_have_text(
        "90日（既定）"
    )
    assert (
        api_get(live_server, f"/api/v1/dashboards/{SLUG}")["operations"]["retention_file_days"]
        is None
    )

    admin.goto(live_server.url(DASHBOARDS + "?lang=en"))
    expect(dash.locator("[data-testid=operations-value-retention_file_days]")).to_have_text(
        "90 days (default)"
    )
    expect(dash.locator("[data-testid=operations-form]")).to_contain_text(
        "Re-run failed manual runs automatically"
    )


def test_operator_and_viewer_get_no_edit_controls(sign_in: SignIn, live_server: Any) -> None:
    for role in ("operator", "viewer"):
        page = sign_in(role, next_path=DASHBOARDS)
        dash = page.locator(f'.dash[data-slug="{SLUG}"]')
        expect(dash.locator("[data-testid=feed-row]").first).to_be_visible()
        for testid in (
            "dashboard-form",
            "add-feed",
            "feed-form",
            "feed-enabled-toggle",
            "feed-edit-open",
            "feed-edit",
            "operations-form",
        ):
            expect(dash.locator(f"[data-testid={testid}]")).to_have_count(0)
        expect(page.locator("main :is(input, select, textarea)")).to_have_count(0)


# --- run history and progress bars ----------------------------------------------------------


def test_run_history_more_rows_update_live_and_bars(sign_in: SignIn, live_server: Any) -> None:
    older = api_ingest(live_server, FIRST_EXPORT)["run_id"]
    newer = api_ingest(live_server, FIRST_EXPORT, kind="incremental_update")["run_id"]

    # a finished run's bar is full at once (it used to grow from 0 and be caught part-filled)
    admin = sign_in("admin", next_path=f"/admin/runs/{newer}")
    expect(admin.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    expect(admin.locator("#run-fill")).to_have_attribute("data-value", "100")
    fill, bar = bar_widths(admin, "#run-fill")
    assert bar > 0 and abs(fill - bar) < 1, (fill, bar)

    # the older run is "running" again, 3 of 7 processed (as a worker would leave it)
    set_run(
        live_server,
        older,
        status="running",
        finished_at=None,
        started_at=datetime.now(UTC),
        processed_count=3,
        success_count=3,
        unprocessed_count=4,
    )
    admin.goto(live_server.url(f"/admin/runs/{older}"))
    expect(admin.locator("#run-status")).to_have_attribute("data-status", "running")
    expect(admin.locator("#run-fill")).to_have_attribute("data-value", "43")
    fill, bar = bar_widths(admin, "#run-fill")
    assert abs(fill / bar - 3 / 7) < 0.02, (fill, bar)

    # one run per page, so the running one is only reached with "show more"
    def one_per_page(route: Route) -> None:
        route.continue_(url=route.request.url.replace("limit=50", "limit=1"))

    admin.route("**/api/v1/ops/ingestion/runs?*", one_per_page)
    admin.goto(live_server.url("/admin"))
    rows = admin.locator("#runs-body tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", newer)
    admin.click("#runs-more")
    tail = admin.locator(f'#runs-body tr[data-run-id="{older}"]')
    expect(tail).to_have_attribute("data-status", "running")
    expect(tail).to_contain_text("3/7")

    set_run(live_server, older, processed_count=5, success_count=5, unprocessed_count=2)
    expect(tail).to_contain_text("5/7")
    set_run(
        live_server,
        older,
        status="succeeded",
        finished_at=datetime.now(UTC),
        processed_count=7,
        success_count=7,
        unprocessed_count=0,
    )
    expect(tail).to_have_attribute("data-status", "succeeded")
    expect(tail).to_contain_text("7/7")
    expect(rows).to_have_count(2)

    admin.goto(live_server.url(f"/admin/runs/{older}"))
    expect(admin.locator("#run-fill")).to_have_attribute("data-value", "100")
    fill, bar = bar_widths(admin, "#run-fill")
    assert abs(fill - bar) < 1, (fill, bar)


def test_feed_state_last_poll_message_and_error_are_shown(
    sign_in: SignIn, live_server: Any
) -> None:
    """Issue 7: the console shows each feed's last poll, last message and last error."""
    from sqlalchemy import select

    from csvboard.dashboards.models import CsvDashboardFeed
    from csvboard.feeds.models import CsvDashboardFeedState

    with live_server.harness.write() as session:
        feed = session.scalars(
            select(CsvDashboardFeed).where(CsvDashboardFeed.name == "upload")
        ).one()
        session.add(
            CsvDashboardFeedState(
                feed_id=feed.id,
                last_polled_at=datetime(2026, 11, 24, 6, 30, tzinfo=UTC),
                last_message="no new file",
                last_error="connection refused by 127.0.0.1:993",
                updated_at=datetime(2026, 11, 24, 6, 30, tzinfo=UTC),
            )
        )
    page = sign_in("admin", next_path="/admin/dashboards")
    state = page.get_by_test_id("feed-state")
    expect(state).to_contain_text("connection refused by 127.0.0.1:993")
    expect(state).to_contain_text("no new file")
    expect(state).to_contain_text("最終確認")
