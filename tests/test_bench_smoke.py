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
            "--kiosk-sizes",
            "",  # the kiosk benchmark (a browser run) is too slow here: its helpers are below
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


def test_kiosk_benchmark_helpers() -> None:
    """bench.kiosk's pure parts: arguments, percentiles, 製番 picking, ratios, the tables."""
    from bench import kiosk

    args = kiosk.parse_args(["--sizes", "200_000,3000,60000", "--engines", "sqlite,postgresql"])
    assert args.sizes == [3000, 60000, 200000]
    assert args.engines == ["sqlite", "postgresql"]
    assert args.taps == 50 and args.cpu_rates == [1.0, 4.0] and args.timeout == 60
    assert kiosk.parse_sizes("") == [] and kiosk.parse_sizes(" 3000, ,3000") == [3000]

    s = kiosk.stats([float(v) for v in range(1, 21)])
    assert s["n"] == 20 and s["p50_ms"] == 10.5 and 19 <= s["p95_ms"] <= 20
    assert kiosk.stats([])["p95_ms"] is None

    items = [{"row_data": {"FSEIBAN": v}} for v in ["********", "A1", "A1", "B2", "C3"]]
    assert kiosk.pick_seibans(items, 2) == ["A1", "B2"]
    assert kiosk.pick_seibans(items, 5, ["Z9"]) == ["Z9", "A1", "B2", "C3"]
    endpoints = kiosk.server_endpoints(["i1", "i2"], ["A1", "B2"])
    assert ("lookup 2 ids", "/lookup", [("id", "i1"), ("id", "i2")]) in endpoints
    assert len({label for label, _, _ in endpoints}) == len(endpoints) == 13
    assert ("cards 2 製番", "/cards", [("seiban", "A1"), ("seiban", "B2")]) in endpoints

    scope = kiosk.scope_script()
    assert kiosk.SCOPE_KEY in scope and json.dumps(json.dumps(kiosk.SCOPE)) in scope

    def server(p95: float) -> dict[str, object]:
        return {"resources": {"n": 20, "p50_ms": p95 / 2, "p95_ms": p95, "errors": 0, "bytes": 354}}

    def page(cpu: float, usable: float) -> dict[str, object]:
        return {
            "cpu": cpu,
            "errors": {},
            "first_usable_ms": usable,
            "taps": {"n": 50, "p50_ms": 40.0, "p95_ms": 250.0},
            "search_ms": 280.0,
            "scroll5_ms": 400.0,
            "dom_elements": 3000,
            "heap_mb": 4.5,
            "progress_first_usable_ms": usable * 2,
            "progress_pages": 5,
            "progress_dom_elements": 2100,
            "order_board_first_usable_ms": usable * 3,
            "order_board_dom_elements": 1500,
        }

    results = {
        "taps": 50,
        "calls": 20,
        "reloads": 3,
        "cases": [
            {"engine": "sqlite", "size": 3000, "error": None, "server": server(10.0),
             "browser": [page(1, 200.0), page(4, 800.0)]},
            {"engine": "sqlite", "size": 60000, "error": None, "server": server(30.0),
             "browser": [page(1, 300.0), {"cpu": 4, "errors": {"first usable": "no board"}}]},
            {"engine": "sqlite", "size": 200000, "error": "demo failed", "server": {}},
        ],
        "notes": [],
    }  # fmt: skip
    kiosk.derive(results)
    rows = {(r["size"], r["cpu"]): r for r in results["browser_rows"]}
    assert rows[(60000, 1)]["x_first_usable_ms"] == 1.5
    assert rows[(60000, 4)]["first_usable_ms"] is None and "no board" in rows[(60000, 4)]["error"]
    assert rows[(200000, None)]["error"] == "case: demo failed"
    servers = {r["size"]: r for r in results["server_rows"]}
    assert servers[60000]["x_p95_ms"] == 3.0 and servers[200000]["error"] == "demo failed"

    table = kiosk.render(results)
    assert "first usable ms (≤ 1000)" in table and "p95 ms (≤ 100)" in table
    assert "| sqlite | 60,000 | 1× | 300 | 1.50 |" in table
    assert "250 ✗" in table  # tap p95 over its 200 ms target
    assert "### 進捗一覧 (progress board) and 順位ボード (order board)" in table
    assert "| sqlite | 60,000 | 1× | 600 | 1.50 | 5 | 2,100 | 900 | 1.50 | 1,500 |" in table
    assert rows[(60000, 1)]["x_progress_first_usable_ms"] == 1.5
    assert "debounce" in table and "error: sqlite 60,000 CPU 4×: first usable: no board" in table
