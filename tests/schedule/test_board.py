"""The kiosk board's scoped reads (csvboard.schedule.board and list_rows' scope), both engines.

A terminal works within a scope — resources and/or 製番 — and every read is checked against a
model of the rows computed here in Python from the stored rows and completion records:

- ``list_rows`` of several resources (one statement per resource, merged in Python) returns
  the very rows, in the very order and pages, that filtering every row in Python gives — on
  a schedule built so that the merge's tie-breaks matter: ties on 製番 and ProductNo across
  resources, then on 工順 (numeric), then on 品番, and finally the same four keys on several
  resources, which only the row id orders;
- the 製番 scope, and resources AND 製番 together;
- ``scoped_summary`` counts what a Python count of the scope's active steps gives (machine
  rows and retired rows excluded; completion manual OR external);
- ``resources`` and ``rows_by_id``, and each function's refusals.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from csvboard.dashboards.columns import ColumnDef, DashboardSchema
from csvboard.dashboards.models import CsvDashboard, CsvDashboardRow
from csvboard.dashboards.presets import MACHINE_PART_PREFIXES
from csvboard.dashboards.service import create_dashboard
from csvboard.errors import InvalidRequest
from csvboard.schedule import board, commands, progress, queries
from csvboard.schedule.models import (
    ProductionScheduleExternalCompletion,
    ProductionScheduleProgress,
)
from support import Harness, schedule_line

from .test_service import do, ingest, refused

# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A stored row as the model sees it: its CSV values, whether active, whether complete."""

    id: uuid.UUID
    data: dict[str, str]
    active: bool
    manual: bool
    external: bool

    @property
    def seiban(self) -> str:
        return self.data.get("FSEIBAN", "")

    @property
    def resource(self) -> str:
        return self.data.get("FSIGENCD", "")

    @property
    def hincd(self) -> str:
        return self.data.get("FHINCD", "")

    @property
    def product_no(self) -> str:
        return self.data.get("ProductNo", "")

    @property
    def hinmei(self) -> str:
        return self.data.get("FHINMEI", "")

    @property
    def completed(self) -> bool:
        return self.manual or self.external

    @property
    def machine(self) -> bool:
        return self.hincd[:2] in MACHINE_PART_PREFIXES

    @property
    def sort_key(self) -> tuple[str, str, int, str, uuid.UUID]:
        # Kiosk order: 製番, ProductNo, 工順 as a number, 品番 (byte order), then the row id
        # (UUIDs compare as their 16 bytes, as both engines order them).
        return (
            self.seiban,
            self.product_no,
            int(self.data.get("FKOJUN") or 0),
            self.hincd,
            self.id,
        )


def stored_steps(h: Harness, dashboard: CsvDashboard) -> list[Step]:
    """Every row of the dashboard, retired and machine rows included, in kiosk order."""
    with h.read() as session:
        rows = session.execute(
            select(CsvDashboardRow.id, CsvDashboardRow.row_data, CsvDashboardRow.is_active).where(
                CsvDashboardRow.csv_dashboard_id == dashboard.id
            )
        ).all()
        manual = dict(
            session.execute(
                select(
                    ProductionScheduleProgress.csv_dashboard_row_id,
                    ProductionScheduleProgress.is_completed,
                )
            ).all()
        )
        external = dict(
            session.execute(
                select(
                    ProductionScheduleExternalCompletion.csv_dashboard_row_id,
                    ProductionScheduleExternalCompletion.is_completed,
                )
            ).all()
        )
    steps = [
        Step(
            id=rid,
            data=dict(data),
            active=bool(active),
            manual=bool(manual.get(rid)),
            external=bool(external.get(rid)),
        )
        for rid, data, active in rows
    ]
    return sorted(steps, key=lambda s: s.sort_key)


def normalized(values: Iterable[str]) -> set[str]:
    return {unicodedata.normalize("NFKC", v).strip() for v in values} - {""}


