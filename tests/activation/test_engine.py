"""The sync engine on small audience tables: diffing, modes, consent, erasure, guards, retries,
splitting, the state and logs it keeps, and resuming after a killed run."""

from __future__ import annotations

import hashlib
import logging
from typing import ClassVar

import pytest

from orchestration.activation import engine
from orchestration.activation.destination import (
    PermanentError,
    PlatformReport,
    RateLimited,
    TransientError,
)
from orchestration.activation.engine import RetryPolicy, run_sync
from orchestration.privacy import mask
from tests.activation.sync_support import (
    MemoryDestination,
    Sleeps,
    expected,
    members,
    spec,
    write_audience,
    write_erasures,
)

pytestmark = pytest.mark.integration


def _sync(warehouse, destination, sync=None, **options):
    options.setdefault("policy", Sleeps().policy())
    return run_sync(sync or spec(), warehouse, {}, destination=destination, **options)


def test_first_run_sends_every_member_and_an_unchanged_resync_sends_nothing(warehouse):
    rows = members(10)
    write_audience(warehouse, rows)
    destination = MemoryDestination()

    first = _sync(warehouse, destination)
    second = _sync(warehouse, destination)

    assert (first.status, first.succeeded, first.requests) == ("succeeded", 10, 3)
    assert destination.held == expected(rows)
    assert (second.status, second.records_sent, second.requests) == ("succeeded", 0, 0)
    assert second.plan.counts() == {
        "adds": 0,
        "changes": 0,
        "removes": 0,
        "erasures": 0,
        "resends": 0,
    }


def test_a_changed_field_is_sent_as_one_change_and_nothing_else(warehouse):
    rows = members(10)
    write_audience(warehouse, rows)
    destination = MemoryDestination()
    _sync(warehouse, destination)
    rows[3]["email"] = "new@mail.com"
    write_audience(warehouse, rows)

    result = _sync(warehouse, destination)

    assert destination.requests[-1][1] == [("c0003", "change")]
    assert result.records_sent == 1
    assert destination.held["c0003"]["email"] == "new@mail.com"


def test_mirror_removes_exactly_the_members_who_left(warehouse):
    rows = members(10)
    write_audience(warehouse, rows)
    destination = MemoryDestination()
    sync = spec(mode="mirror")
    _sync(warehouse, destination, sync)
    staying = [row for row in rows if row["customer_id"] not in ("c0002", "c0007")]
    write_audience(warehouse, [*staying, *members(1, start=10)])

    result = _sync(warehouse, destination, sync)

    removed = sorted(
        key for _, batch in destination.requests for key, op in batch if op == "remove"
    )
    assert removed == ["c0002", "c0007"]
    assert result.plan.counts()["adds"] == 1
    assert destination.held == expected([*staying, *members(1, start=10)])


def test_upsert_without_delete_keeps_members_who_left_and_remove_deletes_them(
    empty_duckdb_warehouse,
):
    rows = members(6)
    write_audience(empty_duckdb_warehouse, rows)
    keeping, removing = MemoryDestination(), MemoryDestination()
    keep_sync, remove_sync = spec("keeps"), spec("removes", delete="remove")
    _sync(empty_duckdb_warehouse, keeping, keep_sync)
    _sync(empty_duckdb_warehouse, removing, remove_sync)
    write_audience(empty_duckdb_warehouse, rows[:5])

    _sync(empty_duckdb_warehouse, keeping, keep_sync)
    _sync(empty_duckdb_warehouse, removing, remove_sync)

    assert sorted(keeping.held) == [f"c{n:04d}" for n in range(6)]
    assert sorted(removing.held) == [f"c{n:04d}" for n in range(5)]


def test_insert_sends_new_keys_only_and_update_sends_every_key_as_a_change(empty_duckdb_warehouse):
    rows = members(3)
    write_audience(empty_duckdb_warehouse, rows)
    inserting, updating = MemoryDestination(), MemoryDestination()
    _sync(empty_duckdb_warehouse, inserting, spec("inserts", mode="insert"))
    _sync(empty_duckdb_warehouse, updating, spec("updates", mode="update"))
    rows[0]["email"] = "changed@mail.com"
    write_audience(empty_duckdb_warehouse, [*rows, *members(1, start=3)])

    _sync(empty_duckdb_warehouse, inserting, spec("inserts", mode="insert"))
    _sync(empty_duckdb_warehouse, updating, spec("updates", mode="update"))

    assert inserting.requests[-1][1] == [("c0003", "add")]
    assert inserting.held["c0000"]["email"] == "user0@mail.com"
    assert {op for _, batch in updating.requests for _, op in batch} == {"change"}
    assert updating.requests[-1][1] == [("c0000", "change"), ("c0003", "change")]


