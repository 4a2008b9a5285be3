"""The Google connector against its emulator: what it sends, and how each answer becomes a
per-row outcome or a whole-request error; then a list synced through the engine with faults."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from emulators import Faults
from emulators.google import GoogleEmulator
from orchestration.activation.destination import (
    BatchRejected,
    PermanentError,
    PlatformReport,
    RateLimited,
    Record,
    TransientError,
)
from orchestration.activation.destinations.google import (
    Google,
    GoogleConfig,
    match_rate_bounds,
    request_status_report,
)
from orchestration.activation.engine import RetryPolicy, run_sync
from orchestration.activation.hashing import hash_identifier
from tests.activation.destinations.support import (
    ACCOUNT,
    E2E_BATCH,
    E2E_FAULTS,
    TOKEN,
    USER_LIST,
    WHOLE_REQUEST_FAULTS,
    ad_audience,
    ad_audience_changes,
    add,
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


def google_hash(kind: str, value: str) -> str:
    return hash_identifier(kind, value, "google")


def customer(key: str, email: str | None = None, **fields: str) -> Record:
    """An add as the engine hands it to Google: identifiers normalised and hashed."""
    hashed: dict[str, Any] = {"email": google_hash("email", email)} if email else {}
    for name, value in fields.items():
        kind = Google.hashed_identifiers.get(name)
        hashed[name] = google_hash(kind, value) if kind else value
    return add(key, **hashed)


def customers(n: int, start: int = 0) -> list[Record]:
    return [customer(f"c-{i}", f"customer{i}@example.com") for i in range(start, start + n)]


def google_for(emulator: GoogleEmulator, **options: Any) -> Google:
    env = {"TESSERA_GOOGLE_BASE_URL": emulator.base_url, "TESSERA_GOOGLE_TOKEN": TOKEN}
    settings = {"operating_account_id": "123-456-7890", "user_list_id": USER_LIST, **options}
    destination = Google(GoogleConfig.from_env(settings, env))
    destination.start(run())
    return destination


@pytest.fixture
def google_api() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(token=TOKEN) as emulator:
        yield emulator


def test_google_ingests_hashed_members_with_consent_into_the_user_list(google_api):
    destination = google_for(google_api)
    destination.check_connection()

    result = destination.write(
        [
            customer("c-1", "Cloudy.SanFrancisco+shopping@gmail.com", phone="+1 555 987 6543"),
            customer(
                "c-2",
                first_name="Jane",
                last_name="Doe",
                country="us",
                zip="94045",
            ),
        ]
    )

    assert [o.succeeded for o in result.outcomes] == [True, True]
    assert google_api.member_values(ACCOUNT, USER_LIST, "email_address") == {
        google_hash("email", "cloudysanfrancisco@gmail.com")
    }
    assert google_api.member_values(ACCOUNT, USER_LIST, "phone_number") == {
        hashlib.sha256(b"+15559876543").hexdigest()
    }
    assert google_api.member_values(ACCOUNT, USER_LIST, "region_code") == {"US"}
    sent = google_api.log[-1].json()
    assert sent["encoding"] == "HEX"
    assert sent["audienceMembers"][0]["consent"] == {
        "adUserData": "CONSENT_GRANTED",
        "adPersonalization": "CONSENT_GRANTED",
    }


def test_google_fails_a_member_without_identifiers_without_sending_it(google_api):
    incomplete_address = customer("c-2", first_name="Jane", last_name="Doe")

    result = google_for(google_api).write([*customers(1), incomplete_address])

    assert [o.succeeded for o in result.outcomes] == [True, False]
    assert "no email, phone or full address" in result.outcomes[1].error
    assert len(google_api.log[-1].json()["audienceMembers"]) == 1


def test_google_one_bad_member_rejects_the_whole_request_and_nothing_is_applied(google_api):
    batch = [*customers(3), add("c-bad", email="plain@example.com")]

    with pytest.raises(BatchRejected, match=r"audience_members\[3\].*email_address"):
        google_for(google_api).write(batch)
    assert google_api.members == {}


def test_google_batches_stop_at_ten_thousand_members_because_the_api_refuses_more(google_api):
    # Only the oversize request: validating 10,000 members in the emulator takes 7 s.
    batch = [
        add(f"c-{i}", email=hashlib.sha256(str(i).encode()).hexdigest()) for i in range(10_001)
    ]

    assert Google.max_batch_size == 10_000
    with pytest.raises(BatchRejected, match="At most 10000 audience members"):
        google_for(google_api).write(batch)
    assert google_api.members == {}


def test_google_removes_members(google_api):
    destination = google_for(google_api)
    destination.write(customers(4))

    result = destination.write([Record(r.key, "remove", r.fields) for r in customers(2)])

    assert [o.succeeded for o in result.outcomes] == [True, True]
    assert google_api.member_values(ACCOUNT, USER_LIST, "email_address") == {
        google_hash("email", f"customer{i}@example.com") for i in (2, 3)
    }
    assert "consent" not in google_api.log[-1].json()["audienceMembers"][0]


def test_google_resource_exhausted_is_rate_limited_with_retry_after():
    with GoogleEmulator(token=TOKEN, faults=Faults(rate_limit=1.0, retry_after=30)) as api:
        with pytest.raises(RateLimited, match="RESOURCE_EXHAUSTED") as raised:
            google_for(api).write(customers(1))

    assert raised.value.retry_after == 30.0


def test_google_unavailable_is_transient_and_a_bad_token_permanent(google_api):
    env = {"TESSERA_GOOGLE_BASE_URL": google_api.base_url, "TESSERA_GOOGLE_TOKEN": "ya29.stale"}
    settings = {"operating_account_id": ACCOUNT, "user_list_id": USER_LIST}
    wrong = Google(GoogleConfig.from_env(settings, env))

    with pytest.raises(PermanentError, match="TESSERA_GOOGLE_TOKEN") as raised:
        wrong.check_connection()
    with pytest.raises(PermanentError, match="UNAUTHENTICATED"):
        wrong.write(customers(1))
    assert "ya29.stale" not in str(raised.value)
    google_api.set_faults(server_error=1.0)
    with pytest.raises(TransientError, match="UNAVAILABLE"):
        google_for(google_api).write(customers(1))


class SmallBatchGoogle(Google):
    max_batch_size = E2E_BATCH


def test_google_list_synced_through_the_engine_with_faults_equals_the_audience(warehouse):
    rows = ad_audience()
    with GoogleEmulator(token=TOKEN) as api:
        api.faults = E2E_FAULTS.model_copy(update={"paths": ("/v1/audienceMembers:",)})
        env = {
            "TESSERA_GOOGLE_BASE_URL": api.base_url,
            "TESSERA_GOOGLE_TOKEN": TOKEN,
            "TESSERA_GOOGLE_TIMEOUT_SECONDS": "0.5",
        }
        sync = spec(
            destination="google",
            mode="mirror",
            fields={"email": "email"},
            options={"operating_account_id": ACCOUNT, "user_list_id": USER_LIST},
        )

        def expected_members(rows) -> set[tuple[tuple[str, str], ...]]:
            return {
                (("email_address", google_hash("email", r["email"])),)
                for r in rows
                if r["has_consent_advertising"]
            }

        write_ad_audience(warehouse, rows)
        settle(sync, warehouse, SmallBatchGoogle, env)
        assert api.members[(ACCOUNT, USER_LIST)] == expected_members(rows)

        rows = ad_audience_changes(rows)
        write_ad_audience(warehouse, rows)
        settle(sync, warehouse, SmallBatchGoogle, env)
        assert api.members[(ACCOUNT, USER_LIST)] == expected_members(rows)
        injected = dict(api.injected_faults)
        api.set_faults(rate_limit=0, server_error=0, timeout=0, partial_failure=0)
        api.clear_log()
        unchanged = settle(sync, warehouse, SmallBatchGoogle, env)
        sent = [(entry.method, entry.path) for entry in api.log]

    assert injected["partial_failure"] > 0
    assert sum(injected.get(kind, 0) for kind in WHOLE_REQUEST_FAULTS) > 0, injected
    assert unchanged[0].requests == 0
    # Only the connection check, a validate-only ingest.
    assert sent == [("POST", "/v1/audienceMembers:ingest")]


STATUS = "/v1/requestStatus:retrieve"


def google_sync(api: GoogleEmulator, warehouse, rows: list[dict[str, Any]]):
    """One upsert run of ``rows`` (every one consenting) to the emulator's user list."""
    write_ad_audience(warehouse, [{**row, "has_consent_advertising": True} for row in rows])
    env = {"TESSERA_GOOGLE_BASE_URL": api.base_url, "TESSERA_GOOGLE_TOKEN": TOKEN}
    sync = spec(
        destination="google",
        fields={"email": "email"},
        options={"operating_account_id": ACCOUNT, "user_list_id": USER_LIST},
    )
    return run_sync(
        sync, warehouse, {"google": Google}, env=env, policy=RetryPolicy(sleep=Sleeps())
    )


