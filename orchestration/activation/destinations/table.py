"""Table: the audience's records kept as rows of a table in DuckDB or Postgres.

Options (the sync's YAML ``options``) and environment:

- ``schema`` (default ``activation_exports``) and ``table`` (default: the sync's name).
- ``duckdb_path`` (``TESSERA_TABLE_DUCKDB_PATH``): a DuckDB file to write to.
- ``postgres_url`` (``TESSERA_TABLE_POSTGRES_URL``, environment only: it may hold a password):
  a libpq connection string or URL of a Postgres database to write to.
- Neither set: the warehouse the sync reads from.

The table has the sync key's column (text) and one column per destination field, created on
the first write with types from the values (text when a batch holds only nulls), and
``synced_at`` (UTC). Each batch is one transaction: an add or change replaces the key's row, a
remove deletes it. In ``insert`` mode an existing key fails its record, in ``update`` mode a
missing one does, as the matching CRM operations would.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pyarrow as pa
from pydantic import ConfigDict, Field, SecretStr

from orchestration.activation.destination import (
    Destination,
    DestinationConfig,
    PermanentError,
    Record,
    RecordOutcome,
    RunContext,
    WriteResult,
)
from orchestration.activation.store import utc_now
from orchestration.warehouse import Warehouse

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


class TableConfig(DestinationConfig):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True)

    # ``schema`` in options; the attribute has another name because BaseModel has a ``schema``.
    schema_name: str = Field("activation_exports", alias="schema")
    table: str | None = None
    duckdb_path: str | None = None
    postgres_url: SecretStr | None = None


def sql_type(values: Sequence[Any], postgres: bool) -> str:
    """The column type for a field's values (the first non-null one decides)."""
    sample = next((value for value in values if value is not None), None)
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, int):
        return "bigint"
    if isinstance(sample, float | Decimal):
        return "double precision" if postgres else "double"
    if isinstance(sample, dt.datetime):
        return "timestamp"
    if isinstance(sample, dt.date):
        return "date"
    return "text" if postgres else "varchar"


def apply_batch(
    batch: Sequence[Record], existing: set[str], mode: str
) -> tuple[list[Record], list[str], list[RecordOutcome]]:
    """What a keyed store does with a batch: (records to write, keys to delete, outcomes)."""
    writes: list[Record] = []
    deletes: list[str] = []
    outcomes: list[RecordOutcome] = []
    for record in batch:
        if record.operation == "remove":
            deletes.append(record.key)
        elif mode == "insert" and record.key in existing:
            outcomes.append(RecordOutcome(record.key, False, error="a record with this key exists"))
            continue
        elif mode == "update" and record.key not in existing:
            outcomes.append(RecordOutcome(record.key, False, error="no record with this key"))
            continue
        else:
            writes.append(record)
        outcomes.append(RecordOutcome(record.key, True, destination_id=record.key))
    return writes, deletes, outcomes


