"""The sync engine: make a destination hold what an audience holds, sending only what changed.

One run of one sync:

1. The plan: the audience table is diffed in SQL against ``activation.sync_state`` (what was
   last sent successfully): adds, changes (a different fingerprint of the mapped columns),
   removes (members who left, when the sync removes), erasures (every key of a customer in
   ``marts.customer_erasures``, whatever the mode) and rows whose earlier send failed, which the
   diff finds unsent again. A customer without the consent the destination's purpose needs
   (column ``has_consent_<purpose>``) counts as not in the audience. Rows a stopped run left in
   flight are not diffed: they are resent as they were.
2. Guards: an empty audience aborts a removing sync, and removals above var
   ``tessera_sync_max_delete_fraction`` of what the destination holds abort the run, unless
   forced. A dry run stops here and returns the plan.

   A full resync plans every sendable member as an add (as ``update`` mode's changes), whatever
   the state says was sent, and removes nobody but erased customers: the members who left stay
   in the state, and the next ordinary mirror run removes them. A mirror to a destination that
   ``replaces_on_full_resync`` (Meta's ``usersreplace``) drops them itself: the engine forgets
   them when the run has sent everything, and the delete guard counts them as removals.
3. Requests a killed run left without a recorded outcome are sent again first, with the same
   records under the same ids (``Batch.delivery_id``), so nothing is lost and an API that takes
   record ids or idempotency keys applies nothing twice.
4. Sending: batches of the destination's ``max_batch_size``, one operation each, at most
   ``max_concurrency`` in flight. Every planned batch is marked in flight in the state before
   the first one leaves, and each one's outcomes are recorded in one transaction when it ends,
   so a killed run loses nothing.
   Throttling (``RateLimited``) waits ``Retry-After`` (every sender pauses) without spending the
   retry budget; transient errors retry with exponential backoff and jitter; a rejected batch
   is halved until the bad rows are isolated; a permanent error stops the run, and everything
   unsent is sent by the next one.

Personal values (fields mapped from columns the audience model tags ``pii``, or whose names look
personal: orchestration/privacy.py) are masked in the printed plan, and masked in every error a
destination returns before the error is stored or printed (``PersonalData``).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from orchestration.activation import state as state_tables
from orchestration.activation.config import AUDIENCE_SCHEMA, SyncSpec, can_remove, option_fields
from orchestration.activation.destination import (
    Batch,
    BatchRejected,
    Destination,
    DestinationConfig,
    DestinationError,
    PermanentError,
    RateLimited,
    Record,
    RecordOutcome,
    RunContext,
    TransientError,
)
from orchestration.activation.state import StateStore, utc_now
from orchestration.privacy import mask, scrub, table_pii_columns
from orchestration.warehouse import Warehouse

MAX_DELETE_FRACTION_VAR = "tessera_sync_max_delete_fraction"
DEFAULT_MAX_DELETE_FRACTION = 0.2
ERASURES = ("marts", "customer_erasures")
SAMPLE_SIZE = 5
# Removes go first: a destination with a size cap has room for the adds that follow.
_SEND_ORDER = ("remove", "change", "add")


class SyncError(RuntimeError):
    """A sync cannot run as declared (bad audience data, unusable settings); says which."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the engine tries before a row counts as failed (and waits for the next run)."""

    #: Retries of a request after a transient error (the first attempt is not a retry).
    max_retries: int = 5
    #: Backoff before retry n is ``base_delay * 2**(n-1)``, at most ``max_delay``, of which a
    #: random half is jitter (so senders that failed together do not retry together).
    base_delay: float = 0.5
    max_delay: float = 30.0
    #: Throttling answers one request may get before its rows count as failed. They do not
    #: spend ``max_retries``: the API said when to come back.
    max_rate_limited: int = 100
    #: Wait after a throttling answer without Retry-After.
    rate_limit_delay: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return delay / 2 + delay / 2 * self.jitter()


