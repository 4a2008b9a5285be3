"""Emulator of the Salesforce REST API: sObject Collections upsert/delete and Bulk API 2.0 ingest.

Endpoints (``Authorization: Bearer <token>``; ``vXX.X`` is any version, 46.0 or later for the
collections upsert):

- ``PATCH /services/data/vXX.X/composite/sobjects/{SObject}/{ExternalIdField}``
  ``{"allOrNone": false, "records": [{"attributes": {"type": "Contact"}, ...}]}``: at most 200
  records (else 400 ``EXCEEDED_ID_LIMIT``), each with ``attributes.type`` equal to the URI's
  SObject (else 400). ``ExternalIdField`` must be an external id field (``external_id_fields``;
  by default any custom ``__c`` field), else 404 ``NOT_FOUND``. Answers 200 with one result per
  record, in order: ``{"id", "success", "errors", "created"}``. Row errors:
  ``INVALID_FIELD`` (the record carries ``Id``), ``MISSING_ARGUMENT`` (no external id value),
  ``DUPLICATE_EXTERNAL_ID`` (the same value twice in one request), ``REQUIRED_FIELD_MISSING``
  (``required_fields`` absent on create, e.g. Contact ``LastName``), ``INVALID_EMAIL_ADDRESS``,
  and ``UNABLE_TO_LOCK_ROW`` for an injected partial failure. With ``allOrNone: true`` any
  failure rolls the request back and every valid row carries ``ALL_OR_NONE_OPERATION_ROLLED_BACK``.
- ``DELETE /services/data/vXX.X/composite/sobjects?ids=a,b&allOrNone=false``: at most 200 ids;
  per-id results (``ENTITY_IS_DELETED`` for an id deleted before, ``INVALID_CROSS_REFERENCE_KEY``
  for one never seen).
- Bulk API 2.0: ``POST .../jobs/ingest`` (JobInfo, state Open); ``PUT .../jobs/ingest/{id}/batches``
  (``text/csv``, 201, empty body; only while Open, else 409 ``INVALIDJOBSTATE``);
  ``PATCH .../jobs/ingest/{id}`` ``{"state": "UploadComplete" | "Aborted"}``;
  ``GET .../jobs/ingest/{id}``: after UploadComplete each poll moves the job on, InProgress then
  JobComplete (``bulk_polls``), when the rows are applied; ``GET .../successfulResults/``
  (``sf__Id``, ``sf__Created``, then the uploaded columns), ``.../failedResults/`` (``sf__Id``,
  ``sf__Error``, then the columns), ``.../unprocessedrecords/`` (the columns), rows shuffled as
  the real API does not keep order; ``DELETE .../jobs/ingest/{id}``; ``GET .../jobs/ingest``.
- ``GET /services/data/vXX.X/query?q=SELECT f1, f2 FROM SObject [WHERE f IN ('a', 'b') | WHERE
  f = 'a'] [LIMIT n]``: the subset of SOQL a connector needs to find records by external id;
  ``{"totalSize", "done", "records", "nextRecordsUrl"}`` in pages of ``query_page_size``
  (follow ``nextRecordsUrl``); anything else is 400 ``MALFORMED_QUERY``.
- ``GET /services/data/vXX.X/limits`` (``DailyApiRequests``), for a connection check.

Errors are Salesforce's JSON arrays ``[{"message", "errorCode"}]``: 401 ``INVALID_SESSION_ID``;
403 ``REQUEST_LIMIT_EXCEEDED`` "TotalRequests Limit exceeded." once ``daily_limit`` requests
were used (every authenticated request counts; usage is in ``Sforce-Limit-Info:
api-usage=N/M`` on every answer). Salesforce answers throttling with 403
``REQUEST_LIMIT_EXCEEDED`` too, not 429: the rate-limit window and the rate-limit fault answer
"ConcurrentPerOrgLongTxn Limit exceeded." (retry later), which a connector tells from the daily
exhaustion (stop) by its message. The emulator adds ``Retry-After`` to that answer.

State for tests: ``records[sobject][id]`` (field dicts), ``record_by(sobject, field, value)``,
``jobs`` (id -> ``BulkJob``), ``api_usage``.
"""

from __future__ import annotations