class ConsentedDestination(MemoryDestination):
    consent_purpose = "email_marketing"


def test_only_consented_members_are_sent_and_a_withdrawal_removes_from_a_mirror(warehouse):
    rows = members(6)
    rows[1]["has_consent_email_marketing"] = False
    rows[2]["has_consent_email_marketing"] = None
    write_audience(warehouse, rows)
    destination = ConsentedDestination()
    sync = spec(mode="mirror")

    _sync(warehouse, destination, sync)
    assert sorted(destination.held) == ["c0000", "c0003", "c0004", "c0005"]

    rows[4]["has_consent_email_marketing"] = False
    write_audience(warehouse, rows)
    _sync(warehouse, destination, sync, dbt_vars={"tessera_sync_max_delete_fraction": 0.5})
    assert sorted(destination.held) == ["c0000", "c0003", "c0005"]


def test_an_erased_customer_is_removed_whatever_the_mode_and_never_sent_again(warehouse):
    rows = members(5)
    write_audience(warehouse, rows)
    destination = MemoryDestination()
    sync = spec(mode="insert")
    _sync(warehouse, destination, sync)
    write_erasures(warehouse, ["c0001", "c0404"])

    result = _sync(warehouse, destination, sync)
    again = _sync(warehouse, destination, sync)

    assert result.plan.counts()["erasures"] == 1
    assert destination.requests[-1][1] == [("c0001", "remove")]
    assert sorted(destination.held) == ["c0000", "c0002", "c0003", "c0004"]
    assert again.records_sent == 0


def test_a_full_resync_sends_every_member_again_and_removes_only_the_erased(warehouse):
    rows = members(6)
    write_audience(warehouse, rows)
    destination = MemoryDestination()
    sync = spec(mode="mirror")
    _sync(warehouse, destination, sync)
    del destination.held["c0003"]  # lost by the destination: an ordinary run cannot know
    write_audience(warehouse, rows[:5])  # c0005 left
    write_erasures(warehouse, ["c0004"])
    ordinary_plan = _sync(warehouse, destination, sync, dry_run=True).plan

    resync = _sync(warehouse, destination, sync, full_resync=True)
    requests = len(destination.requests)
    after = _sync(warehouse, destination, sync)

    assert ordinary_plan.counts()["adds"] == 0
    assert resync.plan.counts() == {
        "adds": 4,
        "changes": 0,
        "removes": 0,
        "erasures": 1,
        "resends": 0,
        "replaced": 0,
    }
    assert (resync.status, resync.succeeded) == ("succeeded", 5)
    # The leaver is kept on a full resync and removed by the next ordinary mirror run.
    assert sorted(destination.held) == ["c0000", "c0001", "c0002", "c0003"]
    assert [batch for _, batch in destination.requests[requests:]] == [[("c0005", "remove")]]
    assert after.plan.counts()["removes"] == 1
    runs = warehouse.query(
        "select full_resync from activation.sync_runs where run_id in "
        f"('{resync.run_id}', '{after.run_id}') order by started_at"
    )
    assert runs == [(True,), (False,)]


class ReplacingDestination(MemoryDestination):
    """Like Meta's usersreplace: a full resync of a mirror leaves exactly the records it sent."""

    replaces_on_full_resync = True

    def start(self, run):
        self.replacing = run.full_resync and run.mode == "mirror"
        self.sent = set()

    def write(self, batch):
        self.sent |= {record.key for record in batch if record.operation != "remove"}
        return super().write(batch)

    def finish(self, succeeded):
        if self.replacing and succeeded:
            self.held = {key: fields for key, fields in self.held.items() if key in self.sent}


