"""Poison rows: a row the destination refuses ``tessera_sync_max_row_attempts`` runs in a row is
parked, and not sent again until its data changes or a run retries parked rows."""

from __future__ import annotations

import pytest

from orchestration.activation.destination import TransientError
from orchestration.activation.engine import SyncError, run_sync
from orchestration.activation.store import StateStore
from tests.activation.sync_support import (
    MemoryDestination,
    Sleeps,
    members,
    spec,
    write_audience,
)

pytestmark = pytest.mark.integration
BAD = "c0002"


def _sync(warehouse, destination, **options):
    options.setdefault("policy", Sleeps().policy(max_retries=0))
    return run_sync(spec(), warehouse, {}, destination=destination, **options)


def _sent(destination: MemoryDestination, key: str) -> int:
    """Requests that carried ``key`` (refused or not)."""
    return sum(1 for _, batch in destination.requests if any(k == key for k, _ in batch))


def _failed_row(warehouse, key: str) -> tuple:
    with StateStore.open(warehouse) as store:
        rows = store.fetch(
            "select parked, attempts, error from activation.sync_failed_rows "
            "where sync_name = 'test_sync' and record_key = ?",
            [key],
        )
    return rows[0] if rows else ()


def _park(warehouse, destination: MemoryDestination) -> list:
    """Three runs in which the destination refuses BAD."""
    destination.fail = {BAD}
    return [_sync(warehouse, destination) for _ in range(3)]


def test_a_row_refused_three_runs_in_a_row_is_parked_and_not_sent_again(warehouse):
    write_audience(warehouse, members(5))
    destination = MemoryDestination()

    runs = _park(warehouse, destination)
    refused = _sent(destination, BAD)
    fourth = _sync(warehouse, destination)

    assert [(r.status, r.failed, r.parked) for r in runs] == [
        ("partial", 1, 0),
        ("partial", 1, 0),
        ("partial", 1, 1),
    ]
    assert refused == 3
    # Run 4 sends nothing for the parked row, and says it left it out.
    assert _sent(destination, BAD) == 3
    assert (fourth.status, fourth.requests, fourth.failed) == ("partial", 0, 0)
    assert fourth.plan.counts()["parked"] == 1
    assert "parked 1" in fourth.plan.format()
    assert "(1 parked)" in runs[2].format()
    parked, attempts, error = _failed_row(warehouse, BAD)
    assert (parked, attempts, error) == (True, 3, "invalid email")


def test_a_parked_row_is_sent_again_when_its_audience_value_changes(warehouse):
    rows = members(5)
    write_audience(warehouse, rows)
    destination = MemoryDestination()
    _park(warehouse, destination)

    rows[2]["first_name"] = "Corrected"
    write_audience(warehouse, rows)
    destination.fail = set()
    changed = _sync(warehouse, destination)

    assert _sent(destination, BAD) == 4
    assert (changed.status, changed.succeeded, changed.failed) == ("succeeded", 1, 0)
    assert "parked" not in changed.plan.counts()
    assert destination.held[BAD]["firstname"] == "Corrected"
    assert _failed_row(warehouse, BAD) == ()


def test_a_changed_parked_row_refused_again_starts_counting_from_one(warehouse):
    rows = members(5)
    write_audience(warehouse, rows)
    destination = MemoryDestination()
    _park(warehouse, destination)

    rows[2]["first_name"] = "Still bad"
    write_audience(warehouse, rows)
    again = [_sync(warehouse, destination) for _ in range(2)]

    # Two refusals of the new value: not parked yet, so both runs sent it.
    assert [(r.failed, r.parked) for r in again] == [(1, 0), (1, 0)]
    assert _sent(destination, BAD) == 5
    assert _failed_row(warehouse, BAD)[:2] == (False, 5)


def test_retry_parked_sends_a_parked_row_once_more_and_parks_it_at_its_next_refusal(warehouse):
    write_audience(warehouse, members(5))
    destination = MemoryDestination()
    _park(warehouse, destination)

    retried = _sync(warehouse, destination, retry_parked=True)
    after = _sync(warehouse, destination)

    assert _sent(destination, BAD) == 4
    assert (retried.status, retried.failed, retried.parked) == ("partial", 1, 1)
    assert "parked" not in retried.plan.counts()
    assert after.requests == 0
    assert after.plan.counts()["parked"] == 1


def test_retry_parked_delivers_a_row_the_destination_now_takes(warehouse):
    write_audience(warehouse, members(5))
    destination = MemoryDestination()
    _park(warehouse, destination)

    destination.fail = set()
    retried = _sync(warehouse, destination, retry_parked=True)
    after = _sync(warehouse, destination)

    assert (retried.status, retried.succeeded) == ("succeeded", 1)
    assert BAD in destination.held
    assert (after.status, after.requests) == ("succeeded", 0)
    assert _failed_row(warehouse, BAD) == ()


def test_the_row_attempts_var_sets_how_many_refusals_park_a_row(warehouse):
    write_audience(warehouse, members(5))
    destination = MemoryDestination()
    destination.fail = {BAD}
    limit = {"tessera_sync_max_row_attempts": 1}

    first = _sync(warehouse, destination, dbt_vars=limit)
    second = _sync(warehouse, destination, dbt_vars=limit)

    assert (first.failed, first.parked) == (1, 1)
    assert (second.requests, second.plan.counts()["parked"]) == (0, 1)


def test_failures_that_outlast_the_retries_never_park_a_row(warehouse):
    # The destination never refused these rows: it was down. They go again every run.
    write_audience(warehouse, members(1))
    destination = MemoryDestination()
    outage = []
    for _ in range(4):
        destination.script = [TransientError("503 Service Unavailable")]
        outage.append(_sync(warehouse, destination))
    recovered = _sync(warehouse, destination)

    assert [(r.status, r.failed, r.parked) for r in outage] == [("partial", 1, 0)] * 4
    assert (recovered.status, recovered.succeeded) == ("succeeded", 1)
    assert destination.held.keys() == {"c0000"}


def test_an_invalid_row_attempts_var_is_refused_before_anything_runs(warehouse):
    write_audience(warehouse, members(1))

    with pytest.raises(
        SyncError, match="tessera_sync_max_row_attempts must be a whole number, 1 or more"
    ):
        _sync(warehouse, MemoryDestination(), dbt_vars={"tessera_sync_max_row_attempts": 0})
