"""Where Tessera's warehouse is, read from the environment, and moving data into it.

The dbt profile (profiles.yml.example) reads the same variables, so the Python steps and dbt
always talk to the same database:

- ``TESSERA_TARGET``: ``local`` (DuckDB, the default) or ``postgres``
- ``TESSERA_DUCKDB_PATH``: the DuckDB file of target ``local`` (default ``tessera.duckdb``)
- ``TESSERA_DUCKDB_MEMORY_LIMIT``, ``TESSERA_DUCKDB_THREADS``, ``TESSERA_DUCKDB_TEMP_DIRECTORY``:
  how much memory and how many threads DuckDB may use, and where it spills what does not fit
  (defaults ``4GB``, 4, the database file's path plus ``.tmp``); ``DuckDBSettings``
- ``TESSERA_PG_HOST``, ``TESSERA_PG_PORT``, ``TESSERA_PG_USER``, ``TESSERA_PG_PASSWORD``,
  ``TESSERA_PG_DATABASE``, ``TESSERA_PG_SCHEMA``: the Postgres server of target ``postgres``
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv

TARGETS = ("local", "postgres")
# DuckDB names a database after its file: a file named like one of Tessera's schemas makes every
# reference to that schema ambiguous ("raw.duckdb" and schema raw).
SCHEMA_NAMES = (
    "raw",
    "staging",
    "identity",
    "marts",
    "audiences",
    "predictive",
    "reference",
    "activation",
    "metrics",
)

# DuckDB type names (information_schema) to the Postgres types a copied table gets.
_POSTGRES_TYPES = {
    "VARCHAR": "text",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "BOOLEAN": "boolean",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "DECIMAL(18,2)": "numeric(18, 2)",
    "DATE": "date",
}
_COPY_BATCH_ROWS = 200_000


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier, the same on DuckDB and Postgres."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a SQL string literal, the same on DuckDB and Postgres."""
    return "'" + text.replace("'", "''") + "'"


class WarehouseError(RuntimeError):
    """The warehouse is misconfigured or unreachable; the message says which setting to fix."""


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    schema: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PostgresSettings:
        port = env.get("TESSERA_PG_PORT", "5432")
        if not port.isdigit():
            raise WarehouseError(f"TESSERA_PG_PORT must be a port number, got {port!r}")
        return cls(
            host=env.get("TESSERA_PG_HOST", "localhost"),
            port=int(port),
            user=env.get("TESSERA_PG_USER", "tessera"),
            password=env.get("TESSERA_PG_PASSWORD", ""),
            dbname=env.get("TESSERA_PG_DATABASE", "tessera"),
            schema=env.get("TESSERA_PG_SCHEMA", "public"),
        )

    def conninfo(self) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=self.dbname,
        )


#: DuckDB left alone takes up to 80% of the machine's memory (19.7 GB measured at 1M customers on
#: a 24 GB machine); bounded, it spills to disk instead.
DEFAULT_DUCKDB_MEMORY_LIMIT = "4GB"
DEFAULT_DUCKDB_THREADS = 4
_MEMORY_LIMIT = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


