"""Row validation: rules and their order, keys, versions, hashes, duplicates, presets."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csvboard.dashboards.columns import AppearanceMapping, ColumnDef, DashboardSchema
from csvboard.dashboards.presets import (
    DEFAULT_PROCESSING_TYPES,
    MACHINE_PART_PREFIXES,
    is_machine_row,
    production_schedule_schema,
)
from csvboard.ingest import checks as checks_module
from csvboard.ingest.parse import Record, RecordError, map_appearance_header, map_header
from csvboard.ingest.validate import (
    AppearanceValidator,
    RejectedRow,
    RowValidator,
    SupplementRow,
    ValidRow,
    canonical_key,
    compare_versions,
    fold_duplicates,
    reject_record_error,
    row_hash,
)

TOKYO = ZoneInfo("Asia/Tokyo")
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
BASE = {
    "ProductNo": "0000012345",
    "FSEIBAN": "AB123456",
    "FHINCD": "P-100",
    "FHINMEI": "ブラケット",
    "FSIGENCD": "R01",
    "FSIGENMEI": "塗装",
    "FSIGENSHOYORYO": "1.5",
    "FKOJUN": "10",
    "progress": "",
    "updatedAt": "2026/2/19 9:05",
    "registeredAt": "2026/2/1",
}


def preset_validator(header: list[str] | None = None) -> RowValidator:
    schema = production_schedule_schema()
    return RowValidator(schema, map_header(Record(1, header or EN), schema, "f.csv"), TOKYO)


def rec(line: int = 2, header: list[str] | None = None, **over: str) -> Record:
    values = {**BASE, **over}
    return Record(line, [values.get(name, "") for name in (header or EN)])


def ok(result: ValidRow | RejectedRow) -> ValidRow:
    assert isinstance(result, ValidRow), result
    return result


def bad(result: ValidRow | RejectedRow) -> RejectedRow:
    assert isinstance(result, RejectedRow), result
    return result


# ----------------------------------------------------------------------------- valid rows


def test_valid_row_fields() -> None:
    row = ok(preset_validator().validate(rec(7, progress="完了")))
    assert row.line == 7
    assert row.row_key == '["AB123456","P-100","R01","10"]'
    assert row.row_data == {k: v for k, v in BASE.items() if k != "progress"}
    assert "progress" not in row.row_data
    assert row.completion is True
    # 2026-02-19 09:05 JST == 00:05 UTC
    instant = datetime(2026, 2, 19, 0, 5, tzinfo=UTC)
    assert row.version == (Decimal(12345), Decimal(int(instant.timestamp())))
    assert row.occurred_at == instant
    expected = json.dumps(
        [row.row_data, True], sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    assert row.data_hash == hashlib.sha256(expected.encode()).hexdigest()
    assert row.data_hash == row_hash(row.row_data, True)


def test_completion_alone_changes_the_hash() -> None:
    v = preset_validator()
    done = ok(v.validate(rec(progress="完了")))
    not_done = ok(v.validate(rec(progress="")))
    assert done.row_data == not_done.row_data
    assert (done.completion, not_done.completion) == (True, False)
    assert done.data_hash != not_done.data_hash


def test_surrounding_whitespace_does_not_change_row_data_or_hash() -> None:
    v = preset_validator()
    a = ok(v.validate(rec()))
    b = ok(v.validate(rec(FHINMEI="  ブラケット\t", FSIGENMEI=" 塗装 ", progress=" ")))
    assert a.row_data == b.row_data and a.data_hash == b.data_hash


def test_completion_none_without_the_column_and_extras_are_kept() -> None:
    header = [c for c in EN if c not in ("progress", "updatedAt", "registeredAt")] + ["備考"]
    v = preset_validator(header)
    row = ok(v.validate(rec(header=header, 備考=" 急ぎ ")))
    assert row.completion is None
    assert row.row_data["備考"] == "急ぎ"
    assert row.version == (Decimal(12345), None)
    assert row.occurred_at is None


def test_formula_looking_cells_are_plain_text() -> None:
    header = [*EN, "備考"]
    formulas = ['=HYPERLINK("http://x","y")', "+1+1", "@SUM(A1)"]
    row = ok(
        preset_validator(header).validate(
            rec(header=header, FHINMEI=formulas[0], FSIGENMEI=formulas[1], 備考=formulas[2])
        )
    )
    assert [row.row_data[c] for c in ("FHINMEI", "FSIGENMEI", "備考")] == formulas


def test_text_keeps_its_characters_but_keys_and_numbers_are_nfkc() -> None:
    row = ok(
        preset_validator().validate(
            rec(
                FHINMEI="ﾎﾞﾙﾄ①",  # free text: untouched
                FSEIBAN="ＡＢ１２３４５６",
                FHINCD="Ｐ－１００",
                FKOJUN="０１０",
                FSIGENSHOYORYO="１.５０",
                ProductNo="００００１２３４５６",
            )
        )
    )
    assert row.row_data["FHINMEI"] == "ﾎﾞﾙﾄ①"
    assert row.row_key == '["AB123456","P-100","R01","10"]'
    assert row.row_data["FSIGENSHOYORYO"] == "1.50"  # not a key: NFKC but not re-formatted
    assert row.row_data["ProductNo"] == "0000123456"  # leading zeros intact
    assert row.version[0] == Decimal(123456)


def test_key_whitespace_and_leading_zeros() -> None:
    v = preset_validator()
    keys = {
        ok(v.validate(rec(FSEIBAN=s, FHINCD=h, FKOJUN=k))).row_key
        for s, h, k in [
            ("AB123456", "P-100", "10"),
            ("AB123456  ", " P-100", "010"),
            ("\u3000AB123456", "P-100\t", " +10 "),
        ]
    }
    assert keys == {'["AB123456","P-100","R01","10"]'}


def test_decimal_date_and_datetime_key_canonicalisation() -> None:
    schema = DashboardSchema(
        columns=(
            ColumnDef(name="d", type="decimal"),
            ColumnDef(name="day", type="date", datetime_formats=("%Y/%m/%d",)),
            ColumnDef(name="at", type="datetime", datetime_formats=("%Y/%m/%d %H:%M",)),
        ),
        key_columns=("d", "day", "at"),
    )
    v = RowValidator(schema, map_header(Record(1, ["d", "day", "at"]), schema, "f"), TOKYO)
    a = ok(v.validate(Record(2, ["1.50", "2026/2/3", "2026/2/3 9:00"])))
    b = ok(v.validate(Record(3, ["1.5", "2026-02-03", "2026-02-03T00:00:00Z"])))
    assert a.row_key == b.row_key == '["1.5","2026-02-03","2026-02-03T00:00:00+00:00"]'
    zero = ok(v.validate(Record(4, ["-0.00", "", ""])))
    hundred = ok(v.validate(Record(5, ["100", "", ""])))
    assert zero.row_key == '["0","",""]' and hundred.row_key == '["100","",""]'


def test_datetime_formats_non_padded_iso_and_zones() -> None:
    v = preset_validator()
    cases = {
        "2026/2/3 9:05": datetime(2026, 2, 3, 0, 5, tzinfo=UTC),
        "2026/02/03 09:05:07": datetime(2026, 2, 3, 0, 5, 7, tzinfo=UTC),
        "2026/2/3": datetime(2026, 2, 2, 15, 0, tzinfo=UTC),
        "2026-02-03T09:05:00+09:00": datetime(2026, 2, 3, 0, 5, tzinfo=UTC),
        "2026-02-03T09:05:00Z": datetime(2026, 2, 3, 9, 5, tzinfo=UTC),
        "2026-02-03 09:05": datetime(2026, 2, 3, 0, 5, tzinfo=UTC),  # ISO, naive: JST
        "２０２６/２/３ ９:０５": datetime(2026, 2, 3, 0, 5, tzinfo=UTC),
    }
    for text, instant in cases.items():
        row = ok(v.validate(rec(updatedAt=text)))
        assert row.occurred_at == instant, text
        assert row.version[1] == Decimal(int(instant.timestamp())), text
        assert row.row_data["updatedAt"] == text.replace("２０２６/２/３ ９:０５", "2026/2/3 9:05")


def test_epoch_keeps_microseconds() -> None:
    row = ok(preset_validator().validate(rec(updatedAt="2026-02-03T00:00:00.25+00:00")))
    assert row.version[1] == Decimal(int(datetime(2026, 2, 3, tzinfo=UTC).timestamp())) + Decimal(
        "0.25"
    )


def test_occurred_at_falls_back_to_registered_at() -> None:
    row = ok(preset_validator().validate(rec(updatedAt="", registeredAt="2026/1/5 10:00")))
    assert row.occurred_at == datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    assert row.version[1] is None
    none = ok(preset_validator().validate(rec(updatedAt="", registeredAt="")))
    assert none.occurred_at is None


def test_other_time_zone() -> None:
    schema = production_schedule_schema()
    v = RowValidator(schema, map_header(Record(1, EN), schema, "f"), ZoneInfo("UTC"))
    row = ok(v.validate(rec(updatedAt="2026/2/3 9:05")))
    assert row.occurred_at == datetime(2026, 2, 3, 9, 5, tzinfo=UTC)


def test_default_time_zone_is_tokyo() -> None:
    schema = production_schedule_schema()
    v = RowValidator(schema, map_header(Record(1, EN), schema, "f"))
    assert ok(v.validate(rec(updatedAt="2026/2/3 9:05"))).occurred_at == datetime(
        2026, 2, 3, 0, 5, tzinfo=UTC
    )


def test_date_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks_module, "_DATE_CACHE_SIZE", 10)
    v = preset_validator()
    for minute in range(50):
        ok(v.validate(rec(updatedAt=f"2026/2/3 9:{minute:02d}")))
    caches = [len(c._cache) for c in v._columns]
    assert max(caches) <= 10


# ----------------------------------------------------------------------------- rejections


def test_row_shape() -> None:
    v = preset_validator()
    short = bad(v.validate(Record(7, ["a"] * 5)))
    assert (short.reason_code, short.message) == (
        "ROW_SHAPE",
        "line 7: 5 values, the header has 11 columns",
    )
    assert short.row_key is None and short.column is None and short.value is None
    long = bad(v.validate(Record(8, [*rec().cells, "x"])))
    assert long.message == "line 8: 12 values, the header has 11 columns"
    one = bad(v.validate(Record(9, ["x"])))
    assert one.message == "line 9: 1 value, the header has 11 columns"


def test_nul_is_checked_before_column_rules() -> None:
    r = bad(preset_validator().validate(rec(9, FSEIBAN="bad", FHINMEI="部品\x00A")))
    assert r.reason_code == "INVALID_CHARACTER"
    assert r.column == "FHINMEI"
    assert r.value == "部品\x00A"
    assert r.message.startswith("line 9, column FHINMEI (品名): contains a NUL character")
    assert "'部品\\x00A'" in r.message  # repr-escaped
    assert r.row_key is None  # FSEIBAN is invalid, so there is no key


def test_nul_rejection_carries_the_key_when_keys_are_valid() -> None:
    r = bad(preset_validator().validate(rec(FSIGENMEI="\x00")))
    assert r.row_key == '["AB123456","P-100","R01","10"]'


def test_nul_in_a_key_column_means_no_key() -> None:
    r = bad(preset_validator().validate(rec(FHINCD="P\x00100")))
    assert (r.reason_code, r.column, r.row_key) == ("INVALID_CHARACTER", "FHINCD", None)


def test_required() -> None:
    r = bad(preset_validator().validate(rec(12, FHINMEI="  ")))
    assert r.reason_code == "REQUIRED"
    assert r.message == "line 12, column FHINMEI (品名): a value is required"
    assert r.row_key == '["AB123456","P-100","R01","10"]'
    assert (r.column, r.value) == ("FHINMEI", "")


def test_optional_empty_is_fine() -> None:
    row = ok(preset_validator().validate(rec(FSIGENMEI="", updatedAt="", registeredAt="")))
    assert row.row_data["FSIGENMEI"] == ""


def test_pattern_message_uses_hint() -> None:
    r = bad(preset_validator().validate(rec(12, FSEIBAN="AB12")))
    assert r.reason_code == "PATTERN"
    assert r.message.startswith(
        "line 12, column FSEIBAN (製番): 'AB12' must be 8 characters of A–Z, a–z, 0–9 or *"
    )
    assert r.row_key is None


def test_pattern_without_hint_and_unassigned_seiban() -> None:
    schema = DashboardSchema(
        columns=(ColumnDef(name="k"), ColumnDef(name="code", pattern=r"[A-Z]{2}")),
        key_columns=("k",),
    )
    v = RowValidator(schema, map_header(Record(1, ["k", "code"]), schema, "f"), TOKYO)
    r = bad(v.validate(Record(3, ["x", "abc"])))
    assert r.message == "line 3, column code: 'abc' must match the pattern [A-Z]{2}"
    assert r.row_key == '["x"]'
    assert ok(preset_validator().validate(rec(FSEIBAN="********"))).row_data["FSEIBAN"] == (
        "********"
    )


def test_product_no_pattern() -> None:
    v = preset_validator()
    for value in ("123456789", "12345678901", "12345abcde", "-000012345"):
        assert bad(v.validate(rec(ProductNo=value))).reason_code == "PATTERN", value


def test_length_gives_length_and_limit_not_value() -> None:
    schema = DashboardSchema(
        columns=(ColumnDef(name="k"), ColumnDef(name="name", aliases=("名前",), max_length=5)),
        key_columns=("k",),
    )
    v = RowValidator(schema, map_header(Record(1, ["k", "name"]), schema, "f"), TOKYO)
    assert ok(v.validate(Record(2, ["x", " abcde "]))).row_data["name"] == "abcde"
    r = bad(v.validate(Record(3, ["x", "abcdef" * 100])))
    assert r.reason_code == "LENGTH"
    assert r.message == "line 3, column name (名前): 600 characters, at most 5 allowed"
    assert r.value == ("abcdef" * 100)[:200]


def test_values_in_messages_are_truncated() -> None:
    r = bad(preset_validator().validate(rec(FSEIBAN="X" * 500)))
    assert r.reason_code == "PATTERN"
    assert "'" + "X" * 59 + "…'" in r.message
    assert r.value is not None and len(r.value) == 200


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("10", True),
        (" 10 ", True),
        ("+10", True),
        ("-3", True),
        ("１０", True),
        ("1,000", False),
        ("1_0", False),
        ("1.0", False),
        ("١٢", False),  # Arabic-Indic digits: int() accepts them, we do not
        ("abc", False),
        ("1 0", False),
        ("9" * 5000, False),  # int() refuses more than 4300 digits: still a TYPE rejection
    ],
)
def test_int_type(value: str, valid: bool) -> None:
    result = preset_validator().validate(rec(FKOJUN=value))
    if valid:
        ok(result)
    else:
        r = bad(result)
        assert r.reason_code == "TYPE"
        assert r.message.endswith("is not a whole number")
        assert r.row_key is None  # FKOJUN is part of the key


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1.5", True),
        (".5", True),
        ("2.", True),
        ("-0.25", True),
        ("１２.５", True),
        ("1,5", False),
        ("1,234.5", False),
        ("1e3", False),
        ("NaN", False),
        ("Infinity", False),
        ("1_000", False),
        ("", False),  # required
    ],
)
def test_decimal_type(value: str, valid: bool) -> None:
    result = preset_validator().validate(rec(FSIGENSHOYORYO=value))
    if valid:
        ok(result)
    else:
        r = bad(result)
        assert r.reason_code == ("REQUIRED" if value == "" else "TYPE")
        assert r.row_key == '["AB123456","P-100","R01","10"]'


@pytest.mark.parametrize(
    "value",
    ["2026/13/45", "2026-02-30", "2026/2/30", "2026/2/3 24:00", "2026/2/3 9", "yesterday", "45678"],
)
def test_invalid_datetimes(value: str) -> None:
    r = bad(preset_validator().validate(rec(updatedAt=value)))
    assert r.reason_code == "TYPE"
    assert r.column == "updatedAt"
    assert "is not a valid date and time (expected YYYY/M/D H:MM" in r.message


def test_date_type_column() -> None:
    schema = DashboardSchema(
        columns=(
            ColumnDef(name="k"),
            ColumnDef(name="due", type="date", datetime_formats=("%Y/%m/%d",)),
        ),
        key_columns=("k",),
        occurred_at_columns=("due",),
        version_columns=("due",),
    )
    v = RowValidator(schema, map_header(Record(1, ["k", "due"]), schema, "f"), TOKYO)
    row = ok(v.validate(Record(2, ["x", "2026/3/1"])))
    assert row.occurred_at == datetime(2026, 2, 28, 15, 0, tzinfo=UTC)  # midnight JST
    assert ok(v.validate(Record(3, ["x", "2026-03-01"]))).version == row.version
    r = bad(v.validate(Record(4, ["x", "2026-02-30"])))
    assert "is not a valid date (expected YYYY/M/D, ISO-8601)" in r.message


def test_first_failing_column_in_schema_order_wins() -> None:
    # Both ProductNo (first in the schema) and FKOJUN are bad: ProductNo is reported.
    r = bad(preset_validator().validate(rec(ProductNo="x", FKOJUN="y")))
    assert r.column == "ProductNo"
    # Schema order, not file order.
    header = list(reversed(EN))
    r = bad(preset_validator(header).validate(rec(header=header, ProductNo="x", FKOJUN="y")))
    assert r.column == "ProductNo"


def test_progress_pattern() -> None:
    v = preset_validator()
    assert ok(v.validate(rec(progress=" 完了 "))).completion is True
    r = bad(v.validate(rec(progress="済")))
    assert r.reason_code == "PATTERN" and "must be empty or 完了" in r.message


def test_generic_completion_column_without_pattern() -> None:
    schema = DashboardSchema(
        columns=(ColumnDef(name="k"), ColumnDef(name="done")),
        key_columns=("k",),
        completion_column="done",
        completion_values=("済", "完了"),
    )
    v = RowValidator(schema, map_header(Record(1, ["k", "done"]), schema, "f"), TOKYO)
    assert ok(v.validate(Record(2, ["a", "済"]))).completion is True
    assert ok(v.validate(Record(3, ["a", "other"]))).completion is False
    assert ok(v.validate(Record(4, ["a", ""]))).row_data == {"k": "a"}


def test_reject_record_error() -> None:
    r = reject_record_error(RecordError(5, "FIELD_TOO_LARGE", "line 5: too big"))
    assert (r.line, r.row_key, r.reason_code, r.message, r.column, r.value) == (
        5,
        None,
        "FIELD_TOO_LARGE",
        "line 5: too big",
        None,
        None,
    )


# ----------------------------------------------------------------------------- keys and versions


@given(st.lists(st.text()))
def test_canonical_key_round_trip(values: list[str]) -> None:
    key = canonical_key(values)
    assert json.loads(key) == values
    assert key == json.dumps(values, ensure_ascii=False, separators=(",", ":"))


@given(st.lists(st.text(), max_size=4), st.lists(st.text(), max_size=4))
def test_canonical_key_is_injective(a: list[str], b: list[str]) -> None:
    assert (canonical_key(a) == canonical_key(b)) == (a == b)


def test_canonical_key_examples() -> None:
    assert (
        canonical_key(["AB123456", "品番", "R,1", '"q"']) == '["AB123456","品番","R,1","\\"q\\""]'
    )
    assert canonical_key(("a", "b")) == canonical_key(["a", "b"])


VERSION = st.lists(
    st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False)), min_size=2, max_size=2
).map(tuple)


@given(VERSION, VERSION)
def test_compare_versions_antisymmetric(
    a: tuple[Decimal | None, ...], b: tuple[Decimal | None, ...]
) -> None:
    assert compare_versions(a, b) == -compare_versions(b, a)
    assert compare_versions(a, b) in (-1, 0, 1)


@given(VERSION)
def test_compare_versions_reflexive_and_unknown(a: tuple[Decimal | None, ...]) -> None:
    assert compare_versions(a, a) == 0
    assert compare_versions(a, (None, None)) == 0


def test_compare_versions_examples() -> None:
    d = Decimal
    assert compare_versions((d(2), d(1)), (d(1), d(9))) == 1  # first component decides
    assert compare_versions((d(1), d(1)), (d(1), d(2))) == -1
    assert compare_versions((None, d(1)), (d(5), d(2))) == -1  # unknown skipped
    assert compare_versions((d(5), None), (d(5), d(2))) == 0
    assert compare_versions((d("1.0"),), (d(1),)) == 0  # numbers as numbers
    assert compare_versions((d(10),), (d(9),)) == 1  # not as strings
    assert compare_versions((), ()) == 0


def test_fold_duplicates_examples() -> None:
    d = Decimal
    assert fold_duplicates([(2, (d(5),)), (3, (d(9),)), (4, (d(7),))]) == 3  # highest wins
    assert fold_duplicates([(2, (d(9),)), (3, (d(9),))]) == 3  # ties go to the last
    assert fold_duplicates([(2, (d(9),)), (3, (None,))]) == 3  # unknown ties
    assert fold_duplicates([(2, ())]) == 2  # no version columns: last wins
    assert fold_duplicates([(2, ()), (5, ()), (9, ())]) == 9
    # Sequential: 1 -> (None) ties and replaces -> then 0 vs None ties and replaces.
    assert fold_duplicates([(2, (d(1),)), (3, (None,)), (4, (d(0),))]) == 4
    with pytest.raises(ValueError):
        fold_duplicates([])


@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=10))
def test_fold_duplicates_known_versions_last_maximum(versions: list[int]) -> None:
    rows = [(i + 2, (Decimal(v),)) for i, v in enumerate(versions)]
    top = max(versions)
    expected = max(i for i, v in enumerate(versions) if v == top) + 2
    assert fold_duplicates(rows) == expected


def test_duplicate_fold_through_the_validator() -> None:
    v = preset_validator()
    rows = [
        ok(v.validate(rec(2, ProductNo="0000000005"))),
        ok(v.validate(rec(3, ProductNo="0000000009", updatedAt="2026/2/1 8:00"))),
        ok(v.validate(rec(4, ProductNo="0000000009", updatedAt="2026/2/1 7:59"))),
        ok(v.validate(rec(5, ProductNo="0000000009", updatedAt=""))),
    ]
    assert len({r.row_key for r in rows}) == 1
    # 3 beats 2 (ProductNo); 4 loses to 3 (updatedAt); 5 ties with 3 (unknown) and is later.
    assert fold_duplicates((r.line, r.version) for r in rows) == 5


# ----------------------------------------------------------------------------- appearance


MAPPING = AppearanceMapping(
    key_columns={"FSEIBAN": "製番", "FHINCD": "品番", "FSIGENCD": "資源", "FKOJUN": "工順"},
    status_column="状態",
)
APP_HEADER = ["製番", "品番", "資源", "工順", "状態", "検査者", ""]


def appearance_validator(mapping: AppearanceMapping = MAPPING) -> AppearanceValidator:
    schema = production_schedule_schema()
    header = map_appearance_header(Record(1, APP_HEADER), schema, mapping, "a.csv")
    return AppearanceValidator(schema, mapping, header)


def test_appearance_row() -> None:
    v = appearance_validator()
    row = v.validate(Record(2, ["ＡＢ１２３４５６ ", "P-100", "R01", "010", " c ", " 山田 ", "x"]))
    assert isinstance(row, SupplementRow)
    assert row.row_key == '["AB123456","P-100","R01","10"]'
    assert row.supplement == {"検査者": "山田"}
    assert row.completion is True
    assert row.data_hash == row_hash({"検査者": "山田"}, True)
    other = v.validate(Record(3, ["AB123456", "P-100", "R01", "10", "A", "山田", ""]))
    assert isinstance(other, SupplementRow)
    assert other.row_key == row.row_key and other.completion is False
    assert other.data_hash != row.data_hash


def test_appearance_key_matches_official_key() -> None:
    official = ok(preset_validator().validate(rec(FKOJUN="10")))
    supplement = appearance_validator().validate(
        Record(2, ["AB123456", "P-100", "R01", "１０", "X", "", ""])
    )
    assert isinstance(supplement, SupplementRow)
    assert supplement.row_key == official.row_key


def test_appearance_without_status() -> None:
    mapping = AppearanceMapping(key_columns=MAPPING.key_columns)
    row = appearance_validator(mapping).validate(
        Record(2, ["AB123456", "P-100", "R01", "10", "C", "山田", ""])
    )
    assert isinstance(row, SupplementRow)
    assert row.completion is None
    assert row.supplement == {"状態": "C", "検査者": "山田"}


def test_appearance_rejections() -> None:
    v = appearance_validator()
    shape = v.validate(Record(2, ["a"]))
    assert isinstance(shape, RejectedRow) and shape.reason_code == "ROW_SHAPE"
    key = v.validate(Record(3, ["AB12", "P-100", "R01", "10", "C", "", ""]))
    assert isinstance(key, RejectedRow)
    assert (key.reason_code, key.column, key.row_key) == ("PATTERN", "FSEIBAN", None)
    kojun = v.validate(Record(4, ["AB123456", "P-100", "R01", "x", "C", "", ""]))
    assert isinstance(kojun, RejectedRow) and kojun.reason_code == "TYPE"
    nul = v.validate(Record(5, ["AB123456", "P-100", "R01", "10", "C", "a\x00", ""]))
    assert isinstance(nul, RejectedRow)
    assert nul.reason_code == "INVALID_CHARACTER"
    assert nul.column == "検査者"
    assert nul.row_key == '["AB123456","P-100","R01","10"]'
    status_nul = v.validate(Record(6, ["AB123456", "P-100", "R01", "10", "\x00", "", ""]))
    assert isinstance(status_nul, RejectedRow) and status_nul.column == "状態"


# ----------------------------------------------------------------------------- presets


def test_production_schedule_schema_shape() -> None:
    schema = production_schedule_schema()
    assert [c.name for c in schema.columns] == EN
    assert schema.key_columns == ("FSEIBAN", "FHINCD", "FSIGENCD", "FKOJUN")
    assert schema.version_columns == ("ProductNo", "updatedAt")
    assert schema.occurred_at_columns == ("updatedAt", "registeredAt")
    assert schema.completion_column == "progress"
    required = {c.name for c in schema.columns if c.required}
    assert required == {
        "ProductNo",
        "FSEIBAN",
        "FHINCD",
        "FHINMEI",
        "FSIGENCD",
        "FSIGENSHOYORYO",
        "FKOJUN",
    }
    assert schema.column("updatedAt").header_names() == ("updatedAt", "更新日時")
    assert DEFAULT_PROCESSING_TYPES == ("塗装", "カニゼン", "LSLH", "その他01", "その他02")
    assert MACHINE_PART_PREFIXES == ("MH", "SH")


def test_is_machine_row() -> None:
    assert is_machine_row({"FHINCD": "MH-1234"})
    assert is_machine_row({"FHINCD": "SH0001"})
    assert not is_machine_row({"FHINCD": "P-MH01"})
    assert not is_machine_row({"FHINCD": "mh-1"})
    assert not is_machine_row({})


# ------------------------------------------------------------------- per-column value cache


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["R01", "Ｒ０１", " R01 ", "", "R-0 1", "R02"]),
            st.sampled_from(["1.5", "１．５", "1,5", "", " 2 ", "x"]),
            st.sampled_from(["10", "010", "１０", "", "1e3"]),
            st.sampled_from(["2026/2/19 9:05", "2026-02-19T09:05", "2026/2/30 9:00", ""]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_cached_checks_equal_fresh_checks(cells: list[tuple[str, str, str, str]]) -> None:
    """A warm validator (values cached per column) answers exactly as a fresh one per row."""
    warm = preset_validator()
    for line, (code, hours, kojun, updated) in enumerate(cells, start=2):
        record = rec(line, FSIGENCD=code, FSIGENSHOYORYO=hours, FKOJUN=kojun, updatedAt=updated)
        assert warm.validate(record) == preset_validator().validate(record)


def test_value_cache_stops_for_a_column_of_distinct_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checks_module, "_VALUE_CACHE_SIZE", 8)
    v = preset_validator()
    for i in range(40):  # 製番 differs on every row; 資源CD repeats
        ok(v.validate(rec(2 + i, FSEIBAN=f"AB{i:06d}")))
    by_name = {c.name: c for c in v._columns}
    assert by_name["FSEIBAN"]._values is None  # filled at < 50% hits: no longer cached
    assert by_name["FSIGENCD"]._values == {"R01": ("R01", None, None)}
    again = ok(v.validate(rec(99, FSEIBAN="AB000003")))
    assert again.row_key == '["AB000003","P-100","R01","10"]'
