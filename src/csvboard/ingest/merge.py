"""Merge a run's staged rows into its dashboard: a handful of set-based statements.

Matching staged rows to stored ones, excluding stale rows, classifying the rest, writing new
and updated rows, retiring what a snapshot does not mention, source-owned completion,
appearance supplements and the run's items: each is one statement over a staging table
(``stage.Stage``), executed in the caller's transaction: the match before the apply lock
where the runner can (it writes only the staging table), the writes under it. No statement
binds more than a row's worth of parameters, whatever the file size.

Operator-owned tables are never named here: ingestion writes rows, the source-owned
external-completion table and the ledger, nothing else
(docs/design/adr_production_schedule_progress.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from csvboard.ingest.apply import lock_dashboard
from csvboard.ingest.stage import Stage, sqlite_timestamp


# A new row's id, made by the database where the row is inserted (not a uuid4() per staged
# row in Python, most of which an unchanged re-ingest would throw away): a version-7 UUID
# (RFC 9562) of the run's merge time in milliseconds, the staged row's sequence number as a
# 30-bit counter (method 1 of section 6.2) and 44 random bits. Ids of one run then follow the file
# and ids of later runs sort after earlier ones, so inserting a million new rows appends to
# the primary-key indexes instead of writing all over them: SQLite, 1M new rows into a table
# of 1M, 27 s with random ids, 11 s with these. SQLite spells a UUID in the 32 hex digits
# SQLAlchemy's Uuid type stores there.
def _new_row_id(is_pg: bool, seq: str) -> str:
    """SQL: a new row's id from the run's ``:idms`` and the staged row's sequence ``seq``."""
    if is_pg:
        return (
            "(lpad(to_hex(CAST(:idms AS bigint)), 12, '0') || '7'"
            f" || lpad(to_hex(({seq} >> 18) & 4095), 3, '0') || to_hex(8 | (({seq} >> 16) & 3))"
            f" || lpad(to_hex({seq} & 65535), 4, '0') || substr(md5(random()::text), 1, 11)"
            ")::uuid"
        )
    return (
        f"printf('%012x7%03x%x%04x', :idms, ({seq} >> 18) & 4095, 8 | (({seq} >> 16) & 3),"
        f" {seq} & 65535) || substr(lower(hex(randomblob(6))), 1, 11)"
    )


def _stored_version(is_pg: bool, i: int) -> str:
    """SQL: component ``i`` of the stored row ``r``'s versions, as a number."""
    if is_pg:
        return f"(r.version_values->>{i})::numeric"
    return f"json_extract(r.version_values, '$[{i}]')"


@dataclass(frozen=True)
class MergeContext:
    run_id: uuid.UUID
    dashboard_id: uuid.UUID
    dedup: bool
    snapshot: bool  # official_ingestion: absent keys are retired
    now: datetime


