"""The Salesforce emulator enforces what the REST and Bulk 2.0 APIs enforce."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from emulators import Faults
from emulators.salesforce import SalesforceEmulator

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
