"""Collector benchmark; prints one JSON document.

Starts ``tessera collect`` in its own process (uvloop, httptools, one worker) on a fresh landing
folder and drives it from this process with an open-loop load generator: requests are due at a
fixed rate whatever the collector answers, each over one of a pool of keep-alive connections, and
a request's latency runs from when it was due (not when a free connection sent it), so a
collector that falls behind shows it in its percentiles rather than slowing the generator down.
Every 200 answer means the request's calls were written and fsync'd.

- ``batch``: ``/v1/batch`` requests of 100 track calls (about 33 KB) at 200 requests/s, 20,000
  events/s. Targets: 20,000 events/s sustained, p99 acknowledgement under 100 ms.
- ``single``: ``/v1/track`` requests of one call at 2,000 requests/s. Targets: 2,000 requests/s
  sustained, p99 under 100 ms.
- ``*_max``: the same requests as fast as the connections allow (closed loop), for headroom.

Both processes share the machine's cores, as a collector and its load would not in production.

Run: ``.venv/bin/python bench/collect.py [--seconds S]`` (``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "bench-write-key"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(port: int, path: str, body: bytes) -> bytes:
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _call(n: int) -> dict:
    return {
        "type": "track",
        "userId": f"user-{n % 100_000}",
        "anonymousId": f"anon-{n % 250_000:08d}-7c1e-4b8e-9a51",
        "event": "Product Viewed",
        "messageId": f"bench-{n:012d}-6f1d-4a8b-b1c2-7e0f",
        "timestamp": "2026-12-07T12:00:00.000Z",
        "properties": {
            "product_id": f"sku-{n % 5_000}",
            "price": 19.99,
            "currency": "USD",
            "category": "Outdoor / Tents",
        },
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.0"},
            "page": {"url": "https://shop.example.org/p/tent-2", "path": "/p/tent-2"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
        },
    }


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _drive(
    port: int, payload: bytes, rate: float | None, seconds: float, connections: int
) -> dict[str, object]:
    """Send ``payload`` at ``rate`` requests/s (None: as fast as the connections allow)."""
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    deadline = started + seconds
    next_due = [started + (i / rate if rate else 0) for i in range(connections)]
    interval = connections / rate if rate else 0.0

    async def worker(index: int) -> None:
        reader, writer = streams[index]
        while True:
            due = next_due[index]
            if due >= deadline:
                return
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if rate is None:
                due = time.perf_counter()
            writer.write(payload)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - due)
            statuses[status] = statuses.get(status, 0) + 1
            next_due[index] = due + interval if rate else time.perf_counter()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    for _, writer in streams:
        writer.close()
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "latency_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
    }


def _start(landing: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TESSERA_COLLECT_WRITE_KEYS": WRITE_KEY}
    command = [sys.executable, "-m", "orchestration.cli", "collect", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--landing", str(landing)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the collector did not start in 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tessera-bench-collect-") as tmp:
        landing = Path(tmp) / "landing"
        port = _free_port()
        collector = _start(landing, port)
        try:
            batch_body = orjson.dumps(
                {"batch": [_call(n) for n in range(100)], "sentAt": "2026-12-07T12:00:00.100Z"}
            )
            single_body = orjson.dumps({**_call(1), "sentAt": "2026-12-07T12:00:00.100Z"})
            batch = _request(port, "/v1/batch", batch_body)
            single = _request(port, "/v1/track", single_body)
            phases = {
                "batch": (batch, 200.0, 32),
                "single": (single, 2_000.0, 64),
                "batch_max": (batch, None, 8),
                "single_max": (single, None, 32),
            }
            results: dict[str, object] = {}
            for name, (payload, rate, connections) in phases.items():
                result = asyncio.run(_drive(port, payload, rate, args.seconds, connections))
                per_request = 100 if payload is batch else 1
                ok = result["statuses"].get("200", 0)  # type: ignore[union-attr]
                result["events_per_second"] = round(ok * per_request / result["seconds"], 1)
                result["target_requests_per_second"] = rate
                result["connections"] = connections
                results[name] = result
            results["batch"]["meets_target"] = (  # type: ignore[index]
                results["batch"]["events_per_second"] >= 19_800  # type: ignore[index]
                and results["batch"]["latency_ms"]["p99"] < 100  # type: ignore[index]
            )
            results["single"]["meets_target"] = (  # type: ignore[index]
                results["single"]["requests_per_second"] >= 1_980  # type: ignore[index]
                and results["single"]["latency_ms"]["p99"] < 100  # type: ignore[index]
            )
        finally:
            collector.send_signal(signal.SIGTERM)
            collector.wait(timeout=30)
        landed = sum(path.stat().st_size for path in landing.glob("*.ndjson"))
    report = {
        "benchmark": "collect",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "batch_request_bytes": len(batch_body),
        "single_request_bytes": len(single_body),
        "phase_seconds": args.seconds,
        "landed_bytes": landed,
        **results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
