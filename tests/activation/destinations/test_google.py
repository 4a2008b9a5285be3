"""The Google connector against its emulator: what it sends, and how each answer becomes a
per-row outcome or a whole-request error; then a list synced through the engine with faults."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from emulators import Faults
from emulators.google import GoogleEmulator
from orchestration.activation.destination import (
    BatchRejected,
    PermanentError,
    RateLimited,
    Record,
    TransientError,
)
from orchestration.activation.destinations.google import Google, GoogleConfig
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
