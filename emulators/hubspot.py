"""Emulator of HubSpot CRM v3: contacts batch endpoints and MANUAL list memberships.

Endpoints (paths as on api.hubapi.com; ``Authorization: Bearer <token>``):

- ``POST /crm/v3/objects/contacts/batch/upsert``: at most 100 inputs (else 400
  ``VALIDATION_ERROR`` "The maximum number of inputs supported in a batch is 100. ..."); each input
  needs ``id`` and string-only ``properties``; ``idProperty`` must be a unique property (``email``
  or one of ``unique_properties``), else 400 "Unable to perform update/upsert by non-unique 0-1
  property ...". Answers 200 when every row succeeded, 207 with ``numErrors`` and ``errors[]``
  when some failed; each result has ``new`` (created or updated) and echoes
  ``objectWriteTraceId``; each error carries the row's ``objectWriteTraceId`` (or ``id``) in its
  ``context``. A malformed email fails its row with ``INVALID_EMAIL``; with ``idProperty`` email
  HubSpot does not do partial upserts, so such a row fails the whole batch with 400 instead
  (``email_upserts_all_or_none``). An email already used by another contact fails the row with
  ``CONFLICT``. Injected partial failures always answer 207.
- ``POST .../batch/create`` (201, ``CONFLICT`` "Contact already exists. Existing ID: ..."),
  ``POST .../batch/update`` (by id, or by ``idProperty``; unknown rows fail with
  ``OBJECT_NOT_FOUND``), ``POST .../batch/archive`` (204, empty body),
  ``GET /crm/v3/objects/contacts`` and ``GET /crm/v3/objects/contacts/{id}``.
- ``POST /crm/v3/lists`` ``{name, objectTypeId, processingType}`` -> ``{"list": {...}}``;
  ``GET /crm/v3/lists/{listId}``; ``GET /crm/v3/lists/object-type-id/0-1/name/{name}``;
  ``PUT /crm/v3/lists/{listId}/memberships/add|remove`` (a JSON array of record ids) and
  ``.../add-and-remove`` (``{recordIdsToAdd, recordIdsToRemove}``) answering
  ``{recordsIdsAdded, recordIdsRemoved, recordIdsMissing}``, only for MANUAL or SNAPSHOT lists;
  ``GET /crm/v3/lists/{listId}/memberships``.

Errors use HubSpot's ``{"status": "error", "message", "correlationId", "category"}``; 429 adds
``errorType: RATE_LIMIT`` and ``policyName: TEN_SECONDLY_ROLLING``. With a ``rate_limit``
configured every answer carries ``X-HubSpot-RateLimit-Max``, ``-Remaining`` and
``-Interval-Milliseconds``.

State for tests: ``contacts`` (id -> ``Contact``), ``archived``, ``lists`` (id -> ``HubSpotList``),
``contact_by(property, value)``, ``list_members(list_id)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote

from emulators.base import (
    ApiError,
    Emulator,
    JsonSchema,
    Request,
    Response,
    Route,
    RowError,
    new_id,
    route,
    utc_timestamp,
)

MAX_INPUTS = 100
CONTACTS = "/crm/v3/objects/contacts"
LISTS = "/crm/v3/lists"
CONTACT_OBJECT_TYPE = "0-1"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_PROPERTIES: JsonSchema = {"type": "object", "additionalProperties": {"type": "string"}}
_UPSERT_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "properties"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "idProperty": {"type": "string"},
                    "objectWriteTraceId": {"type": "string"},
                    "properties": _PROPERTIES,
                },
            },
        }
    },
}
_CREATE_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["properties"],
                "properties": {
                    "objectWriteTraceId": {"type": "string"},
                    "properties": _PROPERTIES,
                    "associations": {"type": "array"},
                },
            },
        }
    },
}
_ARCHIVE_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string", "minLength": 1}},
            },
        }
    },
}
_LIST_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["name", "objectTypeId", "processingType"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "objectTypeId": {"type": "string"},
        "processingType": {"enum": ["MANUAL", "SNAPSHOT", "DYNAMIC"]},
        "filterBranch": {"type": "object"},
    },
}
_RECORD_IDS: JsonSchema = {"type": "array", "items": {"type": "string"}}
_ADD_AND_REMOVE_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {"recordIdsToAdd": _RECORD_IDS, "recordIdsToRemove": _RECORD_IDS},
}


@dataclass
class Contact:
    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    archived: bool = False

    def as_result(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "properties": {**self.properties, "hs_object_id": self.id},
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": self.archived,
        }


@dataclass
class HubSpotList:
    list_id: str
    name: str
    object_type_id: str
    processing_type: str
    created_at: str
    members: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "listId": self.list_id,
            "name": self.name,
            "objectTypeId": self.object_type_id,
            "processingType": self.processing_type,
            "processingStatus": "COMPLETE",
            "listVersion": 1,
            "size": len(self.members),
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
        }


class HubSpotEmulator(Emulator):
    name: ClassVar[str] = "hubspot"

    def __init__(
        self,
        *,
        unique_properties: Iterable[str] = ("email", "tessera_customer_id"),
        email_upserts_all_or_none: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.unique_properties = frozenset(unique_properties) | {"email"}
        self.email_upserts_all_or_none = email_upserts_all_or_none
        self.contacts: dict[str, Contact] = {}
        self.archived: dict[str, Contact] = {}
        self.lists: dict[str, HubSpotList] = {}
        self._next_contact = 1001
        self._next_list = 1

    # -- state inspection ------------------------------------------------------------------

    def contact_by(self, property_name: str, value: str) -> Contact | None:
        with self.lock:
            return next(
                (c for c in self.contacts.values() if c.properties.get(property_name) == value),
                None,
            )

    def list_members(self, list_id: str) -> list[str]:
        with self.lock:
            return list(self.lists[list_id].members)

    # -- platform answers ------------------------------------------------------------------

    def _error(self, status: int, category: str, message: str, **extra: Any) -> Response:
        body = {
            "status": "error",
            "message": message,
            "correlationId": new_id(),
            "category": category,
            **extra,
        }
        return Response(status, body, {"X-HubSpot-Correlation-Id": body["correlationId"]})

    def error_unauthorized(self, request: Request) -> Response:
        return self._error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication "
            "and you can find more details at "
            "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )

    def error_throttled(self, request: Request, retry_after: float) -> Response:
        response = Response(
            429,
            {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": new_id(),
                "policyName": "TEN_SECONDLY_ROLLING",
                "requestId": new_id(),
            },
        )
        return response.with_retry_after(retry_after)

    def error_server(self, request: Request, status: int) -> Response:
        return self._error(status, "INTERNAL_ERROR", "internal error")

    def error_invalid(self, request: Request, message: str, field: str | None) -> Response:
        extra: dict[str, Any] = {}
        if field:
            extra["errors"] = [{"message": message, "in": field, "code": "INVALID_INPUT"}]
        return self._error(400, "VALIDATION_ERROR", message, **extra)

    def error_not_found(self, request: Request, message: str) -> Response:
        return self._error(404, "OBJECT_NOT_FOUND", message)

    def decorate(self, request: Request, response: Response) -> None:
        window = self._window
        if window is not None:
            response.headers["X-HubSpot-RateLimit-Max"] = str(window.limit.requests)
            response.headers["X-HubSpot-RateLimit-Remaining"] = str(window.remaining())
            response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(
                int(window.limit.per_seconds * 1000)
            )

    # -- routes ----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        list_path = LISTS + r"/(?P<list_id>[^/]+)"
        return [
            route("POST", CONTACTS + "/batch/upsert", self._batch_upsert),
            route("POST", CONTACTS + "/batch/create", self._batch_create),
            route("POST", CONTACTS + "/batch/update", self._batch_update),
            route("POST", CONTACTS + "/batch/archive", self._batch_archive),
            route("GET", CONTACTS, self._list_contacts),
            route("GET", CONTACTS + r"/(?P<contact_id>[^/]+)", self._get_contact),
            route("POST", LISTS + "/?", self._create_list),
            route(
                "GET",
                LISTS + r"/object-type-id/(?P<type>[^/]+)/name/(?P<name>[^/]+)",
                self._list_by_name,
            ),
            route("GET", list_path, self._get_list),
            route("GET", list_path + "/memberships", self._get_memberships),
            route("PUT", list_path + "/memberships/add", self._add_members),
            route("PUT", list_path + "/memberships/remove", self._remove_members),
            route("PUT", list_path + "/memberships/add-and-remove", self._add_and_remove_members),
        ]

    # -- contacts --------------------------------------------------------------------------

    def _inputs(self, request: Request, schema: JsonSchema) -> list[dict[str, Any]]:
        body = self.json_body(request)
        if isinstance(body, dict) and isinstance(body.get("inputs"), list):
            if len(body["inputs"]) > MAX_INPUTS:
                raise self.invalid(
                    request,
                    f"The maximum number of inputs supported in a batch is {MAX_INPUTS}. "
                    "Please reduce the number of items and try again",
                )
        return self.validate(request, schema, body)["inputs"]

    def _check_unique_id_property(self, request: Request, id_property: str) -> None:
        if id_property not in self.unique_properties:
            raise self.invalid(
                request,
                f"Unable to perform update/upsert by non-unique {CONTACT_OBJECT_TYPE} property "
                f"{id_property}",
                "idProperty",
            )

    def _check_duplicates(self, request: Request, inputs: list[dict[str, Any]]) -> None:
        seen: set[tuple[str, str]] = set()
        for item in inputs:
            key = (item.get("idProperty", "hs_object_id"), item["id"])
            if key in seen:
                raise self.invalid(request, f"Duplicate IDs found in batch input: [{item['id']}]")
            seen.add(key)

    def _check_properties(self, properties: dict[str, str], owner: str | None) -> None:
        email = properties.get("email")
        if email:
            if not _EMAIL.match(email):
                raise RowError(
                    "VALIDATION_ERROR",
                    'Property values were not valid: [{"isValid":false,"message":"Email '
                    f'address {email} is invalid","error":"INVALID_EMAIL","name":"email"}}]',
                    "INVALID_EMAIL",
                )
            holder = self.contact_by("email", email)
            if holder is not None and holder.id != owner:
                raise RowError(
                    "CONFLICT", f"Contact already exists. Existing ID: {holder.id}", "CONFLICT"
                )

    def _create(self, properties: dict[str, str]) -> Contact:
        now = utc_timestamp()
        contact = Contact(
            str(self._next_contact), {k: v for k, v in properties.items() if v != ""}, now, now
        )
        self._next_contact += 1
        self.contacts[contact.id] = contact
        return contact

    @staticmethod
    def _update(contact: Contact, properties: dict[str, str]) -> None:
        for name, value in properties.items():
            if value == "":  # an empty string clears the property
                contact.properties.pop(name, None)
            else:
                contact.properties[name] = value
        contact.updated_at = utc_timestamp()

    def _row_error(self, item: dict[str, Any], error: RowError) -> dict[str, Any]:
        context = (
            {"objectWriteTraceId": [item["objectWriteTraceId"]]}
            if "objectWriteTraceId" in item
            else {"ids": [item.get("id", "")]}
        )
        return {
            "status": "error",
            "category": error.code,
            "message": error.message,
            "context": context,
            "errors": [{"message": error.message, "code": error.detail, "context": context}],
            "links": {},
        }

    def _batch_answer(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]], status: int = 200
    ) -> Response:
        now = utc_timestamp()
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "requestedAt": now,
            "startedAt": now,
            "completedAt": now,
            "links": {},
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return Response(207, body)
        return Response(status, body)

    def _batch_upsert(self, request: Request) -> Response:
        inputs = self._inputs(request, _UPSERT_SCHEMA)
        for index, item in enumerate(inputs):
            if "idProperty" not in item:
                raise self.invalid(
                    request, "idProperty is required to upsert", f"inputs[{index}].idProperty"
                )
            self._check_unique_id_property(request, item["idProperty"])
        self._check_duplicates(request, inputs)

        plans: list[tuple[dict[str, Any], Contact | None, dict[str, str]]] = []
        failures: dict[int, RowError] = {}
        for index, item in enumerate(inputs):
            properties = {**item["properties"], item["idProperty"]: item["id"]}
            existing = self.contact_by(item["idProperty"], item["id"])
            try:
                self._check_properties(properties, existing.id if existing else None)
            except RowError as error:
                failures[index] = error
            plans.append((item, existing, properties))
        by_email = any(item["idProperty"] == "email" for item in inputs)
        if failures and self.email_upserts_all_or_none and by_email:
            index, error = next(iter(failures.items()))
            raise ApiError(
                self._error(
                    400,
                    "VALIDATION_ERROR",
                    error.message,
                    errors=[
                        {"message": error.message, "code": error.detail, "in": f"inputs[{index}]"}
                    ],
                )
            )

        results, errors = [], []
        for index, (item, existing, properties) in enumerate(plans):
            if index not in failures and self.row_fails(request):
                failures[index] = RowError("INTERNAL_ERROR", "Object write failed; retry later")
            if index in failures:
                errors.append(self._row_error(item, failures[index]))
                continue
            if existing is None:
                contact, created = self._create(properties), True
            else:
                self._update(existing, properties)
                contact, created = existing, False
            result = {**contact.as_result(), "new": created}
            if "objectWriteTraceId" in item:
                result["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(result)
        return self._batch_answer(results, errors)

    def _batch_create(self, request: Request) -> Response:
        inputs = self._inputs(request, _CREATE_SCHEMA)
        results, errors = [], []
        for item in inputs:
            try:
                self._check_properties(item["properties"], None)
                if self.row_fails(request):
                    raise RowError("INTERNAL_ERROR", "Object write failed; retry later")
            except RowError as error:
                errors.append(self._row_error(item, error))
                continue
            result = self._create(item["properties"]).as_result()
            if "objectWriteTraceId" in item:
                result["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(result)
        return self._batch_answer(results, errors, status=201)

    def _batch_update(self, request: Request) -> Response:
        inputs = self._inputs(request, _UPSERT_SCHEMA)
        for item in inputs:
            if "idProperty" in item:
                self._check_unique_id_property(request, item["idProperty"])
        self._check_duplicates(request, inputs)
        results, errors = [], []
        for item in inputs:
            id_property = item.get("idProperty")
            contact = (
                self.contact_by(id_property, item["id"])
                if id_property
                else self.contacts.get(item["id"])
            )
            try:
                if contact is None:
                    raise RowError(
                        "OBJECT_NOT_FOUND",
                        "Could not get some CONTACT objects, they may be deleted or not exist. "
                        "Check that ids are valid.",
                        "OBJECT_NOT_FOUND",
                    )
                self._check_properties(item["properties"], contact.id)
                if self.row_fails(request):
                    raise RowError("INTERNAL_ERROR", "Object write failed; retry later")
            except RowError as error:
                errors.append(self._row_error(item, error))
                continue
            assert contact is not None
            self._update(contact, item["properties"])
            result = contact.as_result()
            if "objectWriteTraceId" in item:
                result["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(result)
        return self._batch_answer(results, errors)

    def _batch_archive(self, request: Request) -> Response:
        for item in self._inputs(request, _ARCHIVE_SCHEMA):
            contact = self.contacts.pop(item["id"], None)
            if contact is not None:
                contact.archived = True
                self.archived[contact.id] = contact
                for hubspot_list in self.lists.values():
                    if contact.id in hubspot_list.members:
                        hubspot_list.members.remove(contact.id)
        return Response(204)

    def _list_contacts(self, request: Request) -> Response:
        limit = int(request.query_value("limit") or 10)
        contacts = list(self.contacts.values())[:limit]
        return Response(200, {"results": [contact.as_result() for contact in contacts]})

    def _get_contact(self, request: Request) -> Response:
        contact = self.contacts.get(request.params["contact_id"])
        if contact is None:
            raise self.not_found(request, "resource not found")
        return Response(200, contact.as_result())

    # -- lists -----------------------------------------------------------------------------

    def _list(self, request: Request) -> HubSpotList:
        found = self.lists.get(request.params["list_id"])
        if found is None:
            raise self.not_found(
                request, f"List does not exist with ID {request.params['list_id']}."
            )
        return found

    def _create_list(self, request: Request) -> Response:
        body = self.validate(request, _LIST_SCHEMA)
        if any(existing.name == body["name"] for existing in self.lists.values()):
            raise self.invalid(request, f"A list named {body['name']} already exists.", "name")
        created = HubSpotList(
            str(self._next_list),
            body["name"],
            body["objectTypeId"],
            body["processingType"],
            utc_timestamp(),
        )
        self._next_list += 1
        self.lists[created.list_id] = created
        return Response(200, {"list": created.as_json()})

    def _get_list(self, request: Request) -> Response:
        return Response(200, {"list": self._list(request).as_json()})

    def _list_by_name(self, request: Request) -> Response:
        name = unquote(request.params["name"])
        for candidate in self.lists.values():
            if candidate.name == name and candidate.object_type_id == request.params["type"]:
                return Response(200, {"list": candidate.as_json()})
        raise self.not_found(request, f"List does not exist with name {name}.")

    def _get_memberships(self, request: Request) -> Response:
        members = self._list(request).members
        return Response(200, {"results": [{"recordId": member} for member in members]})

    def _change_members(
        self, request: Request, to_add: list[str], to_remove: list[str]
    ) -> Response:
        target = self._list(request)
        if target.processing_type not in ("MANUAL", "SNAPSHOT"):
            raise self.invalid(
                request,
                f"List {target.list_id} has processingType {target.processing_type}; memberships "
                "can only be changed for MANUAL or SNAPSHOT lists.",
            )
        added, removed, missing = [], [], []
        for record_id in to_add:
            if record_id not in self.contacts:
                missing.append(record_id)
            elif record_id not in target.members:
                target.members.append(record_id)
                added.append(record_id)
        for record_id in to_remove:
            if record_id in target.members:
                target.members.remove(record_id)
                removed.append(record_id)
            elif record_id not in self.contacts:
                missing.append(record_id)
        return Response(
            200,
            {"recordsIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing},
        )

    def _add_members(self, request: Request) -> Response:
        return self._change_members(request, self.validate(request, _RECORD_IDS), [])

    def _remove_members(self, request: Request) -> Response:
        return self._change_members(request, [], self.validate(request, _RECORD_IDS))

    def _add_and_remove_members(self, request: Request) -> Response:
        body = self.validate(request, _ADD_AND_REMOVE_SCHEMA)
        return self._change_members(
            request, body.get("recordIdsToAdd", []), body.get("recordIdsToRemove", [])
        )
