"""``tessera collect``: the Segment / RudderStack HTTP Tracking API, served with Starlette on
uvicorn, landing every accepted call in the landing folder before it answers.

Point a Segment or RudderStack SDK's host (``host=`` in analytics-python, ``dataPlaneUrl`` in
RudderStack's SDKs, ``apiHost`` in analytics.js) at the collector. Answers:

- 200 ``{"success": true}``: every call of the request is on disk (fsync'd);
- 400 with a ``code`` (the reason) and a ``message`` naming the call and field: invalid JSON,
  over the size limits (after decompression, so a gzip bomb is cut off at the limit), a
  malformed call (orchestration/collect/messages.py); nothing of the request is stored;
- 401: no write key, or one the collector does not know;
- 429 with ``Retry-After``: the landing disk is behind or nearly full; clients retry;
- 503 with ``Retry-After``: writing to the landing disk failed; nothing was kept, clients retry.

Write keys come from ``TESSERA_COLLECT_WRITE_KEYS`` (comma-separated) or a file of one key per
line, and are compared in constant time. The collector logs counts, never a call's content, a
key or a client address.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestration.collect.landing import Backpressure, LandingWriter
from orchestration.collect.messages import (
    ENDPOINT_TYPES,
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    RequestRefused,
    land_request,
    now,
    parse_body,
    write_key_of,
)

WRITE_KEYS_ENV = "TESSERA_COLLECT_WRITE_KEYS"
log = logging.getLogger("tessera.collect")

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, Authorization",
    "Access-Control-Max-Age": "86400",
}
_OK = orjson.dumps({"success": True})


class CollectorConfigError(ValueError):
    """The collector cannot start as configured; the message names the setting."""


def load_write_keys(env: Mapping[str, str], keys_file: Path | None = None) -> list[str]:
    """The write keys the collector accepts: the file's lines (``#`` comments and blank lines
    skipped) when a file is given, else ``TESSERA_COLLECT_WRITE_KEYS``."""
    if keys_file is not None:
        try:
            text = keys_file.read_text()
        except OSError as exc:
            raise CollectorConfigError(f"cannot read write keys file {keys_file}: {exc}") from exc
        keys = [line.strip() for line in text.splitlines()]
        keys = [key for key in keys if key and not key.startswith("#")]
        where = f"write keys file {keys_file}"
    else:
        keys = [key.strip() for key in env.get(WRITE_KEYS_ENV, "").split(",") if key.strip()]
        where = WRITE_KEYS_ENV
    if not keys:
        raise CollectorConfigError(
            f"no write key in {where}: the collector accepts only calls with a known write key"
        )
    return keys


class WriteKeys:
    """Known write keys, checked in constant time whatever the key offered."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [key.encode() for key in keys]

    def known(self, offered: str | None) -> bool:
        if not offered:
            return False
        candidate = offered.encode()
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(key, candidate)
        return found