def in_scope(
    step: Step,
    *,
    resources: Sequence[str] = (),
    seibans: Sequence[str] = (),
    completion: str = "all",
    include_retired: bool = False,
    include_machine_rows: bool = False,
) -> bool:
    wanted, wanted_seibans = normalized(resources), normalized(seibans)
    return (
        (include_retired or step.active)
        and (include_machine_rows or not step.machine)
        and (not wanted or step.resource in wanted)
        and (not wanted_seibans or step.seiban in wanted_seibans)
        and (completion == "all" or (completion == "complete") == step.completed)
    )


def expected_ids(steps: Sequence[Step], **scope: Any) -> list[str]:
    return [str(s.id) for s in steps if in_scope(s, **scope)]


def listed(h: Harness, dashboard: CsvDashboard, limit: int, **scope: Any) -> list[str]:
    """The ids list_rows returns, page after page with its cursor (each page exactly full)."""
    out: list[str] = []
    cursor: str | None = None
    for _ in range(10_000):
        with h.read() as session:
            page, cursor = queries.list_rows(
                session, dashboard, cursor=cursor, limit=limit, **scope
            )
        assert len(page) == limit or cursor is None, (len(page), limit)
        out.extend(r["id"] for r in page)
        if cursor is None:
            return out
    raise AssertionError("the cursor never ended")


# --- the schedule ---------------------------------------------------------------------------

SEIBANS = ("AA000001", "AA000002", "AB000001", "ab000001")  # "ab…" sorts after "AB…" (bytes)
HINCDS = ("P1", "P10", "P2", "Q")
KOJUNS = (2, 9, 10, 30, 100)  # 9 < 10 < 30 < 100 as numbers, not as text
RESOURCES = ("M01", "M02", "M03", "M04")


def product_no(si: int, hi: int) -> int:
    # Depends on 製番 and 品番 only: the same four sort keys recur on every resource (the row
    # id orders them), and within a 製番 several 品番 share a ProductNo (工順, 品番 order them).
    return 1_000_000_000 + (si + hi) % 3


def schedule_lines() -> list[str]:
    """~280 steps over 4 resources with ties on every sort key, and the 製番' machine rows."""
    lines = []
    for si, seiban in enumerate(SEIBANS):
        for hi, hincd in enumerate(HINCDS):
            for kojun in KOJUNS:
                for ri, resource in enumerate(RESOURCES):
                    if (si + 2 * hi + kojun + ri) % 7 == 0:
                        continue  # resources of uneven sizes
                    done = (si * 5 + hi * 3 + kojun + ri) % 9 == 0
                    lines.append(
                        schedule_line(
                            product_no(si, hi),
                            seiban,
                            hincd,
                            kojun,
                            resource=resource,
                            name=f"部品{hincd}",
                            progress="完了" if done else "",
                        )
                    )
    # Machine rows (not steps), on the resources of the scope; "mh…" is a step (case matters).
    lines += [
        schedule_line(1_000_000_000, s, "MH-01", 1, resource="M01", name=f"機械{s}")
        for s in SEIBANS
    ]
    lines.append(
        schedule_line(1_000_000_002, "AA000001", "SH-09", 1, resource="M02", name="新機械")
    )
    lines.append(schedule_line(1_000_000_001, "AA000002", "mh-lower", 5, resource="M03"))
    return lines


def retiring_lines() -> list[str]:
    """Steps of the first snapshot only: retired by the second."""
    return [
        schedule_line(1_000_000_000, seiban, "R9", 10, resource=resource, name="旧部品")
        for seiban in ("AA000001", "AB000001")
        for resource in RESOURCES
    ]


@dataclass
class Loaded:
    dashboard: CsvDashboard
    steps: list[Step]


