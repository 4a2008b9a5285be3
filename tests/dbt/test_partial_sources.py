"""Every model builds when the warehouse has only some of the sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.demo.generator import SOURCE_TABLES
from orchestration.reports import staging_summary
from orchestration.warehouse import Warehouse

pytestmark = pytest.mark.integration

BUILD = ["build", "--exclude-resource-type", "unit_test"]


def _keep_only(warehouse: Warehouse, keep: set[str], empty: set[str] = frozenset()) -> None:
    """Leave ``keep`` as generated, delete the rows of ``empty``, drop every other raw table."""
    statements = [
        f"delete from raw.{table}" if table in empty else f"drop table raw.{table}"
        for table in SOURCE_TABLES
        if table not in keep
    ]
    warehouse.execute(statements)


def _assert_only(warehouse: Warehouse, keep: set[str]) -> None:
    summaries = {s.table: s for s in staging_summary(warehouse)}
    for table, s in summaries.items():
        if table in keep:
            assert s.staged_rows > 0, table
            assert s.staged_rows + s.rejected_rows == s.raw_rows, table
        else:
            assert (s.raw_rows, s.staged_rows, s.rejected_rows) == (0, 0, 0), table


@pytest.mark.parametrize(
    "keep",
    [{"orders"}, {"identifies", "tracks", "pages"}],
    ids=["shop_with_orders_only", "site_with_events_only"],
)
def test_duckdb_builds_when_source_tables_are_missing(tmp_path: Path, keep: set[str]) -> None:
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "partial.duckdb")
    generate_into(warehouse, 300, 5)
    _keep_only(warehouse, keep)
    run_dbt(BUILD, warehouse, quiet=True)
    _assert_only(warehouse, keep)


def test_postgres_builds_when_source_tables_are_empty_or_missing(postgres_server) -> None:
    warehouse = Warehouse(target="postgres", postgres=postgres_server.create_database("partial"))
    generate_into(warehouse, 300, 5)
    _keep_only(warehouse, {"orders"}, empty={"identifies", "tracks", "pages"})
    run_dbt(BUILD, warehouse, quiet=True)
    _assert_only(warehouse, {"orders"})
