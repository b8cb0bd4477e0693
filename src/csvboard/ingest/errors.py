"""Errors raised by the ingestion engine."""

from __future__ import annotations


class RunError(Exception):
    """A run-level failure: the whole run fails with this code and message.

    ``code`` is one of the ledger's error codes (``ENCODING_UNSUPPORTED``,
    ``HEADER_MISMATCH``, ...); ``message`` is written for a planner, not a developer.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"RunError({self.code!r}, {self.message!r})"
