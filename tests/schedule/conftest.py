"""Fixtures of the production-schedule tests: a harness on a fresh database of each engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Harness


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(db_url, tmp_path / "data")
    try:
        yield h
    finally:
        h.close()
