"""What the console reads, and why it never holds up a build.

DuckDB allows one writing process per file, and a process holding the file even read-only keeps a
build from opening it. So on DuckDB the console never opens the warehouse: it reads a snapshot,
``<warehouse>.console.duckdb`` next to the warehouse file, holding copies of the tables its pages
read. Each build refreshes it as its last step (asset ``console/console_snapshot``), writing a new
file and renaming it over the old one, so a console reading the old file is never disturbed and
sees the new one at its next request. ``tessera console snapshot`` refreshes it by hand between
builds.

On Postgres the console reads the live tables, signed in as a role that may only SELECT
(``TESSERA_CONSOLE_PG_USER`` / ``TESSERA_CONSOLE_PG_PASSWORD``; ``grant_statements`` creates it),
in read-only transactions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from orchestration.warehouse import (
    PostgresSettings,
    Warehouse,
    WarehouseError,
    quote_identifier,
    relation_exists,
)

#: The tables the pages read, by schema; a table the warehouse lacks is left out of the snapshot
#: (its page says so). Every table of schema ``audiences`` is copied as well.
SNAPSHOT_TABLES: Mapping[str, tuple[str, ...]] = {
    "marts": (
        "customers",
        "customer_identities",
        "customer_events",
        "orders",
        "customer_clv",
        "customer_churn_scores",
        "customer_erasures",
    ),
    "identity": (
        "identity_identifiers",
        "identity_customer_map",
        "identity_edges",
        "identity_violations",
        "identity_override_requests",
        "identity_merge_log",
        "identity_blocked_identifiers",
    ),
    "staging": ("stg_privacy__consents",),
    "activation": ("sync_runs", "sync_failed_rows", "sync_state", "sync_platform_reports"),
}
AUDIENCE_SCHEMA = "audiences"
#: Tables the pages look one customer (or identifier) up in, copied in this order: DuckDB keeps
#: each row group's min and max, so a lookup then reads one or two row groups instead of all.
#: At 1,000,000 customers a profile took 2.9 s on unordered copies and 0.4 s on these
#: (bench/console_preview.py); the copy takes about 9% longer.
SNAPSHOT_ORDER: Mapping[str, str] = {
    "marts.customers": "customer_id",
    "marts.customer_identities": "customer_id",
    "marts.customer_events": "customer_id, occurred_at",
    "marts.orders": "order_id",
    "marts.customer_clv": "customer_id",
    "marts.customer_churn_scores": "customer_id",
    "marts.customer_erasures": "customer_id",
    "identity.identity_identifiers": "identifier_value",
    "identity.identity_customer_map": "customer_id",
    "identity.identity_edges": "identifier_value_a",
    "staging.stg_privacy__consents": "subject_value",
    "audiences.audience_membership_history": "customer_id",
    "activation.sync_state": "customer_id",
}
SNAPSHOT_SUFFIX = ".console.duckdb"
CONSOLE_USER_ENV = "TESSERA_CONSOLE_PG_USER"
CONSOLE_PASSWORD_ENV = "TESSERA_CONSOLE_PG_PASSWORD"


class ConsoleDataError(RuntimeError):
    """The console has nothing to read yet, or may not read it; the message says what to do."""


def snapshot_path(warehouse: Warehouse) -> Path:
    """Where the console snapshot of a DuckDB warehouse lives: beside its file."""
    if warehouse.duckdb_path is None:
        raise WarehouseError("only a DuckDB warehouse has a console snapshot")
    path = warehouse.duckdb_path
    return path.with_name(path.stem + SNAPSHOT_SUFFIX)


def write_snapshot(warehouse: Warehouse) -> dict[str, int]:
    """Copy the console's tables from a DuckDB warehouse into a new snapshot file and swap it in.

    Returns the rows copied per ``schema.table``. Runs inside a build (the builder holds the file
    then anyway) or between builds.
    """
    target = snapshot_path(warehouse)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    partial.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    with warehouse.duckdb_connection() as con:
        present = set(
            con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = current_database()"
            ).fetchall()
        )
        wanted = [(s, t) for s, tables in SNAPSHOT_TABLES.items() for t in tables]
        wanted += sorted((s, t) for s, t in present if s == AUDIENCE_SCHEMA)
        con.execute(f"attach '{partial}' as console_snapshot")
        try:
            for schema in sorted({s for s, t in wanted if (s, t) in present}):
                con.execute(f"create schema console_snapshot.{quote_identifier(schema)}")
            for schema, table in wanted:
                if (schema, table) not in present:
                    continue
                name = f"{quote_identifier(schema)}.{quote_identifier(table)}"
                order = SNAPSHOT_ORDER.get(f"{schema}.{table}")
                con.execute(
                    f"create table console_snapshot.{name} as select * from {name}"
                    + (f" order by {order}" if order else "")
                )
                counts[f"{schema}.{table}"] = con.execute(
                    f"select count(*) from console_snapshot.{name}"
                ).fetchone()[0]
        finally:
            con.execute("detach console_snapshot")
    os.replace(partial, target)
    return counts


def grant_statements(role: str, password: str) -> list[str]:
    """SQL that creates (or updates) a Postgres login role that may only read Tessera's schemas,
    today's tables and those later builds create."""
    if not role.isidentifier() or role != role.lower():
        raise ConsoleDataError(f"{role!r} is not a lowercase SQL identifier")
    quoted = quote_identifier(role)
    literal = "'" + password.replace("'", "''") + "'"
    statements = [
        f"do $$ begin if not exists (select from pg_roles where rolname = '{role}') then "
        f"create role {quoted} login; end if; end $$",
        f"alter role {quoted} with login nosuperuser nocreatedb nocreaterole password {literal}",
        f"alter role {quoted} set default_transaction_read_only = on",
    ]
    for schema in [*SNAPSHOT_TABLES, AUDIENCE_SCHEMA]:
        name = quote_identifier(schema)
        statements += [
            f"create schema if not exists {name}",
            f"grant usage on schema {name} to {quoted}",
            f"grant select on all tables in schema {name} to {quoted}",
            f"alter default privileges in schema {name} grant select on tables to {quoted}",
        ]
    return statements


