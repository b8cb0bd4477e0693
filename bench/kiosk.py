"""The kiosk benchmark: ``python -m bench.kiosk [--sizes 3000,60000,200000] [--engines sqlite]``.

For every engine × size: a fresh database and data directory, ``csvboard db upgrade``,
``csvboard demo --steps N`` (the ``production-schedule`` dashboard), an operator token, then a
real ``csvboard serve --no-scheduler`` on 127.0.0.1 and a free port. Measured against it:

* the server: the kiosk's API calls (rows, summary, resources, 製番 list, lookup; scoped by
  resource and by 20 registered 製番), ``--calls`` timed calls each after one untimed warm-up;
* the page, in Debian's headless Chromium (1920×1080, ja-JP, Asia/Tokyo), signed in as an
  operator and scoped to resource M01, at normal CPU and throttled ``--cpu-rates`` (4× stands
  in for a Raspberry Pi 4 kiosk): the first usable board, tap → write confirmed, search, the
  scroll to the fifth page, DOM elements and JS heap after it.

Every time on the page is taken inside the page (``performance.now()``, MutationObserver)
by functions installed with ``add_init_script``; Playwright only starts them and collects the
result, so its round trips stay out of the figures. Each wait is bounded (``--timeout``): a
page that misses its contract gives an error in the table, not a hang.

Prints two markdown tables (the page; the server) with the targets beside the figures and
writes everything as JSON to ``<out>/kiosk-<UTC timestamp>.json``. The targets are figures to
read, never assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.api_load import _free_port, percentile
from bench.child import REPO
from bench.report import _fmt, ratio
from bench.run import Databases

SLUG = "production-schedule"
API = f"/api/v1/schedules/{SLUG}"
HEALTH = "/api/v1/ops/diagnostics/health"
KIOSK_PATH = f"/kiosk/{SLUG}"
PROGRESS_PATH = f"{KIOSK_PATH}/progress"  # 進捗一覧: cards by 製番
ORDER_BOARD_PATH = f"{KIOSK_PATH}/board"  # 順位ボード: a column per resource (the scope's M01)
SCOPE_KEY = f"csvboard.kiosk.scope.{SLUG}"
SCOPE = {"resources": ["M01"], "seibans": []}
PLACEHOLDER_SEIBAN = "********"
LOOKUP_IDS = 150
SCOPED_SEIBANS = 20
SCROLL_PAGES = 5
PAGE_ROWS = 50  # the page's contract: 50 rows a page
SEARCH_DEBOUNCE_MS = 120  # kiosk.js SEARCH_DEBOUNCE_MS, included in the search figure
TAP_GAP_MS = 100  # idle time before each tap (not timed)

TARGETS = {
    "first_usable_ms": 1000.0,
    "tap_p95_ms": 200.0,
    "search_ms": 300.0,
    "server_p95_ms": 100.0,
}

Log = Callable[[str], None]


class BenchError(RuntimeError):
    """A step of the measurement failed (reported in the table, the run goes on)."""


# --- pure helpers -----------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    """``"3000,60_000"`` → ``[3000, 60000]`` (sorted, distinct); ``""`` → ``[]``."""
    return sorted({int(s.strip().replace("_", "")) for s in text.split(",") if s.strip()})


def parse_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def stats(values: list[float]) -> dict[str, Any]:
    """n, p50, p95 (api_load's inclusive percentiles), min and max of ``values`` in ms."""
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50) if values else None,
        "p95_ms": percentile(values, 95) if values else None,
        "min_ms": min(values) if values else None,
        "max_ms": max(values) if values else None,
    }


