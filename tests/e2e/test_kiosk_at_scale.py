"""The kiosk board at a size where listing every step falls over: 20,000 steps, on SQLite and
on PostgreSQL, in headless Chromium against a live server.

What is held: the board asks for a scope instead of listing the dashboard, its DOM stays
bounded however far the worker scrolls, the terminal's scope survives a reload, a stale edit
of the registered 製番 is refused and shown, and a poll never undoes a write made while it
was on its way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from csvboard.schedule.sample import write_schedule_csv
from e2e.conftest import SLUG, LiveServer, serve, signed_in_page
from support import Harness

STEPS = 20_000
KIOSK = f"/kiosk/{SLUG}"
# A bounded board: 2–3 pages of 50 steps (about 20 elements each) plus the page's chrome.
MAX_ELEMENTS = 4_000


def _fill(tmp_path: Path) -> Any:
    def prepare(harness: Harness, board: Any) -> None:
        export = write_schedule_csv(tmp_path / "export.csv", STEPS, seed=7)
        run = harness.ingest(board, export.read_bytes(), kind="official_ingestion")
        assert run.status == "succeeded", run

    return prepare


@pytest.fixture
def big_server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with serve(db_url, tmp_path / "data", _fill(tmp_path)) as live:
        yield live


@pytest.fixture
def open_kiosk(browser: Any, big_server: LiveServer) -> Iterator[Any]:
    contexts: list[Any] = []

    def open_page(role: str = "operator") -> Page:
        context, page = signed_in_page(browser, big_server, role, next_path=KIOSK)
        contexts.append(context)
        return page

    yield open_page
    for context in contexts:
        context.close()


def _api(live: LiveServer, role: str = "admin") -> httpx.Client:
    return httpx.Client(
        base_url=live.base_url, headers={"Authorization": f"Bearer {live.tokens[role]}"}
    )


def _elements(page: Page) -> int:
    return int(page.evaluate("document.getElementsByTagName('*').length"))


def _ready(page: Page) -> None:
    expect(page.locator("#board")).to_have_attribute("data-state", "ready", timeout=20_000)


def _choose(page: Page, code: str) -> None:
    page.locator(f'[data-testid=scope-resource][data-resource="{code}"]').click()
    _ready(page)


def test_board_stays_bounded_and_keeps_its_scope(open_kiosk: Any, big_server: LiveServer) -> None:
    page = open_kiosk()
    expect(page.locator("#board")).to_have_attribute("data-state", "ask-scope")
    expect(page.locator("[data-testid=ask-scope]")).to_be_visible()
    assert page.locator("[data-testid=step]").count() == 0
    _choose(page, "M01")
    expect(page.locator("[data-testid=step]")).to_have_count(50)
    # scroll through ten pages (500 of M01's ~2,800 steps)
    for _ in range(60):
        if int(page.get_attribute("#board", "data-pages") or 0) >= 10:
            break
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(150)
    assert int(page.get_attribute("#board", "data-pages") or 0) >= 10
    page.wait_for_timeout(300)
    assert _elements(page) <= MAX_ELEMENTS, _elements(page)
    assert page.locator("[data-testid=step]").count() <= 200
    # every shown step is on the scope's resource, in kiosk order (製番 first)
    resources = page.locator("[data-testid=step] [data-testid=fsigencd]").all_text_contents()
    assert resources and all(r.startswith("M01") for r in resources)
    # back at the top, the first page is rendered again from memory
    page.evaluate("window.scrollTo(0, 0)")
    expect(page.locator('[data-testid=page][data-page="0"] [data-testid=step]')).to_have_count(50)

    # the scope is the terminal's: a reload starts scoped, and the filters are kept too
    page.click("#kiosk-filter [data-completion=incomplete]")
    _ready(page)
    page.reload()
    _ready(page)
    button = page.locator('[data-testid=scope-resource][data-resource="M01"]')
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#kiosk-filter [data-completion=incomplete]")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.locator("[data-testid=step][data-completed=true]")).to_have_count(0)
    scope = json.loads(page.evaluate(f"localStorage.getItem('csvboard.kiosk.scope.{SLUG}')"))
    assert scope == {"resources": ["M01"], "seibans": []}

    # an unknown resource code in a stored scope is named on the page, not an empty board
    page.evaluate(
        f"localStorage.setItem('csvboard.kiosk.scope.{SLUG}',"
        " JSON.stringify({resources: ['ZZ9'], seibans: []}))"
    )
    page.reload()
    expect(page.locator("#board")).to_have_attribute("data-state", "error")
    expect(page.locator("[data-testid=kiosk-error]")).to_contain_text("ZZ9")
    # and more than 8 search terms are refused with the server's reason
    page.locator('[data-testid=scope-resource][data-resource="ZZ9"]').click()  # let go of it
    expect(page.locator("#board")).to_have_attribute("data-state", "ask-scope")
    page.fill("#kiosk-search", "1,2,3,4,5,6,7,8,9")
    expect(page.locator("[data-testid=kiosk-error]")).to_contain_text("8")


def _registered(live: LiveServer) -> list[str]:
    with _api(live) as client:
        return [
            s["fseiban"] for s in client.get(f"/api/v1/schedules/{SLUG}/seibans").json()["items"]
        ]


def _some_seibans(live: LiveServer, n: int) -> list[str]:
    with _api(live) as client:
        rows = client.get(
            f"/api/v1/schedules/{SLUG}/rows", params={"resource": "M02", "limit": 200}
        ).json()["items"]
    found: list[str] = []
    for row in rows:
        s = row["row_data"]["FSEIBAN"]
        if s != "********" and s not in found:
            found.append(s)
    return found[:n]


def _add_seiban(page: Page, seiban: str) -> None:
    page.click("[data-testid=seiban-edit]")
    page.fill("[data-testid=seiban-input]", seiban)
    page.click("[data-testid=seiban-add]")
    page.click("[data-testid=seiban-save]")


def test_a_stale_registered_list_edit_is_refused_and_shown(
    open_kiosk: Any, big_server: LiveServer
) -> None:
    first, second = _some_seibans(big_server, 2)
    planner_a = open_kiosk()
    planner_b = open_kiosk()  # both read version 0
    for page in (planner_a, planner_b):
        expect(page.locator("#scope-seibans")).to_contain_text("登録された製番はありません")

    _add_seiban(planner_a, first)
    expect(planner_a.locator(f'[data-testid=seiban][data-fseiban="{first}"]')).to_be_visible()
    assert _registered(big_server) == [first]

    # B still holds version 0: refused (412), told why, and shown the list as it now is
    _add_seiban(planner_b, second)
    expect(planner_b.locator("[data-testid=seiban-editor-error]")).to_contain_text("他の端末")
    expect(planner_b.locator("[data-testid=seiban-error]")).to_contain_text("他の端末")
    expect(planner_b.locator("[data-testid=seiban-list] li")).to_have_count(1)
    planner_b.click("[data-testid=editor-close]")
    expect(planner_b.locator(f'[data-testid=seiban][data-fseiban="{first}"]')).to_be_visible()
    assert _registered(big_server) == [first]  # nothing of B's stale edit was stored

    # now that B has read the current version, the same edit goes through
    _add_seiban(planner_b, second)
    expect(planner_b.locator(f'[data-testid=seiban][data-fseiban="{second}"]')).to_be_visible()
    assert _registered(big_server) == [first, second]

    # a registered 製番 scopes the board: its steps only, with its machine name and progress
    button = planner_b.locator(f'[data-testid=seiban][data-fseiban="{first}"]')
    expect(button.locator(".sb-progress")).to_have_text(re.compile(r"^[0-9]+/[1-9][0-9]*$"))
    button.click()
    _ready(planner_b)
    seibans = planner_b.locator("[data-testid=step] [data-testid=fseiban]").all_text_contents()
    assert seibans and set(seibans) == {first}


def _first_step(page: Page) -> Locator:
    return page.locator('[data-testid=page][data-page="0"] [data-testid=step]').first


def test_a_poll_never_undoes_a_write(open_kiosk: Any, big_server: LiveServer) -> None:
    page = open_kiosk()
    _choose(page, "W01")
    target = _first_step(page)
    row_id = target.get_attribute("data-row-id")
    expect(target).to_have_attribute("data-completed", "false")

    # 1. a poll whose answer was read before the write, delivered after it is confirmed
    held: list[Any] = []
    page.route("**/lookup?*", lambda route: held.append((route, route.fetch())))
    page.evaluate("() => { window.__poll = window.csvboardKiosk.poll(); }")
    for _ in range(200):  # route handlers run while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    target.locator("[data-testid=toggle]").click()
    expect(target).to_have_attribute("data-write", "ok")
    expect(target).to_have_attribute("data-completed", "true")
    route, stale = held[0]
    route.fulfill(response=stale)  # says: not completed
    page.evaluate("() => window.__poll")
    page.unroute("**/lookup?*")
    expect(target).to_have_attribute("data-completed", "true")

    # 2. a poll that answers while a write is still pending here
    writes: list[Any] = []
    page.route("**/completion", lambda route: writes.append(route))
    target.locator("[data-testid=toggle]").click()  # intent: incomplete
    expect(target).to_have_attribute("data-write", "pending")
    page.evaluate("() => window.csvboardKiosk.poll()")  # the server still says completed
    expect(target).to_have_attribute("data-completed", "false")
    expect(target).to_have_attribute("data-write", "pending")
    writes[0].continue_()
    expect(target).to_have_attribute("data-write", "ok")
    expect(target).to_have_attribute("data-completed", "false")
    page.unroute("**/completion")

    # 3. another terminal's change arrives by the poll, re-rendering only that step
    with _api(big_server, "operator") as client:
        done = client.put(
            f"/api/v1/schedules/{SLUG}/rows/{row_id}/completion", json={"intent": "complete"}
        )
        assert done.status_code == 200, done.text
        noted = client.put(
            f"/api/v1/schedules/{SLUG}/rows/{row_id}/note", json={"note": "隣の端末から"}
        )
        assert noted.status_code == 200, noted.text
    page.evaluate("document.querySelectorAll('[data-testid=step]')[1].dataset.untouched = 'yes'")
    page.evaluate("() => window.csvboardKiosk.poll()")
    expect(target).to_have_attribute("data-completed", "true")
    expect(target.locator("[data-testid=note] .chip-value")).to_have_text("隣の端末から")
    # the other steps' elements are the same ones: nothing was re-listed
    second = "document.querySelectorAll('[data-testid=step]')[1].dataset.untouched"
    assert page.evaluate(second) == "yes"
