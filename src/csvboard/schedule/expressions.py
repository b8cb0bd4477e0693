"""The CSV values the production schedule sorts, filters and groups by, as SQL expressions
that read the same on SQLite and PostgreSQL.

They are the very expressions of the schedule's indexes (migrations 0004 and 0006), so both
planners match them; every schedule query builds on them.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    case,
    cast,
    func,
    literal_column,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboardRow
from csvboard.dashboards.presets import MACHINE_PART_PREFIXES

_COLUMN_NAME = re.compile(r"[A-Za-z0-9_]+")
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = _ASCII_UPPER.lower()


class Fields:
    """The CSV values the schedule sorts, filters and groups by, extracted in SQL.

    PostgreSQL reads ``row_data->>'X'``, SQLite ``json_extract(row_data, '$."X"')``. Text sort
    keys use the C collation on PostgreSQL so that ordering (and the keyset cursor's
    comparisons) are byte order on both engines, whatever the database's locale.
    """

    def __init__(self, dialect: str, table: Any = CsvDashboardRow) -> None:
        self.dialect = dialect
        self.table = table  # the rows table, or an alias of it
        self.is_pg = dialect == "postgresql"
        self.seiban = self.sort_text("FSEIBAN")
        self.product_no = self.sort_text("ProductNo")
        self.hincd = self.sort_text("FHINCD")
        self.hinmei = self.text("FHINMEI")
        self.resource = self.sort_text("FSIGENCD")  # byte order on both engines, like 製番
        self.resource_name = self.text("FSIGENMEI")
        kojun = func.nullif(self.raw("FKOJUN"), "")
        self.kojun: ColumnElement[int] = cast(func.coalesce(kojun, "0"), BigInteger)
        self.sort_keys: tuple[ColumnElement[Any], ...] = (
            self.seiban,
            self.product_no,
            self.kojun,
            self.hincd,
            table.id.expression,
        )

    def raw(self, name: str) -> ColumnElement[str]:
        # The key is rendered as a literal, not a bind parameter: only then is the expression
        # the very one of the schedule index (migration 0004), which both planners match
        # structurally. Names come from the preset, never from a request.
        if not _COLUMN_NAME.fullmatch(name):
            raise ValueError(f"not a preset column name: {name!r}")
        if self.is_pg:
            key = literal_column(f"'{name}'", String)
            return type_coerce(self.table.row_data, JSONB).op("->>", return_type=String)(key)
        path: ColumnElement[str] = literal_column(f"""'$."{name}"'""")
        return func.json_extract(self.table.row_data, path, type_=String)

    def text(self, name: str) -> ColumnElement[str]:
        return func.coalesce(self.raw(name), literal_column("''", String), type_=String)

    def sort_text(self, name: str) -> ColumnElement[str]:
        value = self.text(name)
        return value.collate("C") if self.is_pg else value

    def fold(self, expr: ColumnElement[str]) -> ColumnElement[str]:
        """Lower-case ASCII letters only, the same on both engines.

        SQLite's ``lower`` folds ASCII only; PostgreSQL's folds every script by locale. A
        ``translate`` of A–Z on PostgreSQL keeps "case-insensitive for ASCII" identical there.
        """
        if self.is_pg:
            return func.translate(expr, _ASCII_UPPER, _ASCII_LOWER, type_=String)
        return func.lower(expr, type_=String)

    def active(self) -> ColumnElement[bool]:
        """The row is active (in the official schedule), as each planner reads it best.

        SQLite, which has no statistics, would pick the (dashboard, is_active) index for the
        bare column and read and sort every active row of the dashboard instead of walking a
        scope's range of a schedule index in kiosk order; an expression keeps it off that
        index. PostgreSQL estimates the expression at 0.5 % of the rows and then prefers
        sorting a resource's every step to walking it in order (200,000 steps: 43 ms against
        0.5 ms for a page), so it gets the column, whose statistics it has.
        """
        active: ColumnElement[bool] = (
            self.table.is_active == True  # noqa: E712
            if self.is_pg
            else active_first(self.table) == 0
        )
        return active

    def machine_row(self) -> ColumnElement[bool]:
        """品番 MH…/SH…: the machine being built, not a step (case-sensitive, like the preset)."""
        return func.substr(self.hincd, 1, 2).in_(MACHINE_PART_PREFIXES)


@functools.cache
def _fields_for(dialect: str) -> Fields:
    return Fields(dialect)


def fields(session: Session) -> Fields:
    # Built once per dialect: constructing these expressions is a good part of a kiosk
    # write's CPU time, and they never change (SQLAlchemy statements are immutable).
    return _fields_for(session.get_bind().dialect.name)


def active_first(table: Any) -> ColumnElement[Any]:
    return case((table.is_active == True, 0), else_=1)  # noqa: E712


__all__ = ["Fields", "active_first", "fields"]