def short(exc: BaseException | str, limit: int = 300) -> str:
    """One line of an error, at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    if isinstance(exc, BaseException) and not isinstance(exc, BenchError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pick_seibans(
    items: list[dict[str, Any]], want: int, have: list[str] | None = None
) -> list[str]:
    """Distinct FSEIBAN in page order (the placeholder ``********`` skipped), at most ``want``."""
    out = list(have or [])
    for item in items:
        s = item.get("row_data", {}).get("FSEIBAN", "")
        if len(out) >= want:
            break
        if s and s != PLACEHOLDER_SEIBAN and s not in out:
            out.append(s)
    return out


def server_endpoints(ids: list[str], seibans: list[str]) -> list[tuple[str, str, Any]]:
    """(label, path under the schedule's API, query params) of the timed server calls."""
    by_seiban = [("seiban", s) for s in seibans]
    return [
        ("rows M01 limit=400", "/rows", [("resource", "M01"), ("limit", 400)]),
        (
            "rows M01+M02 limit=100",
            "/rows",
            [("resource", "M01"), ("resource", "M02"), ("limit", 100)],
        ),
        ("summary M01", "/summary", [("resource", "M01")]),
        ("resources", "/resources", []),
        ("seibans", "/seibans", []),
        (f"lookup {len(ids)} ids", "/lookup", [("id", i) for i in ids]),
        (f"summary {len(seibans)} 製番", "/summary", by_seiban),
        (f"rows {len(seibans)} 製番 limit=100", "/rows", [*by_seiban, ("limit", 100)]),
        # the kiosk keypad's search without a scope: a 製番, and a part of a 品番
        ("search 製番, no scope", "/rows", [("q", seibans[-1] if seibans else ""), ("limit", 50)]),
        ("search text, no scope", "/rows", [("q", "B12"), ("limit", 50)]),
        # 進捗一覧: a page of cards for the scope's 製番, and the first page of every 製番
        (f"cards {len(seibans)} 製番", "/cards", by_seiban),
        ("cards, all 製番", "/cards", []),
        # 順位ボード: the first page of a resource's column
        ("order-board M01", "/order-board", [("resource", "M01")]),
    ]


def derive(results: dict[str, Any]) -> None:
    """Add ``browser_rows`` and ``server_rows`` (one per engine × size × CPU / endpoint), each
    with ``x_*`` ratios: the value at that size / the value at the smallest size measured."""
    browser_rows: list[dict[str, Any]] = []
    server_rows: list[dict[str, Any]] = []
    for case in results["cases"]:
        passes = case.get("browser")
        if case.get("error") and not passes:
            passes = [{"cpu": None, "errors": {"case": case["error"]}}]
        for m in passes or []:
            errors = m.get("errors") or {}
            browser_rows.append(
                {
                    "engine": case["engine"],
                    "size": case["size"],
                    "cpu": m.get("cpu"),
                    "first_usable_ms": m.get("first_usable_ms"),
                    "tap_p50_ms": (m.get("taps") or {}).get("p50_ms"),
                    "tap_p95_ms": (m.get("taps") or {}).get("p95_ms"),
                    "taps_n": (m.get("taps") or {}).get("n"),
                    "search_ms": m.get("search_ms"),
                    "scroll5_ms": m.get("scroll5_ms"),
                    "dom_elements": m.get("dom_elements"),
                    "heap_mb": m.get("heap_mb"),
                    "progress_first_usable_ms": m.get("progress_first_usable_ms"),
                    "progress_pages": m.get("progress_pages"),
                    "progress_dom_elements": m.get("progress_dom_elements"),
                    "order_board_first_usable_ms": m.get("order_board_first_usable_ms"),
                    "order_board_dom_elements": m.get("order_board_dom_elements"),
                    "error": "; ".join(f"{k}: {v}" for k, v in errors.items()) or None,
                }
            )
        endpoints = case.get("server") or {}
        if case.get("error") and not endpoints:
            server_rows.append(
                {
                    "engine": case["engine"],
                    "size": case["size"],
                    "endpoint": "(all)",
                    "p50_ms": None,
                    "p95_ms": None,
                    "bytes": None,
                    "errors": None,
                    "error": case["error"],
                }
            )
        for label, s in endpoints.items():
            server_rows.append(
                {
                    "engine": case["engine"],
                    "size": case["size"],
                    "endpoint": label,
                    "p50_ms": s.get("p50_ms"),
                    "p95_ms": s.get("p95_ms"),
                    "bytes": s.get("bytes"),
                    "errors": s.get("errors"),
                    "error": s.get("error"),
                }
            )
    _add_ratios(
        browser_rows,
        ("engine", "cpu"),
        [
            "first_usable_ms",
            "tap_p95_ms",
            "search_ms",
            "scroll5_ms",
            "progress_first_usable_ms",
            "order_board_first_usable_ms",
        ],
    )
    # The endpoint labels carry the counts (lookup 150 ids, 20 製番); compare like with like.
    _add_ratios(server_rows, ("engine", "endpoint"), ["p95_ms"])
    results["browser_rows"] = browser_rows
    results["server_rows"] = server_rows


def _add_ratios(rows: list[dict[str, Any]], group: tuple[str, ...], keys: list[str]) -> None:
    for key in keys:
        base: dict[tuple[Any, ...], tuple[int, float]] = {}
        for row in rows:
            g = tuple(row[k] for k in group)
            value = row.get(key)
            if value is not None and (g not in base or row["size"] < base[g][0]):
                base[g] = (row["size"], value)
        for row in rows:
            b = base.get(tuple(row[k] for k in group))
            row[f"x_{key}"] = ratio(row.get(key), b[1]) if b else None


def _over(value: Any, limit: float, spec: str = ".0f") -> str:
    text = _fmt(value, spec)
    return f"{text} ✗" if isinstance(value, int | float) and value > limit else text


def _x(value: Any) -> str:
    return _fmt(value, ".2f")


def _int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _fmt(value)


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in body]
    return lines


