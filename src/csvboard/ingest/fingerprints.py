"""Recognise unchanged rows while parsing, so an unchanged re-ingest stages (almost) nothing.

Before the official file of a DEDUP dashboard is parsed, the run reads the data hash and the
external completion of every active stored row, sorted, into compact arrays (24 bytes a row,
no Python object per row). A parsed row whose hash and completion equal a stored row's would
end ``unchanged``: the hash covers the row data and the completion cell, the row key is a
function of the data, and an equal hash means equal versions, so it cannot be stale. Such a
row is counted and remembered by position (line, staging sequence), not staged. Only rows
that may change something go to staging and through the SQL merge — on SQLite, the write lock
is then held for about as long as the number of changed rows needs (SPEC 3).

Three things keep the result identical to staging every row (a property test compares both):

- Duplicates in the file: a later row with the same key (a newer order, a repeat) is staged
  as usual. Before the in-file fold, stored rows that a skipped row matched *and* whose key is
  also staged are copied into staging from the stored row — same data, its own line and
  sequence — so the fold sees every occurrence (:meth:`Fingerprints.restore_conflicts`).
- Retirement: only stored rows that no skipped row matched can be absent from the snapshot;
  their ids go to a candidates table and the retire pass reads that, not the whole dashboard.
- Concurrency: the arrays describe the dashboard when they were read. If any run on the
  dashboard committed since (checked under the apply lock), the run stages again without them
  (:class:`FingerprintsOutdated`).

The comparison uses 128 bits of the sha256 (the lowest one replaced by the completion): the
chance that a changed row passes for unchanged is about rows² / 2¹²⁷ — below 10⁻²⁵ at 10⁷.
"""

from __future__ import annotations

import uuid
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

if TYPE_CHECKING:
    from csvboard.ingest.apply import Stage

# Above this many stored rows the arrays are not read (24 bytes a row: 96 MB) and the run
# stages every row instead, so memory stays bounded whatever the dashboard's size.
MAX_STORED_ROWS = 4_000_000
_FETCH_ROWS = 20_000
_LOW_64 = (1 << 64) - 1
_NO_BIT_0 = _LOW_64 ^ 1


class FingerprintsOutdated(Exception):
    """A run on the dashboard committed after the fingerprints were read."""


def _split(data_hash: str, completed: Any) -> tuple[int, int]:
    v = int(data_hash[:32], 16)
    return v >> 64, (v & _NO_BIT_0) | (1 if completed else 0)


