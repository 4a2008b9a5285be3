"""Tessera's one Dagster ``Definitions``: ``dagster dev -m orchestration.definitions``.

``defs`` is loaded lazily (``@dg.definitions``): importing this module reads nothing; Dagster
calls it when it loads the code location. It then reads the warehouse from the environment
(``TESSERA_TARGET`` and friends, as ``tessera run`` does) and prepares the dbt manifest (see
orchestration/dbt_assets.py). ``build_defs(warehouse)`` builds the same for a given warehouse.
"""

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, get_asset_key_for_model

from orchestration.activation.assets import build_sync_assets, sync_key
from orchestration.activation.config import load_syncs
from orchestration.activation.destinations import registry
from orchestration.activation.settings import not_configured
from orchestration.collect.assets import (
    build_landing_sensor,
    build_loader_asset,
    build_stream_assets,
    build_stream_worker_sensor,
    is_event_table,
)
from orchestration.collect.landing import landing_folder
from orchestration.collect.stream import stream_folder
from orchestration.collect.triggers import load_triggers
from orchestration.console.assets import build_console_snapshot_asset
from orchestration.dbt_assets import (
    RawTable,
    build_dbt_assets,
    dbt_executable,
    prepare_manifest,
    raw_table_specs,
    raw_tables,
    relation_name,
    tessera_dbt_project,
)
from orchestration.dbt_project import project_dir
from orchestration.identity.assets import build_matching_asset
from orchestration.metrics.assets import build_metric_assets
from orchestration.predictive.assets import (
    RECOMMENDATION_MODEL,
    build_predictive_assets,
    build_propensity_assets,
    build_recommendation_check,
)
from orchestration.predictive.propensity import parse_models
from orchestration.project import VARS_ENV, ProjectConfig
from orchestration.quality.expectations import build_expectation_checks, load_suites
from orchestration.quality.identity_health import IdentityRelations, build_identity_health_check
from orchestration.resources import RunSettings, WarehouseResource
from orchestration.warehouse import Warehouse, WarehouseError

JOB_NAME = "tessera_full_build"
ADAPTERS = {"local": "duckdb", "postgres": "postgres"}


