"""Tessera's dbt project as Dagster assets: every model and seed an asset, every dbt test an asset
check, every raw source table an external asset in group ``raw``.

The manifest. dagster-dbt reads dbt's manifest.json to know the graph. It is made by ``dbt
parse`` (never ``dbt deps``: Tessera has no dbt packages, and nothing may need the internet) when
the definitions load, not when this module is imported, and only when it is missing or older than
a file of the project (dbt_project.yml, models, macros, seeds, tests). That covers a fresh clone,
the tests and editing models under ``dagster dev`` (the next reload picks the change up), and
costs nothing when nothing changed. ``DbtProject.prepare_if_dev`` alone would parse on every load
under ``dagster dev`` and never anywhere else, so ``dagster-webserver``, the tests and a fresh
clone would find no manifest. A deployment that ships a prebuilt manifest (``dagster-dbt project
prepare-and-package``) never parses, since its manifest is newer than its files. The manifest is
written to ``$DBT_TARGET_PATH`` (default ``target``) under the project.
"""

import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.dbt_project import _environment, profiles_dir, project_dir
from orchestration.resources import RunSettings, WarehouseResource

# Unit tests check the SQL, not the data; they run in the test suite (as in `tessera run`).
# A run splits the dbt models around the Python assets (dbt -> predictive -> dbt): "buildable"
# keeps a test out of the step that builds only one of its parents (a relationships test of
# customer_clv against customers), so it runs with the step that builds the other.
DBT_BUILD = ["build", "--exclude-resource-type", "unit_test", "--indirect-selection", "buildable"]
RAW_GROUP = "raw"
_PROJECT_FILE_FOLDERS = ("model-paths", "macro-paths", "seed-paths", "test-paths")
_DEFAULT_FOLDERS = {
    "model-paths": ["models"],
    "macro-paths": ["macros"],
    "seed-paths": ["seeds"],
    "test-paths": ["tests"],
}


class TesseraDbtTranslator(DagsterDbtTranslator):
    """Groups assets by layer: the first folder under models/ (staging, identity, marts, and any
    layer added later), so a new layer needs no code. Seeds, which sit in no folder, take their
    schema (``reference``); sources are the ``raw`` layer. A ``meta.dagster.group`` or dbt group
    on a node still wins."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        configured = super().get_group_name(dbt_resource_props)
        if configured:
            return configured
        if dbt_resource_props["resource_type"] == "source":
            return RAW_GROUP
        # fqn is [package, *folders, name].
        fqn = dbt_resource_props.get("fqn", [])
        if len(fqn) >= 3:
            return fqn[1]
        return dbt_resource_props.get("config", {}).get("schema") or "default"


@dataclass(frozen=True)
class RawTable:
    """A source table loaded by the user's EL tool (or ``tessera generate``)."""

    key: dg.AssetKey
    schema: str
    table: str


def read_project_file(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "dbt_project.yml").read_text()) or {}


def dbt_executable() -> str:
    """dbt beside the running Python (a virtualenv that is not activated), else dbt on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def tessera_dbt_project(target: str) -> DbtProject:
    """The dbt project with the same profile and target as ``tessera run``."""
    project = project_dir()
    return DbtProject(
        project_dir=project,
        target_path=Path(os.environ.get("DBT_TARGET_PATH", "target")),
        profiles_dir=profiles_dir(project),
        target=target,
    )


def _newest_project_file(project: Path) -> float:
    config = read_project_file(project)
    newest = (project / "dbt_project.yml").stat().st_mtime
    for setting in _PROJECT_FILE_FOLDERS:
        for folder in config.get(setting, _DEFAULT_FOLDERS[setting]):
            for path in (project / folder).rglob("*"):
                if path.is_file():
                    newest = max(newest, path.stat().st_mtime)
    return newest


def prepare_manifest(
    project: DbtProject,
    adapter: str,
    env: Mapping[str, str] | None = None,
    vars_args: Sequence[str] = (),
) -> dict[str, Any]:
    """The project's manifest, parsed first when missing, older than a project file, or parsed
    for another adapter (``duckdb``, ``postgres``), another profile environment ``env`` (the
    ``TESSERA_*`` variables of the warehouse) or other var overrides (``vars_args``: the
    ``--vars`` of the run, ``ProjectConfig.dbt_args``), which decide the sources' schemas.

    Parsing with the warehouse's environment matters for speed: dbt keeps its partial-parse
    state beside the manifest and drops it when the profile it renders changed, so each dbt step
    of a run would otherwise parse the whole project again.
    """
    path = project.manifest_path
    stamp = path.with_name("tessera_profile.sha256")
    parsed_with = {"env": dict(env or {}), "vars": list(vars_args)}
    profile = hashlib.sha256(json.dumps(parsed_with, sort_keys=True).encode()).hexdigest()
    if path.exists() and path.stat().st_mtime >= _newest_project_file(project.project_dir):
        manifest = json.loads(path.read_text())
        same_profile = stamp.exists() and stamp.read_text() == profile
        if manifest["metadata"].get("adapter_type") == adapter and same_profile:
            return manifest
    # The preparer's own DbtCliResource looks for dbt on PATH only.
    parse = DbtCliResource(project_dir=project, dbt_executable=dbt_executable())
    with _environment(env or {}):
        parse.cli(["parse", "--quiet", *vars_args], target_path=project.target_path).wait()
    stamp.write_text(profile)
    return json.loads(path.read_text())


def build_dbt_assets(project: DbtProject, manifest: Mapping[str, Any]) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=TesseraDbtTranslator(),
        name="tessera_dbt",
    )
    def tessera_dbt(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
        settings: RunSettings,
    ) -> Iterator[Any]:
        # The profile reads TESSERA_* when the dbt process starts; set them from the resource so
        # dbt writes where the Python steps read.
        with warehouse.dbt_environment():
            invocation = dbt.cli([*DBT_BUILD, *settings.build_args()], context=context)
        yield from invocation.stream()

    return tessera_dbt


def raw_tables(manifest: Mapping[str, Any], raw_schema: str) -> list[RawTable]:
    """The dbt sources in the raw schema (var ``tessera_raw_schema``), keyed as dagster-dbt keys
    them; sources written by Tessera's own Python steps live in other schemas."""
    translator = TesseraDbtTranslator()
    tables = [
        RawTable(
            key=translator.get_asset_key(source),
            schema=source["schema"],
            table=source["identifier"],
        )
        for source in manifest["sources"].values()
        if source["schema"] == raw_schema
    ]
    return sorted(tables, key=lambda raw: raw.key.to_user_string())


def raw_table_specs(tables: list[RawTable], adapter: str) -> list[dg.AssetSpec]:
    """External assets for the raw tables, so the graph starts where the data lands."""
    return [
        dg.AssetSpec(
            key=raw.key,
            group_name=RAW_GROUP,
            description=f"Raw source table {raw.schema}.{raw.table}, loaded outside Tessera.",
            kinds={adapter},
            metadata={"dagster/table_name": f"{raw.schema}.{raw.table}"},
        )
        for raw in tables
    ]


def relation_name(manifest: Mapping[str, Any], model: str) -> str:
    """``schema.alias`` of a model. The manifest's database depends on the target it was parsed
    with (a DuckDB file's name), so it is left out."""
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["name"] == model:
            return f"{node['schema']}.{node['alias']}"
    raise KeyError(f"no model {model!r} in the dbt manifest")
