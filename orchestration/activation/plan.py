"""The plan of one run: the audience diffed in SQL against what the destination was last sent.

``plan_sql`` finds every key needing an action: adds, changes (a different fingerprint of the
mapped columns), removes (members who left, when the sync removes), erasures (every key of a
customer in ``marts.customer_erasures``, whatever the mode) and rows whose earlier send failed,
which the diff finds unsent again. A customer without the consent the destination's purpose
needs (column ``has_consent_<purpose>``) counts as not in the audience. Rows a stopped run left
in flight are not diffed: they are resent as they were. Rows the destination refused too often
are parked (``activation.sync_state.parked_at``) and left out until their data changes or a run
asks to retry them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestration.activation.config import AUDIENCE_SCHEMA, SyncSpec
from orchestration.activation.destination import Destination, Record
from orchestration.activation.hashing import hash_identifier
from orchestration.activation.personal import PersonalData
from orchestration.activation.serialisation import json_value
from orchestration.activation.store import StateStore
from orchestration.privacy import mask
from orchestration.warehouse import quote_identifier, quote_literal

ERASURES = ("marts", "customer_erasures")
SAMPLE_SIZE = 5
# Removes go first: a destination with a size cap has room for the adds that follow.
SEND_ORDER = ("remove", "change", "add")


class SyncError(RuntimeError):
    """A sync cannot run as declared (bad audience data, unusable settings); says which."""


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
    #: Keys whose change the destination refused too often: not sent until it changes.
    parked: list[str] = field(default_factory=list)
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
        return [planned for op in SEND_ORDER for planned in by_operation[op]]

    def counts(self) -> dict[str, int]:
        """Planned actions by name; ``parked`` and ``replaced`` only when there are any."""
        counts = {
            "adds": len(self.adds),
            "changes": len(self.changes),
            "removes": len(self.removes),
            "erasures": len(self.erasures),
            "resends": self.resends,
        }
        if self.parked:
            counts["parked"] = len(self.parked)
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


def _fingerprint_sql(spec: SyncSpec) -> str:
    """md5 of every mapped (destination field, value) pair; a renamed field changes it too."""
    parts = [
        f"{quote_literal(target + '=')} || "
        f"coalesce(cast({quote_identifier(column)} as varchar), chr(30))"
        for target, column in sorted(spec.fields.items())
    ]
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


def plan_sql(
    spec: SyncSpec,
    consent_column: str | None,
    erasures: bool,
    full_resync: bool = False,
    replaces: bool = False,
    retry_parked: bool = False,
) -> str:
    """One query: every key needing an action, with the action and what to send.

    ``full_resync``: every sendable member is sent as on a first send, and members who left are
    left alone, or ``replaced`` when the destination's membership is replaced (``replaces``).
    A parked key whose wanted change is the one it was parked with gets action ``parked``,
    unless ``retry_parked``.
    """
    columns = spec.columns
    selected = ",\n        ".join(
        f"{quote_identifier(column)} as c{i}" for i, column in enumerate(columns)
    )
    eligible = f"coalesce({quote_identifier(consent_column)}, false)" if consent_column else "true"
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
    # The change a parked key was refused for is the one it would be sent now (state.py's
    # change_fingerprint: operation and fingerprint).
    parked = (
        "false"
        if retry_parked
        else "is_parked and action in ('add', 'change', 'remove', 'erase') and "
        "change_fingerprint = case when action in ('remove', 'erase') then 'remove:' "
        "else action || ':' || fingerprint end"
    )
    values = ", ".join(f"src.c{i}" for i in range(len(columns)))
    kept = ", ".join(f"c{i}" for i in range(len(columns)))
    return f"""
with source as (
    select
        cast({quote_identifier(spec.key)} as varchar) as record_key,
        cast(customer_id as varchar) as customer_id,
        {_fingerprint_sql(spec)} as fingerprint,
        {eligible} as is_eligible,
        {selected}
    from {AUDIENCE_SCHEMA}.{quote_identifier(spec.audience)}
),

held as (
    select
        record_key, customer_id, status, fingerprint, sent_fields, inflight_batch, change_id,
        change_fingerprint, parked_at is not null as is_parked
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
        coalesce(held.is_parked, false) as is_parked,
        {values}
    from source as src
    full outer join held on src.record_key = held.record_key
    left join erased on coalesce(src.customer_id, held.customer_id) = erased.customer_id
),

final as (
    select
        record_key,
        customer_id,
        case when {parked} then 'parked' else action end as action,
        fingerprint,
        sent_fields,
        change_id,
        change_fingerprint,
        {kept}
    from compared
    where action is not null
)

select * from final order by record_key
"""


def _counts_sql(spec: SyncSpec, consent_column: str | None) -> str:
    key = quote_identifier(spec.key)
    eligible = f"coalesce({quote_identifier(consent_column)}, false)" if consent_column else "true"
    return f"""
select
    count(*),
    count({key}),
    count(distinct {key}),
    coalesce(sum(case when {eligible} then 1 else 0 end), 0),
    (select count(*) from activation.sync_state where sync_name = ? and fingerprint is not null)
from {AUDIENCE_SCHEMA}.{quote_identifier(spec.audience)}
"""


def make_plan(
    store: StateStore,
    spec: SyncSpec,
    destination: type[Destination],
    full_resync: bool = False,
    retry_parked: bool = False,
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
            f"select cast({quote_identifier(spec.key)} as varchar) from {AUDIENCE_SCHEMA}."
            f"{quote_identifier(spec.audience)} group by 1 having count(*) > 1 limit 1"
        )[0][0]
        shown = mask(example) if personal.key else example
        raise SyncError(
            f"sync {spec.name}: key {spec.key} is not unique in {spec.audience} "
            f"({keys - distinct:,} repeated values, e.g. {shown!r})"
        )
    erasures = store.relation_exists(*ERASURES)
    sql = plan_sql(
        spec,
        consent_column,
        erasures,
        full_resync,
        destination.replaces_on_full_resync,
        retry_parked,
    )
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
    # Actions that send nothing: the keys are kept for the run to act on in the state.
    set_aside = {
        "forget": plan.forgotten,
        "settle": plan.settled,
        "replaced": plan.replaced,
        "parked": plan.parked,
    }
    for row in result:
        record_key, customer_id, action, fingerprint, sent_fields = row[:5]
        change_id, change_fingerprint = row[5:7]
        values = row[7:]
        if action in set_aside:
            set_aside[action].append(record_key)
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
