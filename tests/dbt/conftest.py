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
