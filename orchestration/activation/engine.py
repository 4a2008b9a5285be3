"""The sync engine: make a destination hold what an audience holds, sending only what changed.

One run of one sync (``run_sync``):

1. The plan (plan.py): the audience diffed in SQL against ``activation.sync_state``, what was
   last sent successfully.
2. Guards: an empty audience aborts a removing sync, and removals above var
   ``tessera_sync_max_delete_fraction`` of what the destination holds abort the run, unless
   forced. A dry run stops here and returns the plan.

   A full resync plans every sendable member as an add (as ``update`` mode's changes), whatever
   the state says was sent, and removes nobody but erased customers: the members who left stay
   in the state, and the next ordinary mirror run removes them. A mirror to a destination that
   ``replaces_on_full_resync`` (Meta's ``usersreplace``) drops them itself: the engine forgets
   them when the run has sent everything, and the delete guard counts them as removals.
3. The connection check, through the same retries and throttling as every request (sender.py).
4. Requests a killed run left without a recorded outcome are sent again first, with the same
   records under the same ids (``Batch.delivery_id``), so nothing is lost and an API that takes
   record ids or idempotency keys applies nothing twice.
5. Sending (sender.py): batches of the destination's ``max_batch_size``, one operation each, at
   most ``max_concurrency`` in flight. Every planned batch is marked in flight in the state
   before the first one leaves, and each one's outcomes are recorded in one transaction when it
   ends, so a killed run loses nothing. A permanent error stops the run, and everything unsent
   is sent by the next one.

A row the destination refuses (its own failure, or the row a rejected batch was split down to)
var ``tessera_sync_max_row_attempts`` times in a row is parked: left out of the plans (counted
as ``parked``) until its data changes or a run is asked to ``retry_parked``. A run in which rows
failed, or that left parked rows out, ends ``partial``.

Personal values (fields mapped from columns the audience model tags ``pii``, or whose names look
personal: orchestration/privacy.py) are masked in the printed plan, and masked in every error a
destination returns before the error is stored or printed (personal.py).

When a run that sent something ends (unless interrupted), the destination is asked what the
platform made of it (``Destination.platform_report``: Meta's received and invalid counts,
Google's match-rate range); the answer is written to ``activation.sync_platform_reports`` with
the run's completion. A platform that cannot be asked costs the run nothing: a warning, no row.

``run_syncs`` runs the project's declared syncs in turn; a destination nobody configured
(settings.py) is ``skipped`` without a run.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestration.activation import state as state_tables
from orchestration.activation.config import (
    AUDIENCE_SCHEMA,
    SyncSpec,
    can_remove,
    declared_sync_names,
    load_syncs,
)
from orchestration.activation.destination import (
    Destination,
    DestinationError,
    PlatformReport,
    RateLimited,
    RunContext,
    TransientError,
)
from orchestration.activation.destinations import registry
from orchestration.activation.personal import PersonalData
from orchestration.activation.plan import (
    Plan,
    PlannedRecord,
    SyncError,
    make_plan,
    plan_sql,
)
from orchestration.activation.sender import RetryPolicy, Sender, chunks, send_all
from orchestration.activation.serialisation import dumps
from orchestration.activation.settings import destination_config, not_configured
from orchestration.activation.store import StateStore, utc_now
from orchestration.dbt_project import project_dir
from orchestration.project import ConfigError, check_var
from orchestration.warehouse import Warehouse

__all__ = [
    "Plan",
    "RetryPolicy",
    "SyncError",
    "SyncResult",
    "audience_columns",
    "make_plan",
    "plan_sql",
    "run_sync",
    "run_syncs",
]

MAX_DELETE_FRACTION_VAR = "tessera_sync_max_delete_fraction"
DEFAULT_MAX_DELETE_FRACTION = 0.2
MAX_ROW_ATTEMPTS_VAR = "tessera_sync_max_row_attempts"
DEFAULT_MAX_ROW_ATTEMPTS = 3

log = logging.getLogger("tessera.activation")


@dataclass
class SyncResult:
    """How a run ended. ``status``: ``succeeded``; ``partial`` (rows failed or were parked, or
    parked rows were left out); ``dry_run``; ``aborted`` by a guard; ``failed``;
    ``interrupted``; ``skipped`` (the destination is not configured: no run, ``error`` says
    why, ``run_id`` is empty)."""

    sync: str
    run_id: str
    status: str
    plan: Plan | None
    succeeded: int = 0
    failed: int = 0
    #: Rows this run parked (refused once too often); among ``failed``.
    parked: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    records_sent: int = 0
    error: str | None = None
    #: Whether the failure was the destination being unreachable or overloaded (worth another
    #: run soon), rather than a refusal or a mistake in the sync.
    retryable: bool = False

    def format(self) -> str:
        if self.status == "dry_run" and self.plan is not None:
            return f"dry run, nothing sent: {self.plan.format()}"
        if self.status in ("aborted", "failed", "skipped") and self.plan is None:
            return f"sync {self.sync}: {self.status}: {self.error}"
        counts = self.plan.counts() if self.plan else {}
        planned = ", ".join(f"{name} {count:,}" for name, count in counts.items())
        parked = f" ({self.parked:,} parked)" if self.parked else ""
        line = (
            f"sync {self.sync}: {self.status}; planned {planned}; succeeded {self.succeeded:,}, "
            f"failed {self.failed:,}{parked} in {self.requests:,} requests ({self.retries:,} "
            f"retries, {self.rate_limited:,} throttled)"
        )
        return f"{line}: {self.error}" if self.error else line


@dataclass(frozen=True)
class RunOptions:
    """What a run was asked to do, with the project's limits (dbt vars) already read."""

    dry_run: bool = False
    force: bool = False
    full_resync: bool = False
    retry_parked: bool = False
    max_delete_fraction: float = DEFAULT_MAX_DELETE_FRACTION
    max_row_attempts: int = DEFAULT_MAX_ROW_ATTEMPTS


