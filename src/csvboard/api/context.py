"""Per-request context: W3C trace id, request id, authentication, upload limit, access log.

One ASGI middleware does these in order, *before* the router parses anything, so the order of
checks is 401/403 → 400 → 404 → 409 even for a malformed or oversized body: a client without
the right role learns nothing about its payload, and a 200 MB upload from a viewer is refused
without being read.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csvboard.api.problems import internal_error, problem
from csvboard.auth import Principal, Role, authenticate
from csvboard.db.engine import read_session

log = structlog.get_logger("csvboard.api")

REQUIRED_ROLE = "x-required-role"
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# The browser's session (csvboard.web): the token in an HttpOnly cookie, plus a double-submit
# CSRF token that every unsafe request must echo in a header.
SESSION_COOKIE = "csvboard_session"
CSRF_COOKIE = "csvboard_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class PayloadTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {limit:,}-byte limit")


def parse_traceparent(value: str | None) -> str | None:
    """The trace id of a valid W3C ``traceparent`` header, else None."""
    if not value:
        return None
    match = TRACEPARENT.match(value.strip().lower())
    if not match or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1)


def required_role(routes: Sequence[BaseRoute], scope: Scope) -> tuple[Role | None, str | None]:
    """The role the matched route needs (from its OpenAPI extra), and its path template."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            extra = getattr(route, "openapi_extra", None) or {}
            role = extra.get(REQUIRED_ROLE)
            return (Role(role) if role else None), getattr(route, "path", None)
    return None, None


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        fastapi_app: Any,
        routes: Sequence[BaseRoute],
        max_body_bytes: Callable[[], int],
        observe: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        trace_id = parse_traceparent(headers.get("traceparent")) or secrets.token_hex(16)
        span_id = secrets.token_hex(8)
        given_id = headers.get("x-request-id", "")
        request_id = given_id if REQUEST_ID.match(given_id) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state.update(trace_id=trace_id, request_id=request_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(trace_id=trace_id, request_id=request_id)
        status_holder = {"status": 500}

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = 1
                extra = [
                    (b"traceparent", f"00-{trace_id}-{span_id}-01".encode()),
                    (b"x-trace-id", trace_id.encode()),
                    (b"x-request-id", request_id.encode()),
                ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        role, route_path = required_role(self.routes, scope)
        try:
            refusal = await self._refusal(scope, headers, role)
            if refusal is not None:
                await refusal(scope, receive, send_with_context)
                return
            try:
                await self.app(scope, self._limited(receive, headers), send_with_context)
            except Exception:
                if status_holder.get("started"):
                    raise
                # Answered here rather than by Starlette's outermost error middleware, so the
                # 500 carries the trace id like every other response.
                log.exception("unhandled_error", path=scope["path"])
                await internal_error(Request(scope))(scope, receive, send_with_context)
        finally:
            elapsed = time.perf_counter() - started
            status = status_holder["status"]
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=route_path,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            if self.observe is not None:
                self.observe(scope["method"], route_path or "unmatched", status, elapsed)
            structlog.contextvars.clear_contextvars()

    async def _refusal(
        self, scope: Scope, headers: dict[str, str], role: Role | None
    ) -> Any | None:
        request = Request(scope)
        if role is not None:
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            principal: Principal | None = None
            if not auth and request.cookies.get(SESSION_COOKIE):
                # A browser session: the cookie stands for the bearer token, and an unsafe
                # method must prove it comes from our own pages (double-submit CSRF token).
                token = request.cookies[SESSION_COOKIE]
                scheme = "bearer"
                if scope["method"] not in SAFE_METHODS and not _csrf_ok(request, headers):
                    return problem(
                        request, 403, "CSRF_FAILED",
                        "a cookie-authenticated write needs the X-CSRF-Token header equal"
                        " to the csvboard_csrf cookie",
                    )  # fmt: skip
            if scheme.lower() == "bearer" and token.strip():
                engine = self.fastapi_app.state.engine
                principal = await anyio.to_thread.run_sync(_authenticate, engine, token.strip())
            if principal is None:
                return problem(
                    request, 401, "UNAUTHENTICATED",
                    "a valid bearer token is required (Authorization: Bearer …)",
                    headers={"WWW-Authenticate": 'Bearer realm="csvboard"'},
                )  # fmt: skip
            if not principal.role.allows(role):
                return problem(
                    request, 403, "FORBIDDEN",
                    f"this needs the {role.value} role; token {principal.name!r} is"
                    f" {principal.role.value}",
                )  # fmt: skip
            scope["state"]["principal"] = principal
            structlog.contextvars.bind_contextvars(principal=principal.name)
        limit = self.max_body_bytes()
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return problem(request, 413, "PAYLOAD_TOO_LARGE", PayloadTooLarge(limit).detail)
        return None

    def _limited(self, receive: Receive, headers: dict[str, str]) -> Receive:
        """Count body bytes as they stream in (chunked uploads have no Content-Length)."""
        limit = self.max_body_bytes()
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(limit)
            return message

        return receive_limited


def _csrf_ok(request: Request, headers: dict[str, str]) -> bool:
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = headers.get(CSRF_HEADER, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def _authenticate(engine: Any, token: str) -> Principal | None:
    with read_session(engine) as session:
        return authenticate(session, token)