@pytest.fixture
def loaded(harness: Harness) -> Loaded:
    """The schedule after two official snapshots (the second retires the R9 steps) and some
    workers' marks: complete on every 11th active step, incomplete on source-completed ones."""
    dashboard = harness.dashboard()
    ingest(harness, dashboard, [*schedule_lines(), *retiring_lines()])
    first = stored_steps(harness, dashboard)
    # A worker completed a step that then retires: it must not count anywhere.
    doomed = next(s for s in first if s.hincd == "R9" and s.resource == "M01")
    do(harness, commands.set_completion, doomed.id, "complete", by="w")
    ingest(harness, dashboard, schedule_lines())
    active = [s for s in stored_steps(harness, dashboard) if s.active and not s.machine]
    for step in active[::11]:
        do(harness, commands.set_completion, step.id, "complete", by="w")
    for step in [s for s in active if s.external][:5]:
        do(harness, commands.set_completion, step.id, "incomplete", by="w")
    steps = stored_steps(harness, dashboard)
    # The schedule has what the tests rely on.
    assert sum(1 for s in steps if not s.active) == len(retiring_lines())
    assert any(s.manual for s in steps) and any(s.external and not s.manual for s in steps)
    assert any(not s.active and s.manual for s in steps)
    assert len([s for s in steps if s.active and not s.machine]) > 250
    return Loaded(dashboard, steps)


def first_keys(step: Step) -> tuple[str, str, int, str]:
    return step.sort_key[:4]


def test_the_schedule_has_ties_on_every_sort_key(loaded: Loaded) -> None:
    """The merge is only tested if its key order matters: check the data makes it matter."""
    active = [s for s in loaded.steps if s.active and not s.machine]
    by_first: dict[tuple[str, str, int, str], set[str]] = {}
    for s in active:
        by_first.setdefault(first_keys(s), set()).add(s.resource)
    assert sum(1 for codes in by_first.values() if len(codes) >= 3) > 30  # only the id orders
    seiban_product = {(s.seiban, s.product_no) for s in active}
    assert len(seiban_product) < len({(s.seiban, s.product_no, s.sort_key[2]) for s in active})
    kojun_ties = {s.sort_key[:3] for s in active}
    assert len(kojun_ties) < len({s.sort_key[:4] for s in active})  # 品番 breaks 工順 ties


# --- list_rows: several resources (the per-resource merge) ---------------------------------


@pytest.mark.parametrize("limit", [3, 7, 64, 2000])
def test_several_resources_page_like_a_python_filter(
    harness: Harness, loaded: Loaded, limit: int
) -> None:
    # (A tiny page size costs a statement per resource and page: on all four resources only.)
    scopes = [list(RESOURCES), ["M04", "M01"], ["M02", "M03", "M04"]][: 1 if limit < 5 else 3]
    for codes in scopes:
        expected = expected_ids(loaded.steps, resources=codes)
        assert len(expected) > 100
        assert listed(harness, loaded.dashboard, limit, resources=codes) == expected, codes


def test_several_resources_with_filters(harness: Harness, loaded: Loaded) -> None:
    codes = ["M01", "M02", "Ｍ０３"]  # NFKC: a full-width code names M03
    for scope in (
        {"completion": "complete"},
        {"completion": "incomplete"},
        {"include_retired": True},
        {"include_machine_rows": True},
        {"include_retired": True, "include_machine_rows": True, "completion": "incomplete"},
    ):
        expected = expected_ids(loaded.steps, resources=codes, **scope)
        assert expected, scope
        assert listed(harness, loaded.dashboard, 9, resources=codes, **scope) == expected, scope
    # Search tokens AND with the scope.
    got = listed(harness, loaded.dashboard, 5, resources=["M01", "M04"], q="P10")
    assert got == [
        str(s.id)
        for s in loaded.steps
        if in_scope(s, resources=["M01", "M04"]) and "p10" in s.hincd.lower()
    ]
    # One resource (a single statement) and the unscoped list agree with the model too.
    assert listed(harness, loaded.dashboard, 13, resources=["M02"]) == expected_ids(
        loaded.steps, resources=["M02"]
    )
    assert listed(harness, loaded.dashboard, 2000) == expected_ids(loaded.steps)


