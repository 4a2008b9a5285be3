"""Dagster resources: the warehouse every Python step and the dbt assets use, and the settings
of a run (dbt vars, the output folder) that ``tessera run`` passes to the same job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.dbt_project import _environment
from orchestration.project import ProjectConfig
from orchestration.warehouse import PostgresSettings, Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """Tessera's warehouse: target ``local`` (a DuckDB file) or ``postgres``.

    Built from ``Warehouse.from_env`` (the ``TESSERA_*`` variables the dbt profile reads too). The
    Postgres password is never stored in the resource's config: it is ``EnvVar`` of
    ``TESSERA_PG_PASSWORD``, the only place ``Warehouse.from_env`` takes it from.
    """

    target: str = "local"
    duckdb_path: str | None = None
    pg_host: str = "localhost"
    pg_port: int = 5432
    pg_user: str = "tessera"
    pg_password: str = ""
    pg_database: str = "tessera"
    pg_schema: str = "public"

    @classmethod
    def for_warehouse(cls, warehouse: Warehouse) -> WarehouseResource:
        if warehouse.duckdb_path is not None:
            return cls(target=warehouse.target, duckdb_path=str(warehouse.duckdb_path))
        pg = warehouse.postgres
        assert pg is not None
        return cls(
            target=warehouse.target,
            pg_host=pg.host,
            pg_port=pg.port,
            pg_user=pg.user,
            pg_password=dg.EnvVar("TESSERA_PG_PASSWORD") if pg.password else "",
            pg_database=pg.dbname,
            pg_schema=pg.schema,
        )

    def get(self) -> Warehouse:
        if self.duckdb_path is not None:
            return Warehouse(target=self.target, duckdb_path=Path(self.duckdb_path))
        settings = PostgresSettings(
            host=self.pg_host,
            port=self.pg_port,
            user=self.pg_user,
            password=self.pg_password,
            dbname=self.pg_database,
            schema=self.pg_schema,
        )
        return Warehouse(target=self.target, postgres=settings)

    @contextmanager
    def dbt_environment(self) -> Iterator[None]:
        """Point profiles.yml.example at this warehouse for a dbt command started inside."""
        with _environment(self.get().dbt_env()):
            yield


class RunSettings(dg.ConfigurableResource):
    """What a run adds to the project: var overrides (YAML or JSON text, as ``--vars``), the
    folder plots are written to and the collector's landing folder. Every step reads the vars
    through ``config()``: dbt gets the overrides, the predictive step, the checks and the syncs
    the checked, merged values.
    ``full_refresh`` rebuilds dbt's incremental models from all their input (``--full-refresh``;
    the customer id registry and audience membership history keep their rows)."""

    dbt_vars: str = "{}"
    output_dir: str = "output"
    full_refresh: bool = False
    #: The collector's landing folder the loader reads (orchestration/collect).
    landing_dir: str = ".tessera/landing"
    #: The stream worker's folder: its state and the trigger snapshot (orchestration/collect).
    stream_dir: str = ".tessera/stream"

    @classmethod
    def of(
        cls,
        config: ProjectConfig | None = None,
        output_dir: Path | None = None,
        full_refresh: bool = False,
        landing_dir: Path | None = None,
        stream_dir: Path | None = None,
    ) -> RunSettings:
        return cls(
            dbt_vars=config.overrides_json() if config is not None else "{}",
            output_dir=str(output_dir) if output_dir is not None else "output",
            full_refresh=full_refresh,
            landing_dir=str(landing_dir) if landing_dir is not None else ".tessera/landing",
            stream_dir=str(stream_dir) if stream_dir is not None else ".tessera/stream",
        )

    def config(self) -> ProjectConfig:
        return ProjectConfig.load(self.dbt_vars)

    def vars(self) -> dict[str, Any]:
        """Every var as dbt sees it: dbt_project.yml's, the overrides winning."""
        return self.config().values

    def dbt_args(self) -> list[str]:
        """``--vars`` for a dbt command, when there are overrides."""
        return self.config().dbt_args()

    def build_args(self) -> list[str]:
        """What the run adds to ``dbt build``: ``--vars``, and ``--full-refresh`` if asked."""
        return [*self.dbt_args(), *(["--full-refresh"] if self.full_refresh else [])]
