"""HubSpot contacts (CRM v3): batch upsert, create or update by a unique property, archive, and
static list membership.

Environment:

- ``TESSERA_HUBSPOT_TOKEN``: private-app or OAuth access token with the
  ``crm.objects.contacts.write`` scope (and ``crm.lists.write`` when ``list_id`` is set).
- ``TESSERA_HUBSPOT_BASE_URL``: API host, default ``https://api.hubapi.com``.
- ``TESSERA_HUBSPOT_TIMEOUT_SECONDS``: per-request timeout, default 30.

Options (the sync's YAML ``options``):

- ``id_property``: unique contact property the sync key's mapped field lives in; default
  ``email``. The record must carry it under that name.
- ``list_id``: a MANUAL or SNAPSHOT list (segment) the synced contacts are added to.
- ``on_remove``: what a ``remove`` does: ``list`` (leave ``list_id``; the default when a list is
  set), ``archive`` (archive the contact, restorable for 90 days; the default otherwise) or
  ``none``.

Modes: upsert and mirror use ``batch/upsert``; insert uses ``batch/create`` (a contact that
already exists is left as it is and its row succeeds with its id: HubSpot's CONFLICT answer is
also what a create retried after a timeout gets); update uses ``batch/update`` by
``id_property`` (a missing contact fails its row). Property values are sent as strings; None
clears the property.

Answers: 200/201/204 -> every row succeeded; 207 -> per-row outcomes, errors matched back to rows by
``objectWriteTraceId`` (the record key; a row's INTERNAL_ERROR is not a refusal); 429 -> RateLimited
after Retry-After, else after HubSpot's policy (10 s for TEN_SECONDLY_ROLLING, 1 s for SECONDLY); a
429 for the DAILY policy -> PermanentError (nothing more can be sent today; the rows stay for the
next run); 5xx or a timeout -> TransientError; 401/403 and a missing list (404) -> PermanentError;
400/409 for the whole batch -> BatchRejected.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import requests
from pydantic import model_validator

from orchestration.activation.destination import (
    PermanentError,
    RateLimited,
    Record,
    RecordOutcome,
    RunContext,
    WriteResult,
)
from orchestration.activation.destinations._http import (
    HttpDestination,
    HttpDestinationConfig,
    json_or_none,
    raise_for_status,
    retry_after,
)

CONTACTS = "crm/v3/objects/contacts"
#: Waits from HubSpot's own client (hubspot-api-nodejs RetryDecorator) when no Retry-After comes.
EXISTING_ID = re.compile(r"Existing ID: (\d+)")
POLICY_WAIT_SECONDS = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}
#: Row error categories that are HubSpot failing, not refusing the row ("retry later").
TRANSIENT_ROW_CATEGORIES = frozenset({"INTERNAL_ERROR"})


class HubSpotConfig(HttpDestinationConfig):
    env_name: ClassVar[str] = "HUBSPOT"

    base_url: str = "https://api.hubapi.com"
    id_property: str = "email"
    list_id: str | None = None
    on_remove: Literal["list", "archive", "none"] | None = None

    @model_validator(mode="after")
    def _list_to_remove_from(self) -> HubSpotConfig:
        if self.on_remove == "list" and not self.list_id:
            raise ValueError("on_remove 'list' needs option list_id")
        return self

    @property
    def remove_action(self) -> str:
        if self.on_remove is not None:
            return self.on_remove
        return "list" if self.list_id else "archive"


class HubSpot(HttpDestination):
    name: ClassVar[str] = "hubspot"
    max_batch_size: ClassVar[int] = 100
    max_concurrency: ClassVar[int] = 4
    consent_purpose: ClassVar[str | None] = "email_marketing"
    config_class: ClassVar[type[HubSpotConfig]] = HubSpotConfig

    config: HubSpotConfig

    def __init__(self, config: HubSpotConfig) -> None:
        super().__init__(config)
        self._mode = "upsert"

    def check_connection(self) -> None:
        response = self._request(
            "GET", f"{CONTACTS}?limit=1", "reading contacts", accept=(401, 403)
        )
        if response.status_code in (401, 403):
            raise PermanentError(
                f"HubSpot refused the token (HTTP {response.status_code}): check "
                f"{HubSpotConfig.env_var('token')} and its contacts scopes"
            )
        if self.config.list_id:
            response = self._request(
                "GET", f"crm/v3/lists/{self.config.list_id}", "reading the list", accept=(404,)
            )
            if response.status_code == 404:
                raise PermanentError(
                    f"HubSpot list {self.config.list_id} (option list_id) not found"
                )

    def start(self, run: RunContext) -> None:
        self._mode = run.mode

    def write(self, batch: Sequence[Record]) -> WriteResult:
        sendable, outcomes = self._with_ids(batch)
        if sendable:
            if batch[0].operation == "remove":
                outcomes.update(self._remove(sendable))
            else:
                outcomes.update(self._upsert(sendable))
        return WriteResult([outcomes[record.key] for record in batch])

    def _with_ids(self, batch: Sequence[Record]) -> tuple[list[Record], dict[str, RecordOutcome]]:
        """Records carrying the id property, and failed outcomes for those that do not."""
        sendable: list[Record] = []
        outcomes: dict[str, RecordOutcome] = {}
        for record in batch:
            if _string(record.fields.get(self.config.id_property)):
                sendable.append(record)
            else:
                outcomes[record.key] = RecordOutcome(
                    record.key, False, error=f"no {self.config.id_property} to identify the contact"
                )
        return sendable, outcomes

    def _upsert(self, records: Sequence[Record]) -> dict[str, RecordOutcome]:
        id_property = self.config.id_property
        action = {"insert": "create", "update": "update"}.get(self._mode, "upsert")
        inputs = []
        for record in records:
            properties = {name: _string(value) for name, value in record.fields.items()}
            item: dict[str, Any] = {"properties": properties, "objectWriteTraceId": record.key}
            if action != "create":
                item["id"] = properties[id_property]
                item["idProperty"] = id_property
            inputs.append(item)
        body = self._post_json(
            f"{CONTACTS}/batch/{action}", {"inputs": inputs}, f"{action} contacts"
        )
        outcomes = _batch_outcomes(records, body, existing_ok=action == "create")
        if self.config.list_id:
            added = [
                o.destination_id for o in outcomes.values() if o.succeeded and o.destination_id
            ]
            if added:
                self._memberships("add", added)
        return outcomes

    def _remove(self, records: Sequence[Record]) -> dict[str, RecordOutcome]:
        action = self.config.remove_action
        if action == "none":
            return {record.key: RecordOutcome(record.key, True) for record in records}
        found = self._read_ids(records)
        ids = list(dict.fromkeys(found.values()))
        if ids:
            if action == "list":
                self._memberships("remove", ids)
            else:
                self._request(
                    "POST",
                    f"{CONTACTS}/batch/archive",
                    "archiving contacts",
                    json={"inputs": [{"id": contact_id} for contact_id in ids]},
                )
        # A contact HubSpot no longer has is as removed as it can be.
        return {
            record.key: RecordOutcome(record.key, True, destination_id=found.get(record.key))
            for record in records
        }

    def _read_ids(self, records: Sequence[Record]) -> dict[str, str]:
        """Record key -> HubSpot contact id, for the records HubSpot has."""
        id_property = self.config.id_property
        body = self._post_json(
            f"{CONTACTS}/batch/read",
            {
                "idProperty": id_property,
                "properties": [id_property],
                "inputs": [
                    {"id": _fold(id_property, _string(r.fields[id_property]))} for r in records
                ],
            },
            "reading contacts",
        )
        by_value: dict[str, str] = {}
        for result in body.get("results", []):
            value = (result.get("properties") or {}).get(id_property)
            if value is not None and result.get("id") is not None:
                by_value[_fold(id_property, value)] = str(result["id"])
        keys = {}
        for record in records:
            contact_id = by_value.get(_fold(id_property, _string(record.fields[id_property])))
            if contact_id is not None:
                keys[record.key] = contact_id
        return keys

    def _memberships(self, change: Literal["add", "remove"], ids: Iterable[str]) -> None:
        what = f"{'adding to' if change == 'add' else 'removing from'} list {self.config.list_id}"
        path = f"crm/v3/lists/{self.config.list_id}/memberships/{change}"
        response = self._request("PUT", path, what, accept=(404,), json=list(ids))
        if response.status_code == 404:
            raise PermanentError(f"HubSpot list {self.config.list_id} (option list_id) not found")

    def _post_json(self, path: str, payload: Any, what: str) -> dict[str, Any]:
        body = json_or_none(self._request("POST", path, what, json=payload))
        return body if isinstance(body, dict) else {}

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        return self.request(method, self.config.url(path), what, **kwargs)

    def raise_for(self, response: requests.Response, what: str) -> None:
        """HubSpot's error body: a 429's policy says how long to wait, or that the day is
        spent."""
        body = json_or_none(response)
        body = body if isinstance(body, dict) else {}
        message = body.get("message")
        if response.status_code == 429:
            policy = body.get("policyName")
            detail = f"HubSpot {what}: HTTP 429 ({policy or 'rate limit'}): {message}"
            if policy == "DAILY":
                raise PermanentError(detail)
            wait = retry_after(response)
            raise RateLimited(detail, wait if wait is not None else POLICY_WAIT_SECONDS.get(policy))
        category = body.get("category")
        raise_for_status(
            response,
            f"HubSpot {what}",
            f"{category}: {message}" if category and message else message,
        )


def _batch_outcomes(
    records: Sequence[Record], body: Mapping[str, Any], existing_ok: bool = False
) -> dict[str, RecordOutcome]:
    """Outcomes of a 200/201/207 batch answer, matched to records by objectWriteTraceId.

    ``existing_ok``: a create refused because the contact exists counts as done, with its id.
    """
    keys = {record.key for record in records}
    outcomes: dict[str, RecordOutcome] = {}
    for result in body.get("results") or []:
        key = result.get("objectWriteTraceId")
        if key in keys:
            outcomes[key] = RecordOutcome(key, True, destination_id=_id(result.get("id")))
    for error in body.get("errors") or []:
        message = f"{error.get('category', 'ERROR')}: {error.get('message', 'no message')}"
        existing = EXISTING_ID.search(str(error.get("message", "")))
        for key in _error_trace_ids(error):
            if key not in keys:
                continue
            if existing_ok and error.get("category") == "CONFLICT" and existing:
                outcomes[key] = RecordOutcome(key, True, destination_id=existing.group(1))
            else:
                transient = error.get("category") in TRANSIENT_ROW_CATEGORIES
                outcomes[key] = RecordOutcome(key, False, error=message, transient=transient)
    for key in keys - outcomes.keys():
        outcomes[key] = RecordOutcome(
            key, False, error="HubSpot returned no result for this row", transient=True
        )
    return outcomes


def _error_trace_ids(error: Mapping[str, Any]) -> list[str]:
    trace = error.get("objectWriteTraceId")
    if isinstance(trace, str):
        return [trace]
    context = error.get("context") or {}
    values = context.get("objectWriteTraceId") or []
    return [str(value) for value in values] if isinstance(values, list) else [str(values)]


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def _fold(id_property: str, value: str) -> str:
    # HubSpot stores and matches emails case-insensitively.
    return value.strip().lower() if id_property == "email" else value


def _string(value: Any) -> str:
    """A HubSpot property value: every value is a string, and "" clears the property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
