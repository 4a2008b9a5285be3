"""Which columns hold personal data, and how their values are masked wherever Tessera logs rows.

A column holds personal data when its YAML says ``meta: {pii: true}`` (or ``config.meta.pii``).
Every column whose name looks personal (``looks_personal``: emails, phones, names, address
parts, IP addresses, raw identifier values) must carry the tag; tests/dbt/test_pii_tags.py
enforces it. A column whose name only looks personal (a product's ``name``) says so with
``meta: {pii: false}``. Surrogate keys (``customer_id``) and source-system ids (``user_id``,
``anonymous_id``, ``crm_contact_id``) are pseudonyms, not tagged.

A table with no YAML (an audience table written by a test or by hand) is judged by its column
names alone, so an untagged ``email`` column is still treated as personal: safe by default.

``mask`` turns a value into ``a***@mail.com#1f3a9c`` (an email keeps its first character and its
domain) or ``N***#8b2e07`` (anything else keeps its first character), followed by the first 6
hex digits of the value's SHA-256: an operator can tell rows apart, see which domain a rejected
email had, and find a known customer's rows by masking their value the same way, but cannot read
the value back. The digest is less than the full SHA-256 that the ad platforms receive.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Name fragments of personal columns; matched anywhere in a lowercased name.
PERSONAL_NAME_PATTERNS = (
    r"email",
    r"phone",
    r"(?:first|last|middle|full|given|family|display|user)_?name|surname|^name$",
    r"address|street|(?:^|_)city(?:_|$)|postal_code|postcode|(?:^|_)zip(?:_|$)",
    r"(?:^|_)ip(?:_|$)",
    r"identifier_value|subject_value",
    r"birth|(?:^|_)ssn(?:_|$)",
)
# Names that carry one of the fragments but hold no personal value: flags, counts, kinds, and
# where a value came from (customers.email_source: a source table's name).
NOT_PERSONAL_NAME_PATTERNS = (r"^(?:has|is)_", r"_(?:count|type|reason|rank|priority|source)$")

_PERSONAL = re.compile("|".join(PERSONAL_NAME_PATTERNS))
_NOT_PERSONAL = re.compile("|".join(NOT_PERSONAL_NAME_PATTERNS))
_DIGEST_LENGTH = 6


def looks_personal(column: str) -> bool:
    """Whether a column's name says it holds personal data (``email``, ``requester_email``,
    ``first_name``, ``identifier_value_a``), not a flag, count or provenance about it
    (``has_consent_email_marketing``, ``emails_count``, ``email_source``)."""
    name = column.lower()
    return _PERSONAL.search(name) is not None and _NOT_PERSONAL.search(name) is None


@dataclass(frozen=True)
class DeclaredColumn:
    """One column as a YAML file under models/ declares it."""

    path: Path
    #: ``model`` or ``source``.
    kind: str
    #: The model's name, or ``source_name.table_name``.
    relation: str
    column: str
    pii: bool
    #: The YAML says ``pii: false``: reviewed, not personal whatever the name suggests.
    not_pii: bool = False


def declared_columns(project_dir: Path) -> Iterator[DeclaredColumn]:
    """Every column declared for a model or a source table in the project's YAML files."""
    for folder in _model_paths(project_dir):
        for path in sorted(folder.rglob("*.yml")) + sorted(folder.rglob("*.yaml")):
            document = _load_yaml(path.read_text(encoding="utf-8")) or {}
            for model in document.get("models") or []:
                for column in model.get("columns") or []:
                    yield DeclaredColumn(
                        path, "model", model["name"], column["name"], *_pii_tags(column)
                    )
            for source in document.get("sources") or []:
                for table in source.get("tables") or []:
                    relation = f"{source['name']}.{table['name']}"
                    for column in table.get("columns") or []:
                        yield DeclaredColumn(
                            path, "source", relation, column["name"], *_pii_tags(column)
                        )


def pii_columns(project_dir: Path) -> dict[str, set[str]]:
    """Model name -> its columns tagged ``pii: true``, for every model with at least one."""
    tagged: dict[str, set[str]] = {}
    for declared in declared_columns(project_dir):
        if declared.kind == "model" and declared.pii:
            tagged.setdefault(declared.relation, set()).add(declared.column)
    return tagged


def table_pii_columns(
    table: str, columns: Iterable[str], project_dir: Path | None = None
) -> set[str]:
    """Which of ``columns`` of ``table`` to treat as personal: those the dbt model of that name
    tags, and any whose name looks personal (a table no YAML describes is judged by names)."""
    columns = list(columns)
    tagged = _model_pii_columns(table, project_dir or _default_project_dir())
    return {column for column in columns if column in tagged or looks_personal(column)}


def mask(value: Any) -> str | None:
    """``a***@mail.com#1f3a9c``: see the module docstring; None stays None."""
    if value is None:
        return None
    text = str(value).strip()
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_DIGEST_LENGTH]
    local, at, domain = text.rpartition("@")
    shown = f"{local[:1]}***@{domain}" if at and local else f"{text[:1]}***"
    return f"{shown}#{digest}"


def scrub(text: str, values: Collection[Any]) -> str:
    """``text`` with every whole occurrence of one of ``values`` (any case) masked; None values
    are skipped.

    "Whole" means not inside a longer word, so a short name such as ``Al`` leaves ``invalid``
    alone. Longer values are matched first, so ``Name10`` is not masked as ``Name1`` + ``0``.
    """
    # An API may echo a value in another case; it is masked as the value itself, so one value
    # has one mask everywhere.
    originals = {
        str(value).strip().lower(): str(value).strip() for value in values if value is not None
    }
    # Only the values the text holds go into the pattern: a batch-wide error is scrubbed of the
    # values of thousands of records.
    lowered = text.lower()
    words = sorted((word for word in originals if word and word in lowered), key=len, reverse=True)
    if not words:
        return text
    pattern = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(word) for word in words) + r")(?!\w)",
        re.IGNORECASE,
    )
    return pattern.sub(lambda match: mask(originals[match.group().lower()]) or "", text)


def _load_yaml(text: str) -> Any:
    # libyaml's loader when PyYAML has it: the tag test reads every file of the project.
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _pii_tags(column: dict[str, Any]) -> tuple[bool, bool]:
    """(tagged ``pii: true``, tagged ``pii: false``)."""
    meta = column.get("meta") or {}
    config_meta = (column.get("config") or {}).get("meta") or {}
    values = {meta.get("pii"), config_meta.get("pii")}
    return True in values, False in values and True not in values


def _model_paths(project_dir: Path) -> list[Path]:
    project = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    return [project_dir / folder for folder in project.get("model-paths") or ["models"]]


def _model_pii_columns(model: str, project_dir: Path | None) -> set[str]:
    if project_dir is None:
        return set()
    # Only the few files that can declare the model are parsed: this runs once per sync.
    needle = re.compile(rf"name:\s*['\"]?{re.escape(model)}['\"]?\s*$", re.MULTILINE)
    tagged: set[str] = set()
    for folder in _model_paths(project_dir):
        for path in sorted(folder.rglob("*.yml")) + sorted(folder.rglob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            if not needle.search(text):
                continue
            for item in (_load_yaml(text) or {}).get("models") or []:
                if item.get("name") == model:
                    tagged |= {c["name"] for c in item.get("columns") or [] if _pii_tags(c)[0]}
    return tagged


def _default_project_dir() -> Path | None:
    """The checkout's dbt project, or None when Tessera runs without one (names decide)."""
    from orchestration.dbt_project import DbtRunError, project_dir

    try:
        return project_dir()
    except DbtRunError:
        return None
