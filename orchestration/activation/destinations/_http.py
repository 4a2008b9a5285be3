"""What the HTTP destinations share: settings from the environment, one session with the bearer
token, and the translation of transport failures and generic status codes into the interface's
errors. Each platform maps its own error bodies first and falls back to ``raise_for_status``."""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import requests
from pydantic import SecretStr, ValidationError

from orchestration.activation.destination import (
    BatchRejected,
    DestinationConfig,
    PermanentError,
    RateLimited,
    TransientError,
)

#: Characters of an error body quoted in an exception message: enough for the API's message,
#: never a whole echoed payload.
BODY_EXCERPT = 300


class HttpDestinationConfig(DestinationConfig):
    """Base URL, bearer token and timeout of an HTTP destination, plus the platform's options.

    ``from_env`` reads ``TESSERA_<NAME>_BASE_URL``, ``TESSERA_<NAME>_TOKEN`` and
    ``TESSERA_<NAME>_TIMEOUT_SECONDS``; every other field comes from the sync's ``options``
    (or, for a deployment-wide default, from ``TESSERA_<NAME>_<FIELD>``; the sync's option wins).
    The token is never taken from options: YAML files are committed.
    """

    #: Upper-case name used in environment variable names (``HUBSPOT``).
    env_name: ClassVar[str]
    #: Fields that hold secrets; read from the environment only.
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    base_url: str
    token: SecretStr
    timeout_seconds: float = 30.0

    @classmethod
    def env_var(cls, field: str) -> str:
        return f"TESSERA_{cls.env_name}_{field.upper()}"

    @classmethod
    def from_env(
        cls, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Self:
        env = os.environ if environ is None else environ
        options = dict(options or {})
        for secret in cls.secret_fields & options.keys():
            raise PermanentError(
                f"{cls.env_name.lower()} option {secret!r} is a secret: set "
                f"{cls.env_var(secret)} in the environment instead"
            )
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            variable = cls.env_var(name)
            if name in options:
                values[name] = options.pop(name)
            elif env.get(variable):
                values[name] = env[variable]
        for secret in cls.secret_fields:
            if not values.get(secret):
                raise PermanentError(f"{cls.env_var(secret)} is not set")
        values.update(options)  # unknown options: let validation name them
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(cls._problem(error) for error in exc.errors())
            raise PermanentError(f"{cls.env_name.lower()} settings: {problems}") from None

    @classmethod
    def _problem(cls, error: Any) -> str:
        where = ".".join(str(part) for part in error["loc"]) or "options"
        if error["type"] == "missing":
            return f"{where}: required (option {where} or {cls.env_var(where)})"
        # No input value: pydantic's message quotes it only in error["input"], left out here.
        return f"{where}: {error['msg']}"

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"


def open_session(config: HttpDestinationConfig, user_agent: str = "tessera") -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {config.token.get_secret_value()}"
    session.headers["User-Agent"] = user_agent
    return session


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
