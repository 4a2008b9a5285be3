"""Segment's warehouse schema (segment-docs, "Warehouse Schemas"): how a call becomes table rows.

One table per call type (``identifies``, ``tracks``, ``pages``, ``screens``, ``groups``,
``aliases``) plus one table per track event named by the event in snake_case, holding the
event's properties as columns. Nested objects are flattened with ``_`` (``context.page.url`` ->
``context_page_url``), arrays and other values kept as JSON text, names in snake_case
(``firstName`` -> ``first_name``). Where Segment discards a property whose name collides with a
column of the call itself (``id``, ``timestamp``), Tessera keeps it under its object's prefix
(``properties_id``). Every column is text except the call's timestamps, so a property that
changes type between calls never loses a value; staging casts.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson

CALL_TABLES = {
    "identify": "identifies",
    "track": "tracks",
    "page": "pages",
    "screen": "screens",
    "group": "groups",
    "alias": "aliases",
}
TIMESTAMP_COLUMNS = ("timestamp", "original_timestamp", "sent_at", "received_at", "uuid_ts")
#: The columns every call's row has, in the order a new table gets them.
COMMON_COLUMNS = ("id", "anonymous_id", "user_id", *TIMESTAMP_COLUMNS, "channel")
#: Each call type's own columns, beside the common ones and its flattened object.
CALL_COLUMNS = {
    "identify": (),
    "track": ("event", "event_text"),
    "page": ("name", "category"),
    "screen": ("name",),
    "group": ("group_id",),
    "alias": ("previous_id",),
}
#: The object each call type's free-form fields come in, flattened into its row.
CALL_OBJECTS = {
    "identify": "traits",
    "track": "properties",
    "page": "properties",
    "screen": "properties",
    "group": "traits",
    "alias": None,
}
#: Tables an event's own table may not be named after.
RESERVED_TABLES = frozenset({*CALL_TABLES.values(), "users", "accounts"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=65_536)
def snake_case(name: str) -> str:
    """A key as Segment names its column: ``firstName`` -> ``first_name``, ``Product ID`` ->
    ``product_id``; empty when the key has no letter or digit."""
    return _NOT_WORD.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


def event_table_name(event: str) -> str:
    """The table of a track event: its name in snake_case (``Order Completed`` ->
    ``order_completed``), suffixed ``_event`` where that would be a call type's table."""
    table = re.sub(r"[^a-z0-9]+", "_", event.strip().lower()).strip("_") or "unnamed"
    if table[0].isdigit():
        table = f"event_{table}"
    return f"{table}_event" if table in RESERVED_TABLES else table


def text_value(value: Any) -> str | None:
    """A JSON value as its column holds it: strings as they are, the rest as JSON text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    """Add ``value`` to ``into`` as columns named ``prefix`` and its nested keys."""
    if isinstance(value, dict):
        for key, nested in value.items():
            name = snake_case(str(key))
            if name:
                flatten(f"{prefix}_{name}" if prefix else name, nested, into)
        return
    if prefix and prefix not in into:
        into[prefix] = text_value(value)


def call_rows(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (table, row) pairs of one landing record: one row in its call type's table, and for
    a track a second one, with its properties, in the event's own table."""
    call_type = record["type"]
    row: dict[str, Any] = {
        "id": record.get("messageId"),
        "anonymous_id": text_value(record.get("anonymousId")),
        "user_id": text_value(record.get("userId")),
        "timestamp": record.get("timestamp"),
        "original_timestamp": record.get("originalTimestamp"),
        "sent_at": record.get("sentAt"),
        "received_at": record.get("receivedAt"),
        "channel": text_value(record.get("channel")),
    }
    if call_type == "track":
        event = record["event"]
        row["event"] = event_table_name(event)
        row["event_text"] = event
    elif call_type in ("page", "screen"):
        row["name"] = text_value(record.get("name"))
        if call_type == "page":
            row["category"] = text_value(record.get("category"))
    elif call_type == "group":
        row["group_id"] = text_value(record.get("groupId"))
    elif call_type == "alias":
        row["previous_id"] = text_value(record.get("previousId"))
    context = record.get("context")
    if isinstance(context, dict):
        flatten("context", context, row)
    rows = [(CALL_TABLES[call_type], row)]
    owner = CALL_OBJECTS[call_type]
    fields = record.get(owner) if owner else None
    if not isinstance(fields, dict) or not fields:
        if call_type == "track":
            rows.append((row["event"], dict(row)))
        return rows
    own: dict[str, Any] = {}
    flatten("", fields, own)
    if call_type == "track":
        # tracks keeps the common columns only; the event's table has its properties too.
        target = dict(row)
        rows.append((row["event"], target))
    else:
        target = row
    for name, value in own.items():
        column = name if name not in row and not name.startswith("context_") else f"{owner}_{name}"
        if column not in target:
            target[column] = value
    return rows
