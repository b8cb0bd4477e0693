"""Recognise unchanged rows while parsing, so an unchanged re-ingest stages (almost) nothing.

Once the header of the official file of a DEDUP dashboard is read, the run reads a
fingerprint, the external completion and the id of every active stored row into an
open-addressing hash table in one flat array (about 53 bytes a row, no Python object per row).
A parsed row whose hash and completion equal a stored row's would end ``unchanged``: the hash
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
header, time zone and the validation code itself, see :class:`RecordHasher`), and the stored
hash names its context by a tag. A row whose record hash has the file's context tag is in the
table by record hash only, so a line whose record hash is stored is matched without being
validated or any cell read (the completion it gives is a bit of the stored hash). The others
(rows stored before the column existed, or under another header, time zone or version of the
validation code) are in the table by data hash: their lines are validated and matched by data
hash as before, and the record hash is written to the stored row after the run commits
(:meth:`Fingerprints.write_record_hashes`, guarded by the data hash, so it is never attached to
other data), so the next re-ingest finds it by record hash. One key a row, not both: keying
every row by data hash too cost a third of an unchanged re-ingest at a million rows, and it
would only find lines that differ from their stored record where validation does not look (a
cell padded with spaces). Such a line is staged instead, ends ``unchanged`` in the merge, and
its record hash is written after the commit too (:meth:`Fingerprints.queue_staged_unchanged`).

A flat table, not a dict: a dict of a million int keys costs about 100 MB here, and a probe
of the table reads one cache line (the words of a slot sit together; binary search over
sorted arrays read twenty and was twice as slow; double hashing, with fewer probes but each
on another cache line, was slower than linear probing). A slot is found by Python's own
string hash of the hex digest (SipHash, keyed per process, never stored) and confirmed by 60
other bits, the first of the sha256; bit 0 of that check word is the stored completion. The
chance that a changed row passes for unchanged is about rows² / 2¹²⁴ — below 10⁻²³ at 10⁷.
A slot keyed by record hash compares 96 bits of the BLAKE2b (bit 63 of its check word marks
the kind): rows² / 2⁹⁷, below 10⁻¹⁵ at 10⁷.
"""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from csvboard.dashboards import columns as columns_module
from csvboard.dashboards.columns import DashboardSchema
from csvboard.ingest import validate as validate_module
from csvboard.ingest.apply import UNCHANGED, lock_dashboard

if TYPE_CHECKING:
    from csvboard.ingest.apply import Stage

