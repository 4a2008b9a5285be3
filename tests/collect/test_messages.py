"""Tracking API requests: what is refused with which reason, and what a landing record holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from orchestration.collect.messages import (
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    RequestRefused,
    land_request,
    parse_body,
)

RECEIVED = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def _records(path: str, document: dict) -> list[dict]:
    accepted = land_request(path, document, RECEIVED, request_ip="10.0.0.9")
    lines = accepted.lines.split(b"\n")
    assert lines[-1] == b"" and accepted.events == len(lines) - 1
    return [orjson.loads(line) for line in lines[:-1]]


def _refusal(path: str, document: dict) -> RequestRefused:
    with pytest.raises(RequestRefused) as refused:
        land_request(path, document, RECEIVED)
    return refused.value


def test_timestamp_is_corrected_by_the_client_clock_skew() -> None:
    # The client's clock runs 10 minutes fast: it stamped the call 3 s before sending the batch.
    client_now = RECEIVED + timedelta(minutes=10)
    call = {
        "type": "track",
        "userId": "u1",
        "event": "Product Added",
        "timestamp": (client_now - timedelta(seconds=3)).isoformat(),
        "messageId": "m-1",
    }
    [record] = _records("batch", {"batch": [call], "sentAt": client_now.isoformat()})
    assert record["timestamp"] == "2026-12-07T11:59:57.000000Z"
    assert record["originalTimestamp"] == "2026-12-07T12:09:57.000000Z"
    assert record["receivedAt"] == "2026-12-07T12:00:00.000000Z"
    assert record["messageId"] == "m-1"


def test_a_call_without_timestamp_happened_when_received() -> None:
    [record] = _records("identify", {"userId": "u1", "traits": {"email": "a@b.co"}})
    assert record["timestamp"] == record["receivedAt"] == "2026-12-07T12:00:00.000000Z"
    assert "originalTimestamp" not in record
    assert record["type"] == "identify"
    # A call without messageId gets one, as RudderStack's gateway does.
    assert len(record["messageId"]) == 36


def test_batch_context_is_merged_and_the_call_wins() -> None:
    document = {
        "batch": [
            {"type": "page", "anonymousId": "a1", "context": {"locale": "fr-FR"}},
            {"type": "page", "anonymousId": "a2"},
        ],
        "context": {"locale": "en-US", "library": {"name": "analytics.js"}},
    }
    first, second = _records("batch", document)
    assert first["context"]["locale"] == "fr-FR"
    assert first["context"]["library"] == {"name": "analytics.js"}
    assert second["context"]["locale"] == "en-US"
    assert first["context"]["ip"] == "10.0.0.9"


def test_single_call_endpoint_takes_its_type_from_the_path_and_drops_the_write_key() -> None:
    [record] = _records("track", {"userId": "u1", "event": "Signed Up", "writeKey": "secret"})
    assert record["type"] == "track"
    assert "writeKey" not in record


@pytest.mark.parametrize(
    ("path", "document", "reason", "where"),
    [
        ("batch", {"batch": [{"type": "track", "event": "X"}]}, "no_user_anon_id", "batch[0]"),
        ("track", {"userId": "u1"}, "missing_event", "call"),
        ("track", {"userId": "u1", "event": "  "}, "missing_event", "call"),
        (
            "batch",
            {"batch": [{"userId": "u"}, {"type": "jump", "userId": "u"}]},
            "invalid_type",
            "batch[0]",
        ),
        ("batch", {"batch": []}, "empty_batch", "no calls"),
        ("batch", {"batch": {"type": "track"}}, "invalid_batch", "list"),
        (
            "batch",
            {"batch": [{"type": "identify", "userId": "u", "timestamp": "yesterday"}]},
            "invalid_timestamp",
            "batch[0].timestamp",
        ),
        ("identify", {"userId": "u", "messageId": "x" * 101}, "invalid_message_id", "messageId"),
        ("alias", {"userId": "u"}, "missing_previous_id", "previousId"),
        ("group", {"userId": "u"}, "missing_group_id", "groupId"),
        ("batch", {"batch": ["not an object"]}, "invalid_call", "batch[0]"),
    ],
)
def test_malformed_requests_are_refused_with_a_reason_naming_the_call(
    path: str, document: dict, reason: str, where: str
) -> None:
    refused = _refusal(path, document)
    assert refused.reason == reason
    assert where in str(refused)


def test_more_than_2500_calls_in_a_batch_are_refused() -> None:
    call = {"type": "page", "anonymousId": "a"}
    assert len(_records("batch", {"batch": [call] * MAX_BATCH_EVENTS})) == MAX_BATCH_EVENTS
    assert _refusal("batch", {"batch": [call] * (MAX_BATCH_EVENTS + 1)}).reason == "too_many_events"


def test_a_call_over_32kb_is_refused_and_one_just_under_is_kept() -> None:
    def call(size: int) -> dict:
        base = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": ""}}
        overhead = len(orjson.dumps(base))
        base["properties"]["blob"] = "x" * (size - overhead)
        assert len(orjson.dumps(base)) == size
        return base

    assert len(_records("batch", {"batch": [call(MAX_EVENT_BYTES)]})) == 1
    refused = _refusal("batch", {"batch": [call(MAX_EVENT_BYTES + 1)]})
    assert refused.reason == "event_too_large"


def test_bodies_over_the_limit_or_not_json_objects_are_refused() -> None:
    assert parse_body(b'{"a": 1}', 10) == {"a": 1}
    for body, reason in [
        (b'{"a": 1}' + b" " * 10, "request_too_large"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
    ]:
        with pytest.raises(RequestRefused) as refused:
            parse_body(body, 12)
        assert refused.value.reason == reason