@dataclass(frozen=True)
class DuckDBSettings:
    """The memory, threads and spill folder of every DuckDB connection Tessera opens: dbt's
    (through profiles.yml.example, which reads the same variables with the same defaults) and
    the Python steps'. Insertion order is not preserved either (no model depends on it): DuckDB
    then needs far less memory for large inserts and exports."""

    memory_limit: str
    threads: int
    temp_directory: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str], database: Path) -> DuckDBSettings:
        memory = env.get("TESSERA_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT).strip()
        if not _MEMORY_LIMIT.match(memory):
            raise WarehouseError(
                f"TESSERA_DUCKDB_MEMORY_LIMIT must be a size such as 4GB or 512MB, got {memory!r}"
            )
        threads = env.get("TESSERA_DUCKDB_THREADS", str(DEFAULT_DUCKDB_THREADS)).strip()
        if not threads.isdigit() or int(threads) < 1:
            raise WarehouseError(
                f"TESSERA_DUCKDB_THREADS must be a whole number of at least 1, got {threads!r}"
            )
        spill = env.get("TESSERA_DUCKDB_TEMP_DIRECTORY") or f"{database}.tmp"
        return cls(memory_limit=memory, threads=int(threads), temp_directory=Path(spill))

    def config(self) -> dict[str, str]:
        """``duckdb.connect(config=...)``: the settings as DuckDB names them."""
        return {
            "memory_limit": self.memory_limit,
            "threads": str(self.threads),
            "temp_directory": str(self.temp_directory),
            "preserve_insertion_order": "false",
        }

    def dbt_env(self) -> dict[str, str]:
        return {
            "TESSERA_DUCKDB_MEMORY_LIMIT": self.memory_limit,
            "TESSERA_DUCKDB_THREADS": str(self.threads),
            "TESSERA_DUCKDB_TEMP_DIRECTORY": str(self.temp_directory),
        }


@dataclass(frozen=True)
class Warehouse:
    """One dbt target: a DuckDB file or a Postgres database."""

    target: str
    duckdb_path: Path | None = None
    postgres: PostgresSettings | None = None
    #: Of a DuckDB warehouse; None: read from the environment when used.
    duckdb_settings: DuckDBSettings | None = None

    @classmethod
    def from_env(cls, target: str | None = None, env: Mapping[str, str] | None = None) -> Warehouse:
        env = os.environ if env is None else env
        target = target or env.get("TESSERA_TARGET", "local")
        if target == "local":
            path = Path(env.get("TESSERA_DUCKDB_PATH", "tessera.duckdb")).resolve()
            if path.stem.lower() in SCHEMA_NAMES:
                raise WarehouseError(
                    f"TESSERA_DUCKDB_PATH {path.name!r}: DuckDB names the database after the "
                    f"file, and {path.stem!r} is one of Tessera's schemas "
                    f"({', '.join(SCHEMA_NAMES)}); choose another file name"
                )
            return cls(
                target=target, duckdb_path=path, duckdb_settings=DuckDBSettings.from_env(env, path)
            )
        if target == "postgres":
            return cls(target=target, postgres=PostgresSettings.from_env(env))
        raise WarehouseError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")

    def dbt_env(self) -> dict[str, str]:
        """Environment variables that make profiles.yml.example point dbt at this warehouse."""
        if self.duckdb_path is not None:
            return {
                "TESSERA_TARGET": "local",
                "TESSERA_DUCKDB_PATH": str(self.duckdb_path),
                **self.duckdb().dbt_env(),
            }
        pg = self.postgres
        assert pg is not None
        return {
            "TESSERA_TARGET": "postgres",
            "TESSERA_PG_HOST": pg.host,
            "TESSERA_PG_PORT": str(pg.port),
            "TESSERA_PG_USER": pg.user,
            "TESSERA_PG_PASSWORD": pg.password,
            "TESSERA_PG_DATABASE": pg.dbname,
            "TESSERA_PG_SCHEMA": pg.schema,
        }

    def describe(self) -> str:
        if self.duckdb_path is not None:
            return f"DuckDB file {self.duckdb_path}"
        pg = self.postgres
        assert pg is not None
        return f"Postgres {pg.user}@{pg.host}:{pg.port}/{pg.dbname}"

    def duckdb(self) -> DuckDBSettings:
        """The DuckDB settings of a DuckDB warehouse."""
        if self.duckdb_path is None:
            raise WarehouseError(f"target {self.target!r} is not a DuckDB warehouse")
        return self.duckdb_settings or DuckDBSettings.from_env(os.environ, self.duckdb_path)

    @contextmanager
    def duckdb_connection(self):
        settings = self.duckdb()
        assert self.duckdb_path is not None
        self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.duckdb_path), config=settings.config())
        except duckdb.IOException as exc:
            raise WarehouseError(
                f"cannot open {self.duckdb_path}: {exc}. DuckDB allows one writing process per "
                "file; stop the other process (a dbt run, the Dagster UI) and retry."
            ) from exc
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def postgres_connection(self):
        if self.postgres is None:
            raise WarehouseError(f"target {self.target!r} is not a Postgres warehouse")
        try:
            con = psycopg.connect(self.postgres.conninfo())
        except psycopg.OperationalError as exc:
            raise WarehouseError(
                f"cannot connect to {self.describe()}: {exc}. Check the TESSERA_PG_* variables."
            ) from exc
        try:
            yield con
        finally:
            con.close()

    @property
    def placeholder(self) -> str:
        """How a query parameter is written in SQL for this warehouse's driver."""
        return "?" if self.duckdb_path is not None else "%s"

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query, on either adapter; parameters written as ``placeholder``."""
        if self.duckdb_path is not None:
            with self.duckdb_connection() as con:
                return con.execute(sql, list(params)).fetchall()
        with self.postgres_connection() as con:
            return con.execute(sql, list(params) or None).fetchall()

    def read_frame(self, schema: str, table: str) -> pd.DataFrame:
        """A whole table as a pandas DataFrame, on either adapter."""
        return self.query_frame(f'select * from "{schema}"."{table}"')

    def query_frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The rows of a read-only query as a pandas DataFrame, on either adapter."""
        if self.duckdb_path is not None:
            with self.duckdb_connection() as con:
                return con.execute(sql, list(params)).df()
        with self.postgres_connection() as con, con.cursor() as cur:
            cur.execute(sql, list(params) or None)
            columns = [column.name for column in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=columns)

    def execute(self, statements: list[str]) -> None:
        """Run statements that change the warehouse, in one transaction on Postgres."""
        if self.duckdb_path is not None:
            with self.duckdb_connection() as con:
                for sql in statements:
                    con.execute(sql)
            return
        with self.postgres_connection() as con, con.transaction():
            for sql in statements:
                con.execute(sql)

    def write_tables(self, schema: str, tables: Mapping[str, pa.Table]) -> None:
        """Replace ``schema.<name>`` with each Arrow table, all in one transaction.

        Either every table is replaced or, when anything fails, none is: readers never see the
        tables of two different runs side by side. Columns keep their Arrow types on DuckDB and
        get the Postgres types of ``copy_duckdb_to_postgres`` on Postgres (timestamps naive UTC).
        """
        for name in (schema, *tables):
            if not name.isidentifier() or name != name.lower():
                raise WarehouseError(f"{name!r} is not a lowercase SQL identifier")
        if self.duckdb_path is not None:
            with self.duckdb_connection() as con:
                _write_duckdb_tables(con, schema, tables)
            return
        # Postgres gets the tables through an in-memory DuckDB, the path demo data takes.
        staging = duckdb.connect()
        try:
            staging.execute(f'create schema "{schema}"')
            for name, table in tables.items():
                staging.register("incoming", table)
                staging.execute(f'create table "{schema}"."{name}" as select * from incoming')
                staging.unregister("incoming")
            with self.postgres_connection() as pg:
                try:
                    copy_duckdb_to_postgres(staging, pg, schema, list(tables))
                except psycopg.Error as exc:
                    raise WarehouseError(
                        f"writing {schema}.{{{', '.join(tables)}}} to {self.describe()} failed, "
                        f"nothing was replaced: {exc}"
                    ) from exc
        finally:
            staging.close()

    def relation_exists(self, schema: str, table: str) -> bool:
        return relation_exists(self, schema, table)


