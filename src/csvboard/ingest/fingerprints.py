"""Recognise unchanged rows while parsing, so an unchanged re-ingest stages (almost) nothing.

Before the official file of a DEDUP dashboard is parsed, the run reads the data hash and the
external completion and id of every active stored row into an open-addressing hash table in
one flat array (about 53 bytes a row, no Python object per row). A parsed row whose hash and
completion equal a stored row's would end ``unchanged``: the hash covers the row data and the
completion cell, the row key is a function of the data, and an equal hash means equal
versions, so it cannot be stale. Such a row is counted and remembered by position (line,
staging sequence), not staged. Only rows that may change something go to staging and through
the SQL merge — on SQLite, the write lock is then held about as long as the number of changed
rows needs (SPEC 3).

Three things keep the result identical to staging every row (a property test compares both):

- Duplicates in the file: a later row with the same key (a newer order, a repeat) is staged
  as usual. Before the in-file fold, stored rows that a skipped row matched *and* whose key is
  also staged are copied into staging from the stored row — same data, its own line and
  sequence — so the fold sees every occurrence (:meth:`Fingerprints.restore_conflicts`).
- Retirement: only stored rows that no skipped row matched can be absent from the snapshot;
  their ids (kept in the table for this) go to a candidates table, and the retire pass reads
  that, not the whole dashboard.
- Concurrency: the table describes the dashboard when it was read. If any run on the
  dashboard committed since (checked under the apply lock), the run stages again without it
  (:class:`FingerprintsOutdated`).

A flat table, not a dict: a dict of a million int keys costs about 100 MB here, and a probe
of the table reads one cache line (the words of a slot sit together; binary search over
sorted arrays read twenty and was twice as slow; double hashing, with fewer probes but each
on another cache line, was slower than linear probing). A slot is found by Python's own
string hash of the hex digest (SipHash, keyed per process, never stored) and confirmed by 60
other bits, the first of the sha256; bit 0 of that check word is the stored completion. The
chance that a changed row passes for unchanged is about rows² / 2¹²⁴ — below 10⁻²³ at 10⁷.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

if TYPE_CHECKING:
    from csvboard.ingest.apply import Stage

# Above this many stored rows the table is not built and the run stages every row instead, so
# memory stays bounded whatever the dashboard's size: at the limit the table is 64 MB, plus
# 38 MB while it is being filled.
MAX_STORED_ROWS = 1_200_000
_LOAD_FACTOR = 0.75
_FETCH_ROWS = 20_000
# Words per slot: probe (0: empty), check (bit 0: completion), position of the matching file
# row (seq << 32 | line; 0: none), the stored row's id (two halves).
_WORDS = 5
_LOW_64 = (1 << 64) - 1
_MAX_LINE = (1 << 32) - 1
_MAX_SEQ = (1 << 31) - 1


class FingerprintsOutdated(Exception):
    """A run on the dashboard committed after the fingerprints were read."""


def _probe(data_hash: str) -> int:
    return hash(data_hash) & _LOW_64 or 1  # 0 marks an empty slot


def _check(data_hash: str) -> int:
    """60 bits of the sha256, shifted to leave bit 0 for the completion."""
    return int(data_hash[:15], 16) << 1


class Fingerprints:
    """The active stored rows of one dashboard, as a table of fingerprints."""

    def __init__(
        self,
        conn: Connection,
        dashboard_id: uuid.UUID,
        *,
        with_completion: bool,
        committed_runs: int,
        rows: int,
    ) -> None:
        self.conn = conn
        self.dashboard_id = dashboard_id
        self.with_completion = with_completion
        self.committed_runs = committed_runs
        self.rows = rows  # active stored rows in the table
        self.size = int(rows / _LOAD_FACTOR) + 1
        self.table = array("Q", bytes(8 * _WORDS * self.size))
        self.matched = 0  # stored rows a skipped file row matched
        self.restored = 0  # of those, copied back into staging (their key occurs again)
        self.is_pg = conn.dialect.name == "postgresql"
        self._ph = "%s" if self.is_pg else "?"

    def _dash(self) -> Any:
        return self.dashboard_id if self.is_pg else self.dashboard_id.hex

    # -- reading ---------------------------------------------------------------------------
    def _query(self, sql: str) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (each ``?`` is the dashboard id) in batches, server-side on PG."""
        dbapi: Any = self.conn.connection.dbapi_connection
        cursor = dbapi.cursor(name=f"fp_{uuid.uuid4().hex[:12]}") if self.is_pg else dbapi.cursor()
        try:
            if self.is_pg:
                cursor.itersize = _FETCH_ROWS
            cursor.execute(sql.replace("?", self._ph), (self._dash(),) * sql.count("?"))
            while batch := cursor.fetchmany(_FETCH_ROWS):
                yield from batch
        finally:
            cursor.close()

    _ACTIVE = "r.csv_dashboard_id = ? AND r.is_dedup AND r.is_active"

    @classmethod
    def load(
        cls, conn: Connection, dashboard_id: uuid.UUID, *, with_completion: bool
    ) -> Fingerprints | None:
        """Read the dashboard's active rows; None when there are none or too many.

        Runs in the caller's (read) transaction. The committed-run count is read first, so a
        run committing while the rows are read makes the table outdated, never wrong.
        """
        empty = cls(conn, dashboard_id, with_completion=with_completion, committed_runs=0, rows=0)
        committed = empty._committed_runs()
        # Words first, table after: its size follows the row count without a count query.
        words = array("Q")
        add = words.append
        as_int = (lambda i: i.int) if empty.is_pg else (lambda i: int(i, 16))
        for data_hash, row_id in empty._query(
            f"SELECT r.data_hash, r.id FROM csv_dashboard_rows r WHERE {cls._ACTIVE}"
        ):
            add(hash(data_hash) & _LOW_64 or 1)
            add(int(data_hash[:15], 16) << 1)
            i = as_int(row_id)
            add(i >> 64)
            add(i & _LOW_64)
            if len(words) > 4 * MAX_STORED_ROWS:
                return None
        if not words:
            return None
        fp = cls(
            conn, dashboard_id, with_completion=with_completion, committed_runs=committed,
            rows=len(words) // 4,
        )  # fmt: skip
        table, size = fp.table, fp.size
        end = _WORDS * size
        for i in range(0, len(words), 4):
            probe = words[i]
            s = probe % size * _WORDS
            while table[s]:
                s = s + _WORDS if s + _WORDS < end else 0
            table[s] = probe
            table[s + 1] = words[i + 1]
            table[s + 3] = words[i + 2]
            table[s + 4] = words[i + 3]
        del words
        if with_completion:
            # From the completion records (SQLite: CROSS JOIN keeps that order, rather than
            # visiting every row to look for a record).
            join = "JOIN" if fp.is_pg else "CROSS JOIN"
            for (data_hash,) in fp._query(
                f"SELECT r.data_hash FROM production_schedule_external_completion e {join}"
                " csv_dashboard_rows r ON r.id = e.csv_dashboard_row_id"
                f" WHERE e.csv_dashboard_id = ? AND e.is_completed AND {cls._ACTIVE}"
            ):
                s = fp._slot(data_hash)
                if s < 0:
                    raise FingerprintsOutdated()
                table[s + 1] |= 1
        return fp

    def _committed_runs(self) -> int:
        sql = (
            "SELECT count(*) FROM ingestion_runs WHERE status IN ('succeeded', 'partial')"
            " AND run_id IN (SELECT run_id FROM ingestion_run_sources WHERE csv_dashboard_id = ?)"
        )
        return int(next(iter(self._query(sql)))[0])

    def outdated(self) -> bool:
        """Did a run on the dashboard commit since :meth:`load`? Ask under the apply lock."""
        return self._committed_runs() != self.committed_runs

    def _slot(self, data_hash: str) -> int:
        """The slot (its first word) of the stored row with this hash, any completion; or -1."""
        probe, check = _probe(data_hash), _check(data_hash)
        table, size = self.table, self.size
        s = probe % size * _WORDS
        while x := table[s]:
            if x == probe and table[s + 1] >> 1 == check >> 1:
                return s
            s = s + _WORDS if s + _WORDS < _WORDS * size else 0
        return -1

    # -- matching file rows ----------------------------------------------------------------
    def claim(self, data_hash: str, completion: bool | None, line: int, seq: int) -> bool:
        """True if this file row leaves a stored row unchanged, which is then taken by it.

        A second row matching the same stored row is a duplicate: False, so it is staged,
        and the first is restored into staging by :meth:`restore_conflicts`. Runs once per
        row of the file, so it is written flat; the check word is parsed only on a probe hit.
        """
        probe = hash(data_hash) & _LOW_64 or 1
        table, size = self.table, self.size
        s = probe % size * _WORDS
        check = -1
        while x := table[s]:
            if x == probe:
                if check < 0:
                    check = int(data_hash[:15], 16) << 1 | (1 if completion else 0)
                if table[s + 1] == check:
                    if table[s + 2] or line > _MAX_LINE or seq > _MAX_SEQ:
                        return False
                    table[s + 2] = seq << 32 | line
                    self.matched += 1
                    return True
            s = s + _WORDS if s + _WORDS < _WORDS * size else 0
        return False

    @property
    def unchanged_rows(self) -> int:
        """Rows of the file that end ``unchanged`` without ever being staged."""
        return self.matched - self.restored

    # -- before the fold -------------------------------------------------------------------
    def restore_conflicts(self, stage: Stage) -> int:
        """Stage the skipped rows whose key also occurs among the staged rows.

        Reads only the staged rows (few, when little changed) and their stored rows.
        """
        # Streamed (every staged row of a much-changed file matches a stored one); only the
        # conflicts, as many as there are duplicates, are kept, and staged after the read.
        # SQLite: CROSS JOIN keeps the staged rows the outer loop (as a plain join its planner
        # walked every stored row: 1.7 s at 1M rows for 7,000 staged ones).
        restore: list[tuple[Any, int, int, bool | None]] = []
        table = self.table
        join = "JOIN" if self.is_pg else "CROSS JOIN"
        for row_id, data_hash in self._query(
            f"SELECT DISTINCT r.id, r.data_hash FROM {stage.name} s"
            f" {join} csv_dashboard_rows r ON r.row_key = s.row_key"
            f" WHERE s.outcome IS NULL AND {self._ACTIVE}"
        ):
            s = self._slot(data_hash)
            if s >= 0 and (pos := table[s + 2]):
                completion = bool(table[s + 1] & 1) if self.with_completion else None
                restore.append((row_id, pos >> 32, pos & _MAX_LINE, completion))
        for start in range(0, len(restore), _FETCH_ROWS):
            stage.restore_stored(restore[start : start + _FETCH_ROWS])
        restored = len(restore)
        self.restored += restored
        return restored

    def stage_candidates(self, stage: Stage) -> int:
        """Snapshot runs: the ids of stored rows no skipped row matched, into a table.

        Only these can be absent from the file (the others were matched by one of its rows);
        the retire pass checks them against the staged keys.
        """
        stage.create_candidates()
        if self.matched == self.rows:
            return 0
        table = self.table
        as_id = (lambda i: uuid.UUID(int=i)) if self.is_pg else (lambda i: f"{i:032x}")
        ids: list[Any] = []
        found = 0
        for s in range(0, _WORDS * self.size, _WORDS):
            if table[s] and not table[s + 2]:
                ids.append(as_id(table[s + 3] << 64 | table[s + 4]))
                if len(ids) >= _FETCH_ROWS:
                    found += stage.add_candidates(ids)
                    ids = []
        return found + stage.add_candidates(ids)
