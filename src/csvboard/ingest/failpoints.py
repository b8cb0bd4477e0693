"""Failpoints: named places in a run where a crash test may kill the process outright.

``CSVBOARD_FAILPOINT=<name>`` in a worker's environment makes that process SIGKILL itself the
first time a run reaches ``<name>`` — no exception, no ``finally``, no rollback: exactly what
``kill -9`` or a power cut at that instant does. The crash-safety tests use it to hit the
narrow windows a random delay almost never lands in (just before and just after the commit).
Unset, as it always is in production, a failpoint costs one comparison.
"""

from __future__ import annotations

import os
import signal
from typing import Literal

Failpoint = Literal["parse", "stage", "apply", "before_commit", "after_commit"]
FAILPOINTS: tuple[Failpoint, ...] = ("parse", "stage", "apply", "before_commit", "after_commit")

_ARMED = os.environ.get("CSVBOARD_FAILPOINT") or None


def failpoint(name: Failpoint) -> None:
    """Die here (SIGKILL) when ``CSVBOARD_FAILPOINT`` names this place."""
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