@dataclass
class SyncRun:
    """One run of one sync: what it works with, and its result as it goes."""

    store: StateStore
    spec: SyncSpec
    warehouse: Warehouse
    destination_class: type[Destination]
    #: The destination to send to (None: made from its settings in ``env`` when needed).
    destination: Destination | None
    env: Mapping[str, str]
    policy: RetryPolicy
    options: RunOptions
    result: SyncResult
    #: What the platform reported about the run, and when it was asked (None: no report).
    report: PlatformReport | None = None
    reported_at: datetime | None = None


def _limit(dbt_vars: Mapping[str, Any], name: str, default: Any) -> Any:
    # The project configuration's own check (orchestration/project.py), for callers that pass
    # vars without loading it.
    try:
        return check_var(name, dbt_vars.get(name, default))
    except ConfigError as exc:
        raise SyncError(str(exc)) from None


def max_delete_fraction(dbt_vars: Mapping[str, Any]) -> float:
    return _limit(dbt_vars, MAX_DELETE_FRACTION_VAR, DEFAULT_MAX_DELETE_FRACTION)


def max_row_attempts(dbt_vars: Mapping[str, Any]) -> int:
    return _limit(dbt_vars, MAX_ROW_ATTEMPTS_VAR, DEFAULT_MAX_ROW_ATTEMPTS)


def run_sync(
    spec: SyncSpec,
    warehouse: Warehouse,
    registry: Mapping[str, type[Destination]],
    *,
    dry_run: bool = False,
    force: bool = False,
    full_resync: bool = False,
    retry_parked: bool = False,
    dbt_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    policy: RetryPolicy | None = None,
    destination: Destination | None = None,
) -> SyncResult:
    """Run one sync (see the module docstring); ``destination`` overrides the registry's.

    ``retry_parked``: send the parked rows again (each is parked again at its next refusal).
    """
    if destination is None and spec.destination not in registry:
        raise SyncError(
            f"sync {spec.name}: no destination named {spec.destination!r} "
            f"(destinations: {', '.join(sorted(registry))})"
        )
    destination_class = type(destination) if destination is not None else registry[spec.destination]
    dbt_vars = dbt_vars or {}
    options = RunOptions(
        dry_run=dry_run,
        force=force,
        full_resync=full_resync,
        retry_parked=retry_parked,
        max_delete_fraction=max_delete_fraction(dbt_vars),
        max_row_attempts=max_row_attempts(dbt_vars),
    )
    result = SyncResult(spec.name, uuid.uuid4().hex, "running", None)
    with StateStore.open(warehouse) as store:
        run = SyncRun(
            store,
            spec,
            warehouse,
            destination_class,
            destination,
            os.environ if env is None else env,
            policy or RetryPolicy(),
            options,
            result,
        )
        store.ensure_tables()
        _start_run(run)
        try:
            _run(run)
        except (SyncError, DestinationError) as exc:
            result.status = "failed"
            result.error = str(exc)
            result.retryable = isinstance(exc, TransientError | RateLimited)
        except Exception as exc:
            result.status = "failed"
            result.error = f"{type(exc).__name__}: {exc}"
            _finish_run(run)
            raise
        except BaseException as exc:
            # Interrupted (Ctrl-C, a signal): whatever is in flight is resent by the next run.
            result.status = "interrupted"
            result.error = f"{type(exc).__name__}: {exc}"
            _finish_run(run)
            raise
        _finish_run(run)
    return result


