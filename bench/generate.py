"""Benchmark: `tessera generate` into a DuckDB file. Prints one JSON document.

Target: 1,000,000 customers in under 180 s on 2 cores.

    python bench/generate.py [--customers 1000000] [--seed 42]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from orchestration.cli import generate_into
from orchestration.warehouse import Warehouse

TARGET_SECONDS = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as folder:
        path = Path(folder) / "bench.duckdb"
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            rows = generate_into(
                Warehouse(target="local", duckdb_path=path), args.customers, args.seed
            )
        seconds = time.perf_counter() - started
        file_bytes = path.stat().st_size

    print(
        json.dumps(
            {
                "benchmark": "generate",
                "customers": args.customers,
                "seed": args.seed,
                "cpu_count": os.cpu_count(),
                "seconds": round(seconds, 2),
                "target_seconds": TARGET_SECONDS,
                "meets_target": seconds < TARGET_SECONDS,
                "rows": rows,
                "total_rows": sum(rows.values()),
                "rows_per_second": round(sum(rows.values()) / seconds),
                "duckdb_file_bytes": file_bytes,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
