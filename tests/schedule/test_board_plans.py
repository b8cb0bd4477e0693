"""Both engines' plans of what a kiosk board reads: never a scan of the dashboard's rows.

A board works within a scope (a resource or a few, or registered 製番), and each of its reads
must touch only that scope's range of an index (migrations 0004 and 0006) — at 60,000 steps a
read of every row of the dashboard is what the scope exists to avoid. This test records the
SQL the service really executes (the engine's ``before_cursor_execute`` event, with its
parameters), then asks each engine for its plan of every statement that reads
``csv_dashboard_rows``:

- SQLite (``EXPLAIN QUERY PLAN``): no ``SCAN`` of the rows, and no ``SEARCH`` whose only
  constraint is ``csv_dashboard_id=?`` (every row of the dashboard). The one exception is the
  anchor of ``board.resources``' recursive skip scan, ``min(resource)`` of the dashboard,
  which SQLite answers with one probe — checked by counting the statement's VM steps, which
  must not grow with the dashboard.
- PostgreSQL (``EXPLAIN (ANALYZE, FORMAT JSON)``, after ``ANALYZE``, with sequential scans
  allowed: the plan must be right with real statistics): no ``Seq Scan`` on the rows, and no
  index scan whose ``Index Cond`` constrains ``csv_dashboard_id`` alone (or nothing).

The schedule is shaped like an ERP export: 4,200 steps of 100 製番 on 7 resources, written in
resource order (so the rows of a resource are together on disk), 100 machine rows, 100
retired steps (4,400 rows), completions by workers and by the source.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard
from csvboard.schedule import board, cards, commands, order_board, queries, seibans
from support import Harness, schedule_line

from .test_service import do, ingest

RESOURCES = [f"M{i:02d}" for i in range(1, 8)]
SEIBANS = [f"S{i:07d}" for i in range(100)]
SCOPE_SEIBANS = SEIBANS[3::5]  # 20 製番, spread over the schedule
PAGE = 50  # the kiosk's page size (kiosk.js PAGE_SIZE)
ROWS_TABLE = "csv_dashboard_rows"
ROW_ALIASES = (ROWS_TABLE, "machine")  # the machine-name subquery's alias of the rows table

# Plans PostgreSQL gets wrong today (see the report in test_board_reads_use_their_scope):
# LIMIT 1 look-ups of "some row of this resource" that PostgreSQL answers with a sequential
# scan stopping at the first match. With the rows of a resource together on disk (an export
# sorted by resource), the first match of the last resource comes after every other
# resource's rows — and a resource with no FSIGENMEI on any row reads the whole dashboard.
KNOWN_BAD_ON_POSTGRESQL: dict[str, re.Pattern[str]] = {}


# --- the schedule ---------------------------------------------------------------------------


def schedule_lines(*, with_retiring: bool) -> list[str]:
    lines = []
    for r, resource in enumerate(RESOURCES):  # resource order, as exports usually are
        for s, seiban in enumerate(SEIBANS):
            for n in range(6):
                hincd = f"P{s % 10}{n // 2}"
                lines.append(
                    schedule_line(
                        1_000_000_000 + 3 * s + n // 2,
                        seiban,
                        hincd,
                        10 * (r + 1) + n % 2,
                        resource=resource,
                        name=f"部品{hincd}",
                        progress="完了" if (s + n + r) % 10 == 0 else "",
                    )
                )
        if with_retiring:
            lines += [
                schedule_line(1_000_000_999, seiban, "OLD", 99, resource=resource)
                for seiban in SEIBANS[r::7][:29]
            ]
    lines += [
        schedule_line(1_000_000_000, seiban, "MH-0001", 1, resource="M01", name=f"機械{seiban}")
        for seiban in SEIBANS
    ]
    return lines


@pytest.fixture
def schedule(harness: Harness) -> CsvDashboard:
    dashboard = harness.dashboard()
    ingest(harness, dashboard, schedule_lines(with_retiring=True))
    ingest(harness, dashboard, schedule_lines(with_retiring=False))  # retires the OLD steps
    with harness.read() as session:
        page, _ = queries.list_rows(session, dashboard, limit=2000)
    for row in page[::40]:
        do(harness, commands.set_completion, row["id"], "complete", by="w")
    if harness.engine.dialect.name == "postgresql":
        with harness.engine.begin() as conn:
            conn.execute(text("ANALYZE"))  # as autovacuum would have
    return dashboard


# --- recording and explaining -------------------------------------------------------------------


@dataclass
class Executed:
    query: str
    statement: str
    parameters: Any
    plan: str = ""
    nodes: list[dict[str, Any]] = field(default_factory=list)  # PostgreSQL's plan nodes
    problems: list[str] = field(default_factory=list)
    known: str | None = None


@contextmanager
def recorded(h: Harness) -> Iterator[list[tuple[str, Any]]]:
    """The statements (with their parameters) run on the engine meanwhile."""
    seen: list[tuple[str, Any]] = []

    def record(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seen.append((statement, parameters))

    event.listen(h.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(h.engine, "before_cursor_execute", record)


def reads_rows(statement: str) -> bool:
    head = statement.lstrip().upper()
    return head.startswith(("SELECT", "WITH")) and ROWS_TABLE in statement


def dashboard_only(condition: str) -> bool:
    """An index condition that constrains nothing but the dashboard (or nothing at all)."""
    rest = re.sub(r"(\w+\.)?csv_dashboard_id = '[0-9a-f-]{36}'::uuid", "", condition)
    return re.sub(r"[()\s]|\bAND\b", "", rest) == ""


def sqlite_explain(conn: Connection, e: Executed) -> None:
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + e.statement, e.parameters).all()
    details = {int(r[0]): str(r[3]) for r in rows}
    e.plan = "\n".join(f"{r[0]:>4} {r[1]:>4}  {r[3]}" for r in rows)
    aliases = "|".join(ROW_ALIASES)
    for _node, parent, _, detail in rows:
        if re.match(rf"SCAN ({aliases})\b", detail):
            e.problems.append(detail)
        elif re.match(rf"SEARCH ({aliases}) .*\(csv_dashboard_id=\?\)$", detail):
            # The anchor of the resources' skip scan: min(resource) of the dashboard, one
            # probe of the resource index (VM steps counted in the test).
            # Likewise the anchor of 進捗一覧's walk of the distinct 製番 (``cards``).
            walks = ("WITH RECURSIVE codes", "WITH RECURSIVE seibans")
            anchor = any(w in e.statement for w in walks) and details.get(parent) == "SETUP"
            if not anchor:
                e.problems.append(detail)


def pg_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from pg_nodes(child)


def pg_explain(conn: Connection, e: Executed) -> None:
    raw = conn.exec_driver_sql(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + e.statement, e.parameters
    ).scalar_one()
    doc = raw if isinstance(raw, list) else json.loads(raw)
    root = doc[0]["Plan"]
    e.plan = "\n".join(
        str(r[0])
        for r in conn.exec_driver_sql("EXPLAIN ANALYZE " + e.statement, e.parameters).all()
    )
    e.nodes = list(pg_nodes(root))
    for node in e.nodes:
        kind = node["Node Type"]
        on_rows = node.get("Relation Name") == ROWS_TABLE
        if on_rows and kind == "Seq Scan":
            e.problems.append(f"Seq Scan on {ROWS_TABLE} (Filter: {node.get('Filter')})")
        scans: list[dict[str, Any]] = []
        if on_rows and kind in ("Index Scan", "Index Only Scan"):
            scans = [node]
        elif on_rows and kind == "Bitmap Heap Scan":
            scans = [n for n in pg_nodes(node) if n["Node Type"] == "Bitmap Index Scan"]
        for scan in scans:
            condition = scan.get("Index Cond", "")
            if dashboard_only(condition):
                e.problems.append(
                    f"{scan['Node Type']} using {scan.get('Index Name')} with Index Cond"
                    f" {condition or '(none)'}: every row of the dashboard"
                )


def explain(h: Harness, query: str, statements: list[tuple[str, Any]]) -> list[Executed]:
    out = [Executed(query, s, p) for s, p in statements if reads_rows(s)]
    pg = h.engine.dialect.name == "postgresql"
    with h.engine.connect() as conn:
        for e in out:
            (pg_explain if pg else sqlite_explain)(conn, e)
            if pg:
                e.known = next(
                    (k for k, pattern in KNOWN_BAD_ON_POSTGRESQL.items()
                     if pattern.search(e.statement)),
                    None,
                )  # fmt: skip
    return out


def sqlite_vm_steps(h: Harness, statement: str, parameters: Any) -> int:
    """How many SQLite VM instructions the statement takes (in units of 10)."""
    raw = h.engine.raw_connection()
    try:
        steps = [0]

        def tick() -> int:
            steps[0] += 1
            return 0

        raw.driver_connection.set_progress_handler(tick, 10)  # type: ignore[union-attr]
        raw.cursor().execute(statement, parameters).fetchall()
        return steps[0] * 10
    finally:
        raw.close()


# --- the test ---------------------------------------------------------------------------------


def board_reads(dashboard: CsvDashboard) -> dict[str, Callable[[Session], Any]]:
    """What a kiosk's requests run, as the API runs them (scope check, then the read)."""

    def listed(resources: list[str], seiban_list: list[str]) -> Callable[[Session], Any]:
        def read(session: Session) -> None:
            wanted, chosen = board.check_scope(session, dashboard, resources, seiban_list)
            scope = {"resources": wanted, "seibans": chosen, "limit": PAGE}
            _, cursor = queries.list_rows(session, dashboard, **scope)
            assert cursor is not None
            queries.list_rows(session, dashboard, cursor=cursor, **scope)  # and its next page

        return read

    return {
        "list_rows, one resource": listed(["M04"], []),
        "list_rows, three resources": listed(["M02", "M04", "M06"], []),
        "list_rows, 20 製番": listed([], SCOPE_SEIBANS),
        "scoped_summary, one resource": lambda s: board.scoped_summary(
            s, dashboard, resource_list=["M05"]
        ),
        "scoped_summary, 20 製番": lambda s: board.scoped_summary(
            s, dashboard, seiban_list=SCOPE_SEIBANS
        ),
        "resources": lambda s: board.resources(s, dashboard),
        "進捗一覧: cards of 20 製番": lambda s: cards.seiban_cards(
            s, dashboard, seibans=SCOPE_SEIBANS
        ),
        "進捗一覧: the first cards of all 製番": lambda s: cards.seiban_cards(s, dashboard),
        "順位ボード: a resource's column": lambda s: order_board.order_column(s, dashboard, "M04"),
        "seibans: are they known (PUT /seibans)": lambda s: seibans.unknown_seibans(
            s, dashboard, SCOPE_SEIBANS
        ),
    }


