"""Signage in Chromium: a viewer's screen shows the 製番' progress and the resources' boards,
rotates between them by itself, renders no control, and when the server cannot be reached
keeps its last picture and says how old it is."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from .test_console_and_kiosk import FIRST_EXPORT, SignIn, api_ingest

SIGNAGE = "/signage/production-schedule"


def test_signage_rotates_never_shows_a_control_and_is_honest_when_offline(
    sign_in: SignIn, live_server: Any
) -> None:
    api_ingest(live_server, FIRST_EXPORT)
    screen = sign_in("viewer", next_path=SIGNAGE)
    screen.goto(live_server.url(f"{SIGNAGE}?refresh=1&rotate=2"))  # a quick screen
    main = screen.locator("#signage")
    expect(main).to_have_attribute("data-state", "ready")
    expect(main).to_have_attribute("data-view", "progress")
    seiban = screen.locator('[data-testid=sg-seiban][data-fseiban="AB123456"]')
    expect(seiban.locator("[data-testid=sg-pct]")).to_have_text("0%")
    expect(seiban.locator("[data-testid=sg-parts]")).to_contain_text("横形MC㈱")
    expect(screen.locator("button, input, select, textarea, form")).to_have_count(0)

    expect(main).to_have_attribute("data-view", "resources", timeout=10_000)
    expect(screen.locator("[data-testid=sg-resource]").first).to_be_visible()
    expect(screen.locator("button, input, select, textarea, form")).to_have_count(0)

    # the server goes away: the last picture stays, with its age
    screen.route("**/api/v1/schedules/*/signage", lambda route: route.abort())
    expect(main).to_have_attribute("data-stale", "true", timeout=10_000)
    stale = screen.locator("[data-testid=signage-stale]")
    expect(stale).to_be_visible()
    expect(stale).to_contain_text("分前")
    expect(
        screen.locator("[data-testid=sg-seiban], [data-testid=sg-resource]").first
    ).to_be_visible()

    # ... and when it is back, the screen is current again
    screen.unroute("**/api/v1/schedules/*/signage")
    expect(main).to_have_attribute("data-stale", "false", timeout=10_000)
    expect(stale).to_be_hidden()
