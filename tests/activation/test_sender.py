"""Every request a run makes, its connection check included, goes through the sender's one
retry and throttling loop: a 429 waits its Retry-After without spending the retry budget, a
transient error retries with backoff, a refusal fails at once."""

from __future__ import annotations

from typing import ClassVar

import pytest

from orchestration.activation.destination import PermanentError, RateLimited, TransientError
from orchestration.activation.engine import run_sync
from tests.activation.sync_support import (
    MemoryDestination,
    Sleeps,
    expected,
    members,
    spec,
    write_audience,
)

# One adapter: what is tested here does not depend on the warehouse's SQL.
pytestmark = [pytest.mark.integration, pytest.mark.duckdb_only]


class CheckedDestination(MemoryDestination):
    """A MemoryDestination whose connection check answers from ``checks`` first."""

    name: ClassVar[str] = "memory"

    def __init__(self, *checks: BaseException) -> None:
        super().__init__()
        self.checks = list(checks)
        self.checked = 0

    def check_connection(self) -> None:
        self.checked += 1
        if self.checks:
            raise self.checks.pop(0)


def test_a_throttled_connection_check_waits_retry_after_and_the_run_succeeds(warehouse):
    # A single 429 on the check failed the whole run, Retry-After ignored.
    rows = members(3)
    write_audience(warehouse, rows)
    sleeps = Sleeps()
    destination = CheckedDestination(RateLimited("429", 7.0), RateLimited("429", 3.0))

    result = run_sync(spec(), warehouse, {}, destination=destination, policy=sleeps.policy())

    assert (result.status, result.rate_limited, result.retries) == ("succeeded", 2, 0)
    assert sleeps == [7.0, 3.0]
    assert destination.checked == 3
    assert destination.held == expected(rows)


def test_throttling_does_not_spend_the_retry_budget_of_a_check(warehouse):
    write_audience(warehouse, members(1))
    destination = CheckedDestination(*[RateLimited("429", 1.0)] * 4)

    result = run_sync(
        spec(), warehouse, {}, destination=destination, policy=Sleeps().policy(max_retries=0)
    )

    assert (result.status, result.rate_limited) == ("succeeded", 4)


def test_a_connection_check_failing_transiently_retries_with_backoff(warehouse):
    write_audience(warehouse, members(2))
    sleeps = Sleeps()
    destination = CheckedDestination(TransientError("502"), TransientError("500"))

    result = run_sync(
        spec(), warehouse, {}, destination=destination, policy=sleeps.policy(jitter=lambda: 1.0)
    )

    assert (result.status, result.retries, result.succeeded) == ("succeeded", 2, 2)
    # base_delay 0.5 doubled each retry; jitter 1.0 takes the whole delay.
    assert sleeps == [0.5, 1.0]


def test_a_connection_check_down_past_the_budget_fails_the_run_as_retryable(warehouse):
    write_audience(warehouse, members(2))
    destination = CheckedDestination(*[TransientError("503 unavailable")] * 3)

    result = run_sync(
        spec(), warehouse, {}, destination=destination, policy=Sleeps().policy(max_retries=2)
    )

    assert (result.status, result.retries, result.retryable) == ("failed", 2, True)
    assert result.error == "503 unavailable (after 2 retries)"
    assert destination.requests == []


def test_a_refused_connection_check_fails_at_once_without_retries(warehouse):
    write_audience(warehouse, members(2))
    sleeps = Sleeps()
    destination = CheckedDestination(PermanentError("401: bad token"))

    result = run_sync(spec(), warehouse, {}, destination=destination, policy=sleeps.policy())

    assert (result.status, result.error, result.retryable) == ("failed", "401: bad token", False)
    assert (destination.checked, result.retries, sleeps) == (1, 0, [])
    assert destination.requests == []
