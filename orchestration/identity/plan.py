"""`tessera identity plan`: what a change to the identity rules would do, before it runs.

The candidate partition is built into scratch schema ``identity_plan`` by the same dbt models,
with the changed vars, blocklist or override file, starting from a copy of the live identity
state (node ids, customer registry, components, limit drops, override log), so that it is an
incremental run and customer ids stay comparable. The models that depend on the sources alone
(observations, edges) are read from the live schema, not rebuilt. Nothing the live marts or
syncs read is written. Then the two partitions are compared: merges (a candidate customer
holding identifiers of several live customers), splits (a live customer whose identifiers go to
several candidate customers), identifiers that would stop or start linking, and the audience
members whose customers those touch.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.dbt_project import run_dbt
from orchestration.identity.overrides import OVERRIDE_COLUMNS
from orchestration.project import ProjectConfig
from orchestration.warehouse import Warehouse, quote_identifier, quote_literal

PLAN_SCHEMA = "identity_plan"
LIVE_SCHEMA = "identity"
# Depend on the sources only, never on what a plan changes: read from the live schema.
LIVE_MODELS = ("identity_observations", "identity_retracted_observations", "identity_edges")
# The state an incremental identity run starts from: copied into the plan schema first.
STATE_TABLES = (
    "identity_node_ids",
    "identity_customer_registry",
    "identity_identifiers",
    "identity_components",
    "identity_limit_drops",
    "identity_override_log",
    "identity_tool_overrides",
)
# Files a plan may replace, as the seed tables their rows stand in for, with their header.
SEED_FILES = {
    "identifier_blocklist": ("identifier_type", "identifier_value", "reason"),
    "identity_overrides": OVERRIDE_COLUMNS,
}
SAMPLES = 5


class PlanError(ValueError):
    """The plan cannot be made; the message says why."""


@dataclass(frozen=True)
class Change:
    """One merge or split: the customers before and after, and the identifiers that move."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    identifiers: int


@dataclass
class IdentityPlan:
    merges: list[Change] = field(default_factory=list)
    splits: list[Change] = field(default_factory=list)
    stop_linking: list[tuple[str, str, str | None]] = field(default_factory=list)
    start_linking: list[tuple[str, str]] = field(default_factory=list)
    customers_before: int = 0
    customers_after: int = 0
    audiences: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def affected_customers(self) -> set[str]:
        return {c for change in self.merges + self.splits for c in change.before + change.after}


def _read_seed_file(name: str, path: Path) -> list[list[str]]:
    """The rows of a CSV standing in for seed ``name``, or PlanError naming what is wrong."""
    header = SEED_FILES[name]
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            found = next(reader, None)
            rows = [row for row in reader if any(cell.strip() for cell in row)]
    except OSError as exc:
        raise PlanError(f"cannot read {path}: {exc}") from None
    if found is None or tuple(cell.strip() for cell in found) != header:
        raise PlanError(
            f"{path}: the header must be {','.join(header)} (as seed {name}), got {found}"
        )
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise PlanError(f"{path} line {number}: {len(row)} fields, expected {len(header)}")
    return rows


def _load_seed_rows(warehouse: Warehouse, name: str, rows: list[list[str]]) -> None:
    header = SEED_FILES[name]
    columns = ", ".join(f"{column} varchar" for column in header)
    statements = [f"create table {PLAN_SCHEMA}.{name} ({columns})"]
    if rows:
        values = ", ".join(
            "(" + ", ".join("null" if cell == "" else quote_literal(cell) for cell in row) + ")"
            for row in rows
        )
        statements.append(f"insert into {PLAN_SCHEMA}.{name} values {values}")
    warehouse.execute(statements)


def build_candidate(
    warehouse: Warehouse,
    vars_overrides: Mapping[str, Any] | None = None,
    blocklist: Path | None = None,
    overrides: Path | None = None,
) -> None:
    """Build the candidate partition into schema ``identity_plan`` (replaced)."""
    # The files first: a mistake in one is reported before anything is copied or built.
    files = {
        name: _read_seed_file(name, Path(path))
        for name, path in (("identifier_blocklist", blocklist), ("identity_overrides", overrides))
        if path is not None
    }
    if not warehouse.relation_exists(LIVE_SCHEMA, "identity_customer_map"):
        raise PlanError(
            f"{warehouse.describe()} has no identity models yet: run `tessera run` first, "
            "then plan changes against it"
        )
    config = ProjectConfig.load(dict(vars_overrides or {}))
    statements = [
        f"drop schema if exists {PLAN_SCHEMA} cascade",
        f"create schema {PLAN_SCHEMA}",
    ]
    statements.extend(
        f"create table {PLAN_SCHEMA}.{quote_identifier(table)} as "
        f"select * from {LIVE_SCHEMA}.{quote_identifier(table)}"
        for table in STATE_TABLES
        if warehouse.relation_exists(LIVE_SCHEMA, table)
    )
    warehouse.execute(statements)
    for name, rows in files.items():
        _load_seed_rows(warehouse, name, rows)
    run_dbt(
        [
            "run",
            "--select",
            "path:models/identity",
            "--exclude",
            *LIVE_MODELS,
        ],
        warehouse,
        dbt_vars={**config.overrides, "tessera_identity_plan_schema": PLAN_SCHEMA},
        quiet=True,
    )