def test_duplicate_and_unknown_codes_in_a_scope(harness: Harness, loaded: Loaded) -> None:
    expected = expected_ids(loaded.steps, resources=["M01", "M02"])
    assert listed(harness, loaded.dashboard, 11, resources=["M01", " M01 ", "M02", "M02"]) == (
        expected
    )
    # list_rows itself does not refuse a code the schedule lacks (the API's check_scope does).
    assert listed(harness, loaded.dashboard, 11, resources=["M01", "M09", "M02"]) == expected
    assert listed(harness, loaded.dashboard, 11, resources=["M09", "M08"]) == []


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    resources=st.lists(
        st.sampled_from([*RESOURCES, " M02 ", "Ｍ０３", "M09"]), min_size=0, max_size=5
    ),
    seibans=st.lists(st.sampled_from([*SEIBANS, "ＡＡ000002", "ZZ999999"]), max_size=3),
    completion=st.sampled_from(["all", "complete", "incomplete"]),
    include_retired=st.booleans(),
    include_machine_rows=st.booleans(),
    limit=st.integers(min_value=4, max_value=90),
)
def test_any_scope_pages_like_a_python_filter(
    harness: Harness,
    loaded: Loaded,
    resources: list[str],
    seibans: list[str],
    completion: str,
    include_retired: bool,
    include_machine_rows: bool,
    limit: int,
) -> None:
    scope: dict[str, Any] = {
        "resources": resources,
        "seibans": seibans,
        "completion": completion,
        "include_retired": include_retired,
        "include_machine_rows": include_machine_rows,
    }
    assert listed(harness, loaded.dashboard, limit, **scope) == expected_ids(loaded.steps, **scope)


# --- list_rows: 製番 scope -------------------------------------------------------------------


def test_seiban_scope(harness: Harness, loaded: Loaded) -> None:
    for seibans in (["AB000001"], ["ab000001", "AA000001"], ["ＡＡ000002", " AB000001 "]):
        expected = expected_ids(loaded.steps, seibans=seibans)
        assert expected
        assert listed(harness, loaded.dashboard, 17, seibans=seibans) == expected, seibans
    # 製番 match exactly: AB000001 is not ab000001.
    got = listed(harness, loaded.dashboard, 2000, seibans=["AB000001"])
    assert {s.seiban for s in loaded.steps if str(s.id) in set(got)} == {"AB000001"}
    assert listed(harness, loaded.dashboard, 50, seibans=["ZZ999999"]) == []
    # Retired steps of a 製番 only with include_retired.
    retired = listed(harness, loaded.dashboard, 50, seibans=["AA000001"], include_retired=True)
    assert retired == expected_ids(loaded.steps, seibans=["AA000001"], include_retired=True)
    assert len(retired) == len(expected_ids(loaded.steps, seibans=["AA000001"])) + 4


def test_resources_and_seibans_together(harness: Harness, loaded: Loaded) -> None:
    for resources, seibans in (
        (["M02"], ["AA000002"]),
        (["M01", "M03", "M04"], ["AA000001", "ab000001"]),
        (list(RESOURCES), list(SEIBANS)),
    ):
        expected = expected_ids(loaded.steps, resources=resources, seibans=seibans)
        assert expected
        got = listed(harness, loaded.dashboard, 6, resources=resources, seibans=seibans)
        assert got == expected, (resources, seibans)
    # AND, not OR: a 製番 with no step on the resource gives nothing.
    assert listed(harness, loaded.dashboard, 6, resources=["M09"], seibans=["AA000001"]) == []


# --- scoped_summary ---------------------------------------------------------------------------


def machine_name(steps: Sequence[Step], seiban: str) -> str | None:
    """FHINMEI of the 製番's machine row: an active one first, then the newest order."""
    machines = [s for s in steps if s.machine and s.seiban == seiban]
    machines.sort(key=lambda s: (s.hincd, s.id))
    machines.sort(key=lambda s: s.product_no, reverse=True)
    machines.sort(key=lambda s: not s.active)
    return machines[0].hinmei if machines else None


