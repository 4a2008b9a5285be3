"""The webhook receiver checks signatures, stores each record once, and fails on demand."""

from __future__ import annotations

import json
import time

import pytest
import requests

from emulators import Faults
from emulators.webhook import WebhookEmulator, signed_headers
from tests.emulators.support import deliver, webhook_batch


def test_webhook_accepts_a_correctly_signed_batch_and_stores_its_records(webhook):
    response = deliver(webhook, webhook_batch("e1", "e2", "e3"))

    assert response.status_code == 200
    assert response.json() == {"received": 3, "accepted": 3, "duplicates": 0}
    assert list(webhook.records) == ["e1", "e2", "e3"]
    assert webhook.records_by_key()["c-e2"]["fields"] == {"tier": "vip"}


def test_webhook_rejects_a_wrong_missing_or_stale_signature_with_401_and_stores_nothing(webhook):
    body = webhook_batch("e1")
    wrong = signed_headers("another-secret", body)
    stale = signed_headers(webhook.secret, body, timestamp=int(time.time()) - 3600)
    tampered = signed_headers(webhook.secret, body)

    answers = [
        requests.post(webhook.url, data=body, headers=wrong, timeout=5),
        requests.post(webhook.url, data=body, headers={"Content-Type": "application/json"}),
        requests.post(webhook.url, data=body, headers=stale, timeout=5),
        requests.post(webhook.url, data=body.replace(b"vip", b"vap"), headers=tampered, timeout=5),
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 401, 401]
    assert {answer.json()["error"] for answer in answers} == {"invalid_signature"}
    assert webhook.records == {}


def test_webhook_counts_a_redelivered_record_as_a_duplicate_and_stores_it_once(webhook):
    deliver(webhook, webhook_batch("e1", "e2"))
    again = deliver(webhook, webhook_batch("e2", "e3"))

    assert again.json() == {"received": 2, "accepted": 1, "duplicates": 1}
    assert webhook.duplicate_count == 1
    assert len(webhook.records) == 3
    assert webhook.deliveries["e2"] == 2


def test_webhook_refuses_a_record_without_an_id_naming_the_field(webhook):
    body = json.dumps(
        {
            "records": [
                {"id": "e1", "key": "c", "operation": "add", "fields": {}},
                {"key": "c", "operation": "add", "fields": {}},
            ]
        }
    ).encode()

    response = deliver(webhook, body)

    assert response.status_code == 400
    assert response.json()["field"] == "records[1].id"
    assert webhook.records == {}


def test_webhook_answers_413_above_its_batch_limit():
    with WebhookEmulator(max_records=10) as webhook:
        response = deliver(webhook, webhook_batch(*[f"e{n}" for n in range(11)]))

    assert response.status_code == 413
    assert response.json()["error"] == "too_many_records"


def test_webhook_partial_failure_answers_207_listing_the_rows_not_stored():
    with WebhookEmulator(faults=Faults(partial_failure=0.5, seed=7)) as webhook:
        response = deliver(webhook, webhook_batch(*[f"e{n}" for n in range(20)]))
        body = response.json()

        assert response.status_code == 207
        failed_ids = {error["id"] for error in body["errors"]}
        assert 0 < len(failed_ids) < 20
        assert body["accepted"] == 20 - len(failed_ids)
        assert set(webhook.records) == {f"e{n}" for n in range(20)} - failed_ids


def test_webhook_timeout_fault_after_processing_makes_the_retry_a_detectable_duplicate():
    faults = Faults(timeout=1.0, timeout_seconds=1.0, timeout_processed=True, limit=1)
    with WebhookEmulator(faults=faults) as webhook:
        body = webhook_batch("e1")
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(
                webhook.url, data=body, headers=signed_headers(webhook.secret, body), timeout=0.3
            )
        retry = deliver(webhook, body)

        assert retry.json() == {"received": 1, "accepted": 0, "duplicates": 1}
        assert webhook.duplicate_count == 1


def test_webhook_close_fault_drops_the_connection_without_storing_the_batch():
    with WebhookEmulator(faults=Faults(timeout=1.0, timeout_mode="close")) as webhook:
        with pytest.raises(requests.exceptions.ConnectionError):
            deliver(webhook, webhook_batch("e1"))

        assert webhook.records == {}
        assert webhook.injected_faults["timeout"] == 1


def test_webhook_fault_at_full_probability_throttles_with_retry_after_and_at_zero_never(webhook):
    webhook.set_faults(rate_limit=1.0, retry_after=3)
    throttled = [deliver(webhook, webhook_batch(f"t{n}")) for n in range(5)]
    webhook.set_faults(rate_limit=0.0)
    passed = [deliver(webhook, webhook_batch(f"p{n}")) for n in range(20)]

    assert [answer.status_code for answer in throttled] == [429] * 5
    assert {answer.headers["Retry-After"] for answer in throttled} == {"3"}
    assert [answer.status_code for answer in passed] == [200] * 20
    assert len(webhook.records) == 20


def test_webhook_fault_limit_fails_exactly_that_many_requests_then_passes():
    with WebhookEmulator(faults=Faults(server_error=1.0, limit=2)) as webhook:
        statuses = [deliver(webhook, webhook_batch(f"e{n}")).status_code for n in range(4)]

    assert statuses == [503, 503, 200, 200]
