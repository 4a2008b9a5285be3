"""The HubSpot, Salesforce, Meta and Google connectors against their local emulators: what each
sends, and how each API answer becomes a per-row outcome or a whole-request error."""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pyarrow as pa
import pytest
import requests

from emulators import Faults
from emulators.base import Request, Response, route
from emulators.google import GoogleEmulator
from emulators.hubspot import CONTACTS, HubSpotEmulator
from emulators.meta import MetaEmulator
from emulators.salesforce import SalesforceEmulator
from orchestration.activation.config import SyncSpec
from orchestration.activation.destination import (
    BatchRejected,
    PermanentError,
    RateLimited,
    Record,
    RunContext,
    TransientError,
)
from orchestration.activation.destinations import registry
from orchestration.activation.destinations._http import retry_after
from orchestration.activation.destinations.google import Google, GoogleConfig
from orchestration.activation.destinations.hubspot import HubSpot, HubSpotConfig
from orchestration.activation.destinations.meta import Meta, MetaConfig
from orchestration.activation.destinations.salesforce import Salesforce, SalesforceConfig
from orchestration.activation.engine import RetryPolicy, SyncResult, run_sync
from orchestration.activation.hashing import hash_identifier
from tests.activation.sync_support import (
    AUDIENCE,
    Sleeps,
    make_warehouse,
    members,
    spec,
    write_audience,
)

TOKEN = "test-token"


def run(
    mode: str = "upsert", total: int = 0, full_resync: bool = False, **extra: Any
) -> RunContext:
    return RunContext("test_sync", "run-1", mode, total, extra, full_resync)  # type: ignore[arg-type]


def add(key: str, **fields: Any) -> Record:
    return Record(key, "add", fields)


def remove(key: str, **fields: Any) -> Record:
    return Record(key, "remove", fields)


def outcomes(result) -> dict[str, tuple[bool, str | None]]:
    return {o.key: (o.succeeded, o.error) for o in result.outcomes}


class HubSpotWithBatchRead(HubSpotEmulator):
    """The HubSpot emulator plus ``batch/read`` by a unique property, which removals use to find
    contact ids (HubSpot answers 207 with OBJECT_NOT_FOUND for ids it does not have)."""

    def routes(self):
        return [route("POST", CONTACTS + "/batch/read", self._batch_read), *super().routes()]

    def _batch_read(self, request: Request) -> Response:
        body = self.json_body(request)
        id_property = body.get("idProperty")
        results, errors = [], []
        for item in body["inputs"]:
            if id_property:
                contact = self.contact_by(id_property, item["id"])
            else:
                contact = self.contacts.get(item["id"])
            if contact is None:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "context": {"ids": [item["id"]]},
                        "message": "not found",
                    }
                )
            else:
                results.append(contact.as_result())
        return self._batch_answer(results, errors)


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


class SalesforceWithQuery(SalesforceEmulator):
    """The Salesforce emulator plus the one SOQL shape removals use to find record ids:
    ``SELECT Id, <field> FROM <object> WHERE <field> IN ('a', 'b')``."""

    def routes(self):
        return [route("GET", r"/services/data/v\d+\.\d/query/?", self._query), *super().routes()]

    def _query(self, request: Request) -> Response:
        soql = request.query_value("q") or ""
        found = re.fullmatch(r"SELECT Id, (\w+) FROM (\w+) WHERE (\w+) IN \((.*)\)", soql)
        assert found and found.group(1) == found.group(3), soql
        field, sobject, values = found.group(1), found.group(2), found.group(4)
        wanted = {
            re.sub(r"\\(.)", r"\1", value) for value in re.findall(r"'((?:[^'\\]|\\.)*)'", values)
        }
        rows = [
            {"attributes": {"type": sobject}, "Id": record["Id"], field: record.get(field)}
            for record in self.records.get(sobject, {}).values()
            if record.get(field) in wanted
        ]
        return Response(200, {"totalSize": len(rows), "done": True, "records": rows})


def salesforce_for(emulator: SalesforceEmulator, total: int = 0, **options: Any) -> Salesforce:
    env = {"TESSERA_SALESFORCE_BASE_URL": emulator.base_url, "TESSERA_SALESFORCE_TOKEN": TOKEN}
    settings = {"external_id_field": "Tessera_Id__c", "bulk_poll_seconds": 0, **options}
    destination = Salesforce(SalesforceConfig.from_env(settings, env))
    destination.start(run(total=total))
    return destination


@pytest.fixture
def salesforce_api() -> Iterator[SalesforceWithQuery]:
    with SalesforceWithQuery(token=TOKEN) as emulator:
        yield emulator