def render(results: dict[str, Any]) -> str:
    """The two markdown tables and their notes (``derive`` first)."""
    sizes = [c["size"] for c in results["cases"]] or [0]
    smallest = f"×{min(sizes):,}"
    t = TARGETS
    lines = [f"### Kiosk page (scope M01, {PAGE_ROWS} rows a page)", ""]
    header = [
        "engine",
        "steps",
        "CPU",
        f"first usable ms (≤ {t['first_usable_ms']:.0f})",
        smallest,
        "tap p50 ms",
        f"tap p95 ms (≤ {t['tap_p95_ms']:.0f})",
        smallest,
        f"search ms (≤ {t['search_ms']:.0f})",
        smallest,
        f"to page {SCROLL_PAGES} ms",
        smallest,
        "DOM elements",
        "JS heap MB",
        "error",
    ]
    body = [
        [
            r["engine"],
            f"{r['size']:,}",
            "n/a" if r["cpu"] is None else f"{r['cpu']:g}×",
            _over(r["first_usable_ms"], t["first_usable_ms"]),
            _x(r["x_first_usable_ms"]),
            _fmt(r["tap_p50_ms"], ".0f"),
            _over(r["tap_p95_ms"], t["tap_p95_ms"]),
            _x(r["x_tap_p95_ms"]),
            _over(r["search_ms"], t["search_ms"]),
            _x(r["x_search_ms"]),
            _fmt(r["scroll5_ms"], ".0f"),
            _x(r["x_scroll5_ms"]),
            _int(r["dom_elements"]),
            _fmt(r["heap_mb"], ".1f"),
            short(r["error"], 60) if r["error"] else "",
        ]
        for r in results["browser_rows"]
    ]
    lines += _table(header, body) if body else ["(no browser runs)"]
    lines += [
        "",
        f"first usable = median of {results.get('reloads', 3)} reloads, navigation start →"
        " `#board[data-state=ready]` with a visible toggle (performance.now() in the page);"
        f" tap = {results.get('taps', 50)} taps, click dispatched in the page → `data-write=ok`"
        " and `aria-pressed` flipped (MutationObserver); search = an 8-character 製番 set +"
        " `input` event → board `loading` → `ready`, raw, including the page's"
        f" ~{SEARCH_DEBOUNCE_MS} ms debounce; to page {SCROLL_PAGES} = scrollTo(bottom) each frame"
        f" from a fresh board until `data-pages ≥ {SCROLL_PAGES}`; DOM elements and JS heap"
        " (CDP JSHeapUsedSize) after that. 4× = CDP CPU throttling (a Raspberry Pi 4 kiosk).",
        f"✗ = over the target; {smallest} = the value / the value at {min(sizes):,} steps"
        " (target: the same at every size, ≈ 1). Figures, not assertions.",
        "",
        "### 進捗一覧 (progress board) and 順位ボード (order board)",
        "",
    ]
    lines += _table(
        [
            "engine",
            "steps",
            "CPU",
            f"進捗一覧 first usable ms (≤ {t['first_usable_ms']:.0f})",
            smallest,
            "pages",
            "DOM elements",
            f"順位ボード first usable ms (≤ {t['first_usable_ms']:.0f})",
            smallest,
            "DOM elements",
        ],
        [
            [
                r["engine"],
                f"{r['size']:,}",
                "n/a" if r["cpu"] is None else f"{r['cpu']:g}×",
                _over(r["progress_first_usable_ms"], t["first_usable_ms"]),
                _x(r["x_progress_first_usable_ms"]),
                _int(r["progress_pages"]),
                _int(r["progress_dom_elements"]),
                _over(r["order_board_first_usable_ms"], t["first_usable_ms"]),
                _x(r["x_order_board_first_usable_ms"]),
                _int(r["order_board_dom_elements"]),
            ]
            for r in results["browser_rows"]
        ],
    )
    lines += [
        "",
        f"first usable = median of {results.get('reloads', 3)} navigations to the page → the"
        " board `ready` with a visible step chip (進捗一覧) or toggle (順位ボード); 進捗一覧's DOM"
        f" after scrolling to page {SCROLL_PAGES} of cards (12 a page; fewer when the registered"
        " 製番 run out); 順位ボード's with the scope's one column (M01, 30 steps).",
        "",
        "### Kiosk API (server)",
        "",
    ]
    header = [
        "engine",
        "steps",
        "endpoint",
        "p50 ms",
        f"p95 ms (≤ {t['server_p95_ms']:.0f})",
        smallest,
        "bytes",
        "errors",
    ]
    body = [
        [
            r["engine"],
            f"{r['size']:,}",
            r["endpoint"],
            _fmt(r["p50_ms"], ".1f"),
            _over(r["p95_ms"], t["server_p95_ms"], ".1f"),
            _x(r["x_p95_ms"]),
            _int(r["bytes"]),
            short(r["error"], 60) if r.get("error") else _fmt(r["errors"]),
        ]
        for r in results["server_rows"]
    ]
    lines += _table(header, body)
    lines += [
        "",
        f"{results.get('calls', 20)} calls per endpoint after one untimed warm-up, one"
        " keep-alive httpx client on loopback, operator token; errors = non-200 answers;"
        " bytes = body of the last answer.",
    ]
    for row in results["browser_rows"]:
        if row["error"]:
            cpu = "" if row["cpu"] is None else f" CPU {row['cpu']:g}×"
            lines.append(f"error: {row['engine']} {row['size']:,}{cpu}: {row['error']}")
    for note in results.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


# --- data and server --------------------------------------------------------------------------


def _csvboard() -> str:
    exe = Path(sys.executable).with_name("csvboard")
    return str(exe) if exe.exists() else shutil.which("csvboard") or "csvboard"


