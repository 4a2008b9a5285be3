"""The collector's calls in Dagster: the loader as the asset producing the event source tables,
a sensor that runs it when calls land, and the stream worker's snapshot and health.

The loader materializes the raw tables the event staging reads (``segment/identifies``,
``segment/tracks``, ``segment/pages``; with Segment's warehouse schema also the event tables and
``screens``, ``groups``, ``aliases``, which staging discovers by their columns). A warehouse whose
event tables come from an EL tool has nothing landed: the step then loads nothing and says so.
It runs first in ``tessera_full_build``, before anything reads the tables, so on DuckDB it never
writes while dbt does.

``landing_sensor`` looks only at the landing folder (file names and sizes, never the warehouse)
and asks for a load when a segment grew; the raw-rows sensor then rebuilds what is downstream
of the tables whose rows changed, as for any other load.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.collect.landing import list_segments
from orchestration.collect.loader import load_landing
from orchestration.collect.stream import SNAPSHOT_FILE, STATUS_FILE, write_snapshot
from orchestration.collect.triggers import TriggerSpec
from orchestration.dbt_assets import RAW_GROUP, RawTable
from orchestration.resources import RunSettings, WarehouseResource

LOADER_NAME = "load_landed_calls"
#: The dbt source whose tables the collector's calls land in.
EVENT_SOURCE = "segment"


def is_event_table(raw: RawTable) -> bool:
    return raw.key.path[0] == EVENT_SOURCE


def build_loader_asset(tables: Sequence[RawTable], adapter: str) -> dg.AssetsDefinition:
    """The loader, producing the event source tables among ``tables``."""
    events = [raw for raw in tables if is_event_table(raw)]
    specs = [
        dg.AssetSpec(
            key=raw.key,
            group_name=RAW_GROUP,
            description=(
                f"Raw source table {raw.schema}.{raw.table}: the calls `tessera collect` "
                "landed, loaded each once (or the rows your EL tool loaded)."
            ),
            kinds={adapter},
            metadata={"dagster/table_name": f"{raw.schema}.{raw.table}"},
            skippable=True,
        )
        for raw in events
    ]

    @dg.multi_asset(name=LOADER_NAME, specs=specs, can_subset=False)
    def load_landed_calls(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: RunSettings
    ):
        folder = Path(settings.landing_dir)
        report = load_landing(
            warehouse.get(), folder, settings.config().raw_schema, progress=context.log.info
        )
        context.log.info(f"load from {folder}: {report.describe()}")
        for raw in events:
            yield dg.MaterializeResult(
                asset_key=raw.key,
                metadata={
                    "rows_inserted": report.inserted.get(raw.table, 0),
                    "calls_read": report.events,
                    "duplicates_skipped": report.duplicates,
                    "unreadable_lines": report.rejected,
                    "landing_folder": str(folder),
                },
            )

    return load_landed_calls


def build_landing_sensor(
    job_name: str,
    landing_dir: str,
    loader_keys: Sequence[dg.AssetKey],
    job_in_progress: Callable[[dg.SensorEvaluationContext], bool],
) -> dg.SensorDefinition:
    """Runs the loader (``loader_keys``) when a landing segment appeared or grew since the last
    request, unless a run of ``job_name`` is writing the warehouse.

    The cursor is each segment's size when the last load was requested (JSON); sealing renames
    a segment without changing its size, so it asks for nothing new. A load that fails leaves
    its calls for the next one, which every load takes whole.
    """

    @dg.sensor(
        name="landing_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        description="Loads the calls the collector landed into the raw tables.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        sizes = {
            segment.name: segment.path.stat().st_size
            for segment in list_segments(Path(landing_dir))
            if segment.path.exists()
        }
        previous = json.loads(context.cursor) if context.cursor else {}
        grown = sorted(name for name, size in sizes.items() if size > previous.get(name, 0))
        if not grown:
            return dg.SkipReason(f"nothing new in {landing_dir}")
        if job_in_progress(context):
            return dg.SkipReason(f"a {job_name} run is in progress")
        # Keep the sizes of segments still on disk only: the cursor does not grow forever.
        cursor = json.dumps(sizes, sort_keys=True)
        request = dg.RunRequest(
            run_key=cursor,
            asset_selection=list(loader_keys),
            tags={"tessera/landed_segments": str(len(grown))},
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return landing_sensor


STREAM_GROUP = "syncs"
SNAPSHOT_KEY = dg.AssetKey(["stream", "trigger_snapshot"])
WORKER_KEY = dg.AssetKey(["stream", "stream_worker"])
#: A worker that has not written its status for this long is reported stale.
STALE_AFTER_SECONDS = 60.0


def build_stream_assets(
    triggers: Sequence[TriggerSpec],
    audience_key: Callable[[str], dg.AssetKey],
    identities_key: dg.AssetKey,
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """The trait snapshot the stream worker reads, rebuilt after its audiences, and the worker
    itself as an asset Dagster observes (its health and lag, from ``stream_worker_sensor``).
    Nothing when no trigger is declared."""
    if not triggers:
        return []
    audiences = sorted({trigger.audience for trigger in triggers})

    @dg.asset(
        key=SNAPSHOT_KEY,
        deps=[identities_key, *(audience_key(audience) for audience in audiences)],
        group_name=STREAM_GROUP,
        description=(
            "The audiences of the event triggers and their customers' identifiers, written for "
            "`tessera stream` as a file of its own (the worker never reads the warehouse)."
        ),
    )
    def trigger_snapshot(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: RunSettings
    ) -> dg.MaterializeResult:
        folder = Path(settings.stream_dir)
        counts = write_snapshot(warehouse.get(), audiences, folder)
        context.log.info(f"trigger snapshot in {folder}: {counts}")
        return dg.MaterializeResult(
            metadata={f"rows_{table}": rows for table, rows in counts.items()}
            | {"path": str(folder / SNAPSHOT_FILE)}
        )

    worker = dg.AssetSpec(
        key=WORKER_KEY,
        deps=[SNAPSHOT_KEY],
        group_name=STREAM_GROUP,
        description=(
            "`tessera stream`: evaluates the triggers "
            f"({', '.join(trigger.name for trigger in triggers)}) as calls land. Observed by "
            "stream_worker_sensor: heartbeat age, landing lag, members fired and sent."
        ),
    )
    return [trigger_snapshot, worker]


def worker_health(status: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """What Dagster shows of the worker, from its status file (None: it never ran)."""
    if status is None:
        return {"healthy": False, "reason": "the worker has not run (no status file)"}
    age = (now - datetime.fromisoformat(status["updated_at"])).total_seconds()
    tick = status.get("last_tick") or {}
    healthy = age <= STALE_AFTER_SECONDS
    failed = sorted(
        name for name, outcome in (tick.get("syncs") or {}).items() if outcome == "failed"
    )
    return {
        "healthy": healthy and not failed,
        "reason": (
            f"no status for {age:.0f} s"
            if not healthy
            else f"failed sends: {', '.join(failed)}"
            if failed
            else "ok"
        ),
        "heartbeat_age_seconds": round(age, 1),
        "landing_lag_bytes": tick.get("lag_bytes", 0),
        "calls_last_tick": tick.get("calls", 0),
        "fired_last_tick": sum((tick.get("fired") or {}).values()),
        "tick_seconds": tick.get("seconds", 0.0),
        "snapshot_built_at": status.get("snapshot_built_at"),
    }


def build_stream_worker_sensor(stream_dir: str) -> dg.SensorDefinition:
    """Records the stream worker's health and lag as an observation of its asset."""

    @dg.sensor(
        name="stream_worker_sensor",
        minimum_interval_seconds=30,
        description="Observes `tessera stream`: heartbeat, landing lag, members fired.",
    )
    def stream_worker_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        path = Path(stream_dir) / STATUS_FILE
        try:
            status = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            status = None
        health = worker_health(status, datetime.now(UTC))
        observation = dg.AssetObservation(asset_key=WORKER_KEY, metadata=health)
        return dg.SensorResult(asset_events=[observation], skip_reason=health["reason"])

    return stream_worker_sensor
