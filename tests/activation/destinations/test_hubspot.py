"""The HubSpot connector against its emulator: what it sends, and how each answer becomes a
per-row outcome or a whole-request error; then a list synced through the engine with faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emulators import Faults
from emulators.hubspot import CONTACTS, HubSpotEmulator
from orchestration.activation.destination import (
    BatchRejected,
    PermanentError,
    RateLimited,
    Record,
    TransientError,
)
from orchestration.activation.destinations.hubspot import HubSpot, HubSpotConfig
from tests.activation.destinations.support import (
    E2E_BATCH,
    E2E_FAULTS,
    TOKEN,
    WHOLE_REQUEST_FAULTS,
    HubSpotWithBatchRead,
    add,
    audience_changes,
    e2e_audience,
    remove,
    run,
    settle,
)
from tests.activation.sync_support import (
    spec,
    write_audience,
)

# The engine runs here on one adapter: the destination, not the warehouse, is under test.
pytestmark = pytest.mark.duckdb_only


def outcomes(result) -> dict[str, tuple[bool, str | None]]:
    return {o.key: (o.succeeded, o.error) for o in result.outcomes}


def hubspot_for(emulator: HubSpotEmulator, mode: str = "upsert", **options: Any) -> HubSpot:
    env = {"TESSERA_HUBSPOT_BASE_URL": emulator.base_url, "TESSERA_HUBSPOT_TOKEN": TOKEN}
    destination = HubSpot(HubSpotConfig.from_env(options, env))
    destination.start(run(mode))
    return destination


@pytest.fixture
def hubspot_api() -> Iterator[HubSpotWithBatchRead]:
    with HubSpotWithBatchRead(token=TOKEN) as emulator:
        yield emulator


def make_list(emulator: HubSpotEmulator, name: str = "VIP") -> str:
    answer = requests.post(
        f"{emulator.base_url}/crm/v3/lists",
        json={"name": name, "objectTypeId": "0-1", "processingType": "MANUAL"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    return answer.json()["list"]["listId"]


def contacts(n: int, start: int = 0, **extra: Any) -> list[Record]:
    return [
        add(f"c-{i}", email=f"person{i}@example.com", firstname=f"P{i}", **extra)
        for i in range(start, start + n)
    ]


def test_hubspot_upsert_creates_contacts_then_updates_the_same_ones(hubspot_api):
    destination = hubspot_for(hubspot_api)

    first = destination.write(contacts(3, tessera_score=0.75))
    second = destination.write(
        [Record("c-1", "change", {"email": "person1@example.com", "firstname": "Paula"})]
    )

    assert [o.succeeded for o in first.outcomes] == [True, True, True]
    assert len(hubspot_api.contacts) == 3
    assert second.outcomes[0].destination_id == first.outcomes[1].destination_id
    contact = hubspot_api.contact_by("email", "person1@example.com")
    assert contact.properties["firstname"] == "Paula"
    # Every property value is sent as a string, as HubSpot requires.
    assert contact.properties["tessera_score"] == "0.75"


def test_hubspot_sends_none_as_an_empty_string_that_clears_the_property(hubspot_api):
    destination = hubspot_for(hubspot_api)
    destination.write([add("c-1", email="a@example.com", lifecyclestage="lead")])

    destination.write([Record("c-1", "change", {"email": "a@example.com", "lifecyclestage": None})])

    assert "lifecyclestage" not in hubspot_api.contact_by("email", "a@example.com").properties


def test_hubspot_207_errors_are_matched_back_to_their_rows_by_trace_id(hubspot_api):
    destination = hubspot_for(hubspot_api, id_property="tessera_customer_id")
    batch = [
        add("c-1", tessera_customer_id="c-1", email="one@example.com"),
        add("c-2", tessera_customer_id="c-2", email="not-an-email"),
        add("c-3", tessera_customer_id="c-3", email="three@example.com"),
    ]

    result = destination.write(batch)

    assert [o.key for o in result.outcomes] == ["c-1", "c-2", "c-3"]
    assert [o.succeeded for o in result.outcomes] == [True, False, True]
    assert "INVALID_EMAIL" in result.outcomes[1].error
    assert len(hubspot_api.contacts) == 2


def test_hubspot_injected_partial_failures_fail_exactly_the_rows_hubspot_failed():
    with HubSpotWithBatchRead(token=TOKEN, faults=Faults(partial_failure=0.3, seed=7)) as api:
        result = hubspot_for(api).write(contacts(50))

    failed = [o for o in result.outcomes if not o.succeeded]
    assert len(result.outcomes) == 50
    assert len(failed) == api.injected_faults["partial_failure"] > 0
    assert len(api.contacts) == 50 - len(failed)
    assert all("INTERNAL_ERROR" in o.error for o in failed)


def test_hubspot_malformed_email_as_id_property_rejects_the_whole_batch(hubspot_api):
    destination = hubspot_for(hubspot_api)

    with pytest.raises(BatchRejected, match="VALIDATION_ERROR"):
        destination.write([add("c-1", email="ok@example.com"), add("c-2", email="broken")])
    assert len(hubspot_api.contacts) == 0


def test_hubspot_fails_a_row_without_the_id_property_without_sending_it(hubspot_api):
    result = hubspot_for(hubspot_api).write([add("c-1", firstname="Nomail"), *contacts(1)])

    assert outcomes(result)["c-1"] == (False, "no email to identify the contact")
    assert outcomes(result)["c-0"] == (True, None)
    assert len(hubspot_api.contacts) == 1


def test_hubspot_batches_of_100_pass_and_the_api_refuses_101(hubspot_api):
    destination = hubspot_for(hubspot_api)

    assert HubSpot.max_batch_size == 100
    assert len(destination.write(contacts(100)).succeeded) == 100
    with pytest.raises(BatchRejected, match="maximum number of inputs supported in a batch is 100"):
        destination.write(contacts(101, start=100))
    assert len(hubspot_api.contacts) == 100


def test_hubspot_429_becomes_rate_limited_with_the_retry_after_seconds():
    with HubSpotWithBatchRead(token=TOKEN, faults=Faults(rate_limit=1.0, retry_after=7)) as api:
        with pytest.raises(RateLimited) as raised:
            hubspot_for(api).write(contacts(2))

    assert raised.value.retry_after == 7.0
    assert "TEN_SECONDLY_ROLLING" in str(raised.value)


def test_hubspot_429_without_retry_after_waits_ten_seconds_for_the_rolling_policy(hubspot_api):
    class NoRetryAfter(HubSpotWithBatchRead):
        def error_throttled(self, request, retry_after):
            response = super().error_throttled(request, retry_after)
            del response.headers["Retry-After"]
            return response

    with NoRetryAfter(token=TOKEN, faults=Faults(rate_limit=1.0)) as api:
        with pytest.raises(RateLimited) as raised:
            hubspot_for(api).write(contacts(1))

    assert raised.value.retry_after == 10.0


def test_hubspot_server_errors_and_timeouts_are_transient():
    with HubSpotWithBatchRead(token=TOKEN, faults=Faults(server_error=1.0)) as api:
        with pytest.raises(TransientError, match="HTTP 503"):
            hubspot_for(api).write(contacts(1))
    faults = Faults(timeout=1.0, timeout_seconds=2.0)
    with HubSpotWithBatchRead(token=TOKEN, faults=faults) as api:
        with pytest.raises(TransientError, match=r"timed out after 0\.3 s"):
            hubspot_for(api, timeout_seconds=0.3).write(contacts(1))
    with HubSpotWithBatchRead(token=TOKEN, faults=Faults(timeout=1.0, timeout_mode="close")) as api:
        with pytest.raises(TransientError, match="failed to connect"):
            hubspot_for(api).write(contacts(1))


def test_hubspot_wrong_token_is_permanent_and_the_message_never_shows_it(hubspot_api):
    env = {"TESSERA_HUBSPOT_BASE_URL": hubspot_api.base_url, "TESSERA_HUBSPOT_TOKEN": "wrong-xyz"}
    destination = HubSpot(HubSpotConfig.from_env({}, env))

    with pytest.raises(PermanentError, match="TESSERA_HUBSPOT_TOKEN") as checked:
        destination.check_connection()
    with pytest.raises(PermanentError, match="HTTP 401") as written:
        destination.write(contacts(1))
    assert "wrong-xyz" not in str(checked.value) + str(written.value)
    assert "wrong-xyz" not in repr(destination.config)


def test_hubspot_check_connection_names_a_missing_list(hubspot_api):
    destination = hubspot_for(hubspot_api, list_id="999")

    with pytest.raises(PermanentError, match=r"list 999 \(option list_id\) not found"):
        destination.check_connection()


def test_hubspot_adds_synced_contacts_to_the_list_and_removes_them_from_it(hubspot_api):
    list_id = make_list(hubspot_api)
    destination = hubspot_for(hubspot_api, list_id=list_id)
    destination.check_connection()

    added = destination.write(contacts(3))
    removed = destination.write(
        [
            remove("c-0", email="person0@example.com"),
            remove("c-9", email="never-synced@example.com"),
        ]
    )

    ids = {o.key: o.destination_id for o in added.outcomes}
    assert hubspot_api.list_members(list_id) == [ids["c-1"], ids["c-2"]]
    assert [o.succeeded for o in removed.outcomes] == [True, True]
    # Leaving the list does not delete the contact.
    assert len(hubspot_api.contacts) == 3


def test_hubspot_remove_archives_the_contact_when_no_list_is_configured(hubspot_api):
    destination = hubspot_for(hubspot_api)
    destination.write(contacts(2))

    result = destination.write([remove("c-0", email="PERSON0@example.com")])

    assert result.outcomes[0].succeeded
    assert sorted(c.properties["email"] for c in hubspot_api.contacts.values()) == [
        "person1@example.com"
    ]
    assert len(hubspot_api.archived) == 1


def test_hubspot_update_mode_never_creates_and_fails_unknown_contacts(hubspot_api):
    hubspot_for(hubspot_api).write(contacts(1))
    destination = hubspot_for(hubspot_api, mode="update")

    result = destination.write(
        [
            Record("c-0", "change", {"email": "person0@example.com", "firstname": "Zed"}),
            Record("c-5", "change", {"email": "person5@example.com", "firstname": "New"}),
        ]
    )

    assert [o.succeeded for o in result.outcomes] == [True, False]
    assert "OBJECT_NOT_FOUND" in result.outcomes[1].error
    assert len(hubspot_api.contacts) == 1
    assert hubspot_api.request_count(CONTACTS + "/batch/update") == 1


def test_hubspot_insert_mode_creates_and_leaves_an_existing_contact_untouched(hubspot_api):
    first = hubspot_for(hubspot_api).write(contacts(1))
    destination = hubspot_for(hubspot_api, mode="insert")

    result = destination.write(
        [add("c-0", email="person0@example.com", firstname="Other"), *contacts(1, start=1)]
    )

    # HubSpot answers CONFLICT "Contact already exists. Existing ID: ..." for c-0.
    assert hubspot_api.request_count(CONTACTS + "/batch/create") == 1
    assert [o.succeeded for o in result.outcomes] == [True, True]
    assert result.outcomes[0].destination_id == first.outcomes[0].destination_id
    assert hubspot_api.contact_by("email", "person0@example.com").properties["firstname"] == "P0"
    assert len(hubspot_api.contacts) == 2


def test_hubspot_token_cannot_come_from_the_sync_options():
    with pytest.raises(PermanentError, match="TESSERA_HUBSPOT_TOKEN"):
        HubSpotConfig.from_env({"token": "in-yaml"}, {"TESSERA_HUBSPOT_TOKEN": "t"})
    with pytest.raises(PermanentError, match="TESSERA_HUBSPOT_TOKEN is not set"):
        HubSpotConfig.from_env({}, {})
    config = HubSpotConfig.from_env({"list_id": "7"}, {"TESSERA_HUBSPOT_TOKEN": "t"})
    assert config.base_url == "https://api.hubapi.com"
    assert config.list_id == "7"


class SmallBatchHubSpot(HubSpot):
    max_batch_size = E2E_BATCH


def test_hubspot_list_synced_through_the_engine_with_faults_equals_the_audience(warehouse):
    rows = e2e_audience()
    faults = E2E_FAULTS.model_copy(update={"paths": (CONTACTS + "/batch/", "/crm/v3/lists/1/")})
    with HubSpotWithBatchRead(token=TOKEN, faults=faults) as api:
        list_id = make_list(api)
        env = {
            "TESSERA_HUBSPOT_BASE_URL": api.base_url,
            "TESSERA_HUBSPOT_TOKEN": TOKEN,
            "TESSERA_HUBSPOT_TIMEOUT_SECONDS": "0.5",
        }
        sync = spec(destination="hubspot", mode="mirror", options={"list_id": list_id})

        def listed() -> dict[str, str]:
            return {
                api.contacts[i].properties["email"]: api.contacts[i].properties["firstname"]
                for i in api.list_members(list_id)
            }

        write_audience(warehouse, rows)
        first = settle(sync, warehouse, SmallBatchHubSpot, env)
        assert listed() == {r["email"]: r["first_name"] for r in rows[10:]}

        rows = audience_changes(rows)
        write_audience(warehouse, rows)
        settle(sync, warehouse, SmallBatchHubSpot, env)
        assert listed() == {
            r["email"]: r["first_name"] for r in rows if r["has_consent_email_marketing"]
        }
        emails = [c.properties["email"] for c in api.contacts.values()]
        # Members who left the list keep their contact; nobody was created twice.
        assert len(emails) == len(set(emails)) == 240 + 30

        injected = dict(api.injected_faults)
        api.set_faults(rate_limit=0, server_error=0, timeout=0, partial_failure=0)
        api.clear_log()
        unchanged = settle(sync, warehouse, SmallBatchHubSpot, env)
        sent = [(entry.method, entry.path) for entry in api.log]

    assert injected["partial_failure"] > 0
    assert sum(injected.get(kind, 0) for kind in WHOLE_REQUEST_FAULTS) > 0, injected
    assert len(first) > 1  # faulted rows needed another run
    assert unchanged[0].requests == 0
    # Only the connection check reads: the contacts endpoint and the list.
    assert sent == [("GET", "/crm/v3/objects/contacts"), ("GET", f"/crm/v3/lists/{list_id}")]


def test_hubspot_removing_from_a_list_needs_the_list():
    with pytest.raises(PermanentError, match="on_remove 'list' needs option list_id"):
        HubSpotConfig.from_env({"on_remove": "list"}, {"TESSERA_HUBSPOT_TOKEN": "t"})


def test_hubspot_daily_limit_stops_the_run_instead_of_waiting():
    class DailyLimit(HubSpotWithBatchRead):
        def error_throttled(self, request, retry_after):
            response = super().error_throttled(request, retry_after)
            response.body.update(policyName="DAILY", message="You have reached your daily limit.")
            return response

    with DailyLimit(token=TOKEN, faults=Faults(rate_limit=1.0)) as api:
        with pytest.raises(PermanentError, match="DAILY"):
            hubspot_for(api).write(contacts(1))
