"""Running Tessera's dbt project in-process against a warehouse."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestration.warehouse import Warehouse


class DbtRunError(RuntimeError):
    """A dbt command failed; dbt's own log above says which node and why."""


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the profile to read during one dbt call, then restore the old ones."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def project_dir() -> Path:
    """The dbt project: ``TESSERA_PROJECT_DIR``, or the checkout this package was installed from."""
    configured = os.environ.get("TESSERA_PROJECT_DIR")
    path = Path(configured) if configured else Path(__file__).resolve().parents[1]
    if not (path / "dbt_project.yml").is_file():
        raise DbtRunError(
            f"no dbt_project.yml in {path}: set TESSERA_PROJECT_DIR to the Tessera checkout"
        )
    return path


def profiles_dir(project: Path) -> Path:
    """``DBT_PROFILES_DIR`` if set, else a folder holding a fresh copy of profiles.yml.example."""
    configured = os.environ.get("DBT_PROFILES_DIR")
    if configured:
        return Path(configured)
    folder = project / ".tessera"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(project / "profiles.yml.example", folder / "profiles.yml")
    return folder


def run_dbt(
    args: Sequence[str],
    warehouse: Warehouse,
    dbt_vars: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> Any:
    """Run one dbt command (e.g. ``["build"]``) on ``warehouse``; raise DbtRunError if it fails."""
    from dbt.cli.main import dbtRunner

    project = project_dir()
    cli_args = [
        *args,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(profiles_dir(project)),
        "--target",
        warehouse.target,
    ]
    if "--target-path" not in args:
        # One target folder per dbt target: dbt keeps its parse state there, and reparses the
        # whole project (4 to 7 s) when the target differs from the state's.
        base = Path(os.environ.get("DBT_TARGET_PATH") or project / "target")
        cli_args += ["--target-path", str(base / warehouse.target)]
    if dbt_vars:
        cli_args += ["--vars", json.dumps(dict(dbt_vars))]
    if quiet:
        cli_args = ["--quiet", *cli_args]
    with _environment(warehouse.dbt_env()):
        result = dbtRunner().invoke(cli_args)
    if not result.success:
        raise DbtRunError(f"dbt {' '.join(args)} failed on {warehouse.describe()}") from (
            result.exception
        )
    return result.result
