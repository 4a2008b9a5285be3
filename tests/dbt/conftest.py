"""Each warehouse on DuckDB and on Postgres: the session's builds (tests/conftest.py) or empty."""

from __future__ import annotations

import pytest

from orchestration.warehouse import Warehouse

# The demo data's size and seed, which tests here import from this module.
from tests.conftest import CUSTOMERS as CUSTOMERS
from tests.conftest import SEED as SEED


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
