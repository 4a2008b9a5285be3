"""A destination's settings, read one way for every destination.

Each setting of its config class comes from the sync's YAML ``options`` or from environment
variable ``TESSERA_<DESTINATION>_<SETTING>`` (the option wins: a deployment-wide default, a
sync's own value). A secret (a ``SecretStr`` setting) comes from the environment only: YAML
files are committed. A destination none of whose settings is present is not configured: syncs
to it are skipped, not failed (``not_configured``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from orchestration.activation.destination import (
    Destination,
    DestinationConfig,
    DestinationError,
    PermanentError,
)

C = TypeVar("C", bound=DestinationConfig)


def env_var(destination: str, setting: str) -> str:
    """``TESSERA_<DESTINATION>_<SETTING>``, e.g. ``TESSERA_HUBSPOT_TOKEN``."""
    return f"TESSERA_{destination.upper()}_{setting.upper()}"


def option_fields(config_class: type[DestinationConfig]) -> dict[str, FieldInfo]:
    """The settings by the name a sync's options use (a field's alias if any)."""
    return {(info.alias or name): info for name, info in config_class.model_fields.items()}


def secret_options(config_class: type[DestinationConfig]) -> set[str]:
    """The settings that hold secrets, by option name."""
    return {
        option
        for option, info in option_fields(config_class).items()
        if "SecretStr" in str(info.annotation)
    }


def read_settings(
    config_class: type[C],
    destination: str,
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> C:
    """The settings of ``destination`` (its name); PermanentError names what to fix."""
    env = os.environ if environ is None else environ
    options = dict(options or {})
    for secret in sorted(secret_options(config_class) & options.keys()):
        raise PermanentError(
            f"{destination} option {secret!r} is a secret: set "
            f"{env_var(destination, secret)} in the environment instead"
        )
    values: dict[str, Any] = {}
    for option in option_fields(config_class):
        if option in options:
            values[option] = options.pop(option)
        elif env.get(env_var(destination, option)):
            values[option] = env[env_var(destination, option)]
    for setting in option_fields(config_class):
        if setting in config_class.required_settings and not values.get(setting):
            raise PermanentError(f"{env_var(destination, setting)} is not set")
    values.update(options)  # unknown options: let validation name them
    try:
        return config_class(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(destination, error) for error in exc.errors())
        raise PermanentError(f"{destination} settings: {problems}") from None


def _problem(destination: str, error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "options"
    if error["type"] == "missing":
        return f"{where}: required (option {where} or {env_var(destination, where)})"
    # No input value: pydantic's message quotes it only in error["input"], left out here.
    return f"{where}: {error['msg']}"


def destination_config(
    destination: type[Destination], options: Mapping[str, Any], env: Mapping[str, str]
) -> DestinationConfig:
    """The settings of a sync's destination."""
    return read_settings(destination.config_class, destination.name, options, env)


def not_configured(
    destination: type[Destination], options: Mapping[str, Any], env: Mapping[str, str]
) -> str | None:
    """Why the destination cannot be used because nobody set it up, or None.

    Not set up: its settings are incomplete and no ``TESSERA_<DEST>_*`` variable is set (the
    sync's YAML options hold the non-secret part, which a project declares before it has the
    credentials). With any of them set it counts as set up in part, and the run fails naming
    the missing setting.
    """
    try:
        destination_config(destination, options, env)
    except (DestinationError, ValueError) as exc:
        prefix = env_var(destination.name, "")
        if any(name.startswith(prefix) and value for name, value in env.items()):
            return None
        return f"{destination.name} is not configured (no {prefix}* variable): {exc}"
    return None
