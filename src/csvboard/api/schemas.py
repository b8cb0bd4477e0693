"""Response shapes shared by every router: the problem document and its OpenAPI description.

Every error the API returns is an RFC 9457 ``application/problem+json`` document built by
:func:`csvboard.api.problems.problem`. :class:`Problem` describes that document, and
:func:`problem_responses` declares it on a route for the statuses the route can return, so the
published ``/openapi.json`` matches every response byte for byte (a schemathesis run checks it).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from csvboard.api.problems import PROBLEM_MEDIA_TYPE

_DESCRIPTIONS: dict[int, str] = {
    400: "The request is not valid (`VALIDATION_FAILED` lists the fields in `errors`).",
    401: "No valid bearer token (`UNAUTHENTICATED`).",
    403: "The token's role does not allow this (`FORBIDDEN`).",
    404: "Something the request names does not exist.",
    409: "The request conflicts with the current state.",
    413: "The request body is larger than the upload limit (`PAYLOAD_TOO_LARGE`).",
}


class FieldError(BaseModel):
    """One invalid field of a request (``VALIDATION_FAILED``)."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Dotted path of the field inside its location, e.g. `note`.")
    location: str = Field(description="`body`, `query`, `path` or `header`.")
    message: str
    type: str = Field(description="Machine-readable kind of the error.")


class Problem(BaseModel):
    """An error, as ``application/problem+json`` (RFC 9457) with a stable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`urn:csvboard:problem:<code>`.")
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str = Field(description="What went wrong, in words a person can act on.")
    instance: str = Field(description="The request path.")
    code: str = Field(description="Stable error code, e.g. `ROW_NOT_FOUND`.")
    trace_id: str = Field(description="Quote it when reporting a problem.")
    errors: list[FieldError] | None = Field(
        default=None, description="Field errors (only on `VALIDATION_FAILED`)."
    )


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace every ``{"$ref": "#/$defs/X"}`` by the definition itself (recursively)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def problem_schema() -> dict[str, Any]:
    """The JSON schema of :class:`Problem`, self-contained (no references to resolve)."""
    schema = Problem.model_json_schema(mode="serialization")
    inlined: dict[str, Any] = _inline_refs(schema, schema.get("$defs", {}))
    return inlined


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status answers with a :class:`Problem` document.

    The schema is declared under ``application/problem+json`` (the media type the API sends),
    not ``application/json``, and inlined so that no component needs registering.
    """
    schema = problem_schema()
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
        }
        for status in statuses
    }


__all__ = ["FieldError", "Problem", "problem_responses", "problem_schema"]
