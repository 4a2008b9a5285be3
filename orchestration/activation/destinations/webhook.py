"""Webhook: each batch POSTed as one signed JSON document.

Environment:

- ``TESSERA_WEBHOOK_URL``: where batches are POSTed (the sync's ``url`` option wins).
- ``TESSERA_WEBHOOK_SECRET``: shared secret of the HMAC-SHA256 signature; never an option.
- ``TESSERA_WEBHOOK_TIMEOUT_SECONDS``: per-request timeout, default 30.

Request (the receiver contract of orchestration.activation.emulators.webhook)::

    POST <url>
    X-Tessera-Timestamp: <Unix seconds>
    X-Tessera-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, keyed by the secret>

    {"sync": "...", "batch_id": "...",
     "records": [{"id": "<change id>:<key>", "key": "...", "operation": "add", "fields": {...}}]}

A record's ``id`` (``Batch.delivery_id``) names one change: it stays the same when the engine
retries, splits or (after a killed run) resends its request, and when a later run sends a change
that failed again, so a receiver that keeps the ids it has seen applies each change once. Values are
JSON: timestamps and dates in ISO 8601, decimals as numbers.

Answers: 2xx -> every record taken, except those a 207 lists in ``errors`` (by ``index``); 429 ->
RateLimited (Retry-After); 5xx, 408 or a timeout -> TransientError; 401/403/404 ->
PermanentError; 400, 413 and other 4xx -> BatchRejected (the engine halves the batch).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import requests
from pydantic import SecretStr, ValidationError, field_validator

from orchestration.activation.destination import (
    Batch,
    Destination,
    DestinationConfig,
    PermanentError,
    Record,
    RecordOutcome,
    RunContext,
    WriteResult,
)
from orchestration.activation.destinations._http import json_or_none, raise_for_status, send
from orchestration.activation.engine import json_value

SIGNATURE_HEADER = "X-Tessera-Signature"
TIMESTAMP_HEADER = "X-Tessera-Timestamp"
_ENV = {
    "url": "TESSERA_WEBHOOK_URL",
    "secret": "TESSERA_WEBHOOK_SECRET",
    "timeout_seconds": "TESSERA_WEBHOOK_TIMEOUT_SECONDS",
}


class WebhookConfig(DestinationConfig):
    url: str
    secret: SecretStr
    timeout_seconds: float = 30.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url

    @classmethod
    def from_env(
        cls, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Self:
        env = os.environ if environ is None else environ
        options = dict(options or {})
        if "secret" in options:
            raise PermanentError(
                "webhook option 'secret' is a secret: set TESSERA_WEBHOOK_SECRET instead"
            )
        values: dict[str, Any] = {
            name: env[variable] for name, variable in _ENV.items() if env.get(variable)
        }
        values.update(options)
        for name in ("url", "secret"):
            if not values.get(name):
                raise PermanentError(f"{_ENV[name]} is not set")
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise PermanentError(f"webhook settings: {problems}") from None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookDestination(Destination):
    name: ClassVar[str] = "webhook"
    max_batch_size: ClassVar[int] = 500
    max_concurrency: ClassVar[int] = 4
    config_class: ClassVar[type[DestinationConfig]] = WebhookConfig

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        self._local = threading.local()
        self._sync: str | None = None

    @property
    def settings(self) -> WebhookConfig:
        assert isinstance(self.config, WebhookConfig)
        return self.config

    def _session(self) -> requests.Session:
        # One session per sending thread: requests does not promise a shared one is safe.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = "tessera"
        return session

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
        response = send(
            self._session(),
            "POST",
            self.settings.url,
            timeout=self.settings.timeout_seconds,
            data=body,
            headers=headers,
        )
        answer = json_or_none(response)
        message = answer.get("message") if isinstance(answer, dict) else None
        raise_for_status(response, f"webhook POST {len(batch)} records", message)
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if response.status_code != 207 or not errors:
            return WriteResult.all_succeeded(batch)
        failed = {
            error["index"]: str(error.get("message") or "rejected by the receiver")
            for error in errors
            if isinstance(error, dict) and isinstance(error.get("index"), int)
        }
        return WriteResult(
            [
                RecordOutcome(record.key, index not in failed, error=failed.get(index))
                for index, record in enumerate(batch)
            ]
        )
