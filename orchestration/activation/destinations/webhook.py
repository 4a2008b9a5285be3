"""Webhook: each batch POSTed as one signed JSON document.

Environment:

- ``TESSERA_WEBHOOK_URL``: where batches are POSTed (the sync's ``url`` option wins).
- ``TESSERA_WEBHOOK_SECRET``: shared secret of the HMAC-SHA256 signature; never an option.
- ``TESSERA_WEBHOOK_TIMEOUT_SECONDS``: per-request timeout, default 30.

Request (the receiver contract the webhook emulator implements)::

    POST <url>
    X-Tessera-Timestamp: <Unix seconds>
    X-Tessera-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, keyed by the secret>

    {"sync": "...", "batch_id": "...",
     "records": [{"id": "<change id>:<key>", "key": "...", "operation": "add", "fields": {...}}]}

A record's ``id`` (``Batch.delivery_id``) names one change: it stays the same when the engine
retries, splits or (after a killed run) resends its request, and when a later run sends a change
that failed again, so a receiver that keeps the ids it has seen applies each change once. Values are
JSON: timestamps and dates in ISO 8601, decimals as numbers.

Answers: 2xx -> every record taken, except those a 207 lists in ``errors`` (by ``index``; an
entry with a 4xx ``status`` refuses its record, counting toward parking it; one without, or
with another status, failed to store it and does not); 429 -> RateLimited (Retry-After); 5xx,
408 or a timeout -> TransientError; 401/403/404 -> PermanentError; 400, 413 and other 4xx ->
BatchRejected (the engine halves the batch).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import requests
from pydantic import SecretStr, field_validator

from orchestration.activation.destination import (
    Batch,
    DestinationConfig,
    Record,
    RecordOutcome,
    RunContext,
    WriteResult,
)
from orchestration.activation.destinations._http import (
    HttpConfig,
    HttpDestination,
    json_or_none,
    raise_for_status,
)
from orchestration.activation.serialisation import json_value

SIGNATURE_HEADER = "X-Tessera-Signature"
TIMESTAMP_HEADER = "X-Tessera-Timestamp"


class WebhookConfig(HttpConfig):
    """The receiver's ``url`` and the ``secret`` that signs each request (environment only)."""

    env_name: ClassVar[str] = "WEBHOOK"
    required_settings: ClassVar[frozenset[str]] = frozenset({"url", "secret"})

    url: str
    secret: SecretStr
    timeout_seconds: float = 30.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url


def signature(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookDestination(HttpDestination):
    name: ClassVar[str] = "webhook"
    max_batch_size: ClassVar[int] = 500
    max_concurrency: ClassVar[int] = 4
    config_class: ClassVar[type[DestinationConfig]] = WebhookConfig

    def __init__(self, config: WebhookConfig) -> None:
        super().__init__(config)
        self._sync: str | None = None

    @property
    def settings(self) -> WebhookConfig:
        assert isinstance(self.config, WebhookConfig)
        return self.config

    def start(self, run: RunContext) -> None:
        self._sync = run.sync_name

    def write(self, batch: Sequence[Record]) -> WriteResult:
        if not isinstance(batch, Batch):
            batch = Batch(batch, batch_id=uuid.uuid4().hex)
        batch_id = batch.batch_id or uuid.uuid4().hex
        document: dict[str, Any] = {
            "batch_id": batch_id,
            "records": [
                {
                    "id": batch.delivery_id(record),
                    "key": record.key,
                    "operation": record.operation,
                    "fields": dict(record.fields),
                }
                for record in batch
            ],
        }
        if self._sync:
            document["sync"] = self._sync
        body = json.dumps(document, default=json_value, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature(self.settings.secret.get_secret_value(), stamp, body),
        }
        what = f"webhook POST {len(batch)} records"
        response = self.request("POST", self.settings.url, what, data=body, headers=headers)
        answer = json_or_none(response)
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if response.status_code != 207 or not errors:
            return WriteResult.all_succeeded(batch)
        failed = {
            error["index"]: error
            for error in errors
            if isinstance(error, dict) and isinstance(error.get("index"), int)
        }
        return WriteResult(
            [_outcome(record.key, failed.get(index)) for index, record in enumerate(batch)]
        )

    def raise_for(self, response: requests.Response, what: str) -> None:
        """The receiver's ``message``, if its answer has one, with the generic mapping."""
        answer = json_or_none(response)
        message = answer.get("message") if isinstance(answer, dict) else None
        raise_for_status(response, what, message)


def _outcome(key: str, error: dict[str, Any] | None) -> RecordOutcome:
    """A record's outcome from its 207 error entry, if any: a refusal when its ``status`` is a
    4xx (not 408 or 429), else the receiver failing to store it."""
    if error is None:
        return RecordOutcome(key, True)
    status = error.get("status")
    refused = isinstance(status, int) and 400 <= status < 500 and status not in (408, 429)
    message = str(error.get("message") or "rejected by the receiver")
    return RecordOutcome(key, False, error=message, transient=not refused)