@dataclass(frozen=True)
class PersonalData:
    """Which parts of a sync's records carry personal values in plain text: the printed plan
    masks them and the errors a run stores and prints are scrubbed of them (``privacy.mask``).

    A field is personal when its audience column is tagged ``pii`` in the audience model's YAML
    or its name looks personal (``privacy.table_pii_columns``), unless the destination receives
    it hashed. A field outside the current mapping (a remove carries what an earlier mapping
    sent) counts as personal unless hashed. The key is personal when its column is.
    """

    mapped: frozenset[str]
    personal: frozenset[str]
    hashed: frozenset[str]
    key: bool

    @classmethod
    def of(cls, spec: SyncSpec, destination: type[Destination] | None = None) -> PersonalData:
        columns = table_pii_columns(spec.audience, [spec.key, *spec.columns])
        return cls(
            mapped=frozenset(spec.fields),
            personal=frozenset(t for t, column in spec.fields.items() if column in columns),
            hashed=frozenset(destination.hashed_identifiers if destination else ()),
            key=spec.key in columns,
        )

    def is_plain(self, target: str) -> bool:
        """Whether destination field ``target`` carries a personal value in plain text."""
        return target not in self.hashed and (target in self.personal or target not in self.mapped)

    def masked(self, record: Record) -> tuple[str | None, dict[str, Any]]:
        """The record's key and fields with the plain personal values masked."""
        key = mask(record.key) if self.key else record.key
        fields = {t: mask(v) if self.is_plain(t) else v for t, v in record.fields.items()}
        return key, fields

    def scrub(self, text: str, records: Iterable[Record]) -> str:
        """``text`` with the records' plain personal values masked (an API echoing them)."""
        values = []
        for record in records:
            values += [v for t, v in record.fields.items() if self.is_plain(t)]
            if self.key:
                values.append(record.key)
        return scrub(text, values)


@dataclass
class PlannedRecord:
    record: Record
    customer_id: str | None
    fingerprint: str | None
    #: Id of this change when an earlier run already tried to deliver it (None: a new change).
    change_id: str | None = None


@dataclass
class Plan:
    """What a run will send; a dry run prints it and stops."""

    sync: SyncSpec
    source_rows: int
    consented_rows: int
    held_rows: int
    adds: list[PlannedRecord] = field(default_factory=list)
    changes: list[PlannedRecord] = field(default_factory=list)
    removes: list[PlannedRecord] = field(default_factory=list)
    erasures: list[PlannedRecord] = field(default_factory=list)
    #: Keys whose send never succeeded and that left the audience: dropped from the state.
    forgotten: list[str] = field(default_factory=list)
    #: Keys whose failed change is no longer needed: their failure is cleared.
    settled: list[str] = field(default_factory=list)
    #: Records of requests a killed run left without an outcome (sent again first).
    resends: int = 0
    #: A full resync (every member sent again).
    full_resync: bool = False
    #: Keys of members who left, dropped by a full resync that replaces the membership.
    replaced: list[str] = field(default_factory=list)
    #: What ``format`` masks (None: judged from the sync alone, every mapped field plain).
    personal: PersonalData | None = None

    @property
    def records(self) -> list[PlannedRecord]:
        by_operation = {
            "remove": self.erasures + self.removes,
            "change": self.changes,
            "add": self.adds,
        }
        return [planned for op in _SEND_ORDER for planned in by_operation[op]]

    def counts(self) -> dict[str, int]:
        counts = {
            "adds": len(self.adds),
            "changes": len(self.changes),
            "removes": len(self.removes),
            "erasures": len(self.erasures),
            "resends": self.resends,
        }
        if self.full_resync:
            counts["replaced"] = len(self.replaced)
        return counts

    def format(self) -> str:
        """Counts and up to SAMPLE_SIZE records per action; personal values masked."""
        sync = self.sync
        personal = self.personal or PersonalData.of(sync)
        lines = [
            f"sync {sync.name}: {sync.audience} -> {sync.destination} ({sync.mode}, "
            f"key {sync.key}); audience {self.source_rows:,} rows, {self.consented_rows:,} "
            f"sendable, destination holds {self.held_rows:,}",
            "  " + ", ".join(f"{name} {count:,}" for name, count in self.counts().items()),
        ]
        for name, planned in (
            ("add", self.adds),
            ("change", self.changes),
            ("remove", self.removes),
            ("erase", self.erasures),
        ):
            for item in planned[:SAMPLE_SIZE]:
                key, fields = personal.masked(item.record)
                text = json.dumps(fields, default=json_value, sort_keys=True)
                lines.append(f"  {name:<7}{key}  {text}")
        return "\n".join(lines)


