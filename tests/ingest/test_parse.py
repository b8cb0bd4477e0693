"""Streaming CSV parsing (line numbers, blank rows, limits, recovery) and header mapping."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TextIO, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csvboard.dashboards.columns import AppearanceMapping, ColumnDef, DashboardSchema
from csvboard.dashboards.presets import production_schedule_schema
from csvboard.ingest.errors import RunError
from csvboard.ingest.parse import (
    MIN_FIELD_LIMIT,
    STATUS_KEY,
    Record,
    RecordError,
    iter_records,
    line_ends_in_quotes,
    map_appearance_header,
    map_header,
    max_field_chars_for,
    max_line_chars_for,
)

LIMIT = 1000


def parse(text: str, limit: int = LIMIT) -> list[Record | RecordError]:
    return list(iter_records(io.StringIO(text, newline=""), limit))


def summary(items: list[Record | RecordError]) -> list[tuple[int, object]]:
    return [(i.line, i.cells if isinstance(i, Record) else i.code) for i in items]


# ----------------------------------------------------------------------------- records


def test_records_and_physical_line_numbers() -> None:
    text = 'h1,h2\r\na,b\r\n"multi\r\nline",c\r\nd,"x\ny\nz"\r\ne,f\r\n'
    assert summary(parse(text)) == [
        (1, ["h1", "h2"]),
        (2, ["a", "b"]),
        (3, ["multi\r\nline", "c"]),
        (5, ["d", "x\ny\nz"]),
        (8, ["e", "f"]),
    ]


def test_blank_lines_whitespace_lines_and_empty_rows_are_skipped() -> None:
    text = "\r\nh1,h2,h3\r\n\r\n   \r\n,,\r\n , ,\t\r\na,,\r\n\n\n,,,,\r\nb,c,d"
    assert summary(parse(text)) == [
        (2, ["h1", "h2", "h3"]),
        (7, ["a", "", ""]),
        (11, ["b", "c", "d"]),  # the last line has no line break
    ]


def test_lone_cr_and_mixed_line_endings_count_as_lines() -> None:
    assert summary(parse("h\r1\n2\r\n3\r")) == [(1, ["h"]), (2, ["1"]), (3, ["2"]), (4, ["3"])]


def test_formula_like_and_odd_cells_are_kept_verbatim() -> None:
    cells = ['=HYPERLINK("http://x","y")', "+1+1", "@SUM(A1)", " padded ", "a\x00b"]
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    assert summary(parse(buf.getvalue())) == [(1, cells)]


def test_field_limit_boundary() -> None:
    items = parse('a,12345\r\nb,123456\r\nc,"12345"\r\n', limit=5)
    assert summary(items) == [(1, ["a", "12345"]), (2, "FIELD_TOO_LARGE"), (3, ["c", "12345"])]


def test_field_too_large_unquoted_then_continue() -> None:
    text = "h1,h2\n1," + "x" * 50 + "\n2,ok\n"
    items = parse(text, limit=10)
    assert summary(items) == [(1, ["h1", "h2"]), (2, "FIELD_TOO_LARGE"), (3, ["2", "ok"])]
    error = items[1]
    assert isinstance(error, RecordError)
    assert error.message == "line 2: a value is longer than 10 characters; line 2 was skipped"


def test_field_too_large_in_first_line_of_multiline_quoted_value() -> None:
    # CPython's reader resumes on the next physical line after an error, which here is still
    # inside the quoted value: those lines must not come back as records.
    text = 'h1,h2\n1,"' + "x" * 50 + '\nfake,row\n"\n2,ok\n'
    items = parse(text, limit=10)
    assert summary(items) == [(1, ["h1", "h2"]), (2, "FIELD_TOO_LARGE"), (5, ["2", "ok"])]
    error = items[1]
    assert isinstance(error, RecordError)
    assert "lines 2–4 were skipped" in error.message


def test_field_too_large_in_the_middle_of_a_multiline_value() -> None:
    text = 'h\n"short\nshort\n' + "y" * 30 + '\nstill,inside\nend"\nnext\n'
    items = parse(text, limit=20)
    assert summary(items) == [(1, ["h"]), (2, "FIELD_TOO_LARGE"), (7, ["next"])]
    error = items[1]
    assert isinstance(error, RecordError)
    assert error.message == (
        "line 2: a value is longer than 20 characters (on line 4); lines 2–6 were skipped"
    )


def test_field_too_large_with_doubled_quotes_and_a_second_quoted_field() -> None:
    text = 'h,h2\n"' + "z" * 30 + '"",x",",\n"\n"a""b",c\n'
    # Record 2 = ['zzz…"",x', ',\n'] spans lines 2-3; the scanner must follow "" escapes.
    items = parse(text, limit=20)
    assert summary(items) == [(1, ["h", "h2"]), (2, "FIELD_TOO_LARGE"), (4, ['a"b', "c"])]


def test_field_too_large_and_unterminated_to_eof() -> None:
    items = parse('h\n"' + "q" * 30 + "\nmore\nlines\n", limit=10)
    assert summary(items) == [(1, ["h"]), (2, "FIELD_TOO_LARGE")]


def test_unterminated_quote_at_eof_is_row_shape() -> None:
    items = parse('h1,h2\n1,2\n3,"never\nclosed\n')
    assert summary(items) == [(1, ["h1", "h2"]), (2, ["1", "2"]), (3, "ROW_SHAPE")]
    error = items[2]
    assert isinstance(error, RecordError)
    assert "never closed" in error.message and "lines 3–4 were skipped" in error.message


def test_text_after_closing_quote_is_row_shape_and_parsing_continues() -> None:
    items = parse('h1,h2\n1,"Bolt 1/2" x 3"\n2,ok\n3,"a"b,"c\nd"\n4,ok\n')
    assert summary(items) == [
        (1, ["h1", "h2"]),
        (2, "ROW_SHAPE"),
        (3, ["2", "ok"]),
        (4, "ROW_SHAPE"),  # the quoted value opened after the error spans line 5 too
        (6, ["4", "ok"]),
    ]


def test_line_ends_in_quotes_scanner() -> None:
    assert line_ends_in_quotes('a,"b\n', False)
    assert not line_ends_in_quotes('a,"b"\n', False)
    assert not line_ends_in_quotes('a,b"c\n', False)  # a quote mid-value is literal
    assert line_ends_in_quotes('a,b"c,"\n', False)
    assert line_ends_in_quotes('x""y\n', True)  # escaped quote, still inside
    assert not line_ends_in_quotes('x"\n', True)
    assert not line_ends_in_quotes('x" junk\n', True)
    assert line_ends_in_quotes('x","\n', True)
    assert line_ends_in_quotes("\n", True)
    assert not line_ends_in_quotes("", False)


def test_header_only_and_empty() -> None:
    assert summary(parse("")) == []
    assert summary(parse("\r\n\r\n")) == []
    assert summary(parse("a,b\r\n")) == [(1, ["a", "b"])]


def test_stream_is_consumed_lazily() -> None:
    """Records come out while the input is still being read: an endless stream works."""

    class Endless(io.StringIO):
        pulled = 0

        def readline(self, size: int | None = -1, /) -> str:
            self.pulled += 1
            return f"{self.pulled},x\n"

    stream = Endless()
    items = iter_records(cast(TextIO, stream), LIMIT)
    first = [next(items) for _ in range(3)]
    assert [i.line for i in first] == [1, 2, 3]
    assert stream.pulled <= 4


def test_decode_error_while_reading_becomes_run_error(tmp_path: Path) -> None:
    path = tmp_path / "changed.csv"
    path.write_bytes(b"a,b\n1,\xff\n")
    with path.open(encoding="utf-8", newline="") as fh, pytest.raises(RunError) as info:
        list(iter_records(fh, LIMIT))
    assert info.value.code == "ENCODING_UNSUPPORTED"
    assert "changed.csv" in info.value.message


def test_max_field_chars_for() -> None:
    schema = production_schedule_schema()
    assert max_field_chars_for(schema) == MIN_FIELD_LIMIT
    big = DashboardSchema(columns=(ColumnDef(name="k", max_length=5_000_000),), key_columns=("k",))
    assert max_field_chars_for(big) == 5_000_001


CELL = st.text(alphabet=st.sampled_from(list('ab ,"\r\n\x00製①\t')), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(CELL, min_size=1, max_size=4), max_size=12),
    terminator=st.sampled_from(["\r\n", "\n", "\r"]),
    limit=st.integers(min_value=1, max_value=15),
    quote_all=st.booleans(),
)
def test_property_roundtrip_with_csv_writer(
    rows: list[list[str]], terminator: str, limit: int, quote_all: bool
) -> None:
    """What csv.writer wrote comes back: same cells, exact start lines; over-long values
    become FIELD_TOO_LARGE and never disturb the records after them."""
    buf = io.StringIO(newline="")
    # QUOTE_MINIMAL only quotes CR/LF when they are in the line terminator, so with a bare
    # "\r" or "\n" terminator the writer's own output would not round-trip: quote everything.
    if quote_all or terminator != "\r\n":
        writer = csv.writer(buf, lineterminator=terminator, quoting=csv.QUOTE_ALL)
    else:
        writer = csv.writer(buf, lineterminator=terminator)
    expected: list[tuple[int, object]] = []
    line = 1
    for row in rows:
        start = buf.tell()
        writer.writerow(row)
        written = buf.getvalue()[start:]
        if any(len(cell) > limit for cell in row):
            expected.append((line, "FIELD_TOO_LARGE"))
        elif "".join(row).strip():
            expected.append((line, row))
        line += written.count("\n") + written.count("\r") - written.count("\r\n")
    assert summary(parse(buf.getvalue(), limit)) == expected


# ----------------------------------------------------------------------------- header

EN = [
    "ProductNo",
    "FSEIBAN",
    "FHINCD",
    "FHINMEI",
    "FSIGENCD",
    "FSIGENMEI",
    "FSIGENSHOYORYO",
    "FKOJUN",
    "progress",
    "updatedAt",
    "registeredAt",
]


def header(*cells: str) -> Record:
    return Record(1, list(cells))


def test_map_header_canonical_names() -> None:
    hm = map_header(header(*EN), production_schedule_schema(), "f.csv")
    assert hm.width == 11
    assert hm.columns == {name: i for i, name in enumerate(EN)}
    assert hm.extras == {}


def test_map_header_japanese_aliases_nfkc_padding_bom_and_extras() -> None:
    cells = [
        "\ufeff製造オーダー番号",  # stray BOM on the first cell
        "\u3000製番\u3000",  # ideographic spaces
        " 品番 ",
        "品名",
        "資源ＣＤ",  # full-width letters
        "資源所要量",
        "ＦＫＯＪＵＮ",
        "更新日時",
        "備考",
        "",  # unnamed column: not kept
        "ﾒﾓ",  # half-width katakana extra, normalised to メモ
    ]
    hm = map_header(header(*cells), production_schedule_schema(), "f.csv")
    assert hm.width == 11
    assert hm.columns == {
        "ProductNo": 0,
        "FSEIBAN": 1,
        "FHINCD": 2,
        "FHINMEI": 3,
        "FSIGENCD": 4,
        "FSIGENSHOYORYO": 5,
        "FKOJUN": 6,
        "updatedAt": 7,
    }
    assert hm.extras == {"備考": 8, "メモ": 10}


def test_missing_key_column_names_it() -> None:
    cells = [c for c in EN if c != "FSEIBAN"]
    with pytest.raises(RunError) as info:
        map_header(header(*cells), production_schedule_schema(), "sched.csv")
    assert info.value.code == "HEADER_MISMATCH"
    assert info.value.message == (
        "sched.csv: required column(s) FSEIBAN (製番) missing from header; found: "
        + ", ".join(cells)
    )


def test_missing_several_columns() -> None:
    with pytest.raises(RunError) as info:
        map_header(header("製番", "品番", "メモ"), production_schedule_schema(), "f.csv")
    msg = info.value.message
    for name in ("ProductNo", "FHINMEI", "FSIGENCD", "FSIGENSHOYORYO", "FKOJUN (工順)"):
        assert name in msg
    assert "FSIGENMEI" not in msg  # optional
    assert "found: 製番, 品番, メモ" in msg


def test_key_column_missing_even_when_not_required() -> None:
    schema = DashboardSchema(columns=(ColumnDef(name="k"), ColumnDef(name="v")), key_columns=("k",))
    with pytest.raises(RunError, match="required column\\(s\\) k missing"):
        map_header(header("v"), schema, "f.csv")


def test_two_cells_mapping_to_one_column() -> None:
    with pytest.raises(RunError) as info:
        map_header(header(*EN, "品番"), production_schedule_schema(), "f.csv")
    assert info.value.code == "HEADER_MISMATCH"
    assert "columns 3 (FHINCD) and 12 (品番) both map to FHINCD" in info.value.message


def test_same_header_twice() -> None:
    with pytest.raises(RunError) as info:
        map_header(header(*EN, "FKOJUN"), production_schedule_schema(), "f.csv")
    assert "columns 8 (FKOJUN) and 12 (FKOJUN)" in info.value.message


def test_duplicate_extra_headers() -> None:
    with pytest.raises(RunError) as info:
        map_header(header(*EN, "備考", "備考"), production_schedule_schema(), "f.csv")
    assert info.value.code == "HEADER_MISMATCH"
    assert "'備考' appears more than once (columns 12 and 13)" in info.value.message


def test_duplicate_unnamed_columns_are_fine() -> None:
    hm = map_header(header(*EN, "", " "), production_schedule_schema(), "f.csv")
    assert hm.width == 13 and hm.extras == {}


APPEARANCE = AppearanceMapping(
    key_columns={"FSEIBAN": "製番", "FHINCD": "品番", "FSIGENCD": "資源", "FKOJUN": "工順"},
    status_column="状態",
)


def test_appearance_header() -> None:
    cells = ["状態", "製番", "品番", "資源", "ＦＫＯＪＵＮ", "", "外観検査者"]
    mapping = APPEARANCE.model_copy(
        update={"key_columns": {**APPEARANCE.key_columns, "FKOJUN": "FKOJUN"}}
    )
    hm = map_appearance_header(header(*cells), production_schedule_schema(), mapping, "a.csv")
    assert hm.width == 7
    assert hm.columns == {"FSEIBAN": 1, "FHINCD": 2, "FSIGENCD": 3, "FKOJUN": 4, STATUS_KEY: 0}
    assert hm.extras == {"外観検査者": 6}


def test_appearance_header_without_status() -> None:
    mapping = AppearanceMapping(key_columns=APPEARANCE.key_columns)
    hm = map_appearance_header(
        header("製番", "品番", "資源", "工順", "状態"), production_schedule_schema(), mapping, "a"
    )
    assert STATUS_KEY not in hm.columns
    assert hm.extras == {"状態": 4}


def test_appearance_header_missing_mapped_column() -> None:
    with pytest.raises(RunError) as info:
        map_appearance_header(
            header("製番", "品番", "工順"), production_schedule_schema(), APPEARANCE, "a.csv"
        )
    assert info.value.code == "HEADER_MISMATCH"
    assert "資源 (for FSIGENCD)" in info.value.message
    assert "状態 (for status)" in info.value.message


def test_appearance_mapping_missing_a_key_column() -> None:
    mapping = AppearanceMapping(key_columns={"FSEIBAN": "製番"})
    with pytest.raises(RunError) as info:
        map_appearance_header(header("製番"), production_schedule_schema(), mapping, "a.csv")
    assert "FHINCD, FSIGENCD, FKOJUN" in info.value.message


def test_appearance_duplicate_header() -> None:
    with pytest.raises(RunError, match="appears more than once"):
        map_appearance_header(
            header("製番", "品番", "資源", "工順", "状態", "メモ", "メモ"),
            production_schedule_schema(),
            APPEARANCE,
            "a.csv",
        )


def test_a_line_longer_than_the_line_limit_is_skipped_without_being_held_whole() -> None:
    limit = max_line_chars_for(100)
    text = "a,b\r\n1,2\r\n" + "x" * (limit + 5) + ",y\r\n3,4\r\n" + "z" * (limit * 2)
    out = list(iter_records(io.StringIO(text, newline=""), 100))
    assert [r.cells for r in out if isinstance(r, Record)] == [["a", "b"], ["1", "2"], ["3", "4"]]
    errors = [r for r in out if isinstance(r, RecordError)]
    assert [(e.line, e.code) for e in errors] == [(3, "FIELD_TOO_LARGE"), (5, "FIELD_TOO_LARGE")]
    assert f"longer than {limit:,} characters" in errors[0].message
    assert [r.line for r in out if isinstance(r, Record)] == [1, 2, 4]