def _run(run: SyncRun) -> None:
    spec, store, result, options = run.spec, run.store, run.result, run.options
    destination_class = run.destination_class
    if options.dry_run:
        result.plan = _plan(run)
        result.status = "dry_run"
        return
    destination = run.destination or destination_class(
        destination_config(destination_class, spec.options, run.env)
    )
    personal = PersonalData.of(spec, destination_class)
    sender = Sender(
        destination, store, spec.name, result.run_id, run.policy, personal, options.max_row_attempts
    )
    context = RunContext(
        spec.name,
        result.run_id,
        spec.mode,  # type: ignore[arg-type]
        total_records=0,
        extra={"key_column": spec.key, "warehouse": run.warehouse, "options": dict(spec.options)},
        full_resync=options.full_resync,
    )
    started = False
    succeeded = False
    interrupted = False
    try:
        sender.call(destination.check_connection)
        # Planned first (rows still in flight are left out of the diff), so the guards run and
        # the destination learns the run's total before anything is sent.
        resends = state_tables.inflight_requests(store, spec.name)
        plan = result.plan = _plan(run)
        plan.resends = sum(len(items) for _, items in resends)
        reason = None if options.force else _guard(plan, options.max_delete_fraction)
        if reason:
            result.status = "aborted"
            result.error = reason
            return
        state_tables.forget(store, spec.name, plan.forgotten)
        state_tables.settle(store, spec.name, plan.settled)
        plan_records = plan.records
        if plan.erasures and not can_remove(destination_class):
            sender.record_failed(
                [PlannedRecord(p.record, p.customer_id, None) for p in plan.erasures],
                None,
                f"erased customer: {destination_class.name} cannot remove records; "
                "remove them there by hand",
                refused=False,
            )
            undeliverable = {id(planned) for planned in plan.erasures}
            plan_records = [p for p in plan_records if id(p) not in undeliverable]
        context.total_records = plan.resends + len(plan_records)
        if context.total_records:
            destination.start(context)
            started = True
        send_all(sender, resends)
        batches = [
            (uuid.uuid4().hex, items)
            for items in chunks(plan_records, destination_class.max_batch_size)
        ]
        _mark_planned(run, batches)
        send_all(sender, batches)
        succeeded = True
        # The replace has ended with the run's last batch: the leavers are gone.
        state_tables.forget(store, spec.name, plan.replaced, removed_in_run=result.run_id)
    except BaseException as exc:
        # Ctrl-C or a signal: the destination is only told to finish, not asked anything more.
        interrupted = not isinstance(exc, Exception)
        raise
    finally:
        if started:
            if sender.stats.records_sent and not interrupted:
                _ask_for_report(run, destination)
            destination.finish(succeeded)
        stats = sender.stats
        result.succeeded, result.failed = stats.succeeded, stats.failed
        result.requests, result.retries = stats.requests, stats.retries
        result.rate_limited, result.records_sent = stats.rate_limited, stats.records_sent
        if result.failed:
            result.parked = state_tables.parked_in_run(store, spec.name, result.run_id)
    if result.status == "running":
        left_out = result.plan is not None and result.plan.parked
        result.status = "partial" if result.failed or left_out else "succeeded"


def _ask_for_report(run: SyncRun, destination: Destination) -> None:
    """Keep what the platform reports about the run; a failure to ask costs the run nothing."""
    try:
        run.report = destination.platform_report()
    except Exception as exc:
        # The exception's type only: its message may quote what the platform echoed back.
        log.warning(
            "sync %s: no platform report from %s (%s)",
            run.spec.name,
            run.destination_class.name,
            type(exc).__name__,
        )
        run.report = None
    run.reported_at = utc_now()


def _plan(run: SyncRun) -> Plan:
    return make_plan(
        run.store,
        run.spec,
        run.destination_class,
        run.options.full_resync,
        run.options.retry_parked,
    )


def _guard(plan: Plan, limit: float) -> str | None:
    """Why the plan must not run unforced, or None."""
    spec = plan.sync
    if spec.removes and plan.source_rows == 0 and plan.held_rows > 0:
        return (
            f"audience {spec.audience} is empty: sending would remove all {plan.held_rows:,} "
            "records the destination holds; rerun with --force if that is intended"
        )
    removals = len(plan.removes) + len(plan.replaced)
    if plan.held_rows and removals > limit * plan.held_rows:
        return (
            f"{removals:,} removals are {removals / plan.held_rows:.0%} of the "
            f"{plan.held_rows:,} records the destination holds, above {MAX_DELETE_FRACTION_VAR} "
            f"= {limit:g}; rerun with --force if that is intended"
        )
    return None


def _mark_planned(run: SyncRun, batches: Sequence[tuple[str, list[PlannedRecord]]]) -> None:
    """Mark every planned request in flight, in one statement, before the first one leaves."""
    rows = []
    for batch_id, items in batches:
        for item in items:
            item.change_id = item.change_id or batch_id
            rows.append(
                (
                    item.record.key,
                    item.customer_id,
                    item.record.operation,
                    item.fingerprint,
                    dumps(item.record.fields),
                    item.change_id,
                    batch_id,
                )
            )
    state_tables.mark_inflight(run.store, run.spec.name, run.result.run_id, rows)


