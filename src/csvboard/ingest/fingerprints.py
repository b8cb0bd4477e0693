"""Recognise unchanged rows while parsing, so an unchanged re-ingest stages (almost) nothing.

Before the official file of a DEDUP dashboard is parsed, the run reads the data hash and the
external completion and id of every active stored row into an open-addressing hash table in one
flat array (about 75 bytes a row with the record-hash index below, no Python object per row). A
parsed row whose hash and completion equal a stored row's would end ``unchanged``: the hash
covers the row data and the completion cell, the row key is a function of the data, and an
equal hash means equal versions, so it cannot be stale. Such a row is counted and remembered by
position (line, staging sequence), not staged. Only rows that may change something go to
staging and through the SQL merge — on SQLite, the write lock is then held about as long as the
number of changed rows needs (SPEC 3).

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

Recognising a line before validating it: validation is most of the cost of reading a file
(about 16 of 19 s for a million lines; splitting them is 2.6 s). Each stored row keeps the hash
of the CSV record it was written from (``record_hash``, keyed by the file's context: schema,
header, time zone and the validation code itself, see :class:`RecordHasher`). The table has a
second index, by record hash, so a line whose record hash is stored is matched without being
validated or any cell read (the completion it gives is a bit of the stored hash). A line whose
record hash is not known (rows stored before the column existed, a file with a new header, or a
cell that differs only in spaces) is validated and matched by data hash as before; its record
hash is then written to the stored row after the run commits
(:meth:`Fingerprints.write_record_hashes`, guarded by the data hash, so it is never attached to
other data), and the next re-ingest finds it by record hash.

A flat table, not a dict: a dict of a million int keys costs about 100 MB here, and a probe
of the table reads one cache line (the words of a slot sit together; binary search over
sorted arrays read twenty and was twice as slow; double hashing, with fewer probes but each
on another cache line, was slower than linear probing). A slot is found by Python's own
string hash of the hex digest (SipHash, keyed per process, never stored) and confirmed by 60
other bits, the first of the sha256; bit 0 of that check word is the stored completion. The
chance that a changed row passes for unchanged is about rows² / 2¹²⁴ — below 10⁻²³ at 10⁷.
The record-hash index compares 96 bits of the BLAKE2b (two words a slot): rows² / 2⁹⁷, below
10⁻¹⁵ at 10⁷.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from csvboard.dashboards import columns as columns_module
from csvboard.dashboards.columns import DashboardSchema
from csvboard.ingest import validate as validate_module
from csvboard.ingest.apply import lock_dashboard

if TYPE_CHECKING:
    from csvboard.ingest.apply import Stage

# Above this many stored rows the table is not built and the run stages every row instead, so
# memory stays bounded whatever the dashboard's size: at the limit the two indexes are 90 MB
# (75 bytes a row), filled in one pass with no buffer beside them.
MAX_STORED_ROWS = 1_200_000
_LOAD_FACTOR = 0.75
_FETCH_ROWS = 20_000
# Words per slot: probe (0: empty), check (bit 0: completion), position of the matching file
# row (seq << 32 | line; 0: none), the stored row's id (two halves).
_WORDS = 5
_LOW_64 = (1 << 64) - 1
_MAX_LINE = (1 << 32) - 1
_MAX_SEQ = (1 << 31) - 1
_SLOT_MASK = (1 << 31) - 1
# Bump when a record could become a different row without the code below changing (the
# validation modules' own text is part of the key anyway).
RECORD_HASH_VERSION = 1


def _validation_code_digest() -> str:
    """A digest of the modules that turn a record into a row: new code, new record hashes."""
    digest = hashlib.blake2b(digest_size=16)
    for module in (validate_module, columns_module):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


_CODE_DIGEST = _validation_code_digest()


class RecordHasher:
    """The record hash of each line of one official file: its cells under the file's context.

    Equal record hashes mean the same cells validated the same way, hence the same row: the
    key of the keyed BLAKE2b is a digest of everything else validation reads (the schema,
    the header line, the time zone, the validation code). Cells are joined with NUL, which
    no valid row contains, and a line of another width than the header has no record hash.
    """

    def __init__(self, schema: DashboardSchema, header: Sequence[str], timezone: str) -> None:
        context = json.dumps(
            [RECORD_HASH_VERSION, _CODE_DIGEST, schema.model_dump(mode="json"), list(header),
             timezone],
            ensure_ascii=False, sort_keys=True,
        )  # fmt: skip
        self._key = hashlib.blake2b(context.encode(), digest_size=32).digest()
        self._width = len(header)

    @staticmethod
    def stored(digest: bytes, completion: bool | None) -> str:
        """The record hash as stored: the digest, its last bit the completion the record gives.

        So a re-ingest knows a record's completion without reading its cell. (The bit is not
        among the 96 that identify a record in the table.)
        """
        return (digest[:15] + bytes([digest[15] & 0xFE | (1 if completion else 0)])).hex()

    def digest(self, cells: list[str]) -> bytes | None:
        if len(cells) != self._width:
            return None
        return hashlib.blake2b(
            "\x00".join(cells).encode("utf-8", "surrogatepass"), digest_size=16, key=self._key
        ).digest()


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
        # Second index, by record hash: slot pairs (64 bits of the hash; 32 more << 32 | the
        # record's own completion << 31 | the number of the row's slot in ``table``).
        self.records = array("Q", bytes(8 * 2 * self.size))
        self.matched = 0  # stored rows a skipped file row matched
        self.matched_by_record = 0  # of those, recognised by record hash (not validated)
        self.restored = 0  # of those, copied back into staging (their key occurs again)
        # (stored row id, data hash, record hash) of rows matched by data hash: their record
        # hash is written after the commit; buffered here, kept in a temporary table.
        self._rewrites: list[tuple[Any, str, str]] = []
        self.rewrites = 0
        self._rewrite_table: str | None = None
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
        reader = cls(conn, dashboard_id, with_completion=with_completion, committed_runs=0, rows=0)
        committed = reader._committed_runs()
        # Sized by a count from the index (an upper bound: any active row of the dashboard),
        # then filled in one pass over the rows.
        bound = reader._count(
            "SELECT count(*) FROM csv_dashboard_rows r WHERE r.csv_dashboard_id = ? AND r.is_active"
        )
        if not bound or bound > MAX_STORED_ROWS:
            return None
        fp = cls(
            conn, dashboard_id, with_completion=with_completion, committed_runs=committed,
            rows=bound,
        )  # fmt: skip
        table, records, size = fp.table, fp.records, fp.size
        end, records_end = _WORDS * size, 2 * size
        as_int = (lambda i: i.int) if fp.is_pg else (lambda i: int(i, 16))
        rows = 0
        for data_hash, row_id, record_hash in fp._query(
            f"SELECT r.data_hash, r.id, r.record_hash FROM csv_dashboard_rows r WHERE {cls._ACTIVE}"
        ):
            rows += 1
            if rows > bound:  # PostgreSQL: rows committed since the count
                raise FingerprintsOutdated()
            probe = hash(data_hash) & _LOW_64 or 1
            s = probe % size * _WORDS
            while table[s]:
                s = s + _WORDS if s + _WORDS < end else 0
            table[s] = probe
            table[s + 1] = int(data_hash[:15], 16) << 1
            i = as_int(row_id)
            table[s + 3] = i >> 64
            table[s + 4] = i & _LOW_64
            if record_hash is not None:
                probe = int(record_hash[:16], 16) or 1
                r = probe % size * 2
                while records[r]:
                    r = r + 2 if r + 2 < records_end else 0
                records[r] = probe
                records[r + 1] = (
                    int(record_hash[16:24], 16) << 32
                    | (int(record_hash[31], 16) & 1) << 31
                    | s // _WORDS
                )
        if not rows:
            return None
        fp.rows = rows
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
        return self._count(sql)

    def _count(self, sql: str) -> int:
        return int(next(self._query(sql))[0])

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

    def _row_id(self, s: int) -> Any:
        """The id of the stored row of slot ``s``, in the driver's form."""
        i = self.table[s + 3] << 64 | self.table[s + 4]
        return uuid.UUID(int=i) if self.is_pg else f"{i:032x}"

    # -- matching file rows ----------------------------------------------------------------
    def take_record(self, record_hash: bytes, line: int, seq: int) -> bool:
        """True if this line is the record an unchanged stored row was written from.

        The stored row is then taken by the line, as in :meth:`claim`: False when another
        line took it already (a duplicate), or when the completion the record gives (kept in
        the record hash, see :meth:`RecordHasher.stored`) is not the stored one — the row must
        then be staged to reset it. No cell is read: an equal record gives an equal row.
        """
        probe = int.from_bytes(record_hash[:8], "big") or 1
        records, size = self.records, self.size
        r = probe % size * 2
        while x := records[r]:
            if x == probe:
                word = records[r + 1]
                if word >> 32 == int.from_bytes(record_hash[8:12], "big"):
                    s = (word & _SLOT_MASK) * _WORDS
                    table = self.table
                    if (
                        table[s + 1] & 1 != word >> 31 & 1
                        or table[s + 2]
                        or line > _MAX_LINE
                        or seq > _MAX_SEQ
                    ):
                        return False
                    table[s + 2] = seq << 32 | line
                    self.matched += 1
                    self.matched_by_record += 1
                    return True
            r = r + 2 if r + 2 < 2 * size else 0
        return False

    def claim(
        self,
        data_hash: str,
        completion: bool | None,
        line: int,
        seq: int,
        record_hash: bytes | None = None,
    ) -> bool:
        """True if this file row leaves a stored row unchanged, which is then taken by it.

        A second row matching the same stored row is a duplicate: False, so it is staged,
        and the first is restored into staging by :meth:`restore_conflicts`. Runs once per
        row of the file, so it is written flat; the check word is parsed only on a probe hit.
        ``record_hash``: the line's, which the stored row did not have (else
        :meth:`take_record` had taken it); written to the row after the commit.
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
                    if record_hash is not None:
                        self._rewrites.append(
                            (
                                self._row_id(s),
                                data_hash,
                                RecordHasher.stored(record_hash, completion),
                            )
                        )
                    return True
            s = s + _WORDS if s + _WORDS < _WORDS * size else 0
        return False

    # -- record hashes of rows matched by data hash ---------------------------------------
    def flush_rewrites(self, stage: Stage) -> None:
        """Keep the buffered record hashes in a temporary table (the caller commits)."""
        if not self._rewrites:
            return
        if self._rewrite_table is None:
            self._rewrite_table = stage.record_hashes
            uid = "uuid" if self.is_pg else "CHAR(32)"
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self._rewrite_table}"
                f" (n integer PRIMARY KEY, id {uid} UNIQUE, data_hash text, record_hash text)"
            )
        ph = self._ph
        self.conn.exec_driver_sql(
            f"INSERT INTO {self._rewrite_table} (n, id, data_hash, record_hash)"
            f" VALUES ({ph}, {ph}, {ph}, {ph})",
            [(self.rewrites + i, *row) for i, row in enumerate(self._rewrites, 1)],
        )
        self.rewrites += len(self._rewrites)
        self._rewrites.clear()

    def write_record_hashes(self) -> int:
        """After the run committed: give the rows matched by data hash their record hash.

        In transactions of at most ``_FETCH_ROWS`` rows (on SQLite each holds the write lock
        briefly; on PostgreSQL each takes the dashboard's apply lock, so it never deadlocks
        with another run's apply). A row changed meanwhile keeps what it has: the data hash
        must still be the one the record was validated to. A cache only — a failure here
        loses nothing but the speed-up, and the next re-ingest writes them again.
        """
        if self._rewrite_table is None:
            return 0
        t = self._rewrite_table
        if self.is_pg:
            sql = (
                f"UPDATE csv_dashboard_rows r SET record_hash = t.record_hash FROM {t} t"
                " WHERE t.n > %s AND t.n <= %s AND r.id = t.id AND r.data_hash = t.data_hash"
            )
        else:
            sql = (
                "UPDATE csv_dashboard_rows SET record_hash ="
                f" (SELECT t.record_hash FROM {t} t WHERE t.id = csv_dashboard_rows.id)"
                f" WHERE id IN (SELECT id FROM {t} WHERE n > ? AND n <= ?)"
                f" AND data_hash = (SELECT t.data_hash FROM {t} t"
                " WHERE t.id = csv_dashboard_rows.id)"
            )
        written = 0
        for start in range(0, self.rewrites, _FETCH_ROWS):
            self.conn.begin()
            lock_dashboard(self.conn, self.dashboard_id)
            cursor = self.conn.exec_driver_sql(sql, (start, start + _FETCH_ROWS))
            written += int(cursor.rowcount or 0)
            self.conn.commit()
        return written

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
        ids: list[Any] = []
        found = 0
        for s in range(0, _WORDS * self.size, _WORDS):
            if table[s] and not table[s + 2]:
                ids.append(self._row_id(s))
                if len(ids) >= _FETCH_ROWS:
                    found += stage.add_candidates(ids)
                    ids = []
        return found + stage.add_candidates(ids)