def compare(warehouse: Warehouse) -> IdentityPlan:
    """The live partition against the candidate one in ``identity_plan``."""
    plan = IdentityPlan()
    pairs = warehouse.query(
        f"""
        select
            live.identifier_type, live.identifier_value, live.customer_id, candidate.customer_id
        from {LIVE_SCHEMA}.identity_customer_map as live
        full outer join {PLAN_SCHEMA}.identity_customer_map as candidate
            on live.identifier_type = candidate.identifier_type
            and live.identifier_value = candidate.identifier_value
        """
    )
    blocked = dict(
        ((t, v), reason)
        for t, v, reason in warehouse.query(
            f"select identifier_type, identifier_value, blocked_reason "
            f"from {PLAN_SCHEMA}.identity_blocked_identifiers"
        )
    )
    to_after: dict[str, dict[str, int]] = {}
    from_before: dict[str, dict[str, int]] = {}
    before_ids, after_ids = set(), set()
    for identifier_type, identifier_value, before, after in pairs:
        if before is not None:
            before_ids.add(before)
        if after is not None:
            after_ids.add(after)
        if before is None:
            plan.start_linking.append((identifier_type, identifier_value))
            continue
        if after is None:
            reason = blocked.get((identifier_type, identifier_value))
            plan.stop_linking.append((identifier_type, identifier_value, reason))
            continue
        to_after.setdefault(before, {}).setdefault(after, 0)
        to_after[before][after] += 1
        from_before.setdefault(after, {}).setdefault(before, 0)
        from_before[after][before] += 1
    plan.customers_before, plan.customers_after = len(before_ids), len(after_ids)
    for after, sources in sorted(from_before.items()):
        if len(sources) > 1:
            plan.merges.append(Change(tuple(sorted(sources)), (after,), sum(sources.values())))
    for before, targets in sorted(to_after.items()):
        if len(targets) > 1:
            moved = sum(n for after, n in targets.items() if after != before)
            plan.splits.append(Change((before,), tuple(sorted(targets)), moved))
    plan.merges.sort(key=lambda c: (-c.identifiers, c.after))
    plan.splits.sort(key=lambda c: (-c.identifiers, c.before))
    plan.stop_linking.sort()
    plan.start_linking.sort()
    plan.audiences = _audience_effects(warehouse, plan, after_ids)
    return plan


def _audience_effects(
    warehouse: Warehouse, plan: IdentityPlan, after_ids: set[str]
) -> dict[str, dict[str, int]]:
    """Per audience table: its members whose customer a merge or split touches, and those whose
    id the plan retires (a mirror sync would remove them under that id)."""
    tables = [
        name
        for (name,) in warehouse.query(
            "select table_name from information_schema.tables "
            "where table_schema = 'audiences' and table_name like 'audience%' "
            "and table_name <> 'audience_membership_history' order by 1"
        )
    ]
    merged = {c for change in plan.merges for c in change.before}
    split = {c for change in plan.splits for c in change.before}
    effects: dict[str, dict[str, int]] = {}
    for table in tables:
        members = {
            row[0]
            for row in warehouse.query(
                f"select distinct customer_id from audiences.{quote_identifier(table)}"
            )
        }
        effects[table] = {
            "members": len(members),
            "in_a_merge": len(members & merged),
            "split": len(members & split),
            "id_retired": len(members - after_ids),
        }
    return effects


def plan_identity(
    warehouse: Warehouse,
    vars_overrides: Mapping[str, Any] | None = None,
    blocklist: Path | None = None,
    overrides: Path | None = None,
) -> IdentityPlan:
    started = time.perf_counter()
    build_candidate(warehouse, vars_overrides, blocklist, overrides)
    plan = compare(warehouse)
    plan.seconds = time.perf_counter() - started
    return plan


def format_plan(plan: IdentityPlan, samples: int = SAMPLES) -> str:
    lines = [
        f"identity plan (candidate partition in schema {PLAN_SCHEMA}, built in "
        f"{plan.seconds:.1f} s; nothing live was changed)",
        f"customers: {plan.customers_before:,} now -> {plan.customers_after:,} with the change",
        f"merges: {len(plan.merges):,} (customers merged into one)",
    ]
    lines.extend(
        f"  {' + '.join(c.before)} -> {c.after[0]} ({c.identifiers} identifiers)"
        for c in plan.merges[:samples]
    )
    lines.append(f"splits: {len(plan.splits):,} (customers split into several)")
    lines.extend(
        f"  {c.before[0]} -> {' + '.join(c.after)} ({c.identifiers} identifiers move)"
        for c in plan.splits[:samples]
    )
    lines.append(f"identifiers that would stop linking: {len(plan.stop_linking):,}")
    for identifier_type, identifier_value, reason in plan.stop_linking[:samples]:
        lines.append(f"  {identifier_type}:{identifier_value}  {reason or 'no longer seen'}")
    lines.append(f"identifiers that would start linking: {len(plan.start_linking):,}")
    for identifier_type, identifier_value in plan.start_linking[:samples]:
        lines.append(f"  {identifier_type}:{identifier_value}")
    if plan.audiences:
        lines.append("audience members whose customer the change touches:")
        for table, effect in plan.audiences.items():
            lines.append(
                f"  {table}: {effect['members']:,} members, {effect['in_a_merge']:,} in a merge, "
                f"{effect['split']:,} split, {effect['id_retired']:,} whose id is retired"
            )
    affected = sorted(plan.affected_customers)
    lines.append(f"affected customer ids ({len(affected):,}):")
    lines.append("  " + (", ".join(affected[:50]) + (" ..." if len(affected) > 50 else "")))
    return "\n".join(lines)
