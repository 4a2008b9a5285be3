"""Benchmark: the whole pipeline at scale, on DuckDB (default) or Postgres.

Prints one JSON document. Generates demo data, then runs the Dagster job of ``tessera run`` four
times, each in its own process so its peak memory is its own:

1. ``full``: the first build, from nothing;
2. ``noop``: a rerun with nothing new loaded;
3. ``increment``: after about 1% more events, identifies and orders are appended with a later
   load time (some of them from existing people, some linking new devices to them, some from
   new people: ``orchestration.demo.generator.generate_increment``);
4. ``full_refresh``: ``tessera run --full-refresh`` over the same data; every mart, score and
   audience must equal what the increment left (``identical_to_full_refresh``; the tables that
   differ are listed).

Per stage, the seconds are the sum of its models' own dbt times (on Postgres dbt builds four
at once, so stages overlap there) and, for the Python steps, their step times. Syncs run for
the destinations that need no account (file, table); the others are skipped as in a fresh
project. The syncs' delete guard is lifted (var tessera_sync_max_delete_fraction: 1): the
increment moves the demo's clock by a day, which can take more than a fifth of an audience out
of it.

The report is written to ``<workdir>/report.json`` after each phase, so a run that fails
keeps what it measured; the failure is in ``failed``.

    python bench/pipeline.py [--customers 1000000] [--target local|postgres] [--seed 42]
        [--workdir DIR]

``--target postgres`` uses the server of ``TESSERA_PG_*`` when ``TESSERA_PG_HOST`` is set, else
starts a throwaway one from the machine's Postgres binaries (as the test suite does).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Stages by the asset key's first part; these dbt models read the predictive step's output.
PREDICTIVE_MARTS = ("marts/clv_model_fits", "marts/customer_churn_scores", "marts/customer_clv")
STAGES = ("staging", "identity", "marts", "predictive", "audiences", "syncs")
# The tables a full refresh must reproduce, by schema; the membership history records each
# run's changes, so it is not the same after a rerun by design.
COMPARED_SCHEMAS = ("marts", "audiences", "predictive")
NOT_COMPARED = {"audience_membership_history"}
# Columns that say when a run happened, not what it computed.
RUN_TIME_COLUMNS = {"_staged_at", "_built_at", "scored_at", "fitted_at", "trained_at"}
BENCH_VARS = "{tessera_sync_max_delete_fraction: 1}"


class RunFailed(RuntimeError):
    pass


def _stage(key: str) -> str | None:
    if key in PREDICTIVE_MARTS:
        return "predictive"
    head = key.split("/", 1)[0]
    return head if head in STAGES else None


# --- the child processes ---------------------------------------------------------------------


def _child_run(out: Path, full_refresh: bool) -> None:
    """One run of the job in this process; its steps and assets to ``out`` as JSON."""
    from orchestration.project import ProjectConfig
    from orchestration.runner import run_full_build
    from orchestration.warehouse import Warehouse

    outcome = run_full_build(
        Warehouse.from_env(),
        ProjectConfig.load(BENCH_VARS),
        output_dir=out.parent / "output",
        say=lambda _message: None,
        full_refresh=full_refresh,
    )
    steps = [
        {
            "key": step.key,
            "status": step.status,
            "seconds": (step.finished or step.started) - step.started,
        }
        for step in outcome.steps
    ]
    built = [{"key": b.key, "step": b.step, "seconds": b.seconds} for b in outcome.built]
    out.write_text(
        json.dumps(
            {
                "success": outcome.success,
                "failures": outcome.failures,
                "steps": steps,
                "built": built,
                "dbt_errors": outcome.dbt_errors,
            }
        )
    )


def _child_generate(customers: int, seed: int) -> None:
    from orchestration.cli import generate_into
    from orchestration.warehouse import Warehouse

    generate_into(Warehouse.from_env(), customers, seed)


def _child_increment(customers: int, seed: int, out: Path) -> None:
    from orchestration.cli import increment_into
    from orchestration.warehouse import Warehouse

    out.write_text(json.dumps(increment_into(Warehouse.from_env(), customers, seed)))


# --- the parent -----------------------------------------------------------------------------


def _timed_child(args: list[str], env: Mapping[str, str]) -> tuple[float, int]:
    """Run ``python bench/pipeline.py --child ...``; its wall seconds and peak RSS in bytes."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RunFailed(f"the child {' '.join(args)} failed ({code})")
    # ru_maxrss is in KiB on Linux: the largest of the child and the descendants it waited for
    # (dbt runs in its own process).
    return seconds, usage.ru_maxrss * 1024


