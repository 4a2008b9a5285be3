"""The whole real-time path, each part as a user runs it: the Segment library sends to
``tessera collect``, ``tessera stream`` (its own process) evaluates an abandoned-cart trigger,
and the members reach the webhook; a worker killed with SIGKILL and started again sends nothing
twice and loses nothing."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from segment.analytics import Client

from emulators.webhook import WebhookEmulator
from orchestration.collect.stream import write_snapshot
from tests.collect.conftest import WRITE_KEY, Collector
from tests.collect.test_stream import SECRET, _warehouse

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).resolve().parents[2]
TRIGGERS = """version: 2
models:
  - name: audience_cart_reachable
    config:
      meta:
        tessera:
          triggers:
            - name: cart_abandoned
              event: Product Added
              absent: {event: Order Completed, minutes: 0.05}
              destination: webhook
              fields: {customer_id: customer_id, email: email, abandoned_at: triggered_at}
"""


def _start_worker(project: Path, collector: Collector, stream: Path, hook_url: str):
    env = {
        **os.environ,
        "TESSERA_PROJECT_DIR": str(project),
        "TESSERA_WEBHOOK_URL": hook_url,
        "TESSERA_WEBHOOK_SECRET": SECRET,
    }
    command = [sys.executable, "-m", "orchestration.cli", "stream"]
    command += ["--landing", str(collector.landing), "--stream-dir", str(stream)]
    command += ["--interval", "0.5"]
    log = (stream.parent / "stream.log").open("ab")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds} s for {what}")


def test_abandoned_carts_reach_the_webhook_once_through_collector_and_stream_worker(
    collector: Collector, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "models" / "audiences").mkdir(parents=True)
    shutil.copy(PROJECT / "dbt_project.yml", project / "dbt_project.yml")
    (project / "models" / "audiences" / "cart.yml").write_text(TRIGGERS)
    stream = tmp_path / "stream"
    write_snapshot(_warehouse(tmp_path), ["audience_cart_reachable"], stream)
    client = Client(WRITE_KEY, host=collector.url, sync_mode=True)

    with WebhookEmulator(token=SECRET) as hook:
        worker = _start_worker(project, collector, stream, hook.url)
        try:
            _, c1 = client.track("u1", "Product Added", {"sku": "tent"})
            client.track("u3", "Product Added", {"sku": "mat"})
            client.track("u3", "Order Completed", {"order_id": "o-3"})  # c3 buys: no message
            _wait_for(lambda: len(hook.records) == 1, 60, "c1's abandoned cart")
            # The worker dies mid-stream; what it had not processed is processed by the next.
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            client.identify(anonymous_id="a2", traits={"email": "bea@mail.example.org"})
            _, c2 = client.track(None, "Product Added", {"sku": "stove"}, anonymous_id="a2")
            worker = _start_worker(project, collector, stream, hook.url)
            _wait_for(lambda: len(hook.records) == 2, 60, "c2's abandoned cart")
            time.sleep(6)  # longer than the wait: c3's cancelled cart must not arrive late
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
        sent = {record["key"]: record["fields"] for record in hook.records.values()}
        assert set(sent) == {c1["messageId"], c2["messageId"]}
        assert sent[c2["messageId"]]["customer_id"] == "c2"
        assert hook.duplicate_count == 0
        # Each member arrived within seconds of its 3 s wait ending.
        for record_id, record in hook.records.items():
            became_true = datetime.fromisoformat(record["fields"]["abandoned_at"]).timestamp()
            assert 0 <= hook.received_at[record_id] - became_true < 15
