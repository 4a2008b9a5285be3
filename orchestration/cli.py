"""The ``tessera`` command: run the pipeline without the UI.

tessera generate --customers N --seed S [--shape tessera|typed|segment|rudderstack]
                 [--target local|postgres]
tessera run [--target local|postgres] [--vars '{tessera_default_country: GB}'] [--output-dir D]
            [--full-refresh] [--verbose]
tessera demo [--customers N] [--seed S] [--output-dir D] [--verbose]
tessera explain <identifier> [--target local|postgres]
tessera identity unmerge <customer_id> --identifier T:V --by NAME --reason TEXT
                 [--target local|postgres]
tessera identity report [--target local|postgres]
tessera identity plan [--vars YAML] [--blocklist CSV] [--overrides CSV] [--target local|postgres]
tessera privacy report [--target local|postgres]
tessera console [--host H] [--port P] [--target local|postgres]
tessera console add-user NAME --role viewer|admin [--password-stdin]
tessera console snapshot | grant ROLE [--password-stdin] [--print] | access-log
tessera collect [--host H] [--port P] [--landing DIR] [--write-keys-file F]
tessera load [--landing DIR] [--follow SECONDS] [--target local|postgres]
tessera stream [--landing DIR] [--stream-dir DIR] [--interval SECONDS] [--once]
tessera sync [--sync NAME ...] [--dry-run] [--force] [--full-resync] [--retry-parked]
             [--target local|postgres] [--vars YAML]

``--vars`` takes YAML (JSON is YAML), as dbt does; the run resolves it once with dbt_project.yml's
vars (orchestration/project.py) and every step reads the same values.

Exit codes of ``tessera sync``: 0 when every sync succeeded or was skipped (a destination with
none of its settings present); 2 when a sync ran but some rows failed or were parked; 1 when a
sync failed or was aborted by a guard (and for any error before a sync ran).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestration.activation.config import SyncConfigError
from orchestration.activation.destination import DestinationError
from orchestration.activation.engine import SyncError, SyncResult, run_syncs
from orchestration.collect.landing import DEFAULT_MIN_FREE_BYTES, LandingError, landing_folder
from orchestration.collect.loader import DEFAULT_MAX_LOAD_BYTES, LoadError, load_landing
from orchestration.collect.server import CollectorConfigError
from orchestration.collect.triggers import TriggerConfigError
from orchestration.console.access import (
    ROLES,
    USERS_ENV,
    AccessError,
    AccessLog,
    add_user,
    console_dir,
    load_users,
    session_secret,
    users_file,
)
from orchestration.console.reader import (
    CONSOLE_PASSWORD_ENV,
    CONSOLE_USER_ENV,
    ConsoleDataError,
    grant_statements,
    open_reader,
    snapshot_path,
    write_snapshot,
)
from orchestration.dbt_project import DbtRunError, project_dir
from orchestration.demo.generator import TRUTH_TABLES, generate, generate_increment
from orchestration.demo.shapes import SHAPES, apply_shape
from orchestration.identity.explain import ExplainError, explain, format_explanation
from orchestration.identity.overrides import OverrideError, unmerge
from orchestration.identity.plan import PlanError, format_plan, plan_identity
from orchestration.identity.report import format_identity_report, identity_report
from orchestration.predictive.clv import PredictiveInputError
from orchestration.project import ConfigError, ProjectConfig, parse_vars
from orchestration.reports import (
    evaluation_summary,
    format_privacy_report,
    format_staging_summary,
    identity_summary,
    journey_summary,
    privacy_report,
    staging_summary,
)
from orchestration.warehouse import TARGETS, Warehouse, WarehouseError, copy_duckdb_to_postgres

DEMO_CUSTOMERS = 20_000
OUTPUT_DIR = "output"
SYNC_STATUSES = ("succeeded", "partial", "skipped", "dry_run", "aborted", "failed")


def _say(message: str) -> None:
    print(f"[tessera] {message}", flush=True)


class _Steps:
    """Times each step of a command and prints the table of them at the end."""

    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []

    def run(self, name: str, step: Callable[[], Any]) -> Any:
        _say(f"{name} ...")
        started = time.perf_counter()
        result = step()
        elapsed = time.perf_counter() - started
        self.timings.append((name, elapsed))
        _say(f"{name} done in {elapsed:.1f}s")
        return result

    def report(self) -> str:
        lines = [f"{'step':<40}{'seconds':>10}"]
        lines += [f"{name:<40}{seconds:>10.1f}" for name, seconds in self.timings]
        lines.append(f"{'total':<40}{sum(s for _, s in self.timings):>10.1f}")
        return "\n".join(lines)


def generate_into(
    warehouse: Warehouse, customers: int, seed: int, shape: str = "tessera", **options: Any
) -> dict[str, int]:
    """Write the demo sources (schema ``tessera_raw_schema``) and their ground truth (schema
    truth) to a warehouse; return the rows of each source table.

    ``shape`` is how the sources land (orchestration/demo/shapes.py): Tessera's contract as
    text (``tessera``) or typed (``typed``), or the Segment or RudderStack warehouse schema.
    ``options`` go to the generator (``defect_rate``, ``junk``).
    """
    schema = ProjectConfig.load().raw_schema
    if warehouse.duckdb_path is not None:
        with warehouse.duckdb_connection() as con:
            data = generate(customers, seed, con=con, progress=_say, schema=schema, **options)
            apply_shape(con, schema, shape)
        return data.row_counts
    data = generate(customers, seed, progress=_say, schema=schema, **options)
    tables = apply_shape(data.con, schema, shape)
    with warehouse.postgres_connection() as pg:
        copy_duckdb_to_postgres(data.con, pg, schema, tables, progress=_say)
        copy_duckdb_to_postgres(data.con, pg, "truth", list(TRUTH_TABLES))
    return data.row_counts


def increment_into(
    warehouse: Warehouse, customers: int, seed: int, **options: Any
) -> dict[str, int]:
    """Append the demo's next load (``generate_increment``: about 1% more events, identifies and
    orders, loaded after every generated row) to what ``generate_into(warehouse, customers,
    seed)`` wrote; return the rows appended per table. ``options`` go to the increment
    (``fraction``, ``loaded_at``, ``increment_seed``).

    On Postgres the demo is generated again in memory (it depends only on customers and seed),
    the increment appended there, and only the appended rows inserted into the raw tables.
    """
    schema = ProjectConfig.load().raw_schema
    if warehouse.duckdb_path is not None:
        with warehouse.duckdb_connection() as con:
            return generate_increment(con, customers, seed, schema=schema, **options)
    data = generate(customers, seed, progress=_say, schema=schema)
    before = dict(data.row_counts)
    appended = generate_increment(data.con, customers, seed, schema=schema, **options)
    data.con.execute("create schema increment")
    for table in appended:
        # An in-memory DuckDB table scans in insertion order: the appended rows come last.
        data.con.execute(
            f'create table increment."{table}" as select * from "{schema}"."{table}" '
            f"offset {before[table]}"
        )
    with warehouse.postgres_connection() as pg:
        copy_duckdb_to_postgres(data.con, pg, "increment", list(appended))
        with pg.transaction(), pg.cursor() as cur:
            for table in appended:
                cur.execute(f'insert into "{schema}"."{table}" select * from increment."{table}"')
            cur.execute("drop schema increment cascade")
        copy_duckdb_to_postgres(data.con, pg, "truth", list(TRUTH_TABLES))
    return appended


def _cmd_generate(args: argparse.Namespace) -> None:
    warehouse = Warehouse.from_env(args.target)
    steps = _Steps()
    counts = steps.run(
        f"generate {args.customers:,} customers (seed {args.seed}) into {warehouse.describe()}",
        lambda: generate_into(warehouse, args.customers, args.seed, shape=args.shape),
    )
    for table, rows in counts.items():
        _say(f"{table}: {rows:,} rows")
    if args.shape in ("segment", "rudderstack"):
        _say(
            f"the event tables follow the {args.shape} warehouse schema: build with "
            f"--vars '{{tessera_source_preset: {args.shape}}}'"
        )
    print(steps.report())


def _run_job(
    warehouse: Warehouse,
    config: ProjectConfig,
    output_dir: Path,
    verbose: bool = False,
    full_refresh: bool = False,
) -> int:
    """Run the Dagster job of the UI in this process; print what it built and checked."""
    from orchestration.runner import run_full_build

    refresh = " (--full-refresh)" if full_refresh else ""
    _say(f"Dagster job tessera_full_build on {warehouse.describe()}{refresh}")
    outcome = run_full_build(
        warehouse, config, output_dir, say=_say, verbose=verbose, full_refresh=full_refresh
    )
    summary = staging_summary(warehouse, config.raw_schema)
    print(format_staging_summary(summary))
    identity = identity_summary(warehouse)
    if identity:
        print(identity)
    evaluations = evaluation_summary(warehouse)
    if evaluations:
        print(evaluations)
    journeys = journey_summary(warehouse)
    if journeys:
        print(journeys)
    print(outcome.report())
    _say(
        f"{outcome.materialized:,} assets built, {outcome.checks_passed:,} checks passed, "
        f"{len(outcome.checks_failed):,} failed"
    )
    if outcome.success:
        return 0
    for failure in outcome.failures:
        _say(f"failed: {failure}")
    if outcome.dbt_errors:
        _say("dbt reported:")
        print(outcome.dbt_errors)
    if outcome.skipped:
        _say(f"not run (upstream failed or blocked): {', '.join(outcome.skipped)}")
    return 1


def _cmd_metrics(args: argparse.Namespace) -> int:
    from orchestration.metrics.mf import run_mf

    if not args.mf_args:
        _say("give mf's arguments: validate-configs, list metrics, query --metrics ...")
        return 2
    return run_mf(Warehouse.from_env(args.target), args.mf_args)


def _cmd_journeys(args: argparse.Namespace) -> int:
    warehouse = Warehouse.from_env(args.target)
    report = journey_summary(warehouse)
    if not report:
        _say(f"no journey marts in {warehouse.describe()}: run `tessera run` first")
        return 1
    print(report)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    warehouse = Warehouse.from_env(args.target)
    config = ProjectConfig.load(args.vars)
    return _run_job(warehouse, config, Path(args.output_dir), args.verbose, args.full_refresh)


def _cmd_demo(args: argparse.Namespace) -> int:
    warehouse = Warehouse.from_env(args.target)
    _say(f"demo on {warehouse.describe()}")
    steps = _Steps()
    steps.run(
        f"generate {args.customers:,} customers",
        lambda: generate_into(warehouse, args.customers, args.seed),
    )
    # The demo's rows come back with the load times they had before, so incremental models
    # would keep what an earlier generator wrote: the demo rebuilds everything.
    status = steps.run(
        "Dagster job tessera_full_build",
        lambda: _run_job(
            warehouse, ProjectConfig.load(), Path(args.output_dir), args.verbose, full_refresh=True
        ),
    )
    print(steps.report())
    return status


#: ``tessera sync`` exit codes (module docstring).
EXIT_ROWS_FAILED = 2
EXIT_SYNC_FAILED = 1


def sync_exit_code(results: Sequence[SyncResult]) -> int:
    statuses = {result.status for result in results}
    if statuses & {"failed", "aborted", "interrupted"}:
        return EXIT_SYNC_FAILED
    if "partial" in statuses:
        return EXIT_ROWS_FAILED
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    warehouse = Warehouse.from_env(args.target)
    config = ProjectConfig.load(args.vars)
    results = run_syncs(
        warehouse,
        names=args.sync,
        dry_run=args.dry_run,
        force=args.force,
        full_resync=args.full_resync,
        retry_parked=args.retry_parked,
        dbt_vars=config.values,
        progress=_say,
    )
    if not results:
        _say("no syncs declared in models/audiences")
    counts = {status: sum(1 for r in results if r.status == status) for status in SYNC_STATUSES}
    if results:
        _say("syncs: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n))
    return sync_exit_code(results)


def _read_password(from_stdin: bool, what: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"{what}: ")
    if getpass.getpass(f"{what} again: ") != first:
        raise AccessError("the two passwords differ")
    return first


def _cmd_console(args: argparse.Namespace) -> None:
    from orchestration.console.app import build_app, serve

    users = load_users()
    if not users:
        raise AccessError(
            f"the console has no users: add one with `tessera console add-user NAME --role "
            f"admin` (writes {users_file()}), or set {USERS_ENV}"
        )
    warehouse = Warehouse.from_env(args.target)
    reader = open_reader(warehouse)
    access_log = AccessLog(console_dir() / "access_log.duckdb")
    _say(f"console reads {reader.describe()}; {len(users)} users; access log {access_log.path}")
    serve(build_app(reader, users, access_log, session_secret()), args.host, args.port)


def _cmd_console_add_user(args: argparse.Namespace) -> None:
    path = users_file()
    user = add_user(path, args.name, args.role, _read_password(args.password_stdin, "password"))
    _say(f"console user {user.name} ({user.role}) written to {path}")


def _cmd_console_snapshot(args: argparse.Namespace) -> None:
    warehouse = Warehouse.from_env(args.target)
    counts = write_snapshot(warehouse)
    _say(
        f"console snapshot {snapshot_path(warehouse)}: "
        f"{sum(counts.values()):,} rows in {len(counts)} tables"
    )


def _cmd_console_grant(args: argparse.Namespace) -> None:
    warehouse = Warehouse.from_env(args.target)
    if warehouse.postgres is None:
        raise ConsoleDataError("grant is for Postgres: on DuckDB the console reads a snapshot")
    password = _read_password(args.password_stdin, f"password for {args.role}")
    statements = grant_statements(args.role, password)
    if args.print:
        print(";\n".join(statements) + ";")
        return
    warehouse.execute(statements)
    _say(
        f"role {args.role} may now only read {warehouse.describe()}: set "
        f"{CONSOLE_USER_ENV}={args.role} and {CONSOLE_PASSWORD_ENV} for `tessera console`"
    )


def _cmd_console_access_log(args: argparse.Namespace) -> None:
    access_log = AccessLog(console_dir() / "access_log.duckdb")
    try:
        for at, who, role, customer_id, page in access_log.recent():
            print(f"{str(at)[:19]}  {who:<16} {role:<7} {page:<8} {customer_id or '-'}")
    finally:
        access_log.close()


def _cmd_explain(args: argparse.Namespace) -> None:
    warehouse = Warehouse.from_env(args.target)
    print(format_explanation(explain(warehouse, args.identifier)))


def _cmd_identity_unmerge(args: argparse.Namespace) -> None:
    warehouse = Warehouse.from_env(args.target)
    done = unmerge(warehouse, args.customer_id, args.identifier, args.by, args.reason)
    _say(done.describe())
    _say("run `tessera run` (or the Dagster job) to apply it")


def _cmd_identity_plan(args: argparse.Namespace) -> None:
    warehouse = Warehouse.from_env(args.target)
    plan = plan_identity(
        warehouse, parse_vars(args.vars), blocklist=args.blocklist, overrides=args.overrides
    )
    print(format_plan(plan))


def _cmd_identity_report(args: argparse.Namespace) -> None:
    print(format_identity_report(identity_report(Warehouse.from_env(args.target))))


def _cmd_collect(args: argparse.Namespace) -> None:
    from orchestration.collect.server import load_write_keys, serve

    keys_file = Path(args.write_keys_file) if args.write_keys_file else None
    keys = load_write_keys(os.environ, keys_file)
    serve(
        landing_folder(os.environ, args.landing),
        keys,
        host=args.host,
        port=args.port,
        min_free_bytes=args.min_free_mb * 1024 * 1024,
    )


def _cmd_load(args: argparse.Namespace) -> None:
    warehouse = Warehouse.from_env(args.target)
    config = ProjectConfig.load(args.vars)
    folder = landing_folder(os.environ, args.landing)
    if config["tessera_source_preset"] == "tessera":
        _say(
            "the collector's calls land in the Segment warehouse schema: build with "
            "--vars '{tessera_source_preset: segment}'"
        )
    while True:
        report = load_landing(
            warehouse,
            folder,
            config.raw_schema,
            max_bytes=args.batch_mb * 1024 * 1024,
            progress=_say,
        )
        _say(f"load from {folder} into {warehouse.describe()}: {report.describe()}")
        if args.follow is None:
            return
        time.sleep(args.follow)


def _cmd_stream(args: argparse.Namespace) -> None:
    import signal

    from orchestration.activation.destinations import registry
    from orchestration.collect.stream import StreamWorker, stream_folder
    from orchestration.collect.triggers import load_triggers

    config = ProjectConfig.load(args.vars)
    destinations = registry()
    triggers = load_triggers(project_dir(), destinations)
    if not triggers:
        raise TriggerConfigError(["no trigger declared under models/audiences"])
    folder = stream_folder(os.environ, args.stream_dir)
    worker = StreamWorker(
        landing_folder(os.environ, args.landing),
        folder,
        triggers,
        destinations,
        dbt_vars=config.values,
    )
    _say(
        f"stream worker: {len(triggers)} trigger(s) ({', '.join(t.name for t in triggers)}), "
        f"state in {folder}"
    )
    if args.once:
        report = worker.tick()
        _say(f"{report.calls:,} calls read, fired {report.fired}, syncs {report.syncs}")
        return
    stopping = {"now": False}

    def stop(signum: int, frame: Any) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    try:
        worker.run(args.interval, _say, lambda: stopping["now"])
    except KeyboardInterrupt:
        pass
    _say("stream worker stopped")


def _cmd_privacy_report(args: argparse.Namespace) -> None:
    warehouse = Warehouse.from_env(args.target)
    print(format_privacy_report(privacy_report(warehouse)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tessera", description="Tessera: a warehouse-native customer data platform."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add_target(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--target",
            choices=TARGETS,
            default=None,
            help="warehouse to use (default: $TESSERA_TARGET, else local)",
        )

    gen = commands.add_parser("generate", help="write demo source data to the raw schema")
    gen.add_argument("--customers", type=_positive_int, required=True)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument(
        "--shape",
        choices=SHAPES,
        default="tessera",
        help="how the sources land: Tessera's contract as text (default) or typed, or the "
        "Segment or RudderStack warehouse schema",
    )
    add_target(gen)
    gen.set_defaults(func=_cmd_generate)

    def add_vars(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--vars",
            metavar="YAML",
            help="dbt var overrides as YAML or JSON, as dbt takes them: "
            "'{tessera_clv_time_unit: day}'",
        )

    def add_verbose(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--verbose", action="store_true", help="stream dbt's log instead of writing a file"
        )

    def add_landing(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--landing",
            metavar="DIR",
            help="the landing folder (default: $TESSERA_LANDING_DIR, else .tessera/landing)",
        )

    def add_output_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--output-dir",
            default=OUTPUT_DIR,
            help=f"folder for the predictive plots (default: {OUTPUT_DIR})",
        )

    run = commands.add_parser(
        "run", help="build the pipeline (dbt seed, run and test), then CLV and churn"
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental models from all their input (the customer id registry "
        "and audience membership history keep their rows)",
    )
    add_vars(run)
    add_target(run)
    add_output_dir(run)
    add_verbose(run)
    run.set_defaults(func=_cmd_run)

    demo = commands.add_parser("demo", help="generate demo data, then build everything")
    demo.add_argument("--customers", type=_positive_int, default=DEMO_CUSTOMERS)
    demo.add_argument("--seed", type=int, default=42)
    add_target(demo)
    add_output_dir(demo)
    add_verbose(demo)
    demo.set_defaults(func=_cmd_demo)

    why = commands.add_parser(
        "explain", help="show an identifier's customer and the source rows that link them"
    )
    why.add_argument("identifier", help="a value (ana@mail.com) or type:value (user_id:42)")
    add_target(why)
    why.set_defaults(func=_cmd_explain)

    metrics = commands.add_parser(
        "metrics",
        help="run MetricFlow's mf on the semantic layer (validate-configs, list, query)",
        description="mf's own arguments follow: tessera metrics query --metrics revenue "
        "--group-by metric_time__month. The project is parsed for the warehouse first.",
    )
    add_target(metrics)
    metrics.add_argument("mf_args", nargs=argparse.REMAINDER, help="arguments of mf")
    metrics.set_defaults(func=_cmd_metrics)

    journeys = commands.add_parser(
        "journeys", help="print revenue by channel per attribution model, and the funnels"
    )
    add_target(journeys)
    journeys.set_defaults(func=_cmd_journeys)

    identity = commands.add_parser("identity", help="govern identity: plan, report, unmerge")
    identity_commands = identity.add_subparsers(dest="identity_command", required=True)
    split = identity_commands.add_parser(
        "unmerge",
        help="split an identifier (and what is nearer to it) from a customer on the next run",
    )
    split.add_argument("customer_id", help="the customer to split, e.g. cus_0123456789abcdef")
    split.add_argument(
        "--identifier", required=True, help="the identifier to split off, as type:value"
    )
    split.add_argument("--by", required=True, help="who decided it (kept in the override log)")
    split.add_argument("--reason", required=True, help="why (kept in the override log)")
    add_target(split)
    split.set_defaults(func=_cmd_identity_unmerge)
    preview = identity_commands.add_parser(
        "plan",
        help="build the partition a changed var, blocklist or override file would give into "
        "schema identity_plan and print the merges and splits it would cause",
    )
    add_vars(preview)
    preview.add_argument(
        "--blocklist", type=Path, help="a CSV to use instead of seed identifier_blocklist"
    )
    preview.add_argument(
        "--overrides", type=Path, help="a CSV to use instead of seed identity_overrides"
    )
    add_target(preview)
    preview.set_defaults(func=_cmd_identity_plan)
    summary = identity_commands.add_parser(
        "report",
        help="largest customers, identifiers per customer, blocked identifiers, merges per run",
    )
    add_target(summary)
    summary.set_defaults(func=_cmd_identity_report)

    sync = commands.add_parser(
        "sync", help="send what changed in the audiences to their destinations"
    )
    sync.add_argument("--sync", action="append", metavar="NAME", help="only this sync (repeatable)")
    sync.add_argument(
        "--dry-run", action="store_true", help="print the plan (counts, samples), send nothing"
    )
    sync.add_argument(
        "--force",
        action="store_true",
        help="send even if an empty audience or too many removals would abort the run",
    )
    sync.add_argument(
        "--full-resync",
        action="store_true",
        help="send every member again, whatever was sent before; remove nobody but erased "
        "customers (a Meta mirror replaces the audience with usersreplace)",
    )
    sync.add_argument(
        "--retry-parked",
        action="store_true",
        help="send again the rows parked after the destination refused them "
        "tessera_sync_max_row_attempts times",
    )
    add_vars(sync)
    add_target(sync)
    sync.set_defaults(func=_cmd_sync)

    collect = commands.add_parser(
        "collect",
        help="serve the Segment / RudderStack HTTP Tracking API, landing calls on disk",
    )
    collect.add_argument("--host", default="127.0.0.1", help="address to listen on")
    collect.add_argument("--port", type=_positive_int, default=8088, help="port (default 8088)")
    add_landing(collect)
    collect.add_argument(
        "--write-keys-file",
        metavar="FILE",
        help="accepted write keys, one per line (default: $TESSERA_COLLECT_WRITE_KEYS, "
        "comma-separated)",
    )
    collect.add_argument(
        "--min-free-mb",
        type=_positive_int,
        default=DEFAULT_MIN_FREE_BYTES // (1024 * 1024),
        help="free space the landing disk keeps; below it calls get 429 and clients retry "
        "later (default %(default)s)",
    )
    collect.set_defaults(func=_cmd_collect)

    load = commands.add_parser(
        "load", help="load the collector's landed calls into the raw schema, each call once"
    )
    add_landing(load)
    load.add_argument(
        "--follow",
        type=float,
        metavar="SECONDS",
        help="keep loading, pausing this long between loads (Postgres; on DuckDB each load "
        "holds the file while it runs)",
    )
    load.add_argument(
        "--batch-mb",
        type=_positive_int,
        default=DEFAULT_MAX_LOAD_BYTES // (1024 * 1024),
        help="megabytes of landed calls per transaction: a larger backlog loads in several "
        "(default %(default)s)",
    )
    add_vars(load)
    add_target(load)
    load.set_defaults(func=_cmd_load)

    stream = commands.add_parser(
        "stream", help="evaluate the audiences' event triggers as calls land, and send members"
    )
    add_landing(stream)
    stream.add_argument(
        "--stream-dir",
        metavar="DIR",
        help="the worker's state and the trait snapshot (default: $TESSERA_STREAM_DIR, else "
        ".tessera/stream)",
    )
    stream.add_argument(
        "--interval", type=float, default=2.0, help="seconds between ticks (default 2)"
    )
    stream.add_argument("--once", action="store_true", help="run one tick and stop")
    add_vars(stream)
    stream.set_defaults(func=_cmd_stream)

    console = commands.add_parser(
        "console",
        help="the web console: profiles, audience previews, sync health (signed in)",
        description="Without a subcommand: serve the console on --host:--port.",
    )
    add_target(console)
    console.add_argument("--host", default="127.0.0.1", help="address to listen on")
    console.add_argument("--port", type=int, default=8765, help="port to listen on")
    console.set_defaults(func=_cmd_console)
    console_commands = console.add_subparsers(dest="console_command")
    add_user = console_commands.add_parser(
        "add-user", help="add a console user (or change their role and password)"
    )
    add_user.add_argument("name")
    add_user.add_argument("--role", required=True, choices=ROLES)
    add_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_user.set_defaults(func=_cmd_console_add_user)
    snapshot = console_commands.add_parser(
        "snapshot", help="refresh the console's snapshot of the DuckDB warehouse now"
    )
    add_target(snapshot)
    snapshot.set_defaults(func=_cmd_console_snapshot)
    grant = console_commands.add_parser(
        "grant", help="create the SELECT-only Postgres role the console reads as"
    )
    add_target(grant)
    grant.add_argument("role", help="the role's name, e.g. tessera_console")
    grant.add_argument(
        "--password-stdin", action="store_true", help="read the role's password from stdin"
    )
    grant.add_argument("--print", action="store_true", help="print the SQL instead of running it")
    grant.set_defaults(func=_cmd_console_grant)
    accesses = console_commands.add_parser(
        "access-log", help="print the last profile lookups: who, when, which customer"
    )
    accesses.set_defaults(func=_cmd_console_access_log)

    privacy = commands.add_parser("privacy", help="consent and deletion status")
    privacy_commands = privacy.add_subparsers(dest="privacy_command", required=True)
    report = privacy_commands.add_parser(
        "report", help="consent coverage per purpose and deletions still pending"
    )
    add_target(report)
    report.set_defaults(func=_cmd_privacy_report)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except (
        AccessError,
        ConsoleDataError,
        WarehouseError,
        ConfigError,
        DbtRunError,
        ExplainError,
        OverrideError,
        PlanError,
        PredictiveInputError,
        SyncConfigError,
        SyncError,
        DestinationError,
        CollectorConfigError,
        LandingError,
        LoadError,
        TriggerConfigError,
    ) as exc:
        print(f"tessera: error: {exc}", file=sys.stderr)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