@dataclass
class SyncResult:
    sync: str
    run_id: str
    status: str
    plan: Plan | None
    succeeded: int = 0
    failed: int = 0
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
        if self.status in ("aborted", "failed") and self.plan is None:
            return f"sync {self.sync}: {self.status}: {self.error}"
        counts = self.plan.counts() if self.plan else {}
        planned = ", ".join(f"{name} {count:,}" for name, count in counts.items())
        line = (
            f"sync {self.sync}: {self.status}; planned {planned}; succeeded {self.succeeded:,}, "
            f"failed {self.failed:,} in {self.requests:,} requests ({self.retries:,} retries, "
            f"{self.rate_limited:,} throttled)"
        )
        return f"{line}: {self.error}" if self.error else line


def json_value(value: Any) -> Any:
    """A warehouse value as JSON: timestamps and dates in ISO 8601, decimals as numbers."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot send a {type(value).__name__} value: {value!r}")


def dumps(fields: Mapping[str, Any]) -> str:
    return json.dumps(dict(fields), default=json_value, sort_keys=True, separators=(",", ":"))


def destination_config(
    destination: type[Destination], options: Mapping[str, Any], env: Mapping[str, str]
) -> DestinationConfig:
    """The destination's settings: its ``config_class.from_env`` when it has one, else each
    field from the sync's options or ``TESSERA_<DESTINATION>_<FIELD>``."""
    config_class = destination.config_class
    from_env = getattr(config_class, "from_env", None)
    if from_env is not None:
        return from_env(options, env)
    values: dict[str, Any] = {}
    for name in option_fields(destination):
        variable = f"TESSERA_{destination.name.upper()}_{name.upper()}"
        if name in options:
            values[name] = options[name]
        elif env.get(variable):
            values[name] = env[variable]
    try:
        return config_class(**values)
    except ValueError as exc:
        raise PermanentError(f"{destination.name} settings: {exc}") from None


