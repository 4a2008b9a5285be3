"""Syncs declared in the audiences' YAML, loaded and checked before anything is sent.

Each ``models/audiences/<audience>.yml`` may declare syncs under
``models[i].config.meta.tessera.syncs``::

    models:
      - name: audience_high_value_at_risk
        config:
          meta:
            tessera:
              syncs:
                - name: high_value_at_risk_hubspot   # unique across the project
                  destination: hubspot                # a registered destination
                  mode: upsert                        # upsert | update | insert | mirror
                  key: customer_id                    # audience column identifying a record
                  fields: {email: email}              # destination field: audience column
                  delete: none                        # none | remove (mirror implies remove)
                  options: {list_id: "123"}           # non-secret destination settings

The files are read with PyYAML, not through dbt, so every error names the file and the path of
the bad field, and all errors of all files are reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestration.activation.destination import Destination
from orchestration.activation.settings import env_var, option_fields, secret_options
from orchestration.declarations import DeclarationError, yaml_documents

MODES = ("upsert", "update", "insert", "mirror")
DELETE_BEHAVIOURS = ("none", "remove")
AUDIENCE_SCHEMA = "audiences"
AUDIENCES_DIR = Path("models") / "audiences"
_ALLOWED_KEYS = ("name", "destination", "mode", "key", "fields", "delete", "options")
_REQUIRED_KEYS = ("name", "destination", "mode", "key", "fields")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SyncConfigError(DeclarationError):
    """One or more sync declarations are invalid; the message lists each as file: path: why."""

    subject = "sync declarations"


@dataclass(frozen=True)
class SyncSpec:
    """One declared sync: an audience table, a destination and how to keep it equal to it."""

    name: str
    audience: str
    destination: str
    mode: str
    key: str
    fields: Mapping[str, str]
    delete: str = "none"
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<code>"

    @property
    def removes(self) -> bool:
        """Whether a record leaving the audience is removed from the destination."""
        return self.mode == "mirror" or self.delete == "remove"

    @property
    def columns(self) -> list[str]:
        """Audience columns the sync reads for its fields, each once, in mapping order."""
        return list(dict.fromkeys(self.fields.values()))

    def consent_column(self, destination: type[Destination]) -> str | None:
        purpose = destination.consent_purpose
        return f"has_consent_{purpose}" if purpose else None


def load_syncs(
    project: Path,
    registry: Mapping[str, type[Destination]],
    audience_columns: Mapping[str, list[str]] | None = None,
    select: Callable[[Mapping[str, Any]], bool] | None = None,
) -> list[SyncSpec]:
    """Every sync declared under ``project``/models/audiences, checked; raise SyncConfigError.

    ``audience_columns`` (audience table -> its columns, from the warehouse) turns on the checks
    that the audience exists and has the key, the mapped columns and the consent column.
    ``select`` (given a declaration as written) keeps only the syncs a command will run, so a
    mistake in another sync's declaration does not stop them.
    """
    problems: list[str] = []
    specs: list[SyncSpec] = []
    seen: dict[str, str] = {}
    for label, document in yaml_documents(project, AUDIENCES_DIR, problems):
        for spec in _file_syncs(document, label, registry, audience_columns, problems, select):
            if spec.name in seen:
                problems.append(
                    f"{spec.source}: sync name {spec.name!r} is already used in {seen[spec.name]}"
                )
                continue
            seen[spec.name] = spec.source
            specs.append(spec)
    if problems:
        raise SyncConfigError(problems)
    return specs


def declared_sync_names(project: Path) -> list[str]:
    """Names of the syncs declared under ``project``, unchecked (for naming the choices)."""
    names = []
    for path in sorted((project / AUDIENCES_DIR).glob("*.y*ml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        models = document.get("models") if isinstance(document, dict) else None
        for model in models if isinstance(models, list) else []:
            tessera = (
                ((model.get("config") or {}).get("meta") or {}).get("tessera") or {}
                if isinstance(model, dict)
                else {}
            )
            syncs = tessera.get("syncs") if isinstance(tessera, dict) else None
            names += [
                item["name"]
                for item in (syncs if isinstance(syncs, list) else [])
                if isinstance(item, dict) and isinstance(item.get("name"), str)
            ]
    return names


def _file_syncs(
    document: Any,
    label: str,
    registry: Mapping[str, type[Destination]],
    audience_columns: Mapping[str, list[str]] | None,
    problems: list[str],
    select: Callable[[Mapping[str, Any]], bool] | None = None,
) -> list[SyncSpec]:
    if document is None:
        return []
    if not isinstance(document, dict):
        problems.append(f"{label}: expected a mapping with a 'models' list")
        return []
    models = document.get("models") or []
    if not isinstance(models, list):
        problems.append(f"{label}: models: expected a list")
        return []
    specs = []
    for index, model in enumerate(models):
        where = f"models[{index}]"
        if not isinstance(model, dict):
            problems.append(f"{label}: {where}: expected a mapping")
            continue
        tessera = ((model.get("config") or {}).get("meta") or {}).get("tessera") or {}
        if not isinstance(tessera, dict):
            problems.append(f"{label}: {where}.config.meta.tessera: expected a mapping")
            continue
        syncs = tessera.get("syncs")
        if syncs is None:
            continue
        where = f"{where}.config.meta.tessera.syncs"
        if not isinstance(syncs, list):
            problems.append(f"{label}: {where}: expected a list of syncs")
            continue
        audience = model.get("name")
        if not isinstance(audience, str) or not audience:
            problems.append(f"{label}: models[{index}].name: the model needs a name")
            continue
        for position, item in enumerate(syncs):
            if select is not None and isinstance(item, dict) and not select(item):
                continue
            spec = check_sync(
                item, f"{label}: {where}[{position}]", audience, registry, audience_columns
            )
            if isinstance(spec, SyncSpec):
                specs.append(spec)
            else:
                problems.extend(spec)
    return specs


def check_sync(
    item: Any,
    where: str,
    audience: str,
    registry: Mapping[str, type[Destination]],
    audience_columns: Mapping[str, list[str]] | None,
) -> SyncSpec | list[str]:
    if not isinstance(item, dict):
        return [f"{where}: expected a mapping with {', '.join(_REQUIRED_KEYS)}"]
    problems = [
        f"{where}.{key}: unknown setting; expected one of {', '.join(_ALLOWED_KEYS)}"
        for key in item
        if key not in _ALLOWED_KEYS
    ]
    problems += [f"{where}.{key}: required" for key in _REQUIRED_KEYS if key not in item]
    if problems:
        return problems

    name, destination_name, mode = item["name"], item["destination"], item["mode"]
    key, fields = item["key"], item["fields"]
    delete, options = item.get("delete", "none"), item.get("options") or {}
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"{where}.name: {name!r} must be lowercase letters, digits and _")
    destination = registry.get(destination_name) if isinstance(destination_name, str) else None
    if destination is None:
        known = ", ".join(sorted(registry)) or "none registered"
        problems.append(f"{where}.destination: {destination_name!r} is not one of {known}")
    if mode not in MODES:
        problems.append(f"{where}.mode: {mode!r} is not one of {', '.join(MODES)}")
    elif destination is not None and mode not in destination.supported_modes:
        supported = ", ".join(m for m in MODES if m in destination.supported_modes)
        problems.append(
            f"{where}.mode: destination {destination_name!r} does not support {mode!r} "
            f"(it supports {supported})"
        )
    if delete not in DELETE_BEHAVIOURS:
        problems.append(f"{where}.delete: {delete!r} is not one of {', '.join(DELETE_BEHAVIOURS)}")
    elif delete == "remove" and destination is not None and not can_remove(destination):
        problems.append(
            f"{where}.delete: destination {destination_name!r} cannot remove records; use 'none'"
        )
    if not isinstance(key, str) or not _COLUMN.fullmatch(key):
        problems.append(f"{where}.key: {key!r} is not a column name")
    if not isinstance(fields, dict) or not fields:
        problems.append(f"{where}.fields: expected a mapping of destination field: audience column")
    else:
        for target, column in fields.items():
            if not isinstance(target, str) or not target:
                problems.append(f"{where}.fields: {target!r} is not a destination field name")
            if not isinstance(column, str) or not _COLUMN.fullmatch(column):
                problems.append(f"{where}.fields.{target}: {column!r} is not a column name")
    if not isinstance(options, dict):
        problems.append(f"{where}.options: expected a mapping of setting: value")
    elif destination is not None:
        problems += _check_options(options, destination, f"{where}.options")
    if problems:
        return problems

    spec = SyncSpec(
        name=name,
        audience=audience,
        destination=destination_name,
        mode=mode,
        key=key,
        fields=dict(fields),
        delete=delete,
        options=dict(options),
        source=where.split(":")[0],
    )
    if audience_columns is not None:
        assert destination is not None
        problems += _check_columns(spec, destination, audience_columns, where)
    return problems or spec


def can_remove(destination: type[Destination]) -> bool:
    """A destination that can mirror can remove records."""
    return "mirror" in destination.supported_modes


def _check_options(
    options: Mapping[str, Any], destination: type[Destination], where: str
) -> list[str]:
    fields = option_fields(destination.config_class)
    secrets = secret_options(destination.config_class)
    problems = []
    for option in options:
        setting = fields.get(option)
        if setting is None:
            known = ", ".join(fields) or "none"
            problems.append(
                f"{where}.{option}: destination {destination.name!r} has no such setting "
                f"(settings: {known})"
            )
        elif option in secrets:
            env = env_var(destination.name, option)
            problems.append(f"{where}.{option}: a secret; set it in environment variable {env}")
    return problems


def _check_columns(
    spec: SyncSpec,
    destination: type[Destination],
    audience_columns: Mapping[str, list[str]],
    where: str,
) -> list[str]:
    columns = audience_columns.get(spec.audience)
    if columns is None:
        return [
            f"{where}: audience table {AUDIENCE_SCHEMA}.{spec.audience} does not exist; "
            "build it (dbt build) before syncing"
        ]
    problems = []
    if spec.key not in columns:
        problems.append(f"{where}.key: {spec.key!r} is not a column of {spec.audience}")
    for target, column in spec.fields.items():
        if column not in columns:
            problems.append(
                f"{where}.fields.{target}: {column!r} is not a column of {spec.audience}"
            )
    consent = spec.consent_column(destination)
    if consent and consent not in columns:
        problems.append(
            f"{where}.destination: {destination.name!r} sends only customers who consented to "
            f"{destination.consent_purpose!r}, but {spec.audience} has no column {consent}"
        )
    return problems
