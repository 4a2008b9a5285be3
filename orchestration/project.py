"""The one project configuration: the vars of dbt_project.yml with a run's overrides, checked.

A run resolves it once (``ProjectConfig.load``) and hands the same object to every consumer:
dbt gets the overrides as ``--vars`` (so dbt merges them exactly as the rest of Tessera does),
the predictive step, the identity-health check, the raw-rows sensor and the syncs read the
merged values from it. Overrides are YAML, a superset of JSON, as dbt parses ``--vars``:
``{tessera_clv_time_unit: week}`` and ``{"tessera_clv_time_unit": "week"}`` are the same.

Known vars (the ``tessera_`` ones dbt_project.yml declares) are checked when the configuration is
loaded, and an error names the var and what it must be; a ``tessera_`` var the project does not
declare is refused (a typo would otherwise be ignored silently), with the closest known name.
Vars without the prefix pass through untouched: they belong to the user's own models.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestration.dbt_project import project_dir
from orchestration.identity import IDENTIFIER_TYPES

PREFIX = "tessera_"
#: The environment variable a deployment (``dagster dev``, the daemon) sets its overrides in.
VARS_ENV = "TESSERA_VARS"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class ConfigError(ValueError):
    """A var's value (or the overrides' text) is unusable; the message names the var."""


def parse_vars(text: str | Mapping[str, Any] | None, where: str = "--vars") -> dict[str, Any]:
    """Overrides from YAML text (JSON is YAML) or a mapping; ``where`` names them in errors."""
    if text is None or text == "":
        return {}
    if isinstance(text, Mapping):
        parsed: Any = dict(text)
    else:
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(
                f"{where} is not valid YAML ({problem}); write it as dbt does, "
                "e.g. '{tessera_clv_time_unit: week}'"
            ) from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ConfigError(
            f"{where} must be a mapping of var names to values, e.g. "
            f"'{{tessera_clv_time_unit: week}}', got {type(parsed).__name__} {parsed!r}"
        )
    for name in parsed:
        if not isinstance(name, str):
            raise ConfigError(f"{where}: var names are text, got {name!r}")
    return parsed


# Checks of the known vars: each returns the value as consumers use it, or raises ValueError
# saying what the value must be (the var's name is added by ``_check``).


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty text")
    return value


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ValueError("must be a schema or table name (letters, digits, _)")
    return value


def _country(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value):
        raise ValueError("must be a two-letter ISO 3166 country code such as US or GB")
    return value.upper()


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number")
    return float(value)


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError("must be a positive number")
    return number


def _at_least_zero(value: Any) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _fraction(value: Any) -> float:
    number = _number(value)
    if not 0 <= number <= 1:
        raise ValueError("must be a number from 0 to 1")
    return number


def _whole(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ValueError(f"must be a whole number, {minimum} or more")
        if value < minimum:
            raise ValueError(f"must be a whole number, {minimum} or more")
        return int(value)

    return check


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be {' or '.join(choices)}")
        return value

    return check


def _date_or_null(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError("must be a date 'YYYY-MM-DD' or null") from None


def _instant_or_null(value: Any) -> Any:
    if value in (None, "") or isinstance(value, dt.date):
        return value
    try:
        dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError("must be 'YYYY-MM-DD', 'YYYY-MM-DD HH:MM:SS' or null") from None
    return value


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError("must be a list of names")
    return value


def _identifier_types(value: Any) -> list[str]:
    names = _names(value)
    unknown = [name for name in names if name not in IDENTIFIER_TYPES]
    if unknown:
        raise ValueError(
            f"names unknown identifier types {unknown} (known: {list(IDENTIFIER_TYPES)})"
        )
    return names


def _fraction_or_null(value: Any) -> float | None:
    return None if value in (None, "") else _fraction(value)


def _identifier_or_null(value: Any) -> str | None:
    return None if value in (None, "") else _identifier(value)


def _counts_by_type(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of identifier type to a whole number")
    for name, count in value.items():
        if name not in IDENTIFIER_TYPES:
            raise ValueError(f"{name} is not an identifier type (known: {list(IDENTIFIER_TYPES)})")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{name} must be a whole number, 1 or more, got {count!r}")
    return value


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping")
    return value


def _event_tables(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(event, str) and event and isinstance(table, str) and _IDENTIFIER.match(table)
        for event, table in value.items()
    ):
        raise ValueError("must be a mapping of event name to table name")
    return value


def _regex(value: Any) -> str:
    text = _text(value)
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"must be a regular expression ({exc})") from None
    return text


def _postgres_memory_or_null(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB)", str(value)):
        raise ValueError(f"must be a size such as 256MB (kB, MB or GB) or null, got {value!r}")
    return str(value)


def _risk_tiers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or set(value) != {"high", "medium"}:
        raise ValueError("must be {high: <probability>, medium: <probability>}")
    high, medium = _fraction(value["high"]), _fraction(value["medium"])
    if medium > high:
        raise ValueError(f"medium ({medium:g}) must not be above high ({high:g})")
    return {"high": high, "medium": medium}


def _propensity_models(value: Any) -> Any:
    from orchestration.predictive.propensity import parse_models

    parse_models(value)
    return value


def _cohorts(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or set(value) != {"high", "medium"}:
        raise ValueError("must be {high: <percentile>, medium: <percentile>}")
    high, medium = _number(value["high"]), _number(value["medium"])
    if not 0 < medium <= high < 100:
        raise ValueError("needs 0 < medium <= high < 100 (percentiles)")
    return {"high": high, "medium": medium}


_INTERACTION_KINDS = ("purchase", "add_to_cart", "view")
_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*([.][A-Za-z_][A-Za-z0-9_$]*){0,2}$")


def _interaction_weights(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or set(value) != set(_INTERACTION_KINDS):
        raise ValueError("must be {purchase: <weight>, add_to_cart: <weight>, view: <weight>}")
    weights = {kind: _at_least_zero(value[kind]) for kind in _INTERACTION_KINDS}
    if not any(weights.values()):
        raise ValueError("must give at least one kind of interaction a weight above 0")
    return weights


def _recommendation_exclusions(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict) or not set(value) <= {"categories", "products"}:
        raise ValueError("must be {categories: [<category>, ...], products: [<product id>, ...]}")
    return {key: _names(value.get(key) or []) for key in ("categories", "products")}


def _relation_or_null(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _RELATION.match(value):
        raise ValueError("must be a table name such as inventory.out_of_stock, or null")
    return value


def _position_weights(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or set(value) != {"first", "last"}:
        raise ValueError("must be {first: <share>, last: <share>}")
    first, last = _fraction(value["first"]), _fraction(value["last"])
    if first + last > 1:
        raise ValueError(f"first and last ({first:g} + {last:g}) must add up to at most 1")
    return {"first": first, "last": last}


_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _funnel_steps(name: str, steps: Any) -> None:
    if not isinstance(steps, list) or len(steps) < 2:
        raise ValueError(f"funnel {name}: steps must list at least two steps")
    for index, step in enumerate(steps, 1):
        if not isinstance(step, dict) or not isinstance(step.get("event"), str):
            raise ValueError(f"funnel {name}, step {index}: needs an event (an event_name)")
        properties = step.get("properties") or {}
        if not isinstance(properties, dict) or not all(
            isinstance(key, str) and _IDENTIFIER.match(key) for key in properties
        ):
            raise ValueError(
                f"funnel {name}, step {index}: properties must map property names "
                "(letters, digits, _) to values"
            )


def _funnels(value: Any) -> list[dict[str, Any]]:
    """The shape macro funnel_settings reads; it checks the same when dbt runs on its own."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise ValueError("must be a list of funnels {name, window_hours, steps}")
    seen: set[str] = set()
    for number, funnel in enumerate(value, 1):
        name = funnel.get("name") if isinstance(funnel, dict) else None
        if not isinstance(name, str) or not _SNAKE.match(name):
            raise ValueError(f"funnel {number}: needs a snake_case name")
        if name in seen:
            raise ValueError(f"funnel {name}: declared twice")
        seen.add(name)
        hours = funnel.get("window_hours")
        if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
            raise ValueError(f"funnel {name}: window_hours must be a number above 0, got {hours!r}")
        _funnel_steps(name, funnel.get("steps"))
    return value


