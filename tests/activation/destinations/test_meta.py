"""The Meta connector against its emulator: what it sends, and how each answer becomes a
per-row outcome or a whole-request error; then an audience synced through the engine with faults."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from emulators import Faults
from emulators.meta import MetaEmulator
from orchestration.activation.destination import (
    BatchRejected,
    PermanentError,
    PlatformReport,
    RateLimited,
    Record,
    TransientError,
)
from orchestration.activation.destinations.meta import Meta, MetaConfig
from orchestration.activation.engine import RetryPolicy, run_sync
from orchestration.activation.hashing import hash_identifier
from tests.activation.destinations.support import (
    E2E_BATCH,
    E2E_FAULTS,
    TOKEN,
    WHOLE_REQUEST_FAULTS,
    ad_audience,
    ad_audience_changes,
    add,
    make_audience,
    run,
    settle,
    write_ad_audience,
)
from tests.activation.sync_support import (
    Sleeps,
    spec,
)

# The engine runs here on one adapter: the destination, not the warehouse, is under test.
pytestmark = pytest.mark.duckdb_only


def meta_hash(kind: str, value: str) -> str:
    return hash_identifier(kind, value, "meta")


def shopper(key: str, email: str, **fields: str) -> Record:
    """An add as the engine hands it to Meta: identifiers normalised and hashed."""
    hashed = {"email": meta_hash("email", email)}
    for field, value in fields.items():
        hashed[field] = meta_hash(Meta.hashed_identifiers[field], value)
    return add(key, **hashed)


def shoppers(n: int, start: int = 0) -> list[Record]:
    return [shopper(f"c-{i}", f"shopper{i}@example.com") for i in range(start, start + n)]


def meta_for(emulator: MetaEmulator, audience_id: str, total: int = 0, **extra: Any) -> Meta:
    env = {"TESSERA_META_BASE_URL": emulator.base_url, "TESSERA_META_TOKEN": TOKEN}
    destination = Meta(MetaConfig.from_env({"audience_id": audience_id}, env))
    destination.start(run(extra.pop("mode", "upsert"), total, **extra))
    return destination


def sessions_sent(emulator: MetaEmulator) -> list[tuple[str, int, int, bool]]:
    """(method, session_id, batch_seq, last_batch_flag) of every users request, in order."""
    sent = []
    for entry in emulator.log:
        if "/users" in entry.path:
            form = parse_qs(entry.body.decode())
            session = json.loads(form["session"][0])
            sent.append(
                (
                    entry.method,
                    session["session_id"],
                    session["batch_seq"],
                    session["last_batch_flag"],
                )
            )
    return sent


@pytest.fixture
def meta_api() -> Iterator[MetaEmulator]:
    with MetaEmulator(token=TOKEN) as emulator:
        yield emulator


def test_meta_adds_hashed_identifiers_and_meta_holds_exactly_those(meta_api):
    audience_id = make_audience(meta_api)
    destination = meta_for(meta_api, audience_id, total=2)
    destination.check_connection()

    result = destination.write(
        [
            shopper("c-1", " Mary@Example.com", phone="+1 (555) 987-6543", first_name="Mary"),
            shopper("c-2", "john@example.com"),
        ]
    )

    assert [o.succeeded for o in result.outcomes] == [True, True]
    assert meta_api.member_values(audience_id, "EMAIL") == {
        "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
        meta_hash("email", "john@example.com"),
    }
    assert meta_api.member_values(audience_id, "PHONE") == {
        "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e"
    }


def test_meta_refuses_a_plain_text_email_and_the_batch_is_rejected(meta_api):
    audience_id = make_audience(meta_api)

    with pytest.raises(BatchRejected, match="SHA-256"):
        meta_for(meta_api, audience_id).write([*shoppers(2), add("c-9", email="plain@example.com")])
    assert meta_api.audiences[audience_id].members == set()


def test_meta_session_numbers_batches_from_one_and_flags_only_the_run_s_last(meta_api):
    audience_id = make_audience(meta_api)
    destination = meta_for(meta_api, audience_id, total=25)

    for start, size in ((0, 10), (10, 10), (20, 5)):
        destination.write(shoppers(size, start=start))
    destination.finish(True)

    sent = sessions_sent(meta_api)
    assert [(method, seq, last) for method, _, seq, last in sent] == [
        ("POST", 1, False),
        ("POST", 2, False),
        ("POST", 3, True),
    ]
    assert len({session_id for _, session_id, _, _ in sent}) == 1
    assert Meta.max_concurrency == 1
    assert len(meta_api.audiences[audience_id].members) == 25
    assert all(s.finished for s in meta_api.audiences[audience_id].sessions.values())


def test_meta_retry_after_a_timeout_resends_the_same_sequence_number_and_meta_applies_it_once():
    with MetaEmulator(token=TOKEN) as api:
        audience_id = make_audience(api)
        api.faults = Faults(timeout=1.0, timeout_processed=True, timeout_seconds=1.0, limit=1)
        env = {"TESSERA_META_BASE_URL": api.base_url, "TESSERA_META_TOKEN": TOKEN}
        config = MetaConfig.from_env({"audience_id": audience_id, "timeout_seconds": 0.3}, env)
        destination = Meta(config)
        destination.start(run(total=20))
        batch = shoppers(10)

        with pytest.raises(TransientError, match="timed out"):
            destination.write(batch)
        destination.write(batch)
        destination.write(shoppers(10, start=10))

        assert [seq for _, _, seq, _ in sessions_sent(api)] == [1, 1, 2]
        assert api.duplicate_batches == 1
        assert len(api.audiences[audience_id].members) == 20


def test_meta_removals_use_delete_in_their_own_session(meta_api):
    audience_id = make_audience(meta_api)
    meta_for(meta_api, audience_id, total=5).write(shoppers(5))
    destination = meta_for(meta_api, audience_id, total=2)

    result = destination.write([Record(r.key, "remove", r.fields) for r in shoppers(2)])

    assert [o.succeeded for o in result.outcomes] == [True, True]
    assert meta_api.member_values(audience_id, "EMAIL") == {
        meta_hash("email", f"shopper{i}@example.com") for i in (2, 3, 4)
    }
    assert [(method, seq, last) for method, _, seq, last in sessions_sent(meta_api)[1:]] == [
        ("DELETE", 1, True)
    ]


def test_meta_invalid_entries_fail_only_the_rows_meta_names():
    with MetaEmulator(token=TOKEN, reject_unhashed=False) as api:
        audience_id = make_audience(api)
        batch = [*shoppers(2), add("c-bad", email="not-hashed@example.com")]

        result = meta_for(api, audience_id, total=3).write(batch)

    assert [o.succeeded for o in result.outcomes] == [True, True, False]
    assert "not a SHA-256 hash" in result.outcomes[2].error
    assert len(api.audiences[audience_id].members) == 2


def test_meta_row_failures_injected_by_the_api_are_matched_to_their_rows():
    with MetaEmulator(token=TOKEN) as api:
        audience_id = make_audience(api)
        api.faults = Faults(partial_failure=0.2, seed=5)
        result = meta_for(api, audience_id, total=100).write(shoppers(100))

    assert len(result.failed) == api.injected_faults["partial_failure"] > 0
    assert len(result.succeeded) == len(api.audiences[audience_id].members)


def test_meta_ten_thousand_rows_pass_and_more_are_refused(meta_api):
    audience_id = make_audience(meta_api)
    destination = meta_for(meta_api, audience_id, total=20_001)
    rows = [add(f"c-{i}", email=hashlib.sha256(str(i).encode()).hexdigest()) for i in range(10_001)]

    assert Meta.max_batch_size == 10_000
    assert len(destination.write(rows[:10_000]).succeeded) == 10_000
    with pytest.raises(BatchRejected, match="at most 10000 users"):
        destination.write(rows)


def test_meta_throttling_answer_is_rate_limited_with_retry_after():
    with MetaEmulator(token=TOKEN, faults=Faults(rate_limit=1.0, retry_after=120)) as api:
        audience_id = "1"
        with pytest.raises(RateLimited, match="code 80003") as raised:
            meta_for(api, audience_id).write(shoppers(1))

    assert raised.value.retry_after == 120.0


def test_meta_wrong_token_and_unknown_audience_are_permanent(meta_api):
    audience_id = make_audience(meta_api)
    env = {"TESSERA_META_BASE_URL": meta_api.base_url, "TESSERA_META_TOKEN": "bad-token-42"}
    wrong = Meta(MetaConfig.from_env({"audience_id": audience_id}, env))

    with pytest.raises(PermanentError, match="TESSERA_META_TOKEN") as raised:
        wrong.check_connection()
    with pytest.raises(PermanentError, match="code 190"):
        wrong.write(shoppers(1))
    assert "bad-token-42" not in str(raised.value)
    with pytest.raises(PermanentError, match=r"audience 999 \(option audience_id\)"):
        meta_for(meta_api, "999").check_connection()
    with pytest.raises(PermanentError, match="code 100/33"):
        meta_for(meta_api, "999").write(shoppers(1))


def test_meta_mirror_full_resync_replaces_the_audience_with_what_the_run_sent(meta_api):
    audience_id = make_audience(meta_api)
    meta_for(meta_api, audience_id, total=5).write(shoppers(5))
    destination = meta_for(meta_api, audience_id, total=4, mode="mirror", full_resync=True)

    destination.write(shoppers(2, start=3))
    replacing = meta_api.audiences[audience_id].replace_session is not None
    destination.write(shoppers(2, start=5))

    assert replacing
    assert meta_api.member_values(audience_id, "EMAIL") == {
        meta_hash("email", f"shopper{i}@example.com") for i in (3, 4, 5, 6)
    }
    assert meta_api.request_count(f"/v23.0/{audience_id}/usersreplace") == 2


class SmallBatchMeta(Meta):
    max_batch_size = E2E_BATCH


def test_meta_audience_synced_through_the_engine_with_faults_equals_the_audience(warehouse):
    rows = ad_audience()
    with MetaEmulator(token=TOKEN) as api:
        audience_id = make_audience(api)
        api.faults = E2E_FAULTS.model_copy(update={"paths": (f"/v23.0/{audience_id}/users",)})
        env = {
            "TESSERA_META_BASE_URL": api.base_url,
            "TESSERA_META_TOKEN": TOKEN,
            "TESSERA_META_TIMEOUT_SECONDS": "0.5",
        }
        sync = spec(
            destination="meta",
            mode="mirror",
            fields={"email": "email"},
            options={"audience_id": audience_id},
        )

        def expected_members(rows) -> set[tuple[tuple[str, str], ...]]:
            # Meta's rules keep the dots and +tag that Google's drop.
            return {
                (("EMAIL", meta_hash("email", r["email"])),)
                for r in rows
                if r["has_consent_advertising"]
            }

        write_ad_audience(warehouse, rows)
        first = settle(sync, warehouse, SmallBatchMeta, env)
        assert api.audiences[audience_id].members == expected_members(rows)

        rows = ad_audience_changes(rows)
        write_ad_audience(warehouse, rows)
        settle(sync, warehouse, SmallBatchMeta, env)
        assert api.audiences[audience_id].members == expected_members(rows)
        assert len(expected_members(rows)) == 225 - 18 + 27

        injected = dict(api.injected_faults)
        api.set_faults(rate_limit=0, server_error=0, timeout=0, partial_failure=0)
        api.clear_log()
        unchanged = settle(sync, warehouse, SmallBatchMeta, env)
        sent = [(entry.method, entry.path) for entry in api.log]

    assert injected["partial_failure"] > 0
    assert sum(injected.get(kind, 0) for kind in WHOLE_REQUEST_FAULTS) > 0, injected
    assert len(first) > 1
    assert unchanged[0].requests == 0
    assert sent == [("GET", f"/v23.0/{audience_id}")]


def test_meta_throttling_without_retry_after_waits_the_usage_header_s_minutes():
    class UsageHeaderOnly(MetaEmulator):
        def error_throttled(self, request, retry_after):
            response = super().error_throttled(request, retry_after)
            del response.headers["Retry-After"]
            return response

    with UsageHeaderOnly(token=TOKEN) as api:
        audience_id = make_audience(api)
        api.faults = Faults(rate_limit=1.0, retry_after=150)
        with pytest.raises(RateLimited) as raised:
            meta_for(api, audience_id).write(shoppers(1))

    # estimated_time_to_regain_access is whole minutes: 150 s -> 3 min.
    assert raised.value.retry_after == 180.0


def test_meta_retry_of_a_batch_that_landed_with_invalid_rows_sends_every_row_again():
    # What broke: a row that failed in a timed-out first delivery was reported succeeded,
    # because the retry's answer (not applied again) named other rows or none.
    with MetaEmulator(token=TOKEN, reject_unhashed=False) as api:
        audience_id = make_audience(api)
        api.faults = Faults(timeout=1.0, timeout_processed=True, timeout_seconds=1.0, limit=1)
        env = {"TESSERA_META_BASE_URL": api.base_url, "TESSERA_META_TOKEN": TOKEN}
        destination = Meta(
            MetaConfig.from_env({"audience_id": audience_id, "timeout_seconds": 0.3}, env)
        )
        destination.start(run(total=6))
        batch = [*shoppers(2), add("c-bad", email="not-hashed@example.com")]

        with pytest.raises(TransientError):
            destination.write(batch)
        retried = destination.write(batch)

    assert api.duplicate_batches == 1
    assert [o.succeeded for o in retried.outcomes] == [False, False, False]
    assert "1 rows of this batch were invalid" in retried.outcomes[0].error
    assert len(api.audiences[audience_id].members) == 2


def test_meta_retry_of_a_last_batch_that_landed_and_closed_the_session_sends_it_again():
    with MetaEmulator(token=TOKEN) as api:
        audience_id = make_audience(api)
        api.faults = Faults(timeout=1.0, timeout_processed=True, timeout_seconds=1.0, limit=1)
        env = {"TESSERA_META_BASE_URL": api.base_url, "TESSERA_META_TOKEN": TOKEN}
        config = MetaConfig.from_env({"audience_id": audience_id, "timeout_seconds": 0.3}, env)
        destination = Meta(config)
        destination.start(run(total=2))

        with pytest.raises(TransientError):
            destination.write(shoppers(2))
        retried = destination.write(shoppers(2))

    assert [o.error for o in retried.outcomes] == [
        "Meta took this batch but its answer was lost"
    ] * 2
    assert len(api.audiences[audience_id].members) == 2


def test_meta_batches_after_the_flagged_last_one_go_to_a_new_session(meta_api):
    # What broke: the engine resends a killed run's batches before it knows the run's total
    # (0), so each resend looks like the last; the next batch reused the finished session's id.
    audience_id = make_audience(meta_api)
    destination = meta_for(meta_api, audience_id, total=0)

    destination.write(shoppers(2))
    destination.write(shoppers(2, start=2))

    sent = sessions_sent(meta_api)
    assert [(seq, last) for _, _, seq, last in sent] == [(1, True), (1, True)]
    assert sent[0][1] != sent[1][1]
    assert len(meta_api.audiences[audience_id].members) == 4


def meta_sync(api: MetaEmulator, warehouse, audience_id: str, rows: list[dict[str, Any]]):
    """One mirror run of ``rows`` (every one consenting) to the audience."""
    write_ad_audience(warehouse, [{**row, "has_consent_advertising": True} for row in rows])
    env = {"TESSERA_META_BASE_URL": api.base_url, "TESSERA_META_TOKEN": TOKEN}
    sync = spec(
        destination="meta",
        mode="mirror",
        fields={"email": "email"},
        options={"audience_id": audience_id},
    )
    return run_sync(
        sync,
        warehouse,
        {"meta": Meta},
        env=env,
        policy=RetryPolicy(sleep=Sleeps()),
        dbt_vars={"tessera_sync_max_delete_fraction": 1},
    )


def platform_reports(warehouse) -> list[tuple]:
    return warehouse.query(
        "select run_id, sync_name, destination, received, invalid, match_rate_low, "
        "match_rate_high, detail from activation.sync_platform_reports order by reported_at"
    )


def test_meta_s_received_and_invalid_counts_for_the_run_are_stored(warehouse):
    with MetaEmulator(token=TOKEN) as api:
        audience_id = make_audience(api)
        api.faults = Faults(partial_failure=0.1, seed=5)
        result = meta_sync(api, warehouse, audience_id, ad_audience(100))
        invalid = api.injected_faults["partial_failure"]

    assert 0 < invalid < 100
    assert (result.status, result.failed) == ("partial", invalid)
    assert platform_reports(warehouse) == [
        (
            result.run_id,
            "test_sync",
            "meta",
            100,
            invalid,
            None,
            None,
            f"num_received=100 num_invalid_entries={invalid}",
        )
    ]


def test_meta_report_of_a_run_with_removals_and_additions_sums_both_sessions(warehouse):
    rows = ad_audience(100)
    with MetaEmulator(token=TOKEN) as api:
        audience_id = make_audience(api)
        first = meta_sync(api, warehouse, audience_id, rows)
        # Twenty leave (a removal session), thirty join (an upload session).
        second = meta_sync(api, warehouse, audience_id, ad_audience_changes(rows))
        unchanged = meta_sync(api, warehouse, audience_id, ad_audience_changes(rows))

    assert second.plan.counts()["removes"] == 20
    assert second.plan.counts()["adds"] == 30
    assert unchanged.records_sent == 0
    assert platform_reports(warehouse) == [
        (
            first.run_id,
            "test_sync",
            "meta",
            100,
            0,
            None,
            None,
            "num_received=100 num_invalid_entries=0",
        ),
        (
            second.run_id,
            "test_sync",
            "meta",
            50,
            0,
            None,
            None,
            "num_received=50 num_invalid_entries=0",
        ),
    ]


def test_meta_report_counts_a_finished_session_and_the_one_that_followed_it(meta_api):
    audience_id = make_audience(meta_api)
    destination = meta_for(meta_api, audience_id, total=0)

    destination.write(shoppers(2))
    destination.write(shoppers(3, start=2))

    assert len({session_id for _, session_id, _, _ in sessions_sent(meta_api)}) == 2
    assert destination.platform_report() == PlatformReport(
        received=5, invalid=0, detail="num_received=5 num_invalid_entries=0"
    )


def test_meta_reports_nothing_before_meta_answered(meta_api):
    assert meta_for(meta_api, make_audience(meta_api)).platform_report() is None
