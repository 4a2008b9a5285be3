"""Appending raw rows and rebuilding gives what one build over all rows gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse
from tests.dbt.raw_rows import BUILD_IDENTITY

pytestmark = pytest.mark.integration

CUSTOMERS = 1_000
SEED = 23
# Rows whose id ends in one of these digits arrive in a second load (about a fifth of them).
LATE = "('3', '7')"
TABLES = {
    "identifies": "id",
    "tracks": "id",
    "pages": "id",
    "orders": "order_id",
    "crm_contacts": "contact_id",
}

# Every identifier named by the smallest identifier of its customer: equal partitions give equal
# rows, whatever the customer ids are.
PARTITION = """
    select map.identifier_type, map.identifier_value, named.representative
    from identity.identity_customer_map as map
    inner join (
        select customer_id, min(identifier_type || ':' || identifier_value) as representative
        from identity.identity_customer_map group by customer_id
    ) as named on map.customer_id = named.customer_id
    order by 1, 2
"""
VIOLATIONS = """
    select identifier_type_a, identifier_value_a, identifier_type_b, identifier_value_b, rule
    from identity.identity_violations order by 1, 2, 3, 4
"""


def test_appending_rows_and_rebuilding_equals_one_full_build(tmp_path: Path) -> None:
    whole = Warehouse(target="local", duckdb_path=tmp_path / "whole.duckdb")
    generate_into(whole, CUSTOMERS, SEED)
    run_dbt(BUILD_IDENTITY, whole, quiet=True)

    stepwise = Warehouse(target="local", duckdb_path=tmp_path / "stepwise.duckdb")
    generate_into(stepwise, CUSTOMERS, SEED)
    held = [
        f"create table raw.late_{table} as select * from raw.{table} "
        f"where right(cast({key} as varchar), 1) in {LATE}"
        for table, key in TABLES.items()
    ] + [
        f"delete from raw.{table} where right(cast({key} as varchar), 1) in {LATE}"
        for table, key in TABLES.items()
    ]
    stepwise.execute(held)
    late_rows = sum(
        stepwise.query(f"select count(*) from raw.late_{table}")[0][0] for table in TABLES
    )
    assert late_rows > 4_000
    run_dbt(BUILD_IDENTITY, stepwise, quiet=True)
    partial = stepwise.query(PARTITION)
    stepwise.execute(
        [f"insert into raw.{table} select * from raw.late_{table}" for table in TABLES]
    )
    run_dbt(BUILD_IDENTITY, stepwise, quiet=True)

    expected = whole.query(PARTITION)
    assert partial != expected
    assert stepwise.query(PARTITION) == expected
    assert stepwise.query(VIOLATIONS) == whole.query(VIOLATIONS)
    # The late rows joined customers that existed already: their ids moved, and the log says so.
    merges = stepwise.query(
        "select count(*) from identity.identity_merge_log where event_type = 'merge'"
    )
    assert merges[0][0] > 0
