"""The Dagster definitions: what the graph holds, checked without running anything.

The asset keys are compared with a checked-in snapshot so a change to the graph shows up in review.
After adding or renaming models, regenerate it with

    TESSERA_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_definitions.py

and commit tests/asset_keys.txt with the change.
"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster_dbt import get_asset_key_for_model

from orchestration.dbt_assets import TesseraDbtTranslator
from orchestration.definitions import JOB_NAME, build_defs
from orchestration.project import ProjectConfig
from orchestration.quality.identity_health import IdentityHealth, identity_health_result
from orchestration.resources import RunSettings
from orchestration.warehouse import Warehouse

PROJECT = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).with_name("asset_keys.txt")
LAYERS = ("staging", "identity", "marts")


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    path = tmp_path_factory.mktemp("definitions") / "tessera.duckdb"
    return build_defs(Warehouse(target="local", duckdb_path=path))


@pytest.fixture(scope="module")
def repository(defs: dg.Definitions) -> dg.RepositoryDefinition:
    return defs.get_repository_def()


def _dbt_assets(defs: dg.Definitions) -> dg.AssetsDefinition:
    return next(
        a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.op.name == "tessera_dbt"
    )


def test_asset_keys_match_the_checked_in_snapshot(repository: dg.RepositoryDefinition) -> None:
    keys = sorted(key.to_user_string() for key in repository.asset_graph.get_all_asset_keys())
    if os.environ.get("TESSERA_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text("\n".join(keys) + "\n")
    assert keys == SNAPSHOT.read_text().splitlines()


def test_every_dbt_model_is_an_asset_in_the_group_of_its_folder(
    defs: dg.Definitions, repository: dg.RepositoryDefinition
) -> None:
    dbt_assets = _dbt_assets(defs)
    models = sorted((PROJECT / "models").rglob("*.sql"))
    layers = set()
    for model in models:
        layer = model.relative_to(PROJECT / "models").parts[0]
        key = get_asset_key_for_model([dbt_assets], model.stem)
        assert repository.asset_graph.get(key).group_name == layer, model
        layers.add(layer)
    assert set(LAYERS) <= layers
    assert len(models) >= 40


def test_raw_tables_and_seeds_have_their_own_groups(repository: dg.RepositoryDefinition) -> None:
    graph = repository.asset_graph
    raw = [key for key in graph.get_all_asset_keys() if graph.get(key).group_name == "raw"]
    assert sorted(key.to_user_string() for key in raw) == [
        "crm/crm_contacts", "privacy/consents", "privacy/deletion_requests", "segment/identifies",
        "segment/pages", "segment/tracks", "shop/order_items", "shop/orders",
        "support/support_tickets",
    ]  # fmt: skip
    # The event tables are loaded from the collector's landing folder; the others by EL tools.
    executable = sorted(key.to_user_string() for key in raw if graph.get(key).is_executable)
    assert executable == ["segment/identifies", "segment/pages", "segment/tracks"]
    seeds = [
        dg.AssetKey(["reference", "country_calling_codes"]),
        dg.AssetKey(["reference", "identifier_blocklist"]),
    ]
    assert [graph.get(key).group_name for key in seeds] == ["reference", "reference"]


def test_group_is_the_first_folder_under_models_so_new_layers_need_no_code() -> None:
    translator = TesseraDbtTranslator()

    def group(resource_type: str, fqn: list[str], **props) -> str | None:
        return translator.get_group_name(
            {"resource_type": resource_type, "fqn": fqn, "config": {}, "meta": {}, **props}
        )

    assert group("model", ["tessera", "audiences", "high_value_customers"]) == "audiences"
    assert group("model", ["tessera", "staging", "shop", "base", "stg_shop__orders_base"]) == (
        "staging"
    )
    assert group("source", ["tessera", "staging", "shop", "shop", "orders"]) == "raw"
    assert group("seed", ["tessera", "blocklist"], config={"schema": "reference"}) == "reference"
    assert group("model", ["tessera", "marts", "x"], meta={"dagster": {"group": "vip"}}) == "vip"


def test_the_job_builds_every_executable_asset_daily_and_on_new_raw_rows(
    defs: dg.Definitions, repository: dg.RepositoryDefinition
) -> None:
    graph = repository.asset_graph
    executable = {key for key in graph.get_all_asset_keys() if graph.get(key).is_executable}
    job = defs.resolve_job_def(JOB_NAME)
    assert set(job.asset_layer.selected_asset_keys) == executable
    assert len(executable) >= 50

    schedule = defs.resolve_schedule_def("tessera_daily")
    assert (schedule.cron_schedule, schedule.job_name) == ("0 5 * * *", JOB_NAME)
    sensor = defs.resolve_sensor_def("raw_rows_sensor")
    assert sensor.job_name == JOB_NAME


def test_dbt_tests_are_asset_checks_beside_the_identity_health_check(
    repository: dg.RepositoryDefinition,
) -> None:
    checks = repository.asset_graph.asset_check_keys
    by_asset: dict[str, set[str]] = {}
    for check in checks:
        by_asset.setdefault(check.asset_key.to_user_string(), set()).add(check.name)
    assert "identity_health" in by_asset["identity/identity_customer_map"]
    assert {"unique_customers_customer_id", "not_null_customers_customer_id"} <= by_asset[
        "marts/customers"
    ]
    assert len(checks) >= 150


def test_importing_the_definitions_reads_no_file_and_no_environment(tmp_path: Path) -> None:
    # The dbt project dir and target are bogus: only loading the definitions may notice.
    env = {**os.environ, "TESSERA_PROJECT_DIR": str(tmp_path), "TESSERA_TARGET": "bogus"}
    code = (
        "import orchestration.definitions as module\n"
        "try:\n    module.defs()\nexcept Exception as exc:\n    print(type(exc).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "WarehouseError"


def _health(largest: int) -> IdentityHealth:
    return IdentityHealth(
        customers=300, identifiers=1_000, largest_cluster=largest,
        mean_identifiers_per_customer=1_000 / 300, latest_run_at=None,
        customers_before_latest_run=280, merges_in_latest_run=7, splits_in_latest_run=1,
    )  # fmt: skip


def test_identity_health_fails_with_error_above_the_identifier_cap() -> None:
    result = identity_health_result(_health(largest=251), max_identifiers=250)
    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "251 identifiers" in result.description


def test_identity_health_passes_at_the_cap_and_reports_the_merge_rate() -> None:
    result = identity_health_result(_health(largest=250), max_identifiers=250)
    assert result.passed
    assert result.metadata["merge_rate"].value == pytest.approx(0.025)
    assert result.metadata["mean_identifiers_per_customer"].value == pytest.approx(3.333)


def test_fuzzy_match_suggestions_are_an_asset_only_when_turned_on(
    tmp_path: Path, repository: dg.RepositoryDefinition
) -> None:
    key = dg.AssetKey(["identity", "identity_match_suggestions"])
    assert key not in repository.asset_graph.get_all_asset_keys()
    config = ProjectConfig.load({"tessera_identity_fuzzy_matching": True})
    defs = build_defs(
        Warehouse(target="local", duckdb_path=tmp_path / "tessera.duckdb"),
        RunSettings.of(config, output_dir=tmp_path),
    )
    graph = defs.get_repository_def().asset_graph
    assert key in graph.get_all_asset_keys()
    upstream = {parent.path[-1] for parent in graph.get(key).parent_keys}
    assert upstream == {"customers", "customer_erasures"}
    assert key in defs.resolve_job_def(JOB_NAME).asset_layer.selected_asset_keys
