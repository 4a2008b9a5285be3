"""The destinations a sync may name in its YAML (``destination: <name>``), by name."""

from __future__ import annotations

from orchestration.activation.destination import Destination
from orchestration.activation.destinations.file import FileDestination
from orchestration.activation.destinations.google import Google
from orchestration.activation.destinations.hubspot import HubSpot
from orchestration.activation.destinations.meta import Meta
from orchestration.activation.destinations.salesforce import Salesforce
from orchestration.activation.destinations.table import TableDestination
from orchestration.activation.destinations.webhook import WebhookDestination

DESTINATIONS: dict[str, type[Destination]] = {
    destination.name: destination
    for destination in (
        FileDestination,
        TableDestination,
        WebhookDestination,
        HubSpot,
        Salesforce,
        Meta,
        Google,
    )
}


def registry() -> dict[str, type[Destination]]:
    """Destination name -> class, a fresh copy (tests add their own)."""
    return dict(DESTINATIONS)
