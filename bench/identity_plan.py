"""Benchmark: `tessera identity plan` against one identity build.

Prints one JSON document. Generates demo data into a DuckDB file, builds staging and the
identity layer, then times a full rebuild of the identity models (--full-refresh; the customer
registry and node ids keep their history, as in any run) and a plan of each change below
(orchestration.identity.plan.plan_identity: copying the live identity state, the incremental
build into schema identity_plan, the comparison). Target: a plan costs at most 1.5x one
identity build.

Changes planned:
- ``limits``: var tessera_identity_limits with at most 2 anonymous ids per customer (every
  component is checked against the limits again, and people with more browsers are split);
- ``max_people``: var tessera_identity_shared_max_people 1 (more identifiers shared);
- ``blocklist``: a blocklist file adding the 20 linkable emails with the most links.

    python bench/identity_plan.py [--customers 200000] [--seed 42]
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

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.identity.plan import plan_identity
from orchestration.warehouse import Warehouse

TARGET_RATIO = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as folder:
        warehouse = Warehouse(target="local", duckdb_path=Path(folder) / "bench.duckdb")
        with contextlib.redirect_stdout(io.StringIO()):
            generate_into(warehouse, args.customers, args.seed)
        run_dbt(["build", "--select", "+identity_customer_map", "--exclude-resource-type",
                 "test", "unit_test"], warehouse, quiet=True)  # fmt: skip
        started = time.perf_counter()
        run_dbt(["run", "--select", "path:models/identity", "--full-refresh"], warehouse,
                quiet=True)  # fmt: skip
        identity_seconds = time.perf_counter() - started
        emails = warehouse.query(
            "select edges.identifier_value_b from identity.identity_edges as edges "
            "inner join identity.identity_customer_map as linkable "
            "on edges.identifier_type_b = linkable.identifier_type "
            "and edges.identifier_value_b = linkable.identifier_value "
            "where edges.identifier_type_b = 'email' group by 1 order by count(*) desc, 1 limit 20"
        )
        blocklist = Path(folder) / "blocklist.csv"
        blocklist.write_text(
            "identifier_type,identifier_value,reason\n"
            + "".join(f"email,{value},bench\n" for (value,) in emails)
        )
        changes = {
            "limits": {"vars": {"tessera_identity_limits": {"user_id": 1, "anonymous_id": 2}}},
            "max_people": {"vars": {"tessera_identity_shared_max_people": 1}},
            "blocklist": {"blocklist": blocklist},
        }
        plans = {}
        for name, change in changes.items():
            started = time.perf_counter()
            plan = plan_identity(warehouse, change.get("vars"), blocklist=change.get("blocklist"))
            seconds = time.perf_counter() - started
            plans[name] = {
                "seconds": round(seconds, 2),
                "ratio_to_identity_build": round(seconds / identity_seconds, 3),
                "merges": len(plan.merges),
                "splits": len(plan.splits),
                "stop_linking": len(plan.stop_linking),
                "customers_before": plan.customers_before,
                "customers_after": plan.customers_after,
            }
        worst = max(p["ratio_to_identity_build"] for p in plans.values())
        print(
            json.dumps(
                {
                    "benchmark": "identity_plan",
                    "customers": args.customers,
                    "cpus": os.cpu_count(),
                    "identity_build_seconds": round(identity_seconds, 2),
                    "plans": plans,
                    "target_ratio": TARGET_RATIO,
                    "worst_ratio": worst,
                    "meets_target": worst <= TARGET_RATIO,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