@dataclass(frozen=True)
class Source:
    """Where the console's rows come from, for the page footer."""

    description: str
    refreshed_at: datetime | None


class Reader:
    """Read-only queries for the pages, the same SQL on both adapters (``placeholder``)."""

    placeholder = "?"

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(sql, params)[1]

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts by column name."""
        names, rows = self._run(sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _run(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def relation_exists(self, schema: str, table: str) -> bool:
        return relation_exists(self, schema, table)

    def describe(self) -> str:
        return self.source().description

    def source(self) -> Source:
        raise NotImplementedError


class SnapshotReader(Reader):
    """Reads the console snapshot of a DuckDB warehouse, read-only; picks up a refreshed one."""

    placeholder = "?"

    def __init__(self, path: Path, memory_limit: str = "1GB") -> None:
        self.path = path
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int] | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise ConsoleDataError(
                f"no console snapshot at {self.path} yet: run the pipeline (`tessera run`, or "
                "the Dagster job), or `tessera console snapshot` between builds"
            ) from None
        identity = (stat.st_ino, stat.st_mtime_ns)
        with self._lock:
            if self._con is None or identity != self._identity:
                if self._con is not None:
                    self._con.close()
                self._con = duckdb.connect(
                    str(self.path),
                    read_only=True,
                    config={"memory_limit": self.memory_limit, "threads": "2"},
                )
                self._identity = identity
            return self._con

    def _run(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self._connection().cursor()
        try:
            cursor.execute(sql, list(params))
            return [d[0] for d in cursor.description or []], cursor.fetchall()
        finally:
            cursor.close()

    def source(self) -> Source:
        try:
            refreshed = datetime.fromtimestamp(self.path.stat().st_mtime, UTC).replace(tzinfo=None)
        except FileNotFoundError:
            refreshed = None
        return Source(f"snapshot {self.path.name}", refreshed)

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


class PostgresReader(Reader):
    """Reads the live Postgres warehouse as a SELECT-only role, in read-only transactions."""

    placeholder = "%s"

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings

    @contextmanager
    def _connection(self):
        try:
            con = psycopg.connect(
                self.settings.conninfo(), options="-c default_transaction_read_only=on"
            )
        except psycopg.OperationalError as exc:
            raise ConsoleDataError(
                f"the console cannot sign in to Postgres as {self.settings.user}: {exc}"
            ) from exc
        try:
            yield con
        finally:
            con.close()

    def _run(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._connection() as con, con.cursor() as cur:
            cur.execute(sql, list(params) or None)
            return [d.name for d in cur.description or []], cur.fetchall()

    def source(self) -> Source:
        pg = self.settings
        return Source(f"Postgres {pg.host}:{pg.port}/{pg.dbname} as {pg.user}", None)


def open_reader(warehouse: Warehouse, env: Mapping[str, str] | None = None) -> Reader:
    """The console's reader of ``warehouse``: its snapshot on DuckDB, the SELECT-only role on
    Postgres (``TESSERA_CONSOLE_PG_USER`` and ``TESSERA_CONSOLE_PG_PASSWORD``)."""
    env = os.environ if env is None else env
    if warehouse.duckdb_path is not None:
        return SnapshotReader(snapshot_path(warehouse))
    assert warehouse.postgres is not None
    user = env.get(CONSOLE_USER_ENV)
    if not user:
        raise ConsoleDataError(
            f"set {CONSOLE_USER_ENV} and {CONSOLE_PASSWORD_ENV}: on Postgres the console reads "
            "as a role that may only SELECT (`tessera console grant` creates one)"
        )
    settings = PostgresSettings(
        host=warehouse.postgres.host,
        port=warehouse.postgres.port,
        user=user,
        password=env.get(CONSOLE_PASSWORD_ENV, ""),
        dbname=warehouse.postgres.dbname,
        schema=warehouse.postgres.schema,
    )
    return PostgresReader(settings)
