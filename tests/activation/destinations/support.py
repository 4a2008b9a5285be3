"""Helpers the platform destination tests share (and the demo audiences' end-to-end test):
emulators extended with the reads a connector needs, records, run contexts, and settling a
sync run against faults."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import requests

from emulators import Faults
from emulators.base import Request, Response, route
from emulators.hubspot import CONTACTS, HubSpotEmulator
from emulators.meta import MetaEmulator
from emulators.salesforce import SalesforceEmulator
from orchestration.activation.config import SyncSpec
from orchestration.activation.destination import (
    Record,
    RunContext,
)
from orchestration.activation.engine import RetryPolicy, SyncResult, run_sync
from tests.activation.sync_support import (
    AUDIENCE,
    Sleeps,
    members,
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


def make_audience(emulator: MetaEmulator) -> str:
    answer = requests.post(
        f"{emulator.base_url}/v23.0/act_123/customaudiences",
        json={"name": "VIP", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    return answer.json()["id"]


ACCOUNT, USER_LIST = "1234567890", "555"


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
