"""Nothing acknowledged is lost, and nothing is loaded twice, when processes die with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from orchestration.collect.landing import LandingWriter, list_segments
from orchestration.collect.loader import load_landing
from orchestration.collect.messages import land_request
from orchestration.warehouse import Warehouse
from tests.collect.conftest import WRITE_KEY, start_collector

pytestmark = pytest.mark.integration


def _sender(url: str, name: str, acked: list[str], stop: threading.Event) -> None:
    session = requests.Session()
    batch_number = 0
    while not stop.is_set():
        ids = [f"{name}-{batch_number}-{i}" for i in range(20)]
        body = {
            "batch": [
                {"type": "track", "userId": f"u-{name}", "event": "Product Viewed", "messageId": m}
                for m in ids
            ]
        }
        try:
            answer = session.post(f"{url}/v1/batch", json=body, auth=(WRITE_KEY, ""), timeout=5)
        except requests.RequestException:
            return
        if answer.status_code == 200:
            acked.extend(ids)
        batch_number += 1


def test_a_collector_killed_after_acknowledging_loses_nothing(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    collector = start_collector(landing)
    acked: list[str] = []
    stop = threading.Event()
    senders = [
        threading.Thread(target=_sender, args=(collector.url, f"s{n}", acked, stop))
        for n in range(4)
    ]
    for sender in senders:
        sender.start()
    time.sleep(2.0)
    collector.process.send_signal(signal.SIGKILL)
    collector.process.wait(timeout=10)
    stop.set()
    for sender in senders:
        sender.join(timeout=10)
    assert len(acked) > 500
    # The killed collector left its segment open; the next one seals it and goes on.
    assert any(not segment.sealed for segment in list_segments(landing))
    restarted = start_collector(landing)
    late = [f"late-{i}" for i in range(10)]
    body = {
        "batch": [
            {"type": "track", "userId": "u", "event": "Product Viewed", "messageId": m}
            for m in late
        ]
    }
    assert (
        requests.post(
            f"{restarted.url}/v1/batch", json=body, auth=(WRITE_KEY, ""), timeout=5
        ).status_code
        == 200
    )
    restarted.stop()
    assert all(segment.sealed for segment in list_segments(landing))

    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "w.duckdb")
    report = load_landing(warehouse, landing, "raw")
    assert report.rejected == 0
    stored = {row[0] for row in warehouse.query("select id from raw.tracks")}
    assert set(acked) | set(late) <= stored
    assert warehouse.query("select count(*) - count(distinct id) from raw.tracks") == [(0,)]


def _land(folder: Path, calls: int) -> None:
    writer = LandingWriter(folder, segment_bytes=4 * 1024 * 1024)
    received = datetime.now(UTC)

    async def run() -> None:
        await writer.start()
        for start in range(0, calls, 500):
            body = {
                "batch": [
                    {
                        "type": "track",
                        "anonymousId": f"a{n % 997}",
                        "event": "Page Scrolled",
                        "messageId": f"m{n}",
                        "properties": {"depth": n % 100},
                    }
                    for n in range(start, min(start + 500, calls))
                ]
            }
            await writer.append(land_request("batch", body, received).lines)
        await writer.stop()

    asyncio.run(run())


def test_a_load_killed_midway_is_finished_by_the_next_one_without_duplicates(
    tmp_path: Path,
) -> None:
    landing = tmp_path / "landing"
    calls = 120_000
    _land(landing, calls)
    database = tmp_path / "w.duckdb"
    env = {**os.environ, "TESSERA_DUCKDB_PATH": str(database), "TESSERA_TARGET": "local"}
    command = [sys.executable, "-m", "orchestration.cli", "load", "--landing", str(landing)]
    # 4 MB per transaction: the 23 MB of calls load in six; kill it once the first committed.
    command += ["--batch-mb", "4"]
    loading = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert loading.stdout is not None
    for line in loading.stdout:
        if b"loaded" in line:
            break
    loading.send_signal(signal.SIGKILL)
    loading.wait(timeout=10)
    warehouse = Warehouse(target="local", duckdb_path=database)
    [(partial,)] = warehouse.query("select count(*) from raw.tracks")
    assert 0 < partial < calls
    load_landing(warehouse, landing, "raw")
    assert warehouse.query("select count(*), count(distinct id) from raw.tracks") == [
        (calls, calls)
    ]
    assert warehouse.query("select count(*) from raw.page_scrolled") == [(calls,)]
    [(loaded,)] = warehouse.query("select sum(events) from raw.tessera_landed_segments")
    assert loaded == calls