def test_a_replacing_full_resync_forgets_the_leavers_within_the_delete_guard(
    empty_duckdb_warehouse,
):
    rows = members(10)
    write_audience(empty_duckdb_warehouse, rows)
    destination = ReplacingDestination()
    sync = spec(mode="mirror")
    _sync(empty_duckdb_warehouse, destination, sync)
    write_audience(empty_duckdb_warehouse, rows[:7])

    guarded = _sync(empty_duckdb_warehouse, destination, sync, full_resync=True)
    forced = _sync(empty_duckdb_warehouse, destination, sync, full_resync=True, force=True)
    state = empty_duckdb_warehouse.query("select record_key from activation.sync_state order by 1")
    after = _sync(empty_duckdb_warehouse, destination, sync)

    assert guarded.status == "aborted"
    assert "3 removals are 30% of the 10 records" in guarded.error
    assert forced.plan.counts()["adds"] == 7
    assert forced.plan.replaced == ["c0007", "c0008", "c0009"]
    assert not any(op == "remove" for _, batch in destination.requests for _, op in batch)
    assert sorted(destination.held) == [f"c{n:04d}" for n in range(7)]
    assert [key for (key,) in state] == [f"c{n:04d}" for n in range(7)]
    assert (after.status, after.requests) == ("succeeded", 0)


class AddOnlyDestination(MemoryDestination):
    supported_modes = frozenset({"upsert", "insert"})


def test_an_erasure_a_destination_cannot_remove_is_logged_as_a_failed_row(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, members(3))
    destination = AddOnlyDestination()
    _sync(empty_duckdb_warehouse, destination)
    write_erasures(empty_duckdb_warehouse, ["c0002"])

    result = _sync(empty_duckdb_warehouse, destination)

    assert (result.status, result.failed, result.records_sent) == ("partial", 1, 0)
    failed = empty_duckdb_warehouse.query(
        "select record_key, operation, error from activation.sync_failed_rows"
    )
    assert len(failed) == 1
    assert failed[0][:2] == ("c0002", "remove")
    assert "cannot remove" in failed[0][2]


def test_an_empty_audience_aborts_a_mirror_unless_forced(warehouse):
    write_audience(warehouse, members(4))
    destination = MemoryDestination()
    sync = spec(mode="mirror")
    _sync(warehouse, destination, sync)
    write_audience(warehouse, [])

    aborted = _sync(warehouse, destination, sync)
    forced = _sync(warehouse, destination, sync, force=True)

    assert aborted.status == "aborted"
    assert "empty" in aborted.error
    assert forced.status == "succeeded"
    assert destination.held == {}
    statuses = warehouse.query("select status from activation.sync_runs order by started_at")
    assert [status for (status,) in statuses] == ["succeeded", "aborted", "succeeded"]


def test_removals_above_the_delete_fraction_abort_unless_forced(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, members(10))
    destination = MemoryDestination()
    sync = spec(mode="mirror")
    _sync(empty_duckdb_warehouse, destination, sync)
    write_audience(empty_duckdb_warehouse, members(7))
    limit = {"tessera_sync_max_delete_fraction": 0.25}

    aborted = _sync(empty_duckdb_warehouse, destination, sync, dbt_vars=limit)
    allowed = _sync(
        empty_duckdb_warehouse, destination, sync, dbt_vars={**limit, "x": 1}, force=True
    )

    assert aborted.status == "aborted"
    assert "3 removals are 30% of the 10 records" in aborted.error
    assert len(destination.held) == 7
    assert allowed.succeeded == 3


def test_a_delete_fraction_that_is_not_a_fraction_names_the_var(empty_duckdb_warehouse):
    with pytest.raises(engine.SyncError, match="tessera_sync_max_delete_fraction must be"):
        engine.max_delete_fraction({"tessera_sync_max_delete_fraction": 2})


