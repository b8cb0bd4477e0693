"""Benchmark input files: a seeded production-schedule export and its "next day" version."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from csvboard.schedule.sample import write_schedule_csv

ENCODING = "cp932"
# Column positions in csvboard.schedule.sample.HEADER.
HOURS = 6
KOJUN = 7
UPDATED = 9


@dataclass(frozen=True)
class BenchFiles:
    rows: int
    base: Path  # the first export
    changed: Path  # 1% of rows changed, 0.5% gone, 0.5% new


def make_files(directory: Path, rows: int, *, seed: int = 1) -> BenchFiles:
    """Write (or reuse) the two files for ``rows`` data rows in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / f"schedule-{rows}-s{seed}.csv"
    changed = directory / f"schedule-{rows}-s{seed}-changed.csv"
    if not base.exists():
        tmp = base.with_suffix(".tmp")
        write_schedule_csv(tmp, rows, seed=seed)
        tmp.replace(base)
    if not changed.exists():
        tmp = changed.with_suffix(".tmp")
        _mutate(base, tmp, seed=seed)
        tmp.replace(changed)
    return BenchFiles(rows=rows, base=base, changed=changed)


def _mutate(source: Path, target: Path, *, seed: int) -> None:
    """Copy ``source``: 1% of rows get new hours (and a later 更新日時), 0.5% are dropped and
    0.5% new steps (工順 9xx, so new keys) are added after the row they were cloned from."""
    rng = random.Random(seed * 7919 + 13)
    with (
        source.open("r", encoding=ENCODING, newline="") as src,
        target.open("w", encoding=ENCODING, newline="") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst, lineterminator="\r\n")
        writer.writerow(next(reader))
        new_kojun = 900
        for row in reader:
            roll = rng.random()
            if roll < 0.005:
                continue  # gone
            if roll < 0.015:
                row[HOURS] = f"{float(row[HOURS] or 0) + 0.25:.2f}"
                if row[UPDATED]:
                    row[UPDATED] = row[UPDATED].replace("2026/11/", "2026/12/", 1)
            writer.writerow(row)
            if roll > 0.995:
                clone = list(row)
                new_kojun += 1
                clone[KOJUN] = str(new_kojun)
                writer.writerow(clone)


STATUS_HEADER = ["FSEIBAN", "FHINCD", "FSIGENCD", "FKOJUN", "status", "担当", "設備メモ"]
STATUS_CODES = ["C", "X", "A", "W", "S"]
WORKERS = ["佐藤", "髙橋", "鈴木", "田中", "渡辺①", "伊藤"]
# Column positions of the key in csvboard.schedule.sample.HEADER.
KEY_POSITIONS = (1, 2, 4, 7)


def make_status_file(directory: Path, schedule: Path, rows: int, *, seed: int = 1) -> Path:
    """A status feed of ``rows`` rows for the steps of ``schedule`` (CP932, like the ERP's).

    The shape of the report the source system stalled on: several reports per step (the
    last one in the file counts), 3% of rows for steps the schedule does not have.
    """
    path = directory / f"status-{rows}-for-{schedule.stem}.csv"
    if path.exists():
        return path
    with schedule.open("r", encoding=ENCODING, newline="") as src:
        reader = csv.reader(src)
        next(reader)
        keys = [tuple(row[i] for i in KEY_POSITIONS) for row in reader]
    rng = random.Random(seed * 104729 + 7)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding=ENCODING, newline="") as dst:
        writer = csv.writer(dst, lineterminator="\r\n")
        writer.writerow(STATUS_HEADER)
        for i in range(rows):
            if rng.random() < 0.03:
                key: tuple[str, ...] = (f"Z{i:07d}", "Z00000-00", "Z01", "10")  # unknown step
            else:
                key = keys[i % len(keys)] if i < len(keys) else rng.choice(keys)
            memo = f"{rng.choice(['段取', '加工中', '検査待ち', '治具①'])} {rng.randrange(100)}"
            writer.writerow([*key, rng.choice(STATUS_CODES), rng.choice(WORKERS), memo])
    tmp.replace(path)
    return path
