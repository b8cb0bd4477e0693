"""Row validation: turn parsed records into valid rows (keyed, hashed, versioned) or rejections.

This is the hot loop of ingestion (files of a million rows), so everything that can be
decided once per file — compiled patterns, column positions, which column feeds the key,
the version or occurred_at — is decided in ``__init__``; ``validate()`` only walks a
precomputed list of column checkers.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

import orjson

from csvboard.dashboards.columns import (
    AppearanceMapping,
    ColumnDef,
    ColumnType,
    DashboardSchema,
    normalize_header,
)
from csvboard.ingest.parse import STATUS_KEY, HeaderMap, Record, RecordError

# Canonical JSON is what json.dumps(ensure_ascii=False, separators=(",", ":")) writes; orjson
# writes the same bytes (tests/ingest/test_canonical_json.py) about ten times faster, and
# these run two or three times per row.
_dumps = orjson.dumps
_SORT_KEYS = orjson.OPT_SORT_KEYS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_TZ = ZoneInfo("Asia/Tokyo")  # ERP timestamps without an offset are Japan time
_INT_RE = re.compile(r"[+-]?[0-9]+")
# Plain decimal notation only: no exponent, NaN/Infinity, thousands separators or "_".
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE_CACHE_SIZE = 4096  # per column; ERP exports repeat the same timestamps heavily
# Per column, checked values by raw cell: resource codes, part names, hours repeat on most
# rows of a schedule. A column whose cache fills at under half hits (製番, say) stops caching.
_VALUE_CACHE_SIZE = 8192
_SHOW_CHARS = 60  # value shown in a message
_STORE_CHARS = 200  # RejectedRow.value

ReasonCode = Literal[
    "ROW_SHAPE", "REQUIRED", "PATTERN", "TYPE", "LENGTH", "INVALID_CHARACTER", "FIELD_TOO_LARGE"
]


@dataclass(slots=True)
class ValidRow:
    line: int
    row_key: str
    # Column name -> value for every column present in the file (stripped; key columns
    # canonical; int/decimal/date/datetime NFKC-normalised), plus extras by header text.
    # Never the completion column.
    row_data: dict[str, str]
    data_hash: str  # sha256 of canonical JSON of [row_data, completion]
    version: tuple[Decimal | None, ...]
    occurred_at: datetime | None
    completion: bool | None


@dataclass(slots=True)
class RejectedRow:
    line: int
    row_key: str | None  # set when the key columns themselves were valid
    reason_code: str
    message: str
    column: str | None
    value: str | None


@dataclass(slots=True)
class SupplementRow:
    line: int
    row_key: str
    supplement: dict[str, str]
    completion: bool | None
    data_hash: str


def canonical_key(values: Sequence[str]) -> str:
    """The row key: the canonical key-column values as a compact JSON array."""
    return _dumps(list(values)).decode()


def row_hash(data: dict[str, str], completion: bool | None) -> str:
    """Hex sha256 of ``[data, completion]`` as canonical JSON (sorted keys, UTF-8)."""
    return hashlib.sha256(_dumps([data, completion], option=_SORT_KEYS)).hexdigest()


def compact_json(data: dict[str, str]) -> str:
    """``data`` as stored: compact JSON, Japanese text as is, keys in the file's order."""
    return _dumps(data).decode()


def compare_versions(a: Sequence[Decimal | None], b: Sequence[Decimal | None]) -> int:
    """Compare component by component; an unknown (None) component compares equal."""
    for x, y in zip(a, b, strict=False):
        if x is None or y is None or x == y:
            continue
        return -1 if x < y else 1
    return 0


def fold_duplicates(rows: Iterable[tuple[int, tuple[Decimal | None, ...]]]) -> int:
    """Winning line among rows sharing one key, given in file order.

    A sequential fold (compare_versions is not transitive when components are unknown, so
    the order of comparisons is part of the rule): the next row replaces the winner when its
    version is >= the winner's — the highest version wins, ties go to the last in the file.
    """
    iterator = iter(rows)
    try:
        win_line, win_version = next(iterator)
    except StopIteration:
        raise ValueError("fold_duplicates needs at least one row") from None
    for line, version in iterator:
        if compare_versions(version, win_version) >= 0:
            win_line, win_version = line, version
    return win_line


def reject_record_error(error: RecordError) -> RejectedRow:
    """A parser-level failure (FIELD_TOO_LARGE, ROW_SHAPE) as a rejected row."""
    return RejectedRow(error.line, None, error.code, error.message, None, None)


