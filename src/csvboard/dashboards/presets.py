"""The production-schedule preset: the shape of the real ERP exports (docs/contract.md §2.2)."""

from __future__ import annotations

from collections.abc import Mapping

from csvboard.dashboards.columns import ColumnDef, DashboardSchema
from csvboard.dashboards.vocabulary import IngestMode

DEFAULT_PROCESSING_TYPES: tuple[str, ...] = ("塗装", "カニゼン", "LSLH", "その他01", "その他02")

# Rows whose 品番 starts with these describe the machine being built, not a process step:
# they are not shown as steps on the kiosk; their 品名 is the machine name shown with the 製番.
MACHINE_PART_PREFIXES: tuple[str, ...] = ("MH", "SH")

# Export timestamps: "2026/2/19 9:05" (strptime accepts non-zero-padded fields), with or
# without seconds, or a bare date; ISO-8601 is accepted in addition by the validator.
ERP_DATETIME_FORMATS: tuple[str, ...] = ("%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")


def production_schedule_schema() -> DashboardSchema:
    """Column definitions, key and version of the production-schedule dashboard."""
    columns = (
        # A manufacturing order number; numeric so it can order versions (a newer order for
        # the same step has a higher number). row_data keeps the 10-digit text as written.
        ColumnDef(
            name="ProductNo",
            aliases=("製造オーダー番号", "製造オーダーNo", "オーダー番号"),
            type="int",
            required=True,
            pattern=r"[0-9]{10}",
            pattern_hint="10 digits",
        ),
        ColumnDef(
            name="FSEIBAN",
            aliases=("製番",),
            required=True,
            pattern=r"[A-Za-z0-9*]{8}",
            pattern_hint="8 characters of A–Z, a–z, 0–9 or * (******** = not yet assigned)",
        ),
        ColumnDef(name="FHINCD", aliases=("品番", "品目コード"), required=True),
        ColumnDef(name="FHINMEI", aliases=("品名", "品目名"), required=True),
        ColumnDef(name="FSIGENCD", aliases=("資源CD", "資源コード"), required=True),
        ColumnDef(name="FSIGENMEI", aliases=("資源名",)),
        ColumnDef(
            name="FSIGENSHOYORYO",
            aliases=("資源所要量", "所要時間"),
            type="decimal",
            required=True,
        ),
        ColumnDef(name="FKOJUN", aliases=("工順",), type="int", required=True),
        # Source-owned completion: "完了" or empty. Never stored in row_data.
        ColumnDef(
            name="progress",
            aliases=("進捗",),
            pattern=r"(完了)?",
            pattern_hint="empty or 完了",
        ),
        ColumnDef(
            name="updatedAt",
            aliases=("更新日時",),
            type="datetime",
            datetime_formats=ERP_DATETIME_FORMATS,
        ),
        ColumnDef(
            name="registeredAt",
            aliases=("登録日時",),
            type="datetime",
            datetime_formats=ERP_DATETIME_FORMATS,
        ),
    )
    return DashboardSchema(
        columns=columns,
        key_columns=("FSEIBAN", "FHINCD", "FSIGENCD", "FKOJUN"),
        version_columns=("ProductNo", "updatedAt"),
        ingest_mode=IngestMode.DEDUP,
        encoding="auto",
        completion_column="progress",
        completion_values=("完了",),
        occurred_at_columns=("updatedAt", "registeredAt"),
    )


def is_machine_row(row_data: Mapping[str, str]) -> bool:
    """Does this row describe the machine itself (品番 MH…/SH…) rather than a process step?"""
    return row_data.get("FHINCD", "").strip().startswith(MACHINE_PART_PREFIXES)
