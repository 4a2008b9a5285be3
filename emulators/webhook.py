"""Emulator of a webhook receiver: signed JSON batches, recorded idempotently by record id.

``GET {path}/received`` (signed like a POST, over an empty body) lists the records stored, each
with ``received_at``, the Unix time it arrived: how bench/freshness.py, running the receiver in
its own process, learns when each member was delivered.

Request (one batch per request)::

    POST {path}                                   (default path: /webhook)
    Content-Type: application/json
    X-Tessera-Timestamp: 1767225600               (Unix time in whole seconds, as ASCII digits)
    X-Tessera-Signature: sha256=<hex>

    {"sync": "vip_customers_webhook",             (optional)
     "batch_id": "run-42-batch-3",                (optional)
     "records": [{"id": "...", "key": "c-1", "operation": "add", "fields": {"email": "..."}}]}

Signature: ``<hex>`` is the lowercase hex HMAC-SHA256, keyed with the shared secret (UTF-8), of
the bytes ``<timestamp> + "." + <raw request body>``, exactly as sent (sign the serialised body,
then send those same bytes)::

    message = timestamp.encode() + b"." + body
    signature = "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()

The receiver answers 401 when either header is missing, the signature differs, or the timestamp
is more than ``tolerance_seconds`` (default 300) away from its clock, so a captured request
cannot be replayed later. The emulator's ``token`` is the shared secret.

Records: ``id`` (non-empty string) identifies one delivery of one change; a record whose id was
already received is acknowledged again but counted as a duplicate and not stored twice, so a
sender that retries a batch after a timeout can be caught re-sending. ``key`` is the sync key,
``operation`` one of add, change, remove, ``fields`` an object. At most ``max_records`` records
per request (default 1000), else 413.

Answers:

- 200 ``{"received": 3, "accepted": 3, "duplicates": 0}``: every record taken.
- 207 ``{"received": 3, "accepted": 2, "duplicates": 0, "errors": [{"index": 1, "id": "...",
  "message": "..."}]}``: the rows in ``errors`` were not taken (send them again); the others
  were. ``index`` is the record's position in the request.
- 400 ``{"error": "invalid_request", "message": "...", "field": "records[1].id"}``: the whole
  batch is refused and nothing is stored.
- 401 ``{"error": "invalid_signature", "message": "..."}``.
- 413 ``{"error": "too_many_records", "message": "..."}``.
- 429 ``{"error": "rate_limited", "message": "...", "retry_after": 1}`` with ``Retry-After``.
- 5xx ``{"error": "server_error", "message": "..."}``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from typing import Any, ClassVar

from emulators.base import (
    ApiError,
    Emulator,
    JsonSchema,
    Request,
    Response,
    Route,
    retry_after_header,
    route,
)

SIGNATURE_HEADER = "X-Tessera-Signature"
TIMESTAMP_HEADER = "X-Tessera-Timestamp"

BATCH_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["records"],
    "properties": {
        "sync": {"type": "string"},
        "batch_id": {"type": "string"},
        "records": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "key", "operation", "fields"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "key": {"type": "string"},
                    "operation": {"enum": ["add", "change", "remove"]},
                    "fields": {"type": "object"},
                },
            },
        },
    },
}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Tessera-Signature`` value for ``body`` sent at ``timestamp``."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a correctly signed delivery of ``body`` (now, unless ``timestamp`` is given)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, stamp, body),
    }


class WebhookEmulator(Emulator):
    name: ClassVar[str] = "webhook"
    default_token: ClassVar[str] = "test-secret"

    def __init__(
        self,
        *,
        path: str = "/webhook",
        max_records: int = 1000,
        tolerance_seconds: float = 300.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.path = path
        self.max_records = max_records
        self.tolerance_seconds = tolerance_seconds
        #: First delivery of each record id, in arrival order.
        self.records: dict[str, dict[str, Any]] = {}
        #: Unix time each stored record arrived (bench/freshness.py measures delivery by it).
        self.received_at: dict[str, float] = {}
        #: Deliveries per record id (2 or more: the sender sent it again).
        self.deliveries: Counter[str] = Counter()
        #: Accepted request bodies, in arrival order.
        self.batches: list[dict[str, Any]] = []

    @property
    def secret(self) -> str:
        return self.token

    @property
    def url(self) -> str:
        return self.base_url + self.path

    @property
    def duplicate_count(self) -> int:
        """Deliveries of record ids that had already been received."""
        with self.lock:
            return sum(count - 1 for count in self.deliveries.values() if count > 1)

    def records_by_key(self) -> dict[str, dict[str, Any]]:
        """The last record received for each sync key."""
        with self.lock:
            return {record["key"]: record for record in self.records.values()}

    def routes(self) -> list[Route]:
        return [
            route("POST", f"{self.path}/?", self._receive),
            route("GET", f"{self.path}/received/?", self._received),
        ]

    def _received(self, request: Request) -> Response:
        """Every record stored, with the Unix time it arrived: what a receiver would show."""
        with self.lock:
            return Response(
                200,
                {
                    "records": [
                        {**record, "received_at": self.received_at[record_id]}
                        for record_id, record in self.records.items()
                    ]
                },
            )

    def authenticate(self, request: Request) -> Response | None:
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            return _unauthorized(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required")
        if not timestamp.isdigit():
            return _unauthorized(f"{TIMESTAMP_HEADER} must be Unix time in whole seconds")
        if abs(time.time() - int(timestamp)) > self.tolerance_seconds:
            return _unauthorized(f"{TIMESTAMP_HEADER} is outside the allowed clock skew")
        if not hmac.compare_digest(signature, sign(self.secret, timestamp, request.body)):
            return _unauthorized("signature does not match the body")
        return None

    def error_unauthorized(self, request: Request) -> Response:
        return _unauthorized("missing signature")

    def error_throttled(self, request: Request, retry_after: float) -> Response:
        seconds = retry_after_header(retry_after)
        return Response(
            429,
            {"error": "rate_limited", "message": "too many requests", "retry_after": int(seconds)},
            {"Retry-After": seconds},
        )

    def _receive(self, request: Request) -> Response:
        body = self.json_body(request)
        if isinstance(body, dict) and isinstance(body.get("records"), list):
            if len(body["records"]) > self.max_records:
                raise ApiError(
                    Response(
                        413,
                        {
                            "error": "too_many_records",
                            "message": f"at most {self.max_records} records per request, "
                            f"got {len(body['records'])}",
                        },
                    )
                )
        self.validate(request, BATCH_SCHEMA, body)
        accepted = duplicates = 0
        errors = []
        for index, record in enumerate(body["records"]):
            if self.row_fails(request):
                errors.append(
                    {"index": index, "id": record["id"], "message": "record could not be stored"}
                )
                continue
            self.deliveries[record["id"]] += 1
            if record["id"] in self.records:
                duplicates += 1
            else:
                self.records[record["id"]] = record
                self.received_at[record["id"]] = time.time()
                accepted += 1
        self.batches.append(body)
        answer: dict[str, Any] = {
            "received": len(body["records"]),
            "accepted": accepted,
            "duplicates": duplicates,
        }
        if errors:
            return Response(207, {**answer, "errors": errors})
        return Response(200, answer)


def _unauthorized(message: str) -> Response:
    return Response(401, {"error": "invalid_signature", "message": message})
