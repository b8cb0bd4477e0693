"""Schemathesis against the published ``/openapi.json``: no 5xx, and every response matches the
schema (status codes, content types, bodies), over a database with real runs and rows in it.

Two ways: each operation on its own with generated input, and stateful sequences, where
Schemathesis chains operations through the links it infers from the schema (a created
dashboard's slug into its feeds and rows, a listed run's id into retry and cancel, a row id
into the kiosk writes) and checks every step, including its own stateful checks (a created
resource can be read back, a deleted one is gone)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.engine import make_url

from reliability.common import report, size
from support import SCHEDULE_HEADER, Api, schedule_line


@pytest.fixture
def contract_api(sqlite_url: str, tmp_path: Path) -> Iterator[Api]:
    a = Api(sqlite_url, tmp_path / "data", run_executor=False)
    board = a.harness.dashboard()
    lines = [schedule_line(1000000001, "A0000001", f"P-{i}", 10 * (i + 1)) for i in range(5)]
    a.harness.ingest(board, "\r\n".join([SCHEDULE_HEADER, *lines]) + "\r\n")
    a.harness.ingest(board, b"ProductNo\r\n1\r\n")  # a failed run too
    yield a
    a.close()


def test_every_operation_honours_its_schema(contract_api: Api) -> None:
    # The pytest plugin's lazy fixture loader does not work with this pytest; driving each
    # operation's Hypothesis strategy directly is the same test without the plugin.
    schema = schemathesis.openapi.from_asgi("/openapi.json", contract_api.app)
    # Every check but "schema-valid data must be accepted": some rules live beyond JSON Schema
    # (appearance_supplement needs target_types exactly ["appearance"]; a feed must exist),
    # and those answers are 400/404 by design.
    headers = {"Authorization": f"Bearer {contract_api.tokens['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_stateful_sequences_never_fail(contract_api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", contract_api.app)
    workflow = schema.as_state_machine()
    links = [
        (source, link.target.label)
        for source, ops in workflow._transitions.operations.items()
        for link in ops.outgoing
    ]
    # The inferred links reach the places where state matters.
    for source, target in [
        ("POST /api/v1/dashboards", "POST /api/v1/dashboards/{slug}/feeds"),
        ("GET /api/v1/ops/ingestion/runs", "POST /api/v1/ops/ingestion/runs/{run_id}/retry"),
        ("GET /api/v1/ops/ingestion/runs", "POST /api/v1/ops/ingestion/runs/{run_id}/cancel"),
        ("GET /api/v1/dashboards/{slug}/rows", "PUT /api/v1/schedules/{slug}/rows/{row_id}/order"),
    ]:
        assert (source, target) in links, (source, target, links)
    headers = {"Authorization": f"Bearer {contract_api.tokens['admin']}"}
    calls: list[tuple[str, int]] = []
    # Every scenario starts from the same database (SQLite's online backup, both ways): what
    # one scenario created must not change what the next one draws, or Hypothesis rightly
    # reports the generation as flaky.
    database = make_url(contract_api.harness.url).database
    assert database
    pristine = sqlite3.connect(":memory:")
    with closing(sqlite3.connect(database)) as live:
        live.backup(pristine)

    class Workflow(workflow):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            with closing(sqlite3.connect(database)) as live:
                pristine.backup(live)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            calls.append((case.operation.label, response.status_code))

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance],  # as above: rules beyond the schema
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=size(40, 400),
            stateful_step_count=size(8, 20),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        ),
    )
    pristine.close()
    statuses = [status for _, status in calls]
    assert not [c for c in calls if c[1] >= 500], calls
    chained = {label for label, status in calls if status < 300}
    report(
        f"schemathesis stateful: {len(calls)} calls over {len({c[0] for c in calls})} operations,"
        f" {len(chained)} answered 2xx, {sum(s >= 500 for s in statuses)} 5xx"
    )
    # Sequences went somewhere: operations answered 2xx, some of them reached through a
    # path parameter taken from an earlier response.
    assert len(chained) >= size(6, 15), sorted(chained)
    assert any("{" in label for label in chained), sorted(chained)
