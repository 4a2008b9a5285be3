"""The whole Dagster graph runs in process on demo data, on DuckDB and on Postgres, and the raw
rows sensor asks for a rebuild when a raw table grows."""

import json
from collections.abc import Iterator

import dagster as dg
import pytest

from orchestration.cli import generate_into
from orchestration.definitions import JOB_NAME, build_defs
from orchestration.warehouse import Warehouse

pytestmark = pytest.mark.integration

CUSTOMERS = 300
SEED = 5


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Warehouse, dg.Definitions, dg.ExecuteInProcessResult]]:
    if request.param == "duckdb":
        path = tmp_path_factory.mktemp("dagster_duckdb") / "tessera.duckdb"
        warehouse = Warehouse(target="local", duckdb_path=path)
    else:
        server = request.getfixturevalue("postgres_server")
        warehouse = Warehouse(target="postgres", postgres=server.create_database("dagster"))
    generate_into(warehouse, CUSTOMERS, SEED)
    defs = build_defs(warehouse)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(JOB_NAME).execute_in_process(
            instance=instance, raise_on_error=False
        )
        yield warehouse, defs, result


def test_the_whole_graph_materializes_with_every_check_passing(built) -> None:
    warehouse, defs, result = built
    assert result.success
    graph = defs.get_repository_def().asset_graph
    executable = {key for key in graph.get_all_asset_keys() if graph.get(key).is_executable}
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert materialized == executable
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(graph.asset_check_keys)
    assert [e.check_name for e in evaluations if not e.passed] == []
    customers = warehouse.query("select count(*) from marts.customers")[0][0]
    assert customers > CUSTOMERS * 0.8
    # The predictive step ran between the feature marts and the dbt models over its tables.
    scored = warehouse.query("select count(*) from marts.customer_clv")[0][0]
    features = warehouse.query("select count(*) from marts.customer_features")[0][0]
    assert scored == features > 50


def test_identity_health_reports_the_clusters_of_the_build(built) -> None:
    warehouse, _, result = built
    (health,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "identity_health"
    ]
    numbers = {name: value.value for name, value in health.metadata.items()}
    customers, identifiers, largest = warehouse.query(
        "select count(distinct customer_id), count(*), "
        "(select max(n) from (select count(*) as n from identity.identity_customer_map "
        "group by customer_id) as clusters) from identity.identity_customer_map"
    )[0]
    assert (numbers["customers"], numbers["identifiers"]) == (customers, identifiers)
    assert numbers["largest_cluster"] == largest
    assert 1 < numbers["mean_identifiers_per_customer"] < 20
    assert largest <= numbers["max_identifiers_per_customer"] == 250
    # A first build merges nobody: there was no customer before it.
    assert (numbers["customers_before_latest_run"], numbers["merge_rate"]) == (0, 0.0)


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    repository = defs.get_repository_def()
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=repository,
        resources={"warehouse": repository.get_top_level_resources()["warehouse"]},
    )  # fmt: skip
    return repository.get_sensor_def("raw_rows_sensor")(context)


def test_sensor_requests_a_rebuild_downstream_of_a_raw_table_that_grew(built) -> None:
    warehouse, defs, _ = built
    orders = warehouse.query("select count(*) from raw.orders")[0][0]
    with dg.instance_for_test() as instance:
        first = _tick(defs, instance, None)
        counts = json.loads(first.cursor)
        assert counts["shop/orders"] == orders
        assert len(counts) == 8
        assert first.run_requests == []

        unchanged = _tick(defs, instance, first.cursor)
        assert unchanged.run_requests == []
        assert unchanged.cursor == first.cursor

        warehouse.execute(
            ["insert into raw.orders select * from raw.orders order by order_id limit 3"]
        )
        grown = _tick(defs, instance, unchanged.cursor)
    assert json.loads(grown.cursor)["shop/orders"] == orders + 3
    (request,) = grown.run_requests
    selected = {key.to_user_string() for key in request.asset_selection}
    assert {"staging/stg_shop__orders", "identity/identity_customer_map", "marts/orders"} <= (
        selected
    )
    # Only what depends on orders: page views and the seeds are not rebuilt.
    assert "staging/stg_segment__pages" not in selected
    assert "reference/country_calling_codes" not in selected
    assert request.tags["tessera/changed_raw_tables"] == "shop/orders"
