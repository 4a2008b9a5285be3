"""The saved queries of the semantic layer as tables: one Dagster asset per saved query of
models/semantic, ``metrics.<name>``, downstream of the dbt models its SQL reads.

dbt's hosted exports are not available outside dbt Cloud, so each asset compiles its saved query
with MetricFlow (orchestration/metrics/semantic.py) for the warehouse it runs on and replaces the
table through the warehouse resource, as the predictive steps write theirs. The graph is read
from the semantic manifest dbt wrote beside the manifest the dbt assets were built from; a
project parsed without one (no semantic layer) gets no metric assets.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import get_asset_key_for_model
from dagster_dbt.asset_utils import get_manifest_and_translator_from_dbt_assets
from metricflow.protocols.sql_client import SqlEngine

from orchestration.metrics.semantic import (
    METRICS_SCHEMA,
    SEMANTIC_MANIFEST,
    CompileOnlySqlClient,
    SavedQuery,
    SemanticLayer,
    load_semantic_manifest,
    write_saved_query,
)
from orchestration.resources import WarehouseResource
from orchestration.warehouse import Warehouse

GROUP = "metrics"


def metric_key(name: str) -> dg.AssetKey:
    """The asset of saved query ``name``: its table's schema and name."""
    return dg.AssetKey([METRICS_SCHEMA, name])


def model_of_relation(manifest: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """The dbt model of each (schema, table) of the manifest."""
    return {
        (node["schema"], node["alias"]): node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


def materialize_saved_query(
    warehouse: Warehouse, semantic_manifest: Path, name: str
) -> tuple[int, str]:
    """Compile saved query ``name`` for the warehouse's dialect and write ``metrics.<name>``;
    return its rows and the SQL."""
    sql = SemanticLayer.load(warehouse, semantic_manifest).saved_query_sql(name)
    return write_saved_query(warehouse, name, sql), sql


def build_saved_query_asset(
    saved: SavedQuery, deps: Sequence[dg.AssetKey], semantic_manifest: Path
) -> dg.AssetsDefinition:
    @dg.asset(
        key=metric_key(saved.name),
        deps=list(deps),
        group_name=GROUP,
        kinds={"metricflow"},
        description=(
            f"{saved.description} Saved query {saved.name} of models/semantic "
            f"(metrics {', '.join(saved.metrics)}), as table {METRICS_SCHEMA}.{saved.name}."
        ),
        metadata={"dagster/table_name": f"{METRICS_SCHEMA}.{saved.name}"},
    )
    def saved_query_table(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        rows, sql = materialize_saved_query(warehouse.get(), semantic_manifest, saved.name)
        context.log.info(f"wrote {rows} rows to {METRICS_SCHEMA}.{saved.name}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "sql": dg.MetadataValue.md(f"```sql\n{sql}\n```"),
            }
        )

    return saved_query_table


def build_metric_assets(dbt_assets: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    """One asset per saved query of the semantic manifest beside ``dbt_assets``' manifest, each
    downstream of the dbt assets of the models it reads."""
    manifest, _, project = get_manifest_and_translator_from_dbt_assets([dbt_assets])
    if project is None:
        return []
    path = project.manifest_path.with_name(SEMANTIC_MANIFEST)
    if not path.is_file():
        return []
    models = model_of_relation(manifest)
    # The graph does not depend on the dialect: compile for DuckDB's.
    layer = SemanticLayer(load_semantic_manifest(path), CompileOnlySqlClient(SqlEngine.DUCKDB))
    return [
        build_saved_query_asset(
            saved,
            [
                get_asset_key_for_model([dbt_assets], models[relation])
                for relation in saved.relations
            ],
            path,
        )
        for saved in layer.saved_queries()
    ]