def _start_run(run: SyncRun) -> None:
    spec, options = run.spec, run.options
    now = utc_now()
    with run.store.transaction():
        # A run still marked running was killed: this run finishes its work.
        run.store.execute(
            "update activation.sync_runs set status = 'interrupted', finished_at = ? "
            "where sync_name = ? and status = 'running'",
            [now, spec.name],
        )
        run.store.execute(
            """
            insert into activation.sync_runs (
                run_id, sync_name, audience, destination, mode, status, dry_run, forced,
                full_resync, started_at
            ) values (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)
            """,
            [
                run.result.run_id,
                spec.name,
                spec.audience,
                spec.destination,
                spec.mode,
                options.dry_run,
                options.force,
                options.full_resync,
                now,
            ],
        )


def _finish_run(run: SyncRun) -> None:
    """Complete the run's row and store the platform's report of the run, in one transaction."""
    with run.store.transaction():
        _complete_run_row(run)
        if run.report is not None:
            _insert_report(run, run.report)


def _complete_run_row(run: SyncRun) -> None:
    result = run.result
    plan = result.plan
    counts = plan.counts() if plan else {}
    run.store.execute(
        """
        update activation.sync_runs
        set status = ?, finished_at = ?, source_rows = ?, planned_adds = ?,
            planned_changes = ?, planned_removes = ?, planned_resends = ?, records_sent = ?,
            succeeded = ?, failed = ?, requests = ?, retries = ?, rate_limited = ?, parked = ?,
            error = ?
        where run_id = ?
        """,
        [
            result.status,
            utc_now(),
            plan.source_rows if plan else None,
            counts.get("adds"),
            counts.get("changes"),
            (counts["removes"] + counts["erasures"]) if plan else None,
            counts.get("resends"),
            result.records_sent,
            result.succeeded,
            result.failed,
            result.requests,
            result.retries,
            result.rate_limited,
            result.parked,
            result.error,
            result.run_id,
        ],
    )


def _insert_report(run: SyncRun, report: PlatformReport) -> None:
    run.store.execute(
        """
        insert into activation.sync_platform_reports (
            run_id, sync_name, destination, reported_at, received, invalid, match_rate_low,
            match_rate_high, detail
        ) values (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            run.result.run_id,
            run.spec.name,
            run.spec.destination,
            run.reported_at,
            report.received,
            report.invalid,
            report.match_rate_low,
            report.match_rate_high,
            report.detail,
        ],
    )


def audience_columns(warehouse: Warehouse) -> dict[str, list[str]]:
    """Each table of schema ``audiences`` with its columns, for checking sync declarations."""
    mark = warehouse.placeholder
    rows = warehouse.query(
        "select table_name, column_name from information_schema.columns "
        f"where table_schema = {mark} order by table_name, ordinal_position",
        [AUDIENCE_SCHEMA],
    )
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


def run_syncs(
    warehouse: Warehouse,
    *,
    names: Sequence[str] | None = None,
    destinations: Sequence[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    full_resync: bool = False,
    retry_parked: bool = False,
    dbt_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[SyncResult]:
    """Load the project's syncs, checked against the warehouse, and run the chosen ones in
    turn: those named (all if None), of the destinations listed (any if None).

    A sync whose destination is not configured (settings.not_configured) is not run: its
    result is ``skipped`` with the reason in ``error``, and nothing is written to
    ``activation.sync_runs``. A dry run plans it all the same (planning needs no settings).
    """
    env = os.environ if env is None else env
    destinations_by_name = registry()

    def chosen(item: Mapping[str, Any]) -> bool:
        named = not names or item.get("name") in names
        return named and (destinations is None or item.get("destination") in destinations)

    specs = load_syncs(
        project_dir(), destinations_by_name, audience_columns(warehouse), select=chosen
    )
    if names:
        unknown = sorted(set(names) - {spec.name for spec in specs})
        if unknown:
            known = ", ".join(declared_sync_names(project_dir())) or "none declared"
            raise SyncError(f"no sync named {', '.join(unknown)} (syncs: {known})")
    results = []
    for spec in specs:
        reason = None
        if not dry_run:
            reason = not_configured(destinations_by_name[spec.destination], spec.options, env)
        if reason:
            result = SyncResult(spec.name, "", "skipped", None, error=reason)
        else:
            result = run_sync(
                spec,
                warehouse,
                destinations_by_name,
                dry_run=dry_run,
                force=force,
                full_resync=full_resync,
                retry_parked=retry_parked,
                dbt_vars=dbt_vars,
                env=env,
            )
        if progress:
            progress(result.format())
        results.append(result)
    return results
