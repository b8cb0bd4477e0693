"""One column's checks, compiled once per file: a raw cell to what is stored, or why not.

``ColumnCheck.check(raw)`` trims and (for keys and non-text columns) NFKC-normalises a value, then
checks it for required, length, pattern and type, and returns the value to store, its number
(int/decimal; epoch seconds for date/datetime) and its UTC instant, or raises ``InvalidValue``
(a reason code and what is wrong). The row validators (``validate.RowValidator``,
``validate.AppearanceValidator``) and the column-wise validators (``batches``) run the same
checks, so a value is judged the same on either path.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from csvboard.dashboards.columns import ColumnDef, ColumnType, normalize_header

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_RE = re.compile(r"[+-]?[0-9]+")
# Plain decimal notation only: no exponent, NaN/Infinity, thousands separators or "_".
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE_CACHE_SIZE = 4096  # per column; ERP exports repeat the same timestamps heavily
# Per column, checked values by raw cell: resource codes, part names, hours repeat on most
# rows of a schedule. A column whose cache fills at under half hits (製番, say) stops caching.
_VALUE_CACHE_SIZE = 8192
_SHOW_CHARS = 60  # value shown in a message

ReasonCode = Literal[
    "ROW_SHAPE", "REQUIRED", "PATTERN", "TYPE", "LENGTH", "INVALID_CHARACTER", "FIELD_TOO_LARGE"
]


def shown(value: str) -> str:
    """A value for a message: short and repr-escaped (NULs, newlines stay visible)."""
    if len(value) > _SHOW_CHARS:
        value = value[: _SHOW_CHARS - 1] + "…"
    return repr(value)


def _canonical_decimal(value: Decimal) -> str:
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _epoch_seconds(instant: datetime) -> Decimal:
    delta = instant - _EPOCH
    seconds = Decimal(delta.days * 86400 + delta.seconds)
    if delta.microseconds:
        seconds += Decimal(delta.microseconds).scaleb(-6)
    return seconds


_FORMAT_WORDS = {"%Y": "YYYY", "%m": "M", "%d": "D", "%H": "H", "%M": "MM", "%S": "SS"}


def _format_hint(formats: Sequence[str]) -> str:
    """``%Y/%m/%d %H:%M`` -> ``YYYY/M/D H:MM``, for messages."""
    shown = []
    for fmt in formats:
        for code, word in _FORMAT_WORDS.items():
            fmt = fmt.replace(code, word)
        shown.append(fmt)
    return ", ".join([*shown, "ISO-8601"])


class InvalidValue(Exception):
    """A cell failed a check (control flow only on the rejection path)."""

    def __init__(self, code: ReasonCode, detail: str) -> None:
        super().__init__(code, detail)
        self.code: ReasonCode = code
        self.detail = detail


Checked = tuple[str, Decimal | None, datetime | None]


class ColumnCheck:
    """Precompiled checks for one column present in the file.

    ``check(raw)`` returns ``(stored, number, instant)``: the value to store, its numeric
    value (int/decimal; epoch seconds for date/datetime) and its UTC instant (date/datetime),
    or raises ``InvalidValue``.
    """

    __slots__ = (
        "_cache",
        "_date_only",
        "_formats",
        "_hint",
        "_hits",
        "_tz",
        "_values",
        "is_key",
        "kind",
        "label",
        "max_length",
        "name",
        "normalise",
        "pattern",
        "pattern_message",
        "position",
        "required",
    )

    def __init__(self, col: ColumnDef, position: int, is_key: bool, tz: ZoneInfo) -> None:
        self.name = col.name
        self.position = position
        aliases = [a for a in col.aliases if normalize_header(a) != col.name]
        self.label = f"{col.name} ({aliases[0]})" if aliases else col.name
        self.required = col.required
        self.max_length = col.max_length
        self.pattern = re.compile(col.pattern) if col.pattern is not None else None
        # "must be 8 characters of …" with a hint; the bare regex as a last resort.
        self.pattern_message = (
            f"must be {col.pattern_hint}"
            if col.pattern_hint
            else f"must match the pattern {col.pattern}"
        )
        self.kind: ColumnType = col.type
        self.is_key = is_key
        # Keys are NFKC'd (full-width ＡＢ１２ is AB12); so are values read as numbers or dates.
        # Free text keeps the characters the ERP wrote.
        self.normalise = is_key or col.type != "text"
        self._formats = col.datetime_formats
        self._date_only = col.type == "date"
        self._hint = _format_hint(col.datetime_formats)
        self._tz = tz
        self._cache: dict[str, tuple[datetime, Decimal, str] | None] = {}
        self._values: dict[str, Checked] | None = {}
        self._hits = 0

    def check(self, raw: str) -> Checked:
        values = self._values
        if values is None:
            return self._check(raw)
        hit = values.get(raw)
        if hit is not None:
            self._hits += 1
            return hit
        checked = self._check(raw)  # a failure raises and is never cached
        if len(values) >= _VALUE_CACHE_SIZE:
            # Full: keep caching (afresh) only if most lookups were hits.
            self._values = {} if self._hits > _VALUE_CACHE_SIZE else None
            self._hits = 0
        else:
            values[raw] = checked
        return checked

    def _check(self, raw: str) -> Checked:
        value = raw.strip()
        if self.normalise and not value.isascii():
            value = unicodedata.normalize("NFKC", value).strip()
        if not value:
            if self.required:
                raise InvalidValue("REQUIRED", "a value is required")
            return "", None, None
        if len(value) > self.max_length:
            raise InvalidValue(
                "LENGTH",
                f"{len(value):,} characters, at most {self.max_length:,} allowed",
            )
        if self.pattern is not None and self.pattern.fullmatch(value) is None:
            raise InvalidValue("PATTERN", f"{shown(raw.strip())} {self.pattern_message}")
        kind = self.kind
        if kind == "text":
            return value, None, None
        if kind == "int":
            if not (value.isascii() and value.isdigit()) and _INT_RE.fullmatch(value) is None:
                raise InvalidValue("TYPE", f"{shown(raw.strip())} is not a whole number")
            try:
                number = int(value)
            except ValueError:  # over sys.int_info.str_digits_check_threshold digits
                raise InvalidValue("TYPE", f"{shown(raw.strip())} is not a whole number") from None
            return (str(number) if self.is_key else value), Decimal(number), None
        if kind == "decimal":
            if _DECIMAL_RE.fullmatch(value) is None:
                raise InvalidValue(
                    "TYPE",
                    f"{shown(raw.strip())} is not a number "
                    "(digits with an optional . and no thousands separators)",
                )
            dec = Decimal(value)
            return (_canonical_decimal(dec) if self.is_key else value), dec, None
        cache = self._cache
        if value in cache:
            parsed = cache[value]
        else:
            parsed = self._parse_instant(value)
            if len(cache) >= _DATE_CACHE_SIZE:
                cache.clear()
            cache[value] = parsed
        if parsed is None:
            what = "date" if self._date_only else "date and time"
            raise InvalidValue(
                "TYPE", f"{shown(raw.strip())} is not a valid {what} (expected {self._hint})"
            )
        instant, epoch, canonical = parsed
        return (canonical if self.is_key else value), epoch, instant

    def _parse_instant(self, value: str) -> tuple[datetime, Decimal, str] | None:
        """strptime formats in order, then ISO-8601; naive means the dashboard's time zone."""
        parsed: datetime | date | None = None
        for fmt in self._formats:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        if parsed is None:
            try:
                parsed = (date if self._date_only else datetime).fromisoformat(value)
            except ValueError:
                return None
        if self._date_only:
            day = parsed.date() if isinstance(parsed, datetime) else parsed
            instant = datetime.combine(day, time(), self._tz).astimezone(UTC)
            return instant, _epoch_seconds(instant), day.isoformat()
        assert isinstance(parsed, datetime)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self._tz)
        instant = parsed.astimezone(UTC)
        return instant, _epoch_seconds(instant), instant.isoformat()
