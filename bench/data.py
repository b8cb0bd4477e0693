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
