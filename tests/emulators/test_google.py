"""The Google emulator enforces what the Data Manager API's ingest and remove enforce."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from emulators import Faults
from emulators.google import GoogleEmulator
from tests.emulators.support import INGEST, sha256


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
                "userData": {"userIdentifiers": [{"emailAddress": sha256(email)}]},
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
    assert google.member_values("1234567890", "555", "email_address") == {sha256("b@x.com")}
    assert status.json()["requestStatusPerDestination"][0]["requestStatus"] == "SUCCESS"


def test_google_refuses_10001_members_and_11_identifiers(google):
    too_many = _dm(google, INGEST, _dm_request(*[f"p{n}@x.com" for n in range(10_001)]))
    eleven = _dm_request("a@x.com")
    eleven["audienceMembers"][0]["userData"]["userIdentifiers"] = [
        {"emailAddress": sha256(f"e{n}@x.com")} for n in range(11)
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