def rows_removed(e: Executed) -> int:
    """Rows PostgreSQL read and threw away (its plan's "Rows Removed by Filter")."""
    return sum(int(n.get("Rows Removed by Filter", 0)) for n in e.nodes)


def report(executed: list[Executed]) -> str:
    return "\n\n".join(
        f"[{e.query}] {'; '.join(e.problems)}\n--- SQL:\n{e.statement}\n--- plan:\n{e.plan}"
        for e in executed
    )


def test_board_reads_use_their_scope(harness: Harness, schedule: CsvDashboard) -> None:
    executed: list[Executed] = []
    for query, read in board_reads(schedule).items():
        with harness.read() as session, recorded(harness) as seen:
            read(session)
        assert any(reads_rows(s) for s, _ in seen), query
        executed += explain(harness, query, seen)
    # The poll: the rows of the board's first page of one resource, re-read by id.
    with harness.read() as session:
        page, _ = queries.list_rows(session, schedule, resources=["M04"], limit=PAGE)
    with harness.read() as session, recorded(harness) as seen:
        ids = [uuid.UUID(r["id"]) for r in page]
        assert len(board.rows_by_id(session, schedule, ids)) == PAGE
    executed += explain(harness, "rows_by_id (a page of one resource)", seen)

    for e in executed:  # with -s: every plan, to read them
        print(f"\n===== {e.query}\n{e.statement}\n{e.plan}")

    unexpected = [e for e in executed if e.problems and not e.known]
    assert not unexpected, "plans reading every row of the dashboard:\n\n" + report(unexpected)

    # The resources' skip scan is one probe of the resource index per resource.
    (cte,) = [e for e in executed if "WITH RECURSIVE codes" in e.statement]
    if harness.engine.dialect.name == "sqlite":
        # Its VM steps: fewer than the dashboard's 4,400 rows (reading them takes many per row).
        assert sqlite_vm_steps(harness, cte.statement, cte.parameters) < 4_000
    else:
        probes = [n for n in cte.nodes if n.get("Relation Name") == ROWS_TABLE]
        assert probes and all(n["Actual Rows"] <= 1 for n in probes), cte.plan

    known = [e for e in executed if e.known]
    bad = [e for e in known if e.problems]
    fixed = sorted({e.known for e in known} - {e.known for e in bad if e.known})
    assert not fixed, f"no longer a bad plan on PostgreSQL: {fixed}; drop them from KNOWN_BAD"
    if bad:
        pytest.xfail(
            "src: PostgreSQL plans LIMIT 1 look-ups of a resource's rows as a sequential scan"
            f" ({', '.join(sorted({e.known for e in bad if e.known}))}):\n\n"
            + report(sorted(bad, key=rows_removed, reverse=True)[:2])
        )
