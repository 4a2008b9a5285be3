"""The activation schema: what each sync last sent, its runs, and every row outcome.

Tables (schema ``activation``, the same names and columns on DuckDB and Postgres):

- ``sync_state``: one row per (sync_name, record_key) the destination has, or was being sent.
  ``fingerprint`` and ``sent_fields`` describe the last *successful* send (null: never
  succeeded); ``status`` is ``synced``, ``failed`` or ``sending``; ``attempts`` counts the
  failures since the last success, ``refusals`` those of them in which the destination refused
  the pending change (not a lost answer, nor retries that ran out). A change refused
  ``max_row_attempts`` times in a row is parked (``parked_at``): the plan leaves it out until
  its data changes (another change starts at 0) or a run retries parked rows.
  ``inflight_*`` is the request planned to carry the row:
  written for the whole plan before the first request leaves, cleared when the request's
  outcome is recorded, so after a killed run the engine sends exactly those requests again,
  under the same ids, before anything else.
  ``change_id`` is the id the pending change (``change_fingerprint``: operation and
  fingerprint) is delivered under until it succeeds, so a receiver that already took it
  recognises it when a later run sends it again.
- ``sync_runs``: one row per run, written when it starts and completed when it ends; a run still
  ``running`` when the next one starts was killed and becomes ``interrupted``.
- ``sync_row_log``: one row per record outcome per request (succeeded or failed, with the error).
- ``sync_failed_rows``: the keys whose last attempt failed, with the error and the count of
  failed attempts; the next run retries them (its diff finds them unsent), unless ``parked``,
  and removes them from here when they succeed.

``StateStore`` holds one connection for a run. DuckDB allows one writing process per file, so a
run holds it from start to end and its requests' outcomes are written through it, one
transaction per request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from orchestration.warehouse import Warehouse

SCHEMA = "activation"

_COLUMN_TYPES = {
    "varchar": pa.string(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us"),
}

_TABLES = {
    "sync_state": """
        sync_name varchar not null,
        record_key varchar not null,
        customer_id varchar,
        status varchar not null,
        fingerprint varchar,
        sent_fields varchar,
        destination_id varchar,
        last_error varchar,
        attempts integer not null,
        refusals integer,
        parked_at timestamp,
        inflight_batch varchar,
        inflight_operation varchar,
        inflight_fingerprint varchar,
        inflight_fields varchar,
        change_id varchar,
        change_fingerprint varchar,
        first_sent_at timestamp,
        last_sent_at timestamp,
        updated_at timestamp not null,
        last_run_id varchar not null
    """,
    "sync_runs": """
        run_id varchar not null,
        sync_name varchar not null,
        audience varchar not null,
        destination varchar not null,
        mode varchar not null,
        status varchar not null,
        dry_run boolean not null,
        forced boolean not null,
        full_resync boolean,
        started_at timestamp not null,
        finished_at timestamp,
        source_rows bigint,
        planned_adds bigint,
        planned_changes bigint,
        planned_removes bigint,
        planned_resends bigint,
        records_sent bigint,
        succeeded bigint,
        failed bigint,
        requests bigint,
        retries bigint,
        rate_limited bigint,
        parked bigint,
        error varchar
    """,
    "sync_row_log": """
        run_id varchar not null,
        sync_name varchar not null,
        record_key varchar not null,
        operation varchar not null,
        status varchar not null,
        destination_id varchar,
        error varchar,
        batch_id varchar,
        logged_at timestamp not null
    """,
    "sync_failed_rows": """
        sync_name varchar not null,
        record_key varchar not null,
        operation varchar not null,
        error varchar,
        attempts integer not null,
        parked boolean,
        first_failed_at timestamp not null,
        last_failed_at timestamp not null,
        last_run_id varchar not null
    """,
}
# Columns added since the tables were first released, added to older warehouses on open.
_ADDED_COLUMNS = (
    ("sync_runs", "full_resync", "boolean"),
    ("sync_runs", "parked", "bigint"),
    ("sync_state", "refusals", "integer"),
    ("sync_state", "parked_at", "timestamp"),
    ("sync_failed_rows", "parked", "boolean"),
)
# Postgres finds a key's row by index; DuckDB's hash joins need none (and its unique indexes
# refuse a delete and re-insert of one key in a transaction).
_POSTGRES_INDEXES = (
    "create unique index if not exists sync_state_key on activation.sync_state "
    "(sync_name, record_key)",
    "create unique index if not exists sync_failed_rows_key on activation.sync_failed_rows "
    "(sync_name, record_key)",
    "create index if not exists sync_row_log_run on activation.sync_row_log (run_id)",
)


def utc_now() -> datetime:
    """Now as a naive UTC timestamp, how every activation table stores time."""
    return datetime.now(UTC).replace(tzinfo=None)


class StateStore:
    """One open warehouse connection with the helpers the engine needs; thread-safe by a lock."""

    def __init__(self, con: Any, is_duckdb: bool) -> None:
        self.con = con
        self.is_duckdb = is_duckdb
        self.lock = threading.RLock()
        self._registered: list[str] = []

    @classmethod
    @contextmanager
    def open(cls, warehouse: Warehouse) -> Iterator[StateStore]:
        if warehouse.duckdb_path is not None:
            with warehouse.duckdb_connection() as con:
                yield cls(con, is_duckdb=True)
            return
        with warehouse.postgres_connection() as con:
            con.autocommit = True
            yield cls(con, is_duckdb=False)

    def _sql(self, sql: str) -> str:
        return sql if self.is_duckdb else sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.lock:
            self.con.execute(self._sql(sql), list(params) if params else None)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            cursor = self.con.execute(self._sql(sql), list(params) if params else None)
            return cursor.fetchall()

    def iterate(
        self, sql: str, params: Sequence[Any] = (), size: int = 50_000
    ) -> Iterator[tuple[Any, ...]]:
        """A query's rows, fetched ``size`` at a time, so a big result is never all in memory."""
        with self.lock:
            cursor = self.con.execute(self._sql(sql), list(params) if params else None)
            while rows := cursor.fetchmany(size):
                yield from rows

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            if self.is_duckdb:
                self.con.execute("begin transaction")
                try:
                    yield
                except BaseException:
                    self.con.execute("rollback")
                    raise
                else:
                    self.con.execute("commit")
                finally:
                    for name in self._registered:
                        self.con.unregister(name)
                    self._registered.clear()
                return
            with self.con.transaction():
                yield

    def load(self, name: str, columns: Sequence[tuple[str, str]], rows: Sequence[tuple]) -> None:
        """Make ``rows`` queryable as table ``name`` until the current transaction ends."""
        if self.is_duckdb:
            arrays = {
                column: pa.array([row[i] for row in rows], type=_COLUMN_TYPES[kind])
                for i, (column, kind) in enumerate(columns)
            }
            self.con.register(name, pa.table(arrays))
            self._registered.append(name)
            return
        ddl = ", ".join(f"{column} {kind}" for column, kind in columns)
        self.con.execute(f"create temporary table {name} ({ddl}) on commit drop")
        with self.con.cursor() as cursor, cursor.copy(f"copy {name} from stdin") as copy:
            for row in rows:
                copy.write_row(row)

    def ensure_tables(self) -> None:
        with self.transaction():
            self.con.execute(f"create schema if not exists {SCHEMA}")
            for table, columns in _TABLES.items():
                self.con.execute(f"create table if not exists {SCHEMA}.{table} ({columns})")
            for table, column, kind in _ADDED_COLUMNS:
                self.con.execute(
                    f"alter table {SCHEMA}.{table} add column if not exists {column} {kind}"
                )
            if not self.is_duckdb:
                for statement in _POSTGRES_INDEXES:
                    self.con.execute(statement)

    def relation_exists(self, schema: str, table: str) -> bool:
        rows = self.fetch(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        )
        return rows[0][0] > 0

    def columns(self, schema: str, table: str) -> list[str]:
        rows = self.fetch(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        )
        return [row[0] for row in rows]


