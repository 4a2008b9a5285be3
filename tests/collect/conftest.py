"""A real collector, started as a user starts it: ``tessera collect`` in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from orchestration.warehouse import Warehouse
from tests.postgres_server import free_port

WRITE_KEY = "wk_test_4f1c"


@dataclass
class Collector:
    landing: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict:
        return requests.get(f"{self.url}/health", timeout=5).json()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)


def start_collector(landing: Path, *extra: str, keys: str = WRITE_KEY) -> Collector:
    port = free_port()
    log = landing.parent / f"collector-{port}.log"
    env = {**os.environ, "TESSERA_COLLECT_WRITE_KEYS": keys}
    command = [sys.executable, "-m", "orchestration.cli", "collect", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--landing", str(landing), *extra], env=env, stdout=out, stderr=out
        )
    collector = Collector(landing, port, process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the collector exited: {log.read_text()}")
        try:
            collector.health()
            return collector
        except requests.ConnectionError:
            time.sleep(0.1)
    collector.stop(signal.SIGKILL)
    raise RuntimeError(f"the collector did not answer in 30 s: {log.read_text()}")


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    running = start_collector(tmp_path / "landing")
    yield running
    running.stop()


@pytest.fixture(params=["duckdb", "postgres"])
def empty_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    """A warehouse with nothing in it yet, for the collector's calls to land in."""
    if request.param == "duckdb":
        return Warehouse(target="local", duckdb_path=tmp_path / "collected.duckdb")
    server = request.getfixturevalue("postgres_server")
    name = request.node.name.split("[")[0][:40]
    return Warehouse(target="postgres", postgres=server.create_database(name))