def max_delete_fraction(dbt_vars: Mapping[str, Any]) -> float:
    value = dbt_vars.get(MAX_DELETE_FRACTION_VAR, DEFAULT_MAX_DELETE_FRACTION)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise SyncError(f"{MAX_DELETE_FRACTION_VAR} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fingerprint_sql(spec: SyncSpec) -> str:
    """md5 of every mapped (destination field, value) pair; a renamed field changes it too."""
    parts = [
        f"{_literal(target + '=')} || coalesce(cast({_quote(column)} as varchar), chr(30))"
        for target, column in sorted(spec.fields.items())
    ]
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


def plan_sql(
    spec: SyncSpec,
    consent_column: str | None,
    erasures: bool,
    full_resync: bool = False,
    replaces: bool = False,
) -> str:
    """One query: every key needing an action, with the action and what to send.

    ``full_resync``: every sendable member is sent as on a first send, and members who left are
    left alone, or ``replaced`` when the destination's membership is replaced (``replaces``).
    """
    columns = spec.columns
    selected = ",\n        ".join(f"{_quote(column)} as c{i}" for i, column in enumerate(columns))
    eligible = f"coalesce({_quote(consent_column)}, false)" if consent_column else "true"
    first_send = "'change'" if spec.mode == "update" else "'add'"
    change = "null" if spec.mode == "insert" else "'change'"
    # A failed change that is no longer wanted (the member left, or the value came back to
    # what the destination holds) is settled: nothing to send, no failure to keep.
    leave = "'remove'" if spec.removes else "case when held.status = 'failed' then 'settle' end"
    unsent = "held.fingerprint is null"
    if full_resync:
        unsent = "true"
        leave = "'replaced'" if replaces and spec.mode == "mirror" else "null"
    erased = (
        f"select distinct cast(customer_id as varchar) as customer_id "
        f"from {ERASURES[0]}.{ERASURES[1]}"
        if erasures
        else "select cast(null as varchar) as customer_id where false"
    )
    values = ", ".join(f"src.c{i}" for i in range(len(columns)))
    return f"""
with source as (
    select
        cast({_quote(spec.key)} as varchar) as record_key,
        cast(customer_id as varchar) as customer_id,
        {_fingerprint_sql(spec)} as fingerprint,
        {eligible} as is_eligible,
        {selected}
    from {AUDIENCE_SCHEMA}.{_quote(spec.audience)}
),

held as (
    select
        record_key, customer_id, status, fingerprint, sent_fields, inflight_batch, change_id,
        change_fingerprint
    from activation.sync_state
    where sync_name = ?
),

erased as ({erased}),

compared as (
    select
        coalesce(src.record_key, held.record_key) as record_key,
        coalesce(src.customer_id, held.customer_id) as customer_id,
        case
            when held.inflight_batch is not null then null
            when erased.customer_id is not null then
                case
                    when held.fingerprint is not null then 'erase'
                    when held.record_key is not null then 'forget'
                end
            when src.record_key is not null and src.is_eligible then
                case
                    when {unsent} then {first_send}
                    when held.fingerprint <> src.fingerprint then {change}
                    when held.status = 'failed' then 'settle'
                end
            when held.record_key is not null then
                case when held.fingerprint is null then 'forget' else {leave} end
        end as action,
        src.fingerprint,
        held.sent_fields,
        held.change_id,
        held.change_fingerprint,
        {values}
    from source as src
    full outer join held on src.record_key = held.record_key
    left join erased on coalesce(src.customer_id, held.customer_id) = erased.customer_id
)

select * from compared where action is not null order by record_key
"""


def _counts_sql(spec: SyncSpec, consent_column: str | None) -> str:
    key = _quote(spec.key)
    eligible = f"coalesce({_quote(consent_column)}, false)" if consent_column else "true"
    return f"""
select
    count(*),
    count({key}),
    count(distinct {key}),
    coalesce(sum(case when {eligible} then 1 else 0 end), 0),
    (select count(*) from activation.sync_state where sync_name = ? and fingerprint is not null)
from {AUDIENCE_SCHEMA}.{_quote(spec.audience)}
"""


def make_plan(
    store: StateStore,
    spec: SyncSpec,
    destination: type[Destination],
    full_resync: bool = False,
) -> Plan:
    """Diff the audience against the sync's state (a full resync: see plan_sql); read-only."""
    consent_column = spec.consent_column(destination)
    if not store.relation_exists(AUDIENCE_SCHEMA, spec.audience):
        raise SyncError(
            f"sync {spec.name}: audience table {AUDIENCE_SCHEMA}.{spec.audience} does not exist; "
            "build it first (tessera run)"
        )
    columns = set(store.columns(AUDIENCE_SCHEMA, spec.audience))
    needed = {spec.key, "customer_id", *spec.columns} | ({consent_column} - {None})
    missing = sorted(needed - columns)
    if missing:
        raise SyncError(
            f"sync {spec.name} ({spec.source}): {AUDIENCE_SCHEMA}.{spec.audience} has no column "
            f"{', '.join(missing)}"
        )
    personal = PersonalData.of(spec, destination)
    rows, keys, distinct, consented, held = store.fetch(
        _counts_sql(spec, consent_column), [spec.name]
    )[0]
    if keys < rows:
        raise SyncError(
            f"sync {spec.name}: {rows - keys:,} rows of {spec.audience} have no {spec.key}; "
            "every record needs a key"
        )
    if distinct < keys:
        example = store.fetch(
            f"select cast({_quote(spec.key)} as varchar) from {AUDIENCE_SCHEMA}."
            f"{_quote(spec.audience)} group by 1 having count(*) > 1 limit 1"
        )[0][0]
        shown = mask(example) if personal.key else example
        raise SyncError(
            f"sync {spec.name}: key {spec.key} is not unique in {spec.audience} "
            f"({keys - distinct:,} repeated values, e.g. {shown!r})"
        )
    erasures = store.relation_exists(*ERASURES)
    sql = plan_sql(spec, consent_column, erasures, full_resync, destination.replaces_on_full_resync)
    result = store.iterate(sql, [spec.name])
    plan = Plan(
        spec,
        source_rows=rows,
        consented_rows=int(consented),
        held_rows=held,
        full_resync=full_resync,
        personal=personal,
    )
    plan.resends = store.fetch(
        "select count(*) from activation.sync_state "
        "where sync_name = ? and inflight_batch is not null",
        [spec.name],
    )[0][0]
    targets = list(spec.fields)
    column_index = {column: i for i, column in enumerate(spec.columns)}
    hash_fields = _hasher(destination)
    for row in result:
        record_key, customer_id, action, fingerprint, sent_fields = row[:5]
        change_id, change_fingerprint = row[5:7]
        values = row[7:]
        if action == "forget":
            plan.forgotten.append(record_key)
            continue
        if action == "settle":
            plan.settled.append(record_key)
            continue
        if action == "replaced":
            plan.replaced.append(record_key)
            continue
        operation = "remove" if action in ("remove", "erase") else action
        # The same change as a failed earlier attempt keeps that attempt's id.
        same = change_fingerprint == f"{operation}:{fingerprint or ''}"
        retry_id = change_id if same else None
        if operation == "remove":
            fields = json.loads(sent_fields) if sent_fields else {}
            removal = Record(record_key, "remove", fields)
            planned = PlannedRecord(removal, customer_id, None, retry_id)
            (plan.removes if action == "remove" else plan.erasures).append(planned)
            continue
        fields = {target: values[column_index[spec.fields[target]]] for target in targets}
        record = Record(record_key, action, hash_fields(fields))
        (plan.adds if action == "add" else plan.changes).append(
            PlannedRecord(record, customer_id, fingerprint, retry_id)
        )
    return plan


def _hasher(destination: type[Destination]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Normalise and hash the destination's identifier fields (hashing.py), if it has any."""
    if not destination.normaliser or not destination.hashed_identifiers:
        return lambda fields: fields
    from orchestration.activation.hashing import hash_identifier

    normaliser = destination.normaliser
    identifiers = dict(destination.hashed_identifiers)

    def hash_fields(fields: dict[str, Any]) -> dict[str, Any]:
        for target, kind in identifiers.items():
            if target in fields:
                value = fields[target]
                fields[target] = hash_identifier(
                    kind, None if value is None else str(value), normaliser
                )
        return fields

    return hash_fields


# What the sender carries: a planned record with what its state needs.
_Item = PlannedRecord


class _Throttle:
    """A pause every sender of a run honours: a 429 to one is a 429 to all."""

    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float]) -> None:
        self._until = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)

    def wait(self) -> None:
        with self._lock:
            remaining = self._until - self._clock()
        if remaining > 0:
            self._sleep(remaining)


