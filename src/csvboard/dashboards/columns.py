"""Column definitions: what a dashboard expects of the CSV files ingested into it.

These are plain Pydantic models stored as JSON on ``csv_dashboards`` and read by the
ingestion engine; they carry no database or HTTP knowledge.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from csvboard.dashboards.vocabulary import IngestMode

ColumnType = Literal["text", "int", "decimal", "date", "datetime"]
Encoding = Literal["auto", "utf-8", "cp932"]
# row_data.progress of an effectively completed step (docs/contract.md §2.2).
COMPLETED_MARK = "完了"

DEFAULT_MAX_LENGTH = 10_000


def normalize_header(text: str) -> str:
    """Header cells are matched after trimming and NFKC (full-width → half-width, etc.)."""
    return unicodedata.normalize("NFKC", text).strip()


class ColumnDef(BaseModel):
    """One column of a dashboard: its canonical name, header aliases and validation rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    aliases: tuple[str, ...] = ()
    type: ColumnType = "text"
    required: bool = False
    pattern: str | None = None
    # What the pattern means, in words a planner understands ("8 characters of A–Z, 0–9 or *").
    pattern_hint: str | None = None
    # strptime formats tried in order for date/datetime columns; ISO-8601 is always accepted.
    datetime_formats: tuple[str, ...] = ()
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=1, le=10_000_000)

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    def header_names(self) -> tuple[str, ...]:
        """Every header text (normalised) that maps onto this column."""
        return tuple(dict.fromkeys(normalize_header(n) for n in (self.name, *self.aliases)))


class AppearanceMapping(BaseModel):
    """How an ``appearance`` feed's columns map onto its dashboard.

    ``key_columns`` maps a dashboard key column name to the feed's header for it; the feed's
    other columns are merged into ``supplement_data``. ``status_column`` (optional) carries a
    status code; codes in ``completed_codes`` set external completion.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_columns: dict[str, str]
    status_column: str | None = None
    completed_codes: tuple[str, ...] = ("C", "X")


class DashboardSchema(BaseModel):
    """Everything the ingestion engine needs to know about a dashboard's CSV shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: tuple[ColumnDef, ...] = Field(min_length=1)
    key_columns: tuple[str, ...] = ()
    version_columns: tuple[str, ...] = ()
    ingest_mode: IngestMode = IngestMode.DEDUP
    encoding: Encoding = "auto"
    # A source-owned completion column (production schedule: ``progress``). Its values never
    # go into row_data; they set production_schedule_external_completion.
    completion_column: str | None = None
    completion_values: tuple[str, ...] = ("完了",)
    # The row's occurred_at is the first non-empty date/datetime among these columns.
    occurred_at_columns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _references_exist(self) -> DashboardSchema:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        for group, label in (
            (self.key_columns, "key_columns"),
            (self.version_columns, "version_columns"),
        ):
            for name in group:
                if name not in names:
                    raise ValueError(f"{label} names unknown column {name!r}")
        if self.ingest_mode == IngestMode.DEDUP and not self.key_columns:
            raise ValueError("a DEDUP dashboard needs at least one key column")
        if self.completion_column is not None and self.completion_column not in names:
            raise ValueError(f"completion_column names unknown column {self.completion_column!r}")
        for name in self.occurred_at_columns:
            if self.column(name).type not in ("date", "datetime"):
                raise ValueError(f"occurred_at column {name!r} must be a date or datetime")
        for name in self.version_columns:
            if self.column(name).type == "text":
                raise ValueError(f"version column {name!r} must be int, decimal, date or datetime")
        return self

    def column(self, name: str) -> ColumnDef:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)