def people(n: int, start: int = 0) -> list[Record]:
    return [
        add(f"c-{i}", Email=f"person{i}@example.com", LastName=f"Person{i}")
        for i in range(start, start + n)
    ]


def test_salesforce_upsert_by_external_id_creates_then_updates(salesforce_api):
    destination = salesforce_for(salesforce_api)

    first = destination.write(people(3))
    second = destination.write([Record("c-2", "change", {"LastName": "Renamed"})])

    assert [o.succeeded for o in first.outcomes] == [True, True, True]
    assert len(salesforce_api.records["Contact"]) == 3
    assert second.outcomes[0].destination_id == first.outcomes[2].destination_id
    record = salesforce_api.record_by("Contact", "Tessera_Id__c", "c-2")
    assert record["LastName"] == "Renamed"
    assert record["Email"] == "person2@example.com"


def test_salesforce_per_row_errors_come_back_in_order(salesforce_api):
    batch = [*people(1), add("c-1", Email="no-last-name@example.com"), *people(1, start=2)]

    result = salesforce_for(salesforce_api).write(batch)

    assert [o.key for o in result.outcomes] == ["c-0", "c-1", "c-2"]
    assert [o.succeeded for o in result.outcomes] == [True, False, True]
    assert result.outcomes[1].error.startswith("REQUIRED_FIELD_MISSING")
    assert len(salesforce_api.records["Contact"]) == 2


def test_salesforce_batches_of_200_pass_and_the_api_refuses_201(salesforce_api):
    destination = salesforce_for(salesforce_api)

    assert Salesforce.max_batch_size == 200
    assert len(destination.write(people(200)).succeeded) == 200
    with pytest.raises(BatchRejected, match="EXCEEDED_ID_LIMIT"):
        destination.write(people(201, start=200))
    assert len(salesforce_api.records["Contact"]) == 200


def test_salesforce_throttling_403_is_rate_limited_and_the_daily_limit_is_permanent():
    faults = Faults(rate_limit=1.0, retry_after=4)
    with SalesforceWithQuery(token=TOKEN, faults=faults) as api:
        with pytest.raises(RateLimited, match="ConcurrentPerOrgLongTxn") as raised:
            salesforce_for(api).write(people(1))
    assert raised.value.retry_after == 4.0
    with SalesforceWithQuery(token=TOKEN, daily_limit=1) as api:
        destination = salesforce_for(api)
        destination.write(people(1))
        with pytest.raises(PermanentError, match="TotalRequests Limit exceeded"):
            destination.write(people(1, start=1))
    assert len(api.records["Contact"]) == 1


def test_salesforce_wrong_token_and_unknown_external_id_field_are_permanent(salesforce_api):
    env = {
        "TESSERA_SALESFORCE_BASE_URL": salesforce_api.base_url,
        "TESSERA_SALESFORCE_TOKEN": "expired-abc",
    }
    config = SalesforceConfig.from_env({"external_id_field": "Tessera_Id__c"}, env)
    with pytest.raises(PermanentError, match="TESSERA_SALESFORCE_TOKEN") as raised:
        Salesforce(config).check_connection()
    assert "expired-abc" not in str(raised.value)
    with pytest.raises(PermanentError, match="NOT_FOUND"):
        salesforce_for(salesforce_api, external_id_field="Email").write(people(1))


def test_salesforce_server_errors_are_transient():
    with SalesforceWithQuery(token=TOKEN, faults=Faults(server_error=1.0)) as api:
        with pytest.raises(TransientError, match="SERVER_UNAVAILABLE"):
            salesforce_for(api).write(people(1))


def test_salesforce_remove_deletes_by_id_found_through_the_external_id(salesforce_api):
    destination = salesforce_for(salesforce_api)
    destination.write(people(3))

    result = destination.write(
        [remove("c-0"), remove("c-2", LastName="Person2"), remove("never-sent")]
    )

    assert [o.succeeded for o in result.outcomes] == [True, True, True]
    assert [r["Tessera_Id__c"] for r in salesforce_api.records["Contact"].values()] == ["c-1"]
    assert salesforce_api.request_count(method="DELETE") == 1


def test_salesforce_external_id_with_a_quote_is_escaped_in_soql(salesforce_api):
    destination = salesforce_for(salesforce_api)
    destination.write([add("o'brien", LastName="OBrien")])

    result = destination.write([remove("o'brien")])

    assert result.outcomes[0].succeeded
    assert salesforce_api.records["Contact"] == {}


