"""The admin console and the kiosk board in headless Chromium, against a live server.

The main scenario is the issue's: sign in, upload a CP932 export, watch the run succeed, mark
three steps done and write a note on the kiosk, upload a changed full snapshot, find the marks
and the note on the same steps and the retired step gone, and re-run a failed run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from support import SCHEDULE_HEADER, schedule_line

SLUG = "production-schedule"
KIOSK = f"/kiosk/{SLUG}"
RUN_TIMEOUT_MS = 20_000

SignIn = Callable[..., Page]


def export(*lines: str) -> str:
    return "\n".join([SCHEDULE_HEADER, *lines]) + "\n"


MACHINE = schedule_line(1000000001, "AB123456", "MH-0001", 1, resource="M00", name="横形MC㈱")
FIRST_EXPORT = export(
    MACHINE,
    schedule_line(1000000001, "AB123456", "P-100", 10, resource="R01", name="ベース①"),
    schedule_line(1000000001, "AB123456", "P-100", 20, resource="R02", name="ベース①"),
    schedule_line(1000000001, "AB123456", "P-200", 10, resource="R01", name="コラム髙"),
    schedule_line(1000000001, "AB123456", "P-300", 10, resource="R03", name="サドル"),
    schedule_line(1000000002, "CD654321", "P-400", 10, resource="R02", name="テーブル"),
    schedule_line(1000000002, "CD654321", "P-500", 10, resource="R03", name="主軸頭"),
)
# The next full snapshot: P-500 is gone (retired), P-300 renamed, P-600 new.
SECOND_EXPORT = export(
    MACHINE,
    schedule_line(1000000001, "AB123456", "P-100", 10, resource="R01", name="ベース①"),
    schedule_line(1000000001, "AB123456", "P-100", 20, resource="R02", name="ベース①"),
    schedule_line(1000000001, "AB123456", "P-200", 10, resource="R01", name="コラム髙"),
    schedule_line(1000000001, "AB123456", "P-300", 10, resource="R03", name="サドル改"),
    schedule_line(1000000002, "CD654321", "P-400", 10, resource="R02", name="テーブル"),
    schedule_line(1000000002, "CD654321", "P-600", 20, resource="R01", name="カバー"),
)
# A required column (FKOJUN) is missing: the run fails HEADER_MISMATCH.
BROKEN_EXPORT = "ProductNo,FSEIBAN,FHINCD,FHINMEI,FSIGENCD\n1000000003,EF000001,P-1,部品,R01\n"


def step(page: Page, hincd: str, kojun: int = 10) -> Locator:
    return page.locator(f'[data-testid=step][data-fhincd="{hincd}"][data-fkojun="{kojun}"]')


def choose_resources(page: Page, *codes: str) -> None:
    """Scope the terminal to ``codes`` by tapping their toggles (kept in localStorage)."""
    for code in codes:
        button = page.locator(f'[data-testid=scope-resource][data-resource="{code}"]')
        expect(button).to_have_attribute("aria-pressed", "false")
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#board")).to_have_attribute("data-state", "ready")


def write_note(page: Page, target: Locator, text: str) -> None:
    """The note editor: a modal with one line of text, saved with Enter."""
    target.locator("[data-testid=note]").click()
    page.fill("[data-testid=note-input]", text)
    page.press("[data-testid=note-input]", "Enter")


def note_of(target: Locator) -> Locator:
    return target.locator("[data-testid=note] .chip-value")


def write_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("cp932"))
    return path


def upload(page: Page, path: Path, kind: str) -> None:
    """Upload through the console's form and wait for the run to end; the page stays on /admin."""
    page.select_option("#upload-dashboard", SLUG)
    page.select_option("#upload-kind", kind)
    page.set_input_files("#upload-file", str(path))
    page.click("#upload-submit")


def finished_status(page: Page) -> Locator:
    return page.locator("#upload-text [data-status]")


