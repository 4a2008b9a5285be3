"""What the HTTP destinations share: ``HttpDestination``, their base class, and its settings.

An HTTP destination holds one session per sending thread (requests does not promise a shared
one is safe), closed when the run finishes, and sends every request through ``request``:
transport failures become TransientError, and an answer of 400 or more goes to the
destination's ``raise_for`` (the platform's own mapping of its error bodies), which falls back
to ``raise_for_status``. Retries and waits are the engine's (sender.py), connection checks
included: a destination never retries or sleeps itself.

Settings come from the environment and the sync's options one way for all (settings.py);
``HttpConfig`` adds the timeout and the variable names, ``HttpDestinationConfig`` the base URL
and bearer token most platforms take.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Self

import requests
from pydantic import SecretStr

from orchestration.activation.destination import (
    BatchRejected,
    Destination,
    DestinationConfig,
    PermanentError,
    RateLimited,
    TransientError,
)
from orchestration.activation.settings import env_var, read_settings

#: Characters of an error body quoted in an exception message: enough for the API's message,
#: never a whole echoed payload.
BODY_EXCERPT = 300
USER_AGENT = "tessera"


class HttpConfig(DestinationConfig):
    """The per-request timeout, plus the platform's settings; read by ``from_env``."""

    #: Upper-case name used in environment variable names (``HUBSPOT``).
    env_name: ClassVar[str]

    timeout_seconds: float = 30.0

    @classmethod
    def env_var(cls, setting: str) -> str:
        return env_var(cls.env_name, setting)

    @classmethod
    def from_env(
        cls, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Self:
        return read_settings(cls, cls.env_name.lower(), options, environ)

    def headers(self) -> dict[str, str]:
        """Headers these settings put on every request (credentials)."""
        return {}


class HttpDestinationConfig(HttpConfig):
    """An API at ``base_url`` that takes a bearer ``token`` (``TESSERA_<NAME>_TOKEN``)."""

    required_settings: ClassVar[frozenset[str]] = frozenset({"token"})

    base_url: str
    token: SecretStr

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.get_secret_value()}"}


class HttpDestination(Destination):
    """A destination that speaks HTTP; subclasses map their platform's errors in ``raise_for``."""

    config: HttpConfig

    def __init__(self, config: HttpConfig) -> None:
        super().__init__(config)
        self._local = threading.local()
        self._http_sessions: list[requests.Session] = []
        self._http_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """This thread's session, opened on first use."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self.headers())
            with self._http_lock:
                self._http_sessions.append(session)
        return session

    def headers(self) -> dict[str, str]:
        """Headers of every request: the user agent and the settings' credentials."""
        return {"User-Agent": USER_AGENT, **self.config.headers()}

    def request(
        self, method: str, url: str, what: str, *, accept: Collection[int] = (), **kwargs: Any
    ) -> requests.Response:
        """One request; an answer of 400 or more raises (``raise_for``) unless in ``accept``."""
        response = send(self.session, method, url, timeout=self.config.timeout_seconds, **kwargs)
        if response.status_code >= 400 and response.status_code not in accept:
            self.raise_for(response, what)
            raise_for_status(response, what)
        return response

    def raise_for(self, response: requests.Response, what: str) -> None:
        """Raise the interface's error for an answer of 400 or more (``what`` the request did)."""
        raise_for_status(response, what)

    def finish(self, succeeded: bool) -> None:
        with self._http_lock:
            sessions, self._http_sessions = self._http_sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()


def send(
    session: requests.Session, method: str, url: str, *, timeout: float, **kwargs: Any
) -> requests.Response:
    """One HTTP request; transport failures become TransientError (the engine retries)."""
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout as exc:
        raise TransientError(f"{method} {_path(url)} timed out after {timeout:g} s") from exc
    except requests.ConnectionError as exc:
        raise TransientError(
            f"{method} {_path(url)} failed to connect: {type(exc).__name__}"
        ) from (exc)


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), None when absent."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def excerpt(response: requests.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text if len(text) <= BODY_EXCERPT else f"{text[:BODY_EXCERPT]}..."


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def raise_for_status(response: requests.Response, what: str, message: str | None = None) -> None:
    """Raise the interface's error for a non-2xx answer that the platform did not map itself.

    429 -> RateLimited (Retry-After), 5xx and 408 -> TransientError, 401/403/404 ->
    PermanentError, 409 and other 4xx -> BatchRejected.
    """
    status = response.status_code
    if status < 400:
        return
    detail = f"{what}: HTTP {status}: {message or excerpt(response)}"
    if status == 429:
        raise RateLimited(detail, retry_after(response))
    if status >= 500 or status == 408:
        raise TransientError(detail)
    if status in (401, 403, 404):
        raise PermanentError(detail)
    raise BatchRejected(detail)


def _path(url: str) -> str:
    return requests.utils.urlparse(url).path or url


def int_or_none(value: Any) -> int | None:
    """An integer an API answered, as a number or a string (protobuf JSON sends int64 as
    strings); None when it is missing or not a whole number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
