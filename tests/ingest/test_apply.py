"""The in-file fold: without versions, one statement; with them, the sequential fold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from csvboard.db.engine import normalize_url
from csvboard.ingest import stage as stage_module


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    engine = create_engine(normalize_url(db_url), poolclass=NullPool)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def staged(conn: Connection, rows: list[tuple[str | None, str | None]]) -> stage_module.Stage:
    """A versionless staging table: (row key, outcome already set) per line, in file order."""
    stage = stage_module.Stage(conn, "appearance", 0)
    stage.create()
    if not rows:
        return stage
    conn.exec_driver_sql(
        f"INSERT INTO {stage.name} (seq, line, row_key, outcome) VALUES (%s, %s, %s, %s)"
        if conn.dialect.name == "postgresql"
        else f"INSERT INTO {stage.name} (seq, line, row_key, outcome) VALUES (?, ?, ?, ?)",
        [(i, i + 1, key, outcome) for i, (key, outcome) in enumerate(rows, 1)],
    )
    return stage


def outcomes(conn: Connection, stage: stage_module.Stage) -> list[tuple[object, ...]]:
    return [
        tuple(row)
        for row in conn.exec_driver_sql(
            f"SELECT seq, outcome, reason, message FROM {stage.name} ORDER BY seq"
        )
    ]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "e"])),
            st.sampled_from([None, None, None, "failed"]),
        ),
        max_size=30,
    )
)
def test_versionless_fold_equals_the_sequential_fold(
    conn: Connection, rows: list[tuple[str | None, str | None]]
) -> None:
    fast, general = staged(conn, rows), staged(conn, rows)
    excluded = stage_module.exclude_in_file_duplicates(fast)
    assert excluded == stage_module._fold_by_version(general)
    assert outcomes(conn, fast) == outcomes(conn, general)
    # And what that is: each key's last open occurrence stays, with its own line named.
    open_keys = [key for key, outcome in rows if outcome is None and key is not None]
    assert excluded == len(open_keys) - len(set(open_keys))
    conn.rollback()
