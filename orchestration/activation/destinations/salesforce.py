"""Salesforce sObjects by external id: sObject Collections for ordinary runs, Bulk API 2.0 for
large ones, composite delete for removals.

Environment:

- ``TESSERA_SALESFORCE_BASE_URL``: the org's instance URL (``https://<domain>.my.salesforce.com``).
  Required: Salesforce has no single API host.
- ``TESSERA_SALESFORCE_TOKEN``: OAuth access token of the integration user.
- ``TESSERA_SALESFORCE_TIMEOUT_SECONDS``: per-request timeout, default 30.

Options (the sync's YAML ``options``):

- ``object``: the sObject type, default ``Contact``.
- ``external_id_field``: the unique External ID field holding the sync key, default
  ``Tessera_Customer_Id__c`` (a Text field to create on the object). A record's value comes from
  that mapped field, else from the record's key.
- ``api_version``: REST API version, default ``62.0`` (collections upsert needs 46.0 or later).
- ``bulk_threshold``: a run sending more records than this uses Bulk API 2.0; default 10,000.
- ``bulk_batch_size``: records per Bulk job, default 10,000.
- ``bulk_poll_seconds`` / ``bulk_max_wait_seconds``: how often and how long to wait for a Bulk
  job to complete (defaults 2 and 600); a job still running after that is aborted and the batch
  retried as a TransientError.
- ``on_remove``: ``delete`` (default) or ``none``.

Modes: upsert and mirror, both upserting by external id (Salesforce matches on it, so a resent
record is updated, never duplicated). Removals (mirror, ``delete: remove`` and erasures) look the
ids up with SOQL and delete them with composite delete; a record Salesforce no longer has counts
as removed.

Consent purpose ``email_marketing``: the contacts synced to the CRM are the ones sales and
marketing email, so only customers who allowed email marketing are sent.

Answers: per-row results (in order for collections, matched by external id for Bulk results) ->
RecordOutcome (a row's UNABLE_TO_LOCK_ROW is not a refusal); 429 -> RateLimited; 403
REQUEST_LIMIT_EXCEEDED -> PermanentError when the daily allocation is spent ("TotalRequests Limit
exceeded": nothing more can be sent until it recovers, the rows stay for the next run), RateLimited
for the concurrent long-running request limit; 5xx, UNABLE_TO_LOCK_ROW for a whole request, or a
timeout -> TransientError; 401 and other 403s, an unknown object or field (404, INVALID_FIELD,
NOT_FOUND) -> PermanentError; another 400 for the whole request -> BatchRejected; a Bulk job that
ends Failed -> PermanentError (the job itself, not a row, is wrong).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import requests
from pydantic import Field

from orchestration.activation.destination import (
    DestinationError,
    PermanentError,
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
    excerpt,
    json_or_none,
    raise_for_status,
    retry_after,
)
from orchestration.activation.serialisation import jsonable

COLLECTION_LIMIT = 200
#: Whole-request error codes that name the request's configuration, not its rows.
CONFIGURATION_ERRORS = frozenset(
    {"INVALID_FIELD", "INVALID_TYPE", "NOT_FOUND", "INVALID_SESSION_ID", "API_DISABLED_FOR_ORG"}
)
#: Row error codes that are Salesforce busy, not refusing the row: they do not count toward
#: parking it.
TRANSIENT_ROW_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
#: Bulk value that sets a field to null; an empty cell leaves the field unchanged.
BULK_NULL = "#N/A"


class SalesforceConfig(HttpDestinationConfig):
    env_name: ClassVar[str] = "SALESFORCE"

    object: str = "Contact"
    external_id_field: str = "Tessera_Customer_Id__c"
    api_version: str = "62.0"
    bulk_threshold: int = Field(10_000, ge=0)
    bulk_batch_size: int = Field(10_000, gt=0, le=150_000)
    bulk_poll_seconds: float = Field(2.0, ge=0.0)
    bulk_max_wait_seconds: float = Field(600.0, ge=0.0)
    on_remove: Literal["delete", "none"] = "delete"

    def data(self, path: str) -> str:
        return self.url(f"services/data/v{self.api_version}/{path.lstrip('/')}")


class Salesforce(HttpDestination):
    name: ClassVar[str] = "salesforce"
    max_batch_size: ClassVar[int] = COLLECTION_LIMIT
    max_concurrency: ClassVar[int] = 4
    consent_purpose: ClassVar[str | None] = "email_marketing"
    supported_modes: ClassVar[frozenset[str]] = frozenset({"upsert", "mirror"})
    config_class: ClassVar[type[SalesforceConfig]] = SalesforceConfig

    config: SalesforceConfig

    def __init__(
        self, config: SalesforceConfig, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(config)
        self._sleep = sleep
        self._run: RunContext | None = None

    def check_connection(self) -> None:
        response = self._request("GET", "limits", "reading the API limits", accept=(401,))
        if response.status_code == 401:
            raise PermanentError(
                f"Salesforce refused the token (HTTP 401): check "
                f"{SalesforceConfig.env_var('token')} and {SalesforceConfig.env_var('base_url')}"
            )

    def start(self, run: RunContext) -> None:
        """Choose Bulk API 2.0 for a run larger than ``bulk_threshold``.

        A Bulk run's ``max_batch_size`` (on the instance) becomes ``bulk_batch_size``; a batch of
        at most 200 records (a split retry, the run's tail) still goes through collections.
        """
        self._run = run
        self.max_batch_size = self.config.bulk_batch_size if self.bulk else COLLECTION_LIMIT  # type: ignore[misc]

    @property
    def bulk(self) -> bool:
        # Read when used: the engine fills in the run's total after resending a killed run's
        # batches, which it does after ``start``.
        return self._run is not None and self._run.total_records > self.config.bulk_threshold

    def write(self, batch: Sequence[Record]) -> WriteResult:
        if batch[0].operation == "remove":
            outcomes = self._remove(batch)
        elif self.bulk and len(batch) > COLLECTION_LIMIT:
            outcomes = self._bulk(batch)
        else:
            outcomes = self._upsert(batch)
        return WriteResult([outcomes[record.key] for record in batch])

    # sObject Collections

    def _external_id(self, record: Record) -> str:
        value = record.fields.get(self.config.external_id_field)
        return str(value) if value not in (None, "") else record.key

    def _sobject_record(self, record: Record) -> dict[str, Any]:
        fields = {name: jsonable(value) for name, value in record.fields.items()}
        fields[self.config.external_id_field] = self._external_id(record)
        return {"attributes": {"type": self.config.object}, **fields}

    def _upsert(self, records: Sequence[Record]) -> dict[str, RecordOutcome]:
        body = {"allOrNone": False, "records": [self._sobject_record(r) for r in records]}
        path = f"composite/sobjects/{self.config.object}/{self.config.external_id_field}"
        results = self._json("PATCH", path, "upserting records", body)
        return _ordered_outcomes(records, results)

    def _remove(self, records: Sequence[Record]) -> dict[str, RecordOutcome]:
        if self.config.on_remove == "none":
            return {r.key: RecordOutcome(r.key, True) for r in records}
        ids = self._lookup_ids(records)
        outcomes = {r.key: RecordOutcome(r.key, True) for r in records if r.key not in ids}
        found = [r for r in records if r.key in ids]
        for start in range(0, len(found), COLLECTION_LIMIT):
            chunk = found[start : start + COLLECTION_LIMIT]
            query = {"ids": ",".join(ids[r.key] for r in chunk), "allOrNone": "false"}
            results = self._json("DELETE", "composite/sobjects", "deleting records", params=query)
            outcomes.update(_ordered_outcomes(chunk, results, already_gone_ok=True))
        return outcomes

    def _lookup_ids(self, records: Sequence[Record]) -> dict[str, str]:
        """Record key -> Salesforce Id, for the records that exist, found by external id."""
        field = self.config.external_id_field
        key_of = {self._external_id(r): r.key for r in records}
        ids: dict[str, str] = {}
        values = list(key_of)
        # 200 quoted ids keep the query string well under Salesforce's 16,000-character URI limit.
        for start in range(0, len(values), COLLECTION_LIMIT):
            chunk = values[start : start + COLLECTION_LIMIT]
            quoted = ", ".join(_soql_string(value) for value in chunk)
            query = f"SELECT Id, {field} FROM {self.config.object} WHERE {field} IN ({quoted})"
            answer = self._json("GET", "query", "looking up records", params={"q": query})
            while True:
                for row in answer.get("records", []):
                    key = key_of.get(str(row.get(field)))
                    if key is not None and row.get("Id"):
                        ids[key] = row["Id"]
                next_url = answer.get("nextRecordsUrl")
                if answer.get("done", True) or not next_url:
                    break
                answer = self._json("GET", next_url, "looking up records", absolute=True)
        return ids

    # Bulk API 2.0

    def _bulk(self, records: Sequence[Record]) -> dict[str, RecordOutcome]:
        job = self._json(
            "POST",
            "jobs/ingest",
            "creating a Bulk job",
            {
                "object": self.config.object,
                "operation": "upsert",
                "externalIdFieldName": self.config.external_id_field,
                "contentType": "CSV",
                "lineEnding": "LF",
                "columnDelimiter": "COMMA",
            },
        )
        job_id = job["id"]
        try:
            self._request(
                "PUT",
                f"jobs/ingest/{job_id}/batches",
                "uploading the Bulk job's data",
                data=_csv(records, self._sobject_record).encode("utf-8"),
                headers={"Content-Type": "text/csv"},
            )
            self._json(
                "PATCH",
                f"jobs/ingest/{job_id}",
                "closing the Bulk job",
                {"state": "UploadComplete"},
            )
            self._wait(job_id)
        except BaseException:
            self._abort(job_id)
            raise
        return self._bulk_outcomes(job_id, records)

    def _wait(self, job_id: str) -> None:
        deadline = time.monotonic() + self.config.bulk_max_wait_seconds
        while True:
            job = self._json("GET", f"jobs/ingest/{job_id}", "polling the Bulk job")
            state = job.get("state")
            if state == "JobComplete":
                return
            if state in ("Failed", "Aborted"):
                raise PermanentError(
                    f"Salesforce Bulk job {job_id} ended {state}: "
                    f"{job.get('errorMessage') or 'no error message'}"
                )
            if time.monotonic() >= deadline:
                raise TransientError(
                    f"Salesforce Bulk job {job_id} still {state} after "
                    f"{self.config.bulk_max_wait_seconds:g} s"
                )
            self._sleep(self.config.bulk_poll_seconds)

    def _abort(self, job_id: str) -> None:
        try:
            self._request(
                "PATCH", f"jobs/ingest/{job_id}", "aborting the Bulk job", json={"state": "Aborted"}
            )
        except DestinationError:
            pass  # best effort: an unclosed job is never processed

    def _bulk_outcomes(self, job_id: str, records: Sequence[Record]) -> dict[str, RecordOutcome]:
        field = self.config.external_id_field
        key_of = {self._external_id(r): r.key for r in records}
        outcomes: dict[str, RecordOutcome] = {}
        # Result rows come back in no particular order: match them on the external id column.
        for kind in ("successfulResults", "failedResults", "unprocessedrecords"):
            text = self._text(f"jobs/ingest/{job_id}/{kind}/", f"reading the Bulk job's {kind}")
            for row in csv.DictReader(io.StringIO(text)):
                key = key_of.get(row.get(field, ""))
                if key is None:
                    continue
                if kind == "successfulResults":
                    outcomes[key] = RecordOutcome(
                        key, True, destination_id=row.get("sf__Id") or None
                    )
                elif kind == "failedResults":
                    error = row.get("sf__Error") or "failed"
                    transient = error.split(":", 1)[0] in TRANSIENT_ROW_CODES
                    outcomes[key] = RecordOutcome(key, False, error=error, transient=transient)
                else:
                    outcomes[key] = RecordOutcome(
                        key, False, error="not processed by the Bulk job", transient=True
                    )
        for record in records:
            outcomes.setdefault(
                record.key,
                RecordOutcome(
                    record.key, False, error="no Bulk result for this row", transient=True
                ),
            )
        return outcomes

    # HTTP

    def _request(
        self, method: str, path: str, what: str, absolute: bool = False, **kwargs: Any
    ) -> requests.Response:
        url = self.config.url(path) if absolute else self.config.data(path)
        return self.request(method, url, what, **kwargs)

    def _json(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        absolute: bool = False,
    ) -> Any:
        response = self._request(method, path, what, absolute=absolute, json=body, params=params)
        answer = json_or_none(response)
        return answer if answer is not None else {}

    def _text(self, path: str, what: str) -> str:
        return self._request("GET", path, what).text

    def raise_for(self, response: requests.Response, what: str) -> None:
        """Salesforce's ``[{"errorCode", "message"}]``: the code says whose fault it is."""
        status = response.status_code
        code, message = _error(response)
        detail = f"Salesforce {what}: HTTP {status} {code}: {message}"
        if code == "REQUEST_LIMIT_EXCEEDED":
            if "totalrequests" in message.lower().replace(" ", ""):
                raise PermanentError(detail)
            raise RateLimited(detail, retry_after(response))
        if code == "UNABLE_TO_LOCK_ROW" or code == "SERVER_UNAVAILABLE":
            raise TransientError(detail)
        if code in CONFIGURATION_ERRORS:
            raise PermanentError(detail)
        raise_for_status(response, f"Salesforce {what}", f"{code}: {message}" if code else None)


def _error(response: requests.Response) -> tuple[str, str]:
    """errorCode and message of Salesforce's ``[{"message", "errorCode"}]`` error body."""
    body = json_or_none(response)
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict):
        return str(first.get("errorCode") or ""), str(first.get("message") or "")
    return "", excerpt(response)