_INFLIGHT_COLUMNS = (
    ("record_key", "varchar"),
    ("customer_id", "varchar"),
    ("operation", "varchar"),
    ("fingerprint", "varchar"),
    ("fields", "varchar"),
    ("change_id", "varchar"),
    ("batch_id", "varchar"),
)
_OUTCOME_COLUMNS = (
    ("record_key", "varchar"),
    ("operation", "varchar"),
    ("status", "varchar"),
    ("destination_id", "varchar"),
    ("error", "varchar"),
    ("refused", "boolean"),
)


def mark_inflight(
    store: StateStore,
    sync_name: str,
    run_id: str,
    rows: Sequence[tuple[str, str | None, str, str | None, str, str, str]],
) -> None:
    """Record which request will carry each row, before any of them leaves.

    Each row is (record_key, customer_id, operation, fingerprint, fields as JSON, change id,
    request id); keys new to the sync get a ``sending`` state row.
    """
    now = utc_now()
    with store.transaction():
        store.load("inflight_rows", _INFLIGHT_COLUMNS, rows)
        store.execute(
            """
            update activation.sync_state as state
            set inflight_batch = incoming.batch_id,
                inflight_operation = incoming.operation,
                inflight_fingerprint = incoming.fingerprint,
                inflight_fields = incoming.fields,
                change_id = incoming.change_id,
                change_fingerprint =
                    incoming.operation || ':' || coalesce(incoming.fingerprint, ''),
                -- Refusals count for one change; a parked row planned again is being retried.
                refusals = case
                    when state.change_fingerprint
                        = incoming.operation || ':' || coalesce(incoming.fingerprint, '')
                    then state.refusals
                    else 0
                end,
                parked_at = null,
                customer_id = coalesce(incoming.customer_id, state.customer_id),
                updated_at = ?,
                last_run_id = ?
            from inflight_rows as incoming
            where state.sync_name = ? and state.record_key = incoming.record_key
            """,
            [now, run_id, sync_name],
        )
        store.execute(
            """
            insert into activation.sync_state (
                sync_name, record_key, customer_id, status, attempts, refusals, inflight_batch,
                inflight_operation, inflight_fingerprint, inflight_fields, change_id,
                change_fingerprint, updated_at, last_run_id
            )
            select ?, incoming.record_key, incoming.customer_id, 'sending', 0, 0,
                incoming.batch_id,
                incoming.operation, incoming.fingerprint, incoming.fields, incoming.change_id,
                incoming.operation || ':' || coalesce(incoming.fingerprint, ''), ?, ?
            from inflight_rows as incoming
            where not exists (
                select 1 from activation.sync_state as state
                where state.sync_name = ? and state.record_key = incoming.record_key
            )
            """,
            [sync_name, now, run_id, sync_name],
        )


