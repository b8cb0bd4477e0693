"""The dashboards HTTP API: dashboards, feeds and rows, through the real app on both engines.

Every request goes through the real middleware (bearer tokens, roles), routers and problem
handlers over a migrated database of each engine (``db_url``); rows come from the real
ingestion engine (``api.harness.ingest``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from csvboard.errors import InvalidRequest
from csvboard.feeds.cron import validate_cron
from csvboard.runs.vocabulary import RunStatus
from support import SCHEDULE_HEADER, Api, schedule_line

BASE = "/api/v1/dashboards"
PROBLEM = "application/problem+json"

GENERIC_COLUMNS: list[dict[str, Any]] = [
    {"name": "code", "aliases": ["コード"], "required": True},
    {"name": "label"},
    {"name": "qty", "type": "int"},
]


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert a problem+json response of this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    for field in ("type", "title", "detail", "instance", "trace_id"):
        assert isinstance(body[field], str)
    return body


def create_generic(api: Api, slug: str = "parts", **extra: Any) -> dict[str, Any]:
    body = {"slug": slug, "columns": GENERIC_COLUMNS, "key_columns": ["code"], **extra}
    response = api.post(BASE, json=body)
    assert response.status_code == 201, response.text
    doc: dict[str, Any] = response.json()
    return doc


def generic_csv(rows: list[tuple[str, str, int]]) -> str:
    return "code,label,qty\n" + "".join(f"{c},{label},{q}\n" for c, label, q in rows)


def ingest(api: Api, slug: str, text: str, *, kind: str = "official_ingestion") -> None:
    from csvboard.dashboards.service import get_dashboard

    with api.harness.read() as session:
        dashboard = get_dashboard(session, slug)
    outcome = api.harness.ingest(dashboard, text, kind=kind)
    assert outcome.status is RunStatus.SUCCEEDED, outcome


def all_rows(api: Api, slug: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        response = api.get(f"{BASE}/{slug}/rows", params=query, as_="viewer")
        assert response.status_code == 200, response.text
        page = response.json()
        out.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


# --- dashboards ---------------------------------------------------------------------------


def test_create_from_the_preset_then_read_and_list(api: Api) -> None:
    response = api.post(
        BASE,
        json={
            "slug": "production-schedule",
            "name": "生産スケジュール",
            "preset": "production-schedule",
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["slug"] == "production-schedule"
    assert created["name"] == "生産スケジュール"
    assert created["kind"] == "production_schedule"
    assert created["ingest_mode"] == "DEDUP"
    assert created["key_columns"] == ["FSEIBAN", "FHINCD", "FSIGENCD", "FKOJUN"]
    assert created["version_columns"] == ["ProductNo", "updatedAt"]
    assert created["processing_types"] == ["塗装", "カニゼン", "LSLH", "その他01", "その他02"]
    assert [c["name"] for c in created["columns"]][:2] == ["ProductNo", "FSEIBAN"]
    assert created["active_rows"] == 0 and created["retired_rows"] == 0
    uuid.UUID(created["id"])

    one = api.get(f"{BASE}/production-schedule", as_="viewer")
    assert one.status_code == 200
    assert one.json() == created
    by_id = api.get(f"{BASE}/{created['id']}", as_="viewer")
    assert by_id.status_code == 200 and by_id.json()["slug"] == "production-schedule"

    create_generic(api, "another")
    listed = api.get(BASE, as_="viewer")
    assert listed.status_code == 200
    assert [d["slug"] for d in listed.json()["items"]] == ["another", "production-schedule"]

    feeds = api.get(f"{BASE}/production-schedule/feeds", as_="viewer").json()["items"]
    assert {(f["name"], f["role"], f["source"]) for f in feeds} == {
        ("upload", "official", "upload"),
        ("status-report", "appearance", "upload"),
    }


def test_create_from_columns(api: Api) -> None:
    created = create_generic(api, "parts", name="Parts", encoding="utf-8")
    assert created["kind"] == "generic"
    assert created["encoding"] == "utf-8"
    assert created["processing_types"] is None
    assert created["columns"][0]["aliases"] == ["コード"]
    assert created["columns"][2]["type"] == "int"

    log = api.post(
        BASE,
        json={"slug": "log", "columns": [{"name": "msg"}], "ingest_mode": "APPEND"},
    )
    assert log.status_code == 201, log.text
    assert log.json()["ingest_mode"] == "APPEND" and log.json()["key_columns"] == []


def test_a_taken_slug_is_409(api: Api) -> None:
    create_generic(api, "parts")
    body = {"slug": "parts", "columns": GENERIC_COLUMNS, "key_columns": ["code"]}
    problem(api.post(BASE, json=body), 409, "DASHBOARD_EXISTS")
    preset = {"slug": "parts", "preset": "production-schedule"}
    problem(api.post(BASE, json=preset), 409, "DASHBOARD_EXISTS")


def test_an_invalid_schema_is_400_with_field_errors(api: Api) -> None:
    unknown_key = {"slug": "x", "columns": GENERIC_COLUMNS, "key_columns": ["nope"]}
    body = problem(api.post(BASE, json=unknown_key), 400, "VALIDATION_FAILED")
    assert body["errors"] and "nope" in body["errors"][0]["message"]
    assert body["errors"][0]["location"] == "body"

    no_keys = {"slug": "x", "columns": GENERIC_COLUMNS}
    body = problem(api.post(BASE, json=no_keys), 400, "VALIDATION_FAILED")
    assert "key column" in body["errors"][0]["message"]

    text_version = {
        "slug": "x",
        "columns": GENERIC_COLUMNS,
        "key_columns": ["code"],
        "version_columns": ["label"],
    }
    problem(api.post(BASE, json=text_version), 400, "VALIDATION_FAILED")

    bad_regex = {"slug": "x", "columns": [{"name": "a", "pattern": "("}], "key_columns": ["a"]}
    body = problem(api.post(BASE, json=bad_regex), 400, "VALIDATION_FAILED")
    assert body["errors"][0]["field"].startswith("columns.0")

    bad_type = {"slug": "x", "columns": [{"name": "a", "type": "money"}], "key_columns": ["a"]}
    problem(api.post(BASE, json=bad_type), 400, "VALIDATION_FAILED")

    bad_slug = {"slug": "Not A Slug", "preset": "production-schedule"}
    body = problem(api.post(BASE, json=bad_slug), 400, "VALIDATION_FAILED")
    assert body["errors"][0]["field"] == "slug"

    unknown_field = {"slug": "x", "preset": "production-schedule", "colour": "red"}
    problem(api.post(BASE, json=unknown_field), 400, "VALIDATION_FAILED")

    both = {"slug": "x", "preset": "production-schedule", "columns": GENERIC_COLUMNS}
    problem(api.post(BASE, json=both), 400, "PRESET_OR_COLUMNS")
    problem(api.post(BASE, json={"slug": "x"}), 400, "SCHEMA_REQUIRED")
    problem(api.post(BASE, json={"slug": "x", "preset": "other"}), 400, "VALIDATION_FAILED")
    problem(
        api.post(BASE, content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "VALIDATION_FAILED",
    )
    assert api.get(BASE, as_="viewer").json()["items"] == []


def test_roles_and_authentication(api: Api) -> None:
    create_generic(api, "parts")
    body = {"slug": "other", "preset": "production-schedule"}
    problem(api.post(BASE, json=body, as_=None), 401, "UNAUTHENTICATED")
    problem(api.post(BASE, json=body, as_="viewer"), 403, "FORBIDDEN")
    problem(api.post(BASE, json=body, as_="operator"), 403, "FORBIDDEN")
    problem(api.post(BASE, json=body, as_="not-a-token"), 401, "UNAUTHENTICATED")
    # The role is checked before the body is read: a malformed body from a viewer is a 403.
    problem(api.post(BASE, content=b"{", as_="viewer"), 403, "FORBIDDEN")
    problem(api.patch(f"{BASE}/parts", json={"name": "x"}, as_="operator"), 403, "FORBIDDEN")
    feed = {"name": "f", "role": "official", "source": "folder", "location": "/srv/in"}
    problem(api.post(f"{BASE}/parts/feeds", json=feed, as_="operator"), 403, "FORBIDDEN")
    for path in (BASE, f"{BASE}/parts", f"{BASE}/parts/feeds", f"{BASE}/parts/rows"):
        problem(api.get(path, as_=None), 401, "UNAUTHENTICATED")
        for role in ("viewer", "operator", "admin"):
            assert api.get(path, as_=role).status_code == 200, (path, role)


def test_unknown_dashboards_are_404(api: Api) -> None:
    problem(api.get(f"{BASE}/nope", as_="viewer"), 404, "DASHBOARD_NOT_FOUND")
    problem(api.patch(f"{BASE}/nope", json={"name": "x"}), 404, "DASHBOARD_NOT_FOUND")
    problem(api.get(f"{BASE}/nope/feeds", as_="viewer"), 404, "DASHBOARD_NOT_FOUND")
    feed = {"name": "f", "role": "official", "source": "folder", "location": "/srv/in"}
    problem(api.post(f"{BASE}/nope/feeds", json=feed), 404, "DASHBOARD_NOT_FOUND")
    problem(api.get(f"{BASE}/nope/rows", as_="viewer"), 404, "DASHBOARD_NOT_FOUND")
    # 400 before 404.
    problem(api.get(f"{BASE}/nope/rows?limit=0", as_="viewer"), 400, "INVALID_LIMIT")
    problem(api.patch(f"{BASE}/nope", json={"name": ""}), 400, "VALIDATION_FAILED")


def test_update_name_encoding_and_processing_types(api: Api) -> None:
    created = api.post(BASE, json={"slug": "ps", "preset": "production-schedule"}).json()
    response = api.patch(
        f"{BASE}/ps",
        json={"name": "第一工場", "encoding": "cp932", "processing_types": ["塗装", " メッキ "]},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "第一工場"
    assert updated["encoding"] == "cp932"
    assert updated["processing_types"] == ["塗装", "メッキ"]
    assert updated["updated_at"] > created["updated_at"]
    assert updated["created_at"] == created["created_at"]
    assert api.get(f"{BASE}/ps", as_="viewer").json() == updated

    # Nothing to change: nothing changes, not even updated_at.
    again = api.patch(f"{BASE}/ps", json={"name": "第一工場"}).json()
    assert again["updated_at"] == updated["updated_at"]
    assert api.patch(f"{BASE}/ps", json={}).json() == updated

    problem(api.patch(f"{BASE}/ps", json={"processing_types": []}), 400, "VALIDATION_FAILED")
    problem(
        api.patch(f"{BASE}/ps", json={"processing_types": ["A", "A"]}),
        400,
        "INVALID_PROCESSING_TYPES",
    )
    problem(api.patch(f"{BASE}/ps", json={"encoding": "latin-1"}), 400, "VALIDATION_FAILED")
    problem(api.patch(f"{BASE}/ps", json={"key_columns": ["FSEIBAN"]}), 400, "SCHEMA_FIXED")
    # Resending the preset's own keys is not a change.
    same = api.patch(f"{BASE}/ps", json={"key_columns": updated["key_columns"]})
    assert same.status_code == 200

    create_generic(api, "parts")
    problem(api.patch(f"{BASE}/parts", json={"processing_types": ["x"]}), 400, "NOT_A_SCHEDULE")


DEFAULTS = {"retention_file_days": 90, "retention_ledger_days": 400,
            "retention_retired_row_days": 365}  # fmt: skip


def test_operations_are_set_and_cleared_per_setting(api: Api) -> None:
    created = api.post(BASE, json={"slug": "ps", "preset": "production-schedule"}).json()
    assert created["operations"] == {
        "retry_manual_runs": False, "retention_file_days": None, "retention_ledger_days": None,
        "retention_retired_row_days": None, "effective": DEFAULTS,
    }  # fmt: skip
    response = api.patch(
        f"{BASE}/ps", json={"operations": {"retry_manual_runs": True, "retention_file_days": 30}}
    )
    assert response.status_code == 200, response.text
    ops = response.json()["operations"]
    assert (ops["retry_manual_runs"], ops["retention_file_days"]) == (True, 30)
    assert ops["retention_ledger_days"] is None
    assert ops["effective"] == {**DEFAULTS, "retention_file_days": 30}
    assert response.json()["updated_at"] > created["updated_at"]
    assert api.get(f"{BASE}/ps", as_="viewer").json() == response.json()

    # Absent settings stay; an explicit null goes back to the default.
    ops = api.patch(
        f"{BASE}/ps", json={"operations": {"retention_file_days": None, "retention_ledger_days": 7}}
    ).json()["operations"]
    assert (ops["retry_manual_runs"], ops["retention_file_days"]) == (True, None)
    assert ops["effective"] == {**DEFAULTS, "retention_ledger_days": 7}
    ops = api.patch(f"{BASE}/ps", json={"operations": {"retry_manual_runs": None}}).json()
    assert ops["operations"]["retry_manual_runs"] is False
    assert ops["operations"]["retention_ledger_days"] == 7
    listed = api.get(BASE, as_="viewer").json()["items"]
    assert [d["operations"] for d in listed] == [ops["operations"]]

    assert api.patch(f"{BASE}/ps", json={"operations": {}}, as_="operator").status_code == 403


@pytest.mark.parametrize(
    "setting",
    [
        {"retention_file_days": 0},
        {"retention_ledger_days": -1},
        {"retention_retired_row_days": 36501},
        {"retention_file_days": True},
        {"retention_file_days": 1.5},
        {"retry_manual_runs": "sometimes"},
        {"retention_days": 7},
    ],
)
def test_a_bad_operations_setting_is_400_and_changes_nothing(
    api: Api, setting: dict[str, Any]
) -> None:
    api.post(BASE, json={"slug": "ps", "preset": "production-schedule"})
    before = api.patch(f"{BASE}/ps", json={"operations": {"retention_ledger_days": 10}}).json()
    # A good change beside the bad one is refused with it.
    body = {"name": "renamed", "operations": {"retention_ledger_days": 20, **setting}}
    refused = problem(api.patch(f"{BASE}/ps", json=body), 400, "VALIDATION_FAILED")
    (error,) = refused["errors"]
    (name,) = setting
    assert error["field"] == f"operations.{name}", refused
    if (
        name.startswith("retention_")
        and isinstance(setting[name], int)
        and name != "retention_days"
    ):
        assert "from 1 to 36500" in error["message"] and str(setting[name]) in error["message"]
    assert api.get(f"{BASE}/ps", as_="viewer").json() == before


def test_the_service_refuses_a_bad_setting_too(api: Api) -> None:
    """Callers other than the API (the CLI, scripts) get the same rule from the domain."""
    from csvboard.dashboards.service import update_dashboard

    api.post(BASE, json={"slug": "ps", "preset": "production-schedule"})
    with pytest.raises(InvalidRequest) as refused, api.harness.write() as session:
        update_dashboard(
            session, "ps", name="renamed", encoding=None, new_processing_types=None,
            columns=None, key_columns=None, version_columns=None, ingest_mode=None,
            operations={"retention_file_days": 0},
        )  # fmt: skip
    assert refused.value.code == "INVALID_OPERATIONS"
    assert "operations.retention_file_days must be a whole number of days from 1 to 36500" in (
        refused.value.message
    )
    assert api.get(f"{BASE}/ps", as_="viewer").json()["name"] != "renamed"


@pytest.mark.parametrize(
    "column, value",
    [("retention_file_days", 0), ("retention_ledger_days", -5),
     ("retention_retired_row_days", 36501)],
)  # fmt: skip
def test_the_database_refuses_a_bad_retention(api: Api, column: str, value: int) -> None:
    """The rule is the database's too (a CHECK on each engine), not only the API's."""
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from csvboard.dashboards.models import CsvDashboard

    api.post(BASE, json={"slug": "ps", "preset": "production-schedule"})
    with pytest.raises(IntegrityError) as refused, api.harness.write() as session:
        session.execute(update(CsvDashboard).values({column: value}))
    assert f"ck_csv_dashboards_{column}_range" in str(refused.value)
    with api.harness.write() as session:  # the bounds themselves are allowed
        session.execute(update(CsvDashboard).values({column: 1}))
        session.execute(update(CsvDashboard).values({column: 36500}))
        session.execute(update(CsvDashboard).values({column: None}))


def test_the_shape_changes_only_while_there_are_no_rows(api: Api) -> None:
    create_generic(api, "parts")
    columns = [*GENERIC_COLUMNS, {"name": "when", "type": "date"}]
    response = api.patch(f"{BASE}/parts", json={"columns": columns, "version_columns": ["when"]})
    assert response.status_code == 200, response.text
    assert [c["name"] for c in response.json()["columns"]] == ["code", "label", "qty", "when"]
    assert response.json()["version_columns"] == ["when"]

    invalid = api.patch(f"{BASE}/parts", json={"key_columns": ["missing"]})
    assert problem(invalid, 400, "VALIDATION_FAILED")["errors"]

    ingest(api, "parts", "code,label,qty,when\nA,a,1,2026-01-01\n")
    refused = problem(
        api.patch(f"{BASE}/parts", json={"key_columns": ["code", "label"]}),
        409,
        "DASHBOARD_HAS_ROWS",
    )
    assert "has rows" in refused["detail"] and "key_columns" in refused["detail"]
    # 400 before 409: an invalid shape is reported as such even when rows exist.
    problem(api.patch(f"{BASE}/parts", json={"columns": GENERIC_COLUMNS}), 400, "VALIDATION_FAILED")
    stricter = [{**c, "required": True} for c in columns]
    problem(api.patch(f"{BASE}/parts", json={"columns": stricter}), 409, "DASHBOARD_HAS_ROWS")
    problem(api.patch(f"{BASE}/parts", json={"ingest_mode": "APPEND"}), 409, "DASHBOARD_HAS_ROWS")
    # Name and encoding still change; resending the current shape is not a change.
    current = api.get(f"{BASE}/parts", as_="viewer").json()
    ok = api.patch(f"{BASE}/parts", json={"name": "部品", "key_columns": current["key_columns"]})
    assert ok.status_code == 200 and ok.json()["name"] == "部品"
    assert ok.json()["active_rows"] == 1


# --- feeds --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "*/15 7-19 * * mon-fri",
        "0 6,12,18 * * *",
        "30 5 1 JAN,jul 0",
        "0 0 31 12 7",
        "5-55/10   *   *   *   *",
        "0 8 * * 1-5/2",
    ],
)
def test_valid_cron_expressions(expression: str) -> None:
    assert validate_cron(expression) == " ".join(expression.lower().split())


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "* * * *",
        "* * * * * *",
        "@daily",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "10-5 * * * *",
        "*/0 * * * *",
        "? * * * *",
        "* * * * mon#2",
        "* * L * *",
        "a * * * *",
        "1,,2 * * * *",
        "* * * foo *",
    ],
)
def test_invalid_cron_expressions(expression: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_cron(expression)
    assert info.value.code == "INVALID_SCHEDULE"


def test_feeds_create_list_and_update(api: Api) -> None:
    create_generic(api, "parts")
    folder = {
        "name": "nightly",
        "role": "official",
        "source": "folder",
        "location": "/srv/erp/out",
        "schedule": "0  2 * * *",
    }
    response = api.post(f"{BASE}/parts/feeds", json=folder)
    assert response.status_code == 201, response.text
    feed = response.json()
    assert feed["schedule"] == "0 2 * * *" and feed["enabled"] is True
    assert feed["dashboard"] == "parts" and feed["mapping"] is None

    status = {
        "name": "status",
        "role": "appearance",
        "source": "url",
        "location": "https://erp.example/status.csv",
        "schedule": "*/10 * * * *",
        "mapping": {"key_columns": {"code": "品目"}, "status_column": "状態"},
    }
    response = api.post(f"{BASE}/parts/feeds", json=status)
    assert response.status_code == 201, response.text
    assert response.json()["mapping"] == {
        "key_columns": {"code": "品目"},
        "status_column": "状態",
        "completed_codes": ["C", "X"],
    }

    listed = api.get(f"{BASE}/parts/feeds", as_="viewer").json()["items"]
    assert [f["name"] for f in listed] == ["upload", "nightly", "status"]

    problem(api.post(f"{BASE}/parts/feeds", json=folder), 409, "FEED_EXISTS")

    patched = api.patch(
        f"{BASE}/parts/feeds/{feed['id']}", json={"enabled": False, "schedule": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False and patched.json()["schedule"] is None
    assert patched.json()["location"] == "/srv/erp/out"
    assert patched.json()["updated_at"] > feed["updated_at"]

    problem(
        api.patch(f"{BASE}/parts/feeds/{feed['id']}", json={"name": "status"}), 409, "FEED_EXISTS"
    )
    problem(
        api.patch(f"{BASE}/parts/feeds/{feed['id']}", json={"schedule": "every day"}),
        400,
        "INVALID_SCHEDULE",
    )
    problem(
        api.patch(f"{BASE}/parts/feeds/{feed['id']}", json={"location": None}),
        400,
        "LOCATION_REQUIRED",
    )
    renamed = api.patch(f"{BASE}/parts/feeds/{feed['id']}", json={"name": "nightly-2"})
    assert renamed.json()["name"] == "nightly-2"

    # A feed of another dashboard, an unknown feed, a malformed id.
    create_generic(api, "other")
    problem(
        api.patch(f"{BASE}/other/feeds/{feed['id']}", json={"enabled": True}), 404, "FEED_NOT_FOUND"
    )
    problem(
        api.patch(f"{BASE}/parts/feeds/{uuid.uuid4()}", json={"enabled": True}),
        404,
        "FEED_NOT_FOUND",
    )
    problem(api.patch(f"{BASE}/parts/feeds/not-a-uuid", json={}), 400, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("feed", "code"),
    [
        ({"source": "folder"}, "LOCATION_REQUIRED"),
        ({"source": "upload", "location": "/x"}, "INVALID_LOCATION"),
        ({"source": "upload", "schedule": "* * * * *"}, "INVALID_SCHEDULE"),
        ({"source": "url", "location": "ftp://x/y.csv"}, "INVALID_LOCATION"),
        ({"source": "folder", "location": "/x", "schedule": "* * *"}, "INVALID_SCHEDULE"),
        ({"source": "upload", "role": "appearance"}, "MAPPING_REQUIRED"),
        (
            {"source": "upload", "role": "appearance", "mapping": {"key_columns": {"x": "y"}}},
            "INVALID_MAPPING",
        ),
        (
            {"source": "upload", "role": "official", "mapping": {"key_columns": {"code": "c"}}},
            "INVALID_MAPPING",
        ),
        ({"source": "pigeon", "location": "/x"}, "VALIDATION_FAILED"),
        ({"source": "upload", "name": "   "}, "VALIDATION_FAILED"),
        ({"source": "upload", "name": "x" * 65}, "VALIDATION_FAILED"),
    ],
)
def test_invalid_feeds_are_400(api: Api, feed: dict[str, Any], code: str) -> None:
    create_generic(api, "parts")
    body = {"name": "f", "role": "official", **feed}
    problem(api.post(f"{BASE}/parts/feeds", json=body), 400, code)
    names = [f["name"] for f in api.get(f"{BASE}/parts/feeds", as_="viewer").json()["items"]]
    assert names == ["upload"]


# --- rows ---------------------------------------------------------------------------------


def test_rows_page_exactly_once_even_while_ingestions_change_them(api: Api) -> None:
    create_generic(api, "parts")
    ingest(api, "parts", generic_csv([(f"C{i:03d}", f"item {i}", i) for i in range(23)]))
    seen: list[str] = []
    first = api.get(f"{BASE}/parts/rows", params={"limit": 5}, as_="viewer").json()
    seen.extend(r["id"] for r in first["items"])
    # Between pages, every row is rewritten and some new ones arrive.
    ingest(
        api,
        "parts",
        generic_csv([(f"C{i:03d}", f"changed {i}", i + 100) for i in range(30)]),
        kind="incremental_update",
    )
    cursor = first["next_cursor"]
    while cursor is not None:
        page = api.get(
            f"{BASE}/parts/rows", params={"limit": 5, "cursor": cursor}, as_="viewer"
        ).json()
        assert len(page["items"]) <= 5
        seen.extend(r["id"] for r in page["items"])
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 30

    rows = all_rows(api, "parts", limit=500)
    assert [r["id"] for r in rows] == seen
    row = next(r for r in rows if r["row_key"] and r["row_data"]["code"] == "C007")
    assert row["row_data"] == {"code": "C007", "label": "changed 7", "qty": "107"}
    assert row["is_active"] is True and row["retired_at"] is None
    assert row["first_run_id"] != row["last_changed_run_id"]
    assert row["supplement_data"] == {}


def test_rows_limit_and_cursor_validation(api: Api) -> None:
    create_generic(api, "parts")
    for limit in (0, -1, 501):
        problem(api.get(f"{BASE}/parts/rows?limit={limit}", as_="viewer"), 400, "INVALID_LIMIT")
    problem(api.get(f"{BASE}/parts/rows?limit=ten", as_="viewer"), 400, "VALIDATION_FAILED")
    for cursor in ("garbage!", "W10", "WyJ4IiwieSJd"):
        problem(
            api.get(f"{BASE}/parts/rows", params={"cursor": cursor}, as_="viewer"),
            400,
            "INVALID_CURSOR",
        )
    problem(api.get(f"{BASE}/parts/rows?state=gone", as_="viewer"), 400, "VALIDATION_FAILED")
    empty = api.get(f"{BASE}/parts/rows?limit=500", as_="viewer").json()
    assert empty == {"items": [], "next_cursor": None}


def test_rows_search_is_a_case_insensitive_substring_of_values(api: Api) -> None:
    create_generic(api, "parts")
    ingest(
        api,
        "parts",
        generic_csv(
            [
                ("A1", "Hex Bolt M8", 1),
                ("A2", "hex nut", 2),
                ("A3", "100% cotton", 3),
                ("A4", "snake_case", 4),
                ("A5", "ブラケット①", 5),
                ("A6", "back\\slash", 6),
                ("A7", "plain", 7),
            ]
        ),
    )

    def codes(q: str) -> set[str]:
        return {r["row_data"]["code"] for r in all_rows(api, "parts", q=q)}

    assert codes("HEX") == {"A1", "A2"}
    assert codes("bolt m8") == {"A1"}
    assert codes("%") == {"A3"}
    assert codes("e_c") == {"A4"}
    assert codes("_") == {"A4"}
    assert codes("\\") == {"A6"}
    assert codes("ケット①") == {"A5"}
    assert codes("a7") == {"A7"}  # the key column too
    assert codes("label") == set()  # values, never column names
    assert codes("nothing like it") == set()
    assert codes("  ") == {f"A{i}" for i in range(1, 8)}


def test_rows_state_filter(api: Api) -> None:
    create_generic(api, "parts")
    ingest(api, "parts", generic_csv([(f"K{i}", "x", i) for i in range(6)]))
    ingest(api, "parts", generic_csv([(f"K{i}", "x", i) for i in range(4)]))  # K4, K5 retire

    def keys(state: str | None) -> list[str]:
        params = {} if state is None else {"state": state}
        return sorted(r["row_data"]["code"] for r in all_rows(api, "parts", **params))

    assert keys(None) == keys("active") == ["K0", "K1", "K2", "K3"]
    assert keys("retired") == ["K4", "K5"]
    assert keys("all") == [f"K{i}" for i in range(6)]
    retired = all_rows(api, "parts", state="retired")
    assert all(r["is_active"] is False and r["retired_at"] for r in retired)
    counts = api.get(f"{BASE}/parts", as_="viewer").json()
    assert (counts["active_rows"], counts["retired_rows"]) == (4, 2)


def test_rows_of_a_schedule_carry_the_effective_progress(api: Api) -> None:
    api.post(BASE, json={"slug": "ps", "preset": "production-schedule"})
    lines = [
        schedule_line(1_000_000_001, "AB123456", "P1", 10),
        schedule_line(1_000_000_001, "AB123456", "P1", 20, progress="完了"),
        schedule_line(1_000_000_001, "AB123456", "P1", 30),
    ]
    ingest(api, "ps", "\n".join([SCHEDULE_HEADER, *lines]) + "\n")
    rows = all_rows(api, "ps")
    by_kojun = {r["row_data"]["FKOJUN"]: r for r in rows}
    done = api.put(
        f"/api/v1/schedules/ps/rows/{by_kojun['30']['id']}/completion",
        json={"intent": "complete"},
        as_="operator",
    )
    assert done.status_code == 200, done.text
    progress = {r["row_data"]["FKOJUN"]: r["row_data"]["progress"] for r in all_rows(api, "ps")}
    assert progress == {"10": "", "20": "完了", "30": "完了"}


def test_openapi_documents_roles_and_problem_responses(api: Api) -> None:
    spec = api.get("/openapi.json", as_=None).json()
    ours = {
        (path, method): op
        for path, ops in spec["paths"].items()
        if path.startswith(("/api/v1/dashboards", "/api/v1/schedules"))
        for method, op in ops.items()
    }
    # 16 + the board's resources, lookup, seibans (GET, PUT) + the boards' cards, order-board,
    # signage, load and a resource's capacity (PUT, under /dashboards: an admin's setting)
    assert len(ours) == 25
    for (path, method), op in ours.items():
        role = op["x-required-role"]
        if method == "get":
            assert role == "viewer", path
        elif path.startswith("/api/v1/schedules"):
            assert role == "operator", path
        else:
            assert role == "admin", path
        for status in ("401", "403"):
            content = op["responses"][status]["content"]
            assert list(content) == [PROBLEM], (path, method, status)
            schema = content[PROBLEM]["schema"]
            assert set(schema["required"]) >= {"type", "status", "code", "trace_id"}
