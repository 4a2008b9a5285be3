"""The Meta emulator enforces what the Marketing API's audience users edge enforces."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from emulators import Faults
from emulators.meta import MetaEmulator
from tests.emulators.support import sha256


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
    return {"schema": ["EMAIL", "PHONE"], "data": [[sha256(email), ""] for email in emails]}


def test_meta_adds_and_removes_hashed_members_and_counts_them(meta):
    audience_id = _audience(meta)
    users = f"/v21.0/{audience_id}/users"

    added = _graph(meta, "POST", users, {"payload": _payload("a@x.com", "b@x.com", "c@x.com")})
    removed = _graph(
        meta, "DELETE", users, {"payload": {"schema": "EMAIL", "data": [sha256("b@x.com")]}}
    )

    assert added.json()["num_received"] == 3
    assert added.json()["num_invalid_entries"] == 0
    assert removed.json()["num_received"] == 1
    assert meta.member_values(audience_id, "EMAIL") == {
        sha256("a@x.com"),
        sha256("c@x.com"),
    }


def test_meta_rejects_a_plain_text_email_naming_the_value_and_adds_nobody(meta):
    audience_id = _audience(meta)
    payload = {"schema": ["EMAIL"], "data": [[sha256("a@x.com")], ["jane@example.com"]]}

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
            "data": [
                [sha256("a@x.com")],
                ["JANE@EXAMPLE.COM"],
                [sha256("b@x.com").upper()],
            ],
        }

        body = _graph(meta, "POST", f"/v21.0/{audience_id}/users", {"payload": payload}).json()

        assert body["num_received"] == 3
        assert body["num_invalid_entries"] == 2
        assert "JANE@EXAMPLE.COM" in body["invalid_entry_samples"]
        assert meta.member_values(audience_id, "EMAIL") == {sha256("a@x.com")}


def test_meta_refuses_10001_rows_in_one_request(meta):
    audience_id = _audience(meta)
    payload = {"schema": ["EMAIL"], "data": [[sha256(f"p{n}@x.com")] for n in range(10_001)]}

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
    payload = {"schema": ["EMAIL", "SHOE_SIZE"], "data": [[sha256("a@x.com"), "42"]]}

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
    assert meta.member_values(audience_id, "EMAIL") == {
        sha256("new1@x.com"),
        sha256("new2@x.com"),
    }


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
        assert meta.member_values(audience_id, "EMAIL") == {sha256("new@x.com")}


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