def platform_reports(warehouse) -> list[tuple]:
    return warehouse.query(
        "select run_id, sync_name, destination, received, invalid, match_rate_low, "
        "match_rate_high, detail from activation.sync_platform_reports"
    )


def test_google_s_match_rate_range_for_the_run_is_stored_as_fractions(warehouse):
    rows = ad_audience(100)
    # Google knows 25 of the 100 members: 25 % is its 20-to-30 bucket.
    known = [google_hash("email", row["email"]) for row in rows[:25]]
    with GoogleEmulator(token=TOKEN, known_users=known) as api:
        result = google_sync(api, warehouse, rows)
        asked = api.request_count(STATUS, "GET")

    assert (result.status, result.succeeded) == ("succeeded", 100)
    assert asked == 1
    assert platform_reports(warehouse) == [
        (
            result.run_id,
            "test_sync",
            "google",
            100,
            0,
            0.2,
            0.3,
            "MATCH_RATE_RANGE_20_TO_30",
        )
    ]


def test_a_failing_status_call_leaves_the_sync_succeeded_without_a_report(warehouse, caplog):
    rows = ad_audience(20)
    faults = Faults(server_error=1.0, server_error_status=500, paths=(STATUS,))
    with GoogleEmulator(token=TOKEN, faults=faults) as api:
        with caplog.at_level(logging.WARNING, logger="tessera.activation"):
            result = google_sync(api, warehouse, rows)
        asked = api.request_count(STATUS, "GET")

    assert (result.status, result.succeeded, result.error) == ("succeeded", 20, None)
    assert warehouse.query("select status from activation.sync_runs") == [("succeeded",)]
    assert platform_reports(warehouse) == []
    # Asked once, not retried.
    assert asked == 1
    assert "HTTP 500 INTERNAL" in caplog.text
    assert not any(row["email"].strip().lower() in caplog.text.lower() for row in rows)


