"""Incremental event staging ends where a full refresh over the same raw rows ends.

The event sources land in the vendors' shapes (Segment on DuckDB, RudderStack on Postgres), whose
`uuid_ts` is the load timestamp staging filters on. The newest loads are held back from the first
build, then arrive together with messages delivered a second time; later, rows loaded long ago are
deleted and edited at the source. After each change an incremental build is compared, row for
row, with a `--full-refresh` build of the same warehouse: staging, the identity evidence and the
customers it resolves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import DbtRunError, run_dbt
from orchestration.warehouse import Warehouse
from tests.dbt.raw_rows import BUILD_IDENTITY
from tests.dbt.test_identity_incremental import EDGES, OBSERVATIONS, PARTITION

pytestmark = pytest.mark.integration

CUSTOMERS = 200
SEED = 31
EVENTS = {"identifies": "identify_id", "tracks": "track_id", "pages": "page_view_id"}
# A load long after the generated ones, and one later still.
LATER_LOAD = "2031-01-01 00:00:00"
LAST_LOAD = "2031-02-01 00:00:00"


@pytest.fixture(
    params=[("duckdb", "segment"), ("postgres", "rudderstack")], ids=lambda p: "-".join(p)
)
def shaped(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Warehouse, str]:
    adapter, shape = request.param
    if adapter == "duckdb":
        warehouse = Warehouse(target="local", duckdb_path=tmp_path / "events.duckdb")
    else:
        server = request.getfixturevalue("postgres_server")
        warehouse = Warehouse(
            target="postgres", postgres=server.create_database("incremental_staging")
        )
    generate_into(warehouse, CUSTOMERS, SEED, shape=shape)
    return warehouse, shape


def _base_rows(warehouse: Warehouse, table: str) -> list[tuple[Any, ...]]:
    """Every row of base_segment__<table> but its staging stamp, sorted."""
    p = warehouse.placeholder
    columns = [
        name
        for (name,) in warehouse.query(
            "select column_name from information_schema.columns "
            f"where table_schema = {p} and table_name = {p} order by ordinal_position",
            ["staging", f"base_segment__{table}"],
        )
        if name != "_staged_at"
    ]
    listed = ", ".join(f'"{name}"' for name in columns)
    order = ", ".join(str(i + 1) for i in range(len(columns)))
    return warehouse.query(f"select {listed} from staging.base_segment__{table} order by {order}")


def _state(warehouse: Warehouse) -> dict[str, Any]:
    state: dict[str, Any] = {table: _base_rows(warehouse, table) for table in EVENTS}
    state["observations"] = warehouse.query(OBSERVATIONS)
    state["edges"] = warehouse.query(EDGES)
    state["partition"] = warehouse.query(PARTITION)
    return state


def _restaged(warehouse: Warehouse, table: str) -> tuple[int, int]:
    """(rows the last run staged, rows in all) of base_segment__<table>."""
    relation = f"staging.base_segment__{table}"
    return warehouse.query(
        f"select sum(case when _staged_at = (select max(_staged_at) from {relation}) "
        f"then 1 else 0 end), count(*) from {relation}"
    )[0]


def _assert_incremental_equals_full_refresh(
    warehouse: Warehouse, dbt_vars: dict[str, Any]
) -> dict[str, Any]:
    run_dbt(BUILD_IDENTITY, warehouse, dbt_vars, quiet=True)
    incremental = _state(warehouse)
    restaged = {table: _restaged(warehouse, table) for table in EVENTS}
    run_dbt([*BUILD_IDENTITY, "--full-refresh"], warehouse, dbt_vars, quiet=True)
    full = _state(warehouse)
    for key, rows in full.items():
        assert incremental[key] == rows, key
    return restaged


def test_incremental_event_staging_equals_a_full_refresh(shaped: tuple[Warehouse, str]) -> None:
    warehouse, shape = shaped
    dbt_vars = {"tessera_source_preset": shape}
    ts = f"cast('{LATER_LOAD}' as timestamp)"

    # The newest tenth of each event table's loads arrives after the first build.
    held = []
    for table in EVENTS:
        total = warehouse.query(f"select count(*) from raw.{table}")[0][0]
        newest = (
            f"(select uuid_ts from raw.{table} order by uuid_ts desc limit 1 offset {total // 10})"
        )
        held += [
            f"create table raw.late_{table} as select * from raw.{table} where uuid_ts > {newest}",
            f"delete from raw.{table} where uuid_ts > {newest}",
        ]
    warehouse.execute(held)
    late = {t: warehouse.query(f"select count(*) from raw.late_{t}")[0][0] for t in EVENTS}
    assert min(late.values()) > 0
    run_dbt(BUILD_IDENTITY, warehouse, dbt_vars, quiet=True)
    first = {table: _restaged(warehouse, table) for table in EVENTS}

    # The late loads land, and 25 tracks and 5 identifies staged already are delivered again.
    warehouse.execute(
        [f"insert into raw.{table} select * from raw.late_{table}" for table in EVENTS]
        + [
            "create table raw.again_tracks as select * from raw.tracks "
            "where id in (select id from raw.tracks order by id limit 25)",
            "create table raw.again_identifies as select * from raw.identifies "
            "where id in (select id from raw.identifies order by id limit 5)",
            f"update raw.again_tracks set uuid_ts = {ts}",
            f"update raw.again_identifies set uuid_ts = {ts}",
            "insert into raw.tracks select * from raw.again_tracks",
            "insert into raw.identifies select * from raw.again_identifies",
        ]
    )
    restaged = _assert_incremental_equals_full_refresh(warehouse, dbt_vars)
    # The run staged the new loads and the rows it ranks them with, not the history.
    for table in EVENTS:
        staged, total = restaged[table]
        assert total == first[table][1] + late[table] + {"tracks": 25, "identifies": 5}.get(
            table, 0
        )
        assert late[table] <= staged < total / 2, table
    duplicates = warehouse.query(
        "select count(*) from staging.base_segment__tracks "
        "where rejection_reason = 'duplicate_id' and track_id in "
        "(select id from raw.again_tracks)"
    )[0][0]
    assert duplicates == 25

    # Rows loaded long ago are deleted at the source, one identify is edited in place (with a new
    # load timestamp), and a later load arrives: the tables with changed history are staged again
    # whole, and still end where a full refresh ends.
    email = "email" if shape == "segment" else "context_traits_email"
    warehouse.execute(
        [
            "delete from raw.tracks where id in (select id from raw.tracks order by id limit 7)",
            f"update raw.identifies set {email} = 'edited.' || id || '@mail.com', "
            f"uuid_ts = cast('{LAST_LOAD}' as timestamp) "
            f"where id = (select min(id) from raw.identifies where {email} is not null)",
            f"update raw.late_pages set uuid_ts = cast('{LAST_LOAD}' as timestamp)",
            "insert into raw.pages select * from raw.late_pages",
        ]
    )
    restaged = _assert_incremental_equals_full_refresh(warehouse, dbt_vars)
    staged, total = restaged["tracks"]
    assert staged == total
    staged, total = restaged["identifies"]
    assert staged == total
    # Pages only grew: the re-delivered copies are ranked as duplicates of the staged rows.
    staged, total = restaged["pages"]
    assert late["pages"] <= staged < total / 2
    assert (
        warehouse.query(
            "select count(*) from staging.base_segment__pages "
            "where rejection_reason = 'duplicate_id'"
        )[0][0]
        >= late["pages"]
    )


def test_a_text_load_timestamp_stages_incrementally_and_gives_freshness(tmp_path: Path) -> None:
    # An EL tool that lands its load time as ISO-8601 text: staging and freshness parse it.
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "fresh.duckdb")
    generate_into(warehouse, 50, SEED)
    loaded = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    warehouse.execute(
        [
            "alter table raw.tracks alter _loaded_at type varchar "
            "using strftime(_loaded_at, '%Y-%m-%dT%H:%M:%SZ')",
            f"update raw.tracks set _loaded_at = '{loaded:%Y-%m-%dT%H:%M:%S}Z' "
            "where id = (select min(id) from raw.tracks)",
        ]
    )
    stage = ["run", "--select", "+base_segment__tracks"]
    run_dbt(stage, warehouse, quiet=True)
    warehouse.execute(
        [
            "insert into raw.tracks select * replace (id || '-again' as id, "
            f"'{loaded:%Y-%m-%dT%H:%M:%S}Z' as _loaded_at) from raw.tracks limit 3"
        ]
    )
    run_dbt(stage, warehouse, quiet=True)
    staged, total = _restaged(warehouse, "tracks")
    assert total == warehouse.query("select count(*) from raw.tracks")[0][0]
    # The run read the three new rows and the one in the look-back window, nothing older.
    assert staged == 4
    assert warehouse.query("select max(_loaded_at) from staging.base_segment__tracks")[0][
        0
    ] == loaded.replace(tzinfo=None)

    result = run_dbt(["source", "freshness", "--select", "source:segment.tracks"], warehouse)
    (fresh,) = [r for r in result.results if r.node.resource_type == "source"]
    assert fresh.status == "pass"
    assert fresh.max_loaded_at.replace(tzinfo=UTC) == loaded
    # The demo's identifies were last loaded weeks before today: an error past 24 hours.
    with pytest.raises(DbtRunError):
        run_dbt(["source", "freshness", "--select", "source:segment.identifies"], warehouse)
