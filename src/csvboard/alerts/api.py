"""Alerts over HTTP (docs/contract.md §4 "Alerts", §5): what csvboard has told its admins, and a
test message to check the channels."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from csvboard.alerts.schemas import AlertOut, alert_out
from csvboard.alerts.service import recent_alerts, send_test
from csvboard.api.deps import EngineDep, SettingsDep, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.clock import utcnow

router = APIRouter(prefix="/api/v1/ops", tags=["alerts"])


class AlertList(BaseModel):
    items: list[AlertOut]


class TestResult(BaseModel):
    channels: dict[str, str | None] = Field(
        description="Each configured channel and its error (null: sent). Empty: none configured."
    )


@router.get(
    "/alerts",
    response_model=AlertList,
    openapi_extra=needs(Role.VIEWER),
    responses=problem_responses(401, 403),
    summary="Alerts, newest first, open and cleared, with their messages",
)
def get_alerts(
    engine: EngineDep,
    state: Literal["open", "all"] = "all",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertList:
    found = recent_alerts(engine, limit, open_only=state == "open")
    return AlertList(items=[alert_out(a, d) for a, d in found])


@router.post(
    "/alerts/test",
    response_model=TestResult,
    openapi_extra=needs(Role.ADMIN),
    responses=problem_responses(401, 403),
    summary="Send a test message through every configured channel",
)
def post_alert_test(settings: SettingsDep) -> TestResult:
    return TestResult(channels=send_test(settings, utcnow()))