_TABLE_VARS = (
    "order_items",
    "identifies",
    "tracks",
    "pages",
    "orders",
    "crm_contacts",
    "support_tickets",
    "consents",
    "deletion_requests",
)

#: Known var -> check. A var dbt_project.yml declares and this table does not is passed on as is.
CHECKS: dict[str, Callable[[Any], Any]] = {
    "tessera_source_preset": _one_of("tessera", "segment", "rudderstack"),
    "tessera_event_tables": _event_tables,
    "tessera_raw_schema": _identifier,
    **{f"tessera_{table}_table": _identifier for table in _TABLE_VARS},
    "tessera_default_country": _country,
    "tessera_identity_fast_path": _boolean,
    "tessera_mutable_sources": _names,
    "tessera_staging_lookback_hours": _whole(0),
    "tessera_postgres_work_mem": _postgres_memory_or_null,
    "tessera_identity_blocklist_regex": _regex,
    "tessera_identity_shared_max_people": _whole(1),
    "tessera_identity_account_types": _identifier_types,
    "tessera_identity_evidence_depth": _whole(1),
    "tessera_identity_shared_device_thresholds": _counts_by_type,
    "tessera_identity_plan_schema": _identifier_or_null,
    "tessera_identity_fuzzy_matching": _boolean,
    "tessera_identity_fuzzy_auto_apply": _fraction_or_null,
    "tessera_identity_limits": _counts_by_type,
    "tessera_max_identifiers_per_customer": _whole(1),
    "tessera_identity_type_priority": _identifier_types,
    "tessera_survivorship": _mapping,
    "tessera_consent_purposes": _names,
    "tessera_clv_time_unit": _one_of("day", "week"),
    "tessera_clv_calibration_end": _date_or_null,
    "tessera_clv_horizon": _positive,
    "tessera_clv_discount_rate": _at_least_zero,
    "tessera_churn_window_days": _whole(1),
    "tessera_churn_risk_tiers": _risk_tiers,
    "tessera_recommendation_count": _whole(1),
    "tessera_recommendation_lookback_days": _whole(1),
    "tessera_recommendation_half_life_days": _positive,
    "tessera_recommendation_allow_repurchase": _boolean,
    "tessera_recommendation_interaction_weights": _interaction_weights,
    "tessera_recommendation_exclusions": _recommendation_exclusions,
    "tessera_recommendation_exclusions_table": _relation_or_null,
    "tessera_recommendation_holdout_days": _whole(1),
    "tessera_propensity_models": _propensity_models,
    "tessera_propensity_as_of": _instant_or_null,
    "tessera_propensity_max_training_customers": _whole(1000),
    "tessera_propensity_cohorts": _cohorts,
    "tessera_session_timeout_minutes": _whole(1),
    "tessera_attribution_conversion_events": _names,
    "tessera_attribution_lookback_days": _whole(1),
    "tessera_attribution_half_life_days": _positive,
    "tessera_attribution_position_weights": _position_weights,
    "tessera_funnels": _funnels,
    "tessera_audience_as_of": _instant_or_null,
    "tessera_sync_max_delete_fraction": _fraction,
    "tessera_sync_max_row_attempts": _whole(1),
}