import copy
import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from emulators.base import (
    ApiError,
    Emulator,
    JsonSchema,
    Request,
    Response,
    Route,
    RowError,
    route,
    utc_timestamp,
)

MAX_RECORDS = 200
_DATA = r"/services/data/v(?P<version>\d+\.\d)"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ID_PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q"}
_BULK_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
_DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}

_SOQL_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")
_SOQL = re.compile(
    r"SELECT\s+(?P<columns>[\w\s,]+?)\s+FROM\s+(?P<sobject>\w+)"
    r"(?:\s+WHERE\s+(?P<field>\w+)\s*(?:IN\s*\((?P<values>(?:\s*'(?:[^'\\]|\\.)*'\s*,?)+)\)"
    r"|=\s*(?P<value>'(?:[^'\\]|\\.)*')))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?",
    re.IGNORECASE,
)


def _unescape(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal)


_UPSERT_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["records"],
    "properties": {
        "allOrNone": {"type": "boolean"},
        "records": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["attributes"],
                "properties": {
                    "attributes": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"type": "string", "minLength": 1}},
                    }
                },
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            },
        },
    },
}
_JOB_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["object", "operation"],
    "properties": {
        "object": {"type": "string", "minLength": 1},
        "operation": {"enum": list(_BULK_OPERATIONS)},
        "externalIdFieldName": {"type": "string"},
        "contentType": {"const": "CSV"},
        "lineEnding": {"enum": ["LF", "CRLF"]},
        "columnDelimiter": {"enum": list(_DELIMITERS)},
        "assignmentRuleId": {"type": "string"},
    },
}
_JOB_STATE_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["state"],
    "properties": {"state": {"enum": ["UploadComplete", "Aborted"]}},
}


def _errors(status: int, error_code: str, message: str, **extra: Any) -> Response:
    return Response(status, [{"message": message, "errorCode": error_code, **extra}])


def _row_error_json(error: RowError) -> dict[str, Any]:
    return {"statusCode": error.code, "message": error.message, "fields": error.detail or []}


@dataclass
class BulkJob:
    id: str
    object: str
    operation: str
    external_id_field: str | None
    line_ending: str
    delimiter: str
    api_version: str
    created_at: str
    state: str = "Open"
    uploads: list[str] = field(default_factory=list)
    polls: int = 0
    successful: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    unprocessed: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    error_message: str | None = None

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": "005000000000001AAA",
            "createdDate": self.created_at,
            "systemModstamp": utc_timestamp("+0000", whole_seconds=True),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": next(k for k, v in _DELIMITERS.items() if v == self.delimiter),
            "jobType": "V2Ingest",
            "numberRecordsProcessed": len(self.successful) + len(self.failed),
            "numberRecordsFailed": len(self.failed),
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