def test_salesforce_large_run_goes_through_one_bulk_job_matched_by_external_id(salesforce_api):
    destination = salesforce_for(salesforce_api, total=500, bulk_threshold=300)
    batch = [*people(499), add("c-bad", Email="bad@example.com")]  # no LastName

    assert destination.max_batch_size == 10_000
    result = destination.write(batch)

    assert len(salesforce_api.jobs) == 1
    job = next(iter(salesforce_api.jobs.values()))
    assert job.state == "JobComplete"
    assert len(result.succeeded) == 499
    assert [o.key for o in result.failed] == ["c-bad"]
    assert "REQUIRED_FIELD_MISSING" in result.failed[0].error
    by_key = {o.key: o.destination_id for o in result.outcomes}
    assert by_key["c-7"] == salesforce_api.record_by("Contact", "Tessera_Id__c", "c-7")["Id"]
    assert salesforce_api.request_count(method="PATCH") == 1  # closing the job, no collections


def test_salesforce_bulk_job_still_running_after_the_bounded_wait_is_aborted_and_transient():
    with SalesforceWithQuery(token=TOKEN, bulk_polls=1_000) as api:
        destination = salesforce_for(api, total=500, bulk_threshold=300, bulk_max_wait_seconds=0)
        with pytest.raises(TransientError, match="still InProgress after 0 s"):
            destination.write(people(400))
        assert [job.state for job in api.jobs.values()] == ["Aborted"]
        assert api.records.get("Contact", {}) == {}


def test_salesforce_small_run_never_creates_a_bulk_job(salesforce_api):
    destination = salesforce_for(salesforce_api, total=150)

    destination.write(people(150))

    assert salesforce_api.jobs == {}
    assert destination.max_batch_size == 200


# End to end: audiences synced through the engine to each emulator, with faults injected.

# 20% of write requests fail whole (throttled, 5xx, or timed out after the write landed) and 10%
# of rows fail. The connection check is left alone: the engine does not retry it.
E2E_FAULTS = Faults(
    rate_limit=0.07,
    server_error=0.07,
    timeout=0.06,
    partial_failure=0.1,
    retry_after=0,
    timeout_seconds=1.0,
    timeout_processed=True,
    seed=11,
)


@pytest.fixture
def warehouse(request, tmp_path_factory):
    return make_warehouse(request, tmp_path_factory, "duckdb")


def settle(
    sync: SyncSpec, warehouse, destination: type, env: dict[str, str], refused: int = 0
) -> list[SyncResult]:
    """Run the sync until a run fails no row but the ``refused`` ones, members the platform
    refuses on every run: faulted rows are resent by the next run."""
    results = []
    for _ in range(8):
        result = run_sync(
            sync,
            warehouse,
            {destination.name: destination},
            env=env,
            policy=RetryPolicy(sleep=Sleeps(), max_retries=10),
            dbt_vars={"tessera_sync_max_delete_fraction": 1},
        )
        results.append(result)
        if result.status in ("succeeded", "partial") and result.failed == refused:
            return results
    raise AssertionError(
        f"no run in 8 failed only the {refused} refused rows: {[r.format() for r in results]}"
    )


E2E_MEMBERS = 250
#: Batches of 10 make a run of 250 members about 25 requests, so whole-request faults land
#: (the chance that none of ~50 requests at 20% fails is about 1 in 70,000).
E2E_BATCH = 10


class SmallBatchHubSpot(HubSpot):
    max_batch_size = E2E_BATCH


class SmallBatchSalesforce(Salesforce):
    max_batch_size = E2E_BATCH


WHOLE_REQUEST_FAULTS = ("rate_limit", "server_error", "timeout")


def e2e_audience() -> list[dict[str, Any]]:
    """250 members, the first 10 without consent: several requests per run, so whole-request
    faults land as well as row failures."""
    rows = members(E2E_MEMBERS)
    for row in rows[:10]:
        row["has_consent_email_marketing"] = False
    return rows


