"""The console's web application: Starlette, Jinja templates, no JavaScript.

Every page but the sign-in form needs a signed-in user; a request without one is sent to the
sign-in page (a form post gets 401). Sessions are signed cookies (itsdangerous), SameSite=Strict
and HttpOnly, valid for 8 hours. Every form carries the session's CSRF token and a post without
it is refused (403). A searched identifier travels in a form body, never in a URL: the pages'
addresses hold only pseudonymous customer ids, audience and sync names. The server logs no
request lines and no values.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from orchestration.console import pages
from orchestration.console.access import AccessLog, Masker, User, authenticate
from orchestration.console.charts import line_chart, share
from orchestration.console.reader import ConsoleDataError, Reader

log = logging.getLogger("tessera.console")
HERE = Path(__file__).parent
SESSION_SECONDS = 8 * 3600
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

Handler = Callable[[Request], Awaitable[Response]]


def build_app(
    reader: Reader, users: Mapping[str, User], access_log: AccessLog, secret: str
) -> Starlette:
    """The console over ``reader``, for ``users``, recording profile views in ``access_log``."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(share=share, line_chart=line_chart)
    templates.env.filters["when"] = _when
    templates.env.filters["number"] = _number

    def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("user", _user(request, users))
        context.setdefault("csrf", _csrf(request))
        context.setdefault("source", reader.source())
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def signed_in(handler: Callable[[Request, User], Awaitable[Response]]) -> Handler:
        async def wrapped(request: Request) -> Response:
            user = _user(request, users)
            if user is None:
                if request.method == "GET":
                    return RedirectResponse("/login", status_code=303)
                return PlainTextResponse("sign in first", status_code=401)
            if request.method == "POST":
                form = await request.form()
                if not _csrf_ok(request, form.get("csrf")):
                    return PlainTextResponse("the form expired: reload the page", status_code=403)
            try:
                return await handler(request, user)
            except ConsoleDataError as exc:
                return render(request, "error.html", status=503, message=str(exc))
            except pages.NotFound as exc:
                return render(request, "error.html", status=404, message=str(exc))
            except Exception as exc:
                # The type only: a message may quote the values the page was about.
                log.error("console page %s failed: %s", request.url.path, type(exc).__name__)
                return render(
                    request, "error.html", status=500, message="This page failed; see the log."
                )

        return wrapped

    async def login_form(request: Request) -> Response:
        return render(request, "login.html")

    async def login(request: Request) -> Response:
        form = await request.form()
        if not _csrf_ok(request, form.get("csrf")):
            return PlainTextResponse("the form expired: reload the page", status_code=403)
        name, password = str(form.get("username") or ""), str(form.get("password") or "")
        user = await run_in_threadpool(authenticate, users, name, password)
        if user is None:
            log.info("console sign-in refused")
            return render(request, "login.html", status=401, error="Wrong name or password.")
        request.session.clear()
        request.session.update(
            user=user.name, csrf=secrets.token_urlsafe(32), since=datetime.now(UTC).isoformat()
        )
        return RedirectResponse("/", status_code=303)

    @signed_in
    async def logout(request: Request, user: User) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @signed_in
    async def home(request: Request, user: User) -> Response:
        summaries = await run_in_threadpool(pages.audience_summaries, reader)
        return render(request, "home.html", audiences=summaries)

    @signed_in
    async def search(request: Request, user: User) -> Response:
        form = await request.form()
        try:
            found = await run_in_threadpool(pages.find_customer, reader, str(form.get("q") or ""))
        except pages.NotFound as exc:
            summaries = await run_in_threadpool(pages.audience_summaries, reader)
            return render(request, "home.html", status=404, audiences=summaries, error=str(exc))
        if found.customer_id is None:
            summaries = await run_in_threadpool(pages.audience_summaries, reader)
            return render(
                request,
                "home.html",
                status=404,
                audiences=summaries,
                error=f"This identifier belongs to nobody: {found.blocked_reason}",
            )
        return RedirectResponse(f"/customers/{found.customer_id}", status_code=303)

    @signed_in
    async def customer(request: Request, user: User) -> Response:
        customer_id = request.path_params["customer_id"]
        page = _page(request.query_params.get("page"))
        masked = Masker(full=user.is_admin)
        found = await run_in_threadpool(pages.profile, reader, customer_id, masked, page)
        await run_in_threadpool(access_log.record, user, customer_id, "profile")
        if found.erased_at is not None:
            return render(request, "erased.html", profile=found)
        return render(request, "profile.html", profile=found, masked=not user.is_admin)

    @signed_in
    async def audiences(request: Request, user: User) -> Response:
        summaries = await run_in_threadpool(pages.audience_summaries, reader)
        first, second = request.query_params.get("first"), request.query_params.get("second")
        shared = None
        if first and second:
            shared = await run_in_threadpool(pages.overlap, reader, first, second)
        return render(
            request,
            "audiences.html",
            audiences=summaries,
            overlap=shared,
            first=first,
            second=second,
        )

    @signed_in
    async def audience(request: Request, user: User) -> Response:
        masked = Masker(full=user.is_admin)
        preview = await run_in_threadpool(
            pages.audience_preview, reader, request.path_params["name"], masked
        )
        names = await run_in_threadpool(pages.audience_names, reader)
        return render(request, "audience.html", preview=preview, names=names)

    @signed_in
    async def syncs(request: Request, user: User) -> Response:
        masked = Masker(full=user.is_admin)
        health = await run_in_threadpool(pages.sync_health, reader, masked)
        return render(request, "syncs.html", syncs=health)

    @signed_in
    async def access(request: Request, user: User) -> Response:
        if not user.is_admin:
            return render(request, "error.html", status=403, message="Admins only.")
        rows = await run_in_threadpool(access_log.recent)
        return render(request, "access_log.html", rows=rows)

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home, methods=["GET"]),
        Route("/search", search, methods=["POST"]),
        Route("/customers/{customer_id}", customer, methods=["GET"]),
        Route("/audiences", audiences, methods=["GET"]),
        Route("/audiences/{name}", audience, methods=["GET"]),
        Route("/syncs", syncs, methods=["GET"]),
        Route("/access-log", access, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="tessera_console",
            max_age=SESSION_SECONDS,
            same_site="strict",
            https_only=False,
        )
    ]
    return Starlette(routes=routes, middleware=middleware)


def _user(request: Request, users: Mapping[str, User]) -> User | None:
    name = request.session.get("user")
    return users.get(name) if isinstance(name, str) else None


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _csrf_ok(request: Request, given: Any) -> bool:
    expected = request.session.get("csrf")
    return (
        isinstance(expected, str)
        and isinstance(given, str)
        and secrets.compare_digest(expected, given)
    )


def _page(text: str | None) -> int:
    return int(text) if text and text.isdigit() and 0 < len(text) < 7 else 1


def _when(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{float(value):,.{digits}f}"


def serve(app: Starlette, host: str, port: int) -> None:
    """Run the console until interrupted. uvicorn's request log stays off: no values in logs."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="[tessera] %(message)s")
    log.info("console on http://%s:%d", host, port)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning")
    uvicorn.Server(config).run()
