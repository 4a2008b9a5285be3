"""The loader as the Dagster asset producing the event tables, and the sensor that runs it."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from orchestration.collect.assets import build_landing_sensor, build_loader_asset
from orchestration.collect.landing import LandingWriter
from orchestration.collect.messages import land_request
from orchestration.dbt_assets import RawTable
from orchestration.resources import RunSettings, WarehouseResource

EVENT_TABLES = [
    RawTable(dg.AssetKey(["segment", table]), "raw", table)
    for table in ("identifies", "pages", "tracks")
]
ORDERS = RawTable(dg.AssetKey(["shop", "orders"]), "raw", "orders")


def _land(folder: Path, calls: list[dict]) -> None:
    writer = LandingWriter(folder)

    async def run() -> None:
        await writer.start()
        await writer.append(land_request("batch", {"batch": calls}, datetime.now(UTC)).lines)
        await writer.stop()

    asyncio.run(run())


def _track(n: int) -> dict:
    return {"type": "track", "userId": f"u{n}", "event": "Order Completed", "messageId": f"m{n}"}


def test_the_loader_asset_materializes_the_event_tables_with_what_it_inserted(
    tmp_path: Path,
) -> None:
    landing = tmp_path / "landing"
    _land(landing, [_track(n) for n in range(7)] + [{"type": "page", "anonymousId": "a"}])
    loader = build_loader_asset([*EVENT_TABLES, ORDERS], "duckdb")
    assert sorted(key.to_user_string() for key in loader.keys) == [
        "segment/identifies", "segment/pages", "segment/tracks",
    ]  # fmt: skip
    database = tmp_path / "w.duckdb"
    resources = {
        "warehouse": WarehouseResource(target="local", duckdb_path=str(database)),
        "settings": RunSettings(landing_dir=str(landing)),
    }
    result = dg.materialize([loader], resources=resources)
    assert result.success
    rows = {
        event.asset_key.to_user_string(): event.materialization.metadata["rows_inserted"].value
        for event in result.get_asset_materialization_events()
    }
    assert rows == {"segment/identifies": 0, "segment/pages": 1, "segment/tracks": 7}
    again = dg.materialize([loader], resources=resources)
    rows = [
        event.materialization.metadata["rows_inserted"].value
        for event in again.get_asset_materialization_events()
    ]
    assert rows == [0, 0, 0]


def test_the_landing_sensor_asks_for_a_load_when_a_segment_grows(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    keys = [raw.key for raw in EVENT_TABLES]
    busy = {"value": False}
    sensor = build_landing_sensor("tessera_full_build", str(landing), keys, lambda _: busy["value"])

    def tick(cursor: str | None):
        return sensor(dg.build_sensor_context(cursor=cursor))

    assert "nothing new" in tick(None).skip_message
    _land(landing, [_track(1)])
    first = tick(None)
    (request,) = first.run_requests
    assert request.asset_selection == keys
    assert "nothing new" in tick(first.cursor).skip_message
    _land(landing, [_track(2)])
    busy["value"] = True
    assert "in progress" in tick(first.cursor).skip_message
    busy["value"] = False
    second = tick(first.cursor)
    assert len(second.run_requests) == 1 and second.cursor != first.cursor


def test_loading_into_tables_of_another_shape_is_refused_and_loads_nothing(tmp_path: Path) -> None:
    from orchestration.collect.loader import LoadError, load_landing
    from orchestration.warehouse import Warehouse

    landing = tmp_path / "landing"
    _land(landing, [_track(1)])
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "w.duckdb")
    # Tessera's own contract: tracks without Segment's columns, as `tessera generate` writes it.
    warehouse.execute(
        [
            "create schema raw",
            "create table raw.tracks (id varchar, anonymous_id varchar, user_id varchar, "
            "event varchar, properties varchar, context_device_id varchar, timestamp varchar)",
        ]
    )
    with pytest.raises(LoadError, match=r"raw\.tracks exists but is not in Segment's warehouse"):
        load_landing(warehouse, landing, "raw")
    assert warehouse.query("select count(*) from raw.tracks") == [(0,)]
    assert warehouse.query("select count(*) from raw.tessera_landed_segments") == [(0,)]


def test_the_worker_is_healthy_while_its_status_is_fresh_and_its_sends_succeed() -> None:
    from datetime import timedelta

    from orchestration.collect.assets import worker_health

    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    tick = {"calls": 40, "fired": {"a": 2, "b": 1}, "syncs": {"a": "succeeded"}, "lag_bytes": 10}
    status = {"updated_at": (now - timedelta(seconds=5)).isoformat(), "last_tick": tick}
    health = worker_health(status, now)
    assert health["healthy"] and health["fired_last_tick"] == 3
    assert health["heartbeat_age_seconds"] == 5.0 and health["landing_lag_bytes"] == 10
    stale = worker_health({**status, "updated_at": (now - timedelta(minutes=5)).isoformat()}, now)
    assert not stale["healthy"] and stale["reason"] == "no status for 300 s"
    failing = worker_health({**status, "last_tick": {**tick, "syncs": {"a": "failed"}}}, now)
    assert not failing["healthy"] and failing["reason"] == "failed sends: a"
    assert worker_health(None, now) == {
        "healthy": False, "reason": "the worker has not run (no status file)",
    }  # fmt: skip
