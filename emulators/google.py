"""Emulator of Google's Data Manager API for Customer Match audience members.

Endpoints (``Authorization: Bearer <token>``):

- ``POST /v1/audienceMembers:ingest`` and ``POST /v1/audienceMembers:remove``:
  ``{"destinations": [{"reference", "operatingAccount": {"accountType", "accountId"},
  "loginAccount", "productDestinationId"}], "audienceMembers": [{"destinationReferences",
  "consent": {"adUserData", "adPersonalization"}, "userData": {"userIdentifiers": [...]}}],
  "encoding": "HEX" | "BASE64", "validateOnly", "consent", "termsOfService"}`` -> 200
  ``{"requestId": "..."}``.
- ``GET /v1/requestStatus:retrieve?requestId=...``: for a request this emulator took,
  ``requestStatusPerDestination`` (one per destination of the request, in its order) with
  ``requestStatus`` (``request_status``: ``SUCCESS`` unless a test sets ``PROCESSING``) and, for
  an ingest, ``audienceMembersIngestionStatus.userDataIngestionStatus`` ``{recordCount,
  userIdentifierCount, uploadMatchRateRange}`` (a removal: ``audienceMembersRemovalStatus
  .userDataRemovalStatus`` without a match rate; ``PROCESSING``: no match rate yet). Counts are
  int64 as strings, as Google's JSON sends them. The match rate is the share of the request's
  members for that destination with an email or phone hash among ``known_users`` (the
  constructor's option, or ``know``), in Google's buckets: ``MATCH_RATE_RANGE_LESS_THAN_20``
  under 20 %, ``MATCH_RATE_RANGE_20_TO_30`` to 30 %, then ``..._31_TO_40`` up to
  ``..._91_TO_100``. An unknown request id is 404 ``NOT_FOUND`` (a ``validateOnly`` request's
  id included: nothing was taken).

Enforced: 1 to 10 destinations; 1 to 10,000 audience members; 1 to 10 identifiers per member,
each exactly one of ``emailAddress``, ``phoneNumber``, ``address`` (``givenName``, ``familyName``
hashed; ``regionCode``, ``postalCode`` plain); ``encoding`` required; hashed values must be a
SHA-256 in the declared encoding (64 hex characters, or Base64 of 32 bytes); consent values
``CONSENT_GRANTED`` or ``CONSENT_DENIED``; ``destinationReferences`` must name a destination of
the request (none: every destination). There are no per-row results: any invalid member (or an
injected partial failure) fails the whole request with 400 ``INVALID_ARGUMENT`` and a
``google.rpc.BadRequest`` naming the field (``audience_members[3].user_data.user_identifiers[0]
.email_address``), and nothing is applied. ``validateOnly`` checks without applying.

Errors are Google's ``{"error": {"code", "message", "status", "details": [...]}}``: 401
``UNAUTHENTICATED``, 429 ``RESOURCE_EXHAUSTED`` with an ``ErrorInfo`` whose
``metadata.quota_limit`` names the quota (plus ``Retry-After``), 500 ``INTERNAL``, 503
``UNAVAILABLE``.

State for tests: ``members[(account_id, product_destination_id)]``, a set of member tuples
``(("email_address", hex), ("phone_number", hex), ...)`` with hashes as lowercase hex;
``member_values(account_id, list_id, kind)``; ``requests_taken`` (request id -> ``TakenRequest``);
``known_users``, the email and phone hashes (lowercase hex) Google matches.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from emulators.base import (
    Emulator,
    JsonSchema,
    Request,
    Response,
    Route,
    new_id,
    retry_after_header,
    route,
)

MAX_MEMBERS = 10_000
MAX_IDENTIFIERS = 10
MAX_DESTINATIONS = 10
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_CONSENT = {"enum": ["CONSENT_GRANTED", "CONSENT_DENIED", "CONSENT_STATUS_UNSPECIFIED"]}
_CONSENT_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {"adUserData": _CONSENT, "adPersonalization": _CONSENT},
    "additionalProperties": False,
}
_ACCOUNT: JsonSchema = {
    "type": "object",
    "required": ["accountId"],
    "properties": {
        "accountType": {
            "enum": [
                "GOOGLE_ADS",
                "GOOGLE_ADS_MANAGER",
                "DISPLAY_VIDEO_PARTNER",
                "DISPLAY_VIDEO_ADVERTISER",
                "DATA_PARTNER",
                "ACCOUNT_TYPE_UNSPECIFIED",
            ]
        },
        "accountId": {"type": "string", "pattern": r"^\d+$"},
    },
}
_IDENTIFIER: JsonSchema = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "emailAddress": {"type": "string", "minLength": 1},
        "phoneNumber": {"type": "string", "minLength": 1},
        "address": {
            "type": "object",
            "required": ["givenName", "familyName", "regionCode", "postalCode"],
            "additionalProperties": False,
            "properties": {
                "givenName": {"type": "string"},
                "familyName": {"type": "string"},
                "regionCode": {"type": "string", "pattern": "^[A-Z]{2}$"},
                "postalCode": {"type": "string"},
            },
        },
    },
}
_REQUEST_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["destinations", "audienceMembers", "encoding"],
    "properties": {
        "destinations": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_DESTINATIONS,
            "items": {
                "type": "object",
                "required": ["operatingAccount", "productDestinationId"],
                "properties": {
                    "reference": {"type": "string"},
                    "operatingAccount": _ACCOUNT,
                    "loginAccount": _ACCOUNT,
                    "linkedAccount": _ACCOUNT,
                    "productDestinationId": {"type": "string", "minLength": 1},
                },
            },
        },
        "audienceMembers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["userData"],
                "properties": {
                    "destinationReferences": {"type": "array", "items": {"type": "string"}},
                    "consent": _CONSENT_SCHEMA,
                    "userData": {
                        "type": "object",
                        "required": ["userIdentifiers"],
                        "properties": {
                            "userIdentifiers": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_IDENTIFIERS,
                                "items": _IDENTIFIER,
                            }
                        },
                    },
                },
            },
        },
        "encoding": {"enum": ["HEX", "BASE64"]},
        "validateOnly": {"type": "boolean"},
        "consent": _CONSENT_SCHEMA,
        "termsOfService": {"type": "object"},
    },
}

Member = tuple[tuple[str, str], ...]
#: Identifiers the emulator looks up in ``known_users`` (it never matches an address).
MATCHED_KINDS = frozenset({"email_address", "phone_number"})


@dataclass(frozen=True)
class TakenRequest:
    """An applied ingest or remove: its destinations in the request's order, and each member it
    carried once per destination it named."""

    kind: Literal["ingest", "remove"]
    destinations: tuple[tuple[str, str], ...]
    rows: tuple[tuple[tuple[str, str], Member], ...]


def match_rate_range(matched: int, records: int) -> str:
    """Google's ``uploadMatchRateRange`` bucket for ``matched`` of ``records`` members (none
    sent: ``MATCH_RATE_RANGE_UNKNOWN``)."""
    if not records:
        return "MATCH_RATE_RANGE_UNKNOWN"
    percent = 100 * matched / records
    if percent < 20:
        return "MATCH_RATE_RANGE_LESS_THAN_20"
    if percent <= 30:
        return "MATCH_RATE_RANGE_20_TO_30"
    high = min(math.ceil(percent / 10) * 10, 100)
    return f"MATCH_RATE_RANGE_{high - 9}_TO_{high}"


def _identifier_count(member: Member) -> int:
    """User identifiers of a member: each email and phone, and an address as one."""
    address = any(name == "given_name" for name, _ in member)
    return sum(1 for name, _ in member if name in MATCHED_KINDS) + int(address)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_path(path: str) -> str:
    return ".".join(_snake(part) for part in path.split("."))


def _google_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    return Response(
        code,
        {"error": {"code": code, "message": message, "status": status, "details": details or []}},
    )


class GoogleEmulator(Emulator):
    name: ClassVar[str] = "google"

    def __init__(self, *, known_users: Iterable[str] = (), **options: Any) -> None:
        super().__init__(**options)
        self.members: dict[tuple[str, str], set[Member]] = {}
        self.requests_taken: dict[str, TakenRequest] = {}
        self.known_users: set[str] = {value.lower() for value in known_users}
        #: What ``requestStatus:retrieve`` says of every request: SUCCESS or PROCESSING.
        self.request_status = "SUCCESS"

    def know(self, *hashes: str) -> None:
        """Make Google know the users with these email or phone hashes (lowercase hex)."""
        with self.lock:
            self.known_users.update(value.lower() for value in hashes)

    def member_values(self, account_id: str, list_id: str, kind: str) -> set[str]:
        """Every ``kind`` value (email_address, phone_number, given_name, ...) in one list."""
        with self.lock:
            return {
                value
                for member in self.members.get((account_id, list_id), set())
                for name, value in member
                if name == kind
            }

    # -- platform answers ------------------------------------------------------------------

    def error_unauthorized(self, request: Request) -> Response:
        return _google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                    "domain": "googleapis.com",
                    "metadata": {"service": "datamanager.googleapis.com"},
                }
            ],
        )

    def error_throttled(self, request: Request, retry_after: float) -> Response:
        response = _google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Ingestion requests' and limit 'Ingestion requests "
            "per minute per project' of service 'datamanager.googleapis.com'.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "datamanager.googleapis.com",
                        "quota_metric": "datamanager.googleapis.com/ingestion_requests",
                        "quota_limit": "IngestionRequestsPerMinutePerProject",
                        "quota_limit_value": "300",
                    },
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after_header(retry_after)}s",
                },
            ],
        )
        return response.with_retry_after(retry_after)

    def error_server(self, request: Request, status: int) -> Response:
        if status == 503:
            return _google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
        return _google_error(status, "INTERNAL", "Internal error encountered.")

    def error_invalid(self, request: Request, message: str, field: str | None) -> Response:
        details = []
        if field:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": _snake_path(field), "description": message}],
                }
            )
        return _google_error(
            400, "INVALID_ARGUMENT", "Request contains an invalid argument.", details
        )

    def error_not_found(self, request: Request, message: str) -> Response:
        return _google_error(404, "NOT_FOUND", message)

    # -- routes ----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            route("POST", "/v1/audienceMembers:ingest", self._ingest),
            route("POST", "/v1/audienceMembers:remove", self._remove),
            route("GET", "/v1/requestStatus:retrieve", self._status),
        ]

    def _hashed(self, request: Request, value: str, encoding: str, field: str) -> str:
        if encoding == "HEX":
            if _HEX.match(value):
                return value.lower()
        else:
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) == 32:
                return raw.hex()
        raise self.invalid(
            request, f"{_snake_path(field)} must be a SHA-256 hash encoded as {encoding}", field
        )

    def _member(self, request: Request, index: int, item: dict[str, Any], encoding: str) -> Member:
        pairs: list[tuple[str, str]] = []
        for position, identifier in enumerate(item["userData"]["userIdentifiers"]):
            where = f"audienceMembers[{index}].userData.userIdentifiers[{position}]"
            for kind in ("emailAddress", "phoneNumber"):
                if kind in identifier:
                    value = self._hashed(request, identifier[kind], encoding, f"{where}.{kind}")
                    pairs.append((_snake(kind), value))
            if "address" in identifier:
                address = identifier["address"]
                for part in ("givenName", "familyName"):
                    value = self._hashed(
                        request, address[part], encoding, f"{where}.address.{part}"
                    )
                    pairs.append((_snake(part), value))
                pairs.append(("region_code", address["regionCode"]))
                pairs.append(("postal_code", address["postalCode"]))
        return tuple(sorted(set(pairs)))

    def _parse(
        self, request: Request
    ) -> tuple[dict[str, Any], list[tuple[tuple[str, str], Member]]]:
        body = self.json_body(request)
        members = body.get("audienceMembers") if isinstance(body, dict) else None
        if isinstance(members, list) and len(members) > MAX_MEMBERS:
            raise self.invalid(
                request,
                f"At most {MAX_MEMBERS} audience members can be sent in one request; "
                f"got {len(members)}.",
                "audienceMembers",
            )
        self.validate(request, _REQUEST_SCHEMA, body)
        destinations: dict[str | None, tuple[str, str]] = {}
        for index, destination in enumerate(body["destinations"]):
            key = (
                destination["operatingAccount"]["accountId"],
                destination["productDestinationId"],
            )
            reference = destination.get("reference")
            if reference in destinations:
                raise self.invalid(
                    request,
                    f"destination reference {reference!r} is used twice",
                    f"destinations[{index}].reference",
                )
            destinations[reference] = key
        rows: list[tuple[tuple[str, str], Member]] = []
        for index, item in enumerate(body["audienceMembers"]):
            member = self._member(request, index, item, body["encoding"])
            references = item.get("destinationReferences") or list(destinations)
            for position, reference in enumerate(references):
                if reference not in destinations:
                    raise self.invalid(
                        request,
                        f"destination reference {reference!r} is not in destinations",
                        f"audienceMembers[{index}].destinationReferences[{position}]",
                    )
                rows.append((destinations[reference], member))
            if self.row_fails(request):
                raise self.invalid(
                    request,
                    "The audience member could not be processed.",
                    f"audienceMembers[{index}]",
                )
        return body, rows

    def _take(
        self,
        kind: Literal["ingest", "remove"],
        body: dict[str, Any],
        rows: list[tuple[tuple[str, str], Member]],
    ) -> Response:
        request_id = new_id()
        destinations = tuple(
            (destination["operatingAccount"]["accountId"], destination["productDestinationId"])
            for destination in body["destinations"]
        )
        self.requests_taken[request_id] = TakenRequest(kind, destinations, tuple(rows))
        return Response(200, {"requestId": request_id})

    def _ingest(self, request: Request) -> Response:
        body, rows = self._parse(request)
        if body.get("validateOnly"):
            return Response(200, {"requestId": new_id()})
        for destination, member in rows:
            self.members.setdefault(destination, set()).add(member)
        return self._take("ingest", body, rows)

    def _remove(self, request: Request) -> Response:
        body, rows = self._parse(request)
        if body.get("validateOnly"):
            return Response(200, {"requestId": new_id()})
        for destination, member in rows:
            pairs = {pair for pair in member if pair[0] in ("email_address", "phone_number")}
            pairs = pairs or set(member)
            current = self.members.get(destination, set())
            self.members[destination] = {
                kept for kept in current if not any(pair in pairs for pair in kept)
            }
        return self._take("remove", body, rows)

    def _status(self, request: Request) -> Response:
        request_id = request.query_value("requestId") or ""
        if not request_id:
            raise self.invalid(request, "request_id: must be set", "requestId")
        taken = self.requests_taken.get(request_id)
        if taken is None:
            raise self.not_found(request, f"Request {request_id} was not found.")
        return Response(
            200,
            {
                "requestStatusPerDestination": [
                    self._destination_status(taken, destination)
                    for destination in taken.destinations
                ]
            },
        )

    def _destination_status(
        self, taken: TakenRequest, destination: tuple[str, str]
    ) -> dict[str, Any]:
        account_id, list_id = destination
        members = [member for named, member in taken.rows if named == destination]
        counts: dict[str, Any] = {
            "recordCount": str(len(members)),
            "userIdentifierCount": str(sum(_identifier_count(member) for member in members)),
        }
        status: dict[str, Any] = {
            "destination": {
                "operatingAccount": {"accountId": account_id},
                "productDestinationId": list_id,
            },
            "requestStatus": self.request_status,
        }
        if taken.kind == "remove":
            status["audienceMembersRemovalStatus"] = {"userDataRemovalStatus": counts}
            return status
        if self.request_status != "PROCESSING":
            matched = sum(
                1
                for member in members
                if any(
                    kind in MATCHED_KINDS and value in self.known_users for kind, value in member
                )
            )
            counts["uploadMatchRateRange"] = match_rate_range(matched, len(members))
        status["audienceMembersIngestionStatus"] = {"userDataIngestionStatus": counts}
        return status
