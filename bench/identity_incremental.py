"""Benchmark: an incremental identity run after a small load, against a full rebuild.

Prints one JSON document. Generates demo data into a DuckDB file, holds back about 1% of the rows
of each identity source (ids ending in "17"), builds the identity layer, loads the held rows and
builds again (incremental), then rebuilds the same models with --full-refresh (the customer id
registry keeps its history either way). The held event rows arrive in a later load (a newer
`_loaded_at`), so event staging reads only them and its look-back window; the other staging
tables are rebuilt in full in both runs. Reports each run's wall time and the per-model times
of the evidence models, whose work the incremental run limits to the new rows and the pairs they
touch.

    python bench/identity_incremental.py [--customers 200000] [--seed 42]
        [--mutable-sources crm_contacts]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse

EVENT_TABLES = ("identifies", "tracks", "pages")
# A load after every generated one.
LATER_LOAD = "2031-01-01 00:00:00"
SOURCE_KEYS = {
    "identifies": "id",
    "tracks": "id",
    "pages": "id",
    "orders": "order_id",
    "crm_contacts": "contact_id",
    "support_tickets": "ticket_id",
}
EVIDENCE_MODELS = (
    "identity_retracted_observations",
    "identity_observations",
    "identity_edges",
)
# Seeds and models, without the data tests: the comparison is about building.
BUILD = [
    "build",
    "--select",
    "+identity_customer_map",
    "+identity_merge_log",
    "--exclude-resource-type",
    "test",
    "--exclude-resource-type",
    "unit_test",
]


def _timed_run(
    warehouse: Warehouse, extra: list[str], dbt_vars: dict[str, Any] | None = None
) -> dict[str, Any]:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = run_dbt([*BUILD, *extra], warehouse, dbt_vars, quiet=True)
    seconds = time.perf_counter() - started
    models = {r.node.name: round(r.execution_time, 2) for r in result.results}
    return {
        "seconds": round(seconds, 2),
        "evidence_model_seconds": {name: models.get(name) for name in EVIDENCE_MODELS},
        "evidence_seconds": round(sum(models.get(name) or 0 for name in EVIDENCE_MODELS), 2),
        "identity_model_seconds": round(
            sum(t for name, t in models.items() if name.startswith("identity_")), 2
        ),
        "event_staging_model_seconds": {
            name: t for name, t in models.items() if name.startswith("base_segment__")
        },
        "staging_model_seconds": round(
            sum(t for name, t in models.items() if name.startswith(("stg_", "base_"))), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--mutable-sources",
        help="comma-separated value of var tessera_mutable_sources (default: all)",
    )
    args = parser.parse_args()
    dbt_vars = (
        {"tessera_mutable_sources": args.mutable_sources.split(",")}
        if args.mutable_sources
        else None
    )

    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as folder:
        warehouse = Warehouse(target="local", duckdb_path=Path(folder) / "bench.duckdb")
        with contextlib.redirect_stdout(io.StringIO()):
            generate_into(warehouse, args.customers, args.seed)
        late = "right(cast({key} as varchar), 2) = '17'"
        warehouse.execute(
            [
                f"create table raw.late_{table} as select * from raw.{table} "
                f"where {late.format(key=key)}"
                for table, key in SOURCE_KEYS.items()
            ]
            + [
                f"delete from raw.{table} where {late.format(key=key)}"
                for table, key in SOURCE_KEYS.items()
            ]
        )
        late_rows = sum(
            warehouse.query(f"select count(*) from raw.late_{table}")[0][0] for table in SOURCE_KEYS
        )
        first = _timed_run(warehouse, [], dbt_vars)
        observations = warehouse.query("select count(*) from identity.identity_observations")
        warehouse.execute(
            [
                f"insert into raw.{table} select * "
                + (
                    f"replace (timestamp '{LATER_LOAD}' as _loaded_at) "
                    if table in EVENT_TABLES
                    else ""
                )
                + f"from raw.late_{table}"
                for table in SOURCE_KEYS
            ]
        )
        incremental = _timed_run(warehouse, [], dbt_vars)
        full = _timed_run(warehouse, ["--full-refresh"], dbt_vars)
        edges = warehouse.query("select count(*) from identity.identity_edges")

    print(
        json.dumps(
            {
                "benchmark": "identity_incremental",
                "customers": args.customers,
                "seed": args.seed,
                "mutable_sources": args.mutable_sources or "all",
                "cpu_count": os.cpu_count(),
                "appended_source_rows": late_rows,
                "observations_before_append": observations[0][0],
                "edges_after_append": edges[0][0],
                "first_build": first,
                "incremental_after_append": incremental,
                "full_refresh_after_append": full,
                "evidence_speedup": round(
                    full["evidence_seconds"] / max(incremental["evidence_seconds"], 1e-9), 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