def _show(value: str) -> str:
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


class _Invalid(Exception):
    """A cell failed a check (control flow only on the rejection path)."""

    def __init__(self, code: ReasonCode, detail: str) -> None:
        super().__init__(code, detail)
        self.code: ReasonCode = code
        self.detail = detail


Checked = tuple[str, Decimal | None, datetime | None]


class _Column:
    """Precompiled checks for one column present in the file.

    ``check(raw)`` returns ``(stored, number, instant)``: the value to store, its numeric
    value (int/decimal; epoch seconds for date/datetime) and its UTC instant (date/datetime),
    or raises ``_Invalid``.
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
                raise _Invalid("REQUIRED", "a value is required")
            return "", None, None
        if len(value) > self.max_length:
            raise _Invalid(
                "LENGTH",
                f"{len(value):,} characters, at most {self.max_length:,} allowed",
            )
        if self.pattern is not None and self.pattern.fullmatch(value) is None:
            raise _Invalid("PATTERN", f"{_show(raw.strip())} {self.pattern_message}")
        kind = self.kind
        if kind == "text":
            return value, None, None
        if kind == "int":
            if not (value.isascii() and value.isdigit()) and _INT_RE.fullmatch(value) is None:
                raise _Invalid("TYPE", f"{_show(raw.strip())} is not a whole number")
            try:
                number = int(value)
            except ValueError:  # over sys.int_info.str_digits_check_threshold digits
                raise _Invalid("TYPE", f"{_show(raw.strip())} is not a whole number") from None
            return (str(number) if self.is_key else value), Decimal(number), None
        if kind == "decimal":
            if _DECIMAL_RE.fullmatch(value) is None:
                raise _Invalid(
                    "TYPE",
                    f"{_show(raw.strip())} is not a number "
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
            raise _Invalid(
                "TYPE", f"{_show(raw.strip())} is not a valid {what} (expected {self._hint})"
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


def _header_names(header: HeaderMap) -> dict[int, str]:
    names = {index: name for name, index in header.columns.items()}
    names.update({index: text for text, index in header.extras.items()})
    return names


def _shape_rejection(record: Record, width: int) -> RejectedRow:
    count = len(record.cells)
    noun = "value" if count == 1 else "values"
    return RejectedRow(
        record.line,
        None,
        "ROW_SHAPE",
        f"line {record.line}: {count} {noun}, the header has {width} columns",
        None,
        None,
    )


def _nul_rejection(
    record: Record, names: dict[int, str], labels: dict[int, str], key: str | None
) -> RejectedRow:
    index = next(i for i, cell in enumerate(record.cells) if "\x00" in cell)
    cell = record.cells[index]
    label = labels.get(index) or names.get(index) or f"#{index + 1}"
    return RejectedRow(
        record.line,
        key,
        "INVALID_CHARACTER",
        f"line {record.line}, column {label}: contains a NUL character (\\x00), "
        f"which a text value cannot hold: {_show(cell.strip())}",
        names.get(index),
        cell.strip()[:_STORE_CHARS],
    )


class RowValidator:
    """Validates the records of an official feed against a dashboard schema."""

    def __init__(
        self, schema: DashboardSchema, header: HeaderMap, tz: ZoneInfo = DEFAULT_TZ
    ) -> None:
        self._width = header.width
        key_set = set(schema.key_columns)
        self._columns = [
            _Column(col, header.columns[col.name], col.name in key_set, tz)
            for col in schema.columns
            if col.name in header.columns
        ]
        # (checker, slot in the key) of the key columns, for the key of a rejected row.
        self._key_columns = [
            (c, schema.key_columns.index(c.name)) for c in self._columns if c.name in key_set
        ]
        self._n_keys = len(schema.key_columns)
        self._completion = schema.completion_column
        self._completion_values = frozenset(schema.completion_values)
        self._extras = [(text, index) for text, index in header.extras.items()]
        self._names = _header_names(header)
        self._labels = {c.position: c.label for c in self._columns}
        # Positions in the list of checked columns, decided once per file.
        positions = {c.name: i for i, c in enumerate(self._columns)}
        self._data_slots = [
            (c.name, i) for i, c in enumerate(self._columns) if c.name != self._completion
        ]
        self._key_idx = [positions.get(name) for name in schema.key_columns]
        self._version_idx = [positions.get(name) for name in schema.version_columns]
        self._occurred_idx = [
            positions[name] for name in schema.occurred_at_columns if name in positions
        ]
        self._completion_idx = (
            positions.get(schema.completion_column) if schema.completion_column else None
        )

    def _key_or_none(self, cells: list[str]) -> str | None:
        """The row key if every key column is itself valid (for a rejected row)."""
        if len(cells) != self._width:
            return None
        parts = [""] * self._n_keys
        for col, slot in self._key_columns:
            if "\x00" in cells[col.position]:
                return None
            try:
                parts[slot] = col.check(cells[col.position])[0]
            except _Invalid:
                return None
        return canonical_key(parts)

    def validate(self, record: Record) -> ValidRow | RejectedRow:
        cells = record.cells
        if len(cells) != self._width:
            return _shape_rejection(record, self._width)
        if "\x00" in "".join(cells):
            return _nul_rejection(record, self._names, self._labels, self._key_or_none(cells))
        checked: list[Checked] = []
        add = checked.append
        try:
            for col in self._columns:
                add(col.check(cells[col.position]))
        except _Invalid as exc:
            raw = cells[col.position].strip()
            return RejectedRow(
                record.line,
                self._key_or_none(cells),
                exc.code,
                f"line {record.line}, column {col.label}: {exc.detail}",
                col.name,
                raw[:_STORE_CHARS],
            )
        row_data = {name: checked[i][0] for name, i in self._data_slots}
        for text, index in self._extras:
            row_data[text] = cells[index].strip()
        occurred_at = None
        for i in self._occurred_idx:
            if checked[i][2] is not None:
                occurred_at = checked[i][2]
                break
        completion = (
            None
            if self._completion_idx is None
            else checked[self._completion_idx][0] in self._completion_values
        )
        return ValidRow(
            record.line,
            canonical_key(["" if i is None else checked[i][0] for i in self._key_idx]),
            row_data,
            row_hash(row_data, completion),
            tuple(None if i is None else checked[i][1] for i in self._version_idx),
            occurred_at,
            completion,
        )


class AppearanceValidator:
    """Validates an appearance feed's records: a valid key, a status, the extras."""

    def __init__(
        self,
        schema: DashboardSchema,
        mapping: AppearanceMapping,
        header: HeaderMap,
        tz: ZoneInfo = DEFAULT_TZ,
    ) -> None:
        self._width = header.width
        # Keys are checked and canonicalised with the dashboard's own column definitions (and
        # the same zone as the official feed), so "010" here finds "10" there.
        self._key_columns = [
            _Column(schema.column(name), header.columns[name], True, tz)
            for name in schema.key_columns
        ]
        self._status = header.columns.get(STATUS_KEY)
        self._completed = frozenset(code.strip().upper() for code in mapping.completed_codes)
        self._extras = [(text, index) for text, index in header.extras.items()]
        self._names = _header_names(header)
        if self._status is not None:
            self._names[self._status] = mapping.status_column or "status"
        self._labels = {c.position: c.label for c in self._key_columns}

    def _key_or_none(self, cells: list[str]) -> str | None:
        if any("\x00" in cells[col.position] for col in self._key_columns):
            return None
        try:
            return canonical_key([col.check(cells[col.position])[0] for col in self._key_columns])
        except _Invalid:
            return None

    def _key(self, record: Record) -> str | RejectedRow:
        parts: list[str] = []
        for col in self._key_columns:
            try:
                parts.append(col.check(record.cells[col.position])[0])
            except _Invalid as exc:
                raw = record.cells[col.position].strip()
                return RejectedRow(
                    record.line,
                    None,
                    exc.code,
                    f"line {record.line}, column {col.label}: {exc.detail}",
                    col.name,
                    raw[:_STORE_CHARS],
                )
        return canonical_key(parts)

    def validate(self, record: Record) -> SupplementRow | RejectedRow:
        cells = record.cells
        if len(cells) != self._width:
            return _shape_rejection(record, self._width)
        if "\x00" in "".join(cells):
            return _nul_rejection(record, self._names, self._labels, self._key_or_none(cells))
        key = self._key(record)
        if isinstance(key, RejectedRow):
            return key
        supplement = {text: cells[index].strip() for text, index in self._extras}
        completion: bool | None = None
        if self._status is not None:
            completion = cells[self._status].strip().upper() in self._completed
        return SupplementRow(
            record.line, key, supplement, completion, row_hash(supplement, completion)
        )
