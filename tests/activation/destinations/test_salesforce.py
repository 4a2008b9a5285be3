"""The Salesforce connector against its emulator: what it sends, and how each answer becomes a
per-row outcome or a whole-request error; then a mirror synced through the engine with faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulators import Faults
from emulators.salesforce import SalesforceEmulator
from orchestration.activation.destination import (
    BatchRejected,
    PermanentError,
    RateLimited,
    Record,
    TransientError,
)
from orchestration.activation.destinations.salesforce import Salesforce, SalesforceConfig
from tests.activation.destinations.support import (
    E2E_BATCH,
    E2E_FAULTS,
    TOKEN,
    WHOLE_REQUEST_FAULTS,
    SalesforceWithQuery,
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


class SmallBatchSalesforce(Salesforce):
    max_batch_size = E2E_BATCH


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
