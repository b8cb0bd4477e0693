"""Structured logging: JSON lines with timestamp, level, event and whatever context is bound."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog


class _CurrentStream:
    """Writes to whatever ``sys.stdout``/``sys.stderr`` is *now* (tests and CLI runners swap
    them), instead of the object that happened to be there when logging was configured."""

    def __init__(self, name: Literal["stdout", "stderr"]) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return int(getattr(sys, self.name).write(text))

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def _add_pid(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """Which process said it: API processes and workers share one log stream."""
    event["pid"] = os.getpid()
    return event


def configure_logging(
    *, stream: Literal["stdout", "stderr"] = "stdout", level: int = logging.INFO
) -> None:
    """JSON logs on ``stream`` (the CLI uses stderr so ``--json`` stdout stays one document)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_pid,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write per line (PrintLogger writes the line and its newline apart): lines of
        # several processes sharing stdout (`serve --processes N`) never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=_CurrentStream(stream)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
