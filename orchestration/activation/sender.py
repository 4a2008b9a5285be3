"""Sending: every request of a run, a connection check or a batch, with the run's retries and
throttling, and each batch's outcomes recorded in the state when it ends.

``Sender.call`` is the one retry loop. Throttling (``RateLimited``) waits ``Retry-After`` (every
sender of the run pauses) without spending the retry budget; transient errors retry with
exponential backoff and jitter; anything else is raised at once. ``Sender.send`` writes one
batch through it: a rejected batch (``BatchRejected``) is halved until the bad rows are
isolated, a batch still failing transiently when its budget is spent has its rows recorded as
failed (sent again next run, and not counted as refusals), and a permanent error stops the run.
``send_all`` keeps at most ``max_concurrency`` batches in flight.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from orchestration.activation import state as state_tables
from orchestration.activation.destination import (
    Batch,
    BatchRejected,
    Destination,
    RateLimited,
    RecordOutcome,
    TransientError,
)
from orchestration.activation.personal import PersonalData
from orchestration.activation.plan import SEND_ORDER, PlannedRecord
from orchestration.activation.store import StateStore

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the engine tries before a row counts as failed (and waits for the next run)."""

    #: Retries of a request after a transient error (the first attempt is not a retry).
    max_retries: int = 5
    #: Backoff before retry n is ``base_delay * 2**(n-1)``, at most ``max_delay``, of which a
    #: random half is jitter (so senders that failed together do not retry together).
    base_delay: float = 0.5
    max_delay: float = 30.0
    #: Throttling answers one request may get before its rows count as failed. They do not
    #: spend ``max_retries``: the API said when to come back.
    max_rate_limited: int = 100
    #: Wait after a throttling answer without Retry-After.
    rate_limit_delay: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return delay / 2 + delay / 2 * self.jitter()


class Throttle:
    """A pause every sender of a run honours: a 429 to one is a 429 to all."""

    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float]) -> None:
        self._until = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)

    def wait(self) -> None:
        with self._lock:
            remaining = self._until - self._clock()
        if remaining > 0:
            self._sleep(remaining)


@dataclass
class Stats:
    """A run's counts: ``requests`` and ``records_sent`` count writes; ``retries`` and
    ``rate_limited`` count every request, connection checks included."""

    succeeded: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    records_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)