def expected_summary(
    steps: Sequence[Step], resources: Sequence[str] = (), seibans: Sequence[str] = ()
) -> dict[str, Any]:
    scope = [s for s in steps if in_scope(s, resources=resources, seibans=seibans)]
    by_resource = []
    for code in sorted({s.resource for s in scope}):
        mine = [s for s in scope if s.resource == code]
        by_resource.append(
            {
                "resource_cd": code,
                "resource_name": f"資源{code}",
                "total": len(mine),
                "completed": sum(s.completed for s in mine),
            }
        )
    by_seiban = []
    if seibans:
        for seiban in sorted({s.seiban for s in scope}):
            mine = [s for s in scope if s.seiban == seiban]
            parts: dict[str, tuple[str, str]] = {}
            for s in mine:
                if not s.completed:
                    low = parts.get(s.hinmei, (s.product_no, s.hincd))
                    parts[s.hinmei] = (min(low[0], s.product_no), min(low[1], s.hincd))
            by_seiban.append(
                {
                    "fseiban": seiban,
                    "machine_name": machine_name(steps, seiban),
                    "total": len(mine),
                    "completed": sum(s.completed for s in mine),
                    "incomplete_parts": sorted(parts, key=lambda n: (*parts[n], n)),
                }
            )
    return {
        "total": sum(r["total"] for r in by_resource),
        "completed": sum(r["completed"] for r in by_resource),
        "by_resource": by_resource,
        "by_seiban": by_seiban,
    }


def summary(h: Harness, dashboard: CsvDashboard, **scope: Any) -> dict[str, Any]:
    with h.read() as session:
        doc = board.scoped_summary(session, dashboard, **scope)
    # by_seiban's order is not specified; compare it by 製番.
    doc["by_seiban"] = sorted(doc["by_seiban"], key=lambda s: s["fseiban"])
    return doc


@pytest.mark.parametrize(
    "resources",
    [["M01"], ["M03", "M01"], list(RESOURCES), ["M02", " M02", "Ｍ０２"]],
)
def test_summary_of_a_resource_scope(
    harness: Harness, loaded: Loaded, resources: list[str]
) -> None:
    got = summary(harness, loaded.dashboard, resource_list=resources)
    assert got == expected_summary(loaded.steps, resources=resources)
    assert got["by_seiban"] == []
    assert 0 < got["completed"] < got["total"]


@pytest.mark.parametrize(
    ("seibans", "resources"),
    [
        (["AA000001"], []),
        (["AA000001", "AA000002", "ab000001"], []),
        (["ＡＢ000001", "AA000002"], ["M02", "M04"]),
        (["AA000001", "ZZ999999"], ["M01"]),
    ],
)
def test_summary_of_a_seiban_scope(
    harness: Harness, loaded: Loaded, seibans: list[str], resources: list[str]
) -> None:
    got = summary(harness, loaded.dashboard, seiban_list=seibans, resource_list=resources)
    expected = expected_summary(loaded.steps, resources=resources, seibans=seibans)
    assert got == expected
    assert {s["fseiban"] for s in got["by_seiban"]} <= normalized(seibans)
    assert all(s["incomplete_parts"] for s in got["by_seiban"])


