"""Freshness benchmark of event triggers; prints one JSON document.

A warehouse of ``--customers`` demo customers (1,000,000 by default) is generated and built with
``tessera run`` (or reused from ``--workdir``), and the trigger snapshot written from it. Then, each
in its own process: the webhook emulator as the destination, ``tessera collect``, and
``tessera stream`` with two triggers on ``audience_high_value_at_risk``:

- ``bench_product_added``: every Product Added of a member, at once;
- ``bench_cart_abandoned``: a Product Added followed by no Order Completed within
  ``--absence-seconds``.

The real Segment library (``sync_mode``: each call posted as it is made) sends one Product Added
per member at ``--rate`` calls per second, and an Order Completed a few seconds later for every
other member, which must cancel their abandoned-cart message. Measured per member, in seconds:

- ``immediate``: from the collector's acknowledgement to the webhook receiving the member;
- ``absence``: from the moment the rule became true (received + the wait) to the webhook
  receiving the member.

Targets: p95 under 60 s and p99 under 90 s. The JSON also checks that every expected member
arrived once and no cancelled one did.

Run: ``.venv/bin/python bench/freshness.py [--customers N] [--workdir D]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests
from segment.analytics import Client

from orchestration.activation.destinations.webhook import signature
from orchestration.collect.stream import write_snapshot
from orchestration.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
AUDIENCE = "audience_high_value_at_risk"
WRITE_KEY = "bench-freshness-key"
SECRET = "bench-freshness-secret"
TRIGGERS_YAML = """version: 2
models:
  - name: {audience}
    config:
      meta:
        tessera:
          triggers:
            - name: bench_product_added
              event: Product Added
              destination: webhook
              fields: {{customer_id: customer_id, product_id: event_product_id}}
            - name: bench_cart_abandoned
              event: Product Added
              absent: {{event: Order Completed, minutes: {minutes}}}
              destination: webhook
              fields: {{customer_id: customer_id, abandoned_at: triggered_at}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in 60 s")


def _tessera(*args: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return round(time.perf_counter() - started, 1)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "members": len(values),
        "p50": _pct(values, 0.50),
        "p95": _pct(values, 0.95),
        "p99": _pct(values, 0.99),
        "max": round(max(values), 2) if values else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workdir", help="keep (and reuse) the built warehouse here")
    parser.add_argument("--members", type=int, default=400, help="members who add to cart")
    parser.add_argument("--rate", type=float, default=10.0, help="Product Added calls per second")
    parser.add_argument("--absence-seconds", type=float, default=30.0)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="tessera-bench-freshness-"))
    work.mkdir(parents=True, exist_ok=True)
    database = work / "tessera.duckdb"
    env = {**os.environ, "TESSERA_TARGET": "local", "TESSERA_DUCKDB_PATH": str(database)}
    warehouse = Warehouse(target="local", duckdb_path=database)
    timings: dict[str, float] = {}
    if not (database.exists() and warehouse.relation_exists("audiences", AUDIENCE)):
        database.unlink(missing_ok=True)
        timings["generate_seconds"] = _tessera(
            "generate", "--customers", str(args.customers), env=env
        )
        timings["build_seconds"] = _tessera("run", "--output-dir", str(work / "output"), env=env)
    customers = warehouse.query("select count(*) from marts.customers")[0][0]

    project = work / "project"
    shutil.rmtree(project, ignore_errors=True)
    (project / "models" / "audiences").mkdir(parents=True)
    shutil.copy(ROOT / "dbt_project.yml", project / "dbt_project.yml")
    minutes = args.absence_seconds / 60
    (project / "models" / "audiences" / "bench.yml").write_text(
        TRIGGERS_YAML.format(audience=AUDIENCE, minutes=minutes)
    )
    stream_dir = work / "stream"
    shutil.rmtree(stream_dir, ignore_errors=True)
    started = time.perf_counter()
    snapshot_rows = write_snapshot(warehouse, [AUDIENCE], stream_dir)
    timings["snapshot_seconds"] = round(time.perf_counter() - started, 1)
    snapshot = Warehouse(target="local", duckdb_path=stream_dir / "snapshot.duckdb")
    users = [
        row[0]
        for row in snapshot.query(
            f"select min(identifiers.identifier_value) from {AUDIENCE} as members "
            "inner join identifiers on identifiers.customer_id = members.customer_id "
            "where identifiers.identifier_type = 'user_id' group by members.customer_id "
            f"order by 1 limit {args.members}"
        )
    ]

    landing = work / "landing"
    shutil.rmtree(landing, ignore_errors=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        hook_port = _free_port()
        hook = subprocess.Popen(
            [sys.executable, "-m", "emulators", "webhook", "--port", str(hook_port),
             "--token", SECRET],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(hook)
        _wait_port(hook_port, hook, "the webhook emulator")
        hook_url = f"http://127.0.0.1:{hook_port}/webhook"

        collect_port = _free_port()
        collector = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "collect", "--port", str(collect_port),
             "--landing", str(landing)],
            env={**env, "TESSERA_COLLECT_WRITE_KEYS": WRITE_KEY}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(collector)
        _wait_port(collect_port, collector, "the collector")

        worker_log = (work / "stream.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "stream", "--landing", str(landing),
             "--stream-dir", str(stream_dir), "--interval", "1"],
            env={**env, "TESSERA_PROJECT_DIR": str(project), "TESSERA_WEBHOOK_URL": hook_url,
                 "TESSERA_WEBHOOK_SECRET": SECRET},
            cwd=ROOT, stdout=worker_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(worker)

        client = Client(WRITE_KEY, host=f"http://127.0.0.1:{collect_port}", sync_mode=True)
        acknowledged: dict[str, float] = {}
        buyers: set[str] = set()
        pending_orders: list[tuple[float, str]] = []
        interval = 1.0 / args.rate
        next_due = time.monotonic()
        for number, user in enumerate(users):
            _, message = client.track(user, "Product Added", {"product_id": f"sku-{number}"})
            acknowledged[message["messageId"]] = time.time()
            if number % 2:
                buyers.add(message["messageId"])
                pending_orders.append((time.monotonic() + 5, user))
            while pending_orders and pending_orders[0][0] <= time.monotonic():
                _, buyer = pending_orders.pop(0)
                client.track(buyer, "Order Completed", {"order_id": f"o-{buyer}"})
            next_due += interval
            time.sleep(max(0.0, next_due - time.monotonic()))
        for due, buyer in pending_orders:
            time.sleep(max(0.0, due - time.monotonic()))
            client.track(buyer, "Order Completed", {"order_id": f"o-{buyer}"})
        sending_ended = time.time()

        expected_immediate = len(acknowledged)
        expected_absence = len(acknowledged) - len(buyers)
        deadline = time.time() + args.absence_seconds + 180
        records: list[dict] = []
        while time.time() < deadline:
            stamp = str(int(time.time()))
            headers = {
                "X-Tessera-Timestamp": stamp,
                "X-Tessera-Signature": signature(SECRET, stamp, b""),
            }
            answer = requests.get(f"{hook_url}/received", headers=headers, timeout=30)
            records = answer.json()["records"]
            immediate = [r for r in records if "product_id" in r["fields"]]
            absence = [r for r in records if "abandoned_at" in r["fields"]]
            if len(immediate) >= expected_immediate and len(absence) >= expected_absence:
                # Wait one more wait's length: a cancelled member must not arrive late.
                if time.time() > sending_ended + args.absence_seconds + 15:
                    break
            time.sleep(1.0)
        status = json.loads((stream_dir / "status.json").read_text())
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    immediate = [r for r in records if "product_id" in r["fields"]]
    absence = [r for r in records if "abandoned_at" in r["fields"]]
    immediate_latency = [r["received_at"] - acknowledged[r["key"]] for r in immediate]
    absence_latency = [
        r["received_at"] - datetime.fromisoformat(r["fields"]["abandoned_at"]).timestamp()
        for r in absence
    ]
    report = {
        "benchmark": "freshness",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "customers": customers,
        "audience_members": snapshot_rows.get(AUDIENCE),
        "snapshot_rows": snapshot_rows,
        **timings,
        "rate_per_second": args.rate,
        "absence_seconds": args.absence_seconds,
        "immediate": _summary(immediate_latency),
        "absence": _summary(absence_latency),
        "expected": {"immediate": expected_immediate, "absence": expected_absence},
        "unexpected_absence_members": sorted(r["key"] for r in absence if r["key"] in buyers),
        "worker_last_tick": status.get("last_tick"),
    }
    report["meets_target"] = (
        all(
            part["p95"] is not None and part["p95"] < 60 and part["p99"] < 90
            for part in (report["immediate"], report["absence"])
        )
        and len(immediate) == expected_immediate
        and len(absence) == expected_absence
    )
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
