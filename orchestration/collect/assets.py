"""The collector's calls in Dagster: the loader as the asset producing the event source tables,
and a sensor that runs it when calls land.

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
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg

from orchestration.collect.landing import list_segments
from orchestration.collect.loader import load_landing
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
