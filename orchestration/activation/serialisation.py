"""Warehouse values as JSON, one way for every JSON a sync writes: the webhook's and
Salesforce's request bodies, the file destination's text cells, the fields kept in the state."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def json_value(value: Any) -> Any:
    """A warehouse value JSON has no type for: timestamps and dates in ISO 8601, decimals as
    numbers, UUIDs as text (``json.dumps``'s ``default``)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot send a {type(value).__name__} value: {value!r}")


def jsonable(value: Any) -> Any:
    """``value`` as a JSON encoder takes it: unchanged when JSON has its type, else
    ``json_value``."""
    if value is None or isinstance(value, str | bool | int | float | list | dict):
        return value
    return json_value(value)


def dumps(fields: Mapping[str, Any]) -> str:
    """Compact, key-sorted JSON: the same fields give the same text."""
    return json.dumps(dict(fields), default=json_value, sort_keys=True, separators=(",", ":"))
