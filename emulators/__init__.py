"""Local emulators of the HTTP destinations' APIs, for testing syncs without the internet.

Each emulator is a small stateful server on 127.0.0.1 that speaks its platform's real paths,
shapes, limits, status codes and error bodies, with faults injected by configuration
(``base.Faults``). Point a connector at one through ``TESSERA_<DESTINATION>_BASE_URL`` and
``TESSERA_<DESTINATION>_TOKEN``::

    with HubSpotEmulator(token="t") as hubspot:
        os.environ["TESSERA_HUBSPOT_BASE_URL"] = hubspot.base_url

``python -m emulators <name> --port N --token T`` runs one by hand.
"""

from __future__ import annotations

import importlib

from emulators.base import (
    ApiError,
    Emulator,
    Faults,
    RateLimit,
    Request,
    Response,
)

#: Emulator name -> "module:class", imported only when asked for.
EMULATORS: dict[str, str] = {
    "webhook": "emulators.webhook:WebhookEmulator",
    "hubspot": "emulators.hubspot:HubSpotEmulator",
    "salesforce": "emulators.salesforce:SalesforceEmulator",
    "meta": "emulators.meta:MetaEmulator",
    "google": "emulators.google:GoogleEmulator",
}


def emulator_class(name: str) -> type[Emulator]:
    """The emulator class registered under ``name``."""
    try:
        module_name, class_name = EMULATORS[name].split(":")
    except KeyError:
        raise KeyError(f"no emulator named {name!r}; choose one of {sorted(EMULATORS)}") from None
    return getattr(importlib.import_module(module_name), class_name)


__all__ = [
    "EMULATORS",
    "ApiError",
    "Emulator",
    "Faults",
    "RateLimit",
    "Request",
    "Response",
    "emulator_class",
]
