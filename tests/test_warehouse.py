from __future__ import annotations

import pytest

from orchestration.cli import main
from orchestration.warehouse import Warehouse, WarehouseError


def test_local_target_resolves_the_duckdb_path_from_the_environment(tmp_path) -> None:
    warehouse = Warehouse.from_env(env={"TESSERA_DUCKDB_PATH": str(tmp_path / "w.duckdb")})
    assert warehouse.target == "local"
    assert warehouse.duckdb_path == tmp_path / "w.duckdb"
    assert warehouse.dbt_env()["TESSERA_DUCKDB_PATH"] == str(tmp_path / "w.duckdb")


def test_postgres_target_reads_every_tessera_pg_variable() -> None:
    env = {
        "TESSERA_TARGET": "postgres",
        "TESSERA_PG_HOST": "db.internal",
        "TESSERA_PG_PORT": "6543",
        "TESSERA_PG_USER": "analytics",
        "TESSERA_PG_PASSWORD": "s3cret",
        "TESSERA_PG_DATABASE": "warehouse",
        "TESSERA_PG_SCHEMA": "tessera",
    }
    warehouse = Warehouse.from_env(env=env)
    assert warehouse.postgres is not None
    assert (warehouse.postgres.host, warehouse.postgres.port) == ("db.internal", 6543)
    assert warehouse.dbt_env() == env
    assert "s3cret" not in warehouse.describe()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TESSERA_TARGET": "snowflake"}, "unknown target 'snowflake'"),
        ({"TESSERA_TARGET": "postgres", "TESSERA_PG_PORT": "five"}, "TESSERA_PG_PORT"),
        ({"TESSERA_DUCKDB_MEMORY_LIMIT": "lots"}, "TESSERA_DUCKDB_MEMORY_LIMIT .* got 'lots'"),
        ({"TESSERA_DUCKDB_THREADS": "0"}, "TESSERA_DUCKDB_THREADS .* got '0'"),
        # A file named after a schema made every query of raw ambiguous to DuckDB's binder.
        ({"TESSERA_DUCKDB_PATH": "/data/raw.duckdb"}, "'raw' is one of Tessera's schemas"),
    ],
)
def test_bad_settings_fail_with_the_setting_named(env, message) -> None:
    with pytest.raises(WarehouseError, match=message):
        Warehouse.from_env(env=env)


def test_unreachable_postgres_is_reported_without_a_traceback(monkeypatch, capsys) -> None:
    for name in ("TESSERA_PG_USER", "TESSERA_PG_DATABASE", "TESSERA_PG_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TESSERA_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("TESSERA_PG_PORT", "1")
    assert main(["generate", "--customers", "10", "--target", "postgres"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to Postgres tessera@127.0.0.1:1/tessera" in err
    assert "TESSERA_PG_*" in err


@pytest.mark.parametrize("customers", ["0", "-5", "many"])
def test_generate_rejects_a_customer_count_that_is_not_positive(customers, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--customers", customers])
    assert exit_info.value.code == 2
    assert "--customers" in capsys.readouterr().err


def test_duckdb_defaults_bound_memory_and_spill_beside_the_database(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    warehouse = Warehouse.from_env(env={"TESSERA_DUCKDB_PATH": str(path)})
    env = warehouse.dbt_env()
    assert env["TESSERA_DUCKDB_MEMORY_LIMIT"] == "4GB"
    assert env["TESSERA_DUCKDB_THREADS"] == "4"
    assert env["TESSERA_DUCKDB_TEMP_DIRECTORY"] == f"{path}.tmp"


def _duckdb_settings(rows) -> dict[str, str]:
    return {name: value for name, value in rows}


SETTINGS_SQL = (
    "select name, value from duckdb_settings() where name in "
    "('memory_limit', 'threads', 'temp_directory', 'preserve_insertion_order')"
)


def test_python_steps_and_dbt_open_duckdb_with_the_same_settings(tmp_path) -> None:
    from orchestration.dbt_project import run_dbt

    path = tmp_path / "w.duckdb"
    spill = tmp_path / "spill"
    warehouse = Warehouse.from_env(
        env={
            "TESSERA_DUCKDB_PATH": str(path),
            "TESSERA_DUCKDB_MEMORY_LIMIT": "768MB",
            "TESSERA_DUCKDB_THREADS": "3",
            "TESSERA_DUCKDB_TEMP_DIRECTORY": str(spill),
        }
    )
    python_side = _duckdb_settings(warehouse.query(SETTINGS_SQL))
    # DuckDB reports the limit in its own units: 768MB is 732.4 MiB.
    assert python_side == {
        "memory_limit": "732.4 MiB",
        "threads": "3",
        "temp_directory": str(spill),
        "preserve_insertion_order": "false",
    }
    result = run_dbt(["show", "--inline", SETTINGS_SQL, "--limit", "10"], warehouse, quiet=True)
    table = result.results[0].agate_table
    assert _duckdb_settings(table.rows) == python_side