def _run(name: str, workdir: Path, env: Mapping[str, str], full_refresh: bool = False) -> dict:
    out = workdir / f"{name}.json"
    args = ["run", str(out), *(["full-refresh"] if full_refresh else [])]
    seconds, peak = _timed_child(args, env)
    result = json.loads(out.read_text())
    if not result["success"]:
        print(result["dbt_errors"], file=sys.stderr)
        raise RunFailed(f"the {name} run failed: {result['failures']}")
    stages = dict.fromkeys(STAGES, 0.0)
    step_seconds = {step["key"]: step["seconds"] for step in result["steps"]}
    python_steps: dict[str, str] = {}
    for built in result["built"]:
        stage = _stage(built["key"])
        if stage is None:
            continue
        if built["seconds"] is not None:
            stages[stage] += built["seconds"]
        else:
            python_steps[built["step"]] = stage
    for step, stage in python_steps.items():
        stages[stage] += step_seconds.get(step, 0.0)
    dbt_steps = [key for key in step_seconds if key.startswith("tessera_dbt")]
    slowest = sorted(
        (b for b in result["built"] if b["seconds"] is not None),
        key=lambda b: -b["seconds"],
    )[:8]
    return {
        "seconds": round(seconds, 1),
        "peak_rss_bytes": peak,
        "stage_seconds": {stage: round(s, 1) for stage, s in stages.items()},
        "dbt_step_seconds": round(sum(step_seconds[key] for key in dbt_steps), 1),
        "slowest_models": {b["key"]: round(b["seconds"], 1) for b in slowest},
        "syncs": {step["key"]: step["status"] for step in result["steps"] if "sync" in step["key"]},
    }


@contextlib.contextmanager
def _warehouse_env(target: str, workdir: Path) -> Iterator[dict[str, str]]:
    """The ``TESSERA_*`` environment of the benchmark's warehouse."""
    if target == "local":
        yield {"TESSERA_TARGET": "local", "TESSERA_DUCKDB_PATH": str(workdir / "bench.duckdb")}
        return
    from orchestration.warehouse import Warehouse

    if os.environ.get("TESSERA_PG_HOST"):
        yield Warehouse.from_env("postgres").dbt_env()
        return
    sys.path.insert(0, str(ROOT))
    from tests.postgres_server import start_server

    server = start_server()
    try:
        yield Warehouse(target="postgres", postgres=server.create_database("bench")).dbt_env()
    finally:
        server.stop()