def relation_exists(source: Any, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists, asked through anything with ``query`` and
    ``placeholder`` (a Warehouse, the console's readers)."""
    mark = source.placeholder
    sql = (
        "select count(*) from information_schema.tables "
        f"where table_schema = {mark} and table_name = {mark}"
    )
    return source.query(sql, [schema, table])[0][0] > 0


def copy_duckdb_to_postgres(
    source: duckdb.DuckDBPyConnection,
    pg: psycopg.Connection,
    schema: str,
    tables: list[str],
    progress: Callable[[str], None] | None = None,
) -> None:
    """Replace ``schema.<table>`` in Postgres with DuckDB's, in one transaction per call.

    Rows stream as CSV through COPY in Arrow batches, so memory stays flat however big the table.
    """
    with pg.transaction(), pg.cursor() as cur:
        cur.execute(f'create schema if not exists "{schema}"')
        for table in tables:
            columns = source.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
            ddl = ", ".join(f'"{name}" {_postgres_type(kind)}' for name, kind in columns)
            # Staging's landed views over the table go with it; the next dbt build recreates them.
            cur.execute(f'drop table if exists "{schema}"."{table}" cascade')
            cur.execute(f'create table "{schema}"."{table}" ({ddl})')
            reader = source.sql(f'select * from "{schema}"."{table}"').to_arrow_reader(
                _COPY_BATCH_ROWS
            )
            options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
            with cur.copy(f'copy "{schema}"."{table}" from stdin (format csv)') as copy:
                for batch in reader:
                    buffer = io.BytesIO()
                    pa_csv.write_csv(batch, buffer, write_options=options)
                    copy.write(buffer.getvalue())
            if progress:
                progress(f"copied {schema}.{table} to Postgres")


def _write_duckdb_tables(
    con: duckdb.DuckDBPyConnection, schema: str, tables: Mapping[str, pa.Table]
) -> None:
    con.execute("begin transaction")
    try:
        con.execute(f'create schema if not exists "{schema}"')
        for name, table in tables.items():
            con.register("incoming", table)
            con.execute(f'create or replace table "{schema}"."{name}" as select * from incoming')
            con.unregister("incoming")
    except duckdb.Error as exc:
        con.execute("rollback")
        raise WarehouseError(
            f"writing {schema}.{{{', '.join(tables)}}} to DuckDB failed, nothing was replaced: "
            f"{exc}"
        ) from exc
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def _postgres_type(duckdb_type: str) -> str:
    try:
        return _POSTGRES_TYPES[duckdb_type]
    except KeyError:
        raise WarehouseError(f"no Postgres type for DuckDB type {duckdb_type}") from None