def test_a_dry_run_plans_adds_changes_removes_with_samples_and_sends_nothing(
    empty_duckdb_warehouse,
):
    rows = members(8)
    write_audience(empty_duckdb_warehouse, rows)
    destination = MemoryDestination()
    sync = spec(mode="mirror")
    _sync(empty_duckdb_warehouse, destination, sync)
    rows[0]["first_name"] = "Renamed"
    write_audience(empty_duckdb_warehouse, [*rows[:7], *members(2, start=8)])
    sent = destination.applied()

    result = _sync(empty_duckdb_warehouse, destination, sync, dry_run=True)

    assert destination.applied() == sent
    assert result.status == "dry_run"
    assert result.plan.counts() == {
        "adds": 2,
        "changes": 1,
        "removes": 1,
        "erasures": 0,
        "resends": 0,
    }
    text = result.plan.format()
    # The samples mask personal values (orchestration.privacy.mask).
    assert (
        f'change c0000  {{"email": "{mask("user0@mail.com")}", "firstname": "{mask("Renamed")}"}}'
        in text
    )
    assert "remove c0007" in text
    assert "add    c0008" in text


def test_throttling_waits_retry_after_without_spending_the_retry_budget(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, members(2))
    destination = MemoryDestination()
    destination.script = [RateLimited("429", retry_after=7.0)] * 4 + [TransientError("503")]
    sleeps = Sleeps()

    result = _sync(empty_duckdb_warehouse, destination, policy=sleeps.policy(max_retries=1))

    assert (result.status, result.succeeded, result.rate_limited, result.retries) == (
        "succeeded",
        2,
        4,
        1,
    )
    # Four waits of Retry-After, then one backoff of at most base_delay.
    assert sleeps[:4] == [7.0] * 4
    assert len(sleeps) == 5
    assert 0.25 <= sleeps[4] <= 0.5


def test_transient_errors_back_off_exponentially_then_fail_the_rows_for_the_next_run(
    empty_duckdb_warehouse,
):
    write_audience(empty_duckdb_warehouse, members(2))
    destination = MemoryDestination()
    destination.script = [TransientError("503")] * 4
    sleeps = Sleeps()
    policy = sleeps.policy(max_retries=3, base_delay=1.0, jitter=lambda: 1.0)

    failed = _sync(empty_duckdb_warehouse, destination, policy=policy)
    retried = _sync(empty_duckdb_warehouse, destination, policy=policy)

    assert sleeps == [1.0, 2.0, 4.0]
    assert (failed.status, failed.failed, failed.requests) == ("partial", 2, 4)
    assert retried.plan.counts()["adds"] == 2
    assert (retried.succeeded, sorted(destination.held)) == (2, ["c0000", "c0001"])
    assert empty_duckdb_warehouse.query("select count(*) from activation.sync_failed_rows") == [
        (0,)
    ]


def test_backoff_is_capped_and_half_of_it_is_jitter():
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter=lambda: 0.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 5.0]


def test_a_rejected_batch_is_split_until_the_bad_row_is_isolated(warehouse):
    write_audience(warehouse, members(4))
    destination = MemoryDestination()
    destination.reject = {"c0002"}

    result = _sync(warehouse, destination)

    assert (result.succeeded, result.failed) == (3, 1)
    # 4 rows refused, then halves [0, 1] ok and [2, 3] refused, then [2] refused and [3] ok.
    assert result.requests == 5
    assert sorted(destination.held) == ["c0000", "c0001", "c0003"]
    failed = warehouse.query("select record_key, error from activation.sync_failed_rows")
    assert failed == [("c0002", "400: a row of this batch is invalid")]


def test_failed_rows_are_recorded_and_retried_next_run_until_they_succeed(warehouse):
    write_audience(warehouse, members(6))
    destination = MemoryDestination()
    destination.fail = {"c0001", "c0004"}

    first = _sync(warehouse, destination)
    second = _sync(warehouse, destination)
    destination.fail = set()
    third = _sync(warehouse, destination)

    assert (first.succeeded, first.failed) == (4, 2)
    assert (second.records_sent, second.failed) == (2, 2)
    assert (third.records_sent, third.succeeded) == (2, 2)
    state = warehouse.query(
        "select status, count(*), max(attempts) from activation.sync_state group by status"
    )
    assert state == [("synced", 6, 0)]
    log = warehouse.query(
        "select status, count(*) from activation.sync_row_log group by status order by status"
    )
    assert log == [("failed", 4), ("succeeded", 6)]


