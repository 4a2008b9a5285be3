"""Connection checks against the platform emulators go through the engine's retry and
throttling like every request: a run whose check is throttled waits Retry-After and succeeds,
one whose check meets server errors retries with backoff, and a refused token fails at once.

The faults are kept to the check's endpoint and capped (``Faults(paths=..., limit=...)``), so
they land on the check, the run's first requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest
import requests

from emulators.base import Emulator, Faults
from emulators.google import GoogleEmulator
from emulators.hubspot import HubSpotEmulator
from emulators.meta import MetaEmulator
from emulators.salesforce import SalesforceEmulator
from orchestration.activation.config import SyncSpec
from orchestration.activation.destinations import registry
from orchestration.activation.engine import SyncResult, run_sync
from tests.activation.sync_support import AUDIENCE, Sleeps, spec

# One adapter: what is tested here does not depend on the warehouse's SQL.
pytestmark = [pytest.mark.integration, pytest.mark.duckdb_only]
TOKEN = "check-token"
MEMBERS = 3


@dataclass
class Platform:
    """One platform: its emulator, the path prefix of its connection check, and its sync."""

    name: str
    emulator: Callable[..., Emulator]
    check_path: Callable[[Emulator, dict[str, Any]], str]
    sync: Callable[[dict[str, Any]], SyncSpec]
    #: Makes what the sync needs on the platform (Meta's audience); its options.
    setup: Callable[[Emulator], dict[str, Any]] = lambda api: {}


def _meta_audience(api: Emulator) -> dict[str, Any]:
    answer = requests.post(
        f"{api.base_url}/v23.0/act_123/customaudiences",
        json={"name": "VIP", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    return {"audience_id": answer.json()["id"]}


PLATFORMS = {
    "hubspot": Platform(
        "hubspot",
        HubSpotEmulator,
        lambda api, _: "/crm/v3/objects/contacts",
        lambda _: spec(destination="hubspot"),
    ),
    "salesforce": Platform(
        "salesforce",
        SalesforceEmulator,
        lambda api, _: "/services/data/v62.0/limits",
        lambda _: spec(
            destination="salesforce", fields={"Email": "email", "LastName": "first_name"}
        ),
    ),
    "meta": Platform(
        "meta",
        MetaEmulator,
        lambda api, options: f"/v23.0/{options['audience_id']}",
        lambda options: spec(destination="meta", fields={"email": "email"}, options=options),
        setup=_meta_audience,
    ),
    "google": Platform(
        "google",
        GoogleEmulator,
        lambda api, _: "/v1/audienceMembers:ingest",
        lambda _: spec(
            destination="google",
            fields={"email": "email"},
            options={"operating_account_id": "1234567890", "user_list_id": "555"},
        ),
    ),
}


def write_members(warehouse) -> None:
    """Members consenting to email marketing and to advertising, so any platform sends them."""
    numbers = range(MEMBERS)
    table = pa.table(
        {
            "customer_id": pa.array([f"c{n:04d}" for n in numbers], pa.string()),
            "email": pa.array([f"user{n}@mail.com" for n in numbers], pa.string()),
            "first_name": pa.array([f"Name{n}" for n in numbers], pa.string()),
            "has_consent_email_marketing": pa.array([True] * MEMBERS, pa.bool_()),
            "has_consent_advertising": pa.array([True] * MEMBERS, pa.bool_()),
        }
    )
    warehouse.write_tables("audiences", {AUDIENCE: table})


@pytest.fixture(params=list(PLATFORMS))
def platform(request) -> Platform:
    return PLATFORMS[request.param]


@contextmanager
def emulated(platform: Platform, token: str = TOKEN) -> Iterator[tuple[Emulator, dict, SyncSpec]]:
    with platform.emulator(token=TOKEN) as api:
        options = platform.setup(api)
        api.clear_log()
        prefix = f"TESSERA_{platform.name.upper()}_"
        env = {f"{prefix}BASE_URL": api.base_url, f"{prefix}TOKEN": token}
        yield api, env, platform.sync(options)


def _run(warehouse, sync: SyncSpec, env: dict, sleeps: Sleeps) -> SyncResult:
    return run_sync(sync, warehouse, registry(), env=env, policy=sleeps.policy(jitter=lambda: 1.0))


def test_a_throttled_connection_check_waits_retry_after_and_the_run_succeeds(warehouse, platform):
    # One 429 on a connection check failed the whole run, Retry-After ignored.
    write_members(warehouse)
    sleeps = Sleeps()
    with emulated(platform) as (api, env, sync):
        check = platform.check_path(api, sync.options)
        api.faults = Faults(rate_limit=1.0, retry_after=4, limit=2, paths=(check,))
        result = _run(warehouse, sync, env, sleeps)
        faults = dict(api.injected_faults)

    assert (result.status, result.succeeded) == ("succeeded", MEMBERS), result.format()
    assert faults == {"rate_limit": 2}
    assert (result.rate_limited, result.retries) == (2, 0)
    assert sleeps == [4.0, 4.0]


def test_a_connection_check_meeting_server_errors_retries_with_backoff(warehouse, platform):
    write_members(warehouse)
    sleeps = Sleeps()
    with emulated(platform) as (api, env, sync):
        check = platform.check_path(api, sync.options)
        api.faults = Faults(server_error=1.0, server_error_status=502, limit=2, paths=(check,))
        result = _run(warehouse, sync, env, sleeps)

    assert (result.status, result.succeeded) == ("succeeded", MEMBERS), result.format()
    assert (result.retries, result.rate_limited) == (2, 0)
    # RetryPolicy's backoff: 0.5 s, then 1 s.
    assert sleeps == [0.5, 1.0]


def test_a_refused_token_on_the_connection_check_fails_at_once_without_retries(warehouse, platform):
    write_members(warehouse)
    sleeps = Sleeps()
    with emulated(platform, token="wrong-token") as (api, env, sync):
        result = _run(warehouse, sync, env, sleeps)
        sent = [(entry.method, entry.path) for entry in api.log]

    assert (result.status, result.retryable) == ("failed", False)
    assert f"TESSERA_{platform.name.upper()}_TOKEN" in result.error
    assert (result.retries, result.rate_limited, result.requests, sleeps) == (0, 0, 0, [])
    assert len(sent) == 1


def test_hubspot_s_throttled_check_without_retry_after_waits_its_policy_s_ten_seconds(warehouse):
    # The contacts probe mapped errors generically, blind to HubSpot's rate-limit policies.
    class NoRetryAfter(HubSpotEmulator):
        def error_throttled(self, request, retry_after):
            response = super().error_throttled(request, retry_after)
            del response.headers["Retry-After"]
            return response

    platform = PLATFORMS["hubspot"]
    write_members(warehouse)
    sleeps = Sleeps()
    with emulated(Platform(**{**vars(platform), "emulator": NoRetryAfter})) as (api, env, sync):
        api.faults = Faults(rate_limit=1.0, limit=1, paths=("/crm/v3/objects/contacts",))
        result = _run(warehouse, sync, env, sleeps)

    assert (result.status, result.rate_limited) == ("succeeded", 1)
    assert sleeps == [10.0]
