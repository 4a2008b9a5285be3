"""A sync as a Dagster asset: materialized with its counts, skipped with a reason when its
destination is not set up, failed without retry when a guard aborts it."""

import csv
import os

import dagster as dg
import pytest

from orchestration.activation.assets import build_sync_assets, sync_key
from orchestration.activation.destinations.file import FileDestination
from orchestration.activation.destinations.hubspot import HubSpot
from orchestration.activation.destinations.webhook import WebhookDestination
from orchestration.activation.settings import not_configured
from orchestration.resources import RunSettings, WarehouseResource
from tests.activation.sync_support import members, spec, write_audience

# One adapter: what is tested here does not depend on the warehouse's SQL.
pytestmark = [pytest.mark.integration, pytest.mark.duckdb_only]


def _materialize(warehouse, sync, destinations):
    (asset,) = build_sync_assets(
        lambda model: dg.AssetKey(["audiences", model]), [sync], destinations
    )
    return dg.materialize(
        [asset],
        resources={
            "warehouse": WarehouseResource.for_warehouse(warehouse),
            "settings": RunSettings.of(),
        },
        raise_on_error=False,
    )


def test_a_sync_asset_materializes_with_the_run_s_counts(warehouse, tmp_path) -> None:
    write_audience(warehouse, members(7))
    path = tmp_path / "members.csv"
    sync = spec("members_file", destination="file", mode="mirror", options={"path": str(path)})

    first = _materialize(warehouse, sync, {"file": FileDestination})
    write_audience(warehouse, members(6))
    second = _materialize(warehouse, sync, {"file": FileDestination})

    (event,) = first.get_asset_materialization_events()
    assert event.asset_key == sync_key("members_file")
    metadata = {name: value.value for name, value in event.materialization.metadata.items()}
    assert (metadata["status"], metadata["planned_adds"], metadata["succeeded"]) == (
        "succeeded",
        7,
        7,
    )
    (event,) = second.get_asset_materialization_events()
    assert event.materialization.metadata["planned_removes"].value == 1
    with path.open() as handle:
        assert len(list(csv.DictReader(handle))) == 6


def test_an_unconfigured_destination_is_skipped_and_a_partial_setup_is_not(monkeypatch) -> None:
    sync = spec("members_hubspot", destination="hubspot")
    for name in [n for n in os.environ if n.startswith("TESSERA_HUBSPOT_")]:
        monkeypatch.delenv(name)

    reason = not_configured(HubSpot, sync.options, {})
    partial = not_configured(
        HubSpot, sync.options, {"TESSERA_HUBSPOT_BASE_URL": "http://127.0.0.1:9"}
    )

    assert reason == (
        "hubspot is not configured (no TESSERA_HUBSPOT_* variable): "
        "TESSERA_HUBSPOT_TOKEN is not set"
    )
    assert partial is None
    assert not_configured(FileDestination, spec(destination="file").options, {}) is None


def test_a_skipped_sync_observes_why_and_materializes_nothing(warehouse, monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("TESSERA_WEBHOOK_")]:
        monkeypatch.delenv(name)
    write_audience(warehouse, members(3))
    sync = spec("members_webhook", destination="webhook")

    result = _materialize(warehouse, sync, {"webhook": WebhookDestination})

    assert result.success
    assert result.get_asset_materialization_events() == []
    (observation,) = [
        event.asset_observation_data.asset_observation
        for event in result.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    ]
    assert "webhook is not configured" in observation.metadata["skipped"].value
    runs = warehouse.query(
        "select count(*) from information_schema.tables where table_schema = 'activation'"
    )[0][0]
    assert runs == 0  # the engine never started: no state, no run rows


def test_an_aborted_sync_fails_the_step_without_retrying(warehouse, tmp_path) -> None:
    write_audience(warehouse, members(5))
    sync = spec(
        "members_file", destination="file", mode="mirror", options={"path": str(tmp_path / "m.csv")}
    )
    _materialize(warehouse, sync, {"file": FileDestination})
    write_audience(warehouse, [])

    result = _materialize(warehouse, sync, {"file": FileDestination})

    assert not result.success
    kinds = [event.event_type_value for event in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in kinds
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("sync members_file aborted: audience audience_sync_test is empty")