class Sender:
    """Sends one run's requests with retries, throttling and splitting, recording each batch's
    outcomes (``max_row_attempts``: refusals in a row that park a row, state.py)."""

    def __init__(
        self,
        destination: Destination,
        store: StateStore,
        sync_name: str,
        run_id: str,
        policy: RetryPolicy,
        personal: PersonalData,
        max_row_attempts: int,
    ) -> None:
        self.destination = destination
        self.store = store
        self.sync_name = sync_name
        self.run_id = run_id
        self.policy = policy
        self.personal = personal
        self.max_row_attempts = max_row_attempts
        self.throttle = Throttle(policy.sleep, policy.clock)
        self.stats = Stats()
        self.stop = threading.Event()
        # Whether sync_failed_rows may hold rows of this sync that a success must clear.
        self.failed_rows_held = bool(
            store.fetch(
                "select count(*) from activation.sync_failed_rows where sync_name = ?",
                [sync_name],
            )[0][0]
        )

    def call(self, operation: Callable[[], T], records: int | None = None) -> T:
        """``operation()`` (one request) until it answers; ``records``: a write of that many.

        Raises what it raised when that was neither throttling nor transient, and either kind
        once its budget is spent (the message says so).
        """
        retries = throttled = 0
        while True:
            self.throttle.wait()
            if records is not None:
                self.stats.add(requests=1, records_sent=records)
            try:
                return operation()
            except RateLimited as exc:
                throttled += 1
                self.stats.add(rate_limited=1)
                if throttled > self.policy.max_rate_limited:
                    message = f"{exc} (still throttled after {throttled - 1} waits)"
                    raise RateLimited(message, exc.retry_after) from exc
                delay = exc.retry_after
                self.throttle.pause(self.policy.rate_limit_delay if delay is None else delay)
            except TransientError as exc:
                retries += 1
                if retries > self.policy.max_retries:
                    raise TransientError(
                        f"{exc} (after {self.policy.max_retries} retries)"
                    ) from exc
                self.stats.add(retries=1)
                self.policy.sleep(self.policy.backoff(retries))

    def send(self, items: list[PlannedRecord], batch_id: str) -> None:
        if not self.stop.is_set():
            self._send(items, batch_id)

    def _send(self, items: list[PlannedRecord], batch_id: str) -> None:
        batch = Batch(
            [item.record for item in items],
            batch_id=batch_id,
            change_ids={item.record.key: item.change_id for item in items if item.change_id},
        )
        try:
            result = self.call(lambda: self.destination.write(batch), records=len(batch))
        except (RateLimited, TransientError) as exc:
            # The destination never refused these rows: they go again next run, unparked.
            self.record_failed(items, batch_id, str(exc), refused=False)
            return
        except BatchRejected as exc:
            if len(items) == 1:
                self.record_failed(items, batch_id, str(exc))
                return
            middle = len(items) // 2
            self._send(items[:middle], batch_id)
            self._send(items[middle:], batch_id)
            return
        except Exception as exc:
            # The run stops with this error (sync_runs.error, the printed result); an API
            # quoting a record in it must not put the value there. Its type stays.
            exc.args = tuple(
                self.personal.scrub(arg, batch) if isinstance(arg, str) else arg for arg in exc.args
            )
            raise
        self._record(items, batch_id, result.outcomes)

    def record_failed(
        self, items: list[PlannedRecord], batch_id: str | None, error: str, refused: bool = True
    ) -> None:
        """Record every item as failed with one error; ``refused``: by the destination."""
        # One message for the whole request: scrubbed of every record's values.
        error = self.personal.scrub(error, [item.record for item in items])
        outcomes = [
            RecordOutcome(item.record.key, False, error=error, transient=not refused)
            for item in items
        ]
        self._record(items, batch_id, outcomes)

    def _record(
        self, items: list[PlannedRecord], batch_id: str | None, outcomes: Sequence[RecordOutcome]
    ) -> None:
        by_key = {outcome.key: outcome for outcome in outcomes}
        rows = []
        for item in items:
            outcome = by_key.get(item.record.key) or RecordOutcome(
                item.record.key,
                False,
                error="the destination reported no outcome for it",
                transient=True,
            )
            status = "succeeded" if outcome.succeeded else "failed"
            error = None
            if not outcome.succeeded:
                # An API echoes the bad value ("Email 'ana@x.com' is invalid"); the logs keep
                # its mask.
                reason = outcome.error or "failed, no reason given"
                error = self.personal.scrub(reason, [item.record])
            refused = not outcome.succeeded and not outcome.transient
            rows.append(
                (
                    item.record.key,
                    item.record.operation,
                    status,
                    outcome.destination_id,
                    error,
                    refused,
                )
            )
        good = sum(1 for row in rows if row[2] == "succeeded")
        if good < len(rows):
            self.failed_rows_held = True
        state_tables.record_outcomes(
            self.store,
            self.sync_name,
            self.run_id,
            batch_id,
            rows,
            self.failed_rows_held,
            self.max_row_attempts,
        )
        self.stats.add(succeeded=good, failed=len(rows) - good)


def send_all(sender: Sender, batches: Sequence[tuple[str, list[PlannedRecord]]]) -> None:
    """Send batches with at most the destination's ``max_concurrency`` in flight; the first
    error stops the rest."""
    if not batches:
        return
    concurrency = max(sender.destination.max_concurrency, 1)
    pending: set[Future[None]] = set()
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for batch_id, items in batches:
            if error is not None:
                break
            if len(pending) >= concurrency:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                error = error or _first_error(done, sender)
                if error is not None:
                    break
            pending.add(pool.submit(sender.send, items, batch_id))
        done, _ = wait(pending)
        error = error or _first_error(done, sender)
    if error is not None:
        raise error


def _first_error(done: set[Future[None]], sender: Sender) -> BaseException | None:
    for future in done:
        exc = future.exception()
        if exc is not None:
            sender.stop.set()
            return exc
    return None


def chunks(items: Sequence[PlannedRecord], size: int) -> list[list[PlannedRecord]]:
    """Batches of at most ``size`` records of one operation each, in send order."""
    batches: list[list[PlannedRecord]] = []
    for operation in SEND_ORDER:
        same = [planned for planned in items if planned.record.operation == operation]
        batches += [same[start : start + size] for start in range(0, len(same), size)]
    return batches
