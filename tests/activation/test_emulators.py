"""The destination emulators enforce what the real APIs enforce, and inject faults on demand."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from pydantic import ValidationError

from emulators import Faults, RateLimit
from emulators.google import GoogleEmulator
from emulators.hubspot import HubSpotEmulator
from emulators.meta import MetaEmulator
from emulators.salesforce import SalesforceEmulator
from emulators.webhook import WebhookEmulator, signed_headers


def _webhook_batch(*ids: str) -> bytes:
    records = [
        {"id": record_id, "key": f"c-{record_id}", "operation": "add", "fields": {"tier": "vip"}}
        for record_id in ids
    ]
    return json.dumps({"sync": "vip", "batch_id": "b-1", "records": records}).encode()


@pytest.fixture
def webhook() -> Iterator[WebhookEmulator]:
    with WebhookEmulator(token="s3cret") as emulator:
        yield emulator


def _deliver(webhook: WebhookEmulator, body: bytes, **kwargs: object) -> requests.Response:
    return requests.post(
        webhook.url, data=body, headers=signed_headers(webhook.secret, body), timeout=5, **kwargs
    )


def test_webhook_accepts_a_correctly_signed_batch_and_stores_its_records(webhook):
    response = _deliver(webhook, _webhook_batch("e1", "e2", "e3"))

    assert response.status_code == 200
    assert response.json() == {"received": 3, "accepted": 3, "duplicates": 0}
    assert list(webhook.records) == ["e1", "e2", "e3"]
    assert webhook.records_by_key()["c-e2"]["fields"] == {"tier": "vip"}


def test_webhook_rejects_a_wrong_missing_or_stale_signature_with_401_and_stores_nothing(webhook):
    body = _webhook_batch("e1")
    wrong = signed_headers("another-secret", body)
    stale = signed_headers(webhook.secret, body, timestamp=int(time.time()) - 3600)
    tampered = signed_headers(webhook.secret, body)

    answers = [
        requests.post(webhook.url, data=body, headers=wrong, timeout=5),
        requests.post(webhook.url, data=body, headers={"Content-Type": "application/json"}),
        requests.post(webhook.url, data=body, headers=stale, timeout=5),
        requests.post(webhook.url, data=body.replace(b"vip", b"vap"), headers=tampered, timeout=5),
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 401, 401]
    assert {answer.json()["error"] for answer in answers} == {"invalid_signature"}
    assert webhook.records == {}


def test_webhook_counts_a_redelivered_record_as_a_duplicate_and_stores_it_once(webhook):
    _deliver(webhook, _webhook_batch("e1", "e2"))
    again = _deliver(webhook, _webhook_batch("e2", "e3"))

    assert again.json() == {"received": 2, "accepted": 1, "duplicates": 1}
    assert webhook.duplicate_count == 1
    assert len(webhook.records) == 3
    assert webhook.deliveries["e2"] == 2


def test_webhook_refuses_a_record_without_an_id_naming_the_field(webhook):
    body = json.dumps(
        {
            "records": [
                {"id": "e1", "key": "c", "operation": "add", "fields": {}},
                {"key": "c", "operation": "add", "fields": {}},
            ]
        }
    ).encode()

    response = _deliver(webhook, body)

    assert response.status_code == 400
    assert response.json()["field"] == "records[1].id"
    assert webhook.records == {}


def test_webhook_answers_413_above_its_batch_limit():
    with WebhookEmulator(max_records=10) as webhook:
        response = _deliver(webhook, _webhook_batch(*[f"e{n}" for n in range(11)]))

    assert response.status_code == 413
    assert response.json()["error"] == "too_many_records"


def test_webhook_partial_failure_answers_207_listing_the_rows_not_stored():
    with WebhookEmulator(faults=Faults(partial_failure=0.5, seed=7)) as webhook:
        response = _deliver(webhook, _webhook_batch(*[f"e{n}" for n in range(20)]))
        body = response.json()

        assert response.status_code == 207
        failed_ids = {error["id"] for error in body["errors"]}
        assert 0 < len(failed_ids) < 20
        assert body["accepted"] == 20 - len(failed_ids)
        assert set(webhook.records) == {f"e{n}" for n in range(20)} - failed_ids


def test_webhook_timeout_fault_after_processing_makes_the_retry_a_detectable_duplicate():
    faults = Faults(timeout=1.0, timeout_seconds=1.0, timeout_processed=True, limit=1)
    with WebhookEmulator(faults=faults) as webhook:
        body = _webhook_batch("e1")
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(
                webhook.url, data=body, headers=signed_headers(webhook.secret, body), timeout=0.3
            )
        retry = _deliver(webhook, body)

        assert retry.json() == {"received": 1, "accepted": 0, "duplicates": 1}
        assert webhook.duplicate_count == 1


def test_webhook_close_fault_drops_the_connection_without_storing_the_batch():
    with WebhookEmulator(faults=Faults(timeout=1.0, timeout_mode="close")) as webhook:
        with pytest.raises(requests.exceptions.ConnectionError):
            _deliver(webhook, _webhook_batch("e1"))

        assert webhook.records == {}
        assert webhook.injected_faults["timeout"] == 1


def test_webhook_fault_at_full_probability_throttles_with_retry_after_and_at_zero_never(webhook):
    webhook.set_faults(rate_limit=1.0, retry_after=3)
    throttled = [_deliver(webhook, _webhook_batch(f"t{n}")) for n in range(5)]
    webhook.set_faults(rate_limit=0.0)
    passed = [_deliver(webhook, _webhook_batch(f"p{n}")) for n in range(20)]

    assert [answer.status_code for answer in throttled] == [429] * 5
    assert {answer.headers["Retry-After"] for answer in throttled} == {"3"}
    assert [answer.status_code for answer in passed] == [200] * 20
    assert len(webhook.records) == 20


def test_webhook_fault_limit_fails_exactly_that_many_requests_then_passes():
    with WebhookEmulator(faults=Faults(server_error=1.0, limit=2)) as webhook:
        statuses = [_deliver(webhook, _webhook_batch(f"e{n}")).status_code for n in range(4)]

    assert statuses == [503, 503, 200, 200]


def test_rate_limit_window_throttles_the_request_after_n_and_frees_up_after_the_window():
    with WebhookEmulator(rate_limit=RateLimit(requests=3, per_seconds=0.5)) as webhook:
        statuses = [_deliver(webhook, _webhook_batch(f"e{n}")).status_code for n in range(4)]
        time.sleep(0.55)
        later = _deliver(webhook, _webhook_batch("later"))

    assert statuses == [200, 200, 200, 429]
    assert later.status_code == 200


def test_request_log_counts_requests_per_path(webhook):
    for n in range(3):
        _deliver(webhook, _webhook_batch(f"e{n}"))
    requests.get(webhook.base_url + "/elsewhere", timeout=5)

    assert webhook.request_count("/webhook") == 3
    assert webhook.request_counts() == {"/webhook": 3, "/elsewhere": 1}


# HubSpot


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token="hs-token") as emulator:
        yield emulator


def _hubspot(emulator: HubSpotEmulator, method: str, path: str, body: object) -> requests.Response:
    return requests.request(
        method,
        emulator.base_url + path,
        json=body,
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=5,
    )


def _upsert_input(email: str, trace: str, **properties: str) -> dict[str, object]:
    return {
        "id": email,
        "idProperty": "email",
        "objectWriteTraceId": trace,
        "properties": {"firstname": "Jane", **properties},
    }


UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def test_hubspot_upsert_creates_then_updates_and_says_which_with_new(hubspot):
    first = _hubspot(hubspot, "POST", UPSERT, {"inputs": [_upsert_input("a@x.com", "r1")]})
    second = _hubspot(
        hubspot,
        "POST",
        UPSERT,
        {
            "inputs": [
                _upsert_input("a@x.com", "r1", firstname="Janet"),
                _upsert_input("b@x.com", "r2"),
            ]
        },
    )

    assert first.status_code == 200
    assert first.json()["results"][0]["new"] is True
    assert second.status_code == 200
    results = {result["objectWriteTraceId"]: result for result in second.json()["results"]}
    assert results["r1"]["new"] is False
    assert results["r2"]["new"] is True
    assert results["r1"]["id"] == first.json()["results"][0]["id"]
    assert len(hubspot.contacts) == 2
    assert hubspot.contact_by("email", "a@x.com").properties["firstname"] == "Janet"


def test_hubspot_refuses_101_inputs_with_its_documented_message_and_writes_nothing(hubspot):
    inputs = [_upsert_input(f"p{n}@x.com", f"r{n}") for n in range(101)]

    response = _hubspot(hubspot, "POST", UPSERT, {"inputs": inputs})

    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert response.json()["message"] == (
        "The maximum number of inputs supported in a batch is 100. "
        "Please reduce the number of items and try again"
    )
    assert hubspot.contacts == {}
    assert _hubspot(hubspot, "POST", UPSERT, {"inputs": inputs[:100]}).status_code == 200


def test_hubspot_rejects_a_missing_or_wrong_token_with_401(hubspot):
    missing = requests.post(hubspot.base_url + UPSERT, json={"inputs": []}, timeout=5)
    wrong = requests.post(
        hubspot.base_url + UPSERT,
        json={"inputs": []},
        headers={"Authorization": "Bearer nope"},
        timeout=5,
    )

    assert [missing.status_code, wrong.status_code] == [401, 401]
    assert wrong.json()["category"] == "INVALID_AUTHENTICATION"


def test_hubspot_rejects_a_non_string_property_naming_the_field(hubspot):
    bad = _upsert_input("a@x.com", "r1")
    bad["properties"]["total_orders"] = 3

    response = _hubspot(hubspot, "POST", UPSERT, {"inputs": [bad]})

    assert response.status_code == 400
    assert response.json()["errors"][0]["in"] == "inputs[0].properties.total_orders"
    assert "total_orders" in response.json()["message"]


def test_hubspot_upsert_by_a_non_unique_property_is_refused(hubspot):
    item = {"id": "Jane", "idProperty": "firstname", "properties": {}}

    response = _hubspot(hubspot, "POST", UPSERT, {"inputs": [item]})

    assert response.status_code == 400
    assert "non-unique 0-1 property firstname" in response.json()["message"]


def test_hubspot_malformed_email_fails_only_its_row_with_207_by_a_custom_id_property(hubspot):
    inputs = [
        {
            "id": "c-1",
            "idProperty": "tessera_customer_id",
            "objectWriteTraceId": "r1",
            "properties": {"email": "good@x.com"},
        },
        {
            "id": "c-2",
            "idProperty": "tessera_customer_id",
            "objectWriteTraceId": "r2",
            "properties": {"email": "not-an-email"},
        },
    ]

    response = _hubspot(hubspot, "POST", UPSERT, {"inputs": inputs})
    body = response.json()

    assert response.status_code == 207
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"] == {"objectWriteTraceId": ["r2"]}
    assert body["errors"][0]["errors"][0]["code"] == "INVALID_EMAIL"
    assert [result["objectWriteTraceId"] for result in body["results"]] == ["r1"]
    assert hubspot.contact_by("tessera_customer_id", "c-1") is not None
    assert hubspot.contact_by("tessera_customer_id", "c-2") is None


def test_hubspot_malformed_email_as_the_id_property_fails_the_whole_batch(hubspot):
    inputs = [_upsert_input("good@x.com", "r1"), _upsert_input("bad-email", "r2")]

    response = _hubspot(hubspot, "POST", UPSERT, {"inputs": inputs})

    assert response.status_code == 400
    assert response.json()["errors"][0]["in"] == "inputs[1]"
    assert hubspot.contacts == {}


def test_hubspot_partial_failure_fault_answers_207_with_every_row_accounted_for():
    with HubSpotEmulator(faults=Faults(partial_failure=0.3, seed=11)) as hubspot:
        inputs = [_upsert_input(f"p{n}@x.com", f"r{n}") for n in range(100)]
        body = _hubspot(hubspot, "POST", UPSERT, {"inputs": inputs}).json()

        failed = {error["context"]["objectWriteTraceId"][0] for error in body["errors"]}
        succeeded = {result["objectWriteTraceId"] for result in body["results"]}
        assert body["numErrors"] == len(failed) > 0
        assert failed | succeeded == {f"r{n}" for n in range(100)}
        assert not failed & succeeded
        assert len(hubspot.contacts) == len(succeeded)


def test_hubspot_batch_update_and_archive_change_existing_contacts(hubspot):
    created = _hubspot(hubspot, "POST", UPSERT, {"inputs": [_upsert_input("a@x.com", "r1")]})
    contact_id = created.json()["results"][0]["id"]

    updated = _hubspot(
        hubspot,
        "POST",
        "/crm/v3/objects/contacts/batch/update",
        {
            "inputs": [
                {"id": contact_id, "properties": {"firstname": ""}},
                {"id": "999999", "properties": {"firstname": "X"}},
            ]
        },
    )
    archived = _hubspot(
        hubspot, "POST", "/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": contact_id}]}
    )

    assert updated.status_code == 207
    assert updated.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert "firstname" not in updated.json()["results"][0]["properties"]
    assert archived.status_code == 204
    assert archived.content == b""
    assert hubspot.contacts == {}
    assert list(hubspot.archived) == [contact_id]


def test_hubspot_manual_list_memberships_add_remove_and_report_missing_records(hubspot):
    ids = [
        result["id"]
        for result in _hubspot(
            hubspot,
            "POST",
            UPSERT,
            {"inputs": [_upsert_input(f"p{n}@x.com", f"r{n}") for n in range(3)]},
        ).json()["results"]
    ]
    created = _hubspot(
        hubspot,
        "POST",
        "/crm/v3/lists",
        {"name": "VIP", "objectTypeId": "0-1", "processingType": "MANUAL"},
    )
    list_id = created.json()["list"]["listId"]
    members = f"/crm/v3/lists/{list_id}/memberships"

    added = _hubspot(hubspot, "PUT", members + "/add", [ids[0], ids[1], "424242"])
    both = _hubspot(
        hubspot,
        "PUT",
        members + "/add-and-remove",
        {"recordIdsToAdd": [ids[2], ids[1]], "recordIdsToRemove": [ids[0]]},
    )

    assert added.json() == {
        "recordsIdsAdded": ids[:2],
        "recordIdsRemoved": [],
        "recordIdsMissing": ["424242"],
    }
    assert both.json() == {
        "recordsIdsAdded": [ids[2]],
        "recordIdsRemoved": [ids[0]],
        "recordIdsMissing": [],
    }
    assert hubspot.list_members(list_id) == [ids[1], ids[2]]


def test_hubspot_refuses_membership_changes_on_a_dynamic_list(hubspot):
    created = _hubspot(
        hubspot,
        "POST",
        "/crm/v3/lists",
        {"name": "Auto", "objectTypeId": "0-1", "processingType": "DYNAMIC"},
    )
    list_id = created.json()["list"]["listId"]

    response = _hubspot(hubspot, "PUT", f"/crm/v3/lists/{list_id}/memberships/add", ["1001"])
    missing = _hubspot(hubspot, "PUT", "/crm/v3/lists/777/memberships/add", ["1001"])

    assert response.status_code == 400
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_hubspot_throttles_with_its_rate_limit_body_and_headers():
    with HubSpotEmulator(rate_limit=RateLimit(requests=2, per_seconds=10)) as hubspot:
        answers = [
            _hubspot(hubspot, "POST", UPSERT, {"inputs": [_upsert_input("a@x.com", "r")]})
            for _ in range(3)
        ]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert answers[2].json()["errorType"] == "RATE_LIMIT"
    assert int(answers[2].headers["Retry-After"]) == 10
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "2"
    assert answers[1].headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_hubspot_unchanged_resync_is_visible_as_zero_requests_in_the_log(hubspot):
    _hubspot(hubspot, "POST", UPSERT, {"inputs": [_upsert_input("a@x.com", "r1")]})
    hubspot.clear_log()

    assert hubspot.request_count(UPSERT) == 0
    _hubspot(hubspot, "POST", UPSERT, {"inputs": [_upsert_input("a@x.com", "r1")]})
    assert hubspot.request_count(UPSERT, method="POST") == 1


# Salesforce

SF_UPSERT = "/services/data/v62.0/composite/sobjects/Contact/CDP_Id__c"
SF_JOBS = "/services/data/v62.0/jobs/ingest"


@pytest.fixture
def salesforce() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(token="sf-token") as emulator:
        yield emulator


def _sf(
    emulator: SalesforceEmulator, method: str, path: str, **kwargs: object
) -> requests.Response:
    headers = {"Authorization": f"Bearer {emulator.token}", **kwargs.pop("headers", {})}
    return requests.request(method, emulator.base_url + path, headers=headers, timeout=5, **kwargs)


def _contact(cdp_id: str, **fields: object) -> dict[str, object]:
    return {"attributes": {"type": "Contact"}, "CDP_Id__c": cdp_id, "LastName": "Doe", **fields}


def test_salesforce_upsert_reports_created_then_updated_in_request_order(salesforce):
    first = _sf(
        salesforce, "PATCH", SF_UPSERT, json={"records": [_contact("c-1"), _contact("c-2")]}
    )
    second = _sf(
        salesforce,
        "PATCH",
        SF_UPSERT,
        json={"records": [_contact("c-3"), _contact("c-1", FirstName="Ann")]},
    )

    assert first.status_code == 200
    assert [row["created"] for row in first.json()] == [True, True]
    assert [row["created"] for row in second.json()] == [True, False]
    assert second.json()[1]["id"] == first.json()[0]["id"]
    assert len(salesforce.records["Contact"]) == 3
    assert salesforce.record_by("Contact", "CDP_Id__c", "c-1")["FirstName"] == "Ann"
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"


def test_salesforce_refuses_201_records_with_400(salesforce):
    records = [_contact(f"c-{n}") for n in range(201)]

    response = _sf(salesforce, "PATCH", SF_UPSERT, json={"records": records})

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert salesforce.records == {}
    assert _sf(salesforce, "PATCH", SF_UPSERT, json={"records": records[:200]}).status_code == 200


def test_salesforce_rejects_a_bad_token_with_invalid_session_id(salesforce):
    response = requests.patch(
        salesforce.base_url + SF_UPSERT,
        json={"records": []},
        headers={"Authorization": "Bearer expired"},
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_salesforce_rejects_a_record_without_attributes_type_naming_the_field(salesforce):
    response = _sf(
        salesforce,
        "PATCH",
        SF_UPSERT,
        json={"records": [_contact("c-1"), {"attributes": {}, "CDP_Id__c": "c-2"}]},
    )

    assert response.status_code == 400
    assert response.json()[0]["fields"] == ["records[1].attributes.type"]


def test_salesforce_fails_rows_missing_last_name_or_carrying_id_and_keeps_the_rest(salesforce):
    records = [
        _contact("c-1"),
        {"attributes": {"type": "Contact"}, "CDP_Id__c": "c-2", "Email": "b@x.com"},
        _contact("c-3", Id="003000000000001AAA"),
    ]

    results = _sf(salesforce, "PATCH", SF_UPSERT, json={"records": records}).json()

    assert [row["success"] for row in results] == [True, False, False]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[1]["errors"][0]["fields"] == ["LastName"]
    assert results[2]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert len(salesforce.records["Contact"]) == 1


def test_salesforce_all_or_none_rolls_back_the_valid_rows_too(salesforce):
    records = [_contact("c-1"), {"attributes": {"type": "Contact"}, "CDP_Id__c": "c-2"}]

    results = _sf(
        salesforce, "PATCH", SF_UPSERT, json={"allOrNone": True, "records": records}
    ).json()

    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert salesforce.records.get("Contact", {}) == {}


def test_salesforce_composite_delete_reports_each_id(salesforce):
    created = _sf(salesforce, "PATCH", SF_UPSERT, json={"records": [_contact("c-1")]}).json()
    record_id = created[0]["id"]

    first = _sf(
        salesforce,
        "DELETE",
        "/services/data/v62.0/composite/sobjects",
        params={"ids": f"{record_id},003999999999999AAA", "allOrNone": "false"},
    )
    again = _sf(
        salesforce, "DELETE", "/services/data/v62.0/composite/sobjects", params={"ids": record_id}
    )

    assert [row["success"] for row in first.json()] == [True, False]
    assert first.json()[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert again.json()[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert salesforce.records["Contact"] == {}


def test_salesforce_soql_finds_records_by_external_id_across_pages():
    with SalesforceEmulator(query_page_size=1) as salesforce:
        records = [_contact("c-1"), _contact("c-2"), _contact("o'brien")]
        _sf(salesforce, "PATCH", SF_UPSERT, json={"records": records})
        soql = "SELECT Id, CDP_Id__c FROM Contact WHERE CDP_Id__c IN ('c-2', 'o\\'brien', 'zz')"

        first = _sf(salesforce, "GET", "/services/data/v62.0/query", params={"q": soql}).json()
        second = _sf(salesforce, "GET", first["nextRecordsUrl"]).json()
        malformed = _sf(salesforce, "GET", "/services/data/v62.0/query", params={"q": "DROP"})

    assert first["totalSize"] == 2
    assert first["done"] is False
    assert second["done"] is True
    assert [row["CDP_Id__c"] for row in first["records"] + second["records"]] == ["c-2", "o'brien"]
    assert first["records"][0]["Id"].startswith("003")
    assert malformed.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_salesforce_daily_allocation_exhausted_answers_403_request_limit_exceeded():
    with SalesforceEmulator(daily_limit=2) as salesforce:
        statuses = [
            _sf(salesforce, "PATCH", SF_UPSERT, json={"records": [_contact("c-1")]})
            for _ in range(3)
        ]

    assert [answer.status_code for answer in statuses] == [200, 200, 403]
    assert statuses[2].json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert statuses[1].headers["Sforce-Limit-Info"] == "api-usage=2/2"


def test_salesforce_throttling_fault_is_a_403_concurrency_limit_with_retry_after():
    with SalesforceEmulator(faults=Faults(rate_limit=1.0, retry_after=2)) as salesforce:
        response = _sf(salesforce, "PATCH", SF_UPSERT, json={"records": [_contact("c-1")]})

    assert response.status_code == 403
    assert response.json()[0]["message"] == "ConcurrentPerOrgLongTxn Limit exceeded."
    assert response.headers["Retry-After"] == "2"


def test_salesforce_bulk_upsert_job_moves_to_job_complete_and_reports_csv_results(salesforce):
    job = _sf(
        salesforce,
        "POST",
        SF_JOBS,
        json={
            "object": "Contact",
            "operation": "upsert",
            "externalIdFieldName": "CDP_Id__c",
            "contentType": "CSV",
            "lineEnding": "LF",
        },
    ).json()
    csv_body = "CDP_Id__c,LastName,Email\nc-1,Doe,a@x.com\nc-2,,b@x.com\nc-3,Roe,c@x.com\n"
    upload = _sf(
        salesforce,
        "PUT",
        f"{SF_JOBS}/{job['id']}/batches",
        data=csv_body,
        headers={"Content-Type": "text/csv"},
    )
    before_close = _sf(salesforce, "GET", f"{SF_JOBS}/{job['id']}").json()["state"]
    closed = _sf(salesforce, "PATCH", f"{SF_JOBS}/{job['id']}", json={"state": "UploadComplete"})
    states = [_sf(salesforce, "GET", f"{SF_JOBS}/{job['id']}").json() for _ in range(2)]
    late_upload = _sf(
        salesforce,
        "PUT",
        f"{SF_JOBS}/{job['id']}/batches",
        data=csv_body,
        headers={"Content-Type": "text/csv"},
    )
    successful = _sf(salesforce, "GET", f"{SF_JOBS}/{job['id']}/successfulResults/").text
    failed = _sf(salesforce, "GET", f"{SF_JOBS}/{job['id']}/failedResults/").text

    assert job["state"] == "Open"
    assert upload.status_code == 201
    assert upload.content == b""
    assert before_close == "Open"
    assert closed.json()["state"] == "UploadComplete"
    assert [state["state"] for state in states] == ["InProgress", "JobComplete"]
    assert states[1]["numberRecordsProcessed"] == 3
    assert states[1]["numberRecordsFailed"] == 1
    assert late_upload.status_code == 409
    assert successful.splitlines()[0] == '"sf__Id","sf__Created","CDP_Id__c","LastName","Email"'
    assert sorted(line.split(",")[2] for line in successful.splitlines()[1:]) == ['"c-1"', '"c-3"']
    assert failed.splitlines()[1].startswith('"","REQUIRED_FIELD_MISSING:')
    assert len(salesforce.records["Contact"]) == 2


# Meta


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def meta() -> Iterator[MetaEmulator]:
    with MetaEmulator(token="meta-token") as emulator:
        yield emulator


def _graph(emulator: MetaEmulator, method: str, path: str, body: object) -> requests.Response:
    return requests.request(
        method,
        emulator.base_url + path,
        json=body,
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=10,
    )


def _audience(meta: MetaEmulator) -> str:
    created = _graph(
        meta,
        "POST",
        "/v21.0/act_1234/customaudiences",
        {
            "name": "VIP",
            "subtype": "CUSTOM",
            "customer_file_source": "USER_PROVIDED_ONLY",
        },
    )
    assert created.status_code == 200
    return created.json()["id"]


def _payload(*emails: str) -> dict[str, object]:
    return {"schema": ["EMAIL", "PHONE"], "data": [[_sha(email), ""] for email in emails]}


def test_meta_adds_and_removes_hashed_members_and_counts_them(meta):
    audience_id = _audience(meta)
    users = f"/v21.0/{audience_id}/users"

    added = _graph(meta, "POST", users, {"payload": _payload("a@x.com", "b@x.com", "c@x.com")})
    removed = _graph(
        meta, "DELETE", users, {"payload": {"schema": "EMAIL", "data": [_sha("b@x.com")]}}
    )

    assert added.json()["num_received"] == 3
    assert added.json()["num_invalid_entries"] == 0
    assert removed.json()["num_received"] == 1
    assert meta.member_values(audience_id, "EMAIL") == {_sha("a@x.com"), _sha("c@x.com")}


def test_meta_rejects_a_plain_text_email_naming_the_value_and_adds_nobody(meta):
    audience_id = _audience(meta)
    payload = {"schema": ["EMAIL"], "data": [[_sha("a@x.com")], ["jane@example.com"]]}

    response = _graph(meta, "POST", f"/v21.0/{audience_id}/users", {"payload": payload})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert "payload.data[1][0]" in response.json()["error"]["message"]
    assert meta.audiences[audience_id].members == set()


def test_meta_counts_unhashed_rows_as_invalid_entries_when_not_strict():
    with MetaEmulator(reject_unhashed=False) as meta:
        audience_id = _audience(meta)
        payload = {
            "schema": ["EMAIL"],
            "data": [[_sha("a@x.com")], ["JANE@EXAMPLE.COM"], [_sha("b@x.com").upper()]],
        }

        body = _graph(meta, "POST", f"/v21.0/{audience_id}/users", {"payload": payload}).json()

        assert body["num_received"] == 3
        assert body["num_invalid_entries"] == 2
        assert "JANE@EXAMPLE.COM" in body["invalid_entry_samples"]
        assert meta.member_values(audience_id, "EMAIL") == {_sha("a@x.com")}


def test_meta_refuses_10001_rows_in_one_request(meta):
    audience_id = _audience(meta)
    payload = {"schema": ["EMAIL"], "data": [[_sha(f"p{n}@x.com")] for n in range(10_001)]}

    too_many = _graph(meta, "POST", f"/v21.0/{audience_id}/users", {"payload": payload})
    at_limit = _graph(
        meta,
        "POST",
        f"/v21.0/{audience_id}/users",
        {"payload": {**payload, "data": payload["data"][:10_000]}},
    )

    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == 100
    assert "10000" in too_many.json()["error"]["message"]
    assert at_limit.json()["num_received"] == 10_000


def test_meta_rejects_a_bad_token_with_error_190(meta):
    audience_id = _audience(meta)

    response = requests.post(
        meta.base_url + f"/v21.0/{audience_id}/users",
        json={"payload": _payload("a@x.com")},
        headers={"Authorization": "Bearer wrong"},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 190
    assert response.json()["error"]["type"] == "OAuthException"
    assert "fbtrace_id" in response.json()["error"]
    assert "invalid_token" in response.headers["WWW-Authenticate"]


def test_meta_rejects_an_unknown_schema_key_naming_it(meta):
    audience_id = _audience(meta)
    payload = {"schema": ["EMAIL", "SHOE_SIZE"], "data": [[_sha("a@x.com"), "42"]]}

    response = _graph(meta, "POST", f"/v21.0/{audience_id}/users", {"payload": payload})

    assert response.status_code == 400
    assert "schema" in response.json()["error"]["message"]


def test_meta_session_must_start_at_batch_seq_1_and_ends_with_last_batch_flag(meta):
    audience_id = _audience(meta)
    users = f"/v21.0/{audience_id}/users"

    def send(seq: int, last: bool, *emails: str) -> requests.Response:
        session = {"session_id": 77, "batch_seq": seq, "last_batch_flag": last}
        return _graph(meta, "POST", users, {"payload": _payload(*emails), "session": session})

    skipped_first = send(2, False, "a@x.com")
    first = send(1, False, "a@x.com", "b@x.com")
    resent = send(1, False, "a@x.com", "b@x.com")
    last = send(2, True, "c@x.com")
    after_end = send(3, False, "d@x.com")

    assert skipped_first.json()["error"]["code"] == 2650
    assert skipped_first.json()["error"]["error_subcode"] == 1870147
    assert first.json()["num_received"] == 2
    assert resent.json()["num_received"] == 2
    assert last.json()["num_received"] == 3
    assert last.json()["session_id"] == "77"
    assert after_end.json()["error"]["error_subcode"] == 1870159
    assert len(meta.member_values(audience_id, "EMAIL")) == 3
    assert meta.duplicate_batches == 1


def test_meta_usersreplace_swaps_the_members_and_blocks_users_while_it_runs(meta):
    audience_id = _audience(meta)
    _graph(meta, "POST", f"/v21.0/{audience_id}/users", {"payload": _payload("old@x.com")})
    replace = f"/v21.0/{audience_id}/usersreplace"

    first = _graph(
        meta,
        "POST",
        replace,
        {
            "payload": _payload("new1@x.com"),
            "session": {"session_id": 9, "batch_seq": 1, "last_batch_flag": False},
        },
    )
    status = _graph(meta, "GET", f"/v21.0/{audience_id}", None).json()["operation_status"]
    blocked = _graph(meta, "POST", f"/v21.0/{audience_id}/users", {"payload": _payload("x@x.com")})
    second_replace = _graph(
        meta,
        "POST",
        replace,
        {
            "payload": _payload("y@x.com"),
            "session": {"session_id": 10, "batch_seq": 1},
        },
    )
    last = _graph(
        meta,
        "POST",
        replace,
        {
            "payload": _payload("new2@x.com"),
            "session": {"session_id": 9, "batch_seq": 2, "last_batch_flag": True},
        },
    )

    assert first.status_code == 200
    assert status["code"] == 300
    assert blocked.json()["error"]["error_subcode"] == 1870145
    assert second_replace.json()["error"]["error_subcode"] == 1870145
    assert last.json()["num_received"] == 2
    assert meta.member_values(audience_id, "EMAIL") == {_sha("new1@x.com"), _sha("new2@x.com")}


def test_meta_usersreplace_without_a_session_is_refused(meta):
    audience_id = _audience(meta)

    response = _graph(
        meta, "POST", f"/v21.0/{audience_id}/usersreplace", {"payload": _payload("a@x.com")}
    )

    assert response.json()["error"]["code"] == 100
    assert "session" in response.json()["error"]["message"]


def test_meta_replace_session_times_out_keeping_what_was_uploaded():
    with MetaEmulator(session_timeout_seconds=0.2) as meta:
        audience_id = _audience(meta)
        replace = f"/v21.0/{audience_id}/usersreplace"
        _graph(meta, "POST", f"/v21.0/{audience_id}/users", {"payload": _payload("old@x.com")})
        _graph(
            meta,
            "POST",
            replace,
            {"payload": _payload("new@x.com"), "session": {"session_id": 5, "batch_seq": 1}},
        )
        time.sleep(0.3)
        late = _graph(
            meta,
            "POST",
            replace,
            {"payload": _payload("late@x.com"), "session": {"session_id": 5, "batch_seq": 2}},
        )

        assert late.json()["error"]["code"] == 2650
        assert late.json()["error"]["error_subcode"] == 1870158
        assert meta.member_values(audience_id, "EMAIL") == {_sha("new@x.com")}


def test_meta_accepts_form_encoded_parameters_with_the_token_as_access_token(meta):
    audience_id = _audience(meta)

    response = requests.post(
        meta.base_url + f"/v21.0/{audience_id}/users",
        data={"payload": json.dumps(_payload("a@x.com")), "access_token": meta.token},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.json()["num_received"] == 1


def test_meta_throttling_is_error_80003_with_business_use_case_usage():
    with MetaEmulator(faults=Faults(rate_limit=1.0, retry_after=120)) as meta:
        response = _graph(meta, "POST", "/v21.0/123/users", {"payload": _payload("a@x.com")})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 80003
    usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
    assert next(iter(usage.values()))[0]["estimated_time_to_regain_access"] == 2
    assert response.headers["Retry-After"] == "120"


# Google Data Manager

INGEST = "/v1/audienceMembers:ingest"


@pytest.fixture
def google() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(token="g-token") as emulator:
        yield emulator


def _dm(emulator: GoogleEmulator, path: str, body: object) -> requests.Response:
    return requests.post(
        emulator.base_url + path,
        json=body,
        headers={"Authorization": f"Bearer {emulator.token}"},
        timeout=10,
    )


def _dm_request(*emails: str, **overrides: object) -> dict[str, object]:
    return {
        "destinations": [
            {
                "reference": "d1",
                "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                "productDestinationId": "555",
            }
        ],
        "audienceMembers": [
            {
                "destinationReferences": ["d1"],
                "consent": {
                    "adUserData": "CONSENT_GRANTED",
                    "adPersonalization": "CONSENT_GRANTED",
                },
                "userData": {"userIdentifiers": [{"emailAddress": _sha(email)}]},
            }
            for email in emails
        ],
        "encoding": "HEX",
        **overrides,
    }


def test_google_ingests_then_removes_members_of_the_user_list(google):
    ingested = _dm(google, INGEST, _dm_request("a@x.com", "b@x.com"))
    removed = _dm(google, "/v1/audienceMembers:remove", _dm_request("a@x.com"))
    status = requests.get(
        google.base_url + "/v1/requestStatus:retrieve",
        params={"requestId": ingested.json()["requestId"]},
        headers={"Authorization": f"Bearer {google.token}"},
        timeout=5,
    )

    assert ingested.status_code == 200
    assert set(ingested.json()) == {"requestId"}
    assert removed.status_code == 200
    assert google.member_values("1234567890", "555", "email_address") == {_sha("b@x.com")}
    assert status.json()["requestStatusPerDestination"][0]["requestStatus"] == "SUCCESS"


def test_google_refuses_10001_members_and_11_identifiers(google):
    too_many = _dm(google, INGEST, _dm_request(*[f"p{n}@x.com" for n in range(10_001)]))
    eleven = _dm_request("a@x.com")
    eleven["audienceMembers"][0]["userData"]["userIdentifiers"] = [
        {"emailAddress": _sha(f"e{n}@x.com")} for n in range(11)
    ]
    too_many_ids = _dm(google, INGEST, eleven)

    assert too_many.status_code == 400
    assert too_many.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert too_many_ids.status_code == 400
    violation = too_many_ids.json()["error"]["details"][0]["fieldViolations"][0]
    assert violation["field"] == "audience_members[0].user_data.user_identifiers"
    assert google.members == {}


def test_google_fails_the_whole_request_for_one_unhashed_email_naming_its_field(google):
    body = _dm_request("a@x.com", "b@x.com")
    body["audienceMembers"][1]["userData"]["userIdentifiers"][0]["emailAddress"] = "b@x.com"

    response = _dm(google, INGEST, body)

    assert response.status_code == 400
    violation = response.json()["error"]["details"][0]["fieldViolations"][0]
    assert violation["field"] == "audience_members[1].user_data.user_identifiers[0].email_address"
    assert google.members == {}


def test_google_requires_the_encoding(google):
    body = _dm_request("a@x.com")
    del body["encoding"]

    response = _dm(google, INGEST, body)

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["fieldViolations"][0]["field"] == "encoding"


def test_google_rejects_a_bad_token_with_unauthenticated(google):
    response = requests.post(google.base_url + INGEST, json=_dm_request("a@x.com"), timeout=5)

    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_google_partial_failure_fault_fails_the_whole_request_never_single_rows():
    with GoogleEmulator(faults=Faults(partial_failure=0.1, seed=3)) as google:
        response = _dm(google, INGEST, _dm_request(*[f"p{n}@x.com" for n in range(50)]))

        assert response.status_code == 400
        assert "results" not in response.json()
        assert google.members == {}


def test_google_throttles_with_resource_exhausted_at_100_percent_and_never_at_0(google):
    google.set_faults(rate_limit=1.0, retry_after=30)
    throttled = [_dm(google, INGEST, _dm_request("a@x.com")) for _ in range(3)]
    google.set_faults(rate_limit=0.0)
    passed = [_dm(google, INGEST, _dm_request("a@x.com")) for _ in range(10)]

    assert [answer.status_code for answer in throttled] == [429, 429, 429]
    error = throttled[0].json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"][0]["metadata"]["quota_limit"] == "IngestionRequestsPerMinutePerProject"
    assert throttled[0].headers["Retry-After"] == "30"
    assert [answer.status_code for answer in passed] == [200] * 10


def test_google_server_error_fault_answers_503_unavailable():
    with GoogleEmulator(faults=Faults(server_error=1.0)) as google:
        response = _dm(google, INGEST, _dm_request("a@x.com"))

    assert response.status_code == 503
    assert response.json()["error"]["status"] == "UNAVAILABLE"


# Shared behaviour


def test_concurrent_upserts_from_8_threads_create_each_contact_exactly_once(hubspot):
    def send(thread: int) -> list[bool]:
        inputs = [_upsert_input(f"p{n}@x.com", f"t{thread}-{n}") for n in range(50)]
        body = _hubspot(hubspot, "POST", UPSERT, {"inputs": inputs}).json()
        return [result["new"] for result in body["results"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        flags = [flag for answer in pool.map(send, range(8)) for flag in answer]

    assert len(hubspot.contacts) == 50
    assert flags.count(True) == 50
    assert flags.count(False) == 350
    assert hubspot.request_count(UPSERT) == 8


def test_faults_refuse_a_probability_above_one_when_changed_at_runtime(hubspot):
    with pytest.raises(ValidationError):
        hubspot.faults.rate_limit = 1.5
    with pytest.raises(ValidationError):
        hubspot.set_faults(server_error=-0.1)

    assert hubspot.faults.rate_limit == 0.0


def test_command_line_prints_the_base_url_of_a_running_emulator():
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators", "google", "--token", "t"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        response = requests.post(base_url + INGEST, json={}, timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert base_url.startswith("http://127.0.0.1:")
    assert response.status_code == 401
