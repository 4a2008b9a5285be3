"""Fixtures the activation tests share: an empty warehouse for each test.

``warehouse`` is an empty DuckDB file and an empty Postgres database (the test runs on each),
or only the DuckDB file in a module marked ``duckdb_only``; ``empty_duckdb_warehouse`` is an empty
DuckDB file beside a test that also uses ``warehouse``.
"""

from __future__ import annotations

import pytest

from orchestration.warehouse import Warehouse
from tests.activation.sync_support import make_warehouse

ADAPTERS = ("duckdb", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "warehouse" in metafunc.fixturenames:
        one = metafunc.definition.get_closest_marker("duckdb_only") is not None
        metafunc.parametrize("warehouse", ADAPTERS[:1] if one else ADAPTERS, indirect=True)


@pytest.fixture
def warehouse(request: pytest.FixtureRequest, tmp_path_factory) -> Warehouse:
    return make_warehouse(request, tmp_path_factory, request.param)


@pytest.fixture
def empty_duckdb_warehouse(request: pytest.FixtureRequest, tmp_path_factory) -> Warehouse:
    return make_warehouse(request, tmp_path_factory, "duckdb")