def api_ingest(live: Any, text: str, kind: str = "official_ingestion") -> dict[str, Any]:
    """Start a run over HTTP with a bearer token (as a script would) and wait for its end."""
    headers = {"Authorization": f"Bearer {live.tokens['admin']}"}
    with httpx.Client(base_url=live.base_url, headers=headers, timeout=10) as client:
        accepted = client.post(
            "/api/v1/ops/ingestion/runs",
            headers={"Idempotency-Key": uuid.uuid4().hex},
            data={"dashboard": SLUG, "run_kind": kind},
            files={"file": ("export.csv", text.encode("cp932"), "text/csv")},
        )
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            run: dict[str, Any] = client.get(f"/api/v1/ops/ingestion/runs/{run_id}").json()
            if run["finished_at"]:
                return run
            time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def api_rows(live: Any) -> dict[tuple[str, str], dict[str, Any]]:
    headers = {"Authorization": f"Bearer {live.tokens['viewer']}"}
    response = httpx.get(f"{live.base_url}/api/v1/schedules/{SLUG}/rows", headers=headers)
    return {(r["row_data"]["FHINCD"], r["row_data"]["FKOJUN"]): r for r in response.json()["items"]}


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


# --- the scenario ------------------------------------------------------------------


def test_upload_kiosk_snapshot_and_rerun(
    sign_in: SignIn, live_server: Any, tmp_path: Path, artifacts: Path
) -> None:
    admin = sign_in("admin")
    expect(admin.locator("h1")).to_contain_text("取込履歴")  # Japanese by default

    # upload a CP932 export; the progress area follows the run to its end
    upload(admin, write_file(tmp_path, "schedule-1.csv", FIRST_EXPORT), "official_ingestion")
    expect(finished_status(admin)).to_have_attribute(
        "data-status", "succeeded", timeout=RUN_TIMEOUT_MS
    )
    first_row = admin.locator("#runs-body tr").first
    expect(first_row).to_have_attribute("data-status", "succeeded")
    expect(first_row).to_contain_text("7/7")
    admin.screenshot(path=str(artifacts / "console-runs.png"), full_page=True)

    # run detail: the source with its detected encoding, items and the events timeline
    admin.locator("#upload-text a.run-link").click()
    expect(admin.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    expect(admin.locator("#sources-body")).to_contain_text("schedule-1.csv")
    expect(admin.locator("#sources-body")).to_contain_text("cp932")
    expect(admin.locator("#items-body tr")).to_have_count(7)
    expect(admin.locator("#events-list li").first).to_be_visible()
    expect(admin.locator("#run-retry")).to_be_hidden()  # a succeeded run is not re-runnable
    admin.screenshot(path=str(artifacts / "console-run-detail.png"), full_page=True)

    # the kiosk: three steps done and a note
    kiosk = sign_in("operator", next_path=KIOSK)
    # a terminal without a scope asks for one instead of listing the whole schedule
    expect(kiosk.locator("[data-testid=ask-scope]")).to_be_visible()
    expect(kiosk.locator("[data-testid=step]")).to_have_count(0)
    expect(kiosk.locator("#last-success")).not_to_have_text("まだありません")
    expect(kiosk.locator("[data-testid=scope-resource]")).to_have_count(4)  # M00 R01 R02 R03
    choose_resources(kiosk, "R01", "R02", "R03")
    expect(kiosk.locator("[data-testid=step]")).to_have_count(6)
    for hincd in ("P-100", "P-200", "P-400"):
        target = step(kiosk, hincd)
        target.locator("[data-testid=toggle]").click()
        expect(target).to_have_attribute("data-completed", "true")
        expect(target).to_have_attribute("data-write", "ok")
    expect(kiosk.locator("#overall-text")).to_have_text("3/6")
    write_note(kiosk, step(kiosk, "P-300"), "治具確認済み")
    expect(step(kiosk, "P-300")).to_have_attribute("data-write", "ok")
    expect(note_of(step(kiosk, "P-300"))).to_have_text("治具確認済み")
    rows = api_rows(live_server)
    assert rows[("P-300", "10")]["note"] == "治具確認済み"
    assert {k for k, r in rows.items() if r["completed"]} == {
        ("P-100", "10"),
        ("P-200", "10"),
        ("P-400", "10"),
    }

    # one tap undoes, one more tap completes again (never a blind toggle on the server)
    toggle = step(kiosk, "P-400").locator("[data-testid=toggle]")
    toggle.click()
    expect(step(kiosk, "P-400")).to_have_attribute("data-completed", "false")
    expect(step(kiosk, "P-400")).to_have_attribute("data-write", "ok")
    toggle.click()
    expect(step(kiosk, "P-400")).to_have_attribute("data-completed", "true")
    expect(step(kiosk, "P-400")).to_have_attribute("data-write", "ok")

    # a changed export as a full snapshot
    admin.goto(live_server.url("/admin"))
    upload(admin, write_file(tmp_path, "schedule-2.csv", SECOND_EXPORT), "official_ingestion")
    expect(finished_status(admin)).to_have_attribute(
        "data-status", "succeeded", timeout=RUN_TIMEOUT_MS
    )

    kiosk.reload()  # the scope is the terminal's: it survives the reload
    expect(kiosk.locator("[data-testid=step]")).to_have_count(6)
    expect(step(kiosk, "P-500")).to_have_count(0)  # retired: gone from the board
    expect(step(kiosk, "P-600", 20)).to_have_attribute("data-completed", "false")
    for hincd in ("P-100", "P-200", "P-400"):
        expect(step(kiosk, hincd)).to_have_attribute("data-completed", "true")
    expect(step(kiosk, "P-100", 20)).to_have_attribute("data-completed", "false")
    expect(step(kiosk, "P-300").locator("[data-testid=fhinmei]")).to_have_text("サドル改")
    expect(note_of(step(kiosk, "P-300"))).to_have_text("治具確認済み")
    expect(kiosk.locator("#overall-text")).to_have_text("3/6")
    kiosk.screenshot(path=str(artifacts / "kiosk-1080p.png"), full_page=True)

    # search by 製番 and by 品名, and the open/done filter
    kiosk.fill("#kiosk-search", "CD654321")
    expect(kiosk.locator("[data-testid=step]")).to_have_count(2)
    kiosk.fill("#kiosk-search", "コラム")
    expect(kiosk.locator("[data-testid=step]")).to_have_count(1)
    kiosk.fill("#kiosk-search", "")
    expect(kiosk.locator("[data-testid=step]")).to_have_count(6)
    kiosk.click("#kiosk-filter [data-completion=incomplete]")
    expect(kiosk.locator("[data-testid=step]")).to_have_count(3)
    kiosk.click("#kiosk-filter [data-completion=complete]")
    expect(kiosk.locator("[data-testid=step]")).to_have_count(3)

    # a failed run, re-run from the console
    admin.goto(live_server.url("/admin"))
    upload(admin, write_file(tmp_path, "broken.csv", BROKEN_EXPORT), "incremental_update")
    expect(finished_status(admin)).to_have_attribute(
        "data-status", "failed", timeout=RUN_TIMEOUT_MS
    )
    admin.locator("#upload-text a.run-link").click()
    failed_url = admin.url
    failed_id = failed_url.rsplit("/", 1)[1]
    expect(admin.locator("#run-error-summary")).to_contain_text("HEADER_MISMATCH")
    expect(admin.locator("#run-cancel")).to_be_hidden()
    admin.locator("#run-retry").click()
    admin.wait_for_url(lambda url: url != failed_url and "/admin/runs/" in url)
    expect(admin.locator("[data-testid=parent-link]")).to_contain_text(failed_id)
    expect(admin.locator("#run-status")).to_have_attribute(
        "data-status", "failed", timeout=RUN_TIMEOUT_MS
    )
    admin.screenshot(path=str(artifacts / "console-rerun.png"), full_page=True)
    admin.locator("[data-testid=parent-link]").click()
    expect(admin.locator("[data-testid=child-link]")).to_have_count(1)

    # the history filters
    admin.goto(live_server.url("/admin"))
    expect(admin.locator("#runs-body tr")).to_have_count(4)
    admin.select_option("#run-filters select[name=status]", "failed")
    expect(admin.locator("#runs-body tr")).to_have_count(2)
    admin.select_option("#run-filters select[name=status]", "")
    admin.select_option("#run-filters select[name=run_kind]", "official_ingestion")
    expect(admin.locator("#runs-body tr")).to_have_count(2)


# --- a flaky network -----------------------------------------------------------------------


def test_failed_write_is_shown_and_retried(
    sign_in: SignIn, live_server: Any, artifacts: Path
) -> None:
    api_ingest(live_server, FIRST_EXPORT)
    kiosk = sign_in("operator", next_path=KIOSK)
    choose_resources(kiosk, "R01", "R02", "R03")
    target = step(kiosk, "P-200")
    expect(target).to_have_attribute("data-completed", "false")

    # the network drops the write: the step keeps the intended state, marked failed
    kiosk.route("**/completion", lambda route: route.abort("internetdisconnected"))
    target.locator("[data-testid=toggle]").click()
    expect(target).to_have_attribute("data-write", "failed")
    expect(target).to_have_attribute("data-completed", "true")
    expect(target.locator("[data-testid=retry-write]")).to_be_visible()
    assert not api_rows(live_server)[("P-200", "10")]["completed"]
    kiosk.screenshot(path=str(artifacts / "kiosk-failed-write.png"))

    # a server error is a failure too
    kiosk.unroute("**/completion")
    answered: list[Any] = []

    def down(route: Any) -> None:
        route.fulfill(status=503, body="down")
        answered.append(route)

    kiosk.route("**/completion", down)
    target.locator("[data-testid=retry-write]").click()
    # The step was already "failed": wait for the retry's 503 itself, or a loaded machine lets
    # the next step start while this write is still in flight.
    for _ in range(200):
        if answered:
            break
        kiosk.wait_for_timeout(25)
    assert len(answered) == 1
    expect(target).to_have_attribute("data-write", "failed")

    # a slow write shows as pending until the server answers
    held: list[Any] = []
    kiosk.unroute("**/completion")
    kiosk.route("**/completion", lambda route: held.append(route))
    target.locator("[data-testid=retry-write]").click()
    expect(target).to_have_attribute("data-write", "pending")
    expect(target.locator("[data-testid=write-state]")).to_contain_text("保存中")
    assert len(held) == 1
    held[0].continue_()
    expect(target).to_have_attribute("data-write", "ok")
    expect(target).to_have_attribute("data-completed", "true")
    assert api_rows(live_server)[("P-200", "10")]["completed"]

    # a note that failed survives a reload (kept in the browser) and can still be sent
    kiosk.unroute("**/completion")
    kiosk.route("**/note", lambda route: route.abort("internetdisconnected"))
    write_note(kiosk, step(kiosk, "P-300"), "材料待ち")
    expect(step(kiosk, "P-300")).to_have_attribute("data-write", "failed")
    kiosk.unroute("**/note")
    kiosk.once("dialog", lambda dialog: dialog.accept())  # "changes are not saved" on leave
    kiosk.reload()
    expect(step(kiosk, "P-300")).to_have_attribute("data-write", "failed")
    expect(note_of(step(kiosk, "P-300"))).to_have_text("材料待ち")
    step(kiosk, "P-300").locator("[data-testid=retry-write]").click()
    expect(step(kiosk, "P-300")).to_have_attribute("data-write", "ok")
    assert api_rows(live_server)[("P-300", "10")]["note"] == "材料待ち"


# --- roles ---------------------------------------------------------------------------------


def test_viewer_sees_no_write_controls(sign_in: SignIn, live_server: Any) -> None:
    api_ingest(live_server, FIRST_EXPORT)
    failed = api_ingest(live_server, BROKEN_EXPORT, kind="incremental_update")
    assert failed["status"] == "failed"
    viewer = sign_in("viewer", next_path=KIOSK)
    choose_resources(viewer, "R01", "R02", "R03")
    expect(viewer.locator("[data-testid=step]")).to_have_count(6)
    expect(viewer.locator("button[data-testid=toggle]")).to_have_count(0)
    for control in ("note", "order", "due", "processing"):
        expect(viewer.locator(f"[data-testid={control}]")).to_have_count(6)  # shown, read-only
        expect(viewer.locator(f"button[data-testid={control}]")).to_have_count(0)
    expect(viewer.locator("[data-testid=seiban-edit]")).to_have_count(0)
    expect(viewer.locator("input[type=date]")).to_have_count(0)
    viewer.goto(live_server.url("/admin"))
    expect(viewer.locator("#runs-body tr")).to_have_count(2)
    expect(viewer.locator("#upload-form")).to_have_count(0)
    viewer.goto(live_server.url(f"/admin/runs/{failed['run_id']}"))
    expect(viewer.locator("#run-status")).to_have_attribute("data-status", "failed")
    expect(viewer.locator("#run-retry")).to_have_count(0)
    expect(viewer.locator("#run-cancel")).to_have_count(0)

    operator = sign_in("operator", next_path="/admin")
    expect(operator.locator("#upload-form")).to_have_count(0)
    operator.goto(live_server.url(f"/admin/runs/{failed['run_id']}"))
    expect(operator.locator("#run-status")).to_have_attribute("data-status", "failed")
    expect(operator.locator("#run-retry")).to_have_count(0)


# --- layouts -------------------------------------------------------------------------------


def test_kiosk_fits_1080p_landscape_and_a_tablet_in_portrait(
    sign_in: SignIn, live_server: Any, artifacts: Path
) -> None:
    long_name = "非常に長い品名" * 12
    api_ingest(
        live_server,
        FIRST_EXPORT
        + schedule_line(1000000002, "CD654321", "P-LONG-0000000000", 30, name=long_name)
        + "\n",
    )
    for width, height, name in ((1920, 1080, "kiosk-landscape"), (800, 1280, "kiosk-portrait")):
        page = sign_in("operator", width=width, height=height, next_path=KIOSK)
        choose_resources(page, "R01", "R02", "R03")
        expect(page.locator("[data-testid=step]")).to_have_count(7)
        assert no_horizontal_scroll(page), name
        box = page.locator("button[data-testid=toggle]").first.bounding_box()
        assert box is not None and box["width"] >= 48 and box["height"] >= 48  # touch target
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    dashboards = sign_in("admin", width=800, height=1280, next_path="/admin/dashboards")
    expect(dashboards.locator(".dash")).to_have_count(1)
    expect(dashboards.locator(".dash")).to_contain_text("アップロード")
    dashboards.screenshot(path=str(artifacts / "console-dashboards.png"), full_page=True)


# --- CSV text stays text --------------------------------------------------------------------


def test_script_in_a_csv_cell_stays_inert(sign_in: SignIn, live_server: Any) -> None:
    evil = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
    run = api_ingest(
        live_server,
        export(schedule_line(1000000009, "XS000001", "P-EVIL", 10, name=evil)),
    )
    assert run["status"] == "succeeded", run
    page = sign_in("operator", next_path=KIOSK)
    choose_resources(page, "R01")
    cell = step(page, "P-EVIL").locator("[data-testid=fhinmei]")
    expect(cell).to_have_text(evil)
    assert page.locator("#board img").count() == 0
    assert page.locator("#board script").count() == 0
    write_note(page, step(page, "P-EVIL"), "<img src=y onerror=window.__pwned=3>")
    expect(step(page, "P-EVIL")).to_have_attribute("data-write", "ok")
    page.reload()
    expect(note_of(step(page, "P-EVIL"))).to_have_text("<img src=y onerror=window.__pwned=3>")
    assert page.evaluate("window.__pwned") is None
