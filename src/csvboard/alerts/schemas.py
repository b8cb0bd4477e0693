"""The alerts' shapes for the API and the command line's ``--json``: an alert as stored, and
what was sent about it (csvboard.alerts.api, csvboard.cli.alerts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from csvboard.alerts.models import Alert, AlertDelivery


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


def alert_out(alert: Alert, deliveries: list[AlertDelivery]) -> AlertOut:
    return AlertOut(
        id=str(alert.id), problem_key=alert.problem_key, kind=alert.kind, summary=alert.summary,
        body=alert.body, details=alert.details, opened_at=alert.opened_at,
        cleared_at=alert.cleared_at,
        deliveries=[DeliveryOut.model_validate(d, from_attributes=True) for d in deliveries],
    )  # fmt: skip