# Above this many stored rows the table is not built and the run stages every row instead, so
# memory stays bounded whatever the dashboard's size: at the limit the table is 64 MB (53
# bytes a row), filled in one pass with no buffer beside it.
MAX_STORED_ROWS = 1_200_000
_LOAD_FACTOR = 0.75
_FETCH_ROWS = 20_000
# Words per slot: probe (0: empty), check (bit 0: completion), position of the matching file
# row (seq << 32 | line; 0: none), the stored row's id (two halves).
_WORDS = 5
# Check word of a slot keyed by record hash: this bit, 32 bits of the hash << 2, the completion
# the record gives << 1, the stored completion. (A data-hash check word is 61 bits.)
_RECORD = 1 << 63
_DIGEST_WORDS = struct.Struct(">QI").unpack_from  # the 96 bits of a record hash that count
_LOW_64 = (1 << 64) - 1
_MAX_LINE = (1 << 32) - 1
_MAX_SEQ = (1 << 31) - 1
# Bump when a record could become a different row without the code below changing (the
# validation modules' own text is part of the key anyway).
# 2: the stored form carries the context tag.
RECORD_HASH_VERSION = 2


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
    ``tag``: 28 bits of a digest of that key, stored with each record hash, so a re-ingest
    knows which stored hashes its lines can match at all.
    """

    def __init__(self, schema: DashboardSchema, header: Sequence[str], timezone: str) -> None:
        context = json.dumps(
            [RECORD_HASH_VERSION, _CODE_DIGEST, schema.model_dump(mode="json"), list(header),
             timezone],
            ensure_ascii=False, sort_keys=True,
        )  # fmt: skip
        self._key = hashlib.blake2b(context.encode(), digest_size=32).digest()
        self._width = len(header)
        self.tag = hashlib.blake2b(self._key, digest_size=4).hexdigest()[:7]
        self._keyed = hashlib.blake2b(digest_size=12, key=self._key).copy

    def stored(self, digest: bytes, completion: bool | None) -> str:
        """The record hash as stored: 96 bits of the digest, the context tag, and last the
        completion the record gives (``0``/``1``), so a re-ingest knows a record's
        completion without reading its cell."""
        return digest.hex() + self.tag + ("1" if completion else "0")

    def digest(self, cells: list[str]) -> bytes | None:
        if len(cells) != self._width:
            return None
        h = self._keyed()  # a copy of the keyed state: the key block is hashed once a file
        h.update("\x00".join(cells).encode("utf-8", "surrogatepass"))
        return h.digest()


class FingerprintsOutdated(Exception):
    """A run on the dashboard committed after the fingerprints were read."""


def _probe(data_hash: str) -> int:
    return hash(data_hash) & _LOW_64 or 1  # 0 marks an empty slot


def _check(data_hash: str) -> int:
    """60 bits of the sha256, shifted to leave bit 0 for the completion."""
    return int(data_hash[:15], 16) << 1


def _slot_key(key: str) -> tuple[int, int]:
    """Probe and check word (stored completion 0) of a row's key: a stored record hash (32
    characters) or a data hash (64)."""
    if len(key) == 32:
        return int(key[:16], 16) or 1, _RECORD | int(key[16:24], 16) << 2 | (key[31] == "1") << 1
    return _probe(key), _check(key)


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
        tag: str = "",
    ) -> None:
        self.conn = conn
        self.dashboard_id = dashboard_id
        self.tag = tag  # the context tag of the record hashes the table holds
        self.with_completion = with_completion
        self.committed_runs = committed_runs
        self.rows = rows  # active stored rows in the table
        self.size = int(rows / _LOAD_FACTOR) + 1
        self.table = array("Q", bytes(8 * _WORDS * self.size))
        self.matched = 0  # stored rows a skipped file row matched
        self.matched_by_record = 0  # of those, recognised by record hash (not validated)
        self.restored = 0  # of those, copied back into staging (their key occurs again)
        # (stored row id, data hash, record hash) of rows matched by data hash: their record
        # hash is written after the commit; buffered here, kept in a temporary table.
        self._rewrites: list[tuple[Any, str, str]] = []
        self.rewrites = 0  # the number of the last one queued in the temporary table
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
    # The same rows, through the index of (dashboard, is_active), whose equality on both
    # columns SQLite prefers to the key index: it walks the table in row order (1M rows:
    # 0.8-1.2 s rather than 1.3-2.1 s in key order, a page read per row).
    _ACTIVE_IN_ROW_ORDER = "r.csv_dashboard_id = ? AND r.is_active = true AND r.is_dedup"

    def _key(self) -> str:
        """SQL: a row's key in the table — its record hash if it has this file's context tag
        (which is hex, so safe as a literal), else its data hash."""
        return (
            f"coalesce(CASE WHEN substr(r.record_hash, 25, 7) = '{self.tag}'"
            " THEN r.record_hash END, r.data_hash)"
        )

    @classmethod
    def load(
        cls,
        conn: Connection,
        dashboard_id: uuid.UUID,
        *,
        with_completion: bool,
        hasher: RecordHasher,
    ) -> Fingerprints | None:
        """Read the dashboard's active rows; None when there are none or too many.

        ``hasher``: the official file's (read after its header), whose context decides which
        stored rows are in the table by record hash. Runs in the caller's (read) transaction.
        The committed-run count is read first, so a run committing while the rows are read
        makes the table outdated, never wrong.
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
            rows=bound, tag=hasher.tag,
        )  # fmt: skip
        table, size = fp.table, fp.size
        end = _WORDS * size
        rows = 0
        # PostgreSQL: the id's 16 bytes, not a uuid.UUID made for every row (1M rows: 0.8 s
        # rather than 1.2 s to fetch). Written out (not _slot_key calls): this loop runs once
        # per stored row.
        row_id_sql = "uuid_send(r.id)" if fp.is_pg else "r.id"
        for row_id, key in fp._query(
            f"SELECT {row_id_sql}, {fp._key()} FROM csv_dashboard_rows r"
            f" WHERE {cls._ACTIVE_IN_ROW_ORDER}"
        ):
            rows += 1
            if rows > bound:  # PostgreSQL: rows committed since the count
                raise FingerprintsOutdated()
            if len(key) == 32:
                probe = int(key[:16], 16) or 1
                check = _RECORD | int(key[16:24], 16) << 2 | (key[31] == "1") << 1
            else:
                probe = hash(key) & _LOW_64 or 1
                check = int(key[:15], 16) << 1
            s = probe % size * _WORDS
            while table[s]:
                s = s + _WORDS if s + _WORDS < end else 0
            table[s] = probe
            table[s + 1] = check
            i = int.from_bytes(row_id, "big") if fp.is_pg else int(row_id, 16)
            table[s + 3] = i >> 64
            table[s + 4] = i & _LOW_64
        if not rows:
            return None
        fp.rows = rows
        if with_completion:
            # From the completion records (SQLite: CROSS JOIN keeps that order, rather than
            # visiting every row to look for a record).
            join = "JOIN" if fp.is_pg else "CROSS JOIN"
            for (key,) in fp._query(
                f"SELECT {fp._key()} FROM production_schedule_external_completion e {join}"
                " csv_dashboard_rows r ON r.id = e.csv_dashboard_row_id"
                f" WHERE e.csv_dashboard_id = ? AND e.is_completed AND {cls._ACTIVE}"
            ):
                s = fp._slot(key)
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

    def _slot(self, key: str) -> int:
        """The slot (its first word) of the stored row with this key (see :meth:`_key`), any
        stored completion; or -1."""
        probe, check = _slot_key(key)
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
        probe, rest = _DIGEST_WORDS(record_hash)
        probe = probe or 1
        table, size = self.table, self.size
        s = probe % size * _WORDS
        while x := table[s]:
            if x == probe:
                check = table[s + 1]
                if check >> 2 == _RECORD >> 2 | rest:
                    if (
                        (check ^ check >> 1) & 1
                        or table[s + 2]
                        or line > _MAX_LINE
                        or seq > _MAX_SEQ
                    ):
                        return False
                    table[s + 2] = seq << 32 | line
                    self.matched += 1
                    self.matched_by_record += 1
                    return True
            s = s + _WORDS if s + _WORDS < _WORDS * size else 0
        return False

    def claim(
        self,
        data_hash: str,
        completion: bool | None,
        line: int,
        seq: int,
        record_hash: str | None = None,
    ) -> bool:
        """True if this file row leaves a stored row unchanged, which is then taken by it.

        A second row matching the same stored row is a duplicate: False, so it is staged,
        and the first is restored into staging by :meth:`restore_conflicts`. Runs once per
        row of the file, so it is written flat; the check word is parsed only on a probe hit.
        Only rows in the table by data hash can match (a record-hash check word has bit 63).
        ``record_hash``: the line's, as stored, which the stored row did not have (else
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
                        self._rewrites.append((self._row_id(s), data_hash, record_hash))
                    return True
            s = s + _WORDS if s + _WORDS < _WORDS * size else 0
        return False

    # -- record hashes of rows matched by data hash ---------------------------------------
    def _rewrite_table_of(self, stage: Stage) -> str:
        if self._rewrite_table is None:
            self._rewrite_table = stage.record_hashes
            uid = "uuid" if self.is_pg else "CHAR(32)"
            self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {self._rewrite_table}"
                f" (n integer PRIMARY KEY, id {uid} UNIQUE, data_hash text, record_hash text)"
            )
        return self._rewrite_table

    def flush_rewrites(self, stage: Stage) -> None:
        """Keep the buffered record hashes in a temporary table (the caller commits)."""
        if not self._rewrites:
            return
        ph = self._ph
        self.conn.exec_driver_sql(
            f"INSERT INTO {self._rewrite_table_of(stage)} (n, id, data_hash, record_hash)"
            f" VALUES ({ph}, {ph}, {ph}, {ph})",
            [(self.rewrites + i, *row) for i, row in enumerate(self._rewrites, 1)],
        )
        self.rewrites += len(self._rewrites)
        self._rewrites.clear()

    def queue_staged_unchanged(self, stage: Stage) -> int:
        """After the commit: staged rows the merge found ``unchanged`` whose stored row has
        another record hash, to be rewritten too (in a transaction of its own).

        Lines that differ from the stored record only where validation does not look (a
        cell padded with spaces, say) miss the table and are staged; without this their row
        would keep the other record's hash and be staged again on every re-ingest.
        """
        self.conn.begin()
        t = self._rewrite_table_of(stage)
        join = "JOIN" if self.is_pg else "CROSS JOIN"  # SQLite: the staged rows outermost
        cursor = self.conn.exec_driver_sql(
            f"INSERT INTO {t} (n, id, data_hash, record_hash)"
            f" SELECT {self.rewrites} + row_number() OVER (ORDER BY s.seq), s.row_id,"
            f" s.data_hash, s.record_hash FROM {stage.name} s"
            f" {join} csv_dashboard_rows r ON r.id = s.row_id"
            f" WHERE s.outcome = '{UNCHANGED}' AND s.record_hash IS NOT NULL"
            " AND (r.record_hash IS NULL OR r.record_hash <> s.record_hash)"
            # A row matched by data hash whose key a later line repeats is queued already.
            " ON CONFLICT (id) DO NOTHING"
        )
        queued = int(cursor.rowcount or 0)
        # ``n`` numbers the table without gaps only up to the conflicts: chunk by its maximum.
        self.rewrites = int(
            self.conn.exec_driver_sql(f"SELECT coalesce(max(n), 0) FROM {t}").scalar_one()
        )
        self.conn.commit()
        return queued

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
        for row_id, key in self._query(
            f"SELECT DISTINCT r.id, {self._key()} FROM {stage.name} s"
            f" {join} csv_dashboard_rows r ON r.row_key = s.row_key"
            f" WHERE s.outcome IS NULL AND {self._ACTIVE}"
        ):
            s = self._slot(key)
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
