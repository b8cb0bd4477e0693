"""Realistic production-schedule exports, generated (seeded) for the demo, tests and benchmark.

The shape follows the ERP export the product was built for: 製番 (FSEIBAN) per machine, one MH
row naming the machine, then the parts (FHINCD/FHINMEI) with their process steps (FKOJUN) on
resources (FSIGENCD), written as CP932 like the real files — ①, ㈱ and 髙 included, which
Shift_JIS proper cannot encode.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

HEADER = [
    "ProductNo", "FSEIBAN", "FHINCD", "FHINMEI", "FSIGENCD", "FSIGENMEI",
    "FSIGENSHOYORYO", "FKOJUN", "progress", "更新日時", "登録日時",
]  # fmt: skip

MACHINES = ["自動盤①号機", "NC旋盤㈱仕様", "髙速マシニングセンタ", "搬送装置Ⅱ型", "洗浄機ユニット"]
PARTS = [
    "シャフト", "ブラケット", "ベースプレート", "カバー", "ギヤ", "フランジ", "スペーサ",
    "ハウジング", "ピン", "アーム", "ローラー", "カラー", "髙精度ブッシュ", "継手①",
]  # fmt: skip
RESOURCES = [
    ("M01", "NC旋盤"), ("M02", "マシニング"), ("M03", "研削盤"), ("W01", "溶接"),
    ("P01", "塗装"), ("A01", "組立"), ("K01", "検査"),
]  # fmt: skip
SEIBAN_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def generate_rows(steps: int, *, seed: int = 1) -> Iterator[list[str]]:
    """About ``steps`` data rows: per 製番 one MH machine row, then parts × process steps."""
    rng = random.Random(seed)
    produced = 0
    product_no = 1_000_000_000 + rng.randrange(1_000_000)
    while produced < steps:
        seiban = "".join(rng.choice(SEIBAN_CHARS) for _ in range(8))
        if rng.random() < 0.02:
            seiban = "********"  # not yet assigned
        machine = rng.choice(MACHINES)
        product_no += rng.randrange(1, 50)
        day = rng.randrange(1, 28)
        stamp = f"2026/11/{day} {rng.randrange(7, 19)}:{rng.choice(['00', '15', '30', '45'])}"
        yield [
            f"{product_no:010d}", seiban, f"MH{rng.randrange(10000):04d}", machine, "A01",
            "組立", "0", "1", "", stamp, "",
        ]  # fmt: skip
        produced += 1
        for part_index in range(rng.randrange(3, 12)):
            part = rng.choice(PARTS)
            hincd = f"{rng.choice('BCDEFGK')}{rng.randrange(100000):05d}-{part_index:02d}"
            for kojun in range(1, rng.randrange(2, 6)):
                if produced >= steps:
                    return
                resource, resource_name = rng.choice(RESOURCES)
                yield [
                    f"{product_no:010d}", seiban, hincd, part, resource, resource_name,
                    f"{rng.randrange(1, 80) / 4:.2f}", str(kojun * 10),
                    "完了" if rng.random() < 0.1 else "", stamp if rng.random() < 0.7 else "", "",
                ]  # fmt: skip
                produced += 1


def write_schedule_csv(path: Path, steps: int, *, seed: int = 1, encoding: str = "cp932") -> Path:
    """Write a generated export; CRLF line ends like the ERP's."""
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADER)
        for row in generate_rows(steps, seed=seed):
            writer.writerow(row)
    return path
