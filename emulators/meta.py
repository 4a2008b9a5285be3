"""Emulator of Meta's Marketing API for customer-file Custom Audiences.

Endpoints (any ``/vNN.N`` version; the token as ``Authorization: Bearer``, or the
``access_token`` parameter; parameters as JSON body, form fields or query, ``payload`` and
``session`` as objects or JSON-encoded strings):

- ``POST /{v}/act_{ad_account_id}/customaudiences`` ``{name, subtype: CUSTOM,
  customer_file_source, description}`` -> ``{"id": "<audience id>"}``.
- ``GET /{v}/{audience_id}``: ``id``, ``name``, ``subtype``, ``approximate_count_lower_bound``,
  ``operation_status`` (``{"code": 200, "description": "Normal"}`` or 300 replace in progress).
- ``POST /{v}/{audience_id}/users`` adds, ``DELETE`` (or ``POST`` with ``method=DELETE``)
  removes: ``payload`` ``{"schema": [...], "data": [[...], ...]}`` and optional ``session``
  ``{session_id, batch_seq, last_batch_flag, estimated_num_total}``.
- ``POST /{v}/{audience_id}/usersreplace``: ``payload`` and ``session`` both required.

Enforced: at most 10,000 rows per request; schema keys from Meta's list; every row as long as
the schema; values of hashed keys (all but MADID, EXTERN_ID, LOOKALIKE_VALUE and
DATA_PROCESSING_OPTIONS*) empty or 64-character lowercase hex SHA-256. Plain-text PII is the bug
this emulator exists to catch: by default (``reject_unhashed``) one such value refuses the
whole request with error 100 naming it (``payload.data[3][0]``); with ``reject_unhashed=False``
such rows count in ``num_invalid_entries`` with ``invalid_entry_samples``, as Meta reports
them. Sessions: the first request of a session must have ``batch_seq`` 1, a session is over
after ``last_batch_flag`` or ``session_timeout_seconds`` (90 min), a repeated ``batch_seq`` is
not applied twice; ``num_received`` and ``num_invalid_entries`` are cumulative per session.
Replace: error 2650 with subcode 1870145 (update in progress: a replace already runs, or
``/users`` during one), 1870147 (first batch_seq not seen), 1870158 (session timed out: the
audience keeps what was uploaded), 1870159 (session already finished); on the last batch the
audience holds exactly the uploaded set. Removal drops every member sharing a value of any key
with a removal row (EXTERN_ID alone can remove).

Errors are Graph-API bodies ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`` with HTTP 400, as Meta sends them: bad token 190 (``WWW-Authenticate`` too),
invalid parameter 100, unknown object 100/33. Throttling is 400 with code 80003 (subcode
2446079) and ``X-Business-Use-Case-Usage`` (``estimated_time_to_regain_access`` in minutes),
not 429; the emulator adds ``Retry-After``. Injected server errors are code 2, ``is_transient``.

State for tests: ``audiences`` (id -> ``Audience``; ``members`` is a set of
``((key, hashed value), ...)`` tuples without empty values), ``member_values(audience_id, key)``.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

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
)

MAX_ROWS = 10_000
_VERSION = r"/v(?P<version>\d+\.\d+)"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
UNHASHED_KEYS = frozenset(
    {
        "MADID",
        "MOBILE_ADVERTISER_ID",
        "EXTERN_ID",
        "LOOKALIKE_VALUE",
        "DATA_PROCESSING_OPTIONS",
        "DATA_PROCESSING_OPTIONS_COUNTRY",
        "DATA_PROCESSING_OPTIONS_STATE",
    }
)
SCHEMA_KEYS = (
    frozenset(
        {
            "EMAIL",
            "PHONE",
            "GEN",
            "DOBY",
            "DOBM",
            "DOBD",
            "FN",
            "LN",
            "FI",
            "CT",
            "ST",
            "ZIP",
            "COUNTRY",
            "EMAIL_SHA256",
            "PHONE_SHA256",
        }
    )
    | UNHASHED_KEYS
)

_SESSION_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["session_id", "batch_seq"],
    "properties": {
        "session_id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        "batch_seq": {"type": "integer", "minimum": 1},
        "last_batch_flag": {"type": "boolean"},
        "estimated_num_total": {"type": "integer", "minimum": 0},
    },
}
_PAYLOAD_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["schema", "data"],
    "properties": {
        "schema": {
            "oneOf": [
                {"enum": sorted(SCHEMA_KEYS)},
                {"type": "array", "minItems": 1, "items": {"enum": sorted(SCHEMA_KEYS)}},
            ]
        },
        "data": {"type": "array", "minItems": 1},
        "is_raw": {"type": "boolean"},
        "app_ids": {"type": "array"},
        "page_ids": {"type": "array"},
        "data_source": {"type": "object"},
    },
}
_AUDIENCE_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["name", "subtype", "customer_file_source"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "subtype": {"const": "CUSTOM"},
        "customer_file_source": {
            "enum": [
                "USER_PROVIDED_ONLY",
                "PARTNER_PROVIDED_ONLY",
                "BOTH_USER_AND_PARTNER_PROVIDED",
            ]
        },
        "description": {"type": "string"},
    },
}

Member = tuple[tuple[str, str], ...]


@dataclass
class Session:
    kind: str  # add | remove | replace
    started_at: float
    schema: tuple[str, ...]
    batches: set[int] = field(default_factory=set)
    finished: bool = False
    timed_out: bool = False
    num_received: int = 0
    num_invalid_entries: int = 0
    staged: set[Member] = field(default_factory=set)


@dataclass
class Audience:
    id: str
    account_id: str
    name: str
    description: str
    customer_file_source: str
    members: set[Member] = field(default_factory=set)
    sessions: dict[int, Session] = field(default_factory=dict)
    replace_session: int | None = None

    def as_json(self) -> dict[str, Any]:
        replacing = self.replace_session is not None
        return {
            "id": self.id,
            "account_id": self.account_id,
            "name": self.name,
            "description": self.description,
            "subtype": "CUSTOM",
            "customer_file_source": self.customer_file_source,
            "approximate_count_lower_bound": len(self.members),
            "approximate_count_upper_bound": len(self.members),
            "operation_status": (
                {"code": 300, "description": "Replace in progress"}
                if replacing
                else {"code": 200, "description": "Normal"}
            ),
        }


class MetaEmulator(Emulator):
    name: ClassVar[str] = "meta"

    def __init__(
        self,
        *,
        reject_unhashed: bool = True,
        session_timeout_seconds: float = 90 * 60,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.reject_unhashed = reject_unhashed
        self.session_timeout_seconds = session_timeout_seconds
        self.audiences: dict[str, Audience] = {}
        self.duplicate_batches = 0
        self._next_audience = 1

    # -- state inspection ------------------------------------------------------------------

    def member_values(self, audience_id: str, key: str) -> set[str]:
        """Every value of ``key`` (EMAIL, PHONE, ...) among the audience's members."""
        with self.lock:
            return {
                value
                for member in self.audiences[audience_id].members
                for name, value in member
                if name == key
            }

    # -- platform answers ------------------------------------------------------------------

    @staticmethod
    def _graph_error(
        code: int,
        message: str,
        subcode: int | None = None,
        status: int = 400,
        error_type: str = "OAuthException",
        **extra: Any,
    ) -> Response:
        error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
        if subcode is not None:
            error["error_subcode"] = subcode
        error.update(extra)
        error["fbtrace_id"] = new_id().replace("-", "")[:22]
        return Response(status, {"error": error})

    def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {name: values[0] for name, values in request.query.items()}
        if request.content_type == "application/x-www-form-urlencoded":
            form = parse_qs(request.body.decode(), keep_blank_values=True)
            params.update({name: values[0] for name, values in form.items()})
        elif request.body.strip():
            body = self.json_body(request)
            if not isinstance(body, dict):
                raise self.invalid(request, "the request body must be a JSON object")
            params.update(body)
        for name in ("payload", "session"):
            if isinstance(params.get(name), str):
                try:
                    params[name] = json.loads(params[name])
                except ValueError as exc:
                    raise self.invalid(request, f"{name} is not valid JSON", name) from exc
        return params

    def authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization") or ""
        scheme, _, credentials = header.partition(" ")
        token = credentials.strip() if scheme.lower() in ("bearer", "oauth") else None
        if token is None:
            token = request.query_value("access_token")
        if token is None and request.content_type == "application/x-www-form-urlencoded":
            token = (parse_qs(request.body.decode()).get("access_token") or [None])[0]
        if token is None and request.content_type == "application/json":
            try:
                body = request.json()
            except ValueError:
                body = None
            token = body.get("access_token") if isinstance(body, dict) else None
        if token == self.token:
            return None
        return self.error_unauthorized(request)

    def error_unauthorized(self, request: Request) -> Response:
        message = "Invalid OAuth access token - Cannot parse access token"
        response = self._graph_error(190, message)
        response.headers["WWW-Authenticate"] = (
            f'OAuth "Facebook Platform" "invalid_token" "{message}"'
        )
        return response

    def error_throttled(self, request: Request, retry_after: float) -> Response:
        response = self._graph_error(
            80003,
            "There have been too many calls to this ad-account. Wait a bit and try again.",
            2446079,
            is_transient=True,
        )
        account = self._account_of(request)
        usage = {
            account: [
                {
                    "type": "custom_audience",
                    "call_count": 100,
                    "total_cputime": 100,
                    "total_time": 100,
                    "estimated_time_to_regain_access": math.ceil(retry_after / 60),
                }
            ]
        }
        response.headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
        return response.with_retry_after(retry_after)

    def error_server(self, request: Request, status: int) -> Response:
        return self._graph_error(
            2,
            "An unexpected error has occurred. Please retry your request later.",
            status=status,
            is_transient=True,
        )

    def error_invalid(self, request: Request, message: str, field: str | None) -> Response:
        return self._graph_error(100, f"(#100) {message}")

    def error_not_found(self, request: Request, message: str) -> Response:
        return self._graph_error(100, message, 33, error_type="GraphMethodException")

    def _account_of(self, request: Request) -> str:
        match = re.search(r"/(?:act_)?(\d+)", request.path.split("/", 2)[-1])
        if match and match.group(1) in self.audiences:
            return self.audiences[match.group(1)].account_id
        return match.group(1) if match else "0"

    # -- routes ----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        audience = _VERSION + r"/(?P<audience_id>\d+)"
        return [
            route(
                "POST",
                _VERSION + r"/act_(?P<account_id>\d+)/customaudiences",
                self._create_audience,
            ),
            route("GET", audience, self._get_audience),
            route("POST", audience + "/users", self._post_users),
            route("DELETE", audience + "/users", self._delete_users),
            route("POST", audience + "/usersreplace", self._replace_users),
        ]

    def _audience(self, request: Request) -> Audience:
        found = self.audiences.get(request.params["audience_id"])
        if found is None:
            raise self.not_found(
                request,
                f"Unsupported request. Object with ID '{request.params['audience_id']}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this "
                "operation.",
            )
        return found

    def _create_audience(self, request: Request) -> Response:
        params = self._params(request)
        params.pop("access_token", None)
        body = self.validate(
            request,
            _AUDIENCE_SCHEMA,
            {key: params[key] for key in params if key in _AUDIENCE_SCHEMA["properties"]},
        )
        audience_id = f"2385{self._next_audience:013d}"
        self._next_audience += 1
        self.audiences[audience_id] = Audience(
            audience_id,
            request.params["account_id"],
            body["name"],
            body.get("description", ""),
            body["customer_file_source"],
        )
        return Response(200, {"id": audience_id})

    def _get_audience(self, request: Request) -> Response:
        audience = self._audience(request)
        self._expire_sessions(audience)
        return Response(200, audience.as_json())

    def _post_users(self, request: Request) -> Response:
        params = self._params(request)
        kind = "remove" if str(params.get("method", "")).upper() == "DELETE" else "add"
        return self._users(request, params, kind)

    def _delete_users(self, request: Request) -> Response:
        return self._users(request, self._params(request), "remove")

    def _replace_users(self, request: Request) -> Response:
        params = self._params(request)
        for required in ("payload", "session"):
            if required not in params:
                raise self.invalid(request, f"The parameter {required} is required", required)
        return self._users(request, params, "replace")

    # -- the upload logic ------------------------------------------------------------------

    def _expire_sessions(self, audience: Audience) -> None:
        now = time.monotonic()
        for session in audience.sessions.values():
            timed_out = now - session.started_at > self.session_timeout_seconds
            if not session.finished and timed_out:
                session.timed_out = True
                self._finish(audience, session)

    def _finish(self, audience: Audience, session: Session) -> None:
        session.finished = True
        if session.kind == "replace":
            audience.members = set(session.staged)
            audience.replace_session = None

    def _rows(
        self, request: Request, payload: dict[str, Any]
    ) -> tuple[tuple[str, ...], list[Member], dict[str, str]]:
        """The schema, the valid rows as members, and samples of the invalid rows."""
        self.validate(request, _PAYLOAD_SCHEMA, payload)
        schema_value = payload["schema"]
        schema = (schema_value,) if isinstance(schema_value, str) else tuple(schema_value)
        data = payload["data"]
        if len(data) > MAX_ROWS:
            raise self.invalid(
                request,
                f"payload.data: at most {MAX_ROWS} users can be sent in one request, "
                f"got {len(data)}",
                "payload.data",
            )
        members: list[Member] = []
        invalid: dict[str, str] = {}
        for index, row in enumerate(data):
            values = [row] if len(schema) == 1 and isinstance(row, str) else row
            if not isinstance(values, list) or len(values) != len(schema):
                raise self.invalid(
                    request,
                    f"payload.data[{index}] has {len(values) if isinstance(values, list) else 1}"
                    f" values for a schema of {len(schema)} keys",
                    f"payload.data[{index}]",
                )
            problem = None
            for position, (key, value) in enumerate(zip(schema, values, strict=True)):
                if not isinstance(value, str):
                    raise self.invalid(
                        request,
                        f"payload.data[{index}][{position}] must be a string",
                        f"payload.data[{index}][{position}]",
                    )
                if value and key not in UNHASHED_KEYS and not _SHA256.match(value):
                    if self.reject_unhashed:
                        raise self.invalid(
                            request,
                            f"payload.data[{index}][{position}]: {key} values must be SHA-256 "
                            "hashed, as 64 lowercase hex characters",
                            f"payload.data[{index}][{position}]",
                        )
                    problem = problem or (value, f"{key} is not a SHA-256 hash")
            member = tuple(
                sorted((key, value) for key, value in zip(schema, values, strict=True) if value)
            )
            if problem is None and not member:
                problem = ("", "every value of the row is empty")
            if problem is None and self.row_fails(request):
                problem = (values[0], "the entry could not be processed")
            if problem is not None:
                if len(invalid) < 100:
                    invalid[problem[0]] = problem[1]
                members.append(())
                continue
            members.append(member)
        return schema, members, invalid

    def _users(self, request: Request, params: dict[str, Any], kind: str) -> Response:
        audience = self._audience(request)
        self._expire_sessions(audience)
        if "payload" not in params:
            raise self.invalid(request, "The parameter payload is required", "payload")
        session_params = params.get("session")
        if session_params is not None:
            self.validate(request, _SESSION_SCHEMA, session_params)
        try:
            session = self._session_for(audience, session_params, kind)
        except RowError as error:
            raise ApiError(self._graph_error(error.code, error.message, error.detail)) from None
        schema, members, invalid = self._rows(request, params["payload"])
        if session is not None and session.batches and schema != session.schema:
            raise self.invalid(
                request, "payload.schema must be the same in every batch of a session", "schema"
            )
        valid = [member for member in members if member]
        num_invalid = len(members) - len(valid)
        batch_seq = session_params["batch_seq"] if session_params else None

        if session is not None and batch_seq in session.batches:
            self.duplicate_batches += 1
        else:
            if kind == "add":
                audience.members.update(valid)
            elif kind == "remove":
                self._remove(audience, valid)
            else:
                assert session is not None
                session.staged.update(valid)
            if session is not None:
                session.schema = schema
                session.batches.add(batch_seq)
                session.num_received += len(members)
                session.num_invalid_entries += num_invalid
        if session is not None and session_params.get("last_batch_flag"):
            self._finish(audience, session)

        answer: dict[str, Any] = {
            "audience_id": audience.id,
            "num_received": session.num_received if session else len(members),
            "num_invalid_entries": session.num_invalid_entries if session else num_invalid,
            "invalid_entry_samples": invalid,
        }
        if session_params is not None:
            answer["session_id"] = str(session_params["session_id"])
        return Response(200, answer)

    def _session_for(
        self, audience: Audience, params: dict[str, Any] | None, kind: str
    ) -> Session | None:
        if params is None:
            if audience.replace_session is not None:
                raise RowError(2650, "Update in progress", 1870145)
            return None
        session_id, batch_seq = params["session_id"], params["batch_seq"]
        session = audience.sessions.get(session_id)
        if session is not None:
            if session.finished:
                if session.timed_out:
                    raise RowError(2650, "Session timed out", 1870158)
                raise RowError(2650, "Session already finished", 1870159)
            if session.kind != kind:
                raise RowError(2650, f"Session {session_id} is a {session.kind} session", 1870148)
            return session
        if batch_seq != 1:
            raise RowError(2650, "First batch_seq (=1) not seen", 1870147)
        if audience.replace_session is not None:
            raise RowError(2650, "Update in progress", 1870145)
        session = Session(kind=kind, started_at=time.monotonic(), schema=())
        audience.sessions[session_id] = session
        if kind == "replace":
            audience.replace_session = session_id
        return session

    @staticmethod
    def _remove(audience: Audience, rows: list[Member]) -> None:
        keys = {pair for row in rows for pair in row}
        audience.members = {
            member for member in audience.members if not any(pair in keys for pair in member)
        }
