"""``tessera run`` and ``tessera demo`` run the Dagster job the UI runs, in this process.

The job is ``tessera_full_build`` of orchestration/definitions.py: dbt build, the predictive
step, the dbt models over it, the checks and every sync, with the same blocking checks as in the
UI. Progress is printed as the run goes, from a Dagster logger: each step as it starts and ends,
each asset as it is built (``[12/97]``), every check that fails, and what the Python steps say
(the predictive summary, each sync's counts, a skipped sync's reason). The run's events live in
an ephemeral instance: the command line keeps no run history (the UI, ``make ui``, does).

dbt's own log (every model and test dagster-dbt echoes to standard output) goes to a file under
``.tessera/logs`` whose path is printed first; when the run fails, dbt's summary of the errors is
read back from it (``JobOutcome.dbt_errors``) so the failing model's error is printed in full.
``verbose`` streams dbt's log instead, and prints every step's start and every asset built.
"""

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.collect.landing import landing_folder
from orchestration.collect.stream import stream_folder
from orchestration.console.assets import SNAPSHOT_KEY
from orchestration.console.reader import write_snapshot
from orchestration.dbt_project import project_dir
from orchestration.definitions import JOB_NAME, build_defs
from orchestration.project import ProjectConfig
from orchestration.resources import RunSettings
from orchestration.warehouse import Warehouse

#: Steps whose INFO lines go to the log file only: dbt's step logs a line per dbt event (its
#: progress is the assets it builds); a saved-query table's row count is in its metadata.
_QUIET_STEP_PREFIXES = ("tessera_dbt", "metrics__")
#: Without ``verbose``, one progress line per this many assets built (and each step's last).
_BUILT_EVERY = 10
#: dbt's summary of a failed command starts with this line ("Completed with 1 error ...").
_DBT_SUMMARY = "Completed with"


@dataclass
class StepTiming:
    key: str
    started: float
    finished: float | None = None
    status: str = "running"


@dataclass(frozen=True)
class AssetBuilt:
    key: str
    step: str
    seconds: float | None


@dataclass
class JobOutcome:
    success: bool
    steps: list[StepTiming] = field(default_factory=list)
    materialized: int = 0
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: Where dbt's log went (None: streamed, ``verbose``).
    log_path: Path | None = None
    #: dbt's summary of its errors, read from the log when the run failed.
    dbt_errors: str = ""
    #: Each asset built, with the step that built it and, for a dbt model, dbt's own time for
    #: it (None for a Python step's assets: its step's time is theirs together).
    built: list[AssetBuilt] = field(default_factory=list)

    def report(self, min_seconds: float = 1.0) -> str:
        """Each step with its status and time; the steps that succeeded in under
        ``min_seconds`` (checks, small syncs) are summed on one line."""
        width = max([len(step.key) for step in self.steps] + [20]) + 2
        lines = [f"{'step':<{width}}{'status':>10}{'seconds':>10}"]
        quick, quick_seconds = 0, 0.0
        for step in self.steps:
            seconds = (step.finished or step.started) - step.started
            if step.status == "succeeded" and seconds < min_seconds:
                quick, quick_seconds = quick + 1, quick_seconds + seconds
                continue
            lines.append(f"{step.key:<{width}}{step.status:>10}{seconds:>10.1f}")
        if quick:
            label = f"{quick} more steps under {min_seconds:g} s"
            lines.append(f"{label:<{width}}{'succeeded':>10}{quick_seconds:>10.1f}")
        total = sum((s.finished or s.started) - s.started for s in self.steps)
        lines.append(f"{'total':<{width}}{'':>10}{total:>10.1f}")
        return "\n".join(lines)