def extra_assets(
    dbt_assets: dg.AssetsDefinition, config: ProjectConfig
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Python assets outside dbt: the predictive and propensity models, one asset per declared
    sync, one table per saved query of the semantic layer (schema metrics), when triggers are
    declared the stream worker's snapshot, and when var
    tessera_identity_fuzzy_matching is on the fuzzy match suggestions. Each takes its upstream
    keys from ``dbt_assets`` with ``get_asset_key_for_model``; the job, schedule and sensor pick
    them up without further wiring."""

    def model_key(model: str) -> dg.AssetKey:
        return get_asset_key_for_model([dbt_assets], model)

    matching = (
        [build_matching_asset(model_key)] if config["tessera_identity_fuzzy_matching"] else []
    )
    return [
        build_predictive_assets(dbt_assets),
        build_propensity_assets(dbt_assets, parse_models(config["tessera_propensity_models"])),
        *build_sync_assets(model_key),
        *build_metric_assets(dbt_assets),
        *build_stream_assets(
            load_triggers(project_dir(), registry()), model_key, model_key("customer_identities")
        ),
        *matching,
    ]


def console_assets(
    dbt_assets: dg.AssetsDefinition,
    manifest: Mapping[str, Any],
    extras: Sequence[dg.AssetsDefinition | dg.AssetSpec],
) -> list[dg.AssetsDefinition]:
    """On DuckDB, the console's snapshot, after the models it copies and every sync whose
    destination is set up (console/assets.py says why not the others)."""
    audiences = sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["fqn"][1:2] == ["audiences"]
    )
    destinations = registry()
    configured = {
        sync_key(spec.name)
        for spec in load_syncs(project_dir(), destinations)
        if not not_configured(destinations[spec.destination], spec.options, os.environ)
    }
    syncs = [
        key
        for asset in extras
        if isinstance(asset, dg.AssetsDefinition)
        for key in asset.keys
        if key in configured
    ]
    return [
        build_console_snapshot_asset(
            lambda model: get_asset_key_for_model([dbt_assets], model), audiences, syncs
        )
    ]


def extra_asset_checks(
    dbt_assets: dg.AssetsDefinition, manifest: Mapping[str, Any]
) -> list[dg.AssetChecksDefinition]:
    """Checks beyond dbt's tests: the Great Expectations suites of expectations/, and the
    recommender against its baseline."""
    models = {
        node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "model"
    }
    suites = load_suites(project_dir(), models)
    keys = {suite.model: get_asset_key_for_model([dbt_assets], suite.model) for suite in suites}
    relations = {suite.model: relation_name(manifest, suite.model) for suite in suites}
    recommendations = build_recommendation_check(
        get_asset_key_for_model([dbt_assets], RECOMMENDATION_MODEL),
        relation_name(manifest, RECOMMENDATION_MODEL),
    )
    return [*build_expectation_checks(suites, keys, relations), recommendations]


def raw_row_counts(warehouse: Warehouse, tables: Sequence[RawTable]) -> dict[str, int]:
    """Rows per raw table, keyed by asset key; a table the warehouse lacks counts 0 (staging
    reads it as empty too)."""
    schemas = sorted({raw.schema for raw in tables})
    marks = ", ".join(warehouse.placeholder for _ in schemas)
    present = set(
        warehouse.query(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in ({marks})",
            schemas,
        )
    )
    counts = {}
    for raw in tables:
        rows = 0
        if (raw.schema, raw.table) in present:
            rows = warehouse.query(f'select count(*) from "{raw.schema}"."{raw.table}"')[0][0]
        counts[raw.key.to_user_string()] = int(rows)
    return counts


def build_raw_rows_sensor(tables: Sequence[RawTable], job_name: str) -> dg.SensorDefinition:
    """Requests a run of everything downstream of the raw tables whose row count changed.

    The cursor is the row count per raw table (JSON). The first tick only records the counts: the
    warehouse already holds what was built before the sensor was turned on. A count does not
    see rows updated in place; the daily schedule rebuilds those.
    """

    @dg.sensor(
        name="raw_rows_sensor",
        job_name=job_name,
        minimum_interval_seconds=300,
        description="Rebuilds what is downstream of a raw table when its row count changes.",
    )
    def raw_rows_sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource
    ) -> dg.SensorResult | dg.SkipReason:
        # DuckDB lets one process open the file while a build writes to it: wait for the run.
        if _job_in_progress(context, job_name):
            return dg.SkipReason(f"a {job_name} run is in progress")
        try:
            counts = raw_row_counts(warehouse.get(), tables)
        except WarehouseError as exc:
            return dg.SkipReason(f"could not count raw rows: {exc}")
        previous: Mapping[str, int] = json.loads(context.cursor) if context.cursor else {}
        cursor = json.dumps(counts, sort_keys=True)
        if not previous:
            return dg.SensorResult(skip_reason="recorded the raw row counts", cursor=cursor)
        changed = sorted(key for key, rows in counts.items() if previous.get(key) != rows)
        if not changed:
            return dg.SensorResult(skip_reason="no raw table changed", cursor=cursor)
        downstream = (
            dg.AssetSelection.assets(*(dg.AssetKey.from_user_string(key) for key in changed))
            .downstream(include_self=False)
            .resolve(context.repository_def.asset_graph)
        )
        request = dg.RunRequest(
            run_key=cursor,
            asset_selection=sorted(downstream, key=lambda key: key.to_user_string()),
            tags={"tessera/changed_raw_tables": ",".join(changed)},
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return raw_rows_sensor


IN_PROGRESS_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _job_in_progress(context: dg.SensorEvaluationContext, job_name: str = JOB_NAME) -> bool:
    """Whether a run of the job is queued or running: on DuckDB it holds the file."""
    runs = context.instance.get_run_records(
        dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS_STATUSES), limit=1
    )
    return bool(runs)


def build_defs(
    warehouse: Warehouse,
    settings: RunSettings | None = None,
    loggers: Mapping[str, dg.LoggerDefinition] | None = None,
) -> dg.Definitions:
    """Tessera's definitions on ``warehouse``; ``settings`` (var overrides, output folder)
    default to the project's, ``loggers`` to Dagster's console logger.

    The manifest is parsed with the settings' vars, so the raw tables (and the sensor counting
    them) are the ones dbt reads, ``tessera_raw_schema`` included.
    """
    settings = settings or RunSettings.of(output_dir=project_dir() / "output")
    config = settings.config()
    project = tessera_dbt_project(warehouse.target)
    manifest = prepare_manifest(
        project, ADAPTERS[warehouse.target], warehouse.dbt_env(), config.dbt_args()
    )
    dbt_assets = build_dbt_assets(project, manifest)

    tables = raw_tables(manifest, config.raw_schema)
    identity_health = build_identity_health_check(
        get_asset_key_for_model([dbt_assets], "identity_customer_map"),
        IdentityRelations(
            customer_map=relation_name(manifest, "identity_customer_map"),
            registry=relation_name(manifest, "identity_customer_registry"),
            merge_log=relation_name(manifest, "identity_merge_log"),
        ),
    )

    full_build = dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.all(),
        description="Everything: dbt seeds, models and tests, the Python assets and checks.",
    )
    daily = dg.ScheduleDefinition(
        name="tessera_daily",
        job=full_build,
        cron_schedule="0 5 * * *",
        execution_timezone="UTC",
        description="The whole graph once a day at 05:00 UTC, after the nightly loads.",
    )
    loader = build_loader_asset(tables, ADAPTERS[warehouse.target])
    extras = extra_assets(dbt_assets, config)
    if warehouse.duckdb_path is not None:
        extras += console_assets(dbt_assets, manifest, extras)
    landing_sensor = build_landing_sensor(
        JOB_NAME, settings.landing_dir, sorted(loader.keys), _job_in_progress
    )
    return dg.Definitions(
        assets=[
            *raw_table_specs(
                [raw for raw in tables if not is_event_table(raw)], ADAPTERS[warehouse.target]
            ),
            loader,
            dbt_assets,
            *extras,
        ],
        asset_checks=[identity_health, *extra_asset_checks(dbt_assets, manifest)],
        jobs=[full_build],
        schedules=[daily],
        sensors=[
            build_raw_rows_sensor(tables, JOB_NAME),
            landing_sensor,
            build_stream_worker_sensor(settings.stream_dir),
        ],
        resources={
            "dbt": DbtCliResource(
                project_dir=project, target=warehouse.target, dbt_executable=dbt_executable()
            ),
            "warehouse": WarehouseResource.for_warehouse(warehouse),
            "settings": settings,
        },
        loggers=dict(loggers) if loggers else None,
        # DuckDB allows one writing process: run the steps of a run one after another.
        executor=dg.in_process_executor if warehouse.duckdb_path is not None else None,
    )


@dg.definitions
def defs() -> dg.Definitions:
    warehouse = Warehouse.from_env()
    # A deployment (``make ui``, the daemon) gives its var overrides in TESSERA_VARS, as YAML.
    config = ProjectConfig.load(os.environ.get(VARS_ENV))
    settings = RunSettings.of(
        config,
        output_dir=project_dir() / "output",
        landing_dir=project_dir() / landing_folder(os.environ),
        stream_dir=project_dir() / stream_folder(os.environ),
    )
    return build_defs(warehouse, settings)