def record_outcomes(
    store: StateStore,
    sync_name: str,
    run_id: str,
    batch_id: str | None,
    rows: Sequence[tuple[str, str, str, str | None, str | None, bool]],
    failed_rows_held: bool = True,
    max_refusals: int | None = None,
) -> None:
    """Record one request's outcomes in one transaction: the row log, the state, failed rows.

    Each row is (record_key, operation, 'succeeded' | 'failed', destination_id, error,
    refused). A successful remove deletes the key's state; a successful add or change makes the
    in-flight fields the sent ones; a failure keeps what was last sent and counts the attempt,
    and a refusal that is the key's ``max_refusals``-th in a row parks it (None: never).
    ``failed_rows_held=False`` (the sync has no failed rows) skips clearing them.
    """
    failed = any(row[2] == "failed" for row in rows)
    removed = any(row[2] == "succeeded" and row[1] == "remove" for row in rows)
    sent = any(row[2] == "succeeded" and row[1] != "remove" for row in rows)
    now = utc_now()
    with store.transaction():
        store.load("outcome_rows", _OUTCOME_COLUMNS, rows)
        store.execute(
            """
            insert into activation.sync_row_log (
                run_id, sync_name, record_key, operation, status, destination_id, error,
                batch_id, logged_at
            )
            select ?, ?, record_key, operation, status, destination_id, error, ?, ?
            from outcome_rows
            """,
            [run_id, sync_name, batch_id, now],
        )
        if sent:
            _record_sent(store, sync_name, run_id, now)
        if removed:
            store.execute(
                """
                delete from activation.sync_state
                where sync_name = ? and record_key in (
                    select record_key from outcome_rows
                    where status = 'succeeded' and operation = 'remove'
                )
                """,
                [sync_name],
            )
        if failed:
            _record_failed(store, sync_name, run_id, now, max_refusals)
        if failed_rows_held and (sent or removed):
            store.execute(
                """
                delete from activation.sync_failed_rows
                where sync_name = ? and record_key in (
                    select record_key from outcome_rows where status = 'succeeded'
                )
                """,
                [sync_name],
            )


def _record_sent(store: StateStore, sync_name: str, run_id: str, now: datetime) -> None:
    store.execute(
        """
        update activation.sync_state as state
        set status = 'synced',
            fingerprint = state.inflight_fingerprint,
            sent_fields = state.inflight_fields,
            destination_id = coalesce(outcome.destination_id, state.destination_id),
            last_error = null,
            attempts = 0,
            refusals = 0,
            parked_at = null,
            inflight_batch = null,
            inflight_operation = null,
            inflight_fingerprint = null,
            inflight_fields = null,
            change_id = null,
            change_fingerprint = null,
            first_sent_at = coalesce(state.first_sent_at, ?),
            last_sent_at = ?,
            updated_at = ?,
            last_run_id = ?
        from outcome_rows as outcome
        where state.sync_name = ? and state.record_key = outcome.record_key
            and outcome.status = 'succeeded' and outcome.operation <> 'remove'
        """,
        [now, now, now, run_id, sync_name],
    )


