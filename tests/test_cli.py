"""The ``tessera`` command's own logic, in process: exit codes and argument parsing."""

from __future__ import annotations

import pytest

from orchestration.activation.engine import SyncResult
from orchestration.cli import EXIT_ROWS_FAILED, EXIT_SYNC_FAILED, build_parser, sync_exit_code


def _results(*statuses: str) -> list[SyncResult]:
    return [SyncResult(f"s{i}", "", status, None) for i, status in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ((), 0),
        (("succeeded", "skipped", "dry_run"), 0),
        # It broke: a run whose rows the destination refused ended `partial` and exited 0.
        (("succeeded", "partial"), EXIT_ROWS_FAILED),
        (("partial", "failed"), EXIT_SYNC_FAILED),
        (("succeeded", "aborted"), EXIT_SYNC_FAILED),
    ],
)
def test_sync_exit_code_tells_failed_rows_from_a_failed_sync(statuses, code) -> None:
    assert sync_exit_code(_results(*statuses)) == code


def test_the_exit_codes_are_the_documented_ones() -> None:
    assert (EXIT_ROWS_FAILED, EXIT_SYNC_FAILED) == (2, 1)


def test_vars_are_taken_as_text_for_the_project_configuration_to_parse() -> None:
    args = build_parser().parse_args(["sync", "--retry-parked", "--vars", "{a: 1}"])
    assert (args.retry_parked, args.vars) == (True, "{a: 1}")
    run = build_parser().parse_args(["run", "--verbose"])
    assert (run.verbose, run.vars) == (True, None)


@pytest.mark.integration
def test_an_increment_lands_the_same_rows_on_duckdb_and_postgres(tmp_path, postgres_server) -> None:
    from orchestration.cli import generate_into, increment_into
    from orchestration.warehouse import Warehouse

    local = Warehouse(target="local", duckdb_path=tmp_path / "w.duckdb")
    team = Warehouse(target="postgres", postgres=postgres_server.create_database("increment"))
    counted = "select count(*), count(distinct {key}) from raw.{table}"
    keys = {"identifies": "id", "tracks": "id", "pages": "id", "orders": "order_id"}
    landed = {}
    for warehouse in (local, team):
        generate_into(warehouse, 300, 5)
        before = {t: warehouse.query(counted.format(key=k, table=t))[0] for t, k in keys.items()}
        appended = increment_into(warehouse, 300, 5)
        assert set(keys) <= set(appended)
        for table, key in keys.items():
            # Every appended row is new, with a key of its own (the generated tables hold
            # redeliveries: more rows than keys).
            rows, distinct = warehouse.query(counted.format(key=key, table=table))[0]
            assert appended[table] > 0
            assert rows == before[table][0] + appended[table]
            assert distinct == before[table][1] + appended[table]
        landed[warehouse.target] = (
            appended,
            warehouse.query(
                "select count(*), min(id), max(_loaded_at) from raw.pages "
                "where _loaded_at = (select max(_loaded_at) from raw.pages)"
            ),
        )
    assert landed["local"][0] == landed["postgres"][0]
    assert landed["local"][1][0][:2] == landed["postgres"][1][0][:2]
