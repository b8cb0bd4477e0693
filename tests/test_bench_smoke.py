"""The benchmark runs end to end at a tiny size and reports every metric (no timing asserts)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ROW_METRICS = [
    "parse_rows_s",
    "floor_rows_s",
    "first_rows_s",
    "first_vs_floor",
    "unchanged_rows_s",
    "unchanged_time_vs_parse",
    "changed_rows_s",
    "changed_vs_floor",
    "peak_rss_mb",
]


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--sizes",
            "2000",
            "--engines",
            "sqlite,postgresql",
            "--skip-dlt",
            "--api-clients",
            "2",
            "--api-requests",
            "4",
            "--api-max-seconds",
            "60",
            "--appearance",
            "1000,1800",
            "--output",
            str(out),
            "--cache",
            str(tmp_path / "files"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    files = list(out.glob("*.json"))
    assert len(files) == 1
    results = json.loads(files[0].read_text())
    assert "first r/s" in proc.stdout  # the printed table

    rows = {row["engine"]: row for row in results["rows"]}
    assert set(rows) == {"sqlite", "postgresql"}
    for engine, row in rows.items():
        assert row["rows"] == 2000
        for metric in ROW_METRICS:
            assert _positive(row[metric]), (engine, metric, row[metric])
        m = results["engines"][engine]["2000"]
        assert m["first"]["summary"]["inserted"] > 0
        assert m["unchanged"]["summary"]["inserted"] == 0
        assert m["changed"]["summary"]["updated"] > 0

    for engine in ("sqlite", "postgresql"):
        api = results["api"][engine]
        for phase in ("idle", "during"):
            for kind in ("write", "page"):
                stats = api[phase][kind]
                assert stats["n"] > 0, (engine, phase, kind)
                assert stats["errors"] < stats["n"], (engine, phase, kind)
                for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
                    assert _positive(stats[key]), (engine, phase, kind, key)
        assert _positive(api["write_p99_ratio"])
        assert api["ingest_ok"]

        case = results["appearance"][engine]
        assert case["status_rows"] == 1800 and case["schedule_rows"] == 1000
        summary = case["summary"]
        # ~3% unknown steps, repeated reports of a step beyond the first 1,000 rows.
        assert summary["supplemented"] > 0
        assert summary["excluded"] > 0 and summary["duplicates_excluded"] > 0
        for key in ("rows_s", "floor_rows_s", "vs_floor"):
            assert _positive(case[key]), (engine, key)

    targets = results["targets"]
    assert {t["engine"] for t in targets} == {"sqlite", "postgresql"}
    assert all(t["result"] in {"PASS", "FAIL", "n/a"} for t in targets)