@dataclass
class _Stats:
    succeeded: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    records_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)


class _Sender:
    """Sends batches with retries, throttling and splitting, recording each outcome."""

    def __init__(
        self,
        destination: Destination,
        store: StateStore,
        sync_name: str,
        run_id: str,
        policy: RetryPolicy,
        personal: PersonalData,
    ) -> None:
        self.destination = destination
        self.store = store
        self.sync_name = sync_name
        self.run_id = run_id
        self.policy = policy
        self.personal = personal
        self.throttle = _Throttle(policy.sleep, policy.clock)
        self.stats = _Stats()
        self.stop = threading.Event()
        # Whether sync_failed_rows may hold rows of this sync that a success must clear.
        self.failed_rows_held = bool(
            store.fetch(
                "select count(*) from activation.sync_failed_rows where sync_name = ?",
                [sync_name],
            )[0][0]
        )

    def send(self, items: list[_Item], batch_id: str) -> None:
        if not self.stop.is_set():
            self._send(items, batch_id)

    def _send(self, items: list[_Item], batch_id: str) -> None:
        retries = throttled = 0
        while True:
            self.throttle.wait()
            batch = Batch(
                [item.record for item in items],
                batch_id=batch_id,
                change_ids={item.record.key: item.change_id for item in items if item.change_id},
            )
            self.stats.add(requests=1, records_sent=len(batch))
            try:
                result = self.destination.write(batch)
            except RateLimited as exc:
                throttled += 1
                self.stats.add(rate_limited=1)
                if throttled > self.policy.max_rate_limited:
                    self._record_failed(items, batch_id, f"still throttled after {throttled - 1}")
                    return
                delay = exc.retry_after
                self.throttle.pause(self.policy.rate_limit_delay if delay is None else delay)
                continue
            except TransientError as exc:
                retries += 1
                if retries > self.policy.max_retries:
                    self._record_failed(
                        items, batch_id, f"{exc} (after {self.policy.max_retries} retries)"
                    )
                    return
                self.stats.add(retries=1)
                self.policy.sleep(self.policy.backoff(retries))
                continue
            except BatchRejected as exc:
                if len(items) == 1:
                    self._record_failed(items, batch_id, str(exc))
                    return
                middle = len(items) // 2
                self._send(items[:middle], batch_id)
                self._send(items[middle:], batch_id)
                return
            except Exception as exc:
                # The run stops with this error (sync_runs.error, the printed result); an API
                # quoting a record in it must not put the value there. Its type stays.
                records = [item.record for item in items]
                exc.args = tuple(
                    self.personal.scrub(arg, records) if isinstance(arg, str) else arg
                    for arg in exc.args
                )
                raise
            self._record(items, batch_id, result.outcomes)
            return

    def _record_failed(self, items: list[_Item], batch_id: str | None, error: str) -> None:
        # One message for the whole request: scrubbed of every record's values.
        error = self.personal.scrub(error, [item.record for item in items])
        outcomes = [RecordOutcome(item.record.key, False, error=error) for item in items]
        self._record(items, batch_id, outcomes)

    def _record(
        self, items: list[_Item], batch_id: str | None, outcomes: Sequence[RecordOutcome]
    ) -> None:
        by_key = {outcome.key: outcome for outcome in outcomes}
        rows = []
        for item in items:
            outcome = by_key.get(item.record.key) or RecordOutcome(
                item.record.key, False, error="the destination reported no outcome for it"
            )
            status = "succeeded" if outcome.succeeded else "failed"
            error = None
            if not outcome.succeeded:
                # An API echoes the bad value ("Email 'ana@x.com' is invalid"); the logs keep
                # its mask.
                reason = outcome.error or "failed, no reason given"
                error = self.personal.scrub(reason, [item.record])
            rows.append(
                (item.record.key, item.record.operation, status, outcome.destination_id, error)
            )
        good = sum(1 for row in rows if row[2] == "succeeded")
        if good < len(rows):
            self.failed_rows_held = True
        state_tables.record_outcomes(
            self.store, self.sync_name, self.run_id, batch_id, rows, self.failed_rows_held
        )
        self.stats.add(succeeded=good, failed=len(rows) - good)


