"""順位ボード in Chromium: a column per chosen resource with its open steps in working order;
giving a step a machining order moves it to the top of its column, completing it takes it off
and closes the gap; the list shows the same afterwards; a viewer sees no controls."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from .test_console_and_kiosk import (
    FIRST_EXPORT,
    KIOSK,
    SignIn,
    api_ingest,
    choose_resources,
    step,
)

BOARD = f"{KIOSK}/board"


def column(page: Page, resource: str) -> Any:
    return page.locator(f'[data-testid=column][data-resource="{resource}"]')


def hincds(page: Page, resource: str) -> list[str]:
    found = column(page, resource).locator("[data-testid=step]")
    return [s.get_attribute("data-fhincd") or "" for s in found.all()]


def test_columns_follow_the_order_and_completion(sign_in: SignIn, live_server: Any) -> None:
    api_ingest(live_server, FIRST_EXPORT)
    page = sign_in("operator", next_path=BOARD)
    expect(page.locator("[data-testid=board-ask]")).to_be_visible()
    page.locator("[data-testid=board-resource][data-resource=R01]").click()
    page.locator("[data-testid=board-resource][data-resource=R02]").click()
    expect(page.locator("[data-testid=column]")).to_have_count(2)
    expect(column(page, "R01").locator("[data-testid=step]")).to_have_count(2)
    assert hincds(page, "R01") == ["P-100", "P-200"]  # the kiosk order
    assert hincds(page, "R02") == ["P-100", "P-400"]

    # P-200 gets machining order 1: it leads its column
    target = column(page, "R01").locator("[data-testid=step][data-fhincd=P-200]")
    target.locator("[data-testid=order]").click()
    page.locator("[data-testid=choice]", has_text="1").first.click()
    expect(column(page, "R01").locator("[data-testid=step]").first).to_have_attribute(
        "data-fhincd", "P-200"
    )
    first = column(page, "R01").locator("[data-testid=step]").first
    expect(first.locator("[data-testid=order] .chip-value")).to_have_text("1")

    # completing it takes it off the open column
    first.locator("[data-testid=toggle]").click()
    expect(column(page, "R01").locator("[data-testid=step]")).to_have_count(1)
    assert hincds(page, "R01") == ["P-100"]
    # shown again with the done steps, without its order (released on completion)
    page.locator("#board-filter [data-completion=all]").click()
    expect(column(page, "R01").locator("[data-testid=step]")).to_have_count(2)
    done = column(page, "R01").locator("[data-testid=step][data-fhincd=P-200]")
    expect(done).to_have_attribute("data-completed", "true")
    expect(done.locator("[data-testid=order] .chip-value")).to_have_text("—")

    # the list sees the same; the board remembers its resources across a reload
    page.goto(live_server.url(KIOSK))
    choose_resources(page, "R01")
    expect(step(page, "P-200")).to_have_attribute("data-completed", "true")
    page.goto(live_server.url(BOARD))
    expect(page.locator("[data-testid=column]")).to_have_count(2)


def test_a_viewer_reads_the_board_without_controls(sign_in: SignIn, live_server: Any) -> None:
    api_ingest(live_server, FIRST_EXPORT)
    viewer = sign_in("viewer", next_path=BOARD)
    viewer.locator("[data-testid=board-resource][data-resource=R03]").click()
    expect(column(viewer, "R03").locator("[data-testid=step]")).to_have_count(2)
    expect(viewer.locator("button[data-testid=toggle]")).to_have_count(0)
    expect(viewer.locator("button[data-testid=order]")).to_have_count(0)
