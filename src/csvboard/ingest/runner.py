"""Execute one queued run: decode → parse → validate → stage → apply, then end it in the ledger.

The run's row changes commit in one transaction at its end, together with its items, counts
and terminal transition. Everything before that (live counts, heartbeats, the detected
encoding) is committed separately and touches only the ledger. On any failure the apply
transaction is rolled back and the run ends ``failed`` with the error's code; a cancel
request seen between batches ends it ``cancelled``. Either way, nothing of the dashboard
changed.

``RunExecutor`` stages each source a block at a time (``stage.Stage``), matches and applies
(``merge.Merge``, under ``apply.lock_dashboard``); what it writes to the ledger — the claim,
the checkpoint between blocks, the terminal transition — is its base ``ledger.RunLedger``'s.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from csvboard.clock import utcnow
from csvboard.dashboards.columns import DashboardSchema
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.dashboards.service import mapping_of, schema_of
from csvboard.dashboards.vocabulary import IngestMode
from csvboard.db.engine import (
    SQLITE_IMMEDIATE,
    read_session,
)
from csvboard.ingest.apply import refresh_statistics, rows_marker
from csvboard.ingest.batches import ValidatedBlock, appearance_blocks, validated_blocks
from csvboard.ingest.decode import detect_encoding
from csvboard.ingest.errors import RunError
from csvboard.ingest.failpoints import failpoint
from csvboard.ingest.ledger import Cancelled, ProgressCallback, RunLedger, RunOutcome
from csvboard.ingest.merge import Merge, MergeContext
from csvboard.ingest.stage import (
    EXCLUDED,
    FAILED,
    NEW,
    SUPPLEMENTED,
    UNCHANGED,
    UPDATED,
    Stage,
    exclude_in_file_duplicates,
    sqlite_timestamp,
)
from csvboard.runs.models import IngestionRun, IngestionRunSource
from csvboard.runs.vocabulary import RunKind, RunStatus, TargetType
from csvboard.settings import Settings


class RunExecutor(RunLedger):
    """Runs one run to its end. Create one per run; call :meth:`execute`."""

    # -- the run ---------------------------------------------------------------------------
    def execute(self) -> RunOutcome:
        run, dashboard, sources = self._claim()
        schema = schema_of(dashboard)
        with read_session(self.engine) as session:
            feeds = {
                f.id: f
                for f in session.scalars(
                    select(CsvDashboardFeed).where(
                        CsvDashboardFeed.csv_dashboard_id == dashboard.id
                    )
                )
            }
        conn = self.engine.connect()
        pooled_cache: int | None = None  # SQLite: the connection's own cache_size, restored
        if conn.dialect.name == "sqlite":
            pooled_cache = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
            conn.exec_driver_sql(
                f"PRAGMA cache_size = -{self.settings.sqlite_run_cache_mib * 1024}"
            )
        stages: list[Stage] = []
        try:
            try:
                return self._execute(conn, run, dashboard, schema, sources, feeds, stages)
            except Cancelled:
                self._rollback(conn)
                self.log.info("run_cancelled")
                return self._end_without_commit(
                    RunStatus.CANCELLED, error_code=None, message="cancelled before commit"
                )
            except RunError as exc:
                self._rollback(conn)
                self.log.warning("run_failed", error_code=exc.code, error=exc.message)
                return self._end_without_commit(
                    RunStatus.FAILED, error_code=exc.code, message=exc.message
                )
            except SQLAlchemyError as exc:
                self._rollback(conn)
                self.log.error("run_failed_database", error=str(exc.__class__.__name__))
                return self._end_without_commit(
                    RunStatus.FAILED,
                    error_code="DATABASE_ERROR",
                    message=f"the database refused the apply ({exc.__class__.__name__});"
                    " nothing was committed",
                )
            except Exception as exc:
                self._rollback(conn)
                self.log.exception("run_failed_internal")
                return self._end_without_commit(
                    RunStatus.FAILED,
                    error_code="INTERNAL_ERROR",
                    message=f"unexpected {exc.__class__.__name__}; nothing was committed",
                )
        finally:
            for stage in stages:
                try:
                    if conn.in_transaction():
                        conn.rollback()
                    stage.drop()
                    conn.commit()
                except SQLAlchemyError:
                    conn.invalidate()
                    break
            if pooled_cache is not None and not conn.invalidated:
                try:  # the pooled connection goes back with the cache it came with
                    conn.exec_driver_sql(f"PRAGMA cache_size = {pooled_cache}")
                except SQLAlchemyError:
                    conn.invalidate()
            conn.close()

    @staticmethod
    def _rollback(conn: Any) -> None:
        if conn.in_transaction():
            conn.rollback()

    def _execute(
        self,
        conn: Any,
        run: IngestionRun,
        dashboard: CsvDashboard,
        schema: DashboardSchema,
        sources: list[IngestionRunSource],
        feeds: dict[uuid.UUID, CsvDashboardFeed],
        stages: list[Stage],
    ) -> RunOutcome:
        kind = RunKind(run.run_kind)
        official = Stage(conn, TargetType.OFFICIAL.value, len(schema.version_columns))
        appearance = Stage(conn, TargetType.APPEARANCE.value, 0)
        for stage in (official, appearance):
            stage.create()
            stages.append(stage)
        conn.commit()
        for source in sources:
            if source.role not in run.target_types:
                continue
            feed = feeds.get(source.feed_id) if source.feed_id else None
            if feed is None:
                raise RunError("FEED_MISSING", f"{source.file_name}: its feed no longer exists")
            if source.role == TargetType.OFFICIAL.value:
                self._stage_official(conn, official, source, feed, schema)
            else:
                self._stage_appearance(conn, appearance, source, feed, schema)

        merge_ctx = MergeContext(
            run_id=self.run_id,
            dashboard_id=dashboard.id,
            dedup=schema.ingest_mode == IngestMode.DEDUP,
            snapshot=kind is RunKind.OFFICIAL_INGESTION,
            now=utcnow(),
        )
        duplicates = 0
        if merge_ctx.dedup:
            duplicates += exclude_in_file_duplicates(official)
        if appearance.staged:
            duplicates += exclude_in_file_duplicates(appearance)
        for stage in stages:
            stage.index()
        conn.commit()
        # DEDUP runs match their rows to the stored ones here, before the apply lock: reading
        # stored rows and writing the staging table takes no write lock, so on SQLite the
        # lock is held only for what changes (README, "How ingestion behaves"). The rows
        # marker (committed runs, stored rows) says, under the lock, whether it still holds.
        prematched: tuple[tuple[int, int], int] | None = None
        if merge_ctx.dedup and official.staged:
            conn.begin()
            marker = rows_marker(conn, dashboard.id)
            early = Merge(conn, merge_ctx)
            stale = early.match_and_classify(official, schema.version_columns)
            if merge_ctx.snapshot:
                early.stage_absent(official)
            if schema.completion_column:
                early.flag_completion_writes(official, (NEW, UPDATED, UNCHANGED))
            official.index_outcomes()
            conn.commit()
            prematched = (marker, stale)
        self._checkpoint()

        # The apply: one transaction, on SQLite taking the write lock at BEGIN.
        if conn.dialect.name == "sqlite":
            conn.execution_options(**{SQLITE_IMMEDIATE: True})
        conn.begin()
        lock_started = time.monotonic()
        merge = Merge(conn, merge_ctx)
        merge.lock_dashboard()
        if prematched is not None and rows_marker(conn, dashboard.id) != prematched[0]:
            # Another run committed on the dashboard since the match, or retired rows were
            # purged: match again, here.
            merge.unclassify(official)
            prematched = None
            self.log.info("prematch_outdated", action="matching under the lock")
        summary: dict[str, Any] = {"duplicates_excluded": duplicates}
        if self.tally.target and self.tally.failed == self.tally.target:
            # Every row rejected: nothing to apply; the items explain why.
            for stage in stages:
                merge.write_items(stage)
            return self._finish(conn, merge_ctx, summary, success=0, lock_started=lock_started)

        retired = 0
        if official.staged:
            if prematched is not None:
                summary["stale_excluded"] = prematched[1]
            elif merge_ctx.dedup:
                summary["stale_excluded"] = merge.match_and_classify(
                    official, schema.version_columns
                )
            else:
                merge.classify_unmatched(official)
            merge.upsert_rows(official)
            if schema.completion_column:
                merge.set_external_completion(
                    official, (NEW, UPDATED, UNCHANGED), flagged=prematched is not None
                )
        if merge_ctx.snapshot and merge_ctx.dedup:
            if official.staged:
                retired = merge.retire_absent(
                    [official], candidates=official.candidates if prematched else None
                )
            else:
                summary["note"] = "empty snapshot: nothing retired"
        if appearance.staged:
            merge.match(appearance)
            merge.classify_supplements(appearance)
            merge.apply_supplements(appearance)
            merge.set_external_completion(
                appearance, (SUPPLEMENTED, UNCHANGED), completions_only=True
            )
        failpoint("apply")  # rows written, nothing committed
        for stage in stages:
            merge.write_items(stage)
        outcomes: dict[str, int] = {}
        for stage in stages:
            for outcome, n in merge.outcome_counts(stage).items():
                outcomes[outcome] = outcomes.get(outcome, 0) + n
        summary.update(
            inserted=outcomes.get(NEW, 0),
            updated=outcomes.get(UPDATED, 0),
            unchanged=outcomes.get(UNCHANGED, 0),
            supplemented=outcomes.get(SUPPLEMENTED, 0),
            excluded=outcomes.get(EXCLUDED, 0),
            rejected=outcomes.get(FAILED, 0),
            retired=retired,
        )
        success = self.tally.target - self.tally.failed
        done = self._finish(conn, merge_ctx, summary, success=success, lock_started=lock_started)
        written = sum(outcomes.get(o, 0) for o in (NEW, UPDATED, SUPPLEMENTED)) + retired
        self._refresh_statistics(conn, written)
        return done

    def _refresh_statistics(self, conn: Any, changed_rows: int) -> None:
        """After the commit: a failure leaves the statistics to autovacuum, not the run."""
        started = time.monotonic()
        try:
            analyzed = refresh_statistics(conn, changed_rows)
        except SQLAlchemyError as exc:
            self._rollback(conn)
            self.log.warning("statistics_not_refreshed", error=exc.__class__.__name__)
            return
        if analyzed:
            self.log.info(
                "statistics_refreshed", rows=changed_rows,
                seconds=round(time.monotonic() - started, 3),
            )  # fmt: skip

    def _source_path(self, source: IngestionRunSource, schema: DashboardSchema) -> tuple[Path, str]:
        """The stored copy of ``source`` and its codec (recorded on the source)."""
        if not source.stored_path or not Path(source.stored_path).is_file():
            raise RunError(
                "FILE_MISSING", f"{source.file_name}: the stored copy of the file is missing"
            )
        path = Path(source.stored_path)
        codec = detect_encoding(path, schema.encoding)
        self._record_encoding(source.id, codec)
        return path, codec

    def _stage_official(
        self,
        conn: Any,
        stage: Stage,
        source: IngestionRunSource,
        feed: CsvDashboardFeed,
        schema: DashboardSchema,
    ) -> None:
        path, codec = self._source_path(source, schema)
        instant: Callable[[datetime], str] = (
            _sqlite_text if conn.dialect.name == "sqlite" else datetime.isoformat
        )
        blocks = validated_blocks(
            path, codec, schema, file_name=source.file_name, tz=self.settings.timezone,
            instant=instant, rows=self.settings.ingest_batch_rows,
        )  # fmt: skip
        self._stage_blocks(conn, stage, source, feed, blocks)

    def _stage_appearance(
        self,
        conn: Any,
        stage: Stage,
        source: IngestionRunSource,
        feed: CsvDashboardFeed,
        schema: DashboardSchema,
    ) -> None:
        path, codec = self._source_path(source, schema)
        blocks = appearance_blocks(
            path,
            codec,
            schema,
            mapping_of(feed),
            file_name=source.file_name,
            rows=self.settings.ingest_batch_rows,
        )
        self._stage_blocks(conn, stage, source, feed, blocks)

    def _stage_blocks(
        self,
        conn: Any,
        stage: Stage,
        source: IngestionRunSource,
        feed: CsvDashboardFeed,
        blocks: Iterator[ValidatedBlock],
    ) -> None:
        """Stage one file's validated blocks (of ``ingest_batch_rows`` lines), a commit each."""
        stage.begin_source(source.id, feed.id)
        for block in blocks:
            before = self.tally.target
            self.tally.target += block.count
            self.tally.failed += block.rejected
            if before < self.settings.ingest_batch_rows // 2 <= self.tally.target:
                failpoint("parse")  # rows read and validated, none of this block staged yet
            conn.begin()
            stage.add_block(block)
            conn.commit()
            failpoint("stage")  # a batch in the staging table
            self._checkpoint()


def _sqlite_text(instant: datetime) -> str:
    return sqlite_timestamp(instant) or ""


def execute_run(
    engine: Engine,
    run_id: uuid.UUID,
    *,
    settings: Settings,
    worker_id: str,
    on_progress: ProgressCallback | None = None,
    claimed: bool = False,
    abort: threading.Event | None = None,
) -> RunOutcome:
    return RunExecutor(
        engine,
        run_id,
        settings=settings,
        worker_id=worker_id,
        on_progress=on_progress,
        claimed=claimed,
        abort=abort,
    ).execute()
