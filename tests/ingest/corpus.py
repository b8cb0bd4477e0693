"""A corpus of malformed and ugly production-schedule exports, generated from code.

``build_corpus(directory)`` writes every file and returns one ``CorpusCase`` per file with
its exact expected outcome, so the same corpus drives the pure-Python pipeline tests here
and the end-to-end tests through the database. Files are generated rather than committed:
several are deliberately not valid text, one is 5 MB.

Expectations, per case:

* ``run_error``: the ``RunError`` code that fails the whole run (then all counts are 0), or
  None; ``run_error_mentions``: substrings the run error message must contain.
* ``valid`` / ``rejected``: rows that pass validation / are rejected (parser-level record
  errors included); ``reasons`` and ``rejected_lines``: the rejected rows' reason codes and
  1-based start lines, in file order.
* ``excluded_duplicate_lines``: valid rows that lose the in-file duplicate fold
  (``DUPLICATE_KEY_IN_SOURCE``), in file order. Applied rows = valid - len(excluded).
* ``codec``: what ``detect_encoding`` returns (None when it raises).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from csvboard.dashboards.columns import Encoding
from csvboard.dashboards.presets import production_schedule_schema
from csvboard.ingest.decode import detect_encoding, open_text
from csvboard.ingest.errors import RunError
from csvboard.ingest.parse import Record, iter_records, map_header, max_field_chars_for
from csvboard.ingest.validate import (
    RejectedRow,
    RowValidator,
    ValidRow,
    fold_duplicates,
    reject_record_error,
)

EN_HEADER = [
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
# The same columns as the ERP's Japanese export names them (same order).
JA_HEADER = [
    "製造オーダー番号",
    "製番",
    "品番",
    "品名",
    "資源CD",
    "資源名",
    "資源所要量",
    "工順",
    "進捗",
    "更新日時",
    "登録日時",
]
WIDTH = len(EN_HEADER)
HUGE_FIELD_CHARS = 5 * 1024 * 1024


@dataclass(frozen=True)
class CorpusCase:
    name: str
    description: str
    path: Path
    encoding: Encoding = "auto"
    codec: str | None = None
    run_error: str | None = None
    run_error_mentions: tuple[str, ...] = ()
    valid: int = 0
    rejected: int = 0
    reasons: tuple[str, ...] = ()
    rejected_lines: tuple[int, ...] = ()
    excluded_duplicate_lines: tuple[int, ...] = ()
    # Spot checks: (line, column, expected row_data value) of valid rows.
    values: tuple[tuple[int, str, str], ...] = ()


@dataclass
class Outcome:
    """What the pure-Python pipeline made of a file."""

    codec: str | None = None
    run_error: RunError | None = None
    valid: list[ValidRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)

    def excluded_duplicate_lines(self) -> tuple[int, ...]:
        by_key: dict[str, list[ValidRow]] = {}
        for row in self.valid:
            by_key.setdefault(row.row_key, []).append(row)
        losers: list[int] = []
        for rows in by_key.values():
            winner = fold_duplicates((r.line, r.version) for r in rows)
            losers.extend(r.line for r in rows if r.line != winner)
        return tuple(sorted(losers))


def run_pipeline(path: Path, encoding: Encoding = "auto", tz: str = "Asia/Tokyo") -> Outcome:
    """decode -> header -> records -> RowValidator for the production-schedule preset."""
    schema = production_schedule_schema()
    outcome = Outcome()
    try:
        outcome.codec = detect_encoding(path, encoding)
        with open_text(path, outcome.codec) as stream:
            records = iter_records(stream, max_field_chars_for(schema))
            first = next(records, None)
            if first is None:
                return outcome  # empty or header-less file: nothing to do
            if not isinstance(first, Record):
                raise RunError("HEADER_MISMATCH", f"{path.name}: {first.message}")
            validator = RowValidator(schema, map_header(first, schema, path.name), ZoneInfo(tz))
            for item in records:
                result = (
                    validator.validate(item)
                    if isinstance(item, Record)
                    else reject_record_error(item)
                )
                if isinstance(result, ValidRow):
                    outcome.valid.append(result)
                else:
                    outcome.rejected.append(result)
    except RunError as exc:
        outcome.run_error = exc
        outcome.valid.clear()
        outcome.rejected.clear()
    return outcome


# --------------------------------------------------------------------------- file builders


def _row(i: int, **over: str) -> list[str]:
    """A valid row (distinct key per ``i``), with some columns overridden."""
    values = {
        "ProductNo": f"{1_000_000 + i:010d}",
        "FSEIBAN": f"SB{i:06d}",
        "FHINCD": f"P{i:04d}",
        "FHINMEI": f"部品{i}",
        "FSIGENCD": "R01",
        "FSIGENMEI": "塗装",
        "FSIGENSHOYORYO": "1.5",
        "FKOJUN": "10",
        "progress": "",
        "updatedAt": "2026/2/19 9:05",
        "registeredAt": "2026/2/1",
    }
    values.update(over)
    return [values[c] for c in EN_HEADER]


def _csv(rows: list[list[str]], newline: str = "\r\n") -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerows(rows)
    return buf.getvalue()


def _line(cells: list[str], newline: str = "\r\n") -> str:
    return _csv([cells], newline)


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    content: Callable[[], bytes]
    encoding: Encoding = "auto"
    codec: str | None = "utf-8"
    run_error: str | None = None
    run_error_mentions: tuple[str, ...] = ()
    valid: int = 0
    rejected: tuple[tuple[int, str], ...] = ()  # (line, reason) in file order
    excluded_duplicate_lines: tuple[int, ...] = ()
    values: tuple[tuple[int, str, str], ...] = ()


def _utf8(text: str) -> Callable[[], bytes]:
    return lambda: text.encode("utf-8")


def _clean() -> bytes:
    return _csv([EN_HEADER, *(_row(i) for i in range(1, 6))], "\n").encode()


def _cp932() -> bytes:
    rows = [
        JA_HEADER,
        _row(1, FHINMEI="①ブラケット", FSIGENMEI="㈱髙橋塗装"),
        _row(2, FHINMEI="ﾎﾞﾙﾄ M8×20", FSIGENMEI="ﾚｰｻﾞｰ加工"),
        _row(3, FHINMEI="髙精度シャフト", progress="完了"),
        _row(4, FHINMEI="Ⅲ型カバー ～改～"),
    ]
    return _csv(rows).encode("cp932")


def _bom_crlf() -> bytes:
    rows = [JA_HEADER, _row(1), _row(2, progress="完了"), _row(3)]
    return codecs.BOM_UTF8 + _csv(rows).encode()


def _header_only() -> bytes:
    return _csv([EN_HEADER]).encode()


def _bom_blank_lines() -> bytes:
    return codecs.BOM_UTF8 + b"\r\n\r\n  \r\n"


def _neither() -> bytes:
    # 0x81 0x2C: 0x81 cannot start a UTF-8 character, and a CP932 lead byte 0x81 needs a
    # trail byte >= 0x40 — not a comma.
    head = _csv([EN_HEADER, _row(1)]).encode()
    bad = _line(_row(2, FHINMEI="@@")).encode().replace(b"@@", b"\x81,")
    return head + bad + _line(_row(3)).encode()


def _utf8_corrupt_midfile() -> bytes:
    # A UTF-8 export truncated mid-character on line 5: "部" + the first byte of "品" + ",".
    rows = [JA_HEADER, *(_row(i, FHINMEI="部品") for i in range(1, 4))]
    good = _csv(rows).encode()
    broken = (
        _line(_row(4, FHINMEI="部品")).encode().replace("部品".encode(), "部".encode() + b"\xe5")
    )
    return good + broken + _line(_row(5)).encode()


def _cp932_forced_utf8() -> bytes:
    return _csv([JA_HEADER, _row(1, FHINMEI="㈱髙橋")]).encode("cp932")


def _forced_utf8_bom() -> bytes:
    return codecs.BOM_UTF8 + _csv([JA_HEADER, _row(1), _row(2)]).encode()


def _missing_key_column() -> bytes:
    header = [h for h in JA_HEADER if h != "製番"]
    rows = [r[:1] + r[2:] for r in (_row(1), _row(2))]
    return _csv([header, *rows]).encode()


def _missing_required_column() -> bytes:
    header = [h for h in EN_HEADER if h != "FSIGENSHOYORYO"]
    rows = [r[:6] + r[7:] for r in (_row(1), _row(2))]
    return _csv([header, *rows]).encode()


def _duplicate_header() -> bytes:
    header = [*EN_HEADER, "品番"]
    return _csv([header, [*_row(1), "P9999"]]).encode()


def _duplicate_extra_header() -> bytes:
    header = [*EN_HEADER, "備考", "担当", "備考"]
    return _csv([header, [*_row(1), "a", "b", "c"]]).encode()


def _ragged() -> bytes:
    rows = [
        EN_HEADER,
        _row(1),
        _row(2)[:5],  # line 3: short
        _row(3),
        [*_row(4), "extra", "more"],  # line 5: long
        _row(5)[:-1],  # line 6: one short (trailing column dropped)
        _row(6),
    ]
    return _csv(rows).encode()


def _quoted_newlines() -> bytes:
    text = (
        _line(EN_HEADER)
        + _line(_row(1, FHINMEI="一行目\r\n二行目\r\n三行目"))  # lines 2-4
        + _line(_row(2))  # line 5
        + _line(_row(3, FSEIBAN="AB12"))  # line 6: PATTERN
        + _line(_row(4, FSIGENMEI="塗装\n(外注)"))  # lines 7-8 (bare LF inside quotes)
        + _line(_row(5, FHINCD=""))  # line 9: REQUIRED
        + _line(_row(6))  # line 10
    )
    return text.encode()


def _nul() -> bytes:
    text = (
        _line(EN_HEADER)
        + _line(_row(1))
        + _line(_row(2, FHINMEI="部品\x00A"))  # line 3
        + _line(_row(3))
    )
    return text.encode()


def _huge_quoted_field() -> bytes:
    # A 5 MB quoted value spanning 50 physical lines (lines 3-52). The parser limit (1 MiB)
    # fires inside the value on about its 11th line, so the parser must skip the remaining
    # lines up to the closing quote before reading the next record.
    chunk = "x" * (HUGE_FIELD_CHARS // 50)
    huge = "\n".join([chunk] * 50)
    text = (
        _line(EN_HEADER)
        + _line(_row(1))  # line 2
        + _line(_row(2, FHINMEI=huge))  # lines 3-52
        + _line(_row(3))  # line 53
        + _line(_row(4, FKOJUN="abc"))  # line 54: TYPE
        + _line(_row(5))  # line 55
    )
    return text.encode()


def _huge_unquoted_field() -> bytes:
    huge = "y" * (2 * 1024 * 1024)
    text = (
        _line(EN_HEADER)
        + _line(_row(1))
        + _line(_row(2, FSIGENMEI=huge))  # line 3: unquoted, single line
        + _line(_row(3))
    )
    return text.encode()


def _length_exceeded() -> bytes:
    text = (
        _line(EN_HEADER)
        + _line(_row(1, FHINMEI="名" * 10_000))  # exactly the limit: fine
        + _line(_row(2, FHINMEI="名" * 10_001))  # line 3: LENGTH
        + _line(_row(3))
    )
    return text.encode()


def _duplicate_keys() -> bytes:
    same = {"FSEIBAN": "DUPKEY01", "FHINCD": "P-1", "FSIGENCD": "R01", "FKOJUN": "10"}
    other = {"FSEIBAN": "DUPKEY02", "FHINCD": "P-2", "FSIGENCD": "R02", "FKOJUN": "20"}
    rows = [
        EN_HEADER,
        _row(1, ProductNo="0000000005", **same),  # line 2: lower version, loses
        _row(2, ProductNo="0000000009", **same),  # line 3: highest ProductNo
        _row(3, ProductNo="0000000007", **same),  # line 4: lower, loses
        _row(4, ProductNo="0000000009", **same),  # line 5: tie with 3 -> last wins
        _row(5, ProductNo="0000000001", updatedAt="2026/2/1 8:00", **other),  # 6
        _row(6, ProductNo="0000000001", updatedAt="2026/2/1 9:00", **other),  # 7: newer
        _row(7, ProductNo="0000000001", updatedAt="", **other),  # 8: unknown -> equal, wins
        _row(8),  # line 9: unrelated
    ]
    return _csv(rows).encode()


def _invalid_dates() -> bytes:
    rows = [
        EN_HEADER,
        _row(1, updatedAt="2026/13/45"),  # line 2: TYPE
        _row(2, registeredAt="2026-02-30"),  # line 3: TYPE
        _row(3, updatedAt="2026/2/30 10:00"),  # line 4: TYPE
        _row(4, updatedAt="2026/2/3 9:05:07", registeredAt="2026/02/03"),  # line 5
        _row(5, updatedAt="2026-02-19T09:00:00+09:00", registeredAt=""),  # line 6
        _row(6, updatedAt="2026/2/19 25:00"),  # line 7: TYPE
        _row(7, updatedAt="", registeredAt=""),  # line 8: real exports often leave them empty
    ]
    return _csv(rows).encode()


FORMULAS = ('=HYPERLINK("http://x","y")', "+1+1", "@SUM(A1)", "-2+3")


def _formula_cells() -> bytes:
    rows = [
        [*EN_HEADER, "備考"],
        [*_row(1, FHINMEI=FORMULAS[0]), FORMULAS[2]],
        [*_row(2, FHINMEI=FORMULAS[1], FSIGENMEI=FORMULAS[3]), ""],
        [*_row(3, FSIGENMEI=FORMULAS[2]), FORMULAS[0]],
    ]
    return _csv(rows).encode()


def _fullwidth_keys() -> bytes:
    rows = [
        EN_HEADER,
        _row(1, FSEIBAN="AB123456", FHINCD="P-100", FKOJUN="10"),
        _row(2, FSEIBAN="ＡＢ１２３４５６", FHINCD="Ｐ－１００", FKOJUN="１０"),  # same key
        _row(3, FSEIBAN="ＣＤ９８７６５４", FSIGENSHOYORYO="２.５"),
    ]
    return _csv(rows).encode()


def _trailing_spaces_keys() -> bytes:
    rows = [
        EN_HEADER,
        _row(1, FSEIBAN="AB123456", FHINCD="P-1", FSIGENCD="R01"),
        _row(2, FSEIBAN="AB123456  ", FHINCD="P-1 ", FSIGENCD=" R01"),
        _row(3, FSEIBAN=" AB123456", FHINCD="P-1\u3000", FSIGENCD="R01\t"),
    ]
    return _csv(rows).encode()


def _bad_patterns() -> bytes:
    rows = [
        EN_HEADER,
        _row(1, FSEIBAN="AB12"),  # line 2
        _row(2, FSEIBAN="AB-12345"),  # line 3
        _row(3, ProductNo="123456789"),  # line 4: 9 digits
        _row(4, ProductNo="12345678901"),  # line 5: 11 digits
        _row(5, FSEIBAN="********"),  # line 6: not yet assigned: valid
        _row(6, ProductNo="００００００１２３４"),  # line 7: full-width digits: valid
        _row(7, FSEIBAN="製番１２３４５６"),  # line 8: kanji
    ]
    return _csv(rows).encode()


def _bad_numbers() -> bytes:
    rows = [
        EN_HEADER,
        _row(1, FSIGENSHOYORYO="1,234"),  # line 2: thousands separator
        _row(2, FSIGENSHOYORYO="abc"),  # line 3
        _row(3, FKOJUN="1.5"),  # line 4
        _row(4, FKOJUN="1_0"),  # line 5: int() would accept this
        _row(5, FSIGENSHOYORYO="１.５", FKOJUN=" 20 "),  # line 6: valid
        _row(6, FSIGENSHOYORYO="NaN"),  # line 7
        _row(7, FSIGENSHOYORYO="0.25"),  # line 8: valid
    ]
    return _csv(rows).encode()


def _required_empty() -> bytes:
    rows = [
        EN_HEADER,
        _row(1, FHINCD=""),  # line 2
        _row(2, FHINMEI="   "),  # line 3
        _row(3, FSIGENCD=""),  # line 4
        _row(4, FSIGENMEI=""),  # line 5: optional, valid
        _row(5, ProductNo=""),  # line 6
    ]
    return _csv(rows).encode()


def _unterminated_quote() -> bytes:
    text = (
        _line(EN_HEADER)
        + _line(_row(1))
        + _line(_row(2))
        + ",".join(_row(3)[:3])
        + ',"never closed\r\n'  # line 4 to EOF
        + _line(_row(4))
    )
    return text.encode()


def _bad_quoting_midfile() -> bytes:
    cells = _row(2)
    text = (
        _line(EN_HEADER)
        + _line(_row(1))
        + ",".join(cells[:3])
        + ',"Bolt 1/2" x 3",'
        + ",".join(cells[4:])
        + "\r\n"  # line 3
        + _line(_row(3))
    )
    return text.encode()


def _progress_values() -> bytes:
    rows = [
        EN_HEADER,
        _row(1, progress="完了"),
        _row(2, progress=""),
        _row(3, progress=" 完了 "),
        _row(4, progress="済"),  # line 5: PATTERN
        _row(5, progress="完了済"),  # line 6: PATTERN
    ]
    return _csv(rows).encode()


def _blank_lines() -> bytes:
    empty_row = "," * (WIDTH - 1)
    text = (
        "\r\n"  # line 1: blank before the header
        + _line(EN_HEADER)  # line 2
        + _line(_row(1))  # line 3
        + "\r\n"  # line 4
        + empty_row
        + "\r\n"  # line 5: Excel's empty row
        + "   \r\n"  # line 6
        + _line(_row(2, FSEIBAN="BAD"))  # line 7: PATTERN
        + _line(_row(3))  # line 8
        + empty_row
        + "\r\n"
        + empty_row
        + "\r\n"  # lines 9-10
    )
    return text.encode()


def _header_variants() -> bytes:
    header = [
        "\u3000製番\u3000",
        " 品番 ",
        "ＦＨＩＮＭＥＩ",
        "資源ＣＤ",
        "製造オーダー番号",
        "資源所要量",
        "ＦＫＯＪＵＮ",
        "備考",
        "担当者",
        "",
    ]
    r = _row(1)
    by = dict(zip(EN_HEADER, r, strict=True))
    cells = [by[c] for c in ("FSEIBAN", "FHINCD", "FHINMEI", "FSIGENCD", "ProductNo")]
    rows = [
        header,
        [*cells, "1.5", "10", "急ぎ", "山田", ""],
        [*_row(2)[1:3], "x", "R01", _row(2)[0], "2", "20", "", "", "junk"],  # unnamed col dropped
    ]
    return _csv(rows).encode("cp932")


def _mixed_line_endings() -> bytes:
    text = (
        _line(EN_HEADER, "\r\n")
        + _line(_row(1), "\n")  # line 2
        + _line(_row(2), "\r")  # line 3 (old Mac)
        + _line(_row(3, FKOJUN="x"), "\r\n")  # line 4: TYPE
        + _line(_row(4), "\n")  # line 5
    )
    return text.encode()


def _double_bom() -> bytes:
    return codecs.BOM_UTF8 * 2 + _csv([EN_HEADER, _row(1)]).encode()


def _leading_zero_kojun() -> bytes:
    rows = [
        EN_HEADER,
        _row(1, FSEIBAN="ZERO0001", FHINCD="P-ZERO", FKOJUN="010"),
        _row(2, FSEIBAN="ZERO0001", FHINCD="P-ZERO", FKOJUN="10"),  # same step: FKOJUN is numeric
        _row(3, FSEIBAN="ZERO0001", FHINCD="P-ZERO", FKOJUN="0100"),  # a different step (100)
    ]
    return _csv(rows).encode()


def _optional_columns_absent() -> bytes:
    header = ["FKOJUN", "FSIGENSHOYORYO", "FSIGENCD", "FHINMEI", "FHINCD", "FSEIBAN", "ProductNo"]
    rows = [header]
    for i in (1, 2):
        by = dict(zip(EN_HEADER, _row(i), strict=True))
        rows.append([by[c] for c in header])
    return _csv(rows).encode()


def _nul_in_extra() -> bytes:
    rows = [
        [*EN_HEADER, "備考"],
        [*_row(1), "ok"],
        [*_row(2), "bad\x00"],  # line 3
    ]
    return _csv(rows).encode()


SPECS: tuple[_Spec, ...] = (
    _Spec("01_clean_utf8.csv", "baseline: UTF-8, English header, LF", _clean, valid=5),
    _Spec(
        "02_cp932_ibm_nec_chars.csv",
        "CP932 with ①, ㈱, 髙, Ⅲ, ～ and half-width katakana; Japanese header",
        _cp932,
        codec="cp932",
        valid=4,
        values=(
            (2, "FHINMEI", "①ブラケット"),
            (2, "FSIGENMEI", "㈱髙橋塗装"),
            (3, "FHINMEI", "ﾎﾞﾙﾄ M8×20"),
        ),
    ),
    _Spec(
        "03_utf8_bom_crlf.csv",
        "UTF-8 with BOM, CRLF, Japanese header",
        _bom_crlf,
        codec="utf-8-sig",
        valid=3,
    ),
    _Spec("04_empty.csv", "zero bytes", lambda: b"", valid=0),
    _Spec("05_header_only.csv", "a header and nothing else", _header_only, valid=0),
    _Spec(
        "06_bom_and_blank_lines.csv",
        "a BOM followed by blank lines only (no header at all)",
        _bom_blank_lines,
        codec="utf-8-sig",
    ),
    _Spec(
        "07_neither_utf8_nor_cp932.csv",
        "byte 0x81 followed by a comma on line 3: invalid in both encodings",
        _neither,
        codec=None,
        run_error="ENCODING_UNSUPPORTED",
        run_error_mentions=("07_neither_utf8_nor_cp932.csv", "line 3", "0x81 0x2C"),
    ),
    _Spec(
        "08_utf8_truncated_char_midfile.csv",
        "UTF-8 Japanese export with a character cut in half on line 5 (not CP932 either)",
        _utf8_corrupt_midfile,
        codec=None,
        run_error="ENCODING_UNSUPPORTED",
        run_error_mentions=("line 5", "0xE5 0x2C", "neither UTF-8 nor CP932"),
    ),
    _Spec(
        "09_cp932_forced_utf8.csv",
        "a CP932 file on a dashboard forced to utf-8",
        _cp932_forced_utf8,
        encoding="utf-8",
        codec=None,
        run_error="ENCODING_UNSUPPORTED",
        run_error_mentions=("line 1", "not valid UTF-8"),
    ),
    _Spec(
        "10_bom_forced_utf8.csv",
        "a BOM file on a dashboard forced to utf-8: the BOM is still stripped",
        _forced_utf8_bom,
        encoding="utf-8",
        codec="utf-8-sig",
        valid=2,
    ),
    _Spec(
        "11_missing_key_column.csv",
        "no 製番 column",
        _missing_key_column,
        run_error="HEADER_MISMATCH",
        run_error_mentions=("FSEIBAN (製番)", "missing", "found: 製造オーダー番号"),
    ),
    _Spec(
        "12_missing_required_column.csv",
        "no FSIGENSHOYORYO column",
        _missing_required_column,
        run_error="HEADER_MISMATCH",
        run_error_mentions=("FSIGENSHOYORYO",),
    ),
    _Spec(
        "13_duplicate_header_alias.csv",
        "FHINCD and its alias 品番 both present",
        _duplicate_header,
        run_error="HEADER_MISMATCH",
        run_error_mentions=("columns 3 (FHINCD) and 12 (品番)", "FHINCD"),
    ),
    _Spec(
        "14_duplicate_extra_header.csv",
        "an extra column 備考 appears twice",
        _duplicate_extra_header,
        run_error="HEADER_MISMATCH",
        run_error_mentions=("備考", "columns 12 and 14"),
    ),
    _Spec(
        "15_ragged_rows.csv",
        "rows with too few and too many values",
        _ragged,
        valid=3,
        rejected=((3, "ROW_SHAPE"), (5, "ROW_SHAPE"), (6, "ROW_SHAPE")),
    ),
    _Spec(
        "16_quoted_newlines.csv",
        "values with CRLF and LF inside quotes; later line numbers stay physical",
        _quoted_newlines,
        valid=4,
        rejected=((6, "PATTERN"), (9, "REQUIRED")),
        values=((2, "FHINMEI", "一行目\r\n二行目\r\n三行目"), (7, "FSIGENMEI", "塗装\n(外注)")),
    ),
    _Spec(
        "17_nul_byte.csv",
        "a NUL character inside a value",
        _nul,
        valid=2,
        rejected=((3, "INVALID_CHARACTER"),),
    ),
    _Spec(
        "18_huge_quoted_field_5mb.csv",
        "a 5 MB quoted multi-line value; the rows after it are still read at their lines",
        _huge_quoted_field,
        valid=3,
        rejected=((3, "FIELD_TOO_LARGE"), (54, "TYPE")),
    ),
    _Spec(
        "19_huge_unquoted_field.csv",
        "a 2 MB unquoted value on one line",
        _huge_unquoted_field,
        valid=2,
        rejected=((3, "FIELD_TOO_LARGE"),),
    ),
    _Spec(
        "20_length_exceeded.csv",
        "a 10,001-character 品名 (limit 10,000)",
        _length_exceeded,
        valid=2,
        rejected=((3, "LENGTH"),),
    ),
    _Spec(
        "21_duplicate_keys.csv",
        "one step four times (highest ProductNo wins, tie -> last) and one three times "
        "(updatedAt decides; an empty updatedAt is unknown and ties)",
        _duplicate_keys,
        valid=8,
        excluded_duplicate_lines=(2, 3, 4, 6, 7),
    ),
    _Spec(
        "22_invalid_dates.csv",
        "2026/13/45, 2026-02-30, 2026/2/30, 25:00 rejected; non-padded, ISO and empty accepted",
        _invalid_dates,
        valid=3,
        rejected=((2, "TYPE"), (3, "TYPE"), (4, "TYPE"), (7, "TYPE")),
    ),
    _Spec(
        "23_formula_cells.csv",
        "spreadsheet-formula-looking text is data, kept verbatim",
        _formula_cells,
        valid=3,
        values=(
            (2, "FHINMEI", FORMULAS[0]),
            (2, "備考", FORMULAS[2]),
            (3, "FHINMEI", FORMULAS[1]),
            (3, "FSIGENMEI", FORMULAS[3]),
            (4, "備考", FORMULAS[0]),
        ),
    ),
    _Spec(
        "24_fullwidth_keys.csv",
        "full-width ＡＢ１２３４５６ / Ｐ－１００ / １０ key the same step as "
        "AB123456 / P-100 / 10",
        _fullwidth_keys,
        valid=3,
        excluded_duplicate_lines=(2,),
        values=((3, "FSEIBAN", "AB123456"), (3, "FHINCD", "P-100"), (4, "FSIGENSHOYORYO", "2.5")),
    ),
    _Spec(
        "25_key_whitespace.csv",
        "leading/trailing spaces, tabs and ideographic spaces around key values",
        _trailing_spaces_keys,
        valid=3,
        excluded_duplicate_lines=(2, 3),
        values=((4, "FHINCD", "P-1"),),
    ),
    _Spec(
        "26_bad_patterns.csv",
        "製番 of the wrong length/characters, ProductNo of 9 and 11 digits",
        _bad_patterns,
        valid=2,
        rejected=((2, "PATTERN"), (3, "PATTERN"), (4, "PATTERN"), (5, "PATTERN"), (8, "PATTERN")),
        values=((6, "FSEIBAN", "********"), (7, "ProductNo", "0000001234")),
    ),
    _Spec(
        "27_bad_numbers.csv",
        "thousands separators, words, 1_0, NaN and decimals in int columns",
        _bad_numbers,
        valid=2,
        rejected=((2, "TYPE"), (3, "TYPE"), (4, "TYPE"), (5, "TYPE"), (7, "TYPE")),
        values=((6, "FSIGENSHOYORYO", "1.5"), (6, "FKOJUN", "20")),
    ),
    _Spec(
        "28_required_empty.csv",
        "empty and blank required values",
        _required_empty,
        valid=1,
        rejected=((2, "REQUIRED"), (3, "REQUIRED"), (4, "REQUIRED"), (6, "REQUIRED")),
    ),
    _Spec(
        "29_unterminated_quote_at_eof.csv",
        "a quote opened on line 4 and never closed",
        _unterminated_quote,
        valid=2,
        rejected=((4, "ROW_SHAPE"),),
    ),
    _Spec(
        "30_bad_quoting_midfile.csv",
        'an unescaped inch mark: "Bolt 1/2" x 3"',
        _bad_quoting_midfile,
        valid=2,
        rejected=((3, "ROW_SHAPE"),),
    ),
    _Spec(
        "31_progress_values.csv",
        "progress: 完了, empty and padded 完了 accepted; 済 and 完了済 rejected",
        _progress_values,
        valid=3,
        rejected=((5, "PATTERN"), (6, "PATTERN")),
    ),
    _Spec(
        "32_blank_lines_and_empty_rows.csv",
        "blank lines, whitespace-only lines and Excel's ,,,, rows are skipped",
        _blank_lines,
        valid=2,
        rejected=((7, "PATTERN"),),
    ),
    _Spec(
        "33_header_variants.csv",
        "CP932; header cells padded with ideographic spaces, full-width names, extras, an "
        "unnamed column; optional columns absent",
        _header_variants,
        codec="cp932",
        valid=2,
        values=((2, "備考", "急ぎ"), (2, "担当者", "山田"), (3, "FKOJUN", "20")),
    ),
    _Spec(
        "34_mixed_line_endings.csv",
        "CRLF, LF and a lone CR as line ends",
        _mixed_line_endings,
        valid=3,
        rejected=((4, "TYPE"),),
    ),
    _Spec(
        "35_double_bom.csv",
        "a BOM twice (a tool re-saved a BOM file): the stray U+FEFF is stripped from the header",
        _double_bom,
        codec="utf-8-sig",
        valid=1,
    ),
    _Spec(
        "36_leading_zero_kojun.csv",
        "工順 010 and 10 are the same step; 0100 is another",
        _leading_zero_kojun,
        valid=3,
        excluded_duplicate_lines=(2,),
        values=((3, "FKOJUN", "10"), (4, "FKOJUN", "100")),
    ),
    _Spec(
        "37_optional_columns_absent.csv",
        "columns reordered; FSIGENMEI, progress, updatedAt, registeredAt absent",
        _optional_columns_absent,
        valid=2,
    ),
    _Spec(
        "38_nul_in_extra_column.csv",
        "a NUL character in an extra (non-dashboard) column",
        _nul_in_extra,
        valid=1,
        rejected=((3, "INVALID_CHARACTER"),),
    ),
)

CASE_NAMES: tuple[str, ...] = tuple(spec.name for spec in SPECS)


def build_corpus(directory: Path) -> list[CorpusCase]:
    """Write every corpus file into ``directory``; return the cases with expectations."""
    directory.mkdir(parents=True, exist_ok=True)
    cases: list[CorpusCase] = []
    for spec in SPECS:
        path = directory / spec.name
        path.write_bytes(spec.content())
        cases.append(
            CorpusCase(
                name=spec.name,
                description=spec.description,
                path=path,
                encoding=spec.encoding,
                codec=spec.codec,
                run_error=spec.run_error,
                run_error_mentions=spec.run_error_mentions,
                valid=spec.valid,
                rejected=len(spec.rejected),
                reasons=tuple(reason for _, reason in spec.rejected),
                rejected_lines=tuple(line for line, _ in spec.rejected),
                excluded_duplicate_lines=spec.excluded_duplicate_lines,
                values=spec.values,
            )
        )
    return cases
