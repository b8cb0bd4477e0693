"""Row validation: turn parsed records into valid rows (keyed, hashed, versioned) or rejections.

This is the hot loop of ingestion (files of a million rows), so everything that can be
decided once per file — compiled patterns, column positions, which column feeds the key,
the version or occurred_at — is decided in ``__init__``; ``validate()`` only walks a
precomputed list of column checkers (``checks.ColumnCheck``, one per column of the file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson

from csvboard.dashboards.columns import AppearanceMapping, DashboardSchema
from csvboard.ingest.checks import Checked, ColumnCheck, InvalidValue, shown
from csvboard.ingest.parse import STATUS_KEY, HeaderMap, Record, RecordError

# Canonical JSON is what json.dumps(ensure_ascii=False, separators=(",", ":")) writes; orjson
# writes the same bytes (tests/ingest/test_canonical_json.py) about ten times faster, and
# these run two or three times per row.
_dumps = orjson.dumps
_SORT_KEYS = orjson.OPT_SORT_KEYS

DEFAULT_TZ = ZoneInfo("Asia/Tokyo")  # ERP timestamps without an offset are Japan time
_STORE_CHARS = 200  # RejectedRow.value


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
        f"which a text value cannot hold: {shown(cell.strip())}",
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
            ColumnCheck(col, header.columns[col.name], col.name in key_set, tz)
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
            except InvalidValue:
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
        except InvalidValue as exc:
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
            ColumnCheck(schema.column(name), header.columns[name], True, tz)
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
        except InvalidValue:
            return None

    def _key(self, record: Record) -> str | RejectedRow:
        parts: list[str] = []
        for col in self._key_columns:
            try:
                parts.append(col.check(record.cells[col.position])[0])
            except InvalidValue as exc:
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