class TableDestination(Destination):
    name: ClassVar[str] = "table"
    max_batch_size: ClassVar[int] = 10_000
    # One transaction at a time: concurrent writers of one table would conflict.
    max_concurrency: ClassVar[int] = 1
    config_class: ClassVar[type[DestinationConfig]] = TableConfig

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        self._run: RunContext | None = None
        self._con: Any = None
        self._is_duckdb = True
        self._columns: list[str] | None = None

    @property
    def settings(self) -> TableConfig:
        assert isinstance(self.config, TableConfig)
        return self.config

    def _warehouse(self) -> Warehouse | None:
        return self._run.extra.get("warehouse") if self._run else None

    @contextmanager
    def _connect(self) -> Iterator[tuple[Any, bool]]:
        settings = self.settings
        if settings.postgres_url is not None:
            with psycopg.connect(settings.postgres_url.get_secret_value()) as con:
                con.autocommit = True
                yield con, False
            return
        warehouse = self._warehouse()
        if settings.duckdb_path is None and warehouse is not None and warehouse.postgres:
            with warehouse.postgres_connection() as con:
                con.autocommit = True
                yield con, False
            return
        path = settings.duckdb_path or (warehouse.duckdb_path if warehouse else None)
        if path is None:
            raise PermanentError(
                "table destination: set option duckdb_path or TESSERA_TABLE_POSTGRES_URL"
            )
        # Through Warehouse, so the connection has the settings of the others this process holds
        # on the same file (DuckDB refuses a second one with different settings).
        with Warehouse(target="local", duckdb_path=Path(path)).duckdb_connection() as con:
            yield con, True

    def check_connection(self) -> None:
        for name in (self.settings.schema_name, self.settings.table or "x"):
            if not _IDENTIFIER.fullmatch(name):
                raise PermanentError(f"table destination: {name!r} is not a lowercase identifier")

    def start(self, run: RunContext) -> None:
        self._run = run
        self._columns = None

    @property
    def _key_column(self) -> str:
        return str(self._run.extra.get("key_column", "key")) if self._run else "key"

    @property
    def _relation(self) -> str:
        table = self.settings.table or (self._run.sync_name if self._run else "sync")
        return f'"{self.settings.schema_name}"."{table}"'

    def write(self, batch: Sequence[Record]) -> WriteResult:
        mode = self._run.mode if self._run else "upsert"
        key = self._key_column
        with self._connect() as (con, is_duckdb):
            self._ensure_table(con, is_duckdb, batch)
            keys = [record.key for record in batch]
            existing = self._existing(con, is_duckdb, keys)
            writes, deletes, outcomes = apply_batch(batch, existing, mode)
            replaced = [record.key for record in writes] + deletes
            columns = self._columns or [key]
            now = utc_now()
            rows = [
                [record.key] + [record.fields.get(column) for column in columns[1:-1]] + [now]
                for record in writes
            ]
            if is_duckdb:
                self._write_duckdb(con, replaced, columns, rows)
            else:
                self._write_postgres(con, replaced, columns, rows)
        return WriteResult(outcomes)

    def _ensure_table(self, con: Any, is_duckdb: bool, batch: Sequence[Record]) -> None:
        key = self._key_column
        fields = list(dict.fromkeys(name for record in batch for name in record.fields))
        fields = [name for name in fields if name not in (key, "synced_at")]
        schema = self.settings.schema_name
        con.execute(f'create schema if not exists "{schema}"')
        types = {
            name: sql_type([record.fields.get(name) for record in batch], not is_duckdb)
            for name in fields
        }
        text = "varchar" if is_duckdb else "text"
        ddl = ", ".join(
            [
                f'"{key}" {text} not null',
                *(f'"{n}" {types[n]}' for n in fields),
                "synced_at timestamp",
            ]
        )
        con.execute(f"create table if not exists {self._relation} ({ddl})")
        table = self.settings.table or (self._run.sync_name if self._run else "sync")
        marker = "?" if is_duckdb else "%s"
        present = [
            row[0]
            for row in con.execute(
                "select column_name from information_schema.columns where table_schema = "
                f"{marker} and table_name = {marker} order by ordinal_position",
                [schema, table],
            ).fetchall()
        ]
        for name in fields:
            if name not in present:
                con.execute(f'alter table {self._relation} add column "{name}" {types[name]}')
                present.append(name)
        self._columns = [key, *(n for n in present if n not in (key, "synced_at")), "synced_at"]

    def _existing(self, con: Any, is_duckdb: bool, keys: list[str]) -> set[str]:
        key = self._key_column
        if is_duckdb:
            con.register("batch_keys", pa.table({"record_key": pa.array(keys, pa.string())}))
            try:
                rows = con.execute(
                    f'select "{key}" from {self._relation} '
                    f'where "{key}" in (select record_key from batch_keys)'
                ).fetchall()
            finally:
                con.unregister("batch_keys")
        else:
            rows = con.execute(
                f'select "{key}" from {self._relation} where "{key}" = any(%s)', [keys]
            ).fetchall()
        return {row[0] for row in rows}

    def _write_duckdb(
        self, con: Any, replaced: list[str], columns: list[str], rows: list[list[Any]]
    ) -> None:
        key = columns[0]
        con.execute("begin transaction")
        try:
            con.register("replaced_keys", pa.table({"record_key": pa.array(replaced, pa.string())}))
            con.execute(
                f'delete from {self._relation} where "{key}" in '
                "(select record_key from replaced_keys)"
            )
            if rows:
                names = ", ".join(f'"{column}"' for column in columns)
                incoming = pa.table(
                    {f"c{i}": pa.array([row[i] for row in rows]) for i in range(len(columns))}
                )
                con.register("incoming_rows", incoming)
                con.execute(f"insert into {self._relation} ({names}) select * from incoming_rows")
                con.unregister("incoming_rows")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        finally:
            con.unregister("replaced_keys")

    def _write_postgres(
        self, con: Any, replaced: list[str], columns: list[str], rows: list[list[Any]]
    ) -> None:
        key = columns[0]
        with con.transaction():
            con.execute(f'delete from {self._relation} where "{key}" = any(%s)', [replaced])
            if rows:
                names = ", ".join(f'"{column}"' for column in columns)
                with (
                    con.cursor() as cursor,
                    cursor.copy(f"copy {self._relation} ({names}) from stdin") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
