"""The browser pages: sign-in, the admin console and the kiosk board (docs/contract.md §6).

Pages are server-rendered shells; their data comes from the JSON API, fetched by
``static/admin.js`` and ``static/kiosk.js`` (one step, its writes and editors in
``static/steps.js``) with the session cookie and the CSRF header.

Sign-in: the token is checked with :func:`csvboard.auth.authenticate` and kept in the
HttpOnly, SameSite=Strict cookie ``csvboard_session``; ``csvboard_csrf`` (readable by the
scripts) is the double-submit CSRF token that every form and every unsafe API call echoes
(the request middleware checks the API's; the forms here are checked by :func:`_form_csrf_ok`).
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from csvboard.api.context import CSRF_COOKIE, SESSION_COOKIE
from csvboard.auth import Principal, Role, authenticate
from csvboard.db.engine import read_session
from csvboard.web.i18n import LANG_COOKIE, pick_language, texts

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

router = APIRouter(include_in_schema=False)

COOKIE_MAX_AGE = 30 * 24 * 3600  # kiosks stay signed in across restarts for a month
SECURITY_HEADERS = {
    # Scripts and styles only from our own files: CSV text that reached the page could never
    # run, even if some code path forgot to escape it.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _principal(request: Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    with read_session(_engine(request)) as session:
        return authenticate(session, token)


def _lang(request: Request) -> str:
    return pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme) may be a redirect target."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin"


def _finish(request: Request, response: Response, lang: str) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if request.query_params.get("lang") in ("ja", "en"):
        response.set_cookie(
            LANG_COOKIE, lang, max_age=COOKIE_MAX_AGE, path="/", samesite="strict",
            secure=_secure(request),
        )  # fmt: skip
    return response


def _page(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    lang = _lang(request)
    t = texts(lang)
    settings = request.app.state.settings
    response = templates.TemplateResponse(
        request,
        template,
        {
            "t": t,
            "lang": lang,
            "other_lang": "en" if lang == "ja" else "ja",
            "principal": principal,
            "role": principal.role.value if principal else None,
            "is_admin": bool(principal and principal.role.allows(Role.ADMIN)),
            "can_write": bool(principal and principal.role.allows(Role.OPERATOR)),
            "csrf": request.cookies.get(CSRF_COOKIE, ""),
            "page_config": {
                "lang": lang,
                "role": principal.role.value if principal else None,
                "timezone": str(settings.timezone),
                "t": t,
                **context.get("config", {}),
            },
            **context,
        },
        status_code=status_code,
    )
    return _finish(request, response, lang)


def _to_login(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _signed_in_page(request: Request, template: str, **context: Any) -> Response:
    """A page for whoever signed in (its API calls check the role); the sign-in page else."""
    principal = _principal(request)
    if principal is None:
        return _to_login(request)
    return _page(request, template, principal, **context)


def _form_csrf_ok(request: Request, given: Any) -> bool:
    expected = request.cookies.get(CSRF_COOKIE, "")
    return (
        bool(expected)
        and isinstance(given, str)
        and hmac.compare_digest(expected.encode(), given.encode())
    )


def _set_csrf(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, value, max_age=COOKIE_MAX_AGE, path="/", samesite="strict",
        secure=_secure(request), httponly=False,
    )  # fmt: skip


# --- sign-in ------------------------------------------------------------------------------


@router.get("/")
def root(request: Request) -> Response:
    return RedirectResponse("/admin" if _principal(request) else "/login", status_code=303)


@router.get("/login")
def login_form(request: Request) -> Response:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _page(
        request,
        "login.html",
        None,
        next=_safe_next(request.query_params.get("next")),
        error=None,
        csrf=csrf,
    )
    _set_csrf(request, response, csrf)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    raw_next = form.get("next")
    next_url = _safe_next(raw_next if isinstance(raw_next, str) else None)
    if not _form_csrf_ok(request, form.get("csrf")):
        csrf = secrets.token_urlsafe(32)
        response = _page(
            request,
            "login.html",
            None,
            status_code=403,
            next=next_url,
            error="bad_csrf",
            csrf=csrf,
        )
        _set_csrf(request, response, csrf)
        return response
    token = form.get("token")
    principal: Principal | None = None
    if isinstance(token, str) and token.strip():
        with read_session(_engine(request)) as session:
            principal = authenticate(session, token.strip())
    if principal is None or not isinstance(token, str):
        return _page(request, "login.html", None, status_code=401, next=next_url, error="bad_token")
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token.strip(), max_age=COOKIE_MAX_AGE, path="/", samesite="strict",
        secure=_secure(request), httponly=True,
    )  # fmt: skip
    _set_csrf(request, response, secrets.token_urlsafe(32))  # a fresh one for the session
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=2)
    if not _form_csrf_ok(request, form.get("csrf")):
        return Response("CSRF check failed", status_code=403, media_type="text/plain")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="strict", httponly=True)
    return response


# --- admin console ------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
def admin_runs(request: Request) -> Response:
    return _signed_in_page(request, "admin_runs.html", page="runs")


@router.get("/admin/runs/{run_id}", response_class=HTMLResponse)
def admin_run(request: Request, run_id: str) -> Response:
    return _signed_in_page(request, "admin_run.html", page="runs", config={"run_id": run_id})


@router.get("/admin/dashboards", response_class=HTMLResponse)
def admin_dashboards(request: Request) -> Response:
    return _signed_in_page(request, "admin_dashboards.html", page="dashboards")


# --- kiosk ----------------------------------------------------------------------------------


def _kiosk_page(request: Request, slug: str, template: str) -> Response:
    return _signed_in_page(request, template, page="kiosk", slug=slug, config={"slug": slug})


@router.get("/kiosk/{slug}", response_class=HTMLResponse)
def kiosk(request: Request, slug: str) -> Response:
    """The kiosk list: a terminal's scope of the schedule, page by page."""
    return _kiosk_page(request, slug, "kiosk.html")


@router.get("/kiosk/{slug}/progress", response_class=HTMLResponse)
def kiosk_progress(request: Request, slug: str) -> Response:
    """進捗一覧: a card per 製番 (registered first, then a search), steps as chips."""
    return _kiosk_page(request, slug, "kiosk_progress.html")


@router.get("/kiosk/{slug}/board", response_class=HTMLResponse)
def kiosk_order_board(request: Request, slug: str) -> Response:
    """順位ボード: a column per chosen resource, its open steps in working order."""
    return _kiosk_page(request, slug, "kiosk_board.html")


@router.get("/signage/{slug}", response_class=HTMLResponse)
def signage(request: Request, slug: str) -> Response:
    """A read-only board for the floor's TV: signed in with a viewer token bound to the
    screen; it refreshes itself and never renders a control."""
    # ?refresh= and ?rotate= (seconds, 1–600) tune a screen; the defaults suit a TV.
    timing = {"refresh_seconds": 30, "rotate_seconds": 15}
    for name in timing:
        given = request.query_params.get(name.split("_")[0], "")
        if given.isdigit() and 1 <= int(given) <= 600:
            timing[name] = int(given)
    return _signed_in_page(
        request, "signage.html", page="signage", slug=slug, config={"slug": slug, **timing}
    )


@router.get("/admin/load/{slug}", response_class=HTMLResponse)
def admin_load(request: Request, slug: str) -> Response:
    """負荷: required hours per resource and week against capacity (admins set capacities)."""
    return _signed_in_page(
        request, "admin_load.html", page="load", slug=slug, config={"slug": slug}
    )
