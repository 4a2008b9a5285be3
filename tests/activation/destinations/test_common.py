"""What the platform destinations share: how a missing setting is named, the registry, and
Retry-After."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest
import requests

from orchestration.activation.destination import (
    PermanentError,
)
from orchestration.activation.destinations import registry
from orchestration.activation.destinations._http import retry_after
from orchestration.activation.destinations.google import Google, GoogleConfig
from orchestration.activation.destinations.hubspot import HubSpot
from orchestration.activation.destinations.meta import Meta, MetaConfig
from orchestration.activation.destinations.salesforce import Salesforce


def test_a_missing_required_setting_names_the_option_and_the_variable():
    with pytest.raises(PermanentError) as raised:
        MetaConfig.from_env({}, {"TESSERA_META_TOKEN": "t"})
    assert str(raised.value) == (
        "meta settings: audience_id: required (option audience_id or TESSERA_META_AUDIENCE_ID)"
    )
    config = GoogleConfig.from_env(
        {"user_list_id": "9"},
        {"TESSERA_GOOGLE_TOKEN": "t", "TESSERA_GOOGLE_OPERATING_ACCOUNT_ID": "123-456-7890"},
    )
    assert config.operating_account_id == "1234567890"
    assert config.base_url == "https://datamanager.googleapis.com"


def test_every_platform_destination_is_registered_under_its_yaml_name():
    destinations = registry()

    assert {name: destinations[name] for name in ("hubspot", "salesforce", "meta", "google")} == {
        "hubspot": HubSpot,
        "salesforce": Salesforce,
        "meta": Meta,
        "google": Google,
    }
    assert {HubSpot.consent_purpose, Salesforce.consent_purpose} == {"email_marketing"}
    assert {Meta.consent_purpose, Google.consent_purpose} == {"advertising"}
    assert (Meta.normaliser, Google.normaliser) == ("meta", "google")


def test_retry_after_as_an_http_date_is_seconds_from_now():
    response = requests.Response()
    later = email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90), usegmt=True
    )
    response.headers["Retry-After"] = later

    assert 85 <= retry_after(response) <= 90
    response.headers["Retry-After"] = "12"
    assert retry_after(response) == 12.0
    response.headers["Retry-After"] = "soon"
    assert retry_after(response) is None
