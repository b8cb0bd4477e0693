"""Fixtures shared by the ingestion tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Harness


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    """A migrated database (each engine in turn) and a data directory, ingesting as the CLI."""
    h = Harness(db_url, tmp_path / "data")
    yield h
    h.close()