class _ProgressHandler(logging.Handler):
    """Turns the run's log records (with their Dagster events) into progress lines."""

    def __init__(
        self, say: Callable[[str], None], log: Callable[[str], None], verbose: bool
    ) -> None:
        super().__init__(level=logging.DEBUG)
        self.say = say
        #: Where the lines a user does not need go: dbt's chatter, each step's start.
        self.log = log
        self.verbose = verbose
        #: Assets the job will build, for ``[n/planned]``; set once the job is resolved.
        self.planned = 0
        self.outcome = JobOutcome(success=False)
        self._steps: dict[str, StepTiming] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception:  # progress must never break the run
            self.handleError(record)

    def _emit(self, record: logging.LogRecord) -> None:
        meta: Mapping[str, Any] = getattr(record, "dagster_meta", None) or {}
        event = getattr(record, "dagster_event", None) or meta.get("dagster_event")
        step = meta.get("step_key") or ""
        if event is None:
            message = meta.get("orig_message") or record.getMessage()
            quiet = step.startswith(_QUIET_STEP_PREFIXES) and record.levelno < logging.ERROR
            if step and record.levelno >= logging.INFO:
                (self.log if quiet else self.say)(f"{step}: {message}")
            return
        kind = event.event_type_value
        outcome = self.outcome
        if kind == "STEP_START":
            self._steps[step] = StepTiming(step, time.perf_counter())
            outcome.steps.append(self._steps[step])
            (self.say if self.verbose else self.log)(f"step {step} started")
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            timing = self._steps.get(step)
            status = "succeeded" if kind == "STEP_SUCCESS" else "failed"
            if timing is not None:
                timing.finished = time.perf_counter()
                if timing.status == "running":
                    timing.status = status
                status = timing.status
            seconds = f" in {timing.finished - timing.started:.1f}s" if timing else ""
            self.say(f"step {step} {status}{seconds}")
            if kind == "STEP_FAILURE":
                error = event.step_failure_data.error if event.step_failure_data else None
                reason = error.message.strip() if error else "failed"
                outcome.failures.append(f"{step}: {reason}")
                self.say(f"step {step} failed: {reason}")
        elif kind == "STEP_SKIPPED":
            outcome.skipped.append(step)
            self.say(f"step {step} skipped: {meta.get('orig_message') or 'upstream failed'}")
        elif kind == "ASSET_OBSERVATION" and step in self._steps:
            # A sync whose destination is not configured observes why instead of materializing.
            observation = event.event_specific_data.asset_observation
            if "skipped" in observation.metadata:
                self._steps[step].status = "skipped"
        elif kind == "ASSET_MATERIALIZATION":
            outcome.materialized += 1
            key = event.asset_key.to_user_string() if event.asset_key else step
            metadata = event.event_specific_data.materialization.metadata
            duration = metadata.get("Execution Duration")
            outcome.built.append(
                AssetBuilt(key, step, float(duration.value) if duration is not None else None)
            )
            line = f"[{outcome.materialized}/{self.planned}] built {key}"
            shown = self.verbose or outcome.materialized % _BUILT_EVERY == 0
            (self.say if shown or outcome.materialized == self.planned else self.log)(line)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            if evaluation.passed:
                outcome.checks_passed += 1
            else:
                severity = evaluation.severity.value if evaluation.severity else "ERROR"
                outcome.checks_failed.append(f"{name} ({severity})")
                description = evaluation.description or ""
                self.say(f"check {name} FAILED ({severity}) {description}".rstrip())


def run_full_build(
    warehouse: Warehouse,
    config: ProjectConfig | None = None,
    output_dir: Path | None = None,
    say: Callable[[str], None] = print,
    verbose: bool = False,
    full_refresh: bool = False,
    landing_dir: Path | None = None,
) -> JobOutcome:
    """Run ``tessera_full_build`` on ``warehouse`` in this process, saying what happens;
    ``full_refresh`` rebuilds dbt's incremental models from all their input; the job's first
    step loads what the collector landed in ``landing_dir`` (default: ``TESSERA_LANDING_DIR``,
    else .tessera/landing)."""
    config = config or ProjectConfig.load()
    landing = landing_dir or landing_folder(os.environ)
    settings = RunSettings.of(
        config, output_dir, full_refresh, landing_dir=landing, stream_dir=stream_folder(os.environ)
    )
    if verbose:
        return _run(warehouse, settings, say, say, verbose=True)
    folder = project_dir() / ".tessera" / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    say(f"dbt's log: {path}")
    with open(path, "w", encoding="utf-8") as log_file:
        terminal = sys.stdout

        def to_terminal(message: str) -> None:
            with contextlib.redirect_stdout(terminal):
                say(message)

        def to_log(message: str) -> None:
            log_file.write(message + "\n")

        # dagster-dbt echoes dbt's log to standard output: into the file.
        with contextlib.redirect_stdout(log_file):
            outcome = _run(warehouse, settings, to_terminal, to_log, verbose=False)
    outcome.log_path = path
    if not outcome.success:
        outcome.dbt_errors = dbt_error_summary(path.read_text(encoding="utf-8"))
    return outcome


def _run(
    warehouse: Warehouse,
    settings: RunSettings,
    say: Callable[[str], None],
    log: Callable[[str], None],
    verbose: bool,
) -> JobOutcome:
    handler = _ProgressHandler(say, log, verbose)

    @dg.logger(description="Tessera's command-line progress.")
    def progress_logger(_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("tessera.progress", level=logging.DEBUG)
        logger.addHandler(handler)
        return logger

    defs = build_defs(warehouse, settings, loggers={"progress": progress_logger})
    job = defs.resolve_job_def(JOB_NAME)
    graph = defs.resolve_asset_graph()
    handler.planned = sum(
        1 for key in graph.get_all_asset_keys() if graph.get(key).is_materializable
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            run_config={"loggers": {"progress": {}}}, instance=instance, raise_on_error=False
        )
    handler.outcome.success = result.success
    if warehouse.duckdb_path is not None and not any(
        event.asset_key == SNAPSHOT_KEY for event in result.get_asset_materialization_events()
    ):
        # A failed sync (or model) kept Dagster from refreshing the console's snapshot: the
        # console still shows this run's sync results.
        try:
            counts = write_snapshot(warehouse)
            log(f"console snapshot refreshed after the run: {sum(counts.values()):,} rows")
        except Exception as exc:  # a broken warehouse: the run's own error says why
            log(f"console snapshot not refreshed: {exc}")
    return handler.outcome


def dbt_error_summary(log: str) -> str:
    """dbt's own account of what failed: from its last "Completed with N errors" line to the
    end of that command's output (every failing node with its full error), else ""."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if _DBT_SUMMARY in line]
    if not starts:
        return ""
    summary = []
    for line in lines[starts[-1] :]:
        summary.append(line)
        if line.startswith("Done. PASS="):
            break
    return "\n".join(summary).strip()