def table_digests(env: Mapping[str, str]) -> dict[str, tuple[int, str]]:
    """Rows and an order-independent digest of every compared table (doubles rounded to 9
    places: a sum's last bits depend on the order rows were added in)."""
    from orchestration.warehouse import Warehouse

    warehouse = Warehouse.from_env(env["TESSERA_TARGET"], env)
    columns: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, kind in warehouse.query(
        "select table_schema, table_name, column_name, data_type "
        "from information_schema.columns where table_schema in "
        f"({', '.join(repr(s) for s in COMPARED_SCHEMAS)}) order by ordinal_position"
    ):
        if table in NOT_COMPARED or column in RUN_TIME_COLUMNS:
            continue
        columns.setdefault(f"{schema}.{table}", []).append((column, kind.lower()))
    digests = {}
    for relation, cols in sorted(columns.items()):
        values = [
            f"round({name}::numeric, 9)::text"
            if kind in ("double", "double precision", "real", "float")
            else f"{name}::text"
            for name, kind in ((f'"{c}"', k) for c, k in cols)
        ]
        row = "concat_ws('|', " + ", ".join(f"coalesce({v}, '~')" for v in values) + ")"
        if warehouse.duckdb_path is not None:
            sql = f"select count(*), coalesce(sum(hash({row})::hugeint), 0)::text from {relation}"
        else:
            sql = (
                f"select count(*), coalesce(sum(('x' || substr(md5({row}), 1, 15))::bit(60)"
                f"::bigint::numeric), 0)::text from {relation}"
            )
        rows, digest = warehouse.query(sql)[0]
        digests[relation] = (int(rows), str(digest))
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--target", choices=("local", "postgres"), default="local")
    parser.add_argument("--workdir", type=Path, help="keep the warehouse here (default: temp)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "run":
            _child_run(Path(rest[0]), full_refresh="full-refresh" in rest)
        elif kind == "generate":
            _child_generate(int(rest[0]), int(rest[1]))
        elif kind == "increment":
            _child_increment(int(rest[0]), int(rest[1]), Path(rest[2]))
        return

    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tessera-")))
        env = stack.enter_context(_warehouse_env(args.target, workdir))
        report: dict[str, Any] = {
            "benchmark": "pipeline",
            "target": args.target,
            "customers": args.customers,
            "seed": args.seed,
            "targets": {
                "full_seconds": 180,
                "full_peak_rss_bytes": 6 * 2**30,
                "noop_fraction": 0.10,
                "increment_fraction": 0.15,
            },
            "machine": {
                "cpu_count": os.cpu_count(),
                "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                "duckdb_memory_limit": os.environ.get("TESSERA_DUCKDB_MEMORY_LIMIT", "4GB"),
                "duckdb_threads": int(os.environ.get("TESSERA_DUCKDB_THREADS", "4")),
            },
            "runs": {},
        }
        try:
            _measure(args, workdir, env, report)
        except RunFailed as exc:
            report["failed"] = str(exc)
        (workdir / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if "failed" in report:
        raise SystemExit(f"bench: {report['failed']}")


def _measure(
    args: argparse.Namespace, workdir: Path, env: Mapping[str, str], report: dict[str, Any]
) -> None:
    """Every phase, each adding its figures to ``report`` (saved after each)."""

    def save() -> None:
        (workdir / "report.json").write_text(json.dumps(report, indent=2))

    generate_seconds, generate_peak = _timed_child(
        ["generate", str(args.customers), str(args.seed)], env
    )
    report["generate_seconds"] = round(generate_seconds, 1)
    report["generate_peak_rss_bytes"] = generate_peak
    full = report["runs"]["full"] = _run("full", workdir, env)
    report["full_seconds"] = full["seconds"]
    report["full_peak_rss_bytes"] = full["peak_rss_bytes"]
    report["stage_seconds"] = full["stage_seconds"]
    save()
    noop = report["runs"]["noop"] = _run("noop", workdir, env)
    report["noop_seconds"] = noop["seconds"]
    report["noop_peak_rss_bytes"] = noop["peak_rss_bytes"]
    report["noop_fraction"] = round(noop["seconds"] / full["seconds"], 3)
    save()
    rows_out = workdir / "increment_rows.json"
    append_seconds, _ = _timed_child(
        ["increment", str(args.customers), str(args.seed), str(rows_out)], env
    )
    report["increment_rows"] = json.loads(rows_out.read_text())
    report["increment_append_seconds"] = round(append_seconds, 1)
    increment = report["runs"]["increment"] = _run("increment", workdir, env)
    report["increment_seconds"] = increment["seconds"]
    report["increment_peak_rss_bytes"] = increment["peak_rss_bytes"]
    report["increment_fraction"] = round(increment["seconds"] / full["seconds"], 3)
    save()
    incremental = table_digests(env)
    report["runs"]["full_refresh"] = _run("full_refresh", workdir, env, full_refresh=True)
    report["full_refresh_seconds"] = report["runs"]["full_refresh"]["seconds"]
    refreshed = table_digests(env)
    differing = sorted(
        name
        for name in incremental.keys() | refreshed.keys()
        if incremental.get(name) != refreshed.get(name)
    )
    report["identical_to_full_refresh"] = not differing
    report["tables_compared"] = len(refreshed)
    report["tables_differing"] = differing


if __name__ == "__main__":
    main()