#: Vars Tessera no longer reads -> what replaced them: set anywhere, they are refused rather
#: than silently ignored.
RETIRED: dict[str, str] = {
    "tessera_identity_shared_identifier_thresholds": (
        "shared identifiers are now judged on evidence: tessera_identity_shared_max_people "
        "(separate people one identifier may join) and tessera_identity_shared_device_thresholds "
        "(browsers and devices, as before)"
    ),
}


def check_var(name: str, value: Any, where: str = "var") -> Any:
    """``value`` of var ``name`` as consumers use it, or ConfigError naming the var; a var
    without a check is returned as it is."""
    check = CHECKS.get(name)
    if check is None:
        return value
    try:
        return check(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {name} {exc}, got {value!r}") from None


@dataclass(frozen=True)
class ProjectConfig:
    """dbt_project.yml's vars (``defaults``) with a run's ``overrides``, checked.

    ``values`` is what dbt sees: every var, the overrides winning. ``checked`` holds the known
    vars as consumers use them (a date as ``datetime.date``, a number as ``float``).
    """

    defaults: Mapping[str, Any]
    overrides: Mapping[str, Any]
    checked: Mapping[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in self.values:
            if name in RETIRED:
                where = "--vars" if name in self.overrides else "dbt_project.yml vars"
                raise ConfigError(f"{where}: {name} is no longer read: {RETIRED[name]}")
        for name in self.overrides:
            if name.startswith(PREFIX) and name not in self.defaults and name not in CHECKS:
                close = difflib.get_close_matches(name, [*self.defaults, *CHECKS], n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(f"--vars: {name} is not a Tessera var{hint}")
        checked = {}
        for name, value in self.values.items():
            where = "--vars" if name in self.overrides else "dbt_project.yml vars"
            checked[name] = check_var(name, value, where)
        object.__setattr__(self, "checked", checked)
        accounts = checked.get("tessera_identity_account_types") or []
        ranked = checked.get("tessera_identity_type_priority") or []
        unranked = [name for name in accounts if name not in ranked]
        if unranked:
            raise ConfigError(
                f"vars: tessera_identity_account_types {unranked} must also be listed in "
                f"tessera_identity_type_priority, which ranks them, got {ranked!r}"
            )

    @classmethod
    def load(
        cls, overrides: str | Mapping[str, Any] | None = None, project: Path | None = None
    ) -> ProjectConfig:
        """The project's vars (``project``: the dbt project folder, default ``project_dir()``)
        with ``overrides`` (YAML text or a mapping), checked."""
        path = (project or project_dir()) / "dbt_project.yml"
        overrides = parse_vars(overrides)
        defaults = _project_vars(path, path.stat().st_mtime_ns)
        return cls(defaults=defaults, overrides=overrides)

    @property
    def values(self) -> dict[str, Any]:
        return {**self.defaults, **self.overrides}

    def __getitem__(self, name: str) -> Any:
        if name not in self.checked:
            raise KeyError(f"var {name} is not set in dbt_project.yml or --vars")
        return self.checked[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.checked.get(name, default)

    @property
    def raw_schema(self) -> str:
        return self["tessera_raw_schema"]

    @property
    def max_identifiers_per_customer(self) -> int:
        return self["tessera_max_identifiers_per_customer"]

    def dbt_args(self) -> list[str]:
        """``--vars`` for a dbt command: the overrides only (dbt reads the rest itself)."""
        return ["--vars", self.overrides_json()] if self.overrides else []

    def overrides_json(self) -> str:
        return json.dumps(dict(self.overrides), sort_keys=True, default=str)


@functools.lru_cache(maxsize=8)
def _project_vars(path: Path, _mtime_ns: int) -> dict[str, Any]:
    # Keyed on the file's modification time too: an edited dbt_project.yml is read again.
    with open(path, encoding="utf-8") as handle:
        return dict((yaml.safe_load(handle) or {}).get("vars") or {})
