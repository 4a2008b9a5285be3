"""The activation schema: what each sync last sent, its runs, and every row outcome; and
``StateStore``, the connection a run reads and writes them through.

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
- ``sync_platform_reports``: one row per run (``run_id``, ``sync_name``) of a destination that
  reports figures about what it received, written with the run's completion: ``received`` and
  ``invalid`` rows or members as the platform counts them (Meta: ``num_received`` and
  ``num_invalid_entries`` summed over the run's upload sessions), ``match_rate_low`` and
  ``match_rate_high`` the match-rate range it reports as fractions (Google: the
  ``uploadMatchRateRange`` of the run's last ingest request, asked once when the run ends),
  ``detail`` its own words for them; null where the platform reports nothing. No row when the
  platform could not be asked or reported nothing.

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
    "sync_platform_reports": """
        run_id varchar not null,
        sync_name varchar not null,
        destination varchar not null,
        reported_at timestamp not null,
        received bigint,
        invalid bigint,
        match_rate_low double precision,
        match_rate_high double precision,
        detail varchar
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
