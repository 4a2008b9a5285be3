"""The semantic layer (models/semantic) on DuckDB and on Postgres: MetricFlow's validations pass,
each metric equals a hand-written query over the marts, and a saved query's asset writes what
MetricFlow computes to schema metrics.

The warehouses are the session's demo builds after the predictive step (tests/conftest.py); the
semantic manifest is the one their dbt build wrote.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from orchestration.metrics.assets import build_saved_query_asset, metric_key
from orchestration.metrics.semantic import (
    METRICS_SCHEMA,
    SemanticLayer,
    semantic_manifest_path,
    validate,
)
from orchestration.resources import WarehouseResource
from orchestration.warehouse import Warehouse

pytestmark = pytest.mark.integration

Row = tuple[Any, ...]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    return request.getfixturevalue(f"predicted_{request.param}_warehouse").warehouse


@pytest.fixture(scope="module")
def layer(warehouse: Warehouse) -> SemanticLayer:
    return SemanticLayer.load(warehouse)


def _cell(value: Any) -> Any:
    """One value as both drivers' rows can be compared: times naive UTC, numbers float."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        stamp = pd.Timestamp(value)
        return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    if isinstance(value, int | float | Decimal) or hasattr(value, "dtype"):
        return float(value)
    return value


def _rows(warehouse: Warehouse, sql: str, columns: Sequence[str] | None = None) -> list[Row]:
    frame = warehouse.query_frame(sql)
    frame = frame[list(columns)] if columns else frame
    return sorted(
        (tuple(_cell(value) for value in row) for row in frame.itertuples(index=False)),
        key=lambda row: tuple((value is None, str(value)) for value in row),
    )


def assert_same(actual: list[Row], expected: list[Row], keys: int, counts: Sequence[int]) -> None:
    """Rows equal: the first ``keys`` columns and the ``counts`` columns exactly, the others
    (sums of money, ratios) to 1e-9 relative."""
    assert len(actual) == len(expected) > 0
    for got, want in zip(actual, expected, strict=True):
        assert got[:keys] == want[:keys]
        for index in range(keys, len(want)):
            if index in counts or want[index] is None:
                assert got[index] == want[index], (got, want)
            else:
                assert math.isclose(got[index], want[index], rel_tol=1e-9), (got, want)


def metric_rows(
    layer: SemanticLayer, metrics: Sequence[str], group_by: Sequence[str] = ()
) -> list[Row]:
    sql = layer.metric_sql(metrics, group_by)
    return _rows(layer.client.warehouse, sql, [*group_by, *metrics])


def test_metricflow_validations_pass_on_the_warehouse(layer: SemanticLayer) -> None:
    results = validate(layer.manifest, layer.client.warehouse)

    assert [issue.as_readable_str() for issue in results.errors] == []
    assert not results.has_blocking_issues
    assert len(layer.manifest.metrics) >= 12
    assert len(layer.manifest.saved_queries) >= 4