class Merge:
    """The set-based statements of one run's apply, executed in the caller's transaction."""

    def __init__(self, conn: Connection, ctx: MergeContext) -> None:
        self.conn = conn
        self.ctx = ctx
        self.is_pg = conn.dialect.name == "postgresql"

    # -- helpers -------------------------------------------------------------------------
    def _uid(self, value: uuid.UUID) -> Any:
        return value if self.is_pg else value.hex

    def _params(self, **extra: Any) -> dict[str, Any]:
        now: Any = self.ctx.now if self.is_pg else sqlite_timestamp(self.ctx.now)
        return {
            "run": self._uid(self.ctx.run_id),
            "dash": self._uid(self.ctx.dashboard_id),
            "now": now,
            **extra,
        }

    def _exec(self, sql: str, **extra: Any) -> int:
        result = self.conn.execute(text(sql), self._params(**extra))
        return int(result.rowcount or 0)

    def lock_dashboard(self) -> None:
        lock_dashboard(self.conn, self.ctx.dashboard_id)

    # -- matching ------------------------------------------------------------------------
    def match(self, stage: Stage, *, settle: Sequence[tuple[str, str]] = ()) -> None:
        """Attach each staged row to the stored row ``r`` with the same key (DEDUP dashboards).

        ``settle``: more (column, expression) assignments, which may read ``r``, done in the
        same pass.
        """
        s = stage.name
        key = f"r.csv_dashboard_id = :dash AND r.is_dedup AND r.row_key = {s}.row_key"
        if self.is_pg:
            terms = "".join(f", {column} = {expr}" for column, expr in settle)
            self._exec(
                f"UPDATE {s} SET row_id = r.id{terms} FROM csv_dashboard_rows r"
                f" WHERE {key} AND {s}.outcome IS NULL"
            )
            return
        # SQLite: a correlated lookup per staged row. As a join, SQLite's planner (which has
        # no row counts here) walked every row of the dashboard to probe a staging table of a
        # few thousand changed rows: 1.2 s at 1M stored rows, inside the write lock. A staged
        # row without a stored one gets NULLs, which it already has.
        columns = ", ".join(["row_id", *(column for column, _ in settle)])
        exprs = ", ".join(["r.id", *(expr for _, expr in settle)])
        self._exec(
            f"UPDATE {s} SET ({columns}) = (SELECT {exprs} FROM csv_dashboard_rows r"
            f" WHERE {key}) WHERE {s}.outcome IS NULL"
        )

    def _stale_condition(self, stage: Stage) -> str:
        """SQL: the staged row is strictly older than the stored row ``r``, by its versions.

        Component by component; an unknown (NULL) component compares equal, as in
        ``validate.compare_versions``.
        """
        s = stage.name
        stored = [_stored_version(self.is_pg, i) for i in range(stage.version_count)]
        terms = []
        for i in range(stage.version_count):
            equal_before = [
                f"({s}.v{j} IS NULL OR {stored[j]} IS NULL OR {s}.v{j} = {stored[j]})"
                for j in range(i)
            ]
            lower = f"({s}.v{i} IS NOT NULL AND {stored[i]} IS NOT NULL AND {s}.v{i} < {stored[i]})"
            terms.append("(" + " AND ".join([*equal_before, lower]) + ")")
        return "(" + " OR ".join(terms) + ")" if terms else "false"

    def match_and_classify(self, stage: Stage, version_names: Sequence[str]) -> int:
        """Official rows of a DEDUP dashboard: match, exclude stale, classify — two passes.

        One UPDATE settles every row whose key is stored (``STALE_ROW`` when older than the
        stored row, else updated or unchanged); a second makes the rest new with a fresh id.
        Returns how many were stale. (Before, a match, a stale check and a classify pass each
        rewrote the staging table: an unchanged re-ingest now rewrites each row once.)
        """
        s = stage.name
        stale = self._stale_condition(stage)
        names = ", ".join(version_names)
        self.match(
            stage,
            settle=[
                (
                    "outcome",
                    f"CASE WHEN {stale} THEN 'excluded'"
                    f" WHEN r.data_hash <> {s}.data_hash OR NOT r.is_active THEN 'updated'"
                    " ELSE 'unchanged' END",
                ),
                ("reason", f"CASE WHEN {stale} THEN 'STALE_ROW' END"),
                (
                    "message",
                    f"CASE WHEN {stale} THEN 'line ' || {s}.line || ': older than the stored"
                    f" row by ({names}); the stored row was kept' END",
                ),
            ],
        )
        self.classify_unmatched(stage)
        stale_rows = self.conn.exec_driver_sql(
            f"SELECT count(*) FROM {s} WHERE reason = 'STALE_ROW'"
        ).scalar_one()
        return int(stale_rows)

    def stage_absent(self, stage: Stage) -> int:
        """Snapshot runs, before the apply lock: ids of active rows whose key is not staged.

        The retire pass under the lock then reads these (``retire_absent(candidates=…)``),
        not every row of the dashboard.
        """
        stage.create_candidates()
        found = self._exec(
            f"INSERT INTO {stage.candidates} (id) SELECT r.id FROM csv_dashboard_rows r"
            " WHERE r.csv_dashboard_id = :dash AND r.is_dedup AND r.is_active AND NOT EXISTS"
            f" (SELECT 1 FROM {stage.name} s WHERE s.row_key = r.row_key)"
        )
        self.conn.exec_driver_sql(f"ANALYZE {stage.candidates}")
        return found

    def unclassify(self, stage: Stage) -> None:
        """Undo :meth:`match_and_classify` (its rows may have changed since): rejected rows
        and in-file duplicates keep their outcome."""
        self._exec(
            f"UPDATE {stage.name} SET outcome = NULL, reason = NULL, message = NULL,"
            " row_id = NULL, completion_write = NULL"
            " WHERE outcome IN ('new', 'updated', 'unchanged')"
            " OR reason = 'STALE_ROW'"
        )

    def classify_unmatched(self, stage: Stage) -> None:
        """Every valid staged row not settled yet is a new row, with a fresh id (also APPEND)."""
        new_id = _new_row_id(self.is_pg, f"{stage.name}.seq")
        idms = int(self.ctx.now.timestamp() * 1000)
        self._exec(
            f"UPDATE {stage.name} SET outcome = 'new', row_id = {new_id} WHERE outcome IS NULL",
            idms=idms,
        )

    def upsert_rows(self, stage: Stage) -> int:
        """Write the rows classified new or updated: a plain INSERT of the new ones, then one
        INSERT … ON CONFLICT that rewrites the updated ones.

        New rows were matched to no stored key under this run's lock (or before it, checked
        under it), so they cannot conflict; leaving ON CONFLICT off their insert spares its
        speculative insertion (PostgreSQL, a 1M-row first ingest: 29.9 s → 27.3 s). Were
        one to conflict after all, the unique index fails the run and nothing is written.
        The UPDATE arm never sets id, csv_dashboard_id or row_key, so PostgreSQL takes only
        FOR NO KEY UPDATE row locks and kiosk writes (FK checks: FOR KEY SHARE) never wait.
        """
        s = stage.name
        empty = "'{}'::jsonb" if self.is_pg else "'{}'"
        insert = (
            "INSERT INTO csv_dashboard_rows (id, csv_dashboard_id, row_key, is_dedup, row_data,"
            " supplement_data, data_hash, version_values, occurred_at, is_active,"
            " retired_at, first_run_id, last_changed_run_id, created_at, updated_at)"
            f" SELECT row_id, :dash, row_key, {'true' if self.ctx.dedup else 'false'}, row_data,"
            f" {empty}, data_hash, vjson, occurred_at, true, NULL, :run, :run,"
            f" :now, :now FROM {s}"
        )
        written = self._exec(f"{insert} WHERE outcome = 'new'")
        if not self.ctx.dedup:
            return written
        return written + self._exec(
            f"{insert} WHERE outcome = 'updated'"
            " ON CONFLICT (csv_dashboard_id, row_key) WHERE is_dedup DO UPDATE SET"
            " row_data = excluded.row_data, data_hash = excluded.data_hash,"
            " version_values = excluded.version_values,"
            " occurred_at = excluded.occurred_at,"
            " is_active = true, retired_at = NULL,"
            " last_changed_run_id = excluded.last_changed_run_id,"
            " updated_at = excluded.updated_at"
            " WHERE csv_dashboard_rows.data_hash IS DISTINCT FROM excluded.data_hash"
            " OR NOT csv_dashboard_rows.is_active"
        )

    def retire_absent(self, stages: Iterable[Stage], *, candidates: str | None = None) -> int:
        """Snapshot semantics: active rows whose key the file does not mention are retired.

        Keys of rejected and excluded rows count as mentioned: a typo in one cell must not
        retire the step (and hide its operator data). ``candidates``: a table of the only
        row ids that can be absent (:meth:`stage_absent`, filled before the lock), so the
        pass reads those rows, not the whole dashboard.
        """
        absent = " AND ".join(
            f"NOT EXISTS (SELECT 1 FROM {st.name} s WHERE s.row_key = r.row_key)" for st in stages
        )
        where = f"r.csv_dashboard_id = :dash AND r.is_dedup AND r.is_active AND {absent}"
        if candidates:
            where += f" AND r.id IN (SELECT id FROM {candidates})"
        self._exec(
            "INSERT INTO ingestion_items (run_id, source_id, csv_dashboard_id,"
            " csv_dashboard_row_id, line_number, row_key, status, update_type, reason_code,"
            " message) SELECT :run, NULL, :dash, r.id, NULL, r.row_key, 'succeeded', 'retired',"
            " 'ABSENT_FROM_SNAPSHOT',"
            " 'not in the official snapshot: retired (kept, with its operator data)'"
            f" FROM csv_dashboard_rows r WHERE {where}"
        )
        return self._exec(
            "UPDATE csv_dashboard_rows SET is_active = false, retired_at = :now,"
            " last_changed_run_id = :run, updated_at = :now"
            f" WHERE id IN (SELECT r.id FROM csv_dashboard_rows r WHERE {where})"
        )

    def flag_completion_writes(self, stage: Stage, outcomes: Sequence[str]) -> int:
        """Before the lock, with the rows matched: mark the staged rows whose source-owned
        completion differs from the stored one (none stored = not completed), so that
        :meth:`set_external_completion` under the lock reads those rows, not every row of the
        file. Only runs write these records, and the rows marker checked under the lock says
        whether one has committed since. (SQLite, 1M rows with 1% changed: the completion
        pass read every staged row under the lock, 0.6 s.)"""
        s = stage.name
        completed = "completion" if self.is_pg else "completion <> 0"
        wanted = ", ".join(f"'{o}'" for o in outcomes)
        flagged = self._exec(
            f"UPDATE {s} SET completion_write = {'true' if self.is_pg else '1'}"
            f" WHERE outcome IN ({wanted}) AND completion IS NOT NULL AND row_id IS NOT NULL"
            " AND COALESCE((SELECT e.is_completed <> "
            f"{s}.completion FROM production_schedule_external_completion e"
            f"  WHERE e.csv_dashboard_row_id = {s}.row_id), {completed})"
        )
        self.conn.exec_driver_sql(
            f"CREATE INDEX {stage.completion_writes} ON {s} (seq) WHERE completion_write"
            f"{'' if self.is_pg else ' = 1'}"
        )
        return flagged

    def set_external_completion(
        self,
        stage: Stage,
        outcomes: Sequence[str],
        *,
        completions_only: bool = False,
        flagged: bool = False,
    ) -> int:
        """Source-owned completion (official ``progress`` / appearance status codes).

        ``completions_only``: an appearance feed can report a step done (C/X) but its other
        codes do not undo what the authoritative official file said. ``flagged``: only the
        rows :meth:`flag_completion_writes` marked (it ran on these outcomes and still holds).
        """
        s = stage.name
        completed = "s.completion" if self.is_pg else "s.completion <> 0"
        wanted = ", ".join(f"'{o}'" for o in outcomes)
        only = f" AND {completed}" if completions_only else ""
        source = f"{s} s"
        if flagged:
            only += " AND s.completion_write" + ("" if self.is_pg else " = 1")
            if not self.is_pg:
                # SQLite's planner, with no statistics on the partial index, may pick the
                # outcome index and read every unchanged row under the lock instead.
                source += f" INDEXED BY {stage.completion_writes}"
        return self._exec(
            "INSERT INTO production_schedule_external_completion (csv_dashboard_row_id,"
            " csv_dashboard_id, is_completed, source_feed_id, run_id, updated_at)"
            f" SELECT s.row_id, :dash, {completed}, s.feed_id, :run, :now FROM {source}"
            f" WHERE s.outcome IN ({wanted}) AND s.completion IS NOT NULL AND s.row_id IS NOT NULL"
            f"{only}"
            # No record means "not completed": write false only over an existing true.
            f" AND ({completed} OR EXISTS (SELECT 1 FROM production_schedule_external_completion e"
            "  WHERE e.csv_dashboard_row_id = s.row_id))"
            " ON CONFLICT (csv_dashboard_row_id) DO UPDATE SET"
            " is_completed = excluded.is_completed, source_feed_id = excluded.source_feed_id,"
            " run_id = excluded.run_id, updated_at = excluded.updated_at"
            " WHERE production_schedule_external_completion.is_completed"
            " IS DISTINCT FROM excluded.is_completed"
        )

    # -- appearance supplements ----------------------------------------------------------
    def classify_supplements(self, stage: Stage) -> None:
        s = stage.name
        self._exec(
            f"UPDATE {s} SET outcome = 'excluded', reason = 'UNKNOWN_KEY',"
            " message = 'line ' || line || ': no row with this key on the dashboard'"
            " WHERE outcome IS NULL AND row_id IS NULL"
        )
        if self.is_pg:
            merged_differs = "(r.supplement_data || s.row_data) IS DISTINCT FROM r.supplement_data"
        else:
            merged_differs = (
                "json_patch(json(r.supplement_data), s.row_data) IS NOT json(r.supplement_data)"
            )
        # Only a reported completion (C/X) can change completion; no record = not completed.
        completed = "s.completion" if self.is_pg else "s.completion <> 0"
        completion_differs = (
            f"(s.completion IS NOT NULL AND {completed} AND s.completion IS DISTINCT FROM"
            " COALESCE((SELECT e.is_completed FROM production_schedule_external_completion e"
            "  WHERE e.csv_dashboard_row_id = s.row_id), false))"
        )
        self._exec(
            f"UPDATE {s} AS s SET outcome = CASE WHEN {merged_differs} OR {completion_differs}"
            " THEN 'supplemented' ELSE 'unchanged' END FROM csv_dashboard_rows r"
            " WHERE r.id = s.row_id AND s.outcome IS NULL"
        )

    def apply_supplements(self, stage: Stage) -> int:
        s = stage.name
        if self.is_pg:
            return self._exec(
                "UPDATE csv_dashboard_rows r SET supplement_data = r.supplement_data || s.row_data,"
                f" last_changed_run_id = :run, updated_at = :now FROM {s} s"
                " WHERE r.id = s.row_id AND s.outcome = 'supplemented'"
            )
        return self._exec(
            "UPDATE csv_dashboard_rows SET"
            " supplement_data = json_patch(json(csv_dashboard_rows.supplement_data), s.row_data),"
            f" last_changed_run_id = :run, updated_at = :now FROM {s} s"
            " WHERE csv_dashboard_rows.id = s.row_id AND s.outcome = 'supplemented'"
        )

    # -- ledger --------------------------------------------------------------------------
    def write_items(self, stage: Stage) -> int:
        """One ingestion_items row per staged row that changed state, was rejected or excluded."""
        return self._exec(
            "INSERT INTO ingestion_items (run_id, source_id, csv_dashboard_id,"
            " csv_dashboard_row_id, line_number, row_key, status, update_type, reason_code,"
            " message) SELECT :run, source_id, :dash, row_id, line, row_key,"
            " CASE outcome WHEN 'failed' THEN 'failed' WHEN 'excluded' THEN 'excluded'"
            " ELSE 'succeeded' END,"
            " CASE outcome WHEN 'new' THEN 'new' WHEN 'updated' THEN 'existing'"
            " WHEN 'supplemented' THEN 'supplement' ELSE NULL END,"
            f" reason, message FROM {stage.name}"
            " WHERE outcome IN ('new', 'updated', 'supplemented', 'failed', 'excluded')"
            " ORDER BY seq"  # item ids follow the file, so paging reads it in order
        )

    def outcome_counts(self, stage: Stage) -> dict[str, int]:
        rows = self.conn.exec_driver_sql(
            f"SELECT outcome, count(*) FROM {stage.name} GROUP BY outcome"
        )
        return {str(outcome): int(n) for outcome, n in rows}
