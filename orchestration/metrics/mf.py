"""``mf`` (dbt-metricflow's command line) on Tessera's warehouse:
``tessera metrics [--target local|postgres] <mf arguments>``.

mf finds the dbt project and its profile in ``DBT_PROJECT_DIR`` and ``DBT_PROFILES_DIR`` (else the
current folder), reads the semantic manifest at ``<project>/target/semantic_manifest.json`` whatever
the target path, and connects with the profile's target. Tessera's profile is
profiles.yml.example, copied to ``.tessera/profiles.yml``, and reads the warehouse from the
``TESSERA_*`` variables; ``tessera run`` parses into ``target/<target>``. So this helper sets the
variables of the chosen warehouse (``--target``, else ``TESSERA_TARGET``), parses the project with
them as ``tessera run`` does, copies the semantic manifest to where mf reads it, and runs mf with
the rest of the arguments, e.g.::

    tessera metrics validate-configs
    tessera metrics --target postgres query --metrics revenue,orders \\
        --group-by metric_time__month --order metric_time__month
    tessera metrics query --saved-query churn_by_risk_tier

mf's data-warehouse checks and queries open the DuckDB file through dbt: stop a process writing
it (a run, the Dagster UI's) first. mf also asks PyPI whether a newer version exists and carries
on after a one-second timeout when it cannot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestration.dbt_project import profiles_dir, project_dir, run_dbt
from orchestration.metrics.semantic import SEMANTIC_MANIFEST, semantic_manifest_path
from orchestration.warehouse import Warehouse


def mf_environment(warehouse: Warehouse, project: Path) -> dict[str, str]:
    """The environment mf runs in: the profile's variables of ``warehouse``, and where the
    project and its profile are."""
    return {
        **os.environ,
        **warehouse.dbt_env(),
        "DBT_PROJECT_DIR": str(project),
        "DBT_PROFILES_DIR": str(profiles_dir(project)),
    }


def prepare(warehouse: Warehouse) -> Path:
    """Parse the project for ``warehouse`` and put its semantic manifest where mf reads it."""
    project = project_dir()
    run_dbt(["parse"], warehouse, quiet=True)
    destination = project / "target" / SEMANTIC_MANIFEST
    source = semantic_manifest_path(warehouse)
    if source.resolve() != destination.resolve():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    return destination


def run_mf(warehouse: Warehouse, args: Sequence[str]) -> int:
    """Run mf with ``args`` on ``warehouse`` (``tessera metrics``); return its exit code."""
    prepare(warehouse)
    beside = Path(sys.executable).parent / "mf"
    executable = str(beside) if beside.exists() else "mf"
    project = project_dir()
    return subprocess.run(
        [executable, *args], env=mf_environment(warehouse, project), cwd=project, check=False
    ).returncode
