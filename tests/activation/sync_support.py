"""What the sync tests share: audience tables written to a warehouse, and an in-memory
destination with scripted faults that remembers every request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from orchestration.activation.config import SyncSpec
from orchestration.activation.destination import (
    BatchRejected,
    Destination,
    DestinationConfig,
    Record,
    RecordOutcome,
    WriteResult,
)
from orchestration.warehouse import Warehouse

AUDIENCE = "audience_sync_test"


def make_warehouse(request: pytest.FixtureRequest, tmp_path_factory, adapter: str) -> Warehouse:
    """An empty DuckDB file, or a fresh database on the session's Postgres server."""
    name = request.node.name.split("[")[0][:40]
    if adapter == "duckdb":
        return Warehouse(target="local", duckdb_path=tmp_path_factory.mktemp(name) / "w.duckdb")
    server = request.getfixturevalue("postgres_server")
    return Warehouse(target="postgres", postgres=server.create_database(name))


def members(count: int, start: int = 0, **overrides: Any) -> list[dict[str, Any]]:
    """Audience rows c0000.., each with an email, a first name and email consent."""
    rows = []
    for number in range(start, start + count):
        row = {
            "customer_id": f"c{number:04d}",
            "email": f"user{number}@mail.com",
            "first_name": f"Name{number}",
            "has_consent_email_marketing": True,
        }
        row.update(overrides)
        rows.append(row)
    return rows


def write_audience(warehouse: Warehouse, rows: Sequence[Mapping[str, Any]], name: str = AUDIENCE):
    columns = ["customer_id", "email", "first_name", "has_consent_email_marketing"]
    types = [pa.string(), pa.string(), pa.string(), pa.bool_()]
    table = pa.table(
        {c: pa.array([row[c] for row in rows], t) for c, t in zip(columns, types, strict=True)}
    )
    warehouse.write_tables("audiences", {name: table})


def write_erasures(warehouse: Warehouse, customer_ids: Iterable[str]) -> None:
    ids = list(customer_ids)
    table = pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "requested_at": pa.array([None] * len(ids), pa.timestamp("us")),
        }
    )
    warehouse.write_tables("marts", {"customer_erasures": table})


def spec(name: str = "test_sync", **changes: Any) -> SyncSpec:
    values: dict[str, Any] = {
        "name": name,
        "audience": AUDIENCE,
        "destination": "memory",
        "mode": "upsert",
        "key": "customer_id",
        "fields": {"email": "email", "firstname": "first_name"},
        "delete": "none",
    }
    values.update(changes)
    return SyncSpec(**values)


class MemoryDestination(Destination):
    """Holds records by key like a CRM; ``script`` holds exceptions to raise on the next
    requests (None: answer normally), ``reject`` keys that make a whole request be refused,
    ``fail`` keys whose rows fail."""

    name: ClassVar[str] = "memory"
    max_batch_size: ClassVar[int] = 4
    max_concurrency: ClassVar[int] = 2

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(DestinationConfig())
        self.held: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str | None, list[tuple[str, str]]]] = []
        #: (request id, keys) of each request answered with a scripted fault.
        self.faulted: list[tuple[str | None, list[str]]] = []
        self.script: list[BaseException | None] = []
        self.reject: set[str] = set()
        self.fail: set[str] = set()
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def applied(self) -> int:
        return sum(len(records) for _, records in self.requests)

    def write(self, batch: Sequence[Record]) -> WriteResult:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            fault = self.script.pop(0) if self.script else None
            if fault is not None:
                batch_id = getattr(batch, "batch_id", None)
                self.faulted.append((batch_id, [record.key for record in batch]))
        try:
            if self.delay:
                time.sleep(self.delay)
            if fault is not None:
                raise fault
            if self.reject & {record.key for record in batch}:
                raise BatchRejected("400: a row of this batch is invalid")
            outcomes = []
            with self.lock:
                self.requests.append(
                    (getattr(batch, "batch_id", None), [(r.key, r.operation) for r in batch])
                )
                for record in batch:
                    if record.key in self.fail:
                        outcomes.append(RecordOutcome(record.key, False, error="invalid email"))
                        continue
                    if record.operation == "remove":
                        self.held.pop(record.key, None)
                    else:
                        self.held[record.key] = dict(record.fields)
                    outcomes.append(RecordOutcome(record.key, True, destination_id=record.key))
            return WriteResult(outcomes)
        finally:
            with self.lock:
                self.in_flight -= 1


def expected(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a destination holds after syncing ``rows`` with the default spec's mapping."""
    return {
        row["customer_id"]: {"email": row["email"], "firstname": row["first_name"]}
        for row in rows
        if row["has_consent_email_marketing"]
    }


class Sleeps(list):
    """A RetryPolicy ``sleep`` that records how long it was asked to wait and returns at once,
    moving its own ``clock`` on by as much."""

    now = 0.0

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def policy(self, **settings):
        from orchestration.activation.sender import RetryPolicy

        return RetryPolicy(sleep=self, clock=self.clock, **settings)


def apply_deliveries(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a receiver holds after applying the records it stored, in arrival order."""
    held: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["operation"] == "remove":
            held.pop(record["key"], None)
        else:
            held[record["key"]] = record["fields"]
    return held


def small_webhook(url: str, secret: str, timeout: float = 2.0, batch_size: int = 10):
    """The webhook destination with small batches, so a few hundred rows make many requests."""
    from orchestration.activation.destinations.webhook import WebhookConfig, WebhookDestination

    class SmallBatchWebhook(WebhookDestination):
        max_batch_size: ClassVar[int] = batch_size

    return SmallBatchWebhook(WebhookConfig(url=url, secret=secret, timeout_seconds=timeout))


def webhook_sync_main(duckdb_path: str, url: str, secret: str) -> None:
    """One webhook sync of the test audience, as its own process (the kill test runs this)."""
    from pathlib import Path

    from orchestration.activation.engine import run_sync

    warehouse = Warehouse(target="local", duckdb_path=Path(duckdb_path))
    destination = small_webhook(url, secret, timeout=60.0)
    run_sync(spec(destination="webhook", mode="mirror"), warehouse, {}, destination=destination)