@dataclass
class Fingerprints:
    """The active stored rows of one dashboard, as sorted 128-bit fingerprints."""

    conn: Connection
    dashboard_id: uuid.UUID
    with_completion: bool
    committed_runs: int
    hi: array[int] = field(default_factory=lambda: array("Q"))
    lo: array[int] = field(default_factory=lambda: array("Q"))
    # Per stored row, the line and staging sequence of the file row that matched it (0: none).
    line: array[int] = field(default_factory=lambda: array("I"))
    seq: array[int] = field(default_factory=lambda: array("Q"))
    matched: int = 0  # stored rows a skipped file row matched
    restored: int = 0  # of those, copied back into staging (their key occurs again)

    @property
    def is_pg(self) -> bool:
        return self.conn.dialect.name == "postgresql"

    def _dash(self) -> Any:
        return self.dashboard_id if self.is_pg else self.dashboard_id.hex

    # -- reading ---------------------------------------------------------------------------
    def _stored_sql(self, *, with_id: bool) -> str:
        ph = "%s" if self.is_pg else "?"
        completed = "COALESCE(e.is_completed, false)" if self.with_completion else "false"
        join = (
            " LEFT JOIN production_schedule_external_completion e ON e.csv_dashboard_row_id = r.id"
            if self.with_completion
            else ""
        )
        order = 'r.data_hash COLLATE "C"' if self.is_pg else "r.data_hash"
        return (
            f"SELECT r.data_hash, {completed}{', r.id' if with_id else ''}"
            f" FROM csv_dashboard_rows r{join}"
            f" WHERE r.csv_dashboard_id = {ph} AND r.is_dedup AND r.is_active ORDER BY {order}"
        )

    def _stream(self, sql: str) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` in batches, on PostgreSQL from a server-side cursor."""
        dbapi: Any = self.conn.connection.dbapi_connection
        cursor = dbapi.cursor(name=f"fp_{uuid.uuid4().hex[:12]}") if self.is_pg else dbapi.cursor()
        try:
            if self.is_pg:
                cursor.itersize = _FETCH_ROWS
            cursor.execute(sql, (self._dash(),))
            while batch := cursor.fetchmany(_FETCH_ROWS):
                yield from batch
        finally:
            cursor.close()

    @classmethod
    def load(
        cls, conn: Connection, dashboard_id: uuid.UUID, *, with_completion: bool
    ) -> Fingerprints | None:
        """Read the dashboard's active rows; None when there are none or too many.

        Runs in the caller's (read) transaction. The committed-run count is read first, so a
        run committing while the rows are read makes the fingerprints outdated, never wrong.
        """
        fp = cls(conn, dashboard_id, with_completion, 0)
        fp.committed_runs = fp._committed_runs()
        hi, lo = fp.hi, fp.lo
        previous = -1
        for data_hash, completed in fp._stream(fp._stored_sql(with_id=False)):
            h, low = _split(data_hash, completed)
            if h < previous:  # the order is what makes bisect valid; never assume it
                raise RuntimeError("stored fingerprints did not arrive sorted")
            previous = h
            hi.append(h)
            lo.append(low)
            if len(hi) > MAX_STORED_ROWS:
                return None
        if not hi:
            return None
        fp.line = array("I", bytes(4 * len(hi)))
        fp.seq = array("Q", bytes(8 * len(hi)))
        return fp

    def _committed_runs(self) -> int:
        ph = "%s" if self.is_pg else "?"
        dbapi: Any = self.conn.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            cursor.execute(
                "SELECT count(*) FROM ingestion_runs WHERE status IN ('succeeded', 'partial')"
                " AND run_id IN (SELECT run_id FROM ingestion_run_sources"
                f" WHERE csv_dashboard_id = {ph})",
                (self._dash(),),
            )
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()

    def outdated(self) -> bool:
        """Did a run on the dashboard commit since :meth:`load`? Ask under the apply lock."""
        return self._committed_runs() != self.committed_runs

    # -- matching file rows ----------------------------------------------------------------
    def _find(self, data_hash: str, completed: Any) -> int:
        h, low = _split(data_hash, completed)
        hi, lo = self.hi, self.lo
        i = bisect_left(hi, h)
        n = len(hi)
        while i < n and hi[i] == h:
            if lo[i] == low:
                return i
            i += 1
        return -1

    def unchanged(self, data_hash: str, completion: bool | None) -> int:
        """The stored row this file row would leave unchanged, if not matched before; else -1.

        A second row matching the same stored row is a duplicate: it returns -1 and is staged,
        and the first is restored into staging by :meth:`restore_conflicts`.
        """
        i = self._find(data_hash, completion if self.with_completion else False)
        if i < 0 or self.seq[i]:
            return -1
        return i

    def skip(self, index: int, line: int, seq: int) -> None:
        """The file row at ``line`` (staging sequence ``seq``) left stored row ``index`` as is."""
        self.line[index] = line
        self.seq[index] = seq
        self.matched += 1

    @property
    def unchanged_rows(self) -> int:
        """Rows of the file that end ``unchanged`` without ever being staged."""
        return self.matched - self.restored

    # -- before the fold -------------------------------------------------------------------
    def restore_conflicts(self, stage: Stage) -> int:
        """Stage the skipped rows whose key also occurs among the staged rows.

        Reads only the staged rows (few, when little changed) and their stored rows.
        """
        s = stage.name
        completed = "COALESCE(e.is_completed, false)" if self.with_completion else "false"
        join = (
            " LEFT JOIN production_schedule_external_completion e ON e.csv_dashboard_row_id = r.id"
            if self.with_completion
            else ""
        )
        ph = "%s" if self.is_pg else "?"
        dbapi: Any = self.conn.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            cursor.execute(
                f"SELECT DISTINCT r.id, r.data_hash, {completed} FROM {s} s"
                " JOIN csv_dashboard_rows r ON r.csv_dashboard_id = " + ph + " AND r.is_dedup"
                f" AND r.row_key = s.row_key{join}"
                " WHERE s.outcome IS NULL AND r.is_active",
                (self._dash(),),
            )
            found = cursor.fetchall()
        finally:
            cursor.close()
        restored = 0
        for row_id, data_hash, completed_now in found:
            i = self._find(data_hash, completed_now)
            if i >= 0 and self.seq[i]:
                stage.restore_stored(
                    row_id, seq=self.seq[i], line=self.line[i], completion=bool(completed_now)
                    if self.with_completion else None,
                )  # fmt: skip
                restored += 1
        self.restored += restored
        return restored

    def stage_candidates(self, stage: Stage) -> int:
        """Snapshot runs: the ids of stored rows no skipped row matched, into a table.

        Only these can be absent from the file (the others were matched by one of its rows);
        the retire pass checks them against the staged keys. Reads the stored rows again in
        the same order, and only when there is a candidate at all.
        """
        stage.create_candidates()
        n = len(self.hi)
        if self.matched == n:
            return 0
        ids: list[Any] = []
        found = 0
        position = -1
        for position, (data_hash, completed, row_id) in enumerate(
            self._stream(self._stored_sql(with_id=True))
        ):
            if position >= n or _split(data_hash, completed) != (
                self.hi[position],
                self.lo[position],
            ):
                raise FingerprintsOutdated()
            if not self.seq[position]:
                ids.append(row_id)
                if len(ids) >= _FETCH_ROWS:
                    found += stage.add_candidates(ids)
                    ids = []
        if position != n - 1:
            raise FingerprintsOutdated()
        found += stage.add_candidates(ids)
        return found
