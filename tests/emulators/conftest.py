"""Running emulators that tests in more than one file use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulators.hubspot import HubSpotEmulator
from emulators.webhook import WebhookEmulator


@pytest.fixture
def webhook() -> Iterator[WebhookEmulator]:
    with WebhookEmulator(token="s3cret") as emulator:
        yield emulator


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token="hs-token") as emulator:
        yield emulator
