"""Event triggers declared in the audiences' YAML, beside the batch syncs, checked before the
stream worker runs them.

A trigger sends a customer of its audience to a destination when an event arrives::

    models:
      - name: audience_cart_reachable
        config:
          meta:
            tessera:
              triggers:
                - name: cart_abandoned_webhook     # unique across syncs and triggers
                  event: Product Added             # the track event that starts it
                  absent:                          # optional: and no such event within N minutes
                    event: Order Completed
                    minutes: 30
                  where: {churn_risk_tier: [high, medium]}   # optional: audience column values
                  destination: webhook
                  fields: {email: email, product_id: event_product_id}
                  options: {}

The audience is the trigger's population and its stored traits: the customers in the audience
table at the last batch build (consent, CLV or churn tier and erasure are the audience's own
rules), each with its columns. A trigger fires once per triggering call; its members are sent in
``insert`` mode keyed on ``trigger_id`` (the call's ``messageId``), so each firing reaches the
destination once. A member row has the audience's columns plus ``trigger_id``,
``triggered_at`` (when the rule became true), ``trigger_event`` and ``event_<property>`` for each
of the triggering call's properties named in ``fields``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.activation.config import AUDIENCES_DIR, SyncSpec, check_sync, load_syncs
from orchestration.activation.destination import Destination
from orchestration.declarations import DeclarationError, yaml_documents

TRIGGER_KEY = "trigger_id"
MEMBER_COLUMNS = ("trigger_id", "triggered_at", "trigger_event", "customer_id")
EVENT_PREFIX = "event_"
_TRIGGER_KEYS = ("event", "absent", "where")
_SYNC_KEYS = ("name", "destination", "fields", "options")


class TriggerConfigError(DeclarationError):
    """One or more trigger declarations are invalid; each problem as file: path: why."""

    subject = "trigger declarations"


@dataclass(frozen=True)
class TriggerSpec:
    """One declared trigger: an audience, an event rule and the sync its members go through."""

    name: str
    audience: str
    event: str
    sync: SyncSpec
    absent_event: str | None = None
    absent_minutes: float | None = None
    where: Mapping[str, Any] = field(default_factory=dict)

    @property
    def event_properties(self) -> list[str]:
        """The triggering call's properties the fields name (``event_<property>``)."""
        return [
            column.removeprefix(EVENT_PREFIX)
            for column in self.sync.columns
            if column.startswith(EVENT_PREFIX) and column != "trigger_event"
        ]

    def matches(self, traits: Mapping[str, Any]) -> bool:
        """Whether a member's audience columns pass ``where``: a value, a list of values, or
        ``{min: x, max: y}``."""
        for column, wanted in self.where.items():
            value = traits.get(column)
            if isinstance(wanted, dict):
                if value is None:
                    return False
                if "min" in wanted and value < wanted["min"]:
                    return False
                if "max" in wanted and value > wanted["max"]:
                    return False
            elif isinstance(wanted, list):
                if value not in wanted:
                    return False
            elif value != wanted:
                return False
        return True


def load_triggers(
    project: Path,
    registry: Mapping[str, type[Destination]],
    audience_columns: Mapping[str, list[str]] | None = None,
) -> list[TriggerSpec]:
    """Every trigger declared under ``project``/models/audiences, checked; raise
    TriggerConfigError. ``audience_columns`` turns on the checks that ``where`` names columns of
    the audience."""
    problems: list[str] = []
    triggers: list[TriggerSpec] = []
    taken = {spec.name: spec.source for spec in load_syncs(project, registry)}
    for label, document in yaml_documents(project, AUDIENCES_DIR, problems):
        models = document.get("models") if isinstance(document, dict) else None
        for index, model in enumerate(models if isinstance(models, list) else []):
            if not isinstance(model, dict):
                continue
            tessera = ((model.get("config") or {}).get("meta") or {}).get("tessera") or {}
            declared = tessera.get("triggers") if isinstance(tessera, dict) else None
            if declared is None:
                continue
            where = f"{label}: models[{index}].config.meta.tessera.triggers"
            if not isinstance(declared, list):
                problems.append(f"{where}: expected a list of triggers")
                continue
            for position, item in enumerate(declared):
                found = _check_trigger(
                    item, f"{where}[{position}]", model.get("name"), registry, audience_columns
                )
                if isinstance(found, list):
                    problems += found
                elif found.name in taken:
                    problems.append(
                        f"{where}[{position}].name: {found.name!r} is already used in "
                        f"{taken[found.name]}"
                    )
                else:
                    taken[found.name] = label
                    triggers.append(found)
    if problems:
        raise TriggerConfigError(problems)
    return triggers


def _check_trigger(
    item: Any,
    where: str,
    audience: Any,
    registry: Mapping[str, type[Destination]],
    audience_columns: Mapping[str, list[str]] | None,
) -> TriggerSpec | list[str]:
    if not isinstance(item, dict):
        return [f"{where}: expected a mapping with name, event, destination and fields"]
    allowed = (*_TRIGGER_KEYS, *_SYNC_KEYS)
    problems = [
        f"{where}.{key}: unknown setting; expected one of {', '.join(allowed)} (a trigger "
        "always inserts, keyed on trigger_id)"
        for key in item
        if key not in allowed
    ]
    event = item.get("event")
    if not isinstance(event, str) or not event.strip():
        problems.append(f"{where}.event: required, the name of a track event")
    absent = item.get("absent")
    absent_event = absent_minutes = None
    if absent is not None:
        if not isinstance(absent, dict) or set(absent) != {"event", "minutes"}:
            problems.append(f"{where}.absent: expected {{event: <name>, minutes: <number>}}")
        else:
            absent_event, absent_minutes = absent["event"], absent["minutes"]
            if not isinstance(absent_event, str) or not absent_event.strip():
                problems.append(f"{where}.absent.event: the name of a track event")
            if not isinstance(absent_minutes, int | float) or not 0 < absent_minutes <= 10_080:
                problems.append(f"{where}.absent.minutes: a number of minutes, at most a week")
    conditions = item.get("where") or {}
    if not isinstance(conditions, dict):
        problems.append(f"{where}.where: expected a mapping of audience column: value")
        conditions = {}
    columns = (audience_columns or {}).get(audience) if audience_columns else None
    for column, wanted in conditions.items():
        if columns is not None and column not in columns:
            problems.append(f"{where}.where.{column}: not a column of {audience}")
        if isinstance(wanted, dict) and not set(wanted) <= {"min", "max"}:
            problems.append(f"{where}.where.{column}: a range is {{min: x, max: y}}")
    if not isinstance(audience, str) or not audience:
        problems.append(f"{where}: the model needs a name")
    sync_item = {key: item[key] for key in _SYNC_KEYS if key in item}
    sync_item.update(mode="insert", key=TRIGGER_KEY)
    name = item.get("name")
    spec = check_sync(sync_item, where, name if isinstance(name, str) else "", registry, None)
    if isinstance(spec, list):
        problems += spec
    if problems:
        return problems
    assert isinstance(spec, SyncSpec)
    return TriggerSpec(
        name=spec.name,
        audience=audience,
        event=event.strip(),
        sync=spec,
        absent_event=absent_event.strip() if absent_event else None,
        absent_minutes=float(absent_minutes) if absent_minutes else None,
        where=dict(conditions),
    )
