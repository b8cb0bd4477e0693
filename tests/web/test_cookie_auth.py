"""Browser sessions without a browser: sign-in, the session and CSRF cookies, and how the API
treats a cookie (CSRF header required on writes) versus a bearer token (unchanged)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from csvboard.dashboards.models import CsvDashboard
from support import SCHEDULE_HEADER, Api, schedule_line

SLUG = "production-schedule"


@pytest.fixture
def api(sqlite_url: str, tmp_path: Path) -> Iterator[Api]:
    a = Api(sqlite_url, tmp_path / "data", run_executor=False)
    a.harness.dashboard(SLUG)
    yield a
    a.close()


def _csrf_from_form(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def sign_in(api: Api, role: str = "operator") -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    client = api.client
    page = client.get("/login")
    assert page.status_code == 200
    token = _csrf_from_form(page.text)
    response = client.post(
        "/login",
        data={"token": api.tokens[role], "csrf": token, "next": "/admin"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin"
    return str(client.cookies["csvboard_csrf"])


def _row_id(api: Api) -> str:
    api.harness.ingest(
        _dashboard(api),
        "\n".join([SCHEDULE_HEADER, schedule_line(1, "AB123456", "P-1", 10)]) + "\n",
    )
    rows = api.get(f"/api/v1/schedules/{SLUG}/rows", as_="viewer").json()["items"]
    return str(rows[0]["id"])


def _dashboard(api: Api) -> CsvDashboard:
    from csvboard.dashboards.service import get_dashboard

    with api.harness.read() as session:
        return get_dashboard(session, SLUG)


def test_login_sets_httponly_strict_session_and_readable_csrf_cookie(api: Api) -> None:
    page = api.client.get("/login")
    assert "csvboard_csrf=" in page.headers["set-cookie"]
    form_csrf = _csrf_from_form(page.text)
    response = api.client.post(
        "/login",
        data={"token": api.tokens["admin"], "csrf": form_csrf, "next": "/admin"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("csvboard_session="))
    csrf = next(c for c in cookies if c.startswith("csvboard_csrf="))
    assert "HttpOnly" in session
    assert "samesite=strict" in session.lower()
    assert "Path=/" in session
    assert "Secure" not in session  # plain http here; https requests get Secure
    assert "HttpOnly" not in csrf  # the scripts read it to echo it
    assert "samesite=strict" in csrf.lower()
    # the session's CSRF token is a fresh one, not the login form's
    assert api.client.cookies["csvboard_csrf"] != form_csrf


def test_login_refuses_a_bad_token_and_a_missing_form_csrf(api: Api) -> None:
    page = api.client.get("/login")
    csrf = _csrf_from_form(page.text)
    bad = api.client.post("/login", data={"token": "csvb_nope", "csrf": csrf})
    assert bad.status_code == 401
    assert "csvboard_session" not in api.client.cookies
    forged = api.client.post("/login", data={"token": api.tokens["admin"], "csrf": "x"})
    assert forged.status_code == 403
    assert "csvboard_session" not in api.client.cookies


def test_login_redirects_only_to_local_paths(api: Api) -> None:
    csrf = _csrf_from_form(api.client.get("/login").text)
    response = api.client.post(
        "/login",
        data={"token": api.tokens["viewer"], "csrf": csrf, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/admin"


def test_pages_need_a_session(api: Api) -> None:
    for path in ("/admin", "/admin/dashboards", f"/kiosk/{SLUG}", "/admin/runs/x"):
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
    sign_in(api, "viewer")
    for path in ("/admin", "/admin/dashboards", f"/kiosk/{SLUG}"):
        response = api.client.get(path)
        assert response.status_code == 200, path
        assert "Content-Security-Policy" in response.headers
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_cookie_reads_work_without_csrf_header(api: Api) -> None:
    sign_in(api, "viewer")
    response = api.client.get("/api/v1/dashboards")
    assert response.status_code == 200
    assert [d["slug"] for d in response.json()["items"]] == [SLUG]


def test_cookie_write_needs_the_csrf_header(api: Api) -> None:
    row_id = _row_id(api)
    csrf = sign_in(api, "operator")
    url = f"/api/v1/schedules/{SLUG}/rows/{row_id}/completion"
    missing = api.client.put(url, json={"intent": "complete"})
    assert missing.status_code == 403
    assert missing.json()["code"] == "CSRF_FAILED"
    wrong = api.client.put(url, json={"intent": "complete"}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "CSRF_FAILED"
    ok = api.client.put(url, json={"intent": "complete"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    assert ok.json()["completed"] is True


def test_cookie_session_keeps_role_checks(api: Api) -> None:
    row_id = _row_id(api)
    csrf = sign_in(api, "viewer")
    response = api.client.put(
        f"/api/v1/schedules/{SLUG}/rows/{row_id}/note",
        json={"note": "x"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


def test_bearer_clients_need_no_csrf_even_with_cookies(api: Api) -> None:
    row_id = _row_id(api)
    sign_in(api, "viewer")  # the client now also carries a viewer session cookie
    response = api.client.put(
        f"/api/v1/schedules/{SLUG}/rows/{row_id}/note",
        json={"note": "by script"},
        headers={"Authorization": f"Bearer {api.tokens['operator']}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["note"] == "by script"


def test_no_session_cookie_is_401(api: Api) -> None:
    response = api.client.get("/api/v1/dashboards")
    assert response.status_code == 401
    api.client.cookies.set("csvboard_session", "csvb_forged")
    assert api.client.get("/api/v1/dashboards").status_code == 401


def test_logout_needs_csrf_and_clears_the_session(api: Api) -> None:
    csrf = sign_in(api, "admin")
    assert api.client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    response = api.client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert "csvboard_session" not in api.client.cookies
    assert api.client.get("/admin", follow_redirects=False).status_code == 303


def test_pages_are_japanese_by_default_and_english_on_request(api: Api) -> None:
    assert "サインイン" in api.client.get("/login").text
    english = api.client.get("/login?lang=en")
    assert "Sign in" in english.text
    assert "csvboard_lang=en" in english.headers["set-cookie"]
    assert "Sign in" in api.client.get("/login").text  # remembered


def test_admin_controls_are_only_rendered_for_admins(api: Api) -> None:
    sign_in(api, "operator")
    page = api.client.get("/admin").text
    assert 'id="upload-form"' not in page
    assert 'id="run-retry"' not in api.client.get("/admin/runs/abc").text
    api.client.cookies.clear()
    sign_in(api, "admin")
    assert 'id="upload-form"' in api.client.get("/admin").text
    detail = api.client.get("/admin/runs/abc").text
    assert 'id="run-retry"' in detail
    assert "行ごとの結果" in detail  # t['items'], not the dict's items method
    assert "built-in method" not in detail


def test_static_files_are_served(api: Api) -> None:
    for name in (
        "app.css",
        "admin.js",
        "kiosk.js",
        "steps.js",
        "progress.js",
        "order_board.js",
        "signage.js",
    ):
        assert api.client.get(f"/static/{name}").status_code == 200
