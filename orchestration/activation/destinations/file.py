"""File: the audience's records kept as one CSV or Parquet file, a row per key.

Options (the sync's YAML ``options``) and environment:

- ``format``: ``csv`` (default) or ``parquet``.
- ``path``: the file; default ``<directory>/<sync name>.<format>``.
- ``directory`` (``TESSERA_FILE_DIRECTORY``): default ``output/syncs``.

The file has the sync key's column first, then one column per destination field. Each batch
rewrites it whole (to a temporary file, then renamed over it), so a reader never sees half a
batch and a killed run leaves the last whole batch. CSV values are text (timestamps in ISO
8601); Parquet keeps the warehouse's types. In ``insert`` mode an existing key fails its record,
in ``update`` mode a missing one does.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.activation.destination import (
    Destination,
    DestinationConfig,
    PermanentError,
    Record,
    RunContext,
    WriteResult,
)
from orchestration.activation.destinations.table import apply_batch
from orchestration.activation.serialisation import json_value


class FileConfig(DestinationConfig):
    format: Literal["csv", "parquet"] = "csv"
    path: str | None = None
    directory: str = "output/syncs"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return str(json_value(value))


class FileDestination(Destination):
    name: ClassVar[str] = "file"
    max_batch_size: ClassVar[int] = 100_000
    # Each batch rewrites the one file: batches go one at a time.
    max_concurrency: ClassVar[int] = 1
    config_class: ClassVar[type[DestinationConfig]] = FileConfig

    def __init__(self, config: DestinationConfig) -> None:
        super().__init__(config)
        self._run: RunContext | None = None

    @property
    def settings(self) -> FileConfig:
        assert isinstance(self.config, FileConfig)
        return self.config

    @property
    def path(self) -> Path:
        settings = self.settings
        if settings.path:
            return Path(settings.path)
        sync = self._run.sync_name if self._run else "sync"
        return Path(settings.directory) / f"{sync}.{settings.format}"

    @property
    def key_column(self) -> str:
        return str(self._run.extra.get("key_column", "key")) if self._run else "key"

    def check_connection(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermanentError(f"file destination: cannot create {folder}: {exc}") from exc
        if not os.access(folder, os.W_OK):
            raise PermanentError(f"file destination: {folder} is not writable")

    def start(self, run: RunContext) -> None:
        self._run = run

    def read(self) -> dict[str, dict[str, Any]]:
        """The file's rows by key (empty when there is no file yet)."""
        path = self.path
        if not path.exists():
            return {}
        if self.settings.format == "csv":
            with path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        else:
            rows = pq.read_table(path).to_pylist()
        key = self.key_column
        return {str(row[key]): row for row in rows}

    def write(self, batch: Sequence[Record]) -> WriteResult:
        rows = self.read()
        mode = self._run.mode if self._run else "upsert"
        writes, deletes, outcomes = apply_batch(batch, set(rows), mode)
        key = self.key_column
        for removed in deletes:
            rows.pop(removed, None)
        for record in writes:
            rows[record.key] = {**dict(record.fields), key: record.key}
        self._save(rows)
        return WriteResult(outcomes)

    def _save(self, rows: dict[str, dict[str, Any]]) -> None:
        key = self.key_column
        columns = [key, *dict.fromkeys(n for row in rows.values() for n in row if n != key)]
        ordered = [rows[name] for name in sorted(rows)]
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        if self.settings.format == "csv":
            with temporary.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                writer.writerows([[_text(row.get(c)) for c in columns] for row in ordered])
        else:
            table = pa.table({c: pa.array([row.get(c) for row in ordered]) for c in columns})
            pq.write_table(table, temporary)
        os.replace(temporary, path)
