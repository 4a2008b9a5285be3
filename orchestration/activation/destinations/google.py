"""Google Customer Match through the Data Manager API: hashed customer identifiers ingested into
and removed from one user list.

Google closed Customer Match in the Google Ads API to new adopters in 2026 and points them to
the Data Manager API (``audienceMembers:ingest`` / ``audienceMembers:remove``), so that is what
Tessera speaks.

Environment:

- ``TESSERA_GOOGLE_TOKEN``: OAuth access token with the
  ``https://www.googleapis.com/auth/datamanager`` scope.
- ``TESSERA_GOOGLE_BASE_URL``: API host, default ``https://datamanager.googleapis.com``.
- ``TESSERA_GOOGLE_TIMEOUT_SECONDS``: per-request timeout, default 60.

Options (the sync's YAML ``options``):

- ``operating_account_id``: the Google Ads customer id owning the list (digits; required).
- ``operating_account_type``: default ``GOOGLE_ADS``.
- ``login_account_id`` / ``login_account_type``: the manager account the token logs in as, when
  it is not the operating account (type default ``GOOGLE_ADS``).
- ``user_list_id``: the Customer Match user list (the destination's ``productDestinationId``;
  required).
- ``terms_of_service_accepted``: send ``customerMatchTermsOfServiceStatus: ACCEPTED`` (default
  false: accept Google's Customer Match terms in Google Ads first, then set this).

Fields: map audience columns to ``email``, ``phone``, ``first_name``, ``last_name`` (normalised
with Google's rules and SHA-256 hashed by the engine, sent with ``encoding: HEX``) and
``country``, ``zip`` (the address's region code and postal code, sent as they are, as Google
asks); the same names as for Meta. An address is sent only when all four of its parts are
present. Consent: only customers who
consented to advertising reach ``write``, so every member is sent with ``adUserData`` and
``adPersonalization`` CONSENT_GRANTED.

Report (``platform_report``, stored in ``activation.sync_platform_reports``): Google processes an
upload after accepting it and tells how it went through ``requestStatus:retrieve``. When a run
ends, the status of its last ingest request is asked once, without waiting: for the user list,
``audienceMembersIngestionStatus.userDataIngestionStatus`` gives ``recordCount`` (received) and
``uploadMatchRateRange`` (``MATCH_RATE_RANGE_LESS_THAN_20``, ``..._20_TO_30``, ``..._31_TO_40``
and so on to ``..._91_TO_100``, read as the fractions 0.0-0.2, 0.2-0.3, 0.31-0.4, ..., 0.91-1.0;
``..._NOT_ELIGIBLE`` and ``..._UNKNOWN`` as no range); ``errorInfo.errorCounts`` the records that
failed (none when the status is ``SUCCESS``). A request still ``PROCESSING`` gives its
``recordCount`` only. The figures describe that one request, not the run's earlier ones. A
status call that fails is a warning and no report; the sync is not affected.

Answers: the Data Manager API accepts or refuses a request as a whole (no per-row results):
200 -> every row succeeded; 400 INVALID_ARGUMENT -> BatchRejected, so the engine halves the
batch to find the bad rows; 429 RESOURCE_EXHAUSTED -> RateLimited (Retry-After, else the
``RetryInfo.retryDelay`` of the error, else the engine's backoff); 5xx, 409 ABORTED or a timeout
-> TransientError; 401, 403 and 404 (unknown account or list) -> PermanentError.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import requests
from pydantic import field_validator

from orchestration.activation.destination import (
    BatchRejected,
    DestinationError,
    PermanentError,
    PlatformReport,
    RateLimited,
    Record,
    RecordOutcome,
    RunContext,
    TransientError,
    WriteResult,
)
from orchestration.activation.destinations._http import (
    HttpDestination,
    HttpDestinationConfig,
    int_or_none,
    json_or_none,
    raise_for_status,
    retry_after,
)

#: Destination field -> identifier kind the engine normalises and hashes.
HASHED_FIELDS = {
    "email": "email",
    "phone": "phone",
    "first_name": "first_name",
    "last_name": "last_name",
}
#: Data Manager identifier -> destination field.
IDENTIFIERS = {"emailAddress": "email", "phoneNumber": "phone"}
ADDRESS = {
    "givenName": "first_name",
    "familyName": "last_name",
    "regionCode": "country",
    "postalCode": "zip",
}
MAX_IDENTIFIERS = 10
REFERENCE = "tessera"
#: ``MATCH_RATE_RANGE_<low>_TO_<high>`` and ``MATCH_RATE_RANGE_LESS_THAN_<high>``, in percent.
_MATCH_RATE_RANGE = re.compile(r"MATCH_RATE_RANGE_(?:(\d+)_TO_|LESS_THAN_)(\d+)")

log = logging.getLogger("tessera.activation")


class GoogleConfig(HttpDestinationConfig):
    env_name: ClassVar[str] = "GOOGLE"

    base_url: str = "https://datamanager.googleapis.com"
    timeout_seconds: float = 60.0
    operating_account_id: str
    operating_account_type: str = "GOOGLE_ADS"
    login_account_id: str | None = None
    login_account_type: str = "GOOGLE_ADS"
    user_list_id: str
    terms_of_service_accepted: bool = False

    @field_validator("operating_account_id", "login_account_id")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        # Google Ads shows customer ids as 123-456-7890; the API takes the digits.
        return None if value is None else value.replace("-", "").strip()


class Google(HttpDestination):
    name: ClassVar[str] = "google"
    max_batch_size: ClassVar[int] = 10_000
    max_concurrency: ClassVar[int] = 2
    consent_purpose: ClassVar[str | None] = "advertising"
    supported_modes: ClassVar[frozenset[str]] = frozenset({"upsert", "insert", "mirror"})
    hashed_identifiers: ClassVar[dict[str, str]] = HASHED_FIELDS
    normaliser: ClassVar[str | None] = "google"
    config_class: ClassVar[type[GoogleConfig]] = GoogleConfig

    config: GoogleConfig

    def __init__(self, config: GoogleConfig) -> None:
        super().__init__(config)
        #: The requestId of the run's last ingest request Google accepted.
        self._last_ingest: str | None = None
        self._ingest_lock = threading.Lock()

    def start(self, run: RunContext) -> None:
        self._last_ingest = None

    def check_connection(self) -> None:
        """Send an empty-membership request with ``validateOnly``: checks token, account and
        list without changing anything."""
        body = {**self._envelope(), "audienceMembers": [], "validateOnly": True}
        response = self._send(
            "audienceMembers:ingest", body, "checking the connection", accept=(400, 401, 403, 404)
        )
        if response.status_code in (401, 403):
            raise PermanentError(
                f"Google refused the token (HTTP {response.status_code}): check "
                f"{GoogleConfig.env_var('token')} and the datamanager scope"
            )
        if response.status_code == 404:
            raise PermanentError(
                f"Google has no user list {self.config.user_list_id} in account "
                f"{self.config.operating_account_id} (options user_list_id, operating_account_id)"
            )
        # A 400: an empty member list may be refused as such; the credentials were accepted.

    def write(self, batch: Sequence[Record]) -> WriteResult:
        remove = batch[0].operation == "remove"
        members, outcomes = [], {}
        sent: list[Record] = []
        for record in batch:
            member = self._member(record.fields, remove)
            if member is None:
                outcomes[record.key] = RecordOutcome(
                    record.key, False, error="no email, phone or full address to match on"
                )
            else:
                members.append(member)
                sent.append(record)
        if members:
            body = {**self._envelope(), "audienceMembers": members, "encoding": "HEX"}
            if not remove and self.config.terms_of_service_accepted:
                body["termsOfService"] = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
            verb = "remove" if remove else "ingest"
            response = self._send(
                f"audienceMembers:{verb}", body, f"{verb} of {len(members)} members"
            )
            if not remove:
                self._took_ingest(response)
            outcomes.update({record.key: RecordOutcome(record.key, True) for record in sent})
        return WriteResult([outcomes[record.key] for record in batch])

    def _took_ingest(self, response: requests.Response) -> None:
        answer = json_or_none(response)
        request_id = answer.get("requestId") if isinstance(answer, dict) else None
        if request_id:
            with self._ingest_lock:
                self._last_ingest = str(request_id)

    def platform_report(self) -> PlatformReport | None:
        """The status of the run's last ingest request, asked once (module docstring)."""
        request_id = self._last_ingest
        if request_id is None:
            return None
        try:
            response = self.request(
                "GET",
                self.config.url("v1/requestStatus:retrieve"),
                "retrieving the request status",
                params={"requestId": request_id},
            )
        except (DestinationError, requests.RequestException) as exc:
            # The request carried only its id, so Google's answer cannot quote a member.
            log.warning("Google request status %s not retrieved: %s", request_id, exc)
            return None
        return request_status_report(json_or_none(response), self.config.user_list_id)

    def _envelope(self) -> dict[str, Any]:
        destination: dict[str, Any] = {
            "reference": REFERENCE,
            "operatingAccount": {
                "accountType": self.config.operating_account_type,
                "accountId": self.config.operating_account_id,
            },
            "productDestinationId": self.config.user_list_id,
        }
        if self.config.login_account_id:
            destination["loginAccount"] = {
                "accountType": self.config.login_account_type,
                "accountId": self.config.login_account_id,
            }
        return {"destinations": [destination]}

    def _member(self, fields: Mapping[str, Any], remove: bool) -> dict[str, Any] | None:
        identifiers: list[dict[str, Any]] = []
        for name, field in IDENTIFIERS.items():
            value = _text(fields.get(field))
            if value:
                identifiers.append({name: value})
        address = {name: _text(fields.get(field)) for name, field in ADDRESS.items()}
        if all(address.values()):
            address["regionCode"] = address["regionCode"].upper()
            address["postalCode"] = address["postalCode"].replace(" ", "")
            identifiers.append({"address": address})
        if not identifiers:
            return None
        member: dict[str, Any] = {
            "destinationReferences": [REFERENCE],
            "userData": {"userIdentifiers": identifiers[:MAX_IDENTIFIERS]},
        }
        if not remove:
            member["consent"] = {
                "adUserData": "CONSENT_GRANTED",
                "adPersonalization": "CONSENT_GRANTED",
            }
        return member

    def _send(
        self, method: str, body: dict[str, Any], what: str, accept: Collection[int] = ()
    ) -> requests.Response:
        return self.request("POST", self.config.url(f"v1/{method}"), what, accept=accept, json=body)

    def raise_for(self, response: requests.Response, what: str) -> None:
        """google.rpc.Status: the status name says whose fault it is, RetryInfo how long to
        wait."""
        status, message, delay = _google_error(response)
        detail = f"Google {what}: HTTP {response.status_code} {status}: {message}"
        if response.status_code == 429 or status == "RESOURCE_EXHAUSTED":
            wait = retry_after(response)
            raise RateLimited(detail, wait if wait is not None else delay)
        if response.status_code >= 500 or status in ("ABORTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
            raise TransientError(detail)
        if status in ("UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND"):
            raise PermanentError(detail)
        if response.status_code == 400 or status in ("INVALID_ARGUMENT", "FAILED_PRECONDITION"):
            raise BatchRejected(detail)
        raise_for_status(response, f"Google {what}", message)


def match_rate_bounds(match_rate_range: str | None) -> tuple[float | None, float | None]:
    """Google's ``uploadMatchRateRange`` as fractions: ``MATCH_RATE_RANGE_20_TO_30`` is
    (0.2, 0.3), ``..._LESS_THAN_20`` (0.0, 0.2), ``..._91_TO_100`` (0.91, 1.0); no range
    (``..._NOT_ELIGIBLE``, ``..._UNKNOWN``, absent) is (None, None)."""
    found = _MATCH_RATE_RANGE.fullmatch(match_rate_range or "")
    if found is None:
        return None, None
    low, high = found.group(1), found.group(2)
    return (int(low) / 100 if low else 0.0), int(high) / 100


def request_status_report(body: Any, user_list_id: str) -> PlatformReport | None:
    """The report of one ``requestStatus:retrieve`` answer, for the destination that is the
    user list (the first one when none names it); None when it holds no status."""
    statuses = body.get("requestStatusPerDestination") if isinstance(body, dict) else None
    statuses = [item for item in statuses or [] if isinstance(item, dict)]
    if not statuses:
        return None
    status = next(
        (
            item
            for item in statuses
            if _dict(item.get("destination")).get("productDestinationId") == user_list_id
        ),
        statuses[0],
    )
    request_status = str(status.get("requestStatus") or "REQUEST_STATUS_UNKNOWN")
    ingestion = _dict(
        _dict(status.get("audienceMembersIngestionStatus")).get("userDataIngestionStatus")
    )
    received = int_or_none(ingestion.get("recordCount"))
    if request_status == "PROCESSING":
        return PlatformReport(received=received, detail=request_status)
    match_rate_range = ingestion.get("uploadMatchRateRange")
    low, high = match_rate_bounds(match_rate_range)
    errors = [_dict(item) for item in _dict(status.get("errorInfo")).get("errorCounts") or []]
    failed = [(str(e.get("reason") or ""), int_or_none(e.get("recordCount")) or 0) for e in errors]
    invalid = 0 if request_status == "SUCCESS" else (sum(n for _, n in failed) if failed else None)
    words = [] if request_status == "SUCCESS" else [request_status]
    if match_rate_range:
        words.append(str(match_rate_range))
    words += [f"{reason}={count}" for reason, count in failed]
    return PlatformReport(
        received=received,
        invalid=invalid,
        match_rate_low=low,
        match_rate_high=high,
        detail=" ".join(words) or request_status,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _google_error(response: requests.Response) -> tuple[str, str, float | None]:
    """status, message and RetryInfo delay of a google.rpc.Status error body."""
    body = json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", response.reason or "", None
    delay = None
    message = str(error.get("message") or "")
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("RetryInfo"):
            delay = _duration(detail.get("retryDelay"))
        elif kind.endswith("BadRequest"):
            # The field violations name the member at fault; the message alone does not.
            for violation in detail.get("fieldViolations") or []:
                message += f" {violation.get('field')}: {violation.get('description')}"
    return str(error.get("status") or ""), message, delay


def _duration(value: Any) -> float | None:
    """A protobuf JSON Duration ("1.5s") in seconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return float(value[:-1])
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