def _record_failed(
    store: StateStore, sync_name: str, run_id: str, now: datetime, max_refusals: int | None
) -> None:
    store.execute(
        """
        update activation.sync_state as state
        set status = 'failed',
            last_error = outcome.error,
            attempts = state.attempts + 1,
            refusals = coalesce(state.refusals, 0) + case when outcome.refused then 1 else 0 end,
            parked_at = case
                when outcome.refused and coalesce(state.refusals, 0) + 1 >= ? then ?
                else state.parked_at
            end,
            inflight_batch = null,
            inflight_operation = null,
            inflight_fingerprint = null,
            inflight_fields = null,
            updated_at = ?,
            last_run_id = ?
        from outcome_rows as outcome
        where state.sync_name = ? and state.record_key = outcome.record_key
            and outcome.status = 'failed'
        """,
        [max_refusals if max_refusals is not None else 2**31 - 1, now, now, run_id, sync_name],
    )
    _refresh_failed_rows(store, sync_name, run_id, now)


def _refresh_failed_rows(store: StateStore, sync_name: str, run_id: str, now: datetime) -> None:
    store.execute(
        """
        insert into activation.sync_failed_rows (
            sync_name, record_key, operation, error, attempts, first_failed_at,
            last_failed_at, last_run_id
        )
        select ?, outcome.record_key, outcome.operation, outcome.error, 0, ?, ?, ?
        from outcome_rows as outcome
        where outcome.status = 'failed' and not exists (
            select 1 from activation.sync_failed_rows as failed
            where failed.sync_name = ? and failed.record_key = outcome.record_key
        )
        """,
        [sync_name, now, now, run_id, sync_name],
    )
    store.execute(
        """
        update activation.sync_failed_rows as failed
        set operation = outcome.operation,
            error = outcome.error,
            attempts = failed.attempts + 1,
            last_failed_at = ?,
            last_run_id = ?
        from outcome_rows as outcome
        where failed.sync_name = ? and failed.record_key = outcome.record_key
            and outcome.status = 'failed'
        """,
        [now, run_id, sync_name],
    )
    store.execute(
        """
        update activation.sync_failed_rows as failed
        set parked = state.parked_at is not null
        from activation.sync_state as state
        where failed.sync_name = ? and state.sync_name = failed.sync_name
            and state.record_key = failed.record_key
            and failed.record_key in (select record_key from outcome_rows where status = 'failed')
        """,
        [sync_name],
    )


def forget(
    store: StateStore, sync_name: str, keys: Sequence[str], removed_in_run: str | None = None
) -> None:
    """Drop state (and failed rows) of keys the destination no longer holds for this sync.

    Without ``removed_in_run``: keys it never received and no longer needs. With it: keys that
    left the destination in that run without a request of their own (a replace of its whole
    membership dropped them), each logged in ``sync_row_log`` as a succeeded remove with no
    batch.
    """
    if not keys:
        return
    with store.transaction():
        store.load("forgotten_rows", (("record_key", "varchar"),), [(key,) for key in keys])
        if removed_in_run is not None:
            store.execute(
                """
                insert into activation.sync_row_log (
                    run_id, sync_name, record_key, operation, status, destination_id, error,
                    batch_id, logged_at
                )
                select ?, ?, record_key, 'remove', 'succeeded', null, null, null, ?
                from forgotten_rows
                """,
                [removed_in_run, sync_name, utc_now()],
            )
        for table in ("sync_state", "sync_failed_rows"):
            store.execute(
                f"delete from activation.{table} where sync_name = ? "
                "and record_key in (select record_key from forgotten_rows)",
                [sync_name],
            )


def settle(store: StateStore, sync_name: str, keys: Sequence[str]) -> None:
    """Clear the failure of keys whose destination record already matches what is wanted."""
    if not keys:
        return
    with store.transaction():
        store.load("settled_rows", (("record_key", "varchar"),), [(key,) for key in keys])
        store.execute(
            """
            update activation.sync_state
            set status = 'synced', last_error = null, attempts = 0, refusals = 0,
                parked_at = null, change_id = null, change_fingerprint = null
            where sync_name = ? and record_key in (select record_key from settled_rows)
            """,
            [sync_name],
        )
        store.execute(
            "delete from activation.sync_failed_rows where sync_name = ? "
            "and record_key in (select record_key from settled_rows)",
            [sync_name],
        )


def parked_in_run(store: StateStore, sync_name: str, run_id: str) -> int:
    """Keys of the sync that the run parked (refused once too often)."""
    return store.fetch(
        "select count(*) from activation.sync_state "
        "where sync_name = ? and last_run_id = ? and status = 'failed' and parked_at is not null",
        [sync_name, run_id],
    )[0][0]