def _cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 3600) -> str:
    proc = subprocess.run(
        [_csvboard(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise BenchError(f"csvboard {' '.join(args)} exited {proc.returncode}: {tail}")
    return proc.stdout


def prepare(env: dict[str, str], cwd: Path, steps: int) -> tuple[str, dict[str, float]]:
    """Migrate, load the demo schedule (~``steps`` steps), create an operator token."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    _cli(env, cwd, "db", "upgrade")
    seconds["upgrade"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _cli(env, cwd, "demo", "--steps", str(steps))
    seconds["demo"] = time.perf_counter() - t0
    lines = [
        ln.strip()
        for ln in _cli(env, cwd, "tokens", "create", "bench", "--role", "operator").splitlines()
        if ln.strip()
    ]
    if not lines:
        raise BenchError("csvboard tokens create printed no token")
    return lines[-1], seconds


class Server:
    """``csvboard serve --no-scheduler`` on a free loopback port, in its own process group."""

    def __init__(self, env: dict[str, str], cwd: Path, timeout: float) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "serve.log"
        self._log = self.log_path.open("w")
        cmd = [
            _csvboard(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-scheduler",
        ]
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"csvboard serve exited {self.proc.returncode}: {self.log_tail()}")
            try:
                r = httpx.get(self.base + HEALTH, timeout=5)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        raise BenchError(f"{HEALTH} not 200 within {timeout:.0f} s ({last}): {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's process group (the one it was started in), SIGKILL if it
        has not exited 20 s later."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        self._log.close()


def _time_calls(http: httpx.Client, path: str, params: Any, calls: int) -> dict[str, Any]:
    http.get(path, params=params)  # warm-up, untimed
    times: list[float] = []
    errors = 0
    size: int | None = None
    for _ in range(calls):
        t0 = time.perf_counter()
        r = http.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code == 200:
            size = len(r.content)
        else:
            errors += 1
    return {**stats(times), "errors": errors, "bytes": size}


def measure_server(base: str, token: str, calls: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register 20 製番, then time the kiosk's calls. Returns (timings, context), where the
    context holds the registered 製番 and FSEIBAN by row id of M01's first 400 rows (for the
    search)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base + API, headers=headers, timeout=60) as http:
        first = http.get("/rows", params=[("resource", "M01"), ("limit", 400)])
        first.raise_for_status()
        items: list[dict[str, Any]] = first.json()["items"]
        if not items:
            raise BenchError("no M01 steps in the demo schedule")
        seiban_of = {it["id"]: it["row_data"].get("FSEIBAN", "") for it in items}
        ids = [it["id"] for it in items[:LOOKUP_IDS]]
        seibans = pick_seibans(items, SCOPED_SEIBANS)
        cursor: str | None = None
        while len(seibans) < SCOPED_SEIBANS:  # a small schedule: look further, unscoped
            params: list[tuple[str, Any]] = [("limit", 2000)]
            if cursor:
                params.append(("cursor", cursor))
            page = http.get("/rows", params=params)
            page.raise_for_status()
            doc = page.json()
            seibans = pick_seibans(doc["items"], SCOPED_SEIBANS, seibans)
            cursor = doc.get("next_cursor")
            if not cursor:
                break
        etag = http.get("/seibans").headers.get("ETag", '"seibans-0"')
        t0 = time.perf_counter()
        put = http.put("/seibans", json={"seibans": seibans}, headers={"If-Match": etag})
        put_ms = (time.perf_counter() - t0) * 1000
        if put.status_code != 200:
            raise BenchError(f"PUT /seibans answered {put.status_code}: {put.text[:300]}")
        timings: dict[str, Any] = {}
        for label, path, params_ in server_endpoints(ids, seibans):
            try:
                timings[label] = _time_calls(http, path, params_, calls)
            except httpx.HTTPError as exc:  # no answer: this endpoint's row says so
                timings[label] = {"error": short(exc)}
    context = {"seibans": seibans, "put_seibans_ms": put_ms, "seiban_of": seiban_of}
    return timings, context


# --- the page ---------------------------------------------------------------------------------

# Installed before every document of the context. window.__bench.usable: performance.now()
# when #board is first ready with a visible toggle; start(name, arg) runs a measurement (each
# bounded by its timeoutMs in the page) and leaves its outcome in window.__bench.out, which
# Tab.wait polls for (a page whose main thread is stuck is handled by Watchdog).
BENCH_JS = r"""
(() => {
  if (window.top !== window || window.__bench) return;
  const STEP = 'article[data-testid=step]';
  const TOGGLE = '[data-testid=toggle]';
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // The list's #board, or the progress page's #cards (same data-state / data-pages / data-more).
  const board = () => document.getElementById('board') || document.getElementById('cards')
    || document.getElementById('columns');
  const CHIP = '[data-testid=step-chip]';
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  };
  const describe = () => {
    const b = board();
    if (!b) return 'no #board';
    return `data-state=${b.getAttribute('data-state')} data-pages=${b.getAttribute('data-pages')}`
      + ` data-more=${b.getAttribute('data-more')} steps=${document.querySelectorAll(STEP).length}`;
  };
  const bench = { usable: null, boardError: null, out: null, describe };
  window.__bench = bench;
  const watch = () => {
    if (bench.usable !== null) return true;
    const b = board();
    if (!b) return false;
    const state = b.getAttribute('data-state');
    if (state === 'error' && bench.boardError === null) {
      bench.boardError = (b.textContent || '').trim().slice(0, 200) || 'data-state=error';
    }
    if (state !== 'ready') return false;
    for (const t of document.querySelectorAll(STEP + ' ' + TOGGLE + ', ' + CHIP)) {
      if (shown(t)) { bench.usable = performance.now(); return true; }
    }
    return false;
  };
  const seen = new MutationObserver(() => { if (watch()) seen.disconnect(); });
  seen.observe(document, { subtree: true, childList: true, attributes: true });
  const tick = () => { if (watch()) seen.disconnect(); else requestAnimationFrame(tick); };
  requestAnimationFrame(tick);

  // Resolves when fn(records) returns a value (not undefined); fn may throw to reject.
  const until = (target, options, timeoutMs, fn, onTimeout, start) => new Promise((ok, no) => {
    let done = false;
    const finish = (good, v) => {
      if (done) return;
      done = true; obs.disconnect(); clearTimeout(timer); (good ? ok : no)(v);
    };
    const check = (records) => {
      try { const v = fn(records || []); if (v !== undefined) finish(true, v); }
      catch (e) { finish(false, e); }
    };
    const obs = new MutationObserver(check);
    const timer = setTimeout(() => finish(false, new Error(onTimeout())), timeoutMs);
    obs.observe(target, options);
    start();
    check([]);
  });

  bench.ids = (limit) => [...document.querySelectorAll(STEP)].slice(0, limit)
    .map((a) => a.getAttribute('data-row-id'));

  bench.tap = async ({ id, gapMs, timeoutMs }) => {
    const find = () => document.querySelector(`${STEP}[data-row-id="${CSS.escape(id)}"]`);
    if (!find()) throw new Error(`no step ${id} on the board; ${describe()}`);
    find().scrollIntoView({ block: 'center', behavior: 'instant' });
    await frame(); await frame(); await sleep(gapMs);
    const toggle = find() && find().querySelector(TOGGLE);
    if (!toggle) throw new Error(`step ${id} has no ${TOGGLE}`);
    const before = toggle.getAttribute('aria-pressed');
    const state = () => {
      const a = find();
      if (!a) return null;
      const t = a.querySelector(TOGGLE);
      return { write: a.getAttribute('data-write'), pressed: t && t.getAttribute('aria-pressed'),
               completed: a.getAttribute('data-completed') };
    };
    let t0 = 0; let left = false;
    return until(document, { subtree: true, childList: true, attributes: true }, timeoutMs, () => {
      const s = state();
      if (!s) return undefined;
      if (s.write === 'failed' || s.write === 'refused') {
        throw new Error(`step ${id}: data-write=${s.write}`);
      }
      if (s.write !== 'ok') { left = true; return undefined; }
      if (left && s.pressed !== before) return { ms: performance.now() - t0, id, before, ...s };
      return undefined;
    }, () => `step ${id} not confirmed in ${timeoutMs} ms: ${JSON.stringify(state())}, `
        + `aria-pressed was ${before}${left ? '' : ', data-write never left "ok"'}`,
    () => { t0 = performance.now(); toggle.click(); });
  };

  bench.search = async ({ text, timeoutMs }) => {
    const input = document.getElementById('kiosk-search');
    if (!input) throw new Error('no #kiosk-search');
    const b = board();
    if (!b) throw new Error('no #board');
    let t0 = 0; let left = false;
    return until(b, { attributes: true, attributeFilter: ['data-state'], attributeOldValue: true },
      timeoutMs, (records) => {
        for (const r of records) if (r.oldValue !== 'ready') left = true;
        const s = b.getAttribute('data-state');
        if (s === 'error') {
          throw new Error('board error: ' + (b.textContent || '').trim().slice(0, 150));
        }
        if (s !== 'ready') { left = true; return undefined; }
        if (!left) return undefined;
        return { ms: performance.now() - t0, steps: document.querySelectorAll(STEP).length,
                 pages: b.getAttribute('data-pages') };
      }, () => `board not loading → ready within ${timeoutMs} ms of the input (${describe()})`,
      () => {
        t0 = performance.now();
        input.value = text;
        input.dispatchEvent(new Event('input', { bubbles: true }));
      });
  };

  bench.scroll = async ({ pages, timeoutMs }) => {
    const t0 = performance.now();
    for (;;) {
      const b = board();
      const n = Number((b && b.getAttribute('data-pages')) || 0);
      if (n >= pages) return { ms: performance.now() - t0, pages: n };
      const more = b && b.getAttribute('data-more');
      if (more === 'false' && b.getAttribute('data-state') === 'ready') {
        return { ms: null, pages: n, exhausted: true };
      }
      if (performance.now() - t0 > timeoutMs) {
        throw new Error(`not at page ${pages} within ${timeoutMs} ms (${describe()})`);
      }
      const root = document.documentElement;
      window.scrollTo(0, Math.max(document.body.scrollHeight, root.scrollHeight));
      await frame();
    }
  };

  bench.start = (name, arg) => {
    bench.out = null;
    setTimeout(() => {
      Promise.resolve().then(() => bench[name](arg)).then(
        (value) => { bench.out = { ok: true, value }; },
        (e) => { bench.out = { ok: false, error: String((e && e.message) || e) }; });
    }, 0);
  };
})();
"""


def scope_script() -> str:
    value = json.dumps(json.dumps(SCOPE))
    return f"try {{ localStorage.setItem({json.dumps(SCOPE_KEY)}, {value}); }} catch (e) {{}}"


def _e2e_launch() -> tuple[Path, list[str]]:
    """Chromium's path and launch arguments, as the browser tests use them."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from e2e.conftest import CHROMIUM, LAUNCH_ARGS

    return Path(CHROMIUM), list(LAUNCH_ARGS)


PROBE_SECONDS = 5.0  # a quick read of the page (its board's attributes, the DOM size)
WATCHDOG_GRACE = 15.0  # seconds between killing the renderers and killing the browser


class PageHung(BenchError):
    """The page did not answer: the rest of its pass is skipped."""


def _descendants(match: Callable[[list[bytes]], bool]) -> list[int]:
    """Pids of this process's descendants whose argv matches (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if match(argv):
                found.append(child)
    return found


def _is_renderer(argv: list[bytes]) -> bool:
    return b"--type=renderer" in argv


def _is_chromium(argv: list[bytes]) -> bool:
    return b"chrom" in Path(argv[0].decode(errors="replace")).name.encode()


class Watchdog:
    """Bounds Playwright's sync calls. Its own timeouts need the page to answer: a page whose
    main thread is stuck blocks a ``wait_for_function`` (or a CDP call) for ever. Each call runs
    under ``guard``; on overrun this thread kills our Chromium's renderers (the call then fails
    and is reported as PageHung), and, if the call still has not returned after
    WATCHDOG_GRACE seconds, our Chromium itself. Only descendants of this process, by pid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._stage = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiosk-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                if self._deadline is None or time.monotonic() < self._deadline:
                    continue
                self._stage += 1
                self._deadline = time.monotonic() + WATCHDOG_GRACE
                match = _is_renderer if self._stage == 1 else _is_chromium
            for pid in _descendants(match):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    @contextlib.contextmanager
    def guard(self, seconds: float, what: str) -> Iterator[None]:
        with self._lock:
            self._deadline = time.monotonic() + seconds
            self._stage = 0
        try:
            yield
        except Exception as exc:
            if self._stage:
                raise PageHung(f"no answer to {what} in {seconds:.0f} s; renderer killed") from exc
            raise
        finally:
            with self._lock:
                self._deadline = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Tab:
    """A signed-in page, every call to it bounded (``timeout`` per wait, see Watchdog)."""

    page: Any
    dog: Watchdog
    timeout: float

    def call(self, what: str, fn: Callable[[], Any], seconds: float | None = None) -> Any:
        with self.dog.guard((seconds or self.timeout) + 10, what):
            return fn()

    def eval(self, fn: str, arg: Any = None) -> Any:
        """``fn(arg)`` evaluated in the page within PROBE_SECONDS."""
        try:
            handle = self.call(
                "evaluate",
                lambda: self.page.wait_for_function(
                    f"(arg) => ({{ v: ({fn})(arg) }})", arg=arg, timeout=PROBE_SECONDS * 1000
                ),
                PROBE_SECONDS,
            )
        except PageHung:
            raise
        except Exception as exc:
            raise BenchError(short(exc)) from exc
        return self.call("evaluate", handle.json_value, PROBE_SECONDS)["v"]

    def describe(self) -> str:
        """The board's attributes, for error messages."""
        return str(
            self.eval("() => window.__bench ? window.__bench.describe() : 'no bench script'")
        )

    def wait(self, what: str, predicate: str, seconds: float | None = None) -> Any:
        """The truthy value of ``predicate`` (JSON), or BenchError after ``seconds``."""
        limit = seconds or self.timeout
        try:
            handle = self.call(
                what, lambda: self.page.wait_for_function(predicate, timeout=limit * 1000), limit
            )
        except PageHung:
            raise
        except Exception as exc:
            raise BenchError(f"no {what} within {limit:.0f} s ({self.describe()})") from exc
        return self.call(what, handle.json_value)

    def run(self, name: str, arg: dict[str, Any]) -> Any:
        """``window.__bench[name]`` (bounded in the page by ``timeout`` too): its value, or
        BenchError with its error."""
        self.eval("([name, arg]) => window.__bench.start(name, arg)", [name, arg])
        # The page's own timeout comes first: its message says more (the step's attributes).
        out: dict[str, Any] = self.wait(
            f"{name} result", "() => window.__bench && window.__bench.out", self.timeout + 5
        )
        if not out.get("ok"):
            raise BenchError(str(out.get("error")))
        return out.get("value")

    def reload_until_usable(self) -> float:
        """Reload; ms from navigation start to the first usable board."""
        self.call(
            "reload",
            lambda: self.page.reload(wait_until="commit", timeout=self.timeout * 1000),
        )
        return self._usable()

    def open_until_usable(self, url: str) -> float:
        """Navigate to ``url``; ms from navigation start to the first usable board."""
        self.call("goto", lambda: self.page.goto(url, wait_until="commit"))
        return self._usable()

    def _usable(self) -> float:
        got: dict[str, Any] = self.wait(
            "usable board",
            "() => window.__bench && (window.__bench.usable !== null"
            " || window.__bench.boardError !== null)"
            " && {usable: window.__bench.usable, error: window.__bench.boardError}",
        )
        if got["usable"] is None:
            raise BenchError(f"board error: {got['error']}")
        return float(got["usable"])

    def sign_in(self, base: str, token: str) -> None:
        """Through the login form, as a person would (like tests/e2e's ``sign_in``)."""

        def go() -> None:
            self.page.goto(f"{base}/login?next={KIOSK_PATH}")
            self.page.fill("#token", token)
            self.page.click("button[type=submit]")
            self.page.wait_for_url(f"{base}{KIOSK_PATH}")

        self.call("sign-in", go, 3 * self.timeout)

    def search_token(self, seiban_of: dict[str, str], fallback: list[str]) -> str:
        """The 製番 of the first step on the board that has a real one."""
        ids: list[str] = self.eval("(n) => window.__bench.ids(n)", 100)
        for row_id in ids:
            s = seiban_of.get(row_id or "", "")
            if len(s) == 8 and s != PLACEHOLDER_SEIBAN:
                return s
        if not fallback:
            raise BenchError("no 8-character 製番 to search for")
        return fallback[0]


def tap_targets(ids: list[str], base: str, token: str) -> list[str]:
    """The steps of ``ids`` a tap can flip: not completed by the source file (a step the
    source reported complete stays complete whatever the kiosk says), read via the lookup."""
    if not ids:
        raise BenchError("no steps on the board to tap")
    with httpx.Client(base_url=base + API, timeout=60) as http:
        r = http.get(
            "/lookup",
            params=[("id", i) for i in ids],
            headers={"Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
    external = {it["id"] for it in r.json()["items"] if it.get("external_completed")}
    targets = [i for i in ids if i not in external]
    if not targets:
        raise BenchError(f"all {len(ids)} steps on the board are completed by the source")
    return targets


def browser_pass(
    browser: Any,
    dog: Watchdog,
    base: str,
    token: str,
    context_data: dict[str, Any],
    *,
    cpu: float,
    taps: int,
    reloads: int,
    timeout: float,
    log: Log,
) -> dict[str, Any]:
    """Metrics (a)–(f) at one CPU rate. A failing metric goes to ``errors`` and the next one
    runs; without a usable board, or once the page stops answering, the rest is skipped."""
    m: dict[str, Any] = {"cpu": cpu, "errors": {}, "page_errors": []}
    errors: dict[str, str] = m["errors"]
    wait_ms = timeout * 1000
    context = browser.new_context(
        viewport={"width": 1920, "height": 1080}, locale="ja-JP", timezone_id="Asia/Tokyo"
    )
    try:
        context.set_default_timeout(wait_ms)
        context.add_init_script(BENCH_JS)
        tab = Tab(context.new_page(), dog, timeout)

        def on_error(exc: Any) -> None:
            if len(m["page_errors"]) < 10:
                m["page_errors"].append(short(str(exc)))

        tab.page.on("pageerror", on_error)

        def sign_in() -> None:
            tab.sign_in(base, token)
            context.add_init_script(scope_script())
            if cpu != 1:
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": cpu})

        cdp = context.new_cdp_session(tab.page)

        def first_usable() -> None:  # (a)
            samples: list[float] = []
            m["first_usable_samples_ms"] = samples
            try:
                for _ in range(reloads):
                    samples.append(tab.reload_until_usable())
            finally:
                if samples:
                    m["first_usable_ms"] = statistics.median(samples)
                    m["first_usable_best_ms"] = min(samples)
                    log(
                        f"    CPU {cpu:g}×: first usable {m['first_usable_ms']:.0f} ms of {samples}"
                    )

        def tap() -> None:  # (b)
            tap_ms: list[float] = []
            tapped: list[str] = []
            targets = tap_targets(tab.eval("(n) => window.__bench.ids(n)", taps), base, token)
            m["tap_targets"] = len(targets)
            try:
                for i in range(taps):
                    # Different steps; past the end of the list the same ones again (back).
                    arg = {
                        "id": targets[i % len(targets)],
                        "gapMs": TAP_GAP_MS,
                        "timeoutMs": wait_ms,
                    }
                    try:
                        got = tab.run("tap", arg)
                    except BenchError as exc:
                        raise type(exc)(f"at tap {i + 1} of {taps}: {exc}") from exc
                    tap_ms.append(float(got["ms"]))
                    tapped.append(got["id"])
            finally:
                m["taps"] = {**stats(tap_ms), "distinct_steps": len(set(tapped))}
                m["tap_samples_ms"] = [round(v, 1) for v in tap_ms]
                if tap_ms:
                    log(f"    CPU {cpu:g}×: {len(tap_ms)} taps, p95 {m['taps']['p95_ms']:.0f} ms")

        def search() -> None:  # (c), then cleared again
            text = tab.search_token(context_data["seiban_of"], context_data["seibans"])
            got = tab.run("search", {"text": text, "timeoutMs": wait_ms})
            m["search"] = {"text": text, **got}
            m["search_ms"] = float(got["ms"])
            log(f"    CPU {cpu:g}×: search {text} {m['search_ms']:.0f} ms")
            cleared = tab.run("search", {"text": "", "timeoutMs": wait_ms})
            m["search_clear_ms"] = float(cleared["ms"])

        def scroll() -> None:  # (d), from a fresh board
            tab.reload_until_usable()
            got = tab.run("scroll", {"pages": SCROLL_PAGES, "timeoutMs": wait_ms})
            m["scroll"] = got
            if got.get("exhausted"):
                raise BenchError(f"only {got['pages']} pages (data-more=false)")
            m["scroll5_ms"] = float(got["ms"])
            log(f"    CPU {cpu:g}×: to page {SCROLL_PAGES} {m['scroll5_ms']:.0f} ms")

        def dom_heap() -> None:  # (e), (f)
            m["dom_elements"] = int(tab.eval("() => document.getElementsByTagName('*').length"))
            m["steps_in_dom"] = int(
                tab.eval("() => document.querySelectorAll('article[data-testid=step]').length")
            )
            tab.call("CDP Performance", lambda: cdp.send("Performance.enable"), PROBE_SECONDS)
            got = tab.call(
                "CDP Performance", lambda: cdp.send("Performance.getMetrics"), PROBE_SECONDS
            )
            heap = next(x["value"] for x in got["metrics"] if x["name"] == "JSHeapUsedSize")
            m["heap_mb"] = heap / 2**20

        def progress_board() -> None:  # (g) 進捗一覧: first usable, then DOM after paging
            samples = [tab.open_until_usable(base + PROGRESS_PATH) for _ in range(reloads)]
            m["progress_first_usable_ms"] = statistics.median(samples)
            got = tab.run("scroll", {"pages": SCROLL_PAGES, "timeoutMs": wait_ms})
            m["progress_pages"] = got["pages"]
            m["progress_scroll_ms"] = got["ms"]
            m["progress_dom_elements"] = int(
                tab.eval("() => document.getElementsByTagName('*').length")
            )
            m["progress_cards_in_dom"] = int(
                tab.eval("() => document.querySelectorAll('[data-testid=card]').length")
            )
            log(
                f"    CPU {cpu:g}×: progress board first usable"
                f" {m['progress_first_usable_ms']:.0f} ms of {samples},"
                f" {m['progress_dom_elements']:,} elements after {got['pages']} pages"
            )

        def order_board() -> None:  # (h) 順位ボード: first usable, DOM with one column
            samples = [tab.open_until_usable(base + ORDER_BOARD_PATH) for _ in range(reloads)]
            m["order_board_first_usable_ms"] = statistics.median(samples)
            m["order_board_dom_elements"] = int(
                tab.eval("() => document.getElementsByTagName('*').length")
            )
            log(
                f"    CPU {cpu:g}×: order board first usable"
                f" {m['order_board_first_usable_ms']:.0f} ms of {samples},"
                f" {m['order_board_dom_elements']:,} elements"
            )

        steps: list[tuple[str, Callable[[], None]]] = [
            ("sign-in", sign_in),
            ("first usable", first_usable),
            ("tap", tap),
            ("search", search),
            ("scroll", scroll),
            ("dom/heap", dom_heap),
            ("progress board", progress_board),
            ("order board", order_board),
        ]
        for name, step in steps:
            try:
                step()
            except PageHung as exc:
                errors[name] = short(exc)
                errors["rest"] = "skipped (the page stopped answering)"
                break
            except Exception as exc:
                errors[name] = short(exc)
                if name == "sign-in" or (
                    name == "first usable" and not m["first_usable_samples_ms"]
                ):
                    errors["rest"] = "skipped (no usable board)"
                    break
        return m
    finally:
        with contextlib.suppress(Exception), dog.guard(timeout, "close"):
            context.close()


def measure_browser(
    base: str,
    token: str,
    context_data: dict[str, Any],
    *,
    cpu_rates: list[float],
    taps: int,
    reloads: int,
    timeout: float,
    log: Log,
) -> list[dict[str, Any]]:
    """One ``browser_pass`` per CPU rate, in one headless Chromium (tests/e2e's launch)."""
    try:
        from playwright.sync_api import sync_playwright

        chromium, launch_args = _e2e_launch()
    except Exception as exc:
        return [{"cpu": rate, "errors": {"browser": short(exc)}} for rate in cpu_rates]
    passes: list[dict[str, Any]] = []
    dog = Watchdog()
    try:
        with sync_playwright() as p:
            try:
                with dog.guard(timeout, "launch"):
                    browser = p.chromium.launch(
                        executable_path=str(chromium),
                        headless=True,
                        args=launch_args,
                        timeout=timeout * 1000,
                    )
            except Exception as exc:
                return [{"cpu": rate, "errors": {"browser": short(exc)}} for rate in cpu_rates]
            try:
                for rate in cpu_rates:
                    try:
                        m = browser_pass(
                            browser,
                            dog,
                            base,
                            token,
                            context_data,
                            cpu=rate,
                            taps=taps,
                            reloads=reloads,
                            timeout=timeout,
                            log=log,
                        )
                    except Exception as exc:
                        m = {"cpu": rate, "errors": {"browser": short(exc)}}
                    passes.append(m)
            finally:
                with contextlib.suppress(Exception), dog.guard(timeout, "close"):
                    browser.close()
    finally:
        dog.close()
    return passes


# --- one case, all cases ----------------------------------------------------------------------


def measure_signage(url: str, calls: int) -> dict[str, Any]:
    """Time ``signage.snapshot`` (uncached) in this process against the case's database:
    the work one refresh does for every screen once the shared snapshot has expired."""
    from csvboard.dashboards.service import get_dashboard
    from csvboard.db.engine import make_engine, read_session
    from csvboard.schedule import signage

    engine = make_engine(url)
    samples: list[float] = []
    try:
        with read_session(engine) as session:
            dashboard = get_dashboard(session, SLUG)
            signage.snapshot(session, dashboard)  # warm-up, untimed
            for _ in range(max(calls // 4, 3)):
                t0 = time.perf_counter()
                doc = signage.snapshot(session, dashboard)
                samples.append((time.perf_counter() - t0) * 1000)
    finally:
        engine.dispose()
    return {**stats(samples), "errors": 0, "bytes": len(json.dumps(doc, default=str))}


def measure_case(
    engine: str,
    size: int,
    dbs: Databases,
    *,
    calls: int,
    browser: bool,
    cpu_rates: list[float],
    taps: int,
    reloads: int,
    timeout: float,
    log: Log,
) -> dict[str, Any]:
    case: dict[str, Any] = {"engine": engine, "size": size, "error": None}
    case_dir = dbs.work / "kiosk" / f"{engine}-{size}"
    shutil.rmtree(case_dir, ignore_errors=True)
    case_dir.mkdir(parents=True)
    try:
        # Databases.fresh names SQLite files relative to its work dir: <case_dir>/db.sqlite.
        name = f"kiosk/{engine}-{size}/db" if engine == "sqlite" else f"kiosk_{size}"
        url = dbs.fresh(engine, name)
        env = {
            **os.environ,
            "CSVBOARD_DATABASE_URL": url,
            "CSVBOARD_DATA_DIR": str(case_dir / "data"),
        }
        log(f"  kiosk {engine} {size}: db upgrade, demo --steps {size}, token")
        token, case["setup_seconds"] = prepare(env, case_dir, size)
        server = Server(env, case_dir, timeout)
        try:
            log(f"  kiosk {engine} {size}: server timings ({calls} calls each)")
            case["server"], data = measure_server(server.base, token, calls)
            # What one signage refresh costs the server when its shared snapshot has expired
            # (the endpoint itself answers from the snapshot for 30 s).
            case["server"]["signage snapshot, computed"] = measure_signage(url, calls)
            case["seibans"] = data["seibans"]
            case["put_seibans_ms"] = data["put_seibans_ms"]
            case["rows_m01_first_page"] = len(data["seiban_of"])
            if browser:
                log(f"  kiosk {engine} {size}: browser at CPU {cpu_rates}")
                case["browser"] = measure_browser(
                    server.base,
                    token,
                    data,
                    cpu_rates=cpu_rates,
                    taps=taps,
                    reloads=reloads,
                    timeout=timeout,
                    log=log,
                )
        except Exception as exc:
            case["error"] = short(exc)
            case["server_log_tail"] = server.log_tail()
        finally:
            server.stop()
    except Exception as exc:
        case["error"] = short(exc)
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)
    if case["error"]:
        log(f"  kiosk {engine} {size}: ERROR {case['error']}")
    return case


def measure(
    *,
    sizes: list[int],
    engines: list[str],
    dbs: Databases,
    taps: int = 50,
    calls: int = 20,
    reloads: int = 3,
    cpu_rates: list[float] | None = None,
    timeout: float = 60,
    browser: bool = True,
    log: Log,
) -> dict[str, Any]:
    """Every engine × size (``dbs`` gives the databases); ``derive``d, ready to ``render``."""
    rates = cpu_rates or [1.0, 4.0]
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": sizes,
        "engines": engines,
        "taps": taps,
        "calls": calls,
        "reloads": reloads,
        "cpu_rates": rates,
        "timeout_seconds": timeout,
        "targets": TARGETS,
        "cases": [],
        "notes": [],
    }
    if not browser:
        results["notes"].append("browser part skipped (--skip-browser)")
    t0 = time.perf_counter()
    # SIGTERM (a `timeout`, a CI cancel) raises SystemExit, so the servers and Chromium we
    # started are stopped by the finally blocks instead of being left behind.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main_thread else None
    try:
        _measure_cases(results, dbs, browser, log)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    results["elapsed_seconds"] = time.perf_counter() - t0
    derive(results)
    return results


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _measure_cases(results: dict[str, Any], dbs: Databases, browser: bool, log: Log) -> None:
    r = results
    for engine in r["engines"]:
        for size in r["sizes"]:
            case = measure_case(
                engine,
                size,
                dbs,
                calls=r["calls"],
                browser=browser,
                cpu_rates=r["cpu_rates"],
                taps=r["taps"],
                reloads=r["reloads"],
                timeout=r["timeout_seconds"],
                log=log,
            )
            r["cases"].append(case)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kiosk",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="3000,60000,200000", help="demo steps, comma-separated")
    parser.add_argument("--engines", default="sqlite", help="sqlite,postgresql")
    parser.add_argument("--taps", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20, help="timed calls per server endpoint")
    parser.add_argument("--reloads", type=int, default=3, help="reloads for the first usable board")
    parser.add_argument(
        "--cpu-rates", default="1,4", help="CPU throttling rates of the browser runs"
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds per wait")
    parser.add_argument("--skip-browser", action="store_true", help="server timings only")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.sizes = parse_sizes(args.sizes)
    args.engines = parse_list(args.engines)
    args.cpu_rates = [float(r) for r in parse_list(args.cpu_rates)]
    if not args.sizes:
        parser.error("--sizes is empty")
    for engine in args.engines:
        if engine not in ("sqlite", "postgresql"):
            parser.error(f"unknown engine {engine!r}")
    if args.taps < 1 or args.calls < 1 or args.reloads < 1 or args.timeout <= 0:
        parser.error("--taps, --calls, --reloads and --timeout must be positive")
    if not args.cpu_rates or any(r < 1 for r in args.cpu_rates):
        parser.error("--cpu-rates: rates >= 1")
    return args


def write_json(out: Path, results: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"kiosk-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str, ensure_ascii=False))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="csvboard-kiosk-bench-"))
    dbs = Databases(work)
    try:
        results = measure(
            sizes=args.sizes,
            engines=args.engines,
            dbs=dbs,
            taps=args.taps,
            calls=args.calls,
            reloads=args.reloads,
            cpu_rates=args.cpu_rates,
            timeout=args.timeout,
            browser=not args.skip_browser,
            log=log,
        )
    finally:
        dbs.close()
        shutil.rmtree(work, ignore_errors=True)
    results["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(render(results))
    print(f"results: {write_json(args.out, results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