def test_summary_counts_manual_and_external_completion_and_skips_machine_and_retired_rows(
    harness: Harness, loaded: Loaded
) -> None:
    """The exclusions, spelled out on the M01 scope (which holds machine and retired rows)."""
    m01 = [s for s in loaded.steps if s.resource == "M01"]
    assert any(s.machine and s.active for s in m01) and any(not s.active for s in m01)
    steps = [s for s in m01 if s.active and not s.machine]
    got = summary(harness, loaded.dashboard, resource_list=["M01"])
    assert (got["total"], got["completed"]) == (len(steps), sum(s.completed for s in steps))
    # One more step completed by a worker, one more by the source: both count, once each.
    todo = [s for s in steps if not s.completed]
    do(harness, commands.set_completion, todo[0].id, "complete", by="w")
    done_by_source = next(s for s in steps if s.external and not s.manual)
    do(harness, commands.set_completion, done_by_source.id, "complete", by="w")
    again = summary(harness, loaded.dashboard, resource_list=["M01"])
    assert again["completed"] == got["completed"] + 1
    assert again["total"] == got["total"]
    # Undoing a worker's mark on a step the source reports done leaves it complete.
    do(harness, commands.set_completion, done_by_source.id, "incomplete", by="w")
    assert summary(harness, loaded.dashboard, resource_list=["M01"]) == again
    assert again == expected_summary(stored_steps(harness, loaded.dashboard), resources=["M01"])


def test_summary_of_a_scope_with_nothing_active(harness: Harness) -> None:
    """A resource whose only rows are machine rows or retired rows counts nothing."""
    dashboard = harness.dashboard()
    keep = [schedule_line(1, "AA000001", "P1", 10, resource="M01")]
    ingest(
        harness,
        dashboard,
        [
            *keep,
            schedule_line(1, "AA000001", "MH-1", 1, resource="M07", name="機械"),
            schedule_line(1, "AA000009", "P9", 10, resource="M08"),
        ],
    )
    ingest(harness, dashboard, [*keep, schedule_line(1, "AA000001", "MH-1", 1, resource="M07")])
    for codes in (["M07"], ["M08"], ["M07", "M08"]):
        got = summary(harness, dashboard, resource_list=codes)
        assert got == {"total": 0, "completed": 0, "by_resource": [], "by_seiban": []}, codes
    got = summary(harness, dashboard, seiban_list=["AA000009"])
    assert got == {"total": 0, "completed": 0, "by_resource": [], "by_seiban": []}


def test_summary_refusals(harness: Harness, loaded: Loaded) -> None:
    dashboard = loaded.dashboard
    for scope in ({}, {"resource_list": [" ", ""]}, {"seiban_list": ["　"]}):
        refused(harness, InvalidRequest, "SCOPE_REQUIRED", board.scoped_summary, dashboard, **scope)
    message = refused(
        harness,
        InvalidRequest,
        "UNKNOWN_RESOURCE",
        board.scoped_summary,
        dashboard,
        resource_list=["M01", "M09"],
    )
    assert "M09" in message and "M01" not in message
    refused(
        harness,
        InvalidRequest,
        "UNKNOWN_RESOURCE",
        board.scoped_summary,
        dashboard,
        resource_list=["m01"],  # codes are matched exactly
        seiban_list=["AA000001"],
    )
    too_many = [f"X{i:02d}" for i in range(board.MAX_SCOPE_RESOURCES + 1)]
    refused(
        harness,
        InvalidRequest,
        "SCOPE_TOO_LARGE",
        board.scoped_summary,
        dashboard,
        resource_list=too_many,
    )
    refused(
        harness,
        InvalidRequest,
        "SCOPE_TOO_LARGE",
        board.scoped_summary,
        dashboard,
        seiban_list=[f"S{i:07d}" for i in range(board.MAX_SCOPE_SEIBANS + 1)],
    )
    # The limits count distinct codes: repeats of one code are one code.
    same = summary(harness, dashboard, resource_list=["M01"] * (board.MAX_SCOPE_RESOURCES + 5))
    assert same == summary(harness, dashboard, resource_list=["M01"])
    at_limit = [*SEIBANS, *(f"S{i:07d}" for i in range(board.MAX_SCOPE_SEIBANS - 4))]
    assert summary(harness, dashboard, seiban_list=at_limit) == expected_summary(
        loaded.steps, seibans=SEIBANS
    )


# --- resources --------------------------------------------------------------------------------


def resource_line(code: str, name: str, seiban: str = "AA000001", hincd: str = "P1") -> str:
    """A step on ``code`` whose FSIGENMEI is ``name`` (possibly empty)."""
    return f"1000000001,{seiban},{hincd},部品,{code},{name},1.0,10,,"