def audience_changes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Twenty consenting members leave, thirty join, fifteen change their first name."""
    kept = rows[:10] + rows[30:]
    for row in kept[10:25]:
        row["first_name"] += "-renamed"
    return kept + members(30, start=1000)


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


def test_salesforce_mirror_through_the_engine_with_faults_equals_the_audience(warehouse):
    rows = e2e_audience()
    faults = E2E_FAULTS.model_copy(update={"paths": ("/services/data/v62.0/composite/",)})
    with SalesforceWithQuery(token=TOKEN, faults=faults) as api:
        env = {
            "TESSERA_SALESFORCE_BASE_URL": api.base_url,
            "TESSERA_SALESFORCE_TOKEN": TOKEN,
            "TESSERA_SALESFORCE_TIMEOUT_SECONDS": "0.5",
        }
        sync = spec(
            destination="salesforce",
            mode="mirror",
            fields={"Email": "email", "LastName": "first_name"},
            options={"external_id_field": "Tessera_Id__c"},
        )

        def held() -> dict[str, tuple[str, str]]:
            return {
                r["Tessera_Id__c"]: (r["Email"], r["LastName"])
                for r in api.records.get("Contact", {}).values()
            }

        write_audience(warehouse, rows)
        first = settle(sync, warehouse, SmallBatchSalesforce, env)
        assert held() == {r["customer_id"]: (r["email"], r["first_name"]) for r in rows[10:]}

        rows = audience_changes(rows)
        write_audience(warehouse, rows)
        settle(sync, warehouse, SmallBatchSalesforce, env)
        assert held() == {
            r["customer_id"]: (r["email"], r["first_name"])
            for r in rows
            if r["has_consent_email_marketing"]
        }

        injected = dict(api.injected_faults)
        api.set_faults(rate_limit=0, server_error=0, timeout=0, partial_failure=0)
        api.clear_log()
        unchanged = settle(sync, warehouse, SmallBatchSalesforce, env)
        sent = [(entry.method, entry.path) for entry in api.log]

    assert injected["partial_failure"] > 0
    assert sum(injected.get(kind, 0) for kind in WHOLE_REQUEST_FAULTS) > 0, injected
    assert len(first) > 1  # faulted rows needed another run
    assert unchanged[0].requests == 0
    assert sent == [("GET", "/services/data/v62.0/limits")]


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


def make_audience(emulator: MetaEmulator) -> str:
    answer = requests.post(
        f"{emulator.base_url}/v23.0/act_123/customaudiences",
        json={"name": "VIP", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    return answer.json()["id"]


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


ACCOUNT, USER_LIST = "1234567890", "555"


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


class SmallBatchMeta(Meta):
    max_batch_size = E2E_BATCH


class SmallBatchGoogle(Google):
    max_batch_size = E2E_BATCH


def ad_audience(count: int = E2E_MEMBERS, start: int = 0) -> list[dict[str, Any]]:
    """Members with an email; every tenth has not consented to advertising."""
    return [
        {
            "customer_id": f"c{number:04d}",
            "email": f" Shopper.{number}+ads@GMail.com ",
            "has_consent_advertising": number % 10 != 0,
        }
        for number in range(start, start + count)
    ]


def write_ad_audience(warehouse, rows: list[dict[str, Any]]) -> None:
    columns = {
        "customer_id": pa.string(),
        "email": pa.string(),
        "has_consent_advertising": pa.bool_(),
    }
    table = pa.table({c: pa.array([row[c] for row in rows], t) for c, t in columns.items()})
    warehouse.write_tables("audiences", {AUDIENCE: table})


def ad_audience_changes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Twenty members leave, thirty join."""
    return rows[20:] + ad_audience(30, start=1000)


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


def test_a_missing_required_setting_names_the_option_and_the_variable():
    with pytest.raises(PermanentError) as raised:
        MetaConfig.from_env({}, {"TESSERA_META_TOKEN": "t"})
    assert str(raised.value) == (
        "meta settings: audience_id: required (option audience_id or TESSERA_META_AUDIENCE_ID)"
    )
    config = GoogleConfig.from_env(
        {"user_list_id": "9"},
        {"TESSERA_GOOGLE_TOKEN": "t", "TESSERA_GOOGLE_OPERATING_ACCOUNT_ID": "123-456-7890"},
    )
    assert config.operating_account_id == "1234567890"
    assert config.base_url == "https://datamanager.googleapis.com"


def test_every_platform_destination_is_registered_under_its_yaml_name():
    destinations = registry()

    assert {name: destinations[name] for name in ("hubspot", "salesforce", "meta", "google")} == {
        "hubspot": HubSpot,
        "salesforce": Salesforce,
        "meta": Meta,
        "google": Google,
    }
    assert {HubSpot.consent_purpose, Salesforce.consent_purpose} == {"email_marketing"}
    assert {Meta.consent_purpose, Google.consent_purpose} == {"advertising"}
    assert (Meta.normaliser, Google.normaliser) == ("meta", "google")


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


def test_retry_after_as_an_http_date_is_seconds_from_now():
    response = requests.Response()
    later = email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90), usegmt=True
    )
    response.headers["Retry-After"] = later

    assert 85 <= retry_after(response) <= 90
    response.headers["Retry-After"] = "12"
    assert retry_after(response) == 12.0
    response.headers["Retry-After"] = "soon"
    assert retry_after(response) is None


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
