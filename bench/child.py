"""One measurement per fresh process: ``python -m bench.child '<json args>'``.

Each operation writes its result (seconds, rows, peak RSS from /proc/self/status VmHWM, …) as
JSON to ``args["out"]``; stdout/stderr are left to the code under test (structlog writes there).
``run_child`` is the parent's side.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ENCODING = "cp932"

Result = dict[str, Any]


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM), in MB; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _settings(url: str, data_dir: str) -> Any:
    from zoneinfo import ZoneInfo

    from csvboard.settings import Settings

    return Settings(
        database_url=url,
        data_dir=Path(data_dir),
        timezone=ZoneInfo("Asia/Tokyo"),
        run_timeout_seconds=7200,
    )


def op_setup(args: dict[str, Any]) -> Result:
    """Migrate a fresh database, create the dashboards and an operator token."""
    from csvboard.auth import Role, create_token
    from csvboard.dashboards.service import create_dashboard
    from csvboard.db.engine import make_engine, write_session
    from csvboard.db.migrate import upgrade_database

    upgrade_database(args["url"])
    engine = make_engine(args["url"])
    try:
        with write_session(engine) as session:
            for slug in args["slugs"]:
                create_dashboard(session, slug, preset="production-schedule")
        with write_session(engine) as session:
            token = create_token(session, "bench-operator", Role.OPERATOR)
    finally:
        engine.dispose()
    return {"token": token}


def op_csvboard(args: dict[str, Any]) -> Result:
    """Ingest files with csvboard: store + queue a run, then ``execute_run`` (timed)."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.db.engine import make_engine, write_session
    from csvboard.feeds.start import start_upload_run
    from csvboard.ingest.runner import execute_run
    from csvboard.storage import store_file

    settings = _settings(args["url"], args["data_dir"])
    engine = make_engine(args["url"])
    steps: list[Result] = []
    try:
        for step in args["steps"]:
            t0 = time.perf_counter()
            stored = store_file(settings.data_dir, Path(step["file"]))
            with write_session(engine) as session:
                dashboard = get_dashboard(session, step["slug"])
                run_id = start_upload_run(
                    session,
                    dashboard=dashboard,
                    stored=stored,
                    run_kind=step.get("kind", "official_ingestion"),
                    requested_by="bench",
                ).run_id
            t1 = time.perf_counter()
            outcome = execute_run(engine, run_id, settings=settings, worker_id="bench")
            t2 = time.perf_counter()
            steps.append(
                {
                    "slug": step["slug"],
                    "status": str(outcome.status),
                    "error": outcome.error_code,
                    "message": outcome.message,
                    "counts": {
                        "target": outcome.counts.target,
                        "success": outcome.counts.success,
                        "failed": outcome.counts.failed,
                    },
                    "summary": outcome.summary,
                    "store_seconds": t1 - t0,
                    "seconds": t2 - t1,
                    "started": t1,
                    "ended": t2,
                }
            )
    finally:
        engine.dispose()
    return {"steps": steps, "seconds": sum(s["seconds"] for s in steps)}


