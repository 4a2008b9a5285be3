"""Requests the emulator tests send to more than one emulator's file."""

from __future__ import annotations

import hashlib
import json

import requests

from emulators.hubspot import HubSpotEmulator
from emulators.webhook import WebhookEmulator, signed_headers


def webhook_batch(*ids: str) -> bytes:
    records = [
        {"id": record_id, "key": f"c-{record_id}", "operation": "add", "fields": {"tier": "vip"}}
        for record_id in ids
    ]
    return json.dumps({"sync": "vip", "batch_id": "b-1", "records": records}).encode()


def deliver(webhook: WebhookEmulator, body: bytes, **kwargs: object) -> requests.Response:
    return requests.post(
        webhook.url, data=body, headers=signed_headers(webhook.secret, body), timeout=5, **kwargs
    )


def hubspot_request(
    emulator: HubSpotEmulator, method: str, path: str, body: object
) -> requests.Response:
    return requests.request(
        method,
        emulator.base_url + path,
        json=body,
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=5,
    )


def upsert_input(email: str, trace: str, **properties: str) -> dict[str, object]:
    return {
        "id": email,
        "idProperty": "email",
        "objectWriteTraceId": trace,
        "properties": {"firstname": "Jane", **properties},
    }


UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


INGEST = "/v1/audienceMembers:ingest"
