"""A small threaded HTTP server that emulators of destination APIs build on.

An emulator listens on 127.0.0.1 (a free port unless one is given), checks the bearer token,
applies a sliding-window rate limit, injects faults chosen by a seeded random generator, logs
every request, and routes the rest to the platform's handlers, which hold its state. Handlers run
one at a time under ``Emulator.lock``, so state stays consistent while a client sends
concurrently; stalls (the timeout fault) happen outside the lock.

Every error answer goes through a platform hook (``error_unauthorized``, ``error_throttled``,
``error_server``, ``error_invalid``, ``error_not_found``), so a subclass answers in its API's
own status codes and error bodies.

Tests set faults at construction or flip them while a client runs::

    with HubSpotEmulator(faults=Faults(rate_limit=1.0, retry_after=0)) as hubspot:
        ...
        hubspot.set_faults(rate_limit=0.0)   # new Faults, generator re-seeded, fault count reset
        hubspot.faults.server_error = 0.5    # or change one field in place (validated)
"""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

JsonSchema = dict[str, Any]


class Faults(BaseModel):
    """Faults to inject, as probabilities per request (per row for ``partial_failure``).

    Whole-request faults are drawn in the order timeout, rate limit, server error; at most one
    applies to a request. ``limit`` caps how many whole-request faults are injected in all (then
    requests pass), which makes "fails twice, then succeeds" tests deterministic. ``paths`` keeps
    faults to requests whose path starts with one of the prefixes (all paths when empty).
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    rate_limit: float = Field(0.0, ge=0.0, le=1.0)
    server_error: float = Field(0.0, ge=0.0, le=1.0)
    timeout: float = Field(0.0, ge=0.0, le=1.0)
    partial_failure: float = Field(0.0, ge=0.0, le=1.0)
    #: Seconds sent in Retry-After with an injected throttling answer.
    retry_after: float = Field(1.0, ge=0.0)
    #: Status of an injected server error (500, 502, 503, 504).
    server_error_status: int = Field(503, ge=500, le=599)
    #: ``sleep``: stall ``timeout_seconds`` (longer than the client's timeout), then close the
    #: connection without an answer; ``close``: close it at once without an answer.
    timeout_mode: Literal["sleep", "close"] = "sleep"
    timeout_seconds: float = Field(5.0, ge=0.0)
    #: Whether a timed-out request is applied before the connection stalls: the case where the
    #: client cannot know whether its write landed.
    timeout_processed: bool = False
    limit: int | None = Field(None, ge=0)
    paths: tuple[str, ...] = ()
    seed: int = 0


class RateLimit(BaseModel):
    """At most ``requests`` requests in any ``per_seconds`` sliding window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = Field(gt=0)
    per_seconds: float = Field(gt=0.0)


class _SlidingWindow:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float | None:
        """Count one request; None when it is allowed, else seconds until one would be."""
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] >= self.limit.per_seconds:
                self._times.popleft()
            if len(self._times) >= self.limit.requests:
                return self.limit.per_seconds - (now - self._times[0])
            self._times.append(now)
            return None

    def remaining(self) -> int:
        now = time.monotonic()
        with self._lock:
            used = sum(1 for at in self._times if now - at < self.limit.per_seconds)
        return max(self.limit.requests - used, 0)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def json(self) -> Any:
        """The body as JSON (None when empty); raises ValueError when it is not JSON."""
        if not self._parsed:
            self._json = json.loads(self.body) if self.body.strip() else None
            self._parsed = True
        return self._json

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Raw bytes to send instead of JSON (CSV results, empty 201/204 bodies).
    raw: bytes | None = None
    content_type: str = "application/json;charset=utf-8"

    def with_retry_after(self, seconds: float) -> Response:
        """This answer with ``Retry-After``, which every throttling answer carries."""
        self.headers["Retry-After"] = retry_after_header(seconds)
        return self

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()


class ApiError(Exception):
    """Raised by a handler to answer with ``response`` (and leave state untouched)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class RowError(Exception):
    """A refusal a handler raises part way through a batch and answers in its API's error shape:
    the platform's error ``code`` (HubSpot's category, Salesforce's statusCode, Meta's code), its
    ``message``, and the one further field each platform adds as ``detail`` (HubSpot's error code,
    Salesforce's field names, Meta's error subcode). Meta raises it for a refused session batch."""

    def __init__(self, code: Any, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int
    body: bytes
    fault: str | None

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, pattern: str, handler: Handler) -> Route:
    """A route whose ``pattern`` is a regex over the whole path; named groups become params."""
    return Route(method.upper(), re.compile(pattern), handler)


def json_path(path: Any) -> str:
    """``["inputs", 3, "properties", "firstname"]`` -> ``inputs[3].properties.firstname``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def retry_after_header(seconds: float) -> str:
    # Retry-After takes whole seconds (RFC 9110), so round up rather than invite an early retry.
    return str(math.ceil(seconds))


