"""The Segment / RudderStack HTTP Tracking API's requests, checked and made into landing records.

A request is refused whole (400 with a reason naming the offending call and field, never its
value) when Segment documents it as an error: invalid JSON, a body or call over the size limits,
an empty batch or one of more than 2,500 calls, a call with neither ``userId`` nor
``anonymousId`` (``no_user_anon_id``), a track without ``event``. Tessera also refuses what it
could not load faithfully: a call of unknown type, a timestamp that is not ISO-8601, a
``messageId`` that is not a string of at most 100 characters. Everything else is accepted as
sent; what breaks a staging contract later (a malformed email) is quarantined by staging with
its reason, as for any other source.

Each accepted call becomes one landing record: the call as sent, with the batch's ``context`` and
``integrations`` merged in (the call's own keys win), ``messageId`` filled with a UUID when the
client sent none (as RudderStack's gateway does), ``receivedAt`` (the collector's clock),
``sentAt``, ``originalTimestamp`` (the client's ``timestamp``), and ``timestamp`` corrected for
the client's clock skew as Segment does: ``receivedAt - (sentAt - originalTimestamp)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

#: Segment's documented limits (segment-docs, HTTP Tracking API): 32 KB per call, 500 KB per
#: batch request, at most 2,500 calls in a batch.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2_500
MAX_MESSAGE_ID_CHARS = 100

CALL_TYPES = ("identify", "track", "page", "screen", "group", "alias")
#: The single-call endpoints, /v1/<path>, and the type each one's call has.
ENDPOINT_TYPES = {call_type: call_type for call_type in CALL_TYPES}
_TIMESTAMP_FIELDS = ("timestamp", "sentAt", "originalTimestamp")


class RequestRefused(ValueError):
    """A request the API answers with 400; ``reason`` is a short code, the message says where."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Accepted:
    """The landing records of one accepted request: one JSON line per call, newline-ended."""

    lines: bytes
    events: int