def _inflight(store: StateStore, sync_name: str) -> list[tuple[str, list[_Item]]]:
    """Requests a stopped run planned or sent with no outcome recorded.

    A customer erased since then gets a remove instead of what was planned (under a new id):
    the planned record may have arrived, and must not stay.
    """
    erased = (
        f"customer_id in (select cast(customer_id as varchar) from {'.'.join(ERASURES)})"
        if store.relation_exists(*ERASURES)
        else "false"
    )
    rows = store.fetch(
        f"""
        select inflight_batch, record_key, customer_id, inflight_operation,
            inflight_fingerprint, inflight_fields, change_id, {erased} as is_erased
        from activation.sync_state
        where sync_name = ? and inflight_batch is not null
        order by inflight_batch, record_key
        """,
        [sync_name],
    )
    # A request carries one operation, so the removes of erased customers travel apart.
    batches: dict[tuple[str, str], list[_Item]] = {}
    for batch_id, key, customer_id, operation, fingerprint, fields, change_id, is_erased in rows:
        record = Record(key, operation, json.loads(fields))
        item = _Item(record, customer_id, fingerprint, change_id)
        if is_erased and operation != "remove":
            item = _Item(Record(key, "remove", record.fields), customer_id, None, uuid.uuid4().hex)
        batches.setdefault((batch_id, item.record.operation), []).append(item)
    return [(batch_id, items) for (batch_id, _), items in batches.items()]


