"""Fixtures of the production-schedule tests, on a fresh database of each engine: a harness,
and the real app with one token per role (``api``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Api, Harness


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(db_url, tmp_path / "data")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    client = Api(db_url, tmp_path / "data", run_executor=False)
    try:
        yield client
    finally:
        client.close()
