"""Errors every domain raises; the API maps them onto problem+json, the CLI onto messages."""

from __future__ import annotations

from typing import ClassVar


class CsvboardError(Exception):
    """A refusal a caller can act on: a stable code, a message, and its HTTP status."""

    status: ClassVar[int] = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidRequest(CsvboardError):
    status = 400


class NotFound(CsvboardError):
    status = 404


class Conflict(CsvboardError):
    status = 409


class PreconditionFailed(CsvboardError):
    """``If-Match`` names a version that is no longer the current one (someone else edited)."""

    status = 412


class PreconditionRequired(CsvboardError):
    """An edit that must name the version it read (``If-Match``) did not."""

    status = 428