def test_a_failed_change_that_is_no_longer_wanted_leaves_no_failure_behind(empty_duckdb_warehouse):
    rows = members(3)
    write_audience(empty_duckdb_warehouse, rows)
    destination = MemoryDestination()
    _sync(empty_duckdb_warehouse, destination)
    changed = [dict(row) for row in rows]
    changed[0]["email"] = "bad@mail"
    changed[1]["email"] = "also-bad@mail"
    write_audience(empty_duckdb_warehouse, changed)
    destination.fail = {"c0000", "c0001"}
    _sync(empty_duckdb_warehouse, destination)
    # c0000's value goes back to what the destination holds; c0001 leaves (delete: none).
    write_audience(empty_duckdb_warehouse, [rows[0], rows[2]])

    settled = _sync(empty_duckdb_warehouse, destination)

    assert settled.records_sent == 0
    assert empty_duckdb_warehouse.query("select count(*) from activation.sync_failed_rows") == [
        (0,)
    ]
    assert empty_duckdb_warehouse.query(
        "select status, count(*) from activation.sync_state group by status"
    ) == [("synced", 3)]


class OneAtATime(MemoryDestination):
    max_concurrency: ClassVar[int] = 1


def test_a_permanent_error_stops_the_run_and_the_next_run_sends_the_rest(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, members(16))
    destination = OneAtATime()
    destination.script = [None, PermanentError("401: token revoked")]

    stopped = _sync(empty_duckdb_warehouse, destination)
    held_after_stop = len(destination.held)
    resumed = _sync(empty_duckdb_warehouse, destination)

    assert stopped.status == "failed"
    assert "token revoked" in stopped.error
    # The refused batch and the two not yet started stay for the next run.
    assert held_after_stop == 4
    assert resumed.status == "succeeded"
    assert destination.held == expected(members(16))
    keys = [key for _, batch in destination.requests for key, _ in batch]
    assert len(keys) == len(set(keys)) == 16


def test_batches_respect_the_batch_size_and_the_concurrency_bound(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, members(40))
    destination = MemoryDestination(delay=0.02)

    result = _sync(empty_duckdb_warehouse, destination)

    assert result.requests == 10
    assert max(len(batch) for _, batch in destination.requests) == 4
    assert destination.most_in_flight == 2


def test_every_run_and_row_outcome_is_recorded(warehouse):
    write_audience(warehouse, members(5))
    destination = MemoryDestination()
    destination.fail = {"c0003"}

    result = _sync(warehouse, destination)

    run = warehouse.query(
        "select status, planned_adds, succeeded, failed, requests from activation.sync_runs"
    )
    assert run == [("partial", 5, 4, 1, 2)]
    log = warehouse.query(
        "select record_key, operation, status from activation.sync_row_log "
        f"where run_id = '{result.run_id}' order by record_key"
    )
    assert log == [
        ("c0000", "add", "succeeded"),
        ("c0001", "add", "succeeded"),
        ("c0002", "add", "succeeded"),
        ("c0003", "add", "failed"),
        ("c0004", "add", "succeeded"),
    ]


class ReportingDestination(MemoryDestination):
    """Reports what it applied, as an ad platform reports what it received."""

    def __init__(self, report_error: Exception | None = None) -> None:
        super().__init__()
        self.report_error = report_error
        self.reports_asked = 0

    def platform_report(self) -> PlatformReport:
        self.reports_asked += 1
        if self.report_error is not None:
            raise self.report_error
        return PlatformReport(
            received=self.applied(),
            invalid=0,
            match_rate_low=0.41,
            match_rate_high=0.5,
            detail="MATCH_RATE_RANGE_41_TO_50",
        )


def test_a_run_that_sent_rows_stores_the_platform_s_report_and_one_that_sent_none_does_not(
    warehouse,
):
    write_audience(warehouse, members(6))
    destination = ReportingDestination()

    first = _sync(warehouse, destination)
    unchanged = _sync(warehouse, destination)
    _sync(warehouse, destination, dry_run=True)

    assert (first.status, unchanged.records_sent) == ("succeeded", 0)
    assert destination.reports_asked == 1
    reports = warehouse.query(
        "select run_id, sync_name, destination, received, invalid, match_rate_low, "
        "match_rate_high, detail from activation.sync_platform_reports"
    )
    assert reports == [
        (first.run_id, "test_sync", "memory", 6, 0, 0.41, 0.5, "MATCH_RATE_RANGE_41_TO_50")
    ]
    in_run = warehouse.query(
        "select count(*) from activation.sync_platform_reports as reports "
        "inner join activation.sync_runs as runs on runs.run_id = reports.run_id "
        "where reports.reported_at between runs.started_at and runs.finished_at"
    )
    assert in_run == [(1,)]