def _mark_planned(store: StateStore, spec: SyncSpec, run_id: str, batches) -> None:
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
    state_tables.mark_inflight(store, spec.name, run_id, rows)


def _send_all(
    sender: _Sender, batches: Sequence[tuple[str, list[_Item]]], concurrency: int
) -> None:
    """Send batches with at most ``concurrency`` in flight; the first error stops the rest."""
    if not batches:
        return
    pending: set[Future[None]] = set()
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
        for batch_id, items in batches:
            if error is not None:
                break
            if len(pending) >= concurrency:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                error = error or _first_error(done, sender)
                if error is not None:
                    break
            pending.add(pool.submit(sender.send, items, batch_id))
        done, _ = wait(pending)
        error = error or _first_error(done, sender)
    if error is not None:
        raise error


def _first_error(done: set[Future[None]], sender: _Sender) -> BaseException | None:
    for future in done:
        exc = future.exception()
        if exc is not None:
            sender.stop.set()
            return exc
    return None


def _chunks(items: Sequence[PlannedRecord], size: int) -> list[list[_Item]]:
    batches: list[list[_Item]] = []
    for operation in _SEND_ORDER:
        same = [planned for planned in items if planned.record.operation == operation]
        batches += [same[start : start + size] for start in range(0, len(same), size)]
    return batches


def _start_run(
    store: StateStore, spec: SyncSpec, run_id: str, dry_run: bool, force: bool, full_resync: bool
) -> None:
    now = utc_now()
    with store.transaction():
        # A run still marked running was killed: this run finishes its work.
        store.execute(
            "update activation.sync_runs set status = 'interrupted', finished_at = ? "
            "where sync_name = ? and status = 'running'",
            [now, spec.name],
        )
        store.execute(
            """
            insert into activation.sync_runs (
                run_id, sync_name, audience, destination, mode, status, dry_run, forced,
                full_resync, started_at
            ) values (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)
            """,
            [
                run_id,
                spec.name,
                spec.audience,
                spec.destination,
                spec.mode,
                dry_run,
                force,
                full_resync,
                now,
            ],
        )


