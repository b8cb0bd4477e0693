"""API latency under ingestion: kiosk completion writes and 100-row pages from N clients.

A ``csvboard serve``-like uvicorn runs in its own process on 127.0.0.1 (no in-process executor);
the ingest runs in another process (as ``csvboard worker`` would). Clients are threads, each
with its own ``httpx.Client``, alternating a completion PUT and a page GET. Every loop is
bounded by a request count and a deadline.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.child import REPO, child_command

TRANSPORT_ERROR = 599  # no HTTP answer (timeout, reset): recorded, not dropped with its thread


@dataclass
class Sample:
    kind: str  # "write" | "page"
    seconds: float
    status: int
    at: float


@dataclass
class Load:
    base: str
    slug: str
    token: str
    row_ids: list[str]
    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, seed: int, stop: threading.Event, max_requests: int, deadline: float) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {self.token}"}
        mine: list[Sample] = []
        with httpx.Client(base_url=self.base, headers=headers, timeout=120) as http:
            for i in range(max_requests):
                if stop.is_set() or time.monotonic() > deadline:
                    break
                t0 = time.perf_counter()
                kind = "write" if i % 2 == 0 else "page"
                try:
                    if kind == "write":
                        row = rng.choice(self.row_ids)
                        intent = rng.choice(["complete", "incomplete"])
                        status = http.put(
                            f"/api/v1/schedules/{self.slug}/rows/{row}/completion",
                            json={"intent": intent},
                        ).status_code
                    else:
                        status = http.get(
                            f"/api/v1/schedules/{self.slug}/rows", params={"limit": 100}
                        ).status_code
                except httpx.TransportError:
                    status = TRANSPORT_ERROR  # a timeout counts, with its time, as an error
                mine.append(Sample(kind, time.perf_counter() - t0, status, t0))
        with self.lock:
            self.samples.extend(mine)

    def run(
        self,
        clients: int,
        per_client: int,
        max_seconds: float,
        stop: threading.Event | None = None,
    ) -> list[Sample]:
        stop = stop or threading.Event()
        self.samples = []
        deadline = time.monotonic() + max_seconds
        threads = [
            threading.Thread(target=self.client, args=(n, stop, per_client, deadline))
            for n in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return self.samples


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarise(samples: list[Sample]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("write", "page"):
        times = [s.seconds * 1000 for s in samples if s.kind == kind]
        errors = sum(1 for s in samples if s.kind == kind and s.status >= 400)
        out[kind] = {
            "n": len(times),
            "errors": errors,
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
            "p99_ms": percentile(times, 99),
            "max_ms": max(times) if times else float("nan"),
        }
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def measure(
    *,
    url: str,
    data_dir: Path,
    slug: str,
    token: str,
    ingest_args: dict[str, Any],
    work: Path,
    clients: int,
    idle_requests: int,
    max_seconds: float,
) -> dict[str, Any]:
    """Idle latency, then latency while ``ingest_args`` (a bench.child csvboard op) runs."""
    port = _free_port()
    log = (work / "serve.log").open("w")
    server = subprocess.Popen(
        child_command(
            "serve",
            {"url": url, "data_dir": str(data_dir), "port": port, "out": str(work / "s.json")},
        ),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        headers = {"Authorization": f"Bearer {token}"}
        row_ids: list[str] = []
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = httpx.get(
                    f"{base}/api/v1/schedules/{slug}/rows",
                    params={"limit": 2000},
                    headers=headers,
                    timeout=30,
                )
                if resp.status_code == 200:
                    row_ids = [item["id"] for item in resp.json()["items"]]
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"server did not come up; see {work / 'serve.log'}")
            time.sleep(0.2)
        if not row_ids:
            raise RuntimeError("no schedule rows to write to")
        load = Load(base, slug, token, row_ids)
        # Warm-up (connections, caches), then idle.
        load.run(clients, 4, 60)
        idle = summarise(load.run(clients, idle_requests, max_seconds))

        ingest_out = work / "load-ingest.json"
        ingest_log = (work / "load-ingest.log").open("w")
        ingest = subprocess.Popen(
            child_command("csvboard", {**ingest_args, "out": str(ingest_out)}),
            cwd=REPO,
            stdout=ingest_log,
            stderr=subprocess.STDOUT,
        )
        stop = threading.Event()

        def watch() -> None:
            ingest.wait()
            stop.set()

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.perf_counter()
        # Loop until the ingest ends (bounded by the deadline and a request cap).
        during_samples = load.run(clients, 1_000_000, max_seconds, stop)
        ended = time.perf_counter()
        covered = stop.is_set()
        ingest.wait(timeout=7200)
        watcher.join()
        ingest_log.close()
        during = summarise(during_samples)
        ingest_result = json.loads(ingest_out.read_text()) if ingest_out.exists() else {}
        return {
            "clients": clients,
            "idle": idle,
            "during": during,
            "ingest_seconds": ended - started,
            "ingest_ok": ingest.returncode == 0,
            "load_covered_whole_ingest": covered,
            "ingest": ingest_result,
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
