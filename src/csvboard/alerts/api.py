"""Alerts over HTTP (docs/contract.md §4 "Alerts", §5): what csvboard has told its admins, and a
test message to check the channels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from csvboard.alerts.models import Alert, AlertDelivery
from csvboard.alerts.service import recent_alerts, send_test
from csvboard.api.deps import EngineDep, SettingsDep, needs
from csvboard.api.schemas import problem_responses
from csvboard.auth import Role
from csvboard.clock import utcnow

router = APIRouter(prefix="/api/v1/ops", tags=["alerts"])


class DeliveryOut(BaseModel):
    channel: Literal["webhook", "mail"]
    event: Literal["opened", "cleared"]
    attempts: int
    sent_at: datetime | None
    next_attempt_at: datetime = Field(description="When an unsent message is tried again.")
    last_error: str | None = Field(description="Why the last attempt failed (no secrets).")


class AlertOut(BaseModel):
    id: str
    problem_key: str = Field(description="The same while the problem lasts.")
    kind: str
    summary: str
    body: str
    details: dict[str, Any]
    opened_at: datetime
    cleared_at: datetime | None = Field(description="Null while the problem holds.")
    deliveries: list[DeliveryOut]


class AlertList(BaseModel):
    items: list[AlertOut]


class TestResult(BaseModel):
    channels: dict[str, str | None] = Field(
        description="Each configured channel and its error (null: sent). Empty: none configured."
    )


def _alert_out(alert: Alert, deliveries: list[AlertDelivery]) -> AlertOut:
    return AlertOut(
        id=str(alert.id), problem_key=alert.problem_key, kind=alert.kind, summary=alert.summary,
        body=alert.body, details=alert.details, opened_at=alert.opened_at,
        cleared_at=alert.cleared_at,
        deliveries=[DeliveryOut.model_validate(d, from_attributes=True) for d in deliveries],
    )  # fmt: skip


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
    return AlertList(items=[_alert_out(a, d) for a, d in found])


@router.post(
    "/alerts/test",
    response_model=TestResult,
    openapi_extra=needs(Role.ADMIN),
    responses=problem_responses(401, 403),
    summary="Send a test message through every configured channel",
)
def post_alert_test(settings: SettingsDep) -> TestResult:
    return TestResult(channels=send_test(settings, utcnow()))