def test_resources_are_the_distinct_codes_in_order_with_names(harness: Harness) -> None:
    dashboard = harness.dashboard()
    lines = [
        resource_line("M10", "旋盤10"),
        resource_line("B02", ""),  # no name on any row
        resource_line("M10", "旋盤10", hincd="P2"),
        resource_line("m01", "小文字"),  # byte order: after every upper-case code
        resource_line("A01", ""),
        resource_line("A01", "マシニング", hincd="P2"),  # named on one of its rows
        resource_line("M2", "二号機"),
        *(resource_line("C03", "研削", seiban=f"S{i:07d}") for i in range(30)),
    ]
    ingest(harness, dashboard, lines)
    with harness.read() as session:
        got = board.resources(session, dashboard)
    assert got == [
        {"resource_cd": "A01", "resource_name": "マシニング"},
        {"resource_cd": "B02", "resource_name": None},
        {"resource_cd": "C03", "resource_name": "研削"},
        {"resource_cd": "M10", "resource_name": "旋盤10"},
        {"resource_cd": "M2", "resource_name": "二号機"},
        {"resource_cd": "m01", "resource_name": "小文字"},
    ]
    # Another dashboard's resources are not this one's.
    other = harness.dashboard("plant-2")
    ingest(harness, other, [resource_line("Z99", "他工場")])
    with harness.read() as session:
        assert [r["resource_cd"] for r in board.resources(session, dashboard)] == [
            "A01", "B02", "C03", "M10", "M2", "m01",
        ]  # fmt: skip
        assert board.resources(session, other) == [
            {"resource_cd": "Z99", "resource_name": "他工場"}
        ]
        assert board.resources(session, harness.dashboard("empty")) == []


def test_resources_of_the_loaded_schedule(harness: Harness, loaded: Loaded) -> None:
    with harness.read() as session:
        got = board.resources(session, loaded.dashboard)
    codes = sorted({s.resource for s in loaded.steps})
    assert got == [{"resource_cd": c, "resource_name": f"資源{c}"} for c in codes]


# --- rows_by_id ---------------------------------------------------------------------------------


def test_rows_by_id_returns_the_dashboards_rows_in_kiosk_order(
    harness: Harness, loaded: Loaded
) -> None:
    other = harness.dashboard("plant-2")
    ingest(harness, other, [schedule_line(1, "AA000001", "P1", 10, resource="M01")])
    foreign = stored_steps(harness, other)[0].id
    steps = loaded.steps
    retired = [s for s in steps if not s.active][:2]
    machines = [s for s in steps if s.machine][:2]
    picked = [*steps[::-7], *retired, *machines]  # scrambled, retired and machine rows included
    # Another dashboard's row, an unknown id, and repeats of asked ids are in the request too.
    ids = [foreign, uuid.uuid4(), *(s.id for s in picked), picked[0].id, picked[3].id]
    with harness.read() as session:
        got = board.rows_by_id(session, loaded.dashboard, ids)
        every = queries.list_rows(
            session, loaded.dashboard, include_retired=True, include_machine_rows=True, limit=2000
        )[0]
    wanted = {s.id for s in picked}
    assert [r["id"] for r in got] == [str(s.id) for s in steps if s.id in wanted]
    # The composed rows are the list's very rows (operator data, machine name, progress).
    composed = {r["id"]: r for r in every}
    assert got == [composed[r["id"]] for r in got]
    assert any(not r["is_active"] for r in got) and any(r["completed"] for r in got)
    with harness.read() as session:
        assert board.rows_by_id(session, loaded.dashboard, []) == []
        assert board.rows_by_id(session, loaded.dashboard, [foreign, uuid.uuid4()]) == []
        assert [r["id"] for r in board.rows_by_id(session, other, [foreign, steps[0].id])] == [
            str(foreign)
        ]