def op_worker(args: dict[str, Any]) -> Result:
    """Queue uploads and let a real ``Worker`` claim and execute each (``run_one``), timed
    from the queueing to the run's end: the path a file takes in production."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.db.engine import make_engine, write_session
    from csvboard.feeds.start import start_upload_run
    from csvboard.storage import store_file
    from csvboard.worker.worker import Worker

    settings = _settings(args["url"], args["data_dir"])
    engine = make_engine(args["url"])
    worker = Worker(engine, settings, poll_seconds=0.1)
    steps: list[Result] = []
    try:
        for step in args["steps"]:
            stored = store_file(settings.data_dir, Path(step["file"]))
            t0 = time.perf_counter()
            with write_session(engine) as session:
                start_upload_run(
                    session,
                    dashboard=get_dashboard(session, step["slug"]),
                    stored=stored,
                    run_kind=step["kind"],
                    requested_by="bench",
                )
            outcome = worker.run_one()
            seconds = time.perf_counter() - t0
            if outcome is None:
                raise RuntimeError("the worker found no queued run")
            steps.append(
                {
                    "kind": step["kind"],
                    "status": str(outcome.status),
                    "message": outcome.message,
                    "target": outcome.counts.target,
                    "summary": outcome.summary,
                    "seconds": seconds,
                }
            )
    finally:
        engine.dispose()
    return {"steps": steps}


def op_parse_columnar(args: dict[str, Any]) -> Result:
    """The vectorised floor: decode + the block reader + column-wise validation; no database."""
    from csvboard.dashboards.presets import production_schedule_schema
    from csvboard.ingest.batches import validated_blocks
    from csvboard.ingest.decode import detect_encoding
    from csvboard.ingest.stage import sqlite_timestamp
    from csvboard.ingest.validate import DEFAULT_TZ
    from csvboard.settings import Settings

    schema = production_schedule_schema()
    path = Path(args["file"])
    t0 = time.perf_counter()
    codec = detect_encoding(path, "auto")
    blocks = validated_blocks(
        path, codec, schema, file_name=path.name, tz=DEFAULT_TZ, instant=sqlite_timestamp,
        rows=Settings().ingest_batch_rows,
    )  # fmt: skip
    valid = sum(len(block.lines) for block in blocks)
    return {"seconds": time.perf_counter() - t0, "valid": valid}


def op_parse(args: dict[str, Any]) -> Result:
    """The floor: decode + parse + validate (RowValidator, hashes included); no database."""
    from csvboard.dashboards.presets import production_schedule_schema
    from csvboard.ingest.decode import detect_encoding, open_text
    from csvboard.ingest.parse import Record, iter_records, map_header, max_field_chars_for
    from csvboard.ingest.validate import RowValidator, ValidRow

    schema = production_schedule_schema()
    path = Path(args["file"])
    t0 = time.perf_counter()
    codec = detect_encoding(path, "auto")
    valid = 0
    with open_text(path, codec) as fh:
        records = iter_records(fh, max_field_chars_for(schema))
        header = next(records)
        assert isinstance(header, Record)
        validator = RowValidator(schema, map_header(header, schema, path.name))
        for record in records:
            if isinstance(record, Record) and isinstance(validator.validate(record), ValidRow):
                valid += 1
    return {"seconds": time.perf_counter() - t0, "valid": valid}


def _csv_width(path: Path) -> int:
    with path.open("r", encoding=ENCODING, newline="") as fh:
        return len(next(csv.reader(fh)))


def _csv_rows(path: Path) -> Iterator[list[str]]:
    with path.open("r", encoding=ENCODING, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        yield from reader


def op_copy(args: dict[str, Any]) -> Result:
    """The PostgreSQL floor: csv.reader rows COPY'd into an UNLOGGED table of text columns."""
    import psycopg

    columns = ", ".join(f"c{i} text" for i in range(_csv_width(Path(args["file"]))))
    with psycopg.connect(libpq_url(args["url"])) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_floor")
        conn.execute(f"CREATE UNLOGGED TABLE bench_copy_floor ({columns})")
        conn.commit()
        t0 = time.perf_counter()
        rows = 0
        with conn.cursor() as cur, cur.copy("COPY bench_copy_floor FROM STDIN") as copy:
            for row in _csv_rows(Path(args["file"])):
                copy.write_row(row)
                rows += 1
        conn.commit()
        seconds = time.perf_counter() - t0
        conn.execute("DROP TABLE bench_copy_floor")
        conn.commit()
    return {"seconds": seconds, "rows": rows}


def op_copy_raw(args: dict[str, Any]) -> Result:
    """The true PostgreSQL floor: the file's decoded bytes, ``COPY … (FORMAT csv)`` as they are,
    into an UNLOGGED table of text columns (no Python per row at all)."""
    import psycopg

    path = Path(args["file"])
    columns = ", ".join(f"c{i} text" for i in range(_csv_width(path)))
    with psycopg.connect(libpq_url(args["url"])) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_raw")
        conn.execute(f"CREATE UNLOGGED TABLE bench_copy_raw ({columns})")
        conn.commit()
        t0 = time.perf_counter()
        sql = "COPY bench_copy_raw FROM STDIN (FORMAT csv, HEADER true)"
        with path.open("rb") as fh, conn.cursor() as cur, cur.copy(sql) as copy:
            decoder = codecs.getincrementaldecoder(ENCODING)()
            while chunk := fh.read(1 << 20):
                copy.write(decoder.decode(chunk).encode())
        rows = conn.execute("SELECT count(*) FROM bench_copy_raw").fetchone()
        conn.commit()
        seconds = time.perf_counter() - t0
        conn.execute("DROP TABLE bench_copy_raw")
        conn.commit()
    return {"seconds": seconds, "rows": rows[0] if rows else 0}