def test_revenue_orders_and_aov_by_month_match_the_orders_mart(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    actual = metric_rows(
        layer,
        ["revenue", "orders", "completed_orders", "average_order_value"],
        ["metric_time__month"],
    )
    expected = _rows(
        warehouse,
        """
        select
            date_trunc('month', ordered_at) as month,
            sum(revenue) as revenue,
            count(*) as orders,
            count(case when order_status = 'completed' then 1 end) as completed_orders,
            sum(revenue) / count(case when order_status = 'completed' then 1 end) as aov
        from marts.orders
        group by 1
        """,
    )

    assert_same(actual, expected, keys=1, counts=[2, 3])
    assert len(actual) == 24


def test_new_customers_by_month_count_customers_by_first_order(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    actual = metric_rows(layer, ["new_customers"], ["metric_time__month"])
    expected = _rows(
        warehouse,
        """
        select date_trunc('month', first_order_at), count(*)
        from marts.customers
        where first_order_at is not null
        group by 1
        """,
    )

    assert_same(actual, expected, keys=1, counts=[1])


def test_active_customers_30d_counts_customers_seen_in_30_days(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    actual = metric_rows(layer, ["active_customers_30d"], ["metric_time__day"])
    # Each day a customer had an event makes them active on it and the 29 days after it.
    expected = _rows(
        warehouse,
        """
        with active_days as (
            select distinct customer_id, cast(occurred_at as date) as active_date
            from marts.customer_events
            where customer_id is not null
        ),

        offsets as (
            select (tens.digit * 10 + ones.digit) as day_offset
            from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) as ones (digit)
            cross join (values (0), (1), (2)) as tens (digit)
        )

        select spine.date_day, count(distinct active_days.customer_id)
        from active_days
        cross join offsets
        inner join marts.metricflow_time_spine as spine
            on spine.date_day = active_days.active_date + offsets.day_offset
        group by 1
        """,
    )

    assert_same(actual, expected, keys=1, counts=[1])
    assert max(row[1] for row in actual) > 100


def test_repeat_purchase_rate_is_repeat_buyers_over_buyers(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    actual = metric_rows(layer, ["repeat_purchase_rate", "repeat_buyers", "buyers"])
    expected = _rows(
        warehouse,
        """
        select
            cast(count(case when completed_orders_count >= 2 then 1 end) as double precision)
            / count(case when completed_orders_count >= 1 then 1 end),
            count(case when completed_orders_count >= 2 then 1 end),
            count(case when completed_orders_count >= 1 then 1 end)
        from marts.customers
        """,
    )

    assert_same(actual, expected, keys=0, counts=[1, 2])
    assert 0 < actual[0][0] < 1


def test_clv_total_and_per_customer_by_first_order_cohort(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    actual = metric_rows(
        layer,
        ["clv_customers", "clv_total", "clv_per_customer"],
        ["customer__first_order_at__month"],
    )
    expected = _rows(
        warehouse,
        """
        select
            date_trunc('month', customers.first_order_at),
            count(*),
            sum(customer_clv.discounted_clv),
            avg(customer_clv.discounted_clv)
        from marts.customer_clv
        left join marts.customers on customer_clv.customer_id = customers.customer_id
        group by 1
        """,
    )

    assert_same(actual, expected, keys=1, counts=[1])


def test_churn_rate_by_risk_tier_is_the_mean_churn_probability(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    actual = metric_rows(layer, ["churn_scored_customers", "churn_rate"], ["customer__risk_tier"])
    expected = _rows(
        warehouse,
        """
        select risk_tier, count(*), avg(churn_probability)
        from marts.customer_churn_scores
        group by 1
        """,
    )

    assert_same(actual, expected, keys=1, counts=[1])
    assert [row[0] for row in actual] == ["high", "low", "medium"]


def test_consent_coverage_is_the_share_of_customers_consenting(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    actual = metric_rows(layer, ["email_consent_coverage", "advertising_consent_coverage"])
    expected = _rows(
        warehouse,
        """
        select
            cast(count(case when has_consent_email_marketing then 1 end) as double precision)
            / count(*),
            cast(count(case when has_consent_advertising then 1 end) as double precision)
            / count(*)
        from marts.customers
        """,
    )

    assert_same(actual, expected, keys=0, counts=[])
    assert 0 < actual[0][0] < 1


def test_visit_to_order_conversion_by_channel_matches_sessions(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    actual = metric_rows(
        layer, ["sessions", "converted_sessions", "visit_to_order_conversion"], ["session__channel"]
    )
    expected = _rows(
        warehouse,
        """
        select
            channel,
            count(*),
            count(case when converted then 1 end),
            cast(count(case when converted then 1 end) as double precision) / count(*)
        from marts.sessions
        group by 1
        """,
    )

    assert_same(actual, expected, keys=1, counts=[1, 2])


def test_audience_size_today_counts_the_open_stays(
    layer: SemanticLayer, warehouse: Warehouse
) -> None:
    rows = _rows(warehouse, layer.saved_query_sql("audience_size_daily"))
    last_day = max(row[0] for row in rows)
    actual = [row[1:] for row in rows if row[0] == last_day]
    expected = _rows(
        warehouse,
        """
        select audience, count(*)
        from audiences.audience_membership_history
        where exited_at is null
        group by 1
        """,
    )

    assert last_day == pd.Timestamp(dt.date.today())
    assert_same(actual, expected, keys=1, counts=[1])


@pytest.fixture
def metrics_schema(warehouse: Warehouse) -> Iterator[Warehouse]:
    """The session's warehouse, with schema metrics dropped again after the test."""
    yield warehouse
    warehouse.execute([f"drop schema if exists {METRICS_SCHEMA} cascade"])


@pytest.mark.parametrize("name", ["revenue_monthly", "churn_by_risk_tier"])
def test_a_saved_query_asset_writes_the_metricflow_rows(
    layer: SemanticLayer, metrics_schema: Warehouse, name: str
) -> None:
    (saved,) = [query for query in layer.saved_queries() if query.name == name]
    asset = build_saved_query_asset(saved, [], semantic_manifest_path(metrics_schema))

    result = dg.materialize(
        [asset], resources={"warehouse": WarehouseResource.for_warehouse(metrics_schema)}
    )

    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == metric_key(name)
    written = _rows(metrics_schema, f"select * from {METRICS_SCHEMA}.{name}")
    expected = _rows(metrics_schema, layer.saved_query_sql(name))
    assert_same(written, expected, keys=1, counts=[])
    assert event.materialization.metadata["dagster/row_count"].value == len(written) >= 3


def _tessera_metrics(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "metrics", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_tessera_metrics_runs_mf_on_the_warehouse(
    layer: SemanticLayer, warehouse: Warehouse, tmp_path: Path
) -> None:
    """`tessera metrics` is dbt-metricflow's own mf, run on the warehouse: `mf query` writes the
    rows of the hand-written SQL, and on DuckDB `mf validate-configs` passes every check."""
    out = tmp_path / "revenue.csv"
    if warehouse.duckdb_path is not None:
        # This process holds the session's DuckDB file, as a run or the UI would: mf reads a copy.
        copy = tmp_path / "copy.duckdb"
        for suffix in ("", ".wal"):
            source = Path(f"{warehouse.duckdb_path}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{copy}{suffix}")
        warehouse = dataclasses.replace(warehouse, duckdb_path=copy)
    env = {**os.environ, **warehouse.dbt_env(), "TESSERA_TARGET": warehouse.target}
    query = ["--metrics", "revenue,completed_orders", "--group-by", "metric_time__month"]
    result = _tessera_metrics(env, "query", *query, "--csv", str(out))

    assert result.returncode == 0, result.stdout + result.stderr
    frame = pd.read_csv(out)
    frame["metric_time__month"] = pd.to_datetime(frame["metric_time__month"])
    actual = sorted(tuple(_cell(value) for value in row) for row in frame.itertuples(index=False))
    expected = _rows(
        warehouse,
        "select date_trunc('month', ordered_at), sum(revenue), "
        "count(case when order_status = 'completed' then 1 end) from marts.orders group by 1",
    )
    assert_same(actual, expected, keys=1, counts=[2])

    # The in-process validations above run on both warehouses; the command itself once.
    if warehouse.duckdb_path is not None:
        validated = _tessera_metrics(env, "validate-configs")
        assert validated.returncode == 0, validated.stdout + validated.stderr
        for checked in ("semantic models", "dimensions", "entities", "measures", "metrics"):
            assert f"validated {checked} against data warehouse (ERRORS: 0" in validated.stdout
        assert "validated the semantics of built manifest (ERRORS: 0" in validated.stdout
        # A metric that does not exist is an error with a failing exit code.
        unknown = _tessera_metrics(env, "query", "--metrics", "no_such_metric")
        assert unknown.returncode == 1