def new_id() -> str:
    return str(uuid.uuid4())


def utc_timestamp(offset: str = "Z", *, whole_seconds: bool = False) -> str:
    """Now in UTC, ISO 8601 to the millisecond with the offset spelt the platform's way: HubSpot
    ``2026-01-02T03:04:05.678Z``; Salesforce, whose datetimes keep whole seconds,
    ``2026-01-02T03:04:05.000+0000``."""
    now = datetime.now(UTC)
    if whole_seconds:
        now = now.replace(microsecond=0)
    return now.isoformat(timespec="milliseconds").replace("+00:00", offset)


class Emulator:
    """Base of every emulator; subclasses set ``name`` and implement ``routes``."""

    name: ClassVar[str] = "emulator"
    #: The token (the webhook's shared secret) when none is given.
    default_token: ClassVar[str] = "test-token"

    def __init__(
        self,
        *,
        token: str | None = None,
        faults: Faults | None = None,
        rate_limit: RateLimit | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = self.default_token if token is None else token
        self.host = host
        self.port = port
        self.lock = threading.RLock()
        self._faults = faults or Faults()
        self._random = random.Random(self._faults.seed)
        self._random_lock = threading.Lock()
        self._rate_limit = rate_limit
        self._window = _SlidingWindow(rate_limit) if rate_limit else None
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self.injected_faults: Counter[str] = Counter()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._routes: list[Route] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self._routes = self.routes()
        self._stopping.clear()
        server = _Server((self.host, self.port), _make_handler(self))
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._log_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} emulator is not running: call start()")
        return f"http://{self.host}:{self.port}"

    # -- configuration ---------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._random_lock:
            self._faults = faults
            self._random = random.Random(faults.seed)
            self.injected_faults.clear()

    def set_faults(self, **changes: Any) -> Faults:
        """Replace the faults with the current ones plus ``changes``; re-seeds the generator."""
        self.faults = Faults(**{**self._faults.model_dump(), **changes})
        return self._faults

    @property
    def rate_limit(self) -> RateLimit | None:
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, limit: RateLimit | None) -> None:
        self._rate_limit = limit
        self._window = _SlidingWindow(limit) if limit else None

    # -- request log -----------------------------------------------------------------------

    @property
    def log(self) -> list[LoggedRequest]:
        with self._log_lock:
            return list(self._log)

    def request_counts(self) -> Counter[str]:
        """Requests received per path (query string excluded), whatever their answer."""
        return Counter(entry.path for entry in self.log)

    def request_count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests received, optionally only to ``path`` (exact) and with ``method``."""
        return sum(
            1
            for entry in self.log
            if (path is None or entry.path == path)
            and (method is None or entry.method == method.upper())
        )

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    # -- what subclasses provide -----------------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def authenticate(self, request: Request) -> Response | None:
        """None when the request carries the token, else the platform's refusal."""
        header = request.headers.get("Authorization") or ""
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip() == self.token:
            return None
        return self.error_unauthorized(request)

    def decorate(self, request: Request, response: Response) -> None:
        """Add the platform's usual headers (rate-limit counters, usage) to every answer."""

    def error_unauthorized(self, request: Request) -> Response:
        return Response(401, {"error": "unauthorized", "message": "missing or wrong credentials"})

    def error_throttled(self, request: Request, retry_after: float) -> Response:
        return Response(
            429, {"error": "rate_limited", "message": "too many requests"}
        ).with_retry_after(retry_after)

    def error_server(self, request: Request, status: int) -> Response:
        return Response(status, {"error": "server_error", "message": "internal error"})

    def error_invalid(self, request: Request, message: str, field: str | None) -> Response:
        return Response(400, {"error": "invalid_request", "message": message, "field": field})

    def error_not_found(self, request: Request, message: str) -> Response:
        return Response(404, {"error": "not_found", "message": message})

    # -- helpers for handlers --------------------------------------------------------------

    def invalid(self, request: Request, message: str, field: str | None = None) -> ApiError:
        return ApiError(self.error_invalid(request, message, field))

    def not_found(self, request: Request, message: str) -> ApiError:
        return ApiError(self.error_not_found(request, message))

    def json_body(self, request: Request) -> Any:
        try:
            return request.json()
        except ValueError as exc:
            raise self.invalid(request, f"Invalid JSON in the request body: {exc}") from exc

    def validate(self, request: Request, schema: JsonSchema, body: Any = None) -> Any:
        """The JSON body checked against ``schema``; the platform's 400 names the bad field."""
        document = self.json_body(request) if body is None else body
        validator = jsonschema.Draft202012Validator(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(document))
        if error is not None:
            where = json_path(error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                missing = next(
                    (name for name in error.validator_value if name not in error.instance), None
                )
                where = f"{where}.{missing}" if where else str(missing)
            raise self.invalid(request, f"{where or 'body'}: {error.message}", where or None)
        return document

    def row_fails(self, request: Request) -> bool:
        """Draw the partial-failure fault for one row of ``request``."""
        faults = self._faults
        if faults.partial_failure <= 0 or not self._fault_applies(faults, request.path):
            return False
        with self._random_lock:
            failed = self._random.random() < faults.partial_failure
            if failed:
                self.injected_faults["partial_failure"] += 1
            return failed

    # -- the request pipeline --------------------------------------------------------------

    @staticmethod
    def _fault_applies(faults: Faults, path: str) -> bool:
        return not faults.paths or any(path.startswith(prefix) for prefix in faults.paths)

    def _draw_fault(self, path: str) -> str | None:
        with self._random_lock:
            faults = self._faults
            if not self._fault_applies(faults, path):
                return None
            whole = sum(
                self.injected_faults[kind] for kind in ("timeout", "rate_limit", "server_error")
            )
            if faults.limit is not None and whole >= faults.limit:
                return None
            for kind in ("timeout", "rate_limit", "server_error"):
                probability = getattr(faults, kind)
                if probability > 0 and self._random.random() < probability:
                    self.injected_faults[kind] += 1
                    return kind
            return None

    def _match(self, request: Request) -> Route | Literal[False] | None:
        """The route, None when no path matches, False when the path matches another method."""
        path_matched = False
        for candidate in self._routes:
            found = candidate.pattern.fullmatch(request.path)
            if found is None:
                continue
            path_matched = True
            if candidate.method == request.method:
                request.params = {k: v for k, v in found.groupdict().items() if v is not None}
                return candidate
        return False if path_matched else None

    def _respond(self, request: Request) -> tuple[Response | None, str | None]:
        """The answer to send (None: close without one) and the fault injected, if any."""
        matched = self._match(request)
        if matched is None:
            return self.error_not_found(request, f"No route for {request.path}"), None
        if matched is False:
            return Response(405, {"error": "method_not_allowed", "message": request.method}), None
        refusal = self.authenticate(request)
        if refusal is not None:
            return refusal, None
        if self._window is not None:
            wait = self._window.acquire()
            if wait is not None:
                return self.error_throttled(request, wait), "rate_window"
        fault = self._draw_fault(request.path)
        if fault == "rate_limit":
            return self.error_throttled(request, self._faults.retry_after), fault
        if fault == "server_error":
            return self.error_server(request, self._faults.server_error_status), fault
        if fault == "timeout" and not self._faults.timeout_processed:
            return None, fault
        response = self._handle(matched, request)
        return (None if fault == "timeout" else response), fault

    def _handle(self, matched: Route, request: Request) -> Response:
        with self.lock:
            try:
                return matched.handler(request)
            except ApiError as exc:
                return exc.response

    def _record(self, request: Request, status: int, fault: str | None) -> None:
        with self._log_lock:
            self._log.append(
                LoggedRequest(request.method, request.path, status, request.body, fault)
            )

    def _stall(self) -> None:
        if self._faults.timeout_mode == "sleep":
            self._stopping.wait(self._faults.timeout_seconds)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _make_handler(emulator: Emulator) -> type[http.server.BaseHTTPRequestHandler]:
    class _RequestHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "TesseraEmulator"

        def setup(self) -> None:
            super().setup()
            with emulator._log_lock:
                emulator._connections.add(self.connection)

        def finish(self) -> None:
            with emulator._log_lock:
                emulator._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=url.path,
                query=parse_qs(url.query, keep_blank_values=True),
                headers=self.headers,
                body=body,
            )
            try:
                response, fault = emulator._respond(request)
            except Exception:  # a bug in a handler answers 500 instead of killing the thread
                response, fault = emulator.error_server(request, 500), "handler_exception"
            if response is None:
                emulator._record(request, 0, fault)
                emulator._stall()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            emulator.decorate(request, response)
            emulator._record(request, response.status, fault)
            payload = response.encode()
            self.send_response(response.status)
            if payload or response.status not in (204, 304):
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        def _serve_safely(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._serve()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve_safely

    return _RequestHandler