def _finish_run(store: StateStore, result: SyncResult) -> None:
    plan = result.plan
    counts = plan.counts() if plan else {}
    store.execute(
        """
        update activation.sync_runs
        set status = ?, finished_at = ?, source_rows = ?, planned_adds = ?,
            planned_changes = ?, planned_removes = ?, planned_resends = ?, records_sent = ?,
            succeeded = ?, failed = ?, requests = ?, retries = ?, rate_limited = ?, error = ?
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
            result.error,
            result.run_id,
        ],
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


def run_sync(
    spec: SyncSpec,
    warehouse: Warehouse,
    registry: Mapping[str, type[Destination]],
    *,
    dry_run: bool = False,
    force: bool = False,
    full_resync: bool = False,
    dbt_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    policy: RetryPolicy | None = None,
    destination: Destination | None = None,
) -> SyncResult:
    """Run one sync (see the module docstring); ``destination`` overrides the registry's."""
    if destination is None and spec.destination not in registry:
        raise SyncError(
            f"sync {spec.name}: no destination named {spec.destination!r} "
            f"(destinations: {', '.join(sorted(registry))})"
        )
    destination_class = type(destination) if destination is not None else registry[spec.destination]
    limit = max_delete_fraction(dbt_vars or {})
    policy = policy or RetryPolicy()
    run_id = uuid.uuid4().hex
    with StateStore.open(warehouse) as store:
        store.ensure_tables()
        _start_run(store, spec, run_id, dry_run, force, full_resync)
        result = SyncResult(spec.name, run_id, "running", None)
        try:
            _run(
                store,
                spec,
                warehouse,
                destination_class,
                destination,
                result,
                policy,
                env,
                dry_run,
                force,
                full_resync,
                limit,
            )
        except (SyncError, DestinationError) as exc:
            result.status = "failed"
            result.error = str(exc)
            result.retryable = isinstance(exc, TransientError | RateLimited)
        except Exception as exc:
            result.status = "failed"
            result.error = f"{type(exc).__name__}: {exc}"
            _finish_run(store, result)
            raise
        except BaseException as exc:
            # Interrupted (Ctrl-C, a signal): whatever is in flight is resent by the next run.
            result.status = "interrupted"
            result.error = f"{type(exc).__name__}: {exc}"
            _finish_run(store, result)
            raise
        _finish_run(store, result)
    return result


def _run(
    store: StateStore,
    spec: SyncSpec,
    warehouse: Warehouse,
    destination_class: type[Destination],
    destination: Destination | None,
    result: SyncResult,
    policy: RetryPolicy,
    env: Mapping[str, str] | None,
    dry_run: bool,
    force: bool,
    full_resync: bool,
    limit: float,
) -> None:
    if dry_run:
        result.plan = make_plan(store, spec, destination_class, full_resync)
        result.status = "dry_run"
        return
    if destination is None:
        config = destination_config(
            destination_class, spec.options, os.environ if env is None else env
        )
        destination = destination_class(config)
    destination.check_connection()
    personal = PersonalData.of(spec, destination_class)
    sender = _Sender(destination, store, spec.name, result.run_id, policy, personal)
    context = RunContext(
        spec.name,
        result.run_id,
        spec.mode,  # type: ignore[arg-type]
        total_records=0,
        extra={"key_column": spec.key, "warehouse": warehouse, "options": dict(spec.options)},
        full_resync=full_resync,
    )
    started = False
    succeeded = False
    try:
        # Planned first (rows still in flight are left out of the diff), so the guards run and
        # the destination learns the run's total before anything is sent.
        resends = _inflight(store, spec.name)
        plan = make_plan(store, spec, destination_class, full_resync)
        plan.resends = sum(len(items) for _, items in resends)
        result.plan = plan
        reason = None if force else _guard(plan, limit)
        if reason:
            result.status = "aborted"
            result.error = reason
            return
        state_tables.forget(store, spec.name, plan.forgotten)
        state_tables.settle(store, spec.name, plan.settled)
        erasures = plan.erasures
        if erasures and not can_remove(destination_class):
            sender._record_failed(
                [_Item(p.record, p.customer_id, None) for p in erasures],
                None,
                f"erased customer: {destination_class.name} cannot remove records; "
                "remove them there by hand",
            )
            undeliverable = {id(planned) for planned in erasures}
            plan_records = [p for p in plan.records if id(p) not in undeliverable]
        else:
            plan_records = plan.records
        context.total_records = plan.resends + len(plan_records)
        if context.total_records:
            destination.start(context)
            started = True
        _send_all(sender, resends, destination_class.max_concurrency)
        batches = [
            (uuid.uuid4().hex, items)
            for items in _chunks(plan_records, destination_class.max_batch_size)
        ]
        _mark_planned(store, spec, result.run_id, batches)
        _send_all(sender, batches, destination_class.max_concurrency)
        succeeded = True
        # The replace has ended with the run's last batch: the leavers are gone.
        state_tables.forget(store, spec.name, plan.replaced, removed_in_run=result.run_id)
    finally:
        if started:
            destination.finish(succeeded)
        stats = sender.stats
        result.succeeded, result.failed = stats.succeeded, stats.failed
        result.requests, result.retries = stats.requests, stats.retries
        result.rate_limited, result.records_sent = stats.rate_limited, stats.records_sent
    if result.status == "running":
        result.status = "partial" if result.failed else "succeeded"


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
    dbt_vars: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[SyncResult]:
    """Load the project's syncs, checked against the warehouse, and run the chosen ones in
    turn: those named (all if None), of the destinations listed (any if None)."""
    from orchestration.activation.config import declared_sync_names, load_syncs
    from orchestration.activation.destinations import registry
    from orchestration.dbt_project import project_dir

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
        result = run_sync(
            spec,
            warehouse,
            destinations_by_name,
            dry_run=dry_run,
            force=force,
            full_resync=full_resync,
            dbt_vars=dbt_vars,
        )
        if progress:
            progress(result.format())
        results.append(result)
    return results
