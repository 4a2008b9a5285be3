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
    """A warehouse with nothing in it yet, for a test that loads its own raw rows.

    On Postgres always the same database, dropped and created again: dbt reparses the whole
    project when the connection differs from its last parse's, so one address per worker keeps
    each test's first dbt call a partial parse (about 1 s instead of 4 to 7). A DuckDB file gets
    a path of its own: dbt-duckdb keeps a file's database open in the process between calls.
    """
    name = request.node.name.split("[")[0][:40]
    if request.param == "duckdb":
        return Warehouse(target="local", duckdb_path=tmp_path_factory.mktemp(name) / "t.duckdb")
    server = request.getfixturevalue("postgres_server")
    return Warehouse(target="postgres", postgres=server.create_database("empty_warehouse"))
