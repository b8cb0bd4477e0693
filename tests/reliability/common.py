"""Shared helpers of the reliability suite: CI sizes vs soak sizes (``CSVBOARD_SOAK=1``)."""

from __future__ import annotations

import os

SOAK = os.environ.get("CSVBOARD_SOAK", "").strip() not in ("", "0", "false", "no")


def size(ci: int, soak: int) -> int:
    """The CI figure, or the soak figure when ``CSVBOARD_SOAK=1``."""
    return soak if SOAK else ci


def report(line: str) -> None:
    """A measured figure: printed (visible with ``-s`` / in the junit output) and appended to
    ``$CSVBOARD_RELIABILITY_REPORT`` when set, so the README figures can be regenerated."""
    print(f"[reliability] {line}")
    target = os.environ.get("CSVBOARD_RELIABILITY_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
