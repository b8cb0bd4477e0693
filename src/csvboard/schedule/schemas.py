"""The production-schedule API's request bodies and responses (docs/contract.md §5): what
``schedule/api.py`` validates and what OpenAPI documents. The rules behind them live in the
domain modules (``commands``, ``queries``, ``board``, ``seibans``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from csvboard.schedule.models import MAX_NOTE_LENGTH, MAX_ORDER_NUMBER, MAX_REGISTERED_SEIBANS

# --- responses ----------------------------------------------------------------------------


class OrderOut(BaseModel):
    """A step's machining order on its resource."""

    resource_cd: str
    order_number: int = Field(ge=1, le=MAX_ORDER_NUMBER)


class ScheduleRowOut(BaseModel):
    """A step: the CSV's values with the operator data composed in.

    ``row_data.progress`` is ``"完了"`` when the step is complete (a worker's mark or the
    source's), ``""`` otherwise.
    """

    id: uuid.UUID
    row_key: str
    row_data: dict[str, str]
    supplement_data: dict[str, str]
    is_active: bool
    completed: bool = Field(description="Effective completion: manual OR external.")
    manual_completed: bool = Field(description="A worker marked it complete.")
    external_completed: bool = Field(description="A source file reported it complete.")
    note: str | None
    due_date: date | None
    processing_type: str | None
    order: OrderOut | None
    machine_name: str | None = Field(description="品名 of the 製番's machine row (MH…/SH…).")
    updated_at: datetime | None = Field(description="Latest change of the row or its data.")


class ScheduleRowPage(BaseModel):
    items: list[ScheduleRowOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class ResourceProgress(BaseModel):
    resource_cd: str
    resource_name: str | None
    total: int
    completed: int


class SeibanProgress(BaseModel):
    fseiban: str
    machine_name: str | None
    total: int
    completed: int
    incomplete_parts: list[str] = Field(description="品名 of the parts with incomplete steps.")


class ProgressSummary(BaseModel):
    """Active steps (machine rows excluded), with effective completion."""

    total: int
    completed: int
    by_resource: list[ResourceProgress]
    by_seiban: list[SeibanProgress]


class CardStep(BaseModel):
    """One process step of a part, as a chip: its resource and whether it is done."""

    id: uuid.UUID
    fkojun: int
    fsigencd: str
    fsigenmei: str | None
    completed: bool


class CardPart(BaseModel):
    """A part of the 製番 (an order's 品番) with its steps in 工順 order."""

    product_no: str
    fhincd: str
    fhinmei: str
    completed: bool
    steps: list[CardStep]


class SeibanCard(BaseModel):
    """進捗一覧: one 製番's progress, its parts and their steps."""

    fseiban: str
    machine_name: str | None = Field(description="品名 of the 製番's MH/SH row.")
    due_date: str | None = Field(
        description="The nearest due date set on one of its open steps (ISO date), if any."
    )
    total: int
    completed: int
    parts: list[CardPart]
    more_parts: int = Field(description="Parts beyond the card's limit, counted, not listed.")


class SeibanCardPage(BaseModel):
    items: list[SeibanCard]
    next_cursor: str | None


class ResourceLoad(BaseModel):
    """One resource's required hours (FSIGENSHOYORYO of its open steps) by due date."""

    resource_cd: str
    resource_name: str | None
    weekly_hours: float | None = Field(description="Its weekly capacity, if an admin set one.")
    overdue_hours: float = Field(description="Due before the first week shown.")
    week_hours: list[float] = Field(description="One per week of ``weeks``.")
    later_hours: float = Field(description="Due after the last week shown.")
    no_due_date_hours: float
    overloaded_weeks: list[str] = Field(description="The weeks (Mondays) over its capacity.")


class LoadReport(BaseModel):
    weeks: list[str] = Field(description="The Mondays of the weeks shown, ISO dates.")
    resources: list[ResourceLoad]


class Capacity(BaseModel):
    resource_cd: str
    weekly_hours: float | None


class SignageSeiban(BaseModel):
    fseiban: str
    machine_name: str | None
    total: int
    completed: int
    open_parts: list[str] = Field(description="品名 of its first open parts.")
    more_open_parts: int


class SignageStep(BaseModel):
    fseiban: str
    fhincd: str
    fhinmei: str
    fkojun: str
    order: int | None
    due_date: str | None


class SignageResource(BaseModel):
    resource_cd: str
    resource_name: str | None
    steps: list[SignageStep] = Field(description="Its first open steps in working order.")
    more: bool


class SignageSnapshot(BaseModel):
    generated_at: datetime
    seibans: list[SignageSeiban]
    resources: list[SignageResource]


class ResourceOut(BaseModel):
    resource_cd: str
    resource_name: str | None


class ResourceList(BaseModel):
    items: list[ResourceOut]


class ScheduleRowList(BaseModel):
    items: list[ScheduleRowOut]


class RegisteredSeibanOut(BaseModel):
    fseiban: str
    machine_name: str | None
    total: int = Field(description="Active steps of the 製番 (0: none, e.g. all retired).")
    completed: int


class RegisteredSeibanList(BaseModel):
    """The 製番 every kiosk of the dashboard shows as buttons. ``version`` is the ETag's."""

    version: int
    limit: int = Field(description="How many 製番 the list may hold.")
    items: list[RegisteredSeibanOut]


# --- request bodies -----------------------------------------------------------------------


class RegisteredSeibanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seibans: list[str] = Field(
        description=f"The whole list in button order, at most {MAX_REGISTERED_SEIBANS}.",
    )


class CompletionBody(BaseModel):
    """What the worker means: never a toggle, so a double tap lands in the same state."""

    model_config = ConfigDict(extra="forbid")

    intent: Literal["complete", "incomplete"]


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(
        description=f"One line, at most {MAX_NOTE_LENGTH} characters; empty deletes the note."
    )


class DueDateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    due_date: str | None = Field(
        description="`YYYY-MM-DD`; null or empty clears it (400 `INVALID_DUE_DATE`).",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "maxLength": 0},
                {"type": "null"},
            ]
        },
    )


class ProcessingTypeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    processing_type: str | None = Field(
        description="One of the dashboard's processing types; null or empty clears it."
    )


class OrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource_cd: str = Field(description="The step's resource (its FSIGENCD).")
    order_number: int | None = Field(
        ge=1, le=MAX_ORDER_NUMBER, description="1–10, free on the resource; null clears it."
    )


__all__ = [
    "CompletionBody",
    "DueDateBody",
    "NoteBody",
    "OrderBody",
    "OrderOut",
    "ProcessingTypeBody",
    "ProgressSummary",
    "RegisteredSeibanBody",
    "RegisteredSeibanList",
    "RegisteredSeibanOut",
    "ResourceList",
    "ResourceOut",
    "ResourceProgress",
    "ScheduleRowList",
    "ScheduleRowOut",
    "ScheduleRowPage",
    "SeibanProgress",
]
