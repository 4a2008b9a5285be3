"""The same people, landed the ways real warehouses hold them, stage and resolve the same.

Each shape (orchestration/demo/shapes.py) rewrites the session's demo sources (same customers,
same seed) as an EL tool or a CDP vendor lands them: Tessera's contract with typed columns, or
Segment's and RudderStack's warehouse schemas with their column types. The whole dbt build, unit
tests included, must pass on each under its source preset, and give row for row what the text
build of the session gives. The one expected difference is where a typed column could not hold
the value at all: the generator's unparseable timestamps load as null, so those rows are rejected
as missing_timestamp instead of unparseable_timestamp.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.reports import STAGING_MODELS
from orchestration.warehouse import Warehouse
from tests.dbt.conftest import CUSTOMERS, SEED

pytestmark = pytest.mark.integration

# (adapter, shape, preset): typed columns on each adapter, each vendor schema on each adapter.
BUILDS = [
    ("postgres", "typed", "tessera"),
    ("duckdb", "segment", "segment"),
    ("postgres", "segment", "segment"),
    ("duckdb", "rudderstack", "rudderstack"),
    ("postgres", "rudderstack", "rudderstack"),
]
# Built from staging on: identical to the text build's, row for row.
RESOLVED = [
    "identity.identity_customer_map",
    "marts.customer_identities",
    "marts.orders",
    "marts.order_items",
    "marts.customers",
    "marts.customer_events",
    "audiences.audience_repeat_buyers",
    "audiences.audience_browse_abandoners",
]


def _rows(warehouse: Warehouse, relation: str) -> list[tuple[Any, ...]]:
    """Every row of ``relation`` but its load timestamp, sorted, with JSON text (event properties)
    read as JSON: the text build keeps the properties as generated, the vendors' shapes rebuild
    them from their event tables' columns, in another key order and spacing, and a DOUBLE 22.0
    may print as 22. The load timestamp is the generator's `_loaded_at` in the text build and
    the vendor's `uuid_ts` in theirs (the same rows, loaded by different tools), and the staging
    and build stamps are the build's own time."""
    columns = [
        name
        for (name,) in warehouse.query(
            "select column_name from information_schema.columns "
            f"where table_schema = {warehouse.placeholder} "
            f"and table_name = {warehouse.placeholder} order by ordinal_position",
            relation.split("."),
        )
        if name not in ("_loaded_at", "_staged_at", "_built_at")
    ]
    assert columns, f"{relation} has no columns on {warehouse.describe()}"
    json_columns = {i for i, name in enumerate(columns) if name == "properties"}
    rows = [
        tuple(
            json.dumps(json.loads(value, parse_int=float), sort_keys=True)
            if i in json_columns and value is not None
            else value
            for i, value in enumerate(row)
        )
        for row in warehouse.query(
            f"select {', '.join(chr(34) + name + chr(34) for name in columns)} from {relation}"
        )
    ]
    return sorted(rows, key=repr)


def _rejections(warehouse: Warehouse, model: str) -> Counter[str]:
    reasons = warehouse.query(f"select rejection_reason from staging.{model}")
    return Counter(
        "missing_timestamp" if reason == "unparseable_timestamp" else reason
        for (reason,) in reasons
    )


@pytest.fixture(params=BUILDS, ids=[f"{shape}-{adapter}" for adapter, shape, _ in BUILDS])
def shaped(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Warehouse, Warehouse, str]:
    """(the session's text build, the same sources in a shape built under its preset, shape)."""
    adapter, shape, preset = request.param
    if adapter == "duckdb":
        warehouse = Warehouse(target="local", duckdb_path=tmp_path / "shaped.duckdb")
    else:
        server = request.getfixturevalue("postgres_server")
        warehouse = Warehouse(target="postgres", postgres=server.create_database(shape))
    generate_into(warehouse, CUSTOMERS, SEED, shape=shape)
    # The full build, unit tests included: a user's first `dbt build` on their own schema.
    run_dbt(["build"], warehouse, {"tessera_source_preset": preset}, quiet=True)
    return request.getfixturevalue(f"{adapter}_warehouse"), warehouse, shape


def test_every_shape_stages_and_resolves_the_same_rows_as_text(
    shaped: tuple[Warehouse, Warehouse, str],
) -> None:
    text, typed, shape = shaped
    for staged, rejected in STAGING_MODELS.values():
        expected = _rows(text, f"staging.{staged}")
        assert len(expected) > 0, staged
        assert _rows(typed, f"staging.{staged}") == expected, f"{staged} ({shape})"
        assert _rejections(typed, rejected) == _rejections(text, rejected), f"{rejected} ({shape})"
    for relation in RESOLVED:
        expected = _rows(text, relation)
        assert len(expected) > 0, relation
        assert _rows(typed, relation) == expected, f"{relation} ({shape})"