def _ordered_outcomes(
    records: Sequence[Record], results: Any, already_gone_ok: bool = False
) -> dict[str, RecordOutcome]:
    """Collection results come back in the order of the records sent."""
    if not isinstance(results, list) or len(results) != len(records):
        raise TransientError(
            f"Salesforce answered {len(results) if isinstance(results, list) else 'no'} results "
            f"for {len(records)} records"
        )
    outcomes = {}
    for record, result in zip(records, results, strict=True):
        errors = result.get("errors") or []
        codes = {error.get("statusCode") for error in errors}
        if result.get("success") or (already_gone_ok and codes <= {"ENTITY_IS_DELETED"} and codes):
            outcomes[record.key] = RecordOutcome(record.key, True, destination_id=result.get("id"))
        else:
            message = "; ".join(
                f"{error.get('statusCode')}: {error.get('message')}"
                + (f" ({', '.join(error['fields'])})" if error.get("fields") else "")
                for error in errors
            )
            transient = bool(codes) and codes <= TRANSIENT_ROW_CODES
            outcomes[record.key] = RecordOutcome(
                record.key, False, error=message or "failed", transient=transient
            )
    return outcomes


def _soql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _csv(records: Sequence[Record], as_sobject: Callable[[Record], dict[str, Any]]) -> str:
    rows = [{k: v for k, v in as_sobject(r).items() if k != "attributes"} for r in records]
    columns = list(dict.fromkeys(column for row in rows for column in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_bulk_value(row[c]) if c in row else "" for c in columns])
    return buffer.getvalue()


def _bulk_value(value: Any) -> str:
    if value is None:
        return BULK_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
