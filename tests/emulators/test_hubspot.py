"""The HubSpot emulator enforces what the CRM v3 API does: batch limits, 207 row errors, lists."""

from __future__ import annotations

import requests

from emulators import Faults, RateLimit
from emulators.hubspot import HubSpotEmulator
from tests.emulators.support import UPSERT, hubspot_request, upsert_input


def test_hubspot_upsert_creates_then_updates_and_says_which_with_new(hubspot):
    first = hubspot_request(hubspot, "POST", UPSERT, {"inputs": [upsert_input("a@x.com", "r1")]})
    second = hubspot_request(
        hubspot,
        "POST",
        UPSERT,
        {
            "inputs": [
                upsert_input("a@x.com", "r1", firstname="Janet"),
                upsert_input("b@x.com", "r2"),
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
    inputs = [upsert_input(f"p{n}@x.com", f"r{n}") for n in range(101)]

    response = hubspot_request(hubspot, "POST", UPSERT, {"inputs": inputs})

    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert response.json()["message"] == (
        "The maximum number of inputs supported in a batch is 100. "
        "Please reduce the number of items and try again"
    )
    assert hubspot.contacts == {}
    assert hubspot_request(hubspot, "POST", UPSERT, {"inputs": inputs[:100]}).status_code == 200


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
    bad = upsert_input("a@x.com", "r1")
    bad["properties"]["total_orders"] = 3

    response = hubspot_request(hubspot, "POST", UPSERT, {"inputs": [bad]})

    assert response.status_code == 400
    assert response.json()["errors"][0]["in"] == "inputs[0].properties.total_orders"
    assert "total_orders" in response.json()["message"]


def test_hubspot_upsert_by_a_non_unique_property_is_refused(hubspot):
    item = {"id": "Jane", "idProperty": "firstname", "properties": {}}

    response = hubspot_request(hubspot, "POST", UPSERT, {"inputs": [item]})

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

    response = hubspot_request(hubspot, "POST", UPSERT, {"inputs": inputs})
    body = response.json()

    assert response.status_code == 207
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"] == {"objectWriteTraceId": ["r2"]}
    assert body["errors"][0]["errors"][0]["code"] == "INVALID_EMAIL"
    assert [result["objectWriteTraceId"] for result in body["results"]] == ["r1"]
    assert hubspot.contact_by("tessera_customer_id", "c-1") is not None
    assert hubspot.contact_by("tessera_customer_id", "c-2") is None


def test_hubspot_malformed_email_as_the_id_property_fails_the_whole_batch(hubspot):
    inputs = [upsert_input("good@x.com", "r1"), upsert_input("bad-email", "r2")]

    response = hubspot_request(hubspot, "POST", UPSERT, {"inputs": inputs})

    assert response.status_code == 400
    assert response.json()["errors"][0]["in"] == "inputs[1]"
    assert hubspot.contacts == {}


def test_hubspot_partial_failure_fault_answers_207_with_every_row_accounted_for():
    with HubSpotEmulator(faults=Faults(partial_failure=0.3, seed=11)) as hubspot:
        inputs = [upsert_input(f"p{n}@x.com", f"r{n}") for n in range(100)]
        body = hubspot_request(hubspot, "POST", UPSERT, {"inputs": inputs}).json()

        failed = {error["context"]["objectWriteTraceId"][0] for error in body["errors"]}
        succeeded = {result["objectWriteTraceId"] for result in body["results"]}
        assert body["numErrors"] == len(failed) > 0
        assert failed | succeeded == {f"r{n}" for n in range(100)}
        assert not failed & succeeded
        assert len(hubspot.contacts) == len(succeeded)


def test_hubspot_batch_update_and_archive_change_existing_contacts(hubspot):
    created = hubspot_request(hubspot, "POST", UPSERT, {"inputs": [upsert_input("a@x.com", "r1")]})
    contact_id = created.json()["results"][0]["id"]

    updated = hubspot_request(
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
    archived = hubspot_request(
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
        for result in hubspot_request(
            hubspot,
            "POST",
            UPSERT,
            {"inputs": [upsert_input(f"p{n}@x.com", f"r{n}") for n in range(3)]},
        ).json()["results"]
    ]
    created = hubspot_request(
        hubspot,
        "POST",
        "/crm/v3/lists",
        {"name": "VIP", "objectTypeId": "0-1", "processingType": "MANUAL"},
    )
    list_id = created.json()["list"]["listId"]
    members = f"/crm/v3/lists/{list_id}/memberships"

    added = hubspot_request(hubspot, "PUT", members + "/add", [ids[0], ids[1], "424242"])
    both = hubspot_request(
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
    created = hubspot_request(
        hubspot,
        "POST",
        "/crm/v3/lists",
        {"name": "Auto", "objectTypeId": "0-1", "processingType": "DYNAMIC"},
    )
    list_id = created.json()["list"]["listId"]

    response = hubspot_request(hubspot, "PUT", f"/crm/v3/lists/{list_id}/memberships/add", ["1001"])
    missing = hubspot_request(hubspot, "PUT", "/crm/v3/lists/777/memberships/add", ["1001"])

    assert response.status_code == 400
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_hubspot_throttles_with_its_rate_limit_body_and_headers():
    with HubSpotEmulator(rate_limit=RateLimit(requests=2, per_seconds=10)) as hubspot:
        answers = [
            hubspot_request(hubspot, "POST", UPSERT, {"inputs": [upsert_input("a@x.com", "r")]})
            for _ in range(3)
        ]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert answers[2].json()["errorType"] == "RATE_LIMIT"
    assert int(answers[2].headers["Retry-After"]) == 10
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "2"
    assert answers[1].headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_hubspot_unchanged_resync_is_visible_as_zero_requests_in_the_log(hubspot):
    hubspot_request(hubspot, "POST", UPSERT, {"inputs": [upsert_input("a@x.com", "r1")]})
    hubspot.clear_log()

    assert hubspot.request_count(UPSERT) == 0
    hubspot_request(hubspot, "POST", UPSERT, {"inputs": [upsert_input("a@x.com", "r1")]})
    assert hubspot.request_count(UPSERT, method="POST") == 1
