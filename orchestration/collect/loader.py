"""Landing segments into the raw schema, in Segment's warehouse schema, exactly once.

Each load reads every segment from where the last load stopped (the table
``tessera_landed_segments`` of the raw schema keeps each segment's loaded byte offset), turns its
records into rows (orchestration/collect/warehouse_schema.py), and in one transaction creates
the tables and columns the rows need, inserts the rows whose ``id`` (the call's ``messageId``)
the table does not hold yet, and moves the offsets on. So a load that is cut short leaves
nothing behind, loading the same segment twice adds nothing, and a call a client sent twice (a
retried batch) is loaded once. ``uuid_ts`` is the time of the load: incremental staging picks the
rows up by it.

DuckDB takes one writer at a time: run the load when nothing else writes the file (the Dagster
asset does, in the job's order). On Postgres loads may run while anything else reads or writes;
concurrent loads wait for each other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from orchestration.collect.landing import SegmentFile, list_segments, read_segment
from orchestration.collect.warehouse_schema import COMMON_COLUMNS, TIMESTAMP_COLUMNS, call_rows
from orchestration.warehouse import Warehouse, quote_identifier

STATE_TABLE = "tessera_landed_segments"
REJECTS_TABLE = "tessera_landing_rejects"
#: Bytes of landing records one transaction takes at most; a larger backlog loads in several.
DEFAULT_MAX_LOAD_BYTES = 128 * 1024 * 1024
#: Keys Postgres' advisory lock for loads takes, so two loaders never interleave.
_PG_LOCK_KEY = 7_270_001


class LoadError(RuntimeError):
    """The raw schema cannot take the landed calls; the message names the table and why."""


@dataclass
class LoadReport:
    """What one ``load_landing`` did."""

    segments: int = 0
    events: int = 0
    inserted: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    torn_bytes: int = 0
    rejected: int = 0

    @property
    def rows(self) -> int:
        return sum(self.inserted.values())

    def describe(self) -> str:
        tables = ", ".join(f"{table} {rows:,}" for table, rows in sorted(self.inserted.items()))
        return (
            f"{self.events:,} calls from {self.segments:,} segment(s) read; "
            f"rows inserted: {tables or 'none'}; already loaded (duplicates): "
            f"{self.duplicates:,}; unreadable lines: {self.rejected:,}; "
            f"bytes of unacknowledged writes skipped: {self.torn_bytes:,}"
        )


@dataclass
class _Batch:
    #: segment name -> (offset after this batch, sealed, torn bytes skipped, calls read)
    offsets: dict[str, tuple[int, bool, int, int]] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    event_tables: set[str] = field(default_factory=set)
    rejects: list[tuple[str, int, str, str]] = field(default_factory=list)
    events: int = 0
    bytes: int = 0


def _read_batches(
    segments: list[SegmentFile], loaded: dict[str, int], max_bytes: int
) -> Iterator[_Batch]:
    batch = _Batch()
    for segment in segments:
        start = loaded.get(segment.name, 0)
        read = read_segment(segment, start)
        if read.end == start:
            continue
        offset = start
        calls = 0
        for line in read.lines:
            try:
                rows = call_rows(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                record = line[:4096].decode("utf-8", "replace")
                reason = f"unreadable record: {type(exc).__name__}"
                batch.rejects.append((segment.name, offset, reason, record))
            else:
                calls += 1
                for table, row in rows:
                    batch.rows[table].append(row)
                for table, _ in rows[1:]:
                    batch.event_tables.add(table)
            offset += len(line) + 1
        batch.offsets[segment.name] = (read.end, segment.sealed, read.torn_bytes, calls)
        batch.events += calls
        batch.bytes += read.end - start
        if batch.bytes >= max_bytes:
            yield batch
            batch = _Batch()
    if batch.offsets:
        yield batch


def _dedupe(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The first row of each id (a retried call landed twice), and how many were dropped."""
    seen: dict[Any, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["id"], row)
    return list(seen.values()), len(rows) - len(seen)