class SalesforceEmulator(Emulator):
    name: ClassVar[str] = "salesforce"

    def __init__(
        self,
        *,
        daily_limit: int = 100_000,
        required_fields: Mapping[str, Iterable[str]] | None = None,
        external_id_fields: Mapping[str, Iterable[str]] | None = None,
        bulk_polls: int = 2,
        query_page_size: int = 2000,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.daily_limit = daily_limit
        self.required_fields = {
            sobject: tuple(names)
            for sobject, names in (
                required_fields
                or {"Contact": ["LastName"], "Lead": ["LastName", "Company"], "Account": ["Name"]}
            ).items()
        }
        self.external_id_fields = (
            None
            if external_id_fields is None
            else {sobject: frozenset(names) for sobject, names in external_id_fields.items()}
        )
        self.bulk_polls = bulk_polls
        self.query_page_size = query_page_size
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.deleted: set[str] = set()
        self.jobs: dict[str, BulkJob] = {}
        self.api_usage = 0
        self._next_record = 1
        self._next_job = 1

    # -- state inspection ------------------------------------------------------------------

    def record_by(self, sobject: str, field_name: str, value: Any) -> dict[str, Any] | None:
        with self.lock:
            return next(
                (
                    record
                    for record in self.records.get(sobject, {}).values()
                    if record.get(field_name) == value
                ),
                None,
            )

    # -- platform answers ------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        refusal = super().authenticate(request)
        if refusal is not None:
            return refusal
        with self.lock:
            if self.api_usage >= self.daily_limit:
                return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.api_usage += 1
        return None

    def decorate(self, request: Request, response: Response) -> None:
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.daily_limit}"

    def error_unauthorized(self, request: Request) -> Response:
        return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def error_throttled(self, request: Request, retry_after: float) -> Response:
        response = _errors(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        return response.with_retry_after(retry_after)

    def error_server(self, request: Request, status: int) -> Response:
        if status == 503:
            return _errors(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
        return _errors(status, "UNKNOWN_EXCEPTION", "An unexpected error occurred.")

    def error_invalid(self, request: Request, message: str, field: str | None) -> Response:
        if field is None:
            return _errors(400, "JSON_PARSER_ERROR", message)
        return _errors(400, "INVALID_FIELD", message, fields=[field])

    def error_not_found(self, request: Request, message: str) -> Response:
        return _errors(404, "NOT_FOUND", message)

    # -- routes ----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        job = _DATA + r"/jobs/ingest/(?P<job_id>[^/]+)"
        return [
            route(
                "PATCH",
                _DATA + r"/composite/sobjects/(?P<sobject>\w+)/(?P<external_id>\w+)",
                self._collection_upsert,
            ),
            route("DELETE", _DATA + r"/composite/sobjects/?", self._collection_delete),
            route("GET", _DATA + r"/limits/?", self._limits),
            route("GET", _DATA + r"/query/?", self._query),
            route("GET", _DATA + r"/query/(?P<cursor>[\w-]+)", self._query_more),
            route("POST", _DATA + r"/jobs/ingest/?", self._create_job),
            route("GET", _DATA + r"/jobs/ingest/?", self._list_jobs),
            route("PUT", job + r"/batches/?", self._upload),
            route("PATCH", job + "/?", self._change_job),
            route("GET", job + "/?", self._job_info),
            route("DELETE", job + "/?", self._delete_job),
            route("GET", job + r"/successfulResults/?", self._successful_results),
            route("GET", job + r"/failedResults/?", self._failed_results),
            route("GET", job + r"/unprocessedrecords/?", self._unprocessed_records),
        ]

    # -- record logic shared by collections and bulk --------------------------------------

    def _new_id(self, sobject: str) -> str:
        record_id = f"{_ID_PREFIXES.get(sobject, 'a0X')}{self._next_record:012d}AAA"
        self._next_record += 1
        return record_id

    def _check_external_id_field(self, request: Request, sobject: str, name: str) -> None:
        allowed = (
            name.endswith("__c")
            if self.external_id_fields is None
            else name in self.external_id_fields.get(sobject, frozenset())
        )
        if not allowed:
            raise self.not_found(
                request,
                f"Provided external ID field does not exist or is not accessible: {name}",
            )

    def _check_fields(self, sobject: str, fields: Mapping[str, Any], creating: bool) -> None:
        required = self.required_fields.get(sobject, ())
        missing = [
            name
            for name in required
            if (creating and fields.get(name) in (None, ""))
            or (not creating and name in fields and fields[name] in (None, ""))
        ]
        if missing:
            raise RowError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        email = fields.get("Email")
        if email and not _EMAIL.match(str(email)):
            raise RowError(
                "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {email}", ["Email"]
            )

    def _upsert_row(
        self, request: Request, sobject: str, external_id: str, fields: dict[str, Any]
    ) -> tuple[str, bool]:
        if "Id" in fields:
            raise RowError("INVALID_FIELD", "Cannot specify Id in an upsert call", ["Id"])
        key = fields.get(external_id)
        if key in (None, ""):
            raise RowError("MISSING_ARGUMENT", f"{external_id} not specified")
        table = self.records.setdefault(sobject, {})
        existing = self.record_by(sobject, external_id, key)
        self._check_fields(sobject, fields, creating=existing is None)
        if self.row_fails(request):
            raise RowError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        if existing is None:
            record_id = self._new_id(sobject)
            table[record_id] = {"Id": record_id, **fields}
            return record_id, True
        existing.update(fields)
        return existing["Id"], False

    # -- sObject Collections ---------------------------------------------------------------

    def _collection_upsert(self, request: Request) -> Response:
        if float(request.params["version"]) < 46.0:
            raise self.not_found(request, "The requested resource does not exist")
        sobject, external_id = request.params["sobject"], request.params["external_id"]
        body = self.json_body(request)
        if isinstance(body, dict) and isinstance(body.get("records"), list):
            if len(body["records"]) > MAX_RECORDS:
                raise ApiError(
                    _errors(
                        400,
                        "EXCEEDED_ID_LIMIT",
                        "record limit reached. cannot submit more than 200 records into this call",
                    )
                )
        self.validate(request, _UPSERT_SCHEMA, body)
        for index, record in enumerate(body["records"]):
            if record["attributes"]["type"] != sobject:
                raise ApiError(
                    _errors(
                        400,
                        "INVALID_TYPE",
                        f"records[{index}].attributes.type is {record['attributes']['type']}; "
                        f"every record must be a {sobject}",
                        fields=[f"records[{index}].attributes.type"],
                    )
                )
        self._check_external_id_field(request, sobject, external_id)
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = copy.deepcopy(self.records.get(sobject, {})), self._next_record

        results: list[dict[str, Any]] = []
        seen: set[Any] = set()
        for record in body["records"]:
            fields = {name: value for name, value in record.items() if name != "attributes"}
            try:
                key = fields.get(external_id)
                if key not in (None, "") and key in seen:
                    raise RowError(
                        "DUPLICATE_EXTERNAL_ID",
                        f"Duplicate external id specified: {key}",
                        [external_id],
                    )
                seen.add(key)
                record_id, created = self._upsert_row(request, sobject, external_id, fields)
            except RowError as error:
                results.append({"id": None, "success": False, "errors": [_row_error_json(error)]})
                continue
            results.append({"id": record_id, "success": True, "errors": [], "created": created})

        if all_or_none and any(not result["success"] for result in results):
            self.records[sobject], self._next_record = snapshot
            rolled_back = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
            results = [
                result
                if not result["success"]
                else {"id": None, "success": False, "errors": [rolled_back]}
                for result in results
            ]
        return Response(200, results)

    def _delete_row(self, request: Request, record_id: str) -> None:
        if record_id in self.deleted:
            raise RowError("ENTITY_IS_DELETED", "entity is deleted")
        for table in self.records.values():
            if record_id in table:
                if self.row_fails(request):
                    raise RowError(
                        "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
                    )
                del table[record_id]
                self.deleted.add(record_id)
                return
        raise RowError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")

    def _collection_delete(self, request: Request) -> Response:
        ids = [value for value in (request.query_value("ids") or "").split(",") if value]
        if not ids:
            raise self.invalid(
                request, "ids: a comma-separated list of record ids is required", "ids"
            )
        if len(ids) > MAX_RECORDS:
            raise ApiError(
                _errors(
                    400,
                    "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 200 records into this call",
                )
            )
        all_or_none = (request.query_value("allOrNone") or "false").lower() == "true"
        snapshot = copy.deepcopy(self.records), set(self.deleted)
        results: list[dict[str, Any]] = []
        for record_id in ids:
            try:
                self._delete_row(request, record_id)
            except RowError as error:
                results.append(
                    {"id": record_id, "success": False, "errors": [_row_error_json(error)]}
                )
                continue
            results.append({"id": record_id, "success": True, "errors": []})
        if all_or_none and any(not result["success"] for result in results):
            self.records, self.deleted = snapshot
            results = [
                result
                if not result["success"]
                else {
                    "id": result["id"],
                    "success": False,
                    "errors": [
                        {
                            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                            "message": "Record rolled back because not all records were valid "
                            "and the request was using AllOrNone header",
                            "fields": [],
                        }
                    ],
                }
                for result in results
            ]
        return Response(200, results)

    def _limits(self, request: Request) -> Response:
        return Response(
            200,
            {
                "DailyApiRequests": {
                    "Max": self.daily_limit,
                    "Remaining": max(self.daily_limit - self.api_usage, 0),
                }
            },
        )

    # -- SOQL (the subset connectors use) ---------------------------------------------------

    def _query(self, request: Request) -> Response:
        text = request.query_value("q") or ""
        found = _SOQL.fullmatch(text.strip())
        if found is None:
            raise ApiError(
                _errors(400, "MALFORMED_QUERY", f"unsupported or malformed query: {text}")
            )
        columns = [column.strip() for column in found["columns"].split(",")]
        sobject = found["sobject"]
        wanted: set[str] | None = None
        if found["field"]:
            literals = found["values"] if found["values"] is not None else found["value"]
            wanted = {_unescape(match) for match in _SOQL_LITERAL.findall(literals)}
        rows = [
            {
                "attributes": {
                    "type": sobject,
                    "url": f"/services/data/v{request.params['version']}/sobjects/{sobject}/"
                    f"{record['Id']}",
                },
                **{column: record.get(column) for column in columns},
            }
            for record in self.records.get(sobject, {}).values()
            if wanted is None or str(record.get(found["field"])) in wanted
        ]
        if found["limit"]:
            rows = rows[: int(found["limit"])]
        return self._query_page(request, rows, len(rows))

    def _query_page(self, request: Request, rows: list[dict[str, Any]], total: int) -> Response:
        page, rest = rows[: self.query_page_size], rows[self.query_page_size :]
        body: dict[str, Any] = {"totalSize": total, "done": not rest, "records": page}
        if rest:
            cursor = f"01g{len(self._cursors) + 1:015d}-{total - len(rest)}"
            self._cursors[cursor] = rest
            body["nextRecordsUrl"] = f"/services/data/v{request.params['version']}/query/{cursor}"
        return Response(200, body)

    def _query_more(self, request: Request) -> Response:
        rows = self._cursors.pop(request.params["cursor"], None)
        if rows is None:
            raise ApiError(_errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator"))
        total = int(request.params["cursor"].rsplit("-", 1)[1]) + len(rows)
        return self._query_page(request, rows, total)

    # -- Bulk API 2.0 ----------------------------------------------------------------------

    def _job(self, request: Request) -> BulkJob:
        job = self.jobs.get(request.params["job_id"])
        if job is None:
            raise self.not_found(request, "The requested resource does not exist")
        return job

    def _create_job(self, request: Request) -> Response:
        body = self.validate(request, _JOB_SCHEMA)
        operation = body["operation"]
        external_id = body.get("externalIdFieldName")
        if operation == "upsert":
            if not external_id:
                raise ApiError(
                    _errors(
                        400,
                        "INVALIDJOB",
                        f"External ID was blank for {body['object']}. An External ID must be "
                        "specified for upsert.",
                    )
                )
            self._check_external_id_field(request, body["object"], external_id)
        job = BulkJob(
            id=f"750{self._next_job:012d}AAA",
            object=body["object"],
            operation=operation,
            external_id_field=external_id if operation == "upsert" else None,
            line_ending=body.get("lineEnding", "LF"),
            delimiter=_DELIMITERS[body.get("columnDelimiter", "COMMA")],
            api_version=request.params["version"],
            created_at=utc_timestamp("+0000", whole_seconds=True),
        )
        self._next_job += 1
        self.jobs[job.id] = job
        return Response(200, job.info())

    def _list_jobs(self, request: Request) -> Response:
        return Response(200, {"done": True, "records": [job.info() for job in self.jobs.values()]})

    def _upload(self, request: Request) -> Response:
        job = self._job(request)
        if job.state != "Open":
            raise ApiError(
                _errors(409, "INVALIDJOBSTATE", f"Job is not in the Open state: {job.state}")
            )
        if request.content_type != "text/csv":
            raise ApiError(_errors(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be text/csv"))
        job.uploads.append(request.body.decode("utf-8"))
        return Response(201, content_type="text/plain")

    def _change_job(self, request: Request) -> Response:
        job = self._job(request)
        state = self.validate(request, _JOB_STATE_SCHEMA)["state"]
        if job.state != "Open" and not (state == "Aborted" and job.state != "JobComplete"):
            raise ApiError(
                _errors(409, "INVALIDJOBSTATE", f"Job is not in the Open state: {job.state}")
            )
        if state == "Aborted":
            job.state = "Aborted"
            job.unprocessed = [row for upload in job.uploads for row in self._rows(job, upload)]
        else:
            job.state = "UploadComplete"
        return Response(200, job.info())

    def _job_info(self, request: Request) -> Response:
        job = self._job(request)
        if job.state in ("UploadComplete", "InProgress"):
            job.polls += 1
            if job.polls >= self.bulk_polls:
                self._process(request, job)
            else:
                job.state = "InProgress"
        return Response(200, job.info())

    def _delete_job(self, request: Request) -> Response:
        job = self._job(request)
        if job.state in ("Open", "InProgress"):
            raise ApiError(
                _errors(409, "INVALIDJOBSTATE", f"A job in state {job.state} cannot be deleted")
            )
        del self.jobs[job.id]
        return Response(204)

    def _rows(self, job: BulkJob, upload: str) -> list[dict[str, str]]:
        reader = csv.DictReader(io.StringIO(upload, newline=""), delimiter=job.delimiter)
        for column in reader.fieldnames or []:
            if column not in job.columns:
                job.columns.append(column)
        return list(reader)

    def _process(self, request: Request, job: BulkJob) -> None:
        rows = [row for upload in job.uploads for row in self._rows(job, upload)]
        if not rows:
            job.state = "Failed"
            job.error_message = "InvalidBatch : No data was uploaded to the job"
            return
        for row in rows:
            # An empty CSV cell leaves the field as it is; #N/A would clear it.
            fields = {name: value for name, value in row.items() if value not in ("", None)}
            try:
                record_id, created = self._bulk_row(request, job, fields)
            except RowError as error:
                failure = _row_error_json(error)
                job.failed.append(
                    {
                        "sf__Id": "",
                        "sf__Error": f"{failure['statusCode']}:{failure['message']}:"
                        f"{'--'.join(failure['fields'])}",
                        **row,
                    }
                )
                continue
            job.successful.append({"sf__Id": record_id, "sf__Created": str(created).lower(), **row})
        job.state = "JobComplete"

    def _bulk_row(self, request: Request, job: BulkJob, fields: dict[str, Any]) -> tuple[str, bool]:
        if job.operation == "upsert":
            assert job.external_id_field is not None
            return self._upsert_row(request, job.object, job.external_id_field, fields)
        if job.operation in ("delete", "hardDelete"):
            record_id = fields.get("Id", "")
            self._delete_row(request, record_id)
            return record_id, False
        if job.operation == "insert":
            if "Id" in fields:
                raise RowError("INVALID_FIELD", "Cannot specify Id in an insert call", ["Id"])
            self._check_fields(job.object, fields, creating=True)
            if self.row_fails(request):
                raise RowError(
                    "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
                )
            record_id = self._new_id(job.object)
            self.records.setdefault(job.object, {})[record_id] = {"Id": record_id, **fields}
            return record_id, True
        record = self.records.get(job.object, {}).get(fields.get("Id", ""))
        if record is None:
            raise RowError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])
        self._check_fields(job.object, fields, creating=False)
        if self.row_fails(request):
            raise RowError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        record.update(fields)
        return record["Id"], False

    def _csv(self, job: BulkJob, leading: list[str], rows: list[dict[str, str]]) -> Response:
        shuffled = list(rows)
        with self._random_lock:
            self._random.shuffle(shuffled)
        output = io.StringIO()
        writer = csv.DictWriter(
            output, fieldnames=leading + job.columns, quoting=csv.QUOTE_ALL, lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(shuffled)
        return Response(200, raw=output.getvalue().encode(), content_type="text/csv")

    def _finished_job(self, request: Request) -> BulkJob:
        job = self._job(request)
        if job.state not in ("JobComplete", "Failed", "Aborted"):
            raise ApiError(
                _errors(409, "INVALIDJOBSTATE", f"Results are not available in state {job.state}")
            )
        return job

    def _successful_results(self, request: Request) -> Response:
        job = self._finished_job(request)
        return self._csv(job, ["sf__Id", "sf__Created"], job.successful)

    def _failed_results(self, request: Request) -> Response:
        job = self._finished_job(request)
        return self._csv(job, ["sf__Id", "sf__Error"], job.failed)

    def _unprocessed_records(self, request: Request) -> Response:
        job = self._finished_job(request)
        return self._csv(job, [], job.unprocessed)
