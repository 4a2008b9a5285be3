"""The semantic layer (models/semantic: dbt MetricFlow semantic models, metrics and saved queries)
compiled to SQL for Tessera's warehouse with MetricFlow's Python API.

dbt writes the semantic manifest (``semantic_manifest.json``) beside manifest.json whenever it
parses the project. MetricFlow compiles a query (metrics and group-by items, or a saved query)
against it into one SELECT in the warehouse's dialect (DuckDB or Postgres); the Python steps run
that SELECT through ``Warehouse`` like any other query, so nothing opens a second connection to a
DuckDB file.

The manifest names each model as ``database.schema.table``, and the database is whatever the
parse's profile pointed at (a DuckDB file's name, a Postgres database). Tessera's schemas are
named the same everywhere (macros/naming/generate_schema_name.sql), so the database is dropped
and the SQL runs on any warehouse built from the project, as ``relation_name`` in dbt_assets does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from metricflow.data_table.mf_table import MetricFlowDataTable
from metricflow.engine.metricflow_engine import (
    MetricFlowEngine,
    MetricFlowExplainResult,
    MetricFlowQueryRequest,
)
from metricflow.protocols.sql_client import SqlEngine
from metricflow.sql.render.duckdb_renderer import DuckDbSqlPlanRenderer
from metricflow.sql.render.postgres import PostgresSQLSqlPlanRenderer
from metricflow.sql.render.sql_plan_renderer import SqlPlanRenderer
from metricflow.validation.data_warehouse_model_validator import DataWarehouseModelValidator
from metricflow_semantic_interfaces.implementations.semantic_manifest import (
    PydanticSemanticManifest,
)
from metricflow_semantic_interfaces.validations.semantic_manifest_validator import (
    SemanticManifestValidator,
)
from metricflow_semantic_interfaces.validations.validator_helpers import (
    SemanticManifestValidationResults,
)
from metricflow_semantics.model.dbt_manifest_parser import (
    parse_manifest_from_dbt_generated_manifest,
)
from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup
from metricflow_semantics.sql.sql_bind_parameters import SqlBindParameterSet

from orchestration.dbt_project import project_dir
from orchestration.warehouse import Warehouse, quote_identifier

SEMANTIC_MANIFEST = "semantic_manifest.json"
#: The schema each saved query is materialised in, as metrics.<saved query name>.
METRICS_SCHEMA = "metrics"


class SemanticLayerError(RuntimeError):
    """The semantic manifest is missing, or a query cannot be compiled; the message says why."""


def semantic_manifest_path(warehouse: Warehouse) -> Path:
    """Where ``run_dbt`` (``tessera run``, the tests' builds) leaves the semantic manifest of a
    parse on ``warehouse``: ``$DBT_TARGET_PATH`` (default ``target`` in the project) / target."""
    base = Path(os.environ.get("DBT_TARGET_PATH") or project_dir() / "target")
    return base / warehouse.target / SEMANTIC_MANIFEST


def load_semantic_manifest(path: Path) -> PydanticSemanticManifest:
    """The semantic manifest dbt wrote at ``path``, its relations without their database."""
    if not path.is_file():
        raise SemanticLayerError(
            f"no semantic manifest at {path}: dbt writes it when it parses the project "
            "(`tessera run`, or `dbt parse`)"
        )
    document = json.loads(path.read_text())
    relations = [model["node_relation"] for model in document.get("semantic_models", [])]
    project = document.get("project_configuration", {})
    relations += [spine["node_relation"] for spine in project.get("time_spines", [])]
    relations += [
        table["node_relation"]
        for table in project.get("time_spine_table_configurations", [])
        if table.get("node_relation")
    ]
    for relation in relations:
        relation["database"] = None
        relation["relation_name"] = (
            f"{quote_identifier(relation['schema_name'])}.{quote_identifier(relation['alias'])}"
        )
    return parse_manifest_from_dbt_generated_manifest(json.dumps(document))


#: MetricFlow's default for a statement's bind parameters: none.
_NO_PARAMETERS = SqlBindParameterSet()
_RENDERERS: dict[SqlEngine, type[SqlPlanRenderer]] = {
    SqlEngine.DUCKDB: DuckDbSqlPlanRenderer,
    SqlEngine.POSTGRES: PostgresSQLSqlPlanRenderer,
}


def sql_engine(warehouse: Warehouse) -> SqlEngine:
    """MetricFlow's name for the warehouse's SQL dialect."""
    return SqlEngine.DUCKDB if warehouse.duckdb_path is not None else SqlEngine.POSTGRES


class _DialectClient:
    """What every ``SqlClient`` of MetricFlow names: its dialect and the renderer of it."""

    def __init__(self, engine: SqlEngine) -> None:
        self._engine = engine
        self._renderer = _RENDERERS[engine]()

    @property
    def sql_engine_type(self) -> SqlEngine:
        return self._engine

    @property
    def sql_plan_renderer(self) -> SqlPlanRenderer:
        return self._renderer

    def close(self) -> None:
        """Nothing stays open."""

    def render_bind_parameter_key(self, bind_parameter_key: str) -> str:
        raise SemanticLayerError("bind parameters are not supported")


class CompileOnlySqlClient(_DialectClient):
    """A ``SqlClient`` that only names a dialect: enough for MetricFlow to compile queries."""

    def query(
        self, stmt: str, sql_bind_parameter_set: SqlBindParameterSet = _NO_PARAMETERS
    ) -> MetricFlowDataTable:
        raise SemanticLayerError("this client only compiles queries")

    def execute(
        self, stmt: str, sql_bind_parameter_set: SqlBindParameterSet = _NO_PARAMETERS
    ) -> None:
        raise SemanticLayerError("this client only compiles queries")

    def dry_run(
        self, stmt: str, sql_bind_parameter_set: SqlBindParameterSet = _NO_PARAMETERS
    ) -> None:
        raise SemanticLayerError("this client only compiles queries")


class WarehouseSqlClient(_DialectClient):
    """MetricFlow's ``SqlClient`` over a ``Warehouse``: its dialect, and the queries MetricFlow's
    data-warehouse validations run (``mf validate-configs`` without the CLI). Each call opens and
    closes its own connection. Bind parameters are not supported, as in dbt-metricflow's own
    adapter-backed client."""

    def __init__(self, warehouse: Warehouse) -> None:
        super().__init__(sql_engine(warehouse))
        self.warehouse = warehouse

    def query(
        self, stmt: str, sql_bind_parameter_set: SqlBindParameterSet = _NO_PARAMETERS
    ) -> MetricFlowDataTable:
        _no_parameters(sql_bind_parameter_set)
        frame = self.warehouse.query_frame(stmt)
        rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False)
        return MetricFlowDataTable.create_from_rows(list(frame.columns), rows)

    def execute(
        self, stmt: str, sql_bind_parameter_set: SqlBindParameterSet = _NO_PARAMETERS
    ) -> None:
        _no_parameters(sql_bind_parameter_set)
        self.warehouse.execute([stmt])

    def dry_run(
        self, stmt: str, sql_bind_parameter_set: SqlBindParameterSet = _NO_PARAMETERS
    ) -> None:
        _no_parameters(sql_bind_parameter_set)
        self.warehouse.query(f"explain {stmt}")


def _no_parameters(parameters: SqlBindParameterSet) -> None:
    if parameters.param_dict:
        raise SemanticLayerError("bind parameters are not supported")


def validate(
    manifest: PydanticSemanticManifest, warehouse: Warehouse | None = None
) -> SemanticManifestValidationResults:
    """What ``mf validate-configs`` checks, in process: the semantic validations, then, given a
    warehouse, the data-warehouse ones (every semantic model, dimension, entity, measure and
    metric queried on it)."""
    results = [
        SemanticManifestValidator[PydanticSemanticManifest]().validate_semantic_manifest(manifest)
    ]
    if warehouse is not None:
        checker = DataWarehouseModelValidator(WarehouseSqlClient(warehouse))
        results += [
            checker.validate_semantic_models(manifest),
            checker.validate_dimensions(manifest),
            checker.validate_entities(manifest),
            checker.validate_simple_metrics(manifest),
            checker.validate_metrics(manifest),
        ]
    return SemanticManifestValidationResults.merge(results)


@dataclass(frozen=True)
class SavedQuery:
    """A saved query of models/semantic as its table is built: ``metrics.<name>``."""

    name: str
    description: str
    metrics: tuple[str, ...]
    group_by: tuple[str, ...]
    #: The tables its SQL reads, (schema, table): those of the semantic models of its measures
    #: and of the dimensions it joins, and the time spine's when it fills days from it.
    relations: tuple[tuple[str, str], ...]


class SemanticLayer:
    """Metric queries and saved queries as SQL in one dialect."""

    def __init__(self, manifest: PydanticSemanticManifest, client: _DialectClient) -> None:
        self.manifest = manifest
        self.client = client

    @classmethod
    def load(cls, warehouse: Warehouse, path: Path | None = None) -> SemanticLayer:
        """The semantic layer of the manifest at ``path`` (default: where run_dbt leaves it) in
        the warehouse's dialect."""
        manifest = load_semantic_manifest(path or semantic_manifest_path(warehouse))
        return cls(manifest, WarehouseSqlClient(warehouse))

    @cached_property
    def engine(self) -> MetricFlowEngine:
        return MetricFlowEngine(SemanticManifestLookup(self.manifest), self.client)

    def metric_sql(
        self,
        metrics: Sequence[str],
        group_by: Sequence[str] = (),
        where: Sequence[str] = (),
        order_by: Sequence[str] = (),
    ) -> str:
        """The SELECT of ``metrics`` by ``group_by`` (``metric_time__month``,
        ``customer__risk_tier``), filtered by ``where`` (MetricFlow's Jinja filters)."""
        request = MetricFlowQueryRequest.create(
            metric_names=list(metrics),
            group_by_names=list(group_by),
            where_constraints=list(where) or None,
            order_by_names=list(order_by) or None,
        )
        return self._sql(request)

    def saved_query_sql(self, name: str) -> str:
        """The SELECT of saved query ``name``."""
        return self._sql(MetricFlowQueryRequest.create(saved_query_name=name))

    def saved_queries(self) -> list[SavedQuery]:
        """Every saved query of the manifest, by name."""
        models = {model.name: model.node_relation for model in self.manifest.semantic_models}
        spines = [spine.node_relation for spine in self.manifest.project_configuration.time_spines]
        found = []
        for saved in sorted(self.manifest.saved_queries, key=lambda query: query.name):
            explained = self._explain(MetricFlowQueryRequest.create(saved_query_name=saved.name))
            read = [
                models[reference.semantic_model_name]
                for reference in explained.dataflow_plan.source_semantic_models
            ]
            sql = explained.sql_statement.sql
            read += [spine for spine in spines if spine.relation_name in sql]
            found.append(
                SavedQuery(
                    name=saved.name,
                    description=" ".join((saved.description or "").split()),
                    metrics=tuple(saved.query_params.metrics),
                    group_by=tuple(saved.query_params.group_by),
                    relations=tuple(sorted({(node.schema_name, node.alias) for node in read})),
                )
            )
        return found

    def _explain(self, request: MetricFlowQueryRequest) -> MetricFlowExplainResult:
        try:
            return self.engine.explain(request)
        except Exception as exc:
            raise SemanticLayerError(f"MetricFlow could not compile the query: {exc}") from exc

    def _sql(self, request: MetricFlowQueryRequest) -> str:
        statement = self._explain(request).sql_statement
        if statement.bind_parameter_set.param_dict:
            raise SemanticLayerError("the compiled query has bind parameters")
        return statement.sql


def write_saved_query(warehouse: Warehouse, name: str, sql: str) -> int:
    """Replace table ``metrics.<name>`` with the rows of ``sql`` (a saved query's SELECT); return
    its row count.

    On DuckDB, MetricFlow's sums of counts are HUGEINT (128 bits), which BI drivers and pandas
    read as floats: they are stored as BIGINT. On Postgres the table is dropped and created again
    in one transaction, so readers see the old rows or the new ones. A view a user built on the
    table makes the drop fail rather than silently disappear.
    """
    if not name.isidentifier() or name != name.lower():
        raise SemanticLayerError(f"{name!r} is not a lowercase SQL identifier")
    table = f"{quote_identifier(METRICS_SCHEMA)}.{quote_identifier(name)}"
    create_schema = f"create schema if not exists {quote_identifier(METRICS_SCHEMA)}"
    if warehouse.duckdb_path is not None:
        columns = warehouse.query(f"describe select * from (\n{sql}\n) as saved_query")
        select = ", ".join(
            f"cast({quote_identifier(column)} as bigint) as {quote_identifier(column)}"
            if kind == "HUGEINT"
            else quote_identifier(column)
            for column, kind, *_ in columns
        )
        warehouse.execute(
            [
                create_schema,
                f"create or replace table {table} as\n"
                f"select {select} from (\n{sql}\n) as saved_query",
            ]
        )
    else:
        warehouse.execute(
            [create_schema, f"drop table if exists {table}", f"create table {table} as\n{sql}"]
        )
    return int(warehouse.query(f"select count(*) from {table}")[0][0])