def _columns_of(rows: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = dict.fromkeys(COMMON_COLUMNS)
    extra = {name for row in rows for name in row if name not in names}
    return [*names, *sorted(extra)]


class _Connection:
    """One transaction-capable connection to DuckDB or Postgres, with the few statements that
    differ between them."""

    def __init__(self, con: Any, postgres: bool) -> None:
        self.con = con
        self.postgres = postgres
        self.mark = "%s" if postgres else "?"
        self.text = "text" if postgres else "varchar"
        self.cursor = con.cursor() if postgres else con

    def execute(self, statement: str, params: list[Any] | None = None) -> Any:
        return self.cursor.execute(statement, params)

    def rows(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        self.cursor.execute(statement, params)
        return self.cursor.fetchall()

    def begin(self) -> None:
        if not self.postgres:
            self.con.execute("begin transaction")

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def insert_new(self, target: str, columns: list[str], types: dict[str, str], rows) -> int:
        """Insert the rows whose id ``target`` lacks; return how many were inserted."""
        names = ", ".join(quote_identifier(column) for column in columns)
        values = ", ".join(
            f"cast(incoming.{quote_identifier(column)} as {types[column]})" for column in columns
        )
        if self.postgres:
            self.execute(
                "create temp table incoming ("
                + ", ".join(f"{quote_identifier(column)} text" for column in columns)
                + ") on commit drop"
            )
            with self.cursor.copy(f"copy pg_temp.incoming ({names}) from stdin") as copy:
                for row in rows:
                    copy.write_row([row.get(column) for column in columns])
            source = "pg_temp.incoming"
        else:
            table = pa.table(
                {
                    column: pa.array([row.get(column) for row in rows], pa.string())
                    for column in columns
                }
            )
            self.con.register("incoming_calls", table)
            source = "incoming_calls"
        self.execute(
            f"insert into {target} ({names}) select {values} from {source} as incoming "
            f"where not exists (select 1 from {target} as loaded where loaded.id = incoming.id)"
        )
        inserted = self.cursor.rowcount if self.postgres else self.cursor.fetchone()[0]
        if self.postgres:
            self.execute("drop table pg_temp.incoming")
        else:
            self.con.unregister("incoming_calls")
        return int(inserted)

    def columns(self, schema: str, table: str) -> dict[str, str]:
        found = self.rows(
            "select column_name, data_type from information_schema.columns "
            f"where table_schema = {self.mark} and table_name = {self.mark}",
            [schema, table],
        )
        return dict(found)

    def ensure_table(self, schema: str, table: str, columns: list[str]) -> dict[str, str]:
        """The table's column types, after creating it or adding the columns it lacks."""
        existing = self.columns(schema, table)
        target = f"{quote_identifier(schema)}.{quote_identifier(table)}"

        def kind(column: str) -> str:
            return "timestamptz" if column in TIMESTAMP_COLUMNS else self.text

        if existing and "received_at" not in existing:
            raise LoadError(
                f"{schema}.{table} exists but is not in Segment's warehouse schema (it has no "
                "received_at column), and the collector's calls load into Segment-shaped tables: "
                "point var tessera_raw_schema at a schema of its own for them, or move the "
                "table away; nothing was loaded"
            )
        if not existing:
            definitions = ", ".join(
                f"{quote_identifier(column)} {kind(column)}" for column in columns
            )
            self.execute(f"create table {target} ({definitions})")
            if self.postgres:
                self.execute(f"create index on {target} (id)")
        else:
            for column in columns:
                if column not in existing:
                    self.execute(
                        f"alter table {target} add column {quote_identifier(column)} {kind(column)}"
                    )
        return self.columns(schema, table)


def _ensure_bookkeeping(db: _Connection, schema: str) -> None:
    db.execute(f"create schema if not exists {quote_identifier(schema)}")
    db.execute(
        f"create table if not exists {quote_identifier(schema)}.{STATE_TABLE} ("
        f"segment {db.text} primary key, loaded_bytes bigint not null, events bigint not null, "
        f"torn_bytes bigint not null, is_sealed boolean not null, "
        f"first_loaded_at timestamptz not null, last_loaded_at timestamptz not null)"
    )
    db.execute(
        f"create table if not exists {quote_identifier(schema)}.{REJECTS_TABLE} ("
        f"segment {db.text} not null, byte_offset bigint not null, reason {db.text} not null, "
        f"record {db.text}, rejected_at timestamptz not null)"
    )


def load_landing(
    warehouse: Warehouse,
    folder: Path,
    schema: str,
    max_bytes: int = DEFAULT_MAX_LOAD_BYTES,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Load every landed call not loaded yet into ``schema``; see the module's docstring."""
    report = LoadReport()
    segments = list_segments(folder)
    if not segments:
        return report
    if warehouse.duckdb_path is not None:
        with warehouse.duckdb_connection() as con:
            _load(_Connection(con, postgres=False), schema, segments, max_bytes, report, progress)
        return report
    with warehouse.postgres_connection() as con:
        db = _Connection(con, postgres=True)
        # One load at a time: a second waits here, then starts from the offsets the first left.
        db.execute(f"select pg_advisory_lock({_PG_LOCK_KEY})")
        con.commit()
        try:
            _load(db, schema, segments, max_bytes, report, progress)
        finally:
            con.rollback()
            db.execute(f"select pg_advisory_unlock({_PG_LOCK_KEY})")
            con.commit()
    return report


def _load(db: _Connection, schema: str, segments, max_bytes: int, report: LoadReport, progress):
    db.begin()
    _ensure_bookkeeping(db, schema)
    db.commit()
    state = f"{quote_identifier(schema)}.{STATE_TABLE}"
    loaded = {
        name: int(offset) for name, offset in db.rows(f"select segment, loaded_bytes from {state}")
    }
    for batch in _read_batches(segments, loaded, max_bytes):
        db.begin()
        try:
            _write_batch(db, schema, batch, loaded, report)
        except BaseException:
            db.rollback()
            raise
        db.commit()
        for name, (end, *_) in batch.offsets.items():
            loaded[name] = end
        report.segments += len(batch.offsets)
        if progress is not None:
            progress(f"loaded {batch.events:,} calls ({batch.bytes:,} bytes of landing segments)")


def _write_batch(
    db: _Connection, schema: str, batch: _Batch, loaded: dict[str, int], report: LoadReport
) -> None:
    loaded_at = datetime.now(UTC)
    stamp = loaded_at.isoformat()
    for table, table_rows in sorted(batch.rows.items()):
        rows, dropped = _dedupe(table_rows)
        for row in rows:
            row["uuid_ts"] = stamp
        columns = _columns_of(rows)
        types = db.ensure_table(schema, table, columns)
        inserted = db.insert_new(
            f"{quote_identifier(schema)}.{quote_identifier(table)}", columns, types, rows
        )
        report.inserted[table] = report.inserted.get(table, 0) + inserted
        # A track lands in tracks and in its event's table: its duplicates count once.
        if table not in batch.event_tables:
            report.duplicates += dropped + len(rows) - inserted
    report.events += batch.events
    state = f"{quote_identifier(schema)}.{STATE_TABLE}"
    mark = db.mark
    for name, (end, sealed, torn, calls) in batch.offsets.items():
        report.torn_bytes += torn
        if name in loaded:
            db.execute(
                f"update {state} set loaded_bytes = {mark}, events = events + {mark}, "
                f"torn_bytes = torn_bytes + {mark}, is_sealed = {mark}, last_loaded_at = {mark} "
                f"where segment = {mark}",
                [end, calls, torn, sealed, loaded_at, name],
            )
        else:
            db.execute(
                f"insert into {state} values ({', '.join([mark] * 7)})",
                [name, end, calls, torn, sealed, loaded_at, loaded_at],
            )
    rejects = f"{quote_identifier(schema)}.{REJECTS_TABLE}"
    for segment, offset, reason, record in batch.rejects:
        db.execute(
            f"insert into {rejects} values ({', '.join([mark] * 5)})",
            [segment, offset, reason, record, loaded_at],
        )
    report.rejected += len(batch.rejects)
