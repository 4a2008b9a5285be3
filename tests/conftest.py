"""The Postgres server and the warehouses built once per test session.

Building a warehouse (generated data, then a dbt build) takes tens of seconds, so tests share
the session's builds: a test that writes to one copies it or undoes what it wrote.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.predictive.pipeline import PREDICTIVE_MODELS, run_predictive
from orchestration.warehouse import Warehouse
from tests.postgres_server import PostgresServer, PostgresUnavailable, start_server

# The demo data: what `tessera demo` generates.
CUSTOMERS = 1_500
SEED = 11
# The predictive models and everything downstream, with their data tests, as `tessera run` ends.
BUILD_PREDICTIVE = ["build", "--exclude-resource-type", "unit_test", "--select", PREDICTIVE_MODELS]


def pytest_configure(config: pytest.Config) -> None:
    # Demo-sized warehouses gain nothing from DuckDB's own threads, and two workers with four
    # threads each would share two cores eight ways: one thread per DuckDB connection.
    os.environ.setdefault("TESSERA_DUCKDB_THREADS", "1")
    # Under pytest-xdist each worker is its own process running dbt: give each its own dbt target
    # folder and profiles folder, so one worker's parse or build never reads another's files.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        project = Path(__file__).resolve().parents[1]
        os.environ.setdefault("DBT_TARGET_PATH", str(project / "target" / worker))
        profiles = project / ".tessera" / "workers" / worker
        profiles.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project / "profiles.yml.example", profiles / "profiles.yml")
        os.environ.setdefault("DBT_PROFILES_DIR", str(profiles))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests without a marker are unit tests.
    for item in items:
        if not any(any(item.iter_markers(name)) for name in ("integration", "e2e")):
            item.add_marker(pytest.mark.unit)
    # The slowest kinds first: the workers share out whole files in this order, so the short unit
    # files fill in at the end instead of one worker finishing an end-to-end file alone.
    rank = {"e2e": 0, "integration": 1, "unit": 2}
    items.sort(key=lambda item: min(rank.get(m.name, 2) for m in item.iter_markers()))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real Postgres server for the whole session. Under CI it must start: never a skip."""
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI requires Postgres tests to run: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


def _build(warehouse: Warehouse, clean: bool) -> Warehouse:
    if clean:
        # No broken rows, no junk identifiers: the true clustering is fully evidenced.
        generate_into(warehouse, CUSTOMERS, SEED, defect_rate=0.0, junk=False)
        # Unit tests read no warehouse data: the adversarial build runs them on each adapter.
        run_dbt(["build", "--exclude-resource-type", "unit_test"], warehouse, quiet=True)
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


@dataclass(frozen=True)
class Predicted:
    """A session warehouse after the predictive step and the rebuild that follows it."""

    warehouse: Warehouse
    # Rows of each table of schema audiences before the step ran.
    audience_rows_before_step: dict[str, int]


def _predict(warehouse: Warehouse, output: Path) -> Predicted:
    """Run the predictive step on a session warehouse, as `tessera demo` does before its syncs.

    The step writes schema predictive and rebuilds what reads it: marts.customer_clv,
    customer_churn_scores, clv_model_fits, audience_high_value_at_risk and the membership
    history. Nothing else changes, so the tests of staging, identity and the other marts read the
    same rows before and after it; the audiences as they were before are counted first.
    """
    mark = warehouse.placeholder
    tables = warehouse.query(
        f"select table_name from information_schema.tables where table_schema = {mark}",
        ["audiences"],
    )
    before = {
        table: warehouse.query(f"select count(*) from audiences.{table}")[0][0]
        for (table,) in tables
    }
    run_predictive(warehouse, {}, output)
    run_dbt(BUILD_PREDICTIVE, warehouse, quiet=True)
    return Predicted(warehouse, before)


@pytest.fixture(scope="session")
def predicted_duckdb_warehouse(
    duckdb_warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> Predicted:
    """``duckdb_warehouse`` after the predictive step (the same warehouse). Copy it to write."""
    return _predict(duckdb_warehouse, tmp_path_factory.mktemp("duckdb_predictive_output"))


@pytest.fixture(scope="session")
def predicted_postgres_warehouse(
    postgres_warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> Predicted:
    """``postgres_warehouse`` after the predictive step (the same warehouse)."""
    return _predict(postgres_warehouse, tmp_path_factory.mktemp("postgres_predictive_output"))


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