def op_executemany(args: dict[str, Any]) -> Result:
    """The SQLite floor: the same csv.reader tuples, bare executemany into a fresh table."""
    import sqlite3

    db = Path(args["db"])
    db.unlink(missing_ok=True)
    width = _csv_width(Path(args["file"]))
    conn = sqlite3.connect(db)
    try:
        conn.execute(f"CREATE TABLE floor ({', '.join(f'c{i} text' for i in range(width))})")
        conn.commit()
        sql = f"INSERT INTO floor VALUES ({', '.join('?' * width)})"
        t0 = time.perf_counter()
        rows = 0
        batch: list[tuple[str, ...]] = []
        for row in _csv_rows(Path(args["file"])):
            batch.append(tuple(row))
            if len(batch) >= 5000:
                conn.executemany(sql, batch)
                rows += len(batch)
                batch.clear()
        conn.executemany(sql, batch)
        rows += len(batch)
        conn.commit()
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
        db.unlink(missing_ok=True)
    return {"seconds": seconds, "rows": rows}


DLT_COLUMNS = [
    "product_no", "fseiban", "fhincd", "fhinmei", "fsigencd", "fsigenmei",
    "fsigenshoyoryo", "fkojun", "progress", "updated_at", "registered_at",
]  # fmt: skip
DLT_KEY = ["fseiban", "fhincd", "fsigencd", "fkojun"]


def op_dlt(args: dict[str, Any]) -> Result:
    """The peer: dlt, write_disposition="merge" on the same key, same file."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt

    path = Path(args["file"])

    @dlt.resource(name="schedule", write_disposition="merge", primary_key=DLT_KEY)
    def schedule() -> Iterator[list[dict[str, str]]]:
        batch: list[dict[str, str]] = []
        for row in _csv_rows(path):
            batch.append(dict(zip(DLT_COLUMNS, row, strict=True)))
            if len(batch) >= 10_000:
                yield batch
                batch = []
        if batch:
            yield batch

    if args["engine"] == "postgresql":
        # dlt insists on a password; the throwaway cluster trusts loopback, so any will do.
        url = libpq_url(args["url"])
        if "@" in url and ":" not in url.split("://", 1)[1].split("@", 1)[0]:
            url = url.replace("@", ":bench@", 1)
        destination: Any = dlt.destinations.postgres(credentials=url)
    else:
        destination = dlt.destinations.sqlalchemy(credentials=f"sqlite:///{args['db']}")
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=args["pipelines_dir"],
        destination=destination,
        dataset_name="bench_dlt",
    )
    t0 = time.perf_counter()
    pipeline.run(schedule())
    return {"seconds": time.perf_counter() - t0}


def op_serve(args: dict[str, Any]) -> Result:
    """A ``csvboard serve``-like uvicorn (no in-process executor: the ingest runs elsewhere)."""
    import uvicorn

    from csvboard.app import create_app

    app = create_app(_settings(args["url"], args["data_dir"]), run_executor=False)
    uvicorn.run(app, host="127.0.0.1", port=args["port"], log_config=None, access_log=False)
    return {}


OPS: dict[str, Callable[[dict[str, Any]], Result]] = {
    "setup": op_setup,
    "csvboard": op_csvboard,
    "worker": op_worker,
    "parse": op_parse,
    "parse_columnar": op_parse_columnar,
    "copy_raw": op_copy_raw,
    "copy": op_copy,
    "executemany": op_executemany,
    "dlt": op_dlt,
    "serve": op_serve,
}


def child_command(op: str, args: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "bench.child", json.dumps({"op": op, **args})]


def run_child(op: str, args: dict[str, Any], *, out: Path, timeout: float = 7200) -> Result:
    """Run one operation in a fresh interpreter; its result plus the child's peak RSS."""
    out.unlink(missing_ok=True)
    log = out.with_suffix(".log")
    with log.open("w") as fh:
        proc = subprocess.run(
            child_command(op, {**args, "out": str(out)}),
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"bench.child {op} failed (exit {proc.returncode}):\n{tail}")
    result: Result = json.loads(out.read_text())
    return result


def main() -> None:
    args = json.loads(sys.argv[1])
    result = OPS[args["op"]](args)
    result["peak_rss_mb"] = peak_rss_mb()
    Path(args["out"]).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
