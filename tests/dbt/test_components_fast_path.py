"""DuckDB's in-process connected components build the same identity_components as the SQL rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse

pytestmark = pytest.mark.integration

CUSTOMERS = 1_500
SEED = 11
# The compiled `main` statement of the model, which says which path built it.
RUN_FILE = Path("run/tessera/models/identity/identity_components.sql")
TABLE = """
    select node_id, component_id
    from identity.identity_components
    order by node_id
"""
TYPES = "select column_name, column_type from (describe identity.identity_components)"


def _build(warehouse: Warehouse, target_path: Path, fast_path: bool) -> dict[str, Any]:
    # A target path of its own: dbt writes the compiled code of the path that ran there. Data
    # tests stay out: singular ones read models outside this selection.
    run_dbt(
        [
            "build",
            "--select",
            "+identity_components",
            "--exclude-resource-type",
            "unit_test",
            "test",
            "--target-path",
            str(target_path),
        ],
        warehouse,
        dbt_vars={"tessera_identity_fast_path": fast_path},
        quiet=True,
    )
    return {
        "rows": warehouse.query(TABLE),
        "types": warehouse.query(TYPES),
        "main": (target_path / RUN_FILE).read_text(),
    }


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, dict[str, Any]]:
    """identity_components of one generated warehouse (junk included), built both ways."""
    folder = tmp_path_factory.mktemp("fast_path")
    warehouse = Warehouse(target="local", duckdb_path=folder / "tessera.duckdb")
    generate_into(warehouse, CUSTOMERS, SEED)
    return {
        fast_path: _build(warehouse, folder / f"target-{fast_path}", fast_path)
        for fast_path in (True, False)
    }


def test_the_var_switches_between_the_in_process_and_the_sql_path(
    both_paths: dict[bool, dict[str, Any]],
) -> None:
    assert "write_components" in both_paths[True]["main"]
    assert "write_components" not in both_paths[False]["main"]
    assert "__cc_built" in both_paths[False]["main"]


def test_fast_path_and_sql_path_build_identical_identity_components(
    both_paths: dict[bool, dict[str, Any]],
) -> None:
    fast, sql = both_paths[True], both_paths[False]
    assert len(fast["rows"]) > 3_000
    assert fast["rows"] == sql["rows"]
    assert (
        fast["types"]
        == sql["types"]
        == [("node_id", "BIGINT"), ("component_id", "BIGINT"), ("_built_at", "TIMESTAMP")]
    )


def test_every_component_is_named_by_its_smallest_node(
    both_paths: dict[bool, dict[str, Any]],
) -> None:
    rows = both_paths[True]["rows"]
    smallest: dict[int, int] = {}
    for node_id, component_id in rows:
        smallest[component_id] = min(smallest.get(component_id, node_id), node_id)
    assert all(smallest[component_id] == component_id for component_id in smallest)
    # People hold several identifiers: far fewer components than nodes.
    assert len(smallest) < len(rows) / 2
