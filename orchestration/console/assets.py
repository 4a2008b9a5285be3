"""The Dagster asset that refreshes the console's snapshot of a DuckDB warehouse (reader.py).

It runs after the models the console reads and after every sync whose destination is set up, so
the pages show the build's runs too. (A sync to a destination nobody set up records no
materialization, and Dagster would skip everything downstream of it.) A sync that fails stops
Dagster from running the snapshot; ``tessera run`` then refreshes it itself once the job has
ended (runner.py), and ``tessera console snapshot`` does it by hand. On Postgres there is no
snapshot: the console reads the live tables.
"""

from collections.abc import Callable, Sequence

import dagster as dg

from orchestration.console.reader import SNAPSHOT_TABLES, snapshot_path, write_snapshot
from orchestration.resources import WarehouseResource

SNAPSHOT_KEY = dg.AssetKey(["console", "console_snapshot"])


def build_console_snapshot_asset(
    model_key: Callable[[str], dg.AssetKey],
    audience_models: Sequence[str],
    after: Sequence[dg.AssetKey],
) -> dg.AssetsDefinition:
    """The snapshot asset, downstream of the models of SNAPSHOT_TABLES, the audiences and the
    assets ``after`` (the syncs)."""
    models = [
        t for schema, tables in SNAPSHOT_TABLES.items() if schema != "activation" for t in tables
    ]

    @dg.asset(
        key=SNAPSHOT_KEY,
        deps=[*(model_key(m) for m in [*models, *audience_models]), *after],
        group_name="console",
        kinds={"duckdb"},
        description=(
            "The tables `tessera console` reads, copied into <warehouse>.console.duckdb so the "
            "console never holds the warehouse file a build writes."
        ),
    )
    def console_snapshot(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        target = warehouse.get()
        counts = write_snapshot(target)
        context.log.info(f"console snapshot: {sum(counts.values()):,} rows in {len(counts)} tables")
        return dg.MaterializeResult(
            metadata={"path": str(snapshot_path(target)), "tables": len(counts)}
            | {f"rows_{name}": rows for name, rows in counts.items()}
        )

    return console_snapshot