def test_rows_by_id_limit(harness: Harness, loaded: Loaded) -> None:
    ids = [s.id for s in loaded.steps]
    assert len(ids) > board.MAX_LOOKUP_IDS
    with harness.read() as session:
        assert len(board.rows_by_id(session, loaded.dashboard, ids[: board.MAX_LOOKUP_IDS])) == (
            board.MAX_LOOKUP_IDS
        )
    message = refused(
        harness,
        InvalidRequest,
        "TOO_MANY_IDS",
        board.rows_by_id,
        loaded.dashboard,
        ids[: board.MAX_LOOKUP_IDS + 1],
    )
    assert str(board.MAX_LOOKUP_IDS) in message


def test_board_reads_refuse_a_generic_dashboard(harness: Harness) -> None:
    schema = DashboardSchema(columns=(ColumnDef(name="code"),), key_columns=("code",))
    with harness.write() as session:
        generic = create_dashboard(session, "parts", schema=schema)
    for fn, args in (
        (board.resources, ()),
        (board.rows_by_id, ([uuid.uuid4()],)),
        (board.scoped_summary, ()),
    ):
        refused(harness, InvalidRequest, "NOT_A_SCHEDULE", fn, generic, *args)


def test_summary_lists_seibans_in_seiban_order(harness: Harness) -> None:
    """Like the whole-dashboard summary, whatever order the rows were written in."""
    dashboard = harness.dashboard()
    seibans = [f"S{i:07d}" for i in range(60)]
    lines = [
        schedule_line(1, s, f"P{n}", 10, resource=f"M0{n % 4}")
        for s in reversed(seibans)
        for n in range(20)
    ]
    ingest(harness, dashboard, lines)  # written in reverse 製番 order
    scope = seibans[::5]
    with harness.read() as session:
        whole = progress.progress_summary(session, dashboard)
        scoped = board.scoped_summary(session, dashboard, seiban_list=scope[::-1])
    assert [s["fseiban"] for s in whole["by_seiban"]] == seibans
    assert [s["fseiban"] for s in scoped["by_seiban"]] == scope


# --- a search without a scope: its matches found in the resource index --------------------


@pytest.mark.parametrize(
    "q",
    [
        "AA000001",  # a 製番 exactly (and 品番/ProductNo partly)
        "ab000001,AA000002",  # ASCII letters in either case; two tokens OR-ed
        "1",  # digits: ProductNo / 品番 partly, many matches
        "10",
        "000000",  # no 製番 has it whole, some ProductNo partly
    ],
)
def test_search_by_id_pages_exactly_like_the_scan_in_kiosk_order(
    harness: Harness, loaded: Loaded, monkeypatch: pytest.MonkeyPatch, q: str
) -> None:
    """_searched_ids (matches read from the resource index, then fetched by id) and the plain
    walk in kiosk order it replaces for few matches give the same pages, cursor and all."""
    by_id = {
        limit: listed(harness, loaded.dashboard, limit, q=q, completion=completion)
        for limit in (3, 50)
        for completion in ("all",)
    }
    monkeypatch.setattr(queries, "MAX_SEARCH_IDS", 0)  # every search takes the plain walk
    for limit, ids in by_id.items():
        assert ids == listed(harness, loaded.dashboard, limit, q=q, completion="all"), limit
    assert by_id[50], q  # the search found something


def test_a_text_search_or_a_scoped_one_does_not_read_ids_first(
    harness: Harness, loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """品名 is in no index, and a scope's index range is already small: both page directly."""
    calls: list[object] = []
    real = queries._searched_ids

    def spy(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(result)
        return result

    monkeypatch.setattr(queries, "_searched_ids", spy)
    for scope in ({"q": "部品"}, {"q": "AA000001", "resources": ["M01"]}, {"q": "AA000001"}):
        with harness.read() as session:
            queries.list_rows(session, loaded.dashboard, limit=10, **scope)  # type: ignore[arg-type]
    assert calls[0] is None and calls[1] is None
    assert isinstance(calls[2], list) and calls[2]
