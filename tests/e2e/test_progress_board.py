"""進捗一覧 in Chromium: a card per 製番 with its machine, parts and step chips in 工順 order;
a chip opens the step with the list's controls; a completion made there shows on the card at
once and on the kiosk list, and one made on the list shows on the cards after a refresh;
what a viewer may not do is not shown."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from .test_console_and_kiosk import FIRST_EXPORT, KIOSK, SignIn, api_ingest, choose_resources, step

PROGRESS = f"{KIOSK}/progress"


def card(page: Page, seiban: str) -> Any:
    return page.locator(f'[data-testid=card][data-fseiban="{seiban}"]')


def chips(page: Page, seiban: str) -> list[tuple[str, str, str, str]]:
    found = card(page, seiban).locator("[data-testid=step-chip]")
    return [
        (
            c.get_attribute("data-fsigencd") or "",
            c.get_attribute("data-fkojun") or "",
            c.get_attribute("data-completed") or "",
            c.inner_text(),
        )
        for c in found.all()
    ]


def test_cards_show_each_seiban_and_a_chip_opens_its_step(
    sign_in: SignIn, live_server: Any
) -> None:
    api_ingest(live_server, FIRST_EXPORT)
    page = sign_in("operator", next_path=PROGRESS)
    # nothing registered yet: every 製番 of the schedule
    expect(page.locator("[data-testid=card]")).to_have_count(2)
    expect(page.locator("[data-testid=source-all]")).to_have_attribute("aria-pressed", "true")
    first = card(page, "AB123456")
    expect(first.locator("[data-testid=card-machine]")).to_have_text("横形MC㈱")
    expect(first.locator("[data-testid=card-count]")).to_have_text("0 / 4 (0%)")
    parts = first.locator("[data-testid=card-part]")
    expect(parts).to_have_count(3)
    assert [p.get_attribute("data-fhincd") for p in parts.all()] == ["P-100", "P-200", "P-300"]
    assert chips(page, "AB123456") == [
        ("R01", "10", "false", "R01"), ("R02", "20", "false", "R02"),
        ("R01", "10", "false", "R01"), ("R03", "10", "false", "R03"),
    ]  # fmt: skip

    # a chip opens that step with the list's controls; completing it there shows at once
    first.locator(
        "[data-testid=card-part][data-fhincd=P-100] [data-testid=step-chip]"
    ).first.click()
    dialog = page.locator("[data-testid=step-dialog]")
    expect(dialog.locator("[data-testid=step]")).to_have_attribute("data-fhincd", "P-100")
    dialog.locator("[data-testid=toggle]").click()
    expect(dialog.locator("[data-testid=step]")).to_have_attribute("data-write", "ok")
    expect(dialog.locator("[data-testid=toggle]")).to_have_attribute("aria-pressed", "true")
    dialog.locator("[data-testid=step-close]").click()
    expect(first.locator("[data-testid=card-count]")).to_have_text("1 / 4 (25%)")
    expect(first.locator("[data-testid=step-chip]").first).to_have_attribute(
        "data-completed", "true"
    )

    # ... and on the kiosk list; a completion made on the list shows on the cards after a refresh
    page.goto(live_server.url(KIOSK))
    choose_resources(page, "R01", "R02", "R03")
    expect(step(page, "P-100")).to_have_attribute("data-completed", "true")
    step(page, "P-300").locator("[data-testid=toggle]").click()
    expect(step(page, "P-300")).to_have_attribute("data-write", "ok")
    page.goto(live_server.url(PROGRESS))
    expect(card(page, "AB123456").locator("[data-testid=card-count]")).to_have_text("2 / 4 (50%)")

    # a search narrows the cards to the 製番 it matches
    page.fill("#cards-search", "テーブル")
    expect(page.locator("[data-testid=card]")).to_have_count(1)
    expect(card(page, "CD654321")).to_have_count(1)


def test_registered_seibans_come_first_and_a_viewer_only_reads(
    sign_in: SignIn, live_server: Any
) -> None:
    api_ingest(live_server, FIRST_EXPORT)
    operator = sign_in("operator", next_path=KIOSK)
    operator.locator("[data-testid=seiban-edit]").click()
    operator.locator("[data-testid=seiban-input]").fill("CD654321")
    operator.locator("[data-testid=seiban-add]").click()
    operator.locator("[data-testid=seiban-save]").click()
    expect(operator.locator("[data-testid=editor]")).not_to_be_visible()

    viewer = sign_in("viewer", next_path=PROGRESS)
    expect(viewer.locator("[data-testid=source-registered]")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(viewer.locator("[data-testid=card]")).to_have_count(1)
    expect(card(viewer, "CD654321")).to_have_count(1)
    viewer.locator("[data-testid=source-all]").click()
    expect(viewer.locator("[data-testid=card]")).to_have_count(2)
    card(viewer, "AB123456").locator("[data-testid=step-chip]").first.click()
    dialog = viewer.locator("[data-testid=step-dialog]")
    expect(dialog.locator("[data-testid=step]")).to_have_count(1)
    expect(dialog.locator("button[data-testid=toggle]")).to_have_count(0)  # read-only
    expect(dialog.locator("button[data-testid=note]")).to_have_count(0)
