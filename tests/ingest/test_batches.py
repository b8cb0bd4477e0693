"""Column-wise validation (ingest/batches.py) gives every row what RowValidator gives it.

Valid rows: the same key, stored JSON, data hash (so stored hashes stay valid), versions,
occurred_at and completion; rejected rows: the same RejectedRow. Compared on the malformed
corpus and on generated schedules full of values that fail one rule or another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvboard.dashboards.columns import AppearanceMapping
from csvboard.dashboards.presets import production_schedule_schema
from csvboard.ingest.batches import ColumnarValidator, appearance_blocks
from csvboard.ingest.blocks import Block, BlockReader
from csvboard.ingest.decode import detect_encoding, open_text
from csvboard.ingest.errors import RunError
from csvboard.ingest.parse import (
    Record,
    iter_records,
    map_appearance_header,
    map_header,
    max_field_chars_for,
)
from csvboard.ingest.stage import _version_json, sqlite_timestamp
from csvboard.ingest.validate import (
    AppearanceValidator,
    RowValidator,
    SupplementRow,
    ValidRow,
    compact_json,
    reject_record_error,
)

from .corpus import build_corpus

SCHEMA = production_schedule_schema()
TOKYO = ZoneInfo("Asia/Tokyo")
LIMIT = max_field_chars_for(SCHEMA)


def _valid(row: ValidRow) -> tuple[Any, ...]:
    versions = [None if v is None else str(v) for v in row.version]
    return (
        "valid", row.line, row.row_key, compact_json(row.row_data), row.data_hash,
        _version_json(row.version), versions, sqlite_timestamp(row.occurred_at), row.completion,
    )  # fmt: skip


def row_path(path: Path, codec: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    validator: RowValidator | None = None
    with open_text(path, codec) as stream:
        for record in iter_records(stream, LIMIT):
            if validator is None:
                assert isinstance(record, Record)
                validator = RowValidator(SCHEMA, map_header(record, SCHEMA, path.name), TOKYO)
                continue
            result = (
                validator.validate(record)
                if isinstance(record, Record)
                else reject_record_error(record)
            )
            out.append(_valid(result) if isinstance(result, ValidRow) else ("rejected", result))
    return out


def columnar_path(path: Path, codec: str, rows: int) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    validator: ColumnarValidator | None = None
    for item in BlockReader(path, codec, LIMIT, rows).read():
        if not isinstance(item, Block):
            assert isinstance(item, Record)
            header = map_header(item, SCHEMA, path.name)
            validator = ColumnarValidator(RowValidator(SCHEMA, header, TOKYO), sqlite_timestamp)
            continue
        assert validator is not None
        block = validator.validate(item)
        found: list[tuple[Any, ...]] = [
            ("valid", line, key, data, digest, vjson, [v[i] for v in block.versions], at, done)
            for i, (line, key, data, digest, vjson, at, done) in enumerate(
                zip(
                    block.lines.tolist(), block.row_key, block.row_data, block.data_hash,
                    block.vjson, block.occurred_at, block.completion, strict=True,
                )
            )
        ]  # fmt: skip
        found += [_valid(r) if isinstance(r, ValidRow) else ("rejected", r) for r in block.rows]
        found.sort(key=lambda x: x[1].line if x[0] == "rejected" else x[1])
        assert len(found) == block.count
        assert block.rejected == sum(1 for f in found if f[0] == "rejected")
        out += found
    return out


def test_corpus_validates_alike(tmp_path: Path) -> None:
    compared = 0
    for case in build_corpus(tmp_path):
        try:
            codec = detect_encoding(case.path, "auto")
            expected = row_path(case.path, codec)
        except (RunError, AssertionError):
            continue  # undecodable, or no valid header: never validated
        for rows in (1, 3, 5000):
            assert columnar_path(case.path, codec, rows) == expected, case.path.name
        compared += 1
    assert compared >= 25


HEADER = "ProductNo,FSEIBAN,FHINCD,FHINMEI,FSIGENCD,FSIGENSHOYORYO,FKOJUN,progress,更新日時,備考"

_values = {
    "ProductNo": st.sampled_from(
        ["1000000001", "1000000002", "0000000003", "12", "１０００００００１", ""]
    ),
    "FSEIBAN": st.sampled_from(["ABCD1234", "********", "ＡＢＣＤ１２３４", "abc", " ABCD1234 "]),
    "FHINCD": st.sampled_from(["P-1", "P-2", "ＭＨ０１", " P-1", "", "P\u3000"]),
    "FHINMEI": st.sampled_from(["シャフト", "①㈱髙", "x", "", "\u3000"]),
    "FSIGENCD": st.sampled_from(["M01", "R\u3000", "m01", ""]),
    "FSIGENSHOYORYO": st.sampled_from(["1.5", "0", "1.50", "+2", ".5", "1e3", "x", "１．５", ""]),
    "FKOJUN": st.sampled_from(["10", "010", "+10", "1.0", "-0", "x", ""]),
    "progress": st.sampled_from(["", "完了", "完", " 完了 "]),
    "更新日時": st.sampled_from(
        ["", "2026/2/19 9:05", "2026/02/19", "2026-02-19T09:05:00+00:00", "2026/2/30", "x"]
    ),
    "備考": st.sampled_from(["", "急ぎ", " a ", '"q"', "a,b"]),
}


@st.composite
def schedules(draw: st.DrawFn) -> str:
    lines = [HEADER]
    for _ in range(draw(st.integers(0, 30))):
        cells = [draw(strategy) for strategy in _values.values()]
        lines.append(
            ",".join('"' + c.replace('"', '""') + '"' if "," in c or '"' in c else c for c in cells)
        )
    return "\r\n".join(lines) + "\r\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=schedules(), rows=st.integers(1, 8))
def test_generated_schedules_validate_alike(
    tmp_path_factory: pytest.TempPathFactory, text: str, rows: int
) -> None:
    path = tmp_path_factory.mktemp("gen") / "f.csv"
    path.write_bytes(text.encode("cp932"))
    assert columnar_path(path, "cp932", rows) == row_path(path, "cp932")


# -- appearance (status) files: AppearanceColumns against AppearanceValidator ------------------

STATUS_MAPPING = AppearanceMapping(
    key_columns={"FSEIBAN": "製番", "FHINCD": "品番", "FSIGENCD": "資源", "FKOJUN": "工順"},
    status_column="状態",
    completed_codes=["C", "X"],
)
KEYS_ONLY = AppearanceMapping(key_columns=STATUS_MAPPING.key_columns)


def _supplement(row: SupplementRow) -> tuple[Any, ...]:
    return ("valid", row.line, row.row_key, compact_json(row.supplement), row.data_hash,
            row.completion)  # fmt: skip


def appearance_row_path(path: Path, mapping: AppearanceMapping) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    validator: AppearanceValidator | None = None
    with open_text(path, "cp932") as stream:
        for record in iter_records(stream, LIMIT):
            if validator is None:
                assert isinstance(record, Record)
                header = map_appearance_header(record, SCHEMA, mapping, path.name)
                validator = AppearanceValidator(SCHEMA, mapping, header)
                continue
            result = (
                validator.validate(record)
                if isinstance(record, Record)
                else reject_record_error(record)
            )
            out.append(
                _supplement(result) if isinstance(result, SupplementRow) else ("rejected", result)
            )
    return out


def appearance_columnar_path(
    path: Path, mapping: AppearanceMapping, rows: int
) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for block in appearance_blocks(path, "cp932", SCHEMA, mapping, file_name=path.name, rows=rows):
        assert block.versions == [] and set(block.vjson) <= {None}
        assert set(block.occurred_at) <= {None}
        found: list[tuple[Any, ...]] = [
            ("valid", *values)
            for values in zip(
                block.lines.tolist(), block.row_key, block.row_data, block.data_hash,
                block.completion, strict=True,
            )
        ]  # fmt: skip
        found += [
            _supplement(r) if isinstance(r, SupplementRow) else ("rejected", r) for r in block.rows
        ]
        found.sort(key=lambda x: x[1].line if x[0] == "rejected" else x[1])
        assert len(found) == block.count
        assert block.rejected == sum(1 for f in found if f[0] == "rejected")
        out += found
    return out


STATUS_HEADER = "製番,品番,資源,工順,状態,作業者,メモ"
_status_values = [
    st.sampled_from(["ABCD1234", "ＡＢＣＤ１２３４", " ABCD1234 ", "abc", "********", ""]),
    st.sampled_from(["P-1", "ＭＨ０１", " P-1", "", "P\u3000"]),
    st.sampled_from(["M01", "R\u3000", "m01", ""]),
    st.sampled_from(["10", "010", "１０", "+10", "x", ""]),
    st.sampled_from(["C", " c ", "X", "x", "A", "", "完了", "ｃ"]),
    st.sampled_from(["山田", "髙橋", " ", "", "\u3000"]),
    st.sampled_from(["", "段取 3", "治具①", "㈱", '"q"', "a,b", "a\nb", "\x00"]),
]


@st.composite
def status_files(draw: st.DrawFn) -> str:
    lines = [STATUS_HEADER]
    for _ in range(draw(st.integers(0, 30))):
        cells = [draw(strategy) for strategy in _status_values]
        if draw(st.integers(0, 9)) == 0:
            cells = cells[: draw(st.integers(1, 8))]  # a ragged row
        lines.append(
            ",".join(
                '"' + c.replace('"', '""') + '"' if any(x in c for x in ',"\n') else c
                for c in cells
            )
        )
    return "\r\n".join(lines) + "\r\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=status_files(), rows=st.integers(1, 8), keys_only=st.booleans())
def test_generated_status_files_validate_alike(
    tmp_path_factory: pytest.TempPathFactory, text: str, rows: int, keys_only: bool
) -> None:
    path = tmp_path_factory.mktemp("status") / "s.csv"
    path.write_bytes(text.encode("cp932"))
    mapping = KEYS_ONLY if keys_only else STATUS_MAPPING
    assert appearance_columnar_path(path, mapping, rows) == appearance_row_path(path, mapping)


def test_a_status_file_validates_alike_in_large_blocks(tmp_path: Path) -> None:
    """Many clean lines (the columnar part), a few to judge one by one, and what comes out."""
    lines = [STATUS_HEADER]
    for i in range(3000):
        code = "C" if i % 3 == 0 else " x " if i % 3 == 1 else "A"
        lines.append(f"ABCD{i % 700:04d},P-{i % 5},M0{i % 3},{10 * (i % 4 + 1)},{code},髙橋,㈱{i}")
    lines[100] = "ABCD0001,P-1,M01,x,C,山田,"  # a key that fails: rejected
    lines[200] = "ABCD0001,P-1"  # ragged
    lines[300] = 'ABCD0001,P-1,M01,10,C,山田,"two\r\nlines"'
    path = tmp_path / "s.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp932"))
    columnar = appearance_columnar_path(path, STATUS_MAPPING, 5000)
    assert columnar == appearance_row_path(path, STATUS_MAPPING)
    assert len(columnar) == 3000
    rejected = [r for r in columnar if r[0] == "rejected"]
    assert [(r[1].line, r[1].reason_code) for r in rejected] == [
        (101, "TYPE"),
        (201, "ROW_SHAPE"),
    ]
    first = columnar[0]
    assert first[2] == '["ABCD0000","P-0","M00","10"]'
    assert first[3] == '{"作業者":"髙橋","メモ":"㈱0"}' and first[5] is True
