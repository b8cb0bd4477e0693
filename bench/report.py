"""Ratios, targets and the printed table (also written as JSON by bench.run)."""

from __future__ import annotations

import math
from typing import Any

RSS_LIMIT_MB = 300.0
RSS_GROWTH_LIMIT = 1.5  # peak RSS at the largest size / at the smallest
SLOPE_RANGE = (0.85, 1.15)


def rate(rows: int, seconds: float | None) -> float | None:
    return rows / seconds if seconds else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(seconds) over log(rows)."""
    if len(points) < 2:
        return None
    xs = [math.log(r) for r, _ in points]
    ys = [math.log(s) for _, s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def derive(results: dict[str, Any]) -> None:
    """Add ``rows`` (one per engine × size) and ``targets`` to ``results``."""
    table: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []

    def target(name: str, engine: str, size: Any, value: float | None, ok: Any) -> None:
        verdict = "n/a" if value is None or ok is None else ("PASS" if ok else "FAIL")
        targets.append(
            {"target": name, "engine": engine, "size": size, "value": value, "result": verdict}
        )

    for engine, sizes in results["engines"].items():
        first_points: list[tuple[int, float]] = []
        rss_by_size: list[tuple[int, float]] = []
        for size_key, m in sizes.items():
            size = int(size_key)
            rows = m["rows"]
            parse_s = results["parse"][size_key]["seconds"]
            vparse_s = results["parse"][size_key].get("columnar_seconds")
            raw_rate = rate(rows, (m.get("raw_copy") or {}).get("seconds"))
            floor = m.get("floor") or {}
            floor_rate = rate(rows, floor.get("seconds"))
            first_rate = rate(rows, m["first"]["seconds"])
            unchanged_rate = rate(rows, m["unchanged"]["seconds"])
            changed_rate = rate(m["changed_rows"], m["changed"]["seconds"])
            dlt_first = m.get("dlt_first") or {}
            dlt_changed = m.get("dlt_changed") or {}
            dlt_first_rate = rate(rows, dlt_first.get("seconds"))
            dlt_changed_rate = rate(m["changed_rows"], dlt_changed.get("seconds"))
            peak = max(m[k]["peak_rss_mb"] for k in ("first", "unchanged", "changed"))
            first_points.append((rows, m["first"]["seconds"]))
            rss_by_size.append((size, peak))
            row = {
                "engine": engine,
                "rows": rows,
                "parse_rows_s": rate(rows, parse_s),
                "floor_rows_s": floor_rate,
                "first_rows_s": first_rate,
                "first_vs_floor": ratio(first_rate, floor_rate),
                "first_vs_dlt": ratio(first_rate, dlt_first_rate),
                "unchanged_rows_s": unchanged_rate,
                "unchanged_time_vs_parse": ratio(m["unchanged"]["seconds"], parse_s),
                "vparse_rows_s": rate(rows, vparse_s),
                "unchanged_time_vs_vparse": ratio(m["unchanged"]["seconds"], vparse_s),
                "raw_copy_rows_s": raw_rate,
                "first_vs_raw_copy": ratio(first_rate, raw_rate),
                "changed_vs_raw_copy": ratio(changed_rate, raw_rate),
                "changed_rows_s": changed_rate,
                "changed_vs_floor": ratio(changed_rate, floor_rate),
                "changed_vs_dlt": ratio(changed_rate, dlt_changed_rate),
                "dlt_first_rows_s": dlt_first_rate,
                "dlt_changed_rows_s": dlt_changed_rate,
                "peak_rss_mb": peak,
                "apply_lock_s_first": m["first"].get("lock_seconds"),
                "apply_lock_s_changed": m["changed"].get("lock_seconds"),
            }
            table.append(row)
            if engine == "postgresql":
                v = row["first_vs_floor"]
                target("first ingest >= 35% of COPY", engine, size, v, v and v >= 0.35)
                v = row["changed_vs_floor"]
                target("1%-changed >= 50% of COPY", engine, size, v, v and v >= 0.5)
            else:
                v = row["first_vs_floor"]
                target("first ingest >= 40% of executemany", engine, size, v, v and v >= 0.4)
            v = row["unchanged_time_vs_parse"]
            target("unchanged <= 1.3x parse-only time", engine, size, v, v and v <= 1.3)
            v = row["unchanged_time_vs_vparse"]
            target("unchanged <= 1.5x vectorised parse-only", engine, size, v, v and v <= 1.5)
            if engine == "postgresql":
                v = row["changed_vs_raw_copy"]
                target("1%-changed >= 50% of raw COPY", engine, size, v, v and v >= 0.5)
            v = row["changed_vs_dlt"]
            target("1%-changed >= 10x dlt merge", engine, size, v, v and v >= 10)
        largest, peak = max(rss_by_size)
        smallest, small_peak = min(rss_by_size)
        target(
            f"peak RSS <= {RSS_LIMIT_MB:.0f} MB at 1M rows",
            engine,
            largest,
            peak,
            peak <= RSS_LIMIT_MB if largest >= 1_000_000 else None,
        )
        if largest < 1_000_000 and peak > RSS_LIMIT_MB:
            target(f"peak RSS <= {RSS_LIMIT_MB:.0f} MB (below 1M)", engine, largest, peak, False)
        growth = peak / small_peak if largest > smallest else None
        target(
            f"peak RSS not growing (largest/smallest <= {RSS_GROWTH_LIMIT})",
            engine,
            f"{smallest}->{largest}",
            growth,
            None if growth is None else growth <= RSS_GROWTH_LIMIT,
        )
        s = slope(first_points)
        target(
            "first-ingest log-log slope 0.85-1.15",
            engine,
            "all",
            s,
            None if s is None else SLOPE_RANGE[0] <= s <= SLOPE_RANGE[1],
        )
    for engine, api in results.get("api", {}).items():
        w_idle = api["idle"]["write"]["p99_ms"]
        w_during = api["during"]["write"]["p99_ms"]
        api["write_p99_ratio"] = ratio(w_during, w_idle)
        p_idle = api["idle"]["page"]["p99_ms"]
        api["page_p99_ratio"] = ratio(api["during"]["page"]["p99_ms"], p_idle)
        api["page_p95_ratio"] = ratio(
            api["during"]["page"].get("p95_ms"), api["idle"]["page"].get("p95_ms")
        )
        at_1m = api["rows"] >= 1_000_000
        if engine == "postgresql":
            v = api["write_p99_ratio"]
            ok = v <= 3 if v is not None and at_1m else None
            target("kiosk write p99 during 1M apply <= 3x idle", engine, api["rows"], v, ok)
            v = api["page_p95_ratio"]
            ok = v <= 3 if v is not None and at_1m else None
            target("page p95 during 1M apply <= 3x idle", engine, api["rows"], v, ok)
    for engine, case in results.get("appearance", {}).items():
        case["rows_s"] = rate(case["status_rows"], case["seconds"])
        case["floor_rows_s"] = rate(case["status_rows"], case["floor"]["seconds"])
        case["vs_floor"] = ratio(case["rows_s"], case["floor_rows_s"])
        if engine == "postgresql":
            v = case["vs_floor"]
            label = f"{case['schedule_rows']}+{case['status_rows']}"
            target("appearance case >= 25% of COPY", engine, label, v, v and v >= 0.25)
    results["rows"] = table
    results["targets"] = targets


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


COLUMNS = [
    ("engine", "engine", ""),
    ("rows", "rows", ""),
    ("first r/s", "first_rows_s", ",.0f"),
    ("/floor", "first_vs_floor", ".2f"),
    ("/dlt", "first_vs_dlt", ".2f"),
    ("unch r/s", "unchanged_rows_s", ",.0f"),
    ("t/parse", "unchanged_time_vs_parse", ".2f"),
    ("t/vparse", "unchanged_time_vs_vparse", ".2f"),
    ("1%chg r/s", "changed_rows_s", ",.0f"),
    ("/floor", "changed_vs_floor", ".2f"),
    ("/dlt", "changed_vs_dlt", ".2f"),
    ("floor r/s", "floor_rows_s", ",.0f"),
    ("parse r/s", "parse_rows_s", ",.0f"),
    ("vparse r/s", "vparse_rows_s", ",.0f"),
    ("rawCOPY r/s", "raw_copy_rows_s", ",.0f"),
    ("first/raw", "first_vs_raw_copy", ".2f"),
    ("1%/raw", "changed_vs_raw_copy", ".2f"),
    ("dlt r/s", "dlt_first_rows_s", ",.0f"),
    ("RSS MB", "peak_rss_mb", ".0f"),
]


def render(results: dict[str, Any]) -> str:
    header = [c[0] for c in COLUMNS]
    body = [[_fmt(row[key], spec) for _, key, spec in COLUMNS] for row in results["rows"]]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    lines.append(
        "floor = PostgreSQL COPY (unlogged, text columns) / SQLite bare executemany; "
        "t/parse = unchanged re-ingest time / decode+parse+validate time (row path);"
        " vparse = the vectorised decode+parse+validate (ingest/blocks.py, ingest/batches.py);"
        " rawCOPY = PostgreSQL COPY (FORMAT csv) of the decoded file into an unlogged table"
    )
    for engine, api in results.get("api", {}).items():
        idle, during = api["idle"], api["during"]
        lines.append(
            f"API {engine} @ {api['rows']} rows, {api['clients']} clients: "
            f"write p50/p99 idle {_fmt(idle['write']['p50_ms'], '.1f')}/"
            f"{_fmt(idle['write']['p99_ms'], '.1f')} ms, during ingest "
            f"{_fmt(during['write']['p50_ms'], '.1f')}/{_fmt(during['write']['p99_ms'], '.1f')}"
            f" ms (x{_fmt(api.get('write_p99_ratio'))}, "
            f"longest wait {_fmt(during['write']['max_ms'], '.0f')}"
            f" ms, {during['write']['errors']} errors / {during['write']['n']}); "
            f"page p50/p99 idle {_fmt(idle['page']['p50_ms'], '.1f')}/"
            f"{_fmt(idle['page']['p99_ms'], '.1f')} ms, during "
            f"{_fmt(during['page']['p50_ms'], '.1f')}/{_fmt(during['page']['p99_ms'], '.1f')} ms"
            f" (x{_fmt(api.get('page_p99_ratio'))})"
        )
    for engine, case in results.get("appearance", {}).items():
        lines.append(
            f"appearance_supplement {engine}: {case['status_rows']:,} status rows onto a"
            f" {case['schedule_rows']:,}-row schedule through the worker in"
            f" {case['seconds']:.2f} s ({_fmt(case['rows_s'], ',.0f')} rows/s,"
            f" x{_fmt(case['vs_floor'])} of the floor's {_fmt(case['floor_rows_s'], ',.0f')};"
            f" schedule ingest {case['schedule_seconds']:.2f} s)"
        )
    for t in results["targets"]:
        lines.append(
            f"[{t['result']:>4}] {t['engine']:<10} {t['size']!s:>16}  {t['target']}: "
            f"{_fmt(t['value'], '.3g')}"
        )
    for note in results.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
