"""The one project configuration: overrides as dbt takes them, checked once, reaching every step."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_dbt import DbtProject

from orchestration.activation.engine import max_delete_fraction
from orchestration.dbt_assets import prepare_manifest, raw_tables
from orchestration.dbt_project import profiles_dir, project_dir
from orchestration.predictive.features import PredictiveSettings
from orchestration.project import ConfigError, ProjectConfig, parse_vars
from orchestration.quality.identity_health import IdentityRelations, build_identity_health_check
from orchestration.resources import RunSettings, WarehouseResource
from orchestration.warehouse import Warehouse


def test_overrides_in_dbt_s_yaml_form_and_in_json_are_the_same() -> None:
    yaml_form = ProjectConfig.load("{tessera_clv_time_unit: day, tessera_clv_horizon: 30}")
    json_form = ProjectConfig.load('{"tessera_clv_time_unit": "day", "tessera_clv_horizon": 30}')
    assert (
        yaml_form.overrides
        == json_form.overrides
        == {
            "tessera_clv_time_unit": "day",
            "tessera_clv_horizon": 30,
        }
    )
    assert yaml_form["tessera_clv_time_unit"] == "day"
    assert yaml_form["tessera_clv_horizon"] == 30.0
    # What the project sets and the overrides leave alone comes from dbt_project.yml.
    assert yaml_form["tessera_churn_window_days"] == 90
    assert yaml_form.dbt_args() == [
        "--vars",
        '{"tessera_clv_horizon": 30, "tessera_clv_time_unit": "day"}',
    ]
    assert ProjectConfig.load().dbt_args() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            "{tessera_clv_time_unit: month}",
            "tessera_clv_time_unit must be day or week, got 'month'",
        ),
        ("{tessera_max_identifiers_per_customer: 0}", "tessera_max_identifiers_per_customer must"),
        ("{tessera_staging_lookback_hours: -1}", "tessera_staging_lookback_hours must be a whole"),
        ("{tessera_postgres_work_mem: lots}", "tessera_postgres_work_mem must be a size"),
        ("{tessera_identity_mutable_sources: [pages]}", "not a Tessera var; did you mean"),
        ("{tessera_sync_max_delete_fraction: 1.5}", "must be a number from 0 to 1, got 1.5"),
        ("{tessera_clv_calibration_end: March}", "tessera_clv_calibration_end must be a date"),
        ("{tessera_raw_schema: 'my schema'}", "tessera_raw_schema must be a schema or table"),
        ("{tessera_churn_risk_tiers: {high: 0.2, medium: 0.5}}", "must not be above high"),
        ("{tessera_session_timeout_minutes: 0}", "tessera_session_timeout_minutes must be a whole"),
        (
            "{tessera_attribution_position_weights: {first: 0.7, last: 0.4}}",
            "tessera_attribution_position_weights first and last",
        ),
        (
            "{tessera_funnels: [{name: cart, window_hours: 0, steps: []}]}",
            "tessera_funnels funnel cart: window_hours must be a number above 0, got 0",
        ),
        (
            "{tessera_funnels: [{name: cart, window_hours: 2, steps: [{event: a}, {name: b}]}]}",
            "funnel cart, step 2: needs an event",
        ),
        ("{tessera_clv_time_unt: day}", "not a Tessera var; did you mean tessera_clv_time_unit"),
        ("{tessera_clv_time_unit: [day}", "--vars is not valid YAML"),
        ("[tessera_clv_time_unit]", "must be a mapping of var names to values"),
    ],
)
def test_a_bad_override_is_refused_naming_the_var(overrides: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        ProjectConfig.load(overrides)


def test_vars_of_the_user_s_own_models_pass_through_unchecked() -> None:
    config = ProjectConfig.load("{my_team_region: emea}")
    assert config.values["my_team_region"] == "emea"
    assert parse_vars("") == parse_vars(None) == {}


def test_an_override_reaches_the_predictive_step() -> None:
    settings = RunSettings.of(ProjectConfig.load("{tessera_clv_calibration_end: 2026-03-01}"))
    predictive = PredictiveSettings.from_vars(settings.vars())
    assert predictive.calibration_end == dt.date(2026, 3, 1)
    assert PredictiveSettings.from_config(settings.config()).calibration_end == dt.date(2026, 3, 1)


def test_an_override_reaches_the_syncs() -> None:
    settings = RunSettings.of(ProjectConfig.load("{tessera_sync_max_delete_fraction: 0.5}"))
    assert max_delete_fraction(settings.vars()) == 0.5
    assert max_delete_fraction(RunSettings.of().vars()) == 0.2


def test_an_override_reaches_the_identity_health_check(tmp_path: Path) -> None:
    # It broke: dbt kept 500 identifiers per customer while the check still failed at 250.
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema identity")
        con.execute(
            "create table identity.customer_map as select 'c1' as customer_id, "
            "'email' as identifier_type, 'e' || i as identifier_value from range(300) as t(i)"
        )
        con.execute(
            "create table identity.registry as select 'c1' as customer_id, "
            "timestamp '2026-01-01' as assigned_at, 'email' as identifier_type, "
            "'e0' as identifier_value"
        )
        con.execute(
            "create table identity.merge_log (event_type varchar, "
            "previous_customer_id varchar, logged_at timestamp)"
        )
    check = build_identity_health_check(
        dg.AssetKey(["identity", "identity_customer_map"]),
        IdentityRelations("identity.customer_map", "identity.registry", "identity.merge_log"),
    )
    warehouse = WarehouseResource(target="local", duckdb_path=str(path))
    default = check(warehouse=warehouse, settings=RunSettings.of())
    raised = check(
        warehouse=warehouse,
        settings=RunSettings.of(ProjectConfig.load("{tessera_max_identifiers_per_customer: 500}")),
    )
    assert (default.passed, default.metadata["max_identifiers_per_customer"].value) == (False, 250)
    assert (raised.passed, raised.metadata["max_identifiers_per_customer"].value) == (True, 500)


@pytest.mark.integration
def test_an_override_reaches_dbt_and_the_raw_tables_the_sensor_counts(tmp_path: Path) -> None:
    config = ProjectConfig.load("{tessera_raw_schema: landing}")
    project = DbtProject(
        project_dir=project_dir(),
        target_path=tmp_path / "target",
        profiles_dir=profiles_dir(project_dir()),
        target="local",
    )
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "t.duckdb")
    manifest = prepare_manifest(project, "duckdb", warehouse.dbt_env(), config.dbt_args())
    tables = raw_tables(manifest, config.raw_schema)
    assert len(tables) == 9
    assert {table.schema for table in tables} == {"landing"}
    assert raw_tables(manifest, "raw") == []
