"""Errors as RFC 9457 ``application/problem+json``; never a stack trace or SQL to a client."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from csvboard.errors import CsvboardError
from csvboard.ingest.errors import RunError

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger("csvboard.api")

_HTTP_CODES = {
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def invalid_body(exc: ValidationError, *prefix: str) -> RequestValidationError:
    """A body that matches its schema but does not hold together (a service re-validated it
    as a whole) → the same 400 with ``errors[]`` as a schema violation."""
    errors = [
        {"loc": ("body", *prefix, *err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    return RequestValidationError(errors)


def problem(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    trace_id: str | None = None,
    instance: str | None = None,
) -> JSONResponse:
    if request is not None:
        trace_id = trace_id or getattr(request.state, "trace_id", None)
        instance = instance or request.url.path
    body: dict[str, Any] = {
        "type": f"urn:csvboard:problem:{code.lower().replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance or "",
        "code": code,
        "trace_id": trace_id or "",
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def internal_error(request: Request) -> JSONResponse:
    """A 500 that says nothing of the internals: no exception text, no SQL, no stack."""
    return problem(
        request, 500, "INTERNAL_ERROR",
        "something went wrong on our side; quote the trace id when you report it",
    )  # fmt: skip


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        out.append(
            {
                "field": ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc),
                "location": loc[0] if loc else "",
                "message": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(CsvboardError)
    async def _domain(request: Request, exc: CsvboardError) -> JSONResponse:
        return problem(request, exc.status, exc.code, exc.message)

    @app.exception_handler(RunError)
    async def _run_error(request: Request, exc: RunError) -> JSONResponse:
        return problem(request, 400, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(
            request, 400, "VALIDATION_FAILED", "the request is not valid",
            errors=_field_errors(exc),
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers) if exc.headers else None
        return problem(request, exc.status_code, code, detail, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return internal_error(request)
