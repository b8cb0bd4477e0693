"""Every route × every role: the exact allow/deny matrix of docs/contract.md §5.

viewer reads; operator adds kiosk writes; admin adds dashboards, feeds and runs. Routes are
read from the published OpenAPI document, so a new route cannot escape this test: each one
must declare its role (``x-required-role``) or be on the short public list below.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Api

PUBLIC = {("GET", "/api/v1/ops/diagnostics/health")}
RANK = {"viewer": 0, "operator": 1, "admin": 2}
CALLERS = ("nobody", "revoked", "viewer", "operator", "admin")


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    from csvboard.auth import Role, create_token, revoke_token

    a = Api(db_url, tmp_path / "data", run_executor=False)
    a.harness.dashboard()
    with a.harness.write() as s:
        a.tokens["revoked"] = create_token(s, "gone", Role.ADMIN)
        revoke_token(s, "gone")
    yield a
    a.close()


def operations(api: Api) -> list[tuple[str, str, str | None]]:
    doc = api.client.get("/openapi.json").json()
    found = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found.append((method.upper(), path, op.get("x-required-role")))
    return found


def concrete(path: str) -> str:
    values = {"slug": "production-schedule"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


def expected(required: str | None, caller: str) -> str:
    if required is None:
        return "allowed"
    if caller in ("nobody", "revoked"):
        return "401"
    return "allowed" if RANK[caller] >= RANK[required] else "403"


def observed(status: int) -> str:
    return str(status) if status in (401, 403) else "allowed"


def test_every_route_declares_a_role_or_is_public(api: Api) -> None:
    ops = operations(api)
    assert len(ops) >= 20, ops
    undeclared = {(m, p) for m, p, role in ops if role is None}
    assert undeclared == PUBLIC
    assert {role for _, _, role in ops} - {None} == {"viewer", "operator", "admin"}
    # Reads are viewer's; schedule writes are operator's; everything else that writes is admin's.
    for method, path, role in ops:
        if (method, path) in PUBLIC:
            continue
        if method == "GET":
            assert role == "viewer", (method, path)
        elif path.startswith("/api/v1/schedules/"):
            assert role == "operator", (method, path)
        else:
            assert role == "admin", (method, path)


def test_the_allow_deny_matrix(api: Api) -> None:
    want: dict[tuple[str, str], dict[str, str]] = {}
    got: dict[tuple[str, str], dict[str, str]] = {}
    for method, path, role in operations(api):
        url = concrete(path)
        want[(method, path)] = {c: expected(role, c) for c in CALLERS}
        got[(method, path)] = {}
        for caller in CALLERS:
            response = api.request(method, url, as_=None if caller == "nobody" else caller, json={})
            got[(method, path)][caller] = observed(response.status_code)
            if response.status_code in (401, 403):
                assert response.headers["content-type"].startswith("application/problem+json")
            if response.status_code == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
    assert got == want


def test_public_endpoints_need_no_token(api: Api) -> None:
    assert api.get("/api/v1/ops/diagnostics/health", as_=None).status_code == 200
    assert api.get("/metrics", as_=None).status_code == 200
    assert api.get("/openapi.json", as_=None).status_code == 200
    assert api.get("/docs", as_=None).status_code == 200


def test_a_token_in_another_scheme_or_a_wrong_token_is_refused(api: Api) -> None:
    url = "/api/v1/ops/ingestion/runs"
    token = api.tokens["admin"]
    assert api.client.get(url, headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert api.client.get(url, headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert api.client.get(url, headers={"Authorization": "Bearer "}).status_code == 401
    assert api.client.get(url, headers={"Authorization": f"bearer {token}"}).status_code == 200