def parse_body(body: bytes, limit: int) -> dict[str, Any]:
    """The request's JSON object; refused when over ``limit`` bytes or not a JSON object."""
    if len(body) > limit:
        raise RequestRefused(
            "request_too_large",
            f"request body is {len(body):,} bytes, over the limit of {limit:,}",
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestRefused("invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RequestRefused("invalid_json", "request body must be a JSON object")
    return document


def write_key_of(document: Mapping[str, Any]) -> str | None:
    """The ``writeKey`` of the body, when it holds one."""
    key = document.get("writeKey")
    return key if isinstance(key, str) and key else None


def _instant(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestRefused("invalid_timestamp", f"{where} must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RequestRefused("invalid_timestamp", f"{where} is not an ISO-8601 timestamp") from None
    # A timestamp without an offset is read as UTC, as Segment does.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def land_calls(
    calls: list[Any],
    received_at: datetime,
    batch_context: Mapping[str, Any] | None = None,
    batch_integrations: Mapping[str, Any] | None = None,
    batch_sent_at: Any = None,
    request_ip: str | None = None,
    forced_type: str | None = None,
) -> Accepted:
    """Check ``calls`` and make their landing records; refuse the request on the first bad one.

    ``forced_type`` is the type of a single-call endpoint (``/v1/track``), which the call need not
    repeat; a batch's calls each carry their own.
    """
    received_iso = _iso(received_at)
    body_sent_at = _instant(batch_sent_at, "sentAt")
    out: list[bytes] = []
    for index, call in enumerate(calls):
        where = f"batch[{index}]" if forced_type is None else "call"
        if not isinstance(call, dict):
            raise RequestRefused("invalid_call", f"{where} must be a JSON object")
        call_type = forced_type or call.get("type")
        if call_type not in CALL_TYPES:
            raise RequestRefused(
                "invalid_type",
                f"{where}.type must be one of {', '.join(CALL_TYPES)}",
            )
        record = dict(call)
        record["type"] = call_type
        if not (record.get("userId") or record.get("anonymousId")):
            raise RequestRefused("no_user_anon_id", f"{where} has neither userId nor anonymousId")
        if call_type == "track" and not (
            isinstance(record.get("event"), str) and record["event"].strip()
        ):
            raise RequestRefused("missing_event", f"{where} is a track without an event name")
        if call_type == "alias" and not record.get("previousId"):
            raise RequestRefused("missing_previous_id", f"{where} is an alias without previousId")
        if call_type == "group" and not record.get("groupId"):
            raise RequestRefused("missing_group_id", f"{where} is a group call without groupId")
        message_id = record.get("messageId")
        if message_id is None:
            record["messageId"] = str(uuid.uuid4())
        elif not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_CHARS:
            raise RequestRefused(
                "invalid_message_id",
                f"{where}.messageId must be a string of 1 to {MAX_MESSAGE_ID_CHARS} characters",
            )
        if batch_context:
            own = record.get("context")
            record["context"] = {**batch_context, **own} if isinstance(own, dict) else batch_context
        if batch_integrations and "integrations" not in record:
            record["integrations"] = batch_integrations
        if request_ip is not None:
            context = record.get("context")
            context = dict(context) if isinstance(context, dict) else {}
            context.setdefault("ip", request_ip)
            record["context"] = context

        client_time = _instant(record.get("timestamp"), f"{where}.timestamp")
        sent_at = _instant(record.get("sentAt"), f"{where}.sentAt") or body_sent_at
        if client_time is None:
            client_time = _instant(record.get("originalTimestamp"), f"{where}.originalTimestamp")
        if client_time is None:
            corrected = received_at
        elif sent_at is None:
            corrected = client_time
        else:
            corrected = received_at - (sent_at - client_time)
        if client_time is not None:
            record["originalTimestamp"] = _iso(client_time)
        if sent_at is not None:
            record["sentAt"] = _iso(sent_at)
        record["timestamp"] = _iso(corrected)
        record["receivedAt"] = received_iso

        line = orjson.dumps(record)
        # The record is the call plus the fields above; only a large record can hide a call over
        # the limit, so only then is the call itself measured.
        if len(line) > MAX_EVENT_BYTES and len(orjson.dumps(call)) > MAX_EVENT_BYTES:
            raise RequestRefused(
                "event_too_large",
                f"{where} is over the limit of {MAX_EVENT_BYTES:,} bytes per call",
            )
        out.append(line)
    if not out:
        raise RequestRefused("empty_batch", "the batch holds no calls")
    out.append(b"")
    return Accepted(lines=b"\n".join(out), events=len(calls))


def land_request(
    path_type: str,
    document: Mapping[str, Any],
    received_at: datetime,
    request_ip: str | None = None,
) -> Accepted:
    """The landing records of one request to ``/v1/<path_type>`` (``batch`` or a call type)."""
    if path_type == "batch":
        calls = document.get("batch")
        if not isinstance(calls, list):
            raise RequestRefused("invalid_batch", "the body's batch must be a list of calls")
        if len(calls) > MAX_BATCH_EVENTS:
            raise RequestRefused(
                "too_many_events",
                f"the batch holds {len(calls):,} calls, over the limit of {MAX_BATCH_EVENTS:,}",
            )
        context = document.get("context")
        integrations = document.get("integrations")
        return land_calls(
            calls,
            received_at,
            batch_context=context if isinstance(context, dict) else None,
            batch_integrations=integrations if isinstance(integrations, dict) else None,
            batch_sent_at=document.get("sentAt"),
            request_ip=request_ip,
        )
    call = {key: value for key, value in document.items() if key != "writeKey"}
    return land_calls(
        [call], received_at, request_ip=request_ip, forced_type=ENDPOINT_TYPES[path_type]
    )


def now() -> datetime:
    return datetime.now(UTC)