def basic_auth_user(header: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header (Segment's write key)."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


@dataclass
class CollectorStats:
    requests: int = 0
    events: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, object]:
        return {"requests": self.requests, "events": self.events, "refused": dict(self.refused)}


def _answer(status: int, reason: str | None = None, message: str | None = None, **headers: str):
    if status == 200:
        return Response(_OK, 200, media_type="application/json", headers=_CORS)
    body = orjson.dumps({"success": False, "code": reason, "message": message})
    return Response(body, status, media_type="application/json", headers={**_CORS, **headers})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, decompressed when gzip'd; refused once it passes ``limit`` bytes either way."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRefused(
            "request_too_large",
            f"request body is {int(declared):,} bytes, over the limit of {limit:,}",
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRefused("request_too_large", f"request body is over {limit:,} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise RequestRefused("unsupported_encoding", f"Content-Encoding {encoding!r} is not gzip")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise RequestRefused("invalid_gzip", "the body is not valid gzip") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise RequestRefused(
            "request_too_large", f"the decompressed body is over the limit of {limit:,} bytes"
        )
    if not inflater.eof:
        raise RequestRefused("invalid_gzip", "the gzip body is cut short")
    return data


def build_app(writer: LandingWriter, write_keys: WriteKeys) -> Starlette:
    """The collector's ASGI app; ``writer`` is started and stopped with it."""
    stats = CollectorStats()

    def unauthorized() -> Response:
        stats.refused["unauthorized"] += 1
        return _answer(401, "unauthorized", "no write key, or one this collector does not know")

    async def collect(request: Request) -> Response:
        path_type = request.path_params["call"]
        if path_type != "batch" and path_type not in ENDPOINT_TYPES:
            return _answer(404, "unknown_endpoint", f"no endpoint /v1/{path_type}")
        stats.requests += 1
        limit = MAX_BATCH_BYTES if path_type == "batch" else MAX_EVENT_BYTES
        header_key = basic_auth_user(request.headers.get("authorization"))
        authenticated = False
        try:
            body = await _read_body(request, limit)
            document = parse_body(body, limit)
            authenticated = write_keys.known(header_key or write_key_of(document))
            if not authenticated:
                return unauthorized()
            client = request.client.host if request.client else None
            accepted = land_request(path_type, document, now(), request_ip=client)
            await writer.append(accepted.lines)
        except RequestRefused as refused:
            # A request not known to be authenticated learns nothing about its body.
            if not (authenticated or write_keys.known(header_key)):
                return unauthorized()
            stats.refused[refused.reason] += 1
            return _answer(400, refused.reason, str(refused))
        except Backpressure as busy:
            stats.refused["backpressure"] += 1
            return _answer(429, "backpressure", str(busy), **{"Retry-After": str(busy.retry_after)})
        except OSError as failed:
            # Nothing was acknowledged: the client keeps the calls and sends them again.
            stats.refused["landing_write_failed"] += 1
            log.error("landing write failed: %s", failed.strerror or type(failed).__name__)
            return _answer(
                503, "landing_write_failed", "could not write to disk", **{"Retry-After": "5"}
            )
        stats.events += accepted.events
        return _answer(200)

    async def preflight(request: Request) -> Response:
        return Response(status_code=204, headers=_CORS)

    async def health(request: Request) -> Response:
        body = {
            "status": "ok",
            **stats.snapshot(),
            "flushes": writer.flushes,
            "bytes_written": writer.bytes_written,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    async def seal_idle_segments() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            await loop.run_in_executor(None, writer.seal_if_idle)

    async def report_stats() -> None:
        last = (0, 0)
        while True:
            await asyncio.sleep(60.0)
            if (stats.requests, stats.events) != last:
                last = (stats.requests, stats.events)
                log.info("collector totals: %s", orjson.dumps(stats.snapshot()).decode())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await writer.start()
        tasks = [asyncio.create_task(seal_idle_segments()), asyncio.create_task(report_stats())]
        log.info("collector landing to %s", writer.folder)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await writer.stop()
            log.info("collector stopped: %s", orjson.dumps(stats.snapshot()).decode())

    routes = [
        Route("/v1/{call}", collect, methods=["POST"]),
        Route("/v1/{call}", preflight, methods=["OPTIONS"]),
        Route("/health", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.stats = stats
    return app


def serve(
    landing: Path,
    write_keys: list[str],
    host: str = "127.0.0.1",
    port: int = 8088,
    **writer_options: int | float,
) -> None:
    """Run the collector until SIGINT or SIGTERM; the open segment is sealed on the way out."""
    import uvicorn

    writer = LandingWriter(landing, **writer_options)  # type: ignore[arg-type]
    # Take the folder before binding the port, so a second collector fails with the reason.
    writer.open()
    app = build_app(writer, WriteKeys(write_keys))
    logging.basicConfig(level=logging.INFO, format="[tessera] %(message)s")
    log.info(
        "collector on http://%s:%s (pid %s), %d write key(s)",
        host,
        port,
        os.getpid(),
        len(write_keys),
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )
    uvicorn.Server(config).run()
