"""What every emulator shares: rate limit windows, the request log, faults, the command line."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from emulators import RateLimit
from emulators.webhook import WebhookEmulator
from tests.emulators.support import (
    INGEST,
    UPSERT,
    deliver,
    hubspot_request,
    upsert_input,
    webhook_batch,
)


def test_rate_limit_window_throttles_the_request_after_n_and_frees_up_after_the_window():
    with WebhookEmulator(rate_limit=RateLimit(requests=3, per_seconds=0.5)) as webhook:
        statuses = [deliver(webhook, webhook_batch(f"e{n}")).status_code for n in range(4)]
        time.sleep(0.55)
        later = deliver(webhook, webhook_batch("later"))

    assert statuses == [200, 200, 200, 429]
    assert later.status_code == 200


def test_request_log_counts_requests_per_path(webhook):
    for n in range(3):
        deliver(webhook, webhook_batch(f"e{n}"))
    requests.get(webhook.base_url + "/elsewhere", timeout=5)

    assert webhook.request_count("/webhook") == 3
    assert webhook.request_counts() == {"/webhook": 3, "/elsewhere": 1}


def test_concurrent_upserts_from_8_threads_create_each_contact_exactly_once(hubspot):
    def send(thread: int) -> list[bool]:
        inputs = [upsert_input(f"p{n}@x.com", f"t{thread}-{n}") for n in range(50)]
        body = hubspot_request(hubspot, "POST", UPSERT, {"inputs": inputs}).json()
        return [result["new"] for result in body["results"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        flags = [flag for answer in pool.map(send, range(8)) for flag in answer]

    assert len(hubspot.contacts) == 50
    assert flags.count(True) == 50
    assert flags.count(False) == 350
    assert hubspot.request_count(UPSERT) == 8


def test_faults_refuse_a_probability_above_one_when_changed_at_runtime(hubspot):
    with pytest.raises(ValidationError):
        hubspot.faults.rate_limit = 1.5
    with pytest.raises(ValidationError):
        hubspot.set_faults(server_error=-0.1)

    assert hubspot.faults.rate_limit == 0.0


def test_command_line_prints_the_base_url_of_a_running_emulator():
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators", "google", "--token", "t"],
        # emulators/ is not installed: ``-m`` finds it in the checkout, the working directory.
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        response = requests.post(base_url + INGEST, json={}, timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert base_url.startswith("http://127.0.0.1:")
    assert response.status_code == 401
