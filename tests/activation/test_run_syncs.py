"""``run_syncs``, what ``tessera sync`` calls: the project's declared syncs in turn, a destination
nobody configured skipped with the reason as Dagster's sync asset skips it."""

from __future__ import annotations

import textwrap

import pytest

from orchestration.activation.engine import run_syncs
from orchestration.activation.store import StateStore
from tests.activation.sync_support import AUDIENCE, members, write_audience

# One adapter: what is tested here does not depend on the warehouse's SQL.
pytestmark = [pytest.mark.integration, pytest.mark.duckdb_only]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project declaring a HubSpot sync and a file sync of the test audience."""
    (tmp_path / "dbt_project.yml").write_text("name: tessera_test\n")
    audiences = tmp_path / "models" / "audiences"
    audiences.mkdir(parents=True)
    (audiences / f"{AUDIENCE}.yml").write_text(
        textwrap.dedent(
            f"""
            version: 2
            models:
              - name: {AUDIENCE}
                config:
                  meta:
                    tessera:
                      syncs:
                        - name: members_hubspot
                          destination: hubspot
                          mode: upsert
                          key: customer_id
                          fields: {{email: email, firstname: first_name}}
                        - name: members_file
                          destination: file
                          mode: mirror
                          key: customer_id
                          fields: {{email: email}}
                          delete: remove
                          options: {{path: "{tmp_path / "members.csv"}"}}
            """
        )
    )
    monkeypatch.setenv("TESSERA_PROJECT_DIR", str(tmp_path))
    return tmp_path


def _runs(warehouse) -> list[tuple[str, str]]:
    with StateStore.open(warehouse) as store:
        store.ensure_tables()
        return store.fetch("select sync_name, status from activation.sync_runs order by 1")


def test_a_destination_with_none_of_its_settings_is_skipped_with_the_reason(project, warehouse):
    # tessera sync failed the HubSpot sync ("TESSERA_HUBSPOT_TOKEN is not set") where Dagster
    # skipped it.
    write_audience(warehouse, members(3))
    shown: list[str] = []

    hubspot, file = run_syncs(warehouse, env={}, progress=shown.append)

    assert (hubspot.sync, hubspot.status, hubspot.run_id) == ("members_hubspot", "skipped", "")
    assert hubspot.error == (
        "hubspot is not configured (no TESSERA_HUBSPOT_* variable): "
        "TESSERA_HUBSPOT_TOKEN is not set"
    )
    assert shown[0] == f"sync members_hubspot: skipped: {hubspot.error}"
    assert (file.status, file.succeeded) == ("succeeded", 3)
    # A skipped sync is no run: only the file sync's is recorded.
    assert _runs(warehouse) == [("members_file", "succeeded")]


def test_a_destination_set_up_in_part_fails_naming_the_missing_setting(project, warehouse):
    write_audience(warehouse, members(3))

    (hubspot,) = run_syncs(
        warehouse,
        names=["members_hubspot"],
        env={"TESSERA_HUBSPOT_BASE_URL": "http://127.0.0.1:9"},
    )

    assert (hubspot.status, hubspot.error) == ("failed", "TESSERA_HUBSPOT_TOKEN is not set")


def test_a_dry_run_plans_an_unconfigured_destination_all_the_same(project, warehouse):
    write_audience(warehouse, members(3))

    (hubspot,) = run_syncs(warehouse, names=["members_hubspot"], dry_run=True, env={})

    assert hubspot.status == "dry_run"
    assert hubspot.plan.counts()["adds"] == 3
