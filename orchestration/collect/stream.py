"""``tessera stream``: event triggers evaluated as calls land, members sent within a minute.

Two files in the stream folder (``TESSERA_STREAM_DIR``, default ``.tessera/stream``) keep the
worker off the warehouse, which the batch build writes:

- ``snapshot.duckdb``: what the worker knows of customers, written by ``write_snapshot`` at the
  end of each batch build (a new file renamed over the old one, so the worker never sees half of
  one and never blocks the build): every identifier of the customers of the triggers' audiences,
  and each audience table.
- ``worker.duckdb``: the worker's own state: how far it read each landing segment, the links
  between anonymous ids and users it saw in calls since the snapshot, the absence rules waiting
  (``pending``), the members fired (schema ``audiences``, one table per trigger) and the sync
  state of the engine (schema ``activation``), so every member goes through the same diff,
  delivery ids, retries, consent and row log as a batch sync.

Each tick reads the calls landed since the last one, resolves each call's customer through its
own identifiers (``userId``, ``anonymousId``, an email in its traits, the device id) in the
snapshot, directly or through a link seen earlier in the stream, and:

- a trigger's event, for a customer of its audience passing ``where``: fires at once, or with an
  absence rule starts a wait until ``receivedAt`` + N minutes;
- an absence rule's event cancels that customer's waits that started before it;
- a wait that reaches its end fires, ``triggered_at`` the moment the rule became true.

Then each trigger with new members runs its sync. ``status.json`` says what the last tick did and
how far behind the landing folder it is; Dagster reads it (orchestration/collect/assets.py).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from orchestration.activation.config import AUDIENCE_SCHEMA
from orchestration.activation.destination import Destination
from orchestration.activation.engine import SyncResult, run_sync
from orchestration.activation.settings import not_configured
from orchestration.collect.landing import list_segments, read_segment
from orchestration.collect.triggers import EVENT_PREFIX, TriggerSpec
from orchestration.collect.warehouse_schema import text_value
from orchestration.warehouse import Warehouse, quote_identifier

STREAM_ENV = "TESSERA_STREAM_DIR"
DEFAULT_STREAM = Path(".tessera") / "stream"
SNAPSHOT_FILE = "snapshot.duckdb"
WORKER_FILE = "worker.duckdb"
STATUS_FILE = "status.json"
#: Landed bytes one tick reads at most (whole segments, so up to one segment more): a worker
#: started on a backlog catches up over several ticks in bounded memory.
MAX_TICK_BYTES = 32 * 1024 * 1024
#: The identifier types a call can carry, in the order they decide its customer.
CALL_IDENTIFIERS = ("user_id", "email", "anonymous_id", "device_id")


def stream_folder(env: Mapping[str, str], given: str | None = None) -> Path:
    """The stream folder: ``given``, else ``TESSERA_STREAM_DIR``, else ``.tessera/stream``."""
    return Path(given or env.get(STREAM_ENV) or DEFAULT_STREAM)


def write_snapshot(warehouse: Warehouse, audiences: Iterable[str], folder: Path) -> dict[str, int]:
    """Write ``folder``/snapshot.duckdb from the warehouse: the audiences' tables and the
    identifiers of their customers; return the rows written per table."""
    import duckdb

    audiences = sorted(set(audiences))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SNAPSHOT_FILE
    partial = folder / f"{SNAPSHOT_FILE}.{os.getpid()}.tmp"
    partial.unlink(missing_ok=True)
    members = (
        " union ".join(
            f"select customer_id from {AUDIENCE_SCHEMA}.{quote_identifier(a)}" for a in audiences
        )
        or "select cast(null as varchar) as customer_id where false"
    )
    identifiers_sql = (
        "select identifier_type, identifier_value, customer_id from marts.customer_identities "
        f"where customer_id in ({members})"
    )
    counts: dict[str, int] = {}
    if warehouse.duckdb_path is not None:
        with warehouse.duckdb_connection() as con:
            con.execute(f"attach '{partial}' as snapshot")
            try:
                con.execute(f"create table snapshot.identifiers as {identifiers_sql}")
                for audience in audiences:
                    con.execute(
                        f"create table snapshot.{quote_identifier(audience)} as "
                        f"select * from {AUDIENCE_SCHEMA}.{quote_identifier(audience)}"
                    )
                for table in ["identifiers", *audiences]:
                    counts[table] = con.execute(
                        f"select count(*) from snapshot.{quote_identifier(table)}"
                    ).fetchone()[0]
            finally:
                con.execute("detach snapshot")
    else:
        con = duckdb.connect(str(partial))
        try:
            for table, sql in [
                ("identifiers", identifiers_sql),
                *[(a, f"select * from {AUDIENCE_SCHEMA}.{quote_identifier(a)}") for a in audiences],
            ]:
                with warehouse.postgres_connection() as pg, pg.cursor() as cur:
                    cur.execute(sql)
                    names = [column.name for column in cur.description]
                    rows = cur.fetchall()
                frame = pa.table({n: [row[i] for row in rows] for i, n in enumerate(names)})
                con.register("incoming", frame)
                con.execute(f"create table {quote_identifier(table)} as select * from incoming")
                con.unregister("incoming")
                counts[table] = len(rows)
        finally:
            con.close()
    os.replace(partial, target)
    return counts


def normalize_email(value: Any) -> str | None:
    """An email as identity stores it: trimmed and lowercased (macros/normalize)."""
    return value.strip().lower() or None if isinstance(value, str) else None


def call_identifiers(record: Mapping[str, Any]) -> dict[str, str]:
    """The identifiers a call carries, by type, normalised as identity normalises them."""
    found: dict[str, str] = {}
    for key, kind in (("userId", "user_id"), ("anonymousId", "anonymous_id")):
        value = text_value(record.get(key))
        if value and value.strip():
            found[kind] = value.strip()
    for holder in (record.get("traits"), (record.get("context") or {}).get("traits")):
        if isinstance(holder, dict) and (email := normalize_email(holder.get("email"))):
            found["email"] = email
            break
    device = ((record.get("context") or {}).get("device") or {}).get("id")
    if isinstance(device, str) and device.strip():
        found["device_id"] = device.strip()
    return found


@dataclass
class TickReport:
    """What one tick did."""

    calls: int = 0
    resolved: int = 0
    started: dict[str, int] = field(default_factory=dict)
    cancelled: dict[str, int] = field(default_factory=dict)
    fired: dict[str, int] = field(default_factory=dict)
    syncs: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    lag_bytes: int = 0
    seconds: float = 0.0
    waiting_for_snapshot: bool = False


@dataclass
class _Call:
    message_id: str
    event: str
    received_at: datetime
    identifiers: dict[str, str]
    properties: dict[str, Any]
    customer_id: str | None = None


class StreamWorker:
    """Evaluates ``triggers`` against the calls of ``landing``; see the module's docstring."""

    def __init__(
        self,
        landing: Path,
        folder: Path,
        triggers: Sequence[TriggerSpec],
        registry: Mapping[str, type[Destination]],
        env: Mapping[str, str] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        dbt_vars: Mapping[str, Any] | None = None,
    ) -> None:
        self.landing = landing
        self.folder = folder
        self.triggers = list(triggers)
        self.registry = registry
        self.env = os.environ if env is None else env
        self.now = now
        self.dbt_vars = dict(dbt_vars or {})
        self.state = Warehouse(target="local", duckdb_path=folder / WORKER_FILE)
        # Triggers whose last send did not finish: the next tick sends again. On start, every
        # trigger with members stored (a worker stopped mid-send leaves some unsent).
        self._unsent: dict[str, bool] | None = None
        self._said_waiting = False
        self._events = {t.event for t in self.triggers} | {
            t.absent_event for t in self.triggers if t.absent_event
        }
        folder.mkdir(parents=True, exist_ok=True)

    def _ensure_state(self, con: Any) -> None:
        con.execute("create schema if not exists stream")
        con.execute(f"create schema if not exists {AUDIENCE_SCHEMA}")
        con.execute(
            "create table if not exists stream.offsets (segment varchar primary key, "
            "loaded_bytes bigint not null)"
        )
        con.execute(
            "create table if not exists stream.links (anonymous_id varchar, "
            "identifier_type varchar, identifier_value varchar, seen_at timestamptz, "
            "primary key (anonymous_id, identifier_type, identifier_value))"
        )
        con.execute(
            "create table if not exists stream.pending (trigger_name varchar, "
            "trigger_id varchar, customer_id varchar, started_at timestamptz, "
            "due_at timestamptz, properties varchar, status varchar, "
            "primary key (trigger_name, trigger_id))"
        )

    def _read_calls(self, con: Any) -> tuple[list[dict[str, Any]], dict[str, int], int]:
        offsets = dict(con.execute("select segment, loaded_bytes from stream.offsets").fetchall())
        records: list[dict[str, Any]] = []
        moved: dict[str, int] = {}
        lag = 0
        taken = 0
        for segment in list_segments(self.landing):
            start = offsets.get(segment.name, 0)
            try:
                size = segment.path.stat().st_size
                # Past the cap, a backlog waits for the next tick; it still counts as lag.
                read = read_segment(segment, start) if taken < MAX_TICK_BYTES else None
            except FileNotFoundError:
                continue  # sealed while listed: the next tick reads it under its new name
            end = start
            if read is not None and read.end != start:
                end = moved[segment.name] = read.end
                taken += read.end - start
                records += [orjson.loads(line) for line in read.lines]
            lag += max(0, size - end)
        return records, moved, lag

    def tick(self) -> TickReport:
        """Read what landed, fire what is due, send; see the module's docstring."""
        started_at = time.perf_counter()
        report = TickReport()
        snapshot = self.folder / SNAPSHOT_FILE
        if not snapshot.exists():
            # Nothing can be resolved yet: leave the calls landed until a build writes one.
            report.waiting_for_snapshot = True
            self._write_status(report)
            return report
        with self.state.duckdb_connection() as con:
            self._ensure_state(con)
            if self._unsent is None:
                stored = con.execute(
                    "select table_name from information_schema.tables where table_schema = ?",
                    [AUDIENCE_SCHEMA],
                ).fetchall()
                self._unsent = {name: True for (name,) in stored}
            records, moved, report.lag_bytes = self._read_calls(con)
            report.calls = len(records)
            con.execute(f"attach '{snapshot}' as snapshot (read_only)")
            try:
                con.execute("begin transaction")
                try:
                    self._apply(con, records, moved, report)
                except BaseException:
                    con.execute("rollback")
                    raise
                con.execute("commit")
            finally:
                con.execute("detach snapshot")
        for trigger in self.triggers:
            assert self._unsent is not None
            if report.fired.get(trigger.name) or self._unsent.pop(trigger.name, False):
                destination = self.registry[trigger.sync.destination]
                reason = not_configured(destination, trigger.sync.options, self.env)
                if reason:
                    # Kept in audiences.<trigger>: sent once the destination is set up.
                    report.syncs[trigger.name] = f"skipped: {reason}"
                    continue
                try:
                    result = self._send(trigger)
                except Exception as exc:
                    report.syncs[trigger.name] = "failed"
                    report.errors[trigger.name] = f"{type(exc).__name__}: {exc}"
                    self._unsent[trigger.name] = True
                    continue
                report.syncs[trigger.name] = result.status
                if result.error:
                    report.errors[trigger.name] = result.error
                if result.status not in ("succeeded", "skipped"):
                    # Failed or partial: the engine resends what is left on the next run.
                    self._unsent[trigger.name] = True
        report.seconds = round(time.perf_counter() - started_at, 3)
        self._write_status(report)
        return report

    def _apply(
        self,
        con: Any,
        records: list[dict[str, Any]],
        moved: Mapping[str, int],
        report: TickReport,
    ) -> None:
        """One transaction: links learnt, waits started, cancelled and fired, members stored
        and the read offsets moved on, together or not at all."""
        self._record_links(con, records)
        calls = self._trigger_calls(records)
        self._resolve(con, calls)
        report.resolved = sum(1 for call in calls if call.customer_id)
        for trigger in self.triggers:
            self._evaluate(con, trigger, calls, report)
        for name, end in moved.items():
            con.execute("insert or replace into stream.offsets values (?, ?)", [name, end])

    def _record_links(self, con: Any, records: list[dict[str, Any]]) -> None:
        rows = []
        for record in records:
            identifiers = call_identifiers(record)
            anonymous = identifiers.pop("anonymous_id", None)
            if anonymous is None:
                continue
            rows += [(anonymous, kind, value) for kind, value in identifiers.items()]
        if rows:
            seen = self.now()
            con.executemany(
                "insert or ignore into stream.links values (?, ?, ?, ?)",
                [(*row, seen) for row in dict.fromkeys(rows)],
            )

    def _trigger_calls(self, records: list[dict[str, Any]]) -> list[_Call]:
        calls = []
        for record in records:
            if record.get("type") != "track" or record.get("event") not in self._events:
                continue
            properties = record.get("properties")
            calls.append(
                _Call(
                    message_id=record["messageId"],
                    event=record["event"],
                    received_at=datetime.fromisoformat(record["receivedAt"]),
                    identifiers=call_identifiers(record),
                    properties=properties if isinstance(properties, dict) else {},
                )
            )
        return calls

    def _resolve(self, con: Any, calls: list[_Call]) -> None:
        """Each call's customer: by its own identifiers in the snapshot, in CALL_IDENTIFIERS
        order, else through the identifiers its anonymous id was seen with."""
        if not calls:
            return
        wanted = []
        for index, call in enumerate(calls):
            for rank, kind in enumerate(CALL_IDENTIFIERS):
                if kind in call.identifiers:
                    wanted.append((index, rank, kind, call.identifiers[kind]))
        if not wanted:
            return
        table = pa.table(
            {
                "call_index": [w[0] for w in wanted],
                "rank": [w[1] for w in wanted],
                "identifier_type": [w[2] for w in wanted],
                "identifier_value": [w[3] for w in wanted],
            }
        )
        con.register("call_identifiers", table)
        try:
            found = con.execute(
                """
                with direct as (
                    select calls.call_index, calls.rank, known.customer_id
                    from call_identifiers as calls
                    inner join snapshot.identifiers as known
                        on known.identifier_type = calls.identifier_type
                        and known.identifier_value = calls.identifier_value
                ),
                linked as (
                    select calls.call_index, 10 + calls.rank as rank, known.customer_id
                    from call_identifiers as calls
                    inner join stream.links as links
                        on calls.identifier_type = 'anonymous_id'
                        and links.anonymous_id = calls.identifier_value
                    inner join snapshot.identifiers as known
                        on known.identifier_type = links.identifier_type
                        and known.identifier_value = links.identifier_value
                ),
                candidates as (select * from direct union all select * from linked)
                select call_index, arg_min(customer_id, rank) as customer_id
                from candidates
                group by call_index
                """
            ).fetchall()
        finally:
            con.unregister("call_identifiers")
        for index, customer_id in found:
            calls[index].customer_id = customer_id

    def _traits(self, con: Any, audience: str, customers: set[str]) -> dict[str, dict[str, Any]]:
        if not customers:
            return {}
        marks = ", ".join("?" for _ in customers)
        cursor = con.execute(
            f"select * from snapshot.{quote_identifier(audience)} where customer_id in ({marks})",
            sorted(customers),
        )
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return {row["customer_id"]: row for row in rows}

    def _evaluate(
        self, con: Any, trigger: TriggerSpec, calls: list[_Call], report: TickReport
    ) -> None:
        name = trigger.name
        starts = [c for c in calls if c.event == trigger.event and c.customer_id]
        members = self._traits(con, trigger.audience, {c.customer_id for c in starts})
        starts = [c for c in starts if c.customer_id in members]
        starts = [c for c in starts if trigger.matches(members[c.customer_id])]
        fired: list[tuple[_Call, datetime]] = []
        if trigger.absent_event is None:
            fired = [(c, c.received_at) for c in starts]
        else:
            wait = timedelta(minutes=trigger.absent_minutes or 0)
            for c in starts:
                con.execute(
                    "insert or ignore into stream.pending values (?, ?, ?, ?, ?, ?, 'waiting')",
                    [
                        name,
                        c.message_id,
                        c.customer_id,
                        c.received_at,
                        c.received_at + wait,
                        orjson.dumps(c.properties).decode(),
                    ],
                )
            report.started[name] = len(starts)
            cancelled = 0
            for call in calls:
                if call.event != trigger.absent_event or not call.customer_id:
                    continue
                cancelled += con.execute(
                    "update stream.pending set status = 'cancelled' "
                    "where trigger_name = ? and customer_id = ? and status = 'waiting' "
                    "and started_at <= ? and due_at >= ?",
                    [name, call.customer_id, call.received_at, call.received_at],
                ).fetchone()[0]
            report.cancelled[name] = cancelled
            due = con.execute(
                "update stream.pending set status = 'fired' "
                "where trigger_name = ? and status = 'waiting' and due_at <= ? "
                "returning trigger_id, customer_id, due_at, properties",
                [name, self.now()],
            ).fetchall()
            due_members = self._traits(con, trigger.audience, {row[1] for row in due})
            for trigger_id, customer_id, due_at, properties in due:
                if customer_id not in due_members:
                    continue  # left the audience (or was erased) since it started waiting
                call = _Call(
                    trigger_id, trigger.event, due_at, {}, orjson.loads(properties), customer_id
                )
                fired.append((call, due_at))
                members[customer_id] = due_members[customer_id]
        # A call a client sent twice fires once: members are stored by trigger_id.
        report.fired[name] = self._store_members(con, trigger, fired, members) if fired else 0

    def _store_members(
        self,
        con: Any,
        trigger: TriggerSpec,
        fired: list[tuple[_Call, datetime]],
        members: Mapping[str, Mapping[str, Any]],
    ) -> int:
        """Store the members fired whose trigger_id is new; return how many were."""
        rows = []
        seen: set[str] = set()
        for call, at in fired:
            if call.message_id in seen:
                continue
            seen.add(call.message_id)
            row = {
                "trigger_id": call.message_id,
                "triggered_at": at,
                "trigger_event": trigger.event,
                **members[call.customer_id],
            }
            for prop in trigger.event_properties:
                row[f"{EVENT_PREFIX}{prop}"] = text_value(call.properties.get(prop))
            rows.append(row)
        table = pa.Table.from_pylist(rows)
        con.register("fired_members", table)
        try:
            target = f"{AUDIENCE_SCHEMA}.{quote_identifier(trigger.name)}"
            con.execute(
                f"create table if not exists {target} as select * from fired_members limit 0"
            )
            inserted = con.execute(
                f"insert into {target} by name select * from fired_members "
                f"where trigger_id not in (select trigger_id from {target})"
            ).fetchone()[0]
        finally:
            con.unregister("fired_members")
        return int(inserted)

    def _send(self, trigger: TriggerSpec) -> SyncResult:
        return run_sync(
            trigger.sync, self.state, self.registry, dbt_vars=self.dbt_vars, env=self.env
        )

    def _write_status(self, report: TickReport) -> None:
        status = {
            "updated_at": self.now().isoformat(),
            "pid": os.getpid(),
            "snapshot_built_at": _mtime(self.folder / SNAPSHOT_FILE),
            "triggers": [t.name for t in self.triggers],
            "last_tick": asdict(report),
        }
        partial = self.folder / f"{STATUS_FILE}.tmp"
        partial.write_text(json.dumps(status, indent=2, sort_keys=True))
        os.replace(partial, self.folder / STATUS_FILE)

    def run(self, interval: float, say: Callable[[str], None], stop: Callable[[], bool]) -> None:
        """Tick every ``interval`` seconds until ``stop()``; say what each busy tick did."""
        while not stop():
            try:
                report = self.tick()
            except Exception as exc:
                # The next tick starts again from what was committed: nothing is lost.
                say(f"tick failed, retrying in {interval:g}s: {type(exc).__name__}: {exc}")
                time.sleep(interval)
                continue
            for name, error in report.errors.items():
                say(f"{name}: {error}")
            if report.waiting_for_snapshot and not self._said_waiting:
                say(f"waiting for {self.folder / SNAPSHOT_FILE}: run the batch build once")
                self._said_waiting = True
            if report.calls or any(report.fired.values()):
                fired = ", ".join(f"{k} {v}" for k, v in report.fired.items() if v) or "none"
                say(
                    f"{report.calls:,} calls, {report.resolved:,} resolved; fired: {fired}; "
                    f"in {report.seconds:.2f}s"
                )
            time.sleep(interval)


def _mtime(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
    except FileNotFoundError:
        return None
