"""Validate a block of a file column by column: each distinct value checked once.

The rules are ``validate.RowValidator``'s, applied by the same code: every distinct raw value
of a column in the block goes through that column's own check (``checks.ColumnCheck.check``) once —
resource codes, names, hours and timestamps repeat on most rows of a schedule, so most
columns of a block have few distinct values (the nearly unique ones — ProductNo, 製番, 品番 —
still cost a check per row). The results are spread back over the rows with Arrow's
``take``; the row key, the stored JSON and the hashed JSON are joined from per-value JSON
pieces by Arrow, and only the sha256 runs once per row (those Arrow pieces: ``columnar``).

A row any of whose values fails a check, and every record the block reader did not give to
Arrow, is validated by ``RowValidator.validate`` itself, so rejections (reason, column,
message, the key when it is valid) are exactly the row path's. What comes out for a valid row
— key, stored JSON, data hash, versions, occurred_at, completion — equals the row path's
``ValidRow`` (``tests/ingest/test_batches.py`` compares them on the corpus and on generated
files), so stored hashes stay valid across the two.

Appearance (status) files go the same way (``AppearanceColumns``): their key columns are
checked per distinct value with ``AppearanceValidator``'s column checks, and a row comes out
as that validator's ``SupplementRow`` would (``tests/ingest/test_batches.py`` again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csvboard.dashboards.columns import AppearanceMapping, DashboardSchema
from csvboard.ingest.blocks import Block, BlockReader, block_column
from csvboard.ingest.columnar import (
    CheckedColumn,
    concatenated,
    json_arrays,
    json_objects,
    row_hashes,
)
from csvboard.ingest.errors import RunError
from csvboard.ingest.parse import (
    Record,
    RecordError,
    map_appearance_header,
    map_header,
    max_field_chars_for,
)
from csvboard.ingest.validate import (
    AppearanceValidator,
    RejectedRow,
    RowValidator,
    SupplementRow,
    ValidRow,
    reject_record_error,
)


@dataclass
class ValidatedBlock:
    """One block's rows: valid ones as columns (``lines`` ...), the rest one by one.

    An appearance block has no versions (``versions`` empty) and ``None`` for ``vjson`` and
    ``occurred_at``; its ``row_data`` is the supplement.
    """

    count: int  # data records of the block (its share of target_count)
    lines: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    row_key: list[str] = field(default_factory=list)
    row_data: list[str] = field(default_factory=list)
    data_hash: list[str] = field(default_factory=list)
    vjson: list[str | None] = field(default_factory=list)
    versions: list[list[str | None]] = field(default_factory=list)
    occurred_at: list[str | None] = field(default_factory=list)
    completion: list[bool | None] = field(default_factory=list)
    # Rows validated one by one (rejections, mostly), in line order.
    rows: list[ValidRow | SupplementRow | RejectedRow] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(isinstance(r, RejectedRow) for r in self.rows)


InstantFormat = Callable[[datetime], str]


OneRow = ValidRow | SupplementRow | RejectedRow


class _BlockValidator:
    """A validator of blocks: clean lines column by column (``_columns``), the rest, and the
    rows any of whose checked values fails, by the row validator ``_row`` (the contract)."""

    def _row(self, record: Record) -> OneRow:
        raise NotImplementedError

    def _columns(self, block: Block, out: ValidatedBlock, slow: list[OneRow]) -> None:
        raise NotImplementedError

    def validate(self, block: Block) -> ValidatedBlock:
        out = ValidatedBlock(block.count)
        slow: list[OneRow] = []
        if block.table is not None and block.table.num_rows:
            self._columns(block, out, slow)
        for record in block.records:
            if isinstance(record, RecordError):
                slow.append(reject_record_error(record))
            else:
                slow.append(self._row(record))
        slow.sort(key=lambda r: r.line)
        out.rows = slow
        return out

    def _failed(self, block: Block, checked: list[CheckedColumn], slow: list[OneRow]) -> np.ndarray:
        """Rows with a value that fails its column's check, validated one by one into ``slow``;
        returns which rows they are."""
        table = block.table
        assert table is not None
        failed = np.zeros(table.num_rows, dtype=bool)
        for column in checked:
            if not column.ok.all():
                failed |= column.failed_rows()
        for i in np.flatnonzero(failed).tolist():
            cells = [table.column(j)[i].as_py() for j in range(table.num_columns)]
            slow.append(self._row(Record(int(block.lines[i]), cells)))
        return failed


class ColumnarValidator(_BlockValidator):
    """``RowValidator``'s rules over the blocks of ``blocks.BlockReader``.

    ``instant``: how occurred_at is staged (the engine's text form of a UTC instant).
    """

    def __init__(self, validator: RowValidator, instant: InstantFormat) -> None:
        self.v = validator
        self._instant = instant
        v = validator
        names = [name for name, _ in v._data_slots] + [text for text, _ in v._extras]
        self._names = names
        # The hashed JSON sorts its keys (validate.row_hash); the stored JSON keeps this order.
        self._sorted = sorted(range(len(names)), key=lambda i: names[i])
        self._key_slots = v._key_idx
        self._version_slots = v._version_idx
        self._occurred_slots = v._occurred_idx
        self._completion_slot = v._completion_idx
        self._completion_values = v._completion_values

    def _row(self, record: Record) -> OneRow:
        return self.v.validate(record)

    def _columns(self, block: Block, out: ValidatedBlock, slow: list[OneRow]) -> None:
        v, table = self.v, block.table
        assert table is not None
        checked = [CheckedColumn(block_column(table, c.position), c) for c in v._columns]
        failed = self._failed(block, checked, slow)
        if failed.all():
            return
        extras = [CheckedColumn(block_column(table, index), None) for _, index in v._extras]
        keep = pa.array(~failed)
        n_rows = len(failed) - int(failed.sum())
        data = [checked[i] for _, i in v._data_slots] + extras
        # Each column's JSON once: the key reuses the stored JSON's pieces.
        json_of = {id(c): c.json(keep) for c in data}
        pieces = [json_of[id(c)] for c in data]
        row_data = json_objects(self._names, pieces, n_rows)
        if self._completion_slot is None:
            completion = None
            completion_json: pa.Array | str = "null"
        else:
            column = checked[self._completion_slot]
            done = [s in self._completion_values for s in column.stored]
            completion = pa.array(done, pa.bool_()).take(column.indices.filter(keep))
            completion_json = pc.if_else(completion, "true", "false")
        key_pieces: list[pa.Array | str] = []
        for slot in self._key_slots:
            if slot is None:
                key_pieces.append('""')
            else:
                c = checked[slot]
                piece = json_of.get(id(c))
                if piece is None:  # a key column that is also the completion column
                    piece = c.json(keep)
                key_pieces.append(piece)
        versions = [
            None if slot is None else checked[slot].spread(checked[slot].numbers, keep)
            for slot in self._version_slots
        ]
        vjson: list[pa.Array | str] = ["["]
        for n, version in enumerate(versions):
            vjson.append("" if n == 0 else ",")
            vjson.append("null" if version is None else pc.fill_null(version, "null"))
        occurred = [
            checked[slot].spread(
                [None if t is None else self._instant(t) for t in checked[slot].instants], keep
            )
            for slot in self._occurred_slots
        ]
        out.lines = block.lines[~failed]
        out.row_key = json_arrays(key_pieces, n_rows)
        out.row_data = row_data.to_pylist()
        out.data_hash = row_hashes(self._names, self._sorted, pieces, completion_json, n_rows)
        out.vjson = concatenated(vjson, "]", n_rows).to_pylist()
        out.versions = [
            [None] * n_rows if version is None else version.to_pylist() for version in versions
        ]
        if not occurred:
            out.occurred_at = [None] * n_rows
        elif len(occurred) == 1:
            out.occurred_at = occurred[0].to_pylist()
        else:
            out.occurred_at = pc.coalesce(*occurred).to_pylist()
        out.completion = [None] * n_rows if completion is None else completion.to_pylist()


class AppearanceColumns(_BlockValidator):
    """``AppearanceValidator``'s rules over the blocks of ``blocks.BlockReader``: the key
    columns checked per distinct value, the extras kept stripped, the status looked up once
    per distinct code."""

    def __init__(self, validator: AppearanceValidator) -> None:
        self.v = validator
        names = [text for text, _ in validator._extras]
        self._names = names
        self._sorted = sorted(range(len(names)), key=lambda i: names[i])

    def _row(self, record: Record) -> OneRow:
        return self.v.validate(record)

    def _columns(self, block: Block, out: ValidatedBlock, slow: list[OneRow]) -> None:
        v, table = self.v, block.table
        assert table is not None
        keys = [CheckedColumn(block_column(table, c.position), c) for c in v._key_columns]
        failed = self._failed(block, keys, slow)
        if failed.all():
            return
        keep = pa.array(~failed)
        n_rows = len(failed) - int(failed.sum())
        pieces = [
            CheckedColumn(block_column(table, index), None).json(keep) for _, index in v._extras
        ]
        if v._status is None:
            completion = None
            completion_json: pa.Array | str = "null"
        else:
            status = CheckedColumn(block_column(table, v._status), None)
            done = [code.upper() in v._completed for code in status.stored]
            completion = pa.array(done, pa.bool_()).take(status.indices.filter(keep))
            completion_json = pc.if_else(completion, "true", "false")
        n = n_rows
        out.lines = block.lines[~failed]
        out.row_key = json_arrays([k.json(keep) for k in keys], n)
        out.row_data = json_objects(self._names, pieces, n).to_pylist()
        out.data_hash = row_hashes(self._names, self._sorted, pieces, completion_json, n)
        out.vjson = [None] * n
        out.occurred_at = [None] * n
        out.completion = [None] * n if completion is None else completion.to_pylist()


def appearance_blocks(
    path: Path,
    codec: str,
    schema: DashboardSchema,
    mapping: AppearanceMapping,
    *,
    file_name: str,
    rows: int,
) -> Iterator[ValidatedBlock]:
    """An appearance file read and validated ``rows`` lines at a time (``HEADER_MISMATCH`` as
    :func:`validated_blocks`)."""

    def validator(header: Record) -> _BlockValidator:
        mapped = map_appearance_header(header, schema, mapping, file_name)
        return AppearanceColumns(AppearanceValidator(schema, mapping, mapped))

    return _validated(path, codec, schema, file_name, rows, validator)


def validated_blocks(
    path: Path,
    codec: str,
    schema: DashboardSchema,
    *,
    file_name: str,
    tz: ZoneInfo,
    instant: InstantFormat,
    rows: int,
) -> Iterator[ValidatedBlock]:
    """An official file read and validated ``rows`` lines at a time.

    A header that is not one (or lacks a key or required column) raises ``HEADER_MISMATCH``
    naming ``file_name``, before any block.
    """

    def validator(header: Record) -> _BlockValidator:
        mapped = map_header(header, schema, file_name)
        return ColumnarValidator(RowValidator(schema, mapped, tz), instant)

    return _validated(path, codec, schema, file_name, rows, validator)


def _validated(
    path: Path,
    codec: str,
    schema: DashboardSchema,
    file_name: str,
    rows: int,
    validator_for: Callable[[Record], _BlockValidator],
) -> Iterator[ValidatedBlock]:
    validator: _BlockValidator | None = None
    for item in BlockReader(path, codec, max_field_chars_for(schema), rows).read():
        if isinstance(item, Block):
            assert validator is not None  # the reader yields the header first
            yield validator.validate(item)
        elif isinstance(item, RecordError):
            raise RunError("HEADER_MISMATCH", f"{file_name}: {item.message}")
        else:
            validator = validator_for(item)
