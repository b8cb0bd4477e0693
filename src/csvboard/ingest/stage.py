"""Stage a run's rows: a per-run temporary table per role, and the in-file duplicate fold.

Staging is a per-run temporary table on the run's own connection: PostgreSQL fills it with
COPY, SQLite with batched executemany. Staging touches no shared table, so on SQLite it holds
no lock on the database; the statements that match and write the staged rows are
``merge.Merge``'s. Within one file, each key keeps one row: the highest version, ties to the
last in the file (``exclude_in_file_duplicates``, below).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, text

from csvboard.ingest.validate import (
    RejectedRow,
    SupplementRow,
    ValidRow,
    compact_json,
    fold_duplicates,
)

if TYPE_CHECKING:
    from csvboard.ingest.batches import ValidatedBlock

# Outcomes a staged row can end with (ingestion_items are derived from them).
NEW, UPDATED, UNCHANGED, SUPPLEMENTED = "new", "updated", "unchanged", "supplemented"
EXCLUDED, FAILED = "excluded", "failed"

# Rows per statement when the in-file duplicate fold marks its losers.
FOLD_ROWS = 5_000


@lru_cache(maxsize=4096)  # ERP timestamps repeat heavily; the same instants come back
def sqlite_timestamp(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's DateTime uses on SQLite, so staged values read back the same.
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _version_json(version: Sequence[Decimal | None]) -> str:
    return "[" + ",".join("null" if v is None else str(v) for v in version) + "]"


@dataclass
class Stage:
    """A run's staging table for one role (official rows or appearance supplements)."""

    conn: Connection
    role: str
    version_count: int
    name: str = ""
    _buffer: list[tuple[Any, ...]] = field(default_factory=list)
    _seq: int = 0
    # The source being staged, in the driver's form (set once per file, not per row).
    _source: Any = None
    _feed: Any = None

    def __post_init__(self) -> None:
        self.name = f"stg_{self.role[:3]}_{uuid.uuid4().hex[:12]}"
        self.is_pg = self.conn.dialect.name == "postgresql"

    @property
    def versions(self) -> list[str]:
        return [f"v{i}" for i in range(self.version_count)]

    def columns(self) -> list[str]:
        return [
            "seq", "source_id", "feed_id", "line", "row_key", "row_data", "data_hash",
            "vjson", *self.versions, "occurred_at", "completion", "outcome",
            "reason", "message",
        ]  # fmt: skip

    def create(self) -> None:
        uid = "uuid" if self.is_pg else "CHAR(32)"
        js = "jsonb" if self.is_pg else "TEXT"
        ts = "timestamptz" if self.is_pg else "TEXT"
        num = "numeric" if self.is_pg else "NUMERIC"
        boolean = "boolean" if self.is_pg else "INTEGER"
        versions = "".join(f", v{i} {num}" for i in range(self.version_count))
        self.conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {self.name} ("
            f"seq integer PRIMARY KEY, source_id {uid}, feed_id {uid}, line integer NOT NULL,"
            f" row_key text, row_data {js}, data_hash text, vjson {js}{versions},"
            f" occurred_at {ts}, completion {boolean}, outcome text,"
            f" reason text, message text, row_id {uid}, completion_write {boolean})"
        )

    def _uid(self, value: uuid.UUID | None) -> Any:
        if value is None:
            return None
        return value if self.is_pg else value.hex

    def _ts(self, value: datetime | None) -> Any:
        return value if self.is_pg else sqlite_timestamp(value)

    def _num(self, value: Decimal | None) -> Any:
        return value if self.is_pg or value is None else str(value)

    def _bool(self, value: bool | None) -> Any:
        return value if self.is_pg or value is None else int(value)

    def begin_source(self, source_id: uuid.UUID, feed_id: uuid.UUID) -> None:
        """Rows added from now on come from this source of this feed."""
        self._source, self._feed = self._uid(source_id), self._uid(feed_id)

    @property
    def completion_writes(self) -> str:
        """The partial index of rows flagged by :meth:`Merge.flag_completion_writes`."""
        return f"{self.name}_completion_write"

    @property
    def candidates(self) -> str:
        """Stored rows that may be absent from a snapshot (:meth:`Merge.stage_absent`)."""
        return f"{self.name}_gone"

    def create_candidates(self) -> None:
        uid = "uuid" if self.is_pg else "CHAR(32)"
        self.conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {self.candidates} (id {uid} PRIMARY KEY)"
        )

    def _valid_row(self, row: ValidRow, seq: int) -> tuple[Any, ...]:
        return (
            seq, self._source, self._feed, row.line, row.row_key, compact_json(row.row_data),
            row.data_hash, _version_json(row.version), *(self._num(v) for v in row.version),
            self._ts(row.occurred_at), self._bool(row.completion), None, None, None,
        )  # fmt: skip

    def _rejected_row(self, row: RejectedRow, seq: int) -> tuple[Any, ...]:
        return (
            seq, self._source, self._feed, row.line, row.row_key, None, None, None,
            *([None] * self.version_count), None, None, FAILED, row.reason_code,
            row.message,
        )  # fmt: skip

    def _supplement_row(self, row: SupplementRow, seq: int) -> tuple[Any, ...]:
        return (
            seq, self._source, self._feed, row.line, row.row_key, compact_json(row.supplement),
            row.data_hash, None, *([None] * self.version_count), None,
            self._bool(row.completion), None, None, None,
        )  # fmt: skip

    def add_block(self, block: ValidatedBlock) -> None:
        """A validated block (official or appearance): sequence numbers in line order, valid
        rows written as columns.

        The valid rows go in with one COPY (PostgreSQL, CSV written by Arrow) or one
        executemany over the columns zipped (SQLite); the others as single rows.
        """
        fast = len(block.lines)
        total = fast + len(block.rows)
        seqs = np.arange(self._seq + 1, self._seq + total + 1, dtype=np.int64)
        if block.rows:
            lines = np.concatenate([block.lines, [r.line for r in block.rows]])
            ordered = np.empty(total, dtype=np.int64)
            ordered[np.argsort(lines, kind="stable")] = seqs
            seqs = ordered
        self._seq += total
        for row, seq in zip(block.rows, seqs[fast:].tolist(), strict=True):
            if isinstance(row, RejectedRow):
                self._buffer.append(self._rejected_row(row, seq))
            elif isinstance(row, SupplementRow):
                self._buffer.append(self._supplement_row(row, seq))
            else:
                self._buffer.append(self._valid_row(row, seq))
        self.flush()
        if fast:
            self._write_columns(block, seqs[:fast])

    def _write_columns(self, block: ValidatedBlock, seqs: np.ndarray) -> None:
        n = len(block.lines)
        source, feed = (
            (str(self._source), str(self._feed)) if self.is_pg else (self._source, self._feed)
        )
        columns: list[Any] = [
            seqs.tolist(), repeat(source, n), repeat(feed, n),
            block.lines.tolist(), block.row_key, block.row_data, block.data_hash, block.vjson,
            *block.versions, block.occurred_at, block.completion,
            *(repeat(None, n) for _ in range(3)),
        ]  # fmt: skip
        if not self.is_pg:
            self.conn.exec_driver_sql(
                f"INSERT INTO {self.name} ({', '.join(self.columns())})"
                f" VALUES ({', '.join('?' for _ in columns)})",
                list(zip(*columns, strict=True)),
            )
            return
        table = pa.table(
            {
                name: pa.array(list(values) if isinstance(values, repeat) else values, kind)
                for name, values, kind in zip(
                    self.columns(), columns, self._arrow_types(), strict=True
                )
            }
        )
        out = io.BytesIO()
        pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=False))
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            sql = f"COPY {self.name} ({', '.join(self.columns())}) FROM STDIN (FORMAT csv)"
            with cursor.copy(sql) as copy:
                copy.write(out.getbuffer())
        finally:
            cursor.close()

    def _arrow_types(self) -> list[pa.DataType]:
        text_ = pa.string()
        return [
            pa.int64(), text_, text_, pa.int64(), text_, text_, text_, text_,
            *([text_] * self.version_count), text_, pa.bool_(), text_, text_, text_,
        ]  # fmt: skip

    def flush(self) -> None:
        if not self._buffer:
            return
        cols = self.columns()
        if self.is_pg:
            cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                with cursor.copy(f"COPY {self.name} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in self._buffer:
                        copy.write_row(row)
            finally:
                cursor.close()
        else:
            placeholders = ", ".join("?" for _ in cols)
            self.conn.exec_driver_sql(
                f"INSERT INTO {self.name} ({', '.join(cols)}) VALUES ({placeholders})",
                self._buffer,
            )
        self._buffer.clear()

    def index(self) -> None:
        self.conn.exec_driver_sql(f"CREATE INDEX {self.name}_key ON {self.name} (row_key)")
        self.conn.exec_driver_sql(f"ANALYZE {self.name}")

    def index_outcomes(self) -> None:
        """Once rows are classified (before the lock): the statements under the lock read only
        the rows they write — new, updated, rejected, excluded — not the whole table.
        (SQLite, 1M rows with 1% changed: those scans were about half of the lock.)"""
        self.conn.exec_driver_sql(f"CREATE INDEX {self.name}_outcome ON {self.name} (outcome)")
        if self.is_pg:
            self.conn.exec_driver_sql(f"ANALYZE {self.name}")
        else:
            self.conn.exec_driver_sql(f"ANALYZE {self.name}_outcome")

    def drop(self) -> None:
        for table in (self.name, self.candidates):
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")

    @property
    def staged(self) -> int:
        """Rows of the files for this role staged so far."""
        return self._seq


DUPLICATE_KEY = "DUPLICATE_KEY_IN_SOURCE"
# An excluded repeat's message: "line N" + this + the winning line + the tail (both folds).
_REPEAT = ": the same key appears again at line "
_REPEAT_TAIL = " with a higher or equal version; this row was not applied"


def exclude_in_file_duplicates(stage: Stage) -> int:
    """Keep one row per key: the highest version, ties to the last in the file.

    Only keys that occur more than once are read back, so memory follows the number of
    duplicates, not the file size. Without version columns every repeat ties, so the last
    occurrence wins and one statement settles it (:func:`_exclude_all_but_the_last`).
    """
    if not stage.versions:
        return _exclude_all_but_the_last(stage)
    return _fold_by_version(stage)


def _fold_by_version(stage: Stage) -> int:
    conn = stage.conn
    vcols = "".join(f", {v}" for v in stage.versions)
    rows = conn.exec_driver_sql(
        f"SELECT row_key, seq, line{vcols} FROM {stage.name} WHERE outcome IS NULL AND row_key IN"
        f" (SELECT row_key FROM {stage.name} WHERE outcome IS NULL"
        f"  GROUP BY row_key HAVING count(*) > 1) ORDER BY row_key, seq"
    )
    losers: list[tuple[str, int]] = []

    def settle(group: list[tuple[int, int, tuple[Decimal | None, ...]]]) -> None:
        winner_seq = fold_duplicates((seq, version) for seq, _line, version in group)
        winner_line = next(line for seq, line, _v in group if seq == winner_seq)
        for seq, line, _version in group:
            if seq != winner_seq:
                losers.append((f"line {line}{_REPEAT}{winner_line}{_REPEAT_TAIL}", seq))

    current: str | None = None
    group: list[tuple[int, int, tuple[Decimal | None, ...]]] = []
    for row in rows:
        key, seq, line = row[0], row[1], row[2]
        version = tuple(None if v is None else Decimal(str(v)) for v in row[3:])
        if key != current and group:
            settle(group)
            group = []
        current = key
        group.append((seq, line, version))
    if group:
        settle(group)
    for start in range(0, len(losers), FOLD_ROWS):
        batch = losers[start : start + FOLD_ROWS]
        conn.execute(
            text(
                f"UPDATE {stage.name} SET outcome = 'excluded',"
                f" reason = '{DUPLICATE_KEY}', message = :message WHERE seq = :seq"
            ),
            [{"message": m, "seq": s} for m, s in batch],
        )
    return len(losers)


def _exclude_all_but_the_last(stage: Stage) -> int:
    """The fold when no row has a version: each repeated key keeps its last occurrence.

    Set-based (an appearance feed repeats most of its keys: reading 49,000 repeats back and
    excluding them one by one took 1.6 s of a 112,000-row run). Same outcome and message as
    the general fold, which a test compares.
    """
    s = stage.name
    return int(
        stage.conn.exec_driver_sql(
            f"UPDATE {s} SET outcome = 'excluded', reason = '{DUPLICATE_KEY}',"
            f" message = 'line ' || {s}.line || '{_REPEAT}' || w.winner_line || '{_REPEAT_TAIL}'"
            " FROM (SELECT seq, row_number() OVER (PARTITION BY row_key ORDER BY seq DESC) AS n,"
            "  first_value(line) OVER (PARTITION BY row_key ORDER BY seq DESC) AS winner_line"
            f"  FROM {s} WHERE outcome IS NULL AND row_key IS NOT NULL) w"
            f" WHERE {s}.seq = w.seq AND w.n > 1"
        ).rowcount
        or 0
    )
