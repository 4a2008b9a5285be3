"""Warehouses built once per test session: generated data, then a full dbt build."""

from __future__ import annotations

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse

CUSTOMERS = 1_500
SEED = 11


def _build(warehouse: Warehouse, clean: bool) -> Warehouse:
    if clean:
        # No broken rows, no junk identifiers: the true clustering is fully evidenced.
        generate_into(warehouse, CUSTOMERS, SEED, defect_rate=0.0, junk=False)
    else:
        generate_into(warehouse, CUSTOMERS, SEED)
    # The full build, unit tests included: they run against each adapter's SQL.
    run_dbt(["build"], warehouse, quiet=True)
    return warehouse


@pytest.fixture(scope="session")
def duckdb_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    path = tmp_path_factory.mktemp("duckdb") / "tessera.duckdb"
    return _build(Warehouse(target="local", duckdb_path=path), clean=False)


@pytest.fixture(scope="session")
def postgres_warehouse(postgres_server) -> Warehouse:
    settings = postgres_server.create_database("adversarial")
    return _build(Warehouse(target="postgres", postgres=settings), clean=False)


@pytest.fixture(scope="session")
def clean_duckdb_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    path = tmp_path_factory.mktemp("duckdb_clean") / "tessera.duckdb"
    return _build(Warehouse(target="local", duckdb_path=path), clean=True)


@pytest.fixture(scope="session")
def clean_postgres_warehouse(postgres_server) -> Warehouse:
    settings = postgres_server.create_database("clean")
    return _build(Warehouse(target="postgres", postgres=settings), clean=True)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    return request.getfixturevalue(f"{request.param}_warehouse")


@pytest.fixture(params=["duckdb", "postgres"])
def clean_warehouse(request: pytest.FixtureRequest) -> Warehouse:
    return request.getfixturevalue(f"clean_{request.param}_warehouse")


@pytest.fixture(params=["duckdb", "postgres"])
def empty_warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Warehouse:
    """A warehouse with nothing in it yet, for a test that loads its own raw rows."""
    name = request.node.name.split("[")[0][:40]
    if request.param == "duckdb":
        return Warehouse(target="local", duckdb_path=tmp_path_factory.mktemp(name) / "t.duckdb")
    server = request.getfixturevalue("postgres_server")
    return Warehouse(target="postgres", postgres=server.create_database(name))