def test_google_still_processing_reports_the_records_received_and_no_match_rate(google_api):
    google_api.request_status = "PROCESSING"
    destination = google_for(google_api)
    destination.write(customers(4))
    destination.write(customers(3, start=4))

    report = destination.platform_report()

    assert report == PlatformReport(received=3, detail="PROCESSING")


def test_google_reports_nothing_for_a_run_that_only_removed(google_api):
    destination = google_for(google_api)
    destination.write([Record(r.key, "remove", r.fields) for r in customers(2)])

    assert destination.platform_report() is None
    assert google_api.request_count(STATUS) == 0


@pytest.mark.parametrize(
    ("match_rate_range", "bounds"),
    [
        ("MATCH_RATE_RANGE_LESS_THAN_20", (0.0, 0.2)),
        ("MATCH_RATE_RANGE_20_TO_30", (0.2, 0.3)),
        ("MATCH_RATE_RANGE_31_TO_40", (0.31, 0.4)),
        ("MATCH_RATE_RANGE_91_TO_100", (0.91, 1.0)),
        ("MATCH_RATE_RANGE_NOT_ELIGIBLE", (None, None)),
        ("MATCH_RATE_RANGE_UNKNOWN", (None, None)),
        (None, (None, None)),
    ],
)
def test_google_match_rate_ranges_read_as_fractions_of_the_bucket_s_bounds(
    match_rate_range, bounds
):
    assert match_rate_bounds(match_rate_range) == bounds


def test_google_partial_success_reports_failed_records_and_a_range_without_bounds():
    answer = {
        "requestStatusPerDestination": [
            {
                "destination": {"productDestinationId": "999"},
                "requestStatus": "SUCCESS",
            },
            {
                "destination": {"productDestinationId": USER_LIST},
                "requestStatus": "PARTIAL_SUCCESS",
                "errorInfo": {
                    "errorCounts": [
                        {"recordCount": "3", "reason": "PROCESSING_ERROR_REASON_DENIED_CONSENT"},
                        {"recordCount": "1", "reason": "PROCESSING_ERROR_REASON_NO_CONSENT"},
                    ]
                },
                "audienceMembersIngestionStatus": {
                    "userDataIngestionStatus": {
                        "recordCount": "1200",
                        "userIdentifierCount": "1500",
                        "uploadMatchRateRange": "MATCH_RATE_RANGE_NOT_ELIGIBLE",
                    }
                },
            },
        ]
    }

    assert request_status_report(answer, USER_LIST) == PlatformReport(
        received=1200,
        invalid=4,
        detail="PARTIAL_SUCCESS MATCH_RATE_RANGE_NOT_ELIGIBLE "
        "PROCESSING_ERROR_REASON_DENIED_CONSENT=3 PROCESSING_ERROR_REASON_NO_CONSENT=1",
    )