def test_a_platform_report_that_fails_leaves_the_run_succeeded_and_logs_no_personal_value(
    warehouse, caplog
):
    rows = members(4)
    write_audience(warehouse, rows)
    destination = ReportingDestination(RuntimeError(f"no status for {rows[0]['email']}"))

    with caplog.at_level(logging.WARNING, logger="tessera.activation"):
        result = _sync(warehouse, destination)

    assert (result.status, result.succeeded, result.error) == ("succeeded", 4, None)
    assert destination.reports_asked == 1
    assert warehouse.query("select count(*) from activation.sync_platform_reports") == [(0,)]
    assert "no platform report from memory (RuntimeError)" in caplog.text
    assert rows[0]["email"] not in caplog.text


class Killed(BaseException):
    """Stands for the process dying: not an Exception, so nothing handles it."""


def test_a_run_killed_mid_request_resends_what_it_had_not_recorded_under_the_same_ids(
    warehouse,
):
    rows = members(12)
    write_audience(warehouse, rows)
    destination = MemoryDestination()
    destination.script = [None, Killed()]

    with pytest.raises(Killed):
        _sync(warehouse, destination)
    delivered = len(destination.held)
    unrecorded = warehouse.query(
        "select count(*) from activation.sync_state where inflight_batch is not null"
    )[0][0]
    sent_before = len(destination.requests)
    resumed = _sync(warehouse, destination)

    # The killed request, and any not sent yet, wait in the state; nothing else does.
    assert unrecorded == 12 - delivered >= 4
    assert resumed.plan.resends == unrecorded
    assert resumed.plan.counts()["adds"] == 0
    [(killed_id, killed_keys)] = destination.faulted
    assert (killed_id, [(key, "add") for key in killed_keys]) in destination.requests[sent_before:]
    assert destination.held == expected(rows)
    keys = [key for _, batch in destination.requests for key, _ in batch]
    assert len(keys) == len(set(keys)) == 12
    statuses = warehouse.query("select status from activation.sync_runs order by started_at")
    assert [status for (status,) in statuses] == ["interrupted", "succeeded"]


def test_a_customer_erased_after_a_killed_run_is_resent_as_a_remove(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, members(3))
    destination = MemoryDestination()
    destination.script = [Killed()]
    with pytest.raises(Killed):
        _sync(empty_duckdb_warehouse, destination)
    write_erasures(empty_duckdb_warehouse, ["c0001"])

    resumed = _sync(empty_duckdb_warehouse, destination)

    assert resumed.plan.resends == 3
    # One operation per request: the planned adds, and the erasure's remove apart.
    killed_id = destination.faulted[0][0]
    assert sorted(destination.requests) == [
        (killed_id, [("c0000", "add"), ("c0002", "add")]),
        (killed_id, [("c0001", "remove")]),
    ]
    assert sorted(destination.held) == ["c0000", "c0002"]
    assert empty_duckdb_warehouse.query(
        "select record_key from activation.sync_state order by 1"
    ) == [
        ("c0000",),
        ("c0002",),
    ]


def test_a_key_repeated_in_the_audience_fails_the_sync_naming_it(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, [*members(3), *members(1, start=1)])

    result = _sync(empty_duckdb_warehouse, MemoryDestination())

    assert result.status == "failed"
    assert "key customer_id is not unique" in result.error
    assert "'c0001'" in result.error


class HashingDestination(MemoryDestination):
    hashed_identifiers: ClassVar[dict[str, str]] = {"email": "email"}
    normaliser = "meta"


def test_identifier_fields_reach_a_hashing_destination_normalised_and_hashed(
    empty_duckdb_warehouse,
):
    write_audience(empty_duckdb_warehouse, members(1, email=" User@Mail.com "))
    destination = HashingDestination()

    _sync(empty_duckdb_warehouse, destination)

    digest = hashlib.sha256(b"user@mail.com").hexdigest()
    assert destination.held["c0000"] == {"email": digest, "firstname": "Name0"}
