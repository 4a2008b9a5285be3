"""Identity overrides written by tools, and `tessera identity unmerge`.

People edit seed ``identity_overrides``; tools append to table ``identity.identity_tool_overrides``
(same columns, plus when it was written). Neither is built by dbt, so both survive
``--full-refresh``; model ``identity_override_requests`` reads both and every run applies them
(README, Identity stitching: Overrides).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from orchestration.identity import IDENTIFIER_TYPES
from orchestration.identity.explain import ExplainError, find_identifier
from orchestration.project import ProjectConfig
from orchestration.warehouse import Warehouse

ACTIONS = ("always_link", "never_link", "ignore")
TOOL_TABLE = "identity.identity_tool_overrides"
#: The columns of seed identity_overrides, and of the tool table after them created_at.
OVERRIDE_COLUMNS = (
    "action",
    "identifier_type",
    "identifier_value",
    "other_identifier_type",
    "other_identifier_value",
    "created_by",
    "reason",
)
_COLUMNS = (*OVERRIDE_COLUMNS, "created_at")


class OverrideError(ValueError):
    """An override that cannot be written; the message names what is wrong."""


@dataclass(frozen=True)
class Override:
    action: str
    identifier_type: str
    identifier_value: str
    other_identifier_type: str | None
    other_identifier_value: str | None
    created_by: str
    reason: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise OverrideError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        for kind in (self.identifier_type, self.other_identifier_type):
            if kind is not None and kind not in IDENTIFIER_TYPES:
                raise OverrideError(f"{kind!r} is not an identifier type")
        linked = self.other_identifier_type is not None
        if linked != (self.action != "ignore"):
            raise OverrideError(f"{self.action} names {'one' if linked else 'two'} identifiers")
        if not self.created_by.strip() or not self.reason.strip():
            raise OverrideError("an override needs who decided it (--by) and why (--reason)")


def ensure_tool_table(warehouse: Warehouse) -> None:
    text = "varchar" if warehouse.duckdb_path is not None else "text"
    columns = ", ".join(f"{name} {text}" for name in OVERRIDE_COLUMNS)
    warehouse.execute(
        [
            "create schema if not exists identity",
            f"create table if not exists {TOOL_TABLE} ({columns}, created_at timestamp)",
        ]
    )


def write_override(warehouse: Warehouse, override: Override) -> None:
    """Append ``override`` to the tool table (created when missing); applied by the next run."""
    write_overrides(warehouse, [override])


def write_overrides(warehouse: Warehouse, overrides: list[Override]) -> None:
    """Append ``overrides`` to the tool table in one transaction; applied by the next run."""
    if not overrides:
        return
    ensure_tool_table(warehouse)
    created_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [
        [
            override.action,
            override.identifier_type,
            override.identifier_value,
            override.other_identifier_type,
            override.other_identifier_value,
            override.created_by,
            override.reason,
            created_at,
        ]
        for override in overrides
    ]
    marks = ", ".join([warehouse.placeholder] * len(_COLUMNS))
    sql = f"insert into {TOOL_TABLE} ({', '.join(_COLUMNS)}) values ({marks})"
    if warehouse.duckdb_path is not None:
        with warehouse.duckdb_connection() as con:
            con.executemany(sql, rows)
        return
    with warehouse.postgres_connection() as con, con.transaction(), con.cursor() as cur:
        cur.executemany(sql, rows)


@dataclass(frozen=True)
class Unmerge:
    """What `tessera identity unmerge` decided: split ``identifier`` away from ``anchor``."""

    customer_id: str
    identifier: tuple[str, str]
    anchor: tuple[str, str]
    override: Override

    def describe(self) -> str:
        return (
            f"never_link written: {self.identifier[0]}:{self.identifier[1]} will be split from "
            f"customer {self.customer_id} on the next run (kept apart from "
            f"{self.anchor[0]}:{self.anchor[1]}, its longest-held identifier, so the part "
            "holding it keeps the id; each other identifier goes with the nearer of the two)"
        )


def unmerge(
    warehouse: Warehouse, customer_id: str, identifier: str, created_by: str, reason: str
) -> Unmerge:
    """Write a never_link override that splits ``identifier`` (type:value or a value, as
    ``tessera explain`` takes it) from customer ``customer_id`` on the next run."""
    if not warehouse.relation_exists("identity", "identity_customer_map"):
        raise OverrideError(
            f"{warehouse.describe()} has no identity models yet: run `tessera run` first"
        )
    try:
        identifier_type, identifier_value = find_identifier(warehouse, identifier)
    except ExplainError as exc:
        raise OverrideError(str(exc)) from None
    mark = warehouse.placeholder
    holds = warehouse.query(
        "select customer_id from identity.identity_customer_map "
        f"where identifier_type = {mark} and identifier_value = {mark}",
        [identifier_type, identifier_value],
    )
    if not holds or holds[0][0] != customer_id:
        owner = f"customer {holds[0][0]}" if holds else "no customer"
        raise OverrideError(
            f"{identifier_type}:{identifier_value} belongs to {owner}, not {customer_id}"
        )
    priority = ProjectConfig.load()["tessera_identity_type_priority"]
    # The customer's identifiers by how long they have held it: the registry row that gave each
    # its current customer.
    held = warehouse.query(
        f"""
        select registry.identifier_type, registry.identifier_value, max(registry.assigned_at)
        from identity.identity_customer_registry as registry
        inner join identity.identity_customer_map as map
            on registry.identifier_type = map.identifier_type
            and registry.identifier_value = map.identifier_value
            and registry.customer_id = map.customer_id
        where map.customer_id = {mark}
        group by registry.identifier_type, registry.identifier_value
        """,
        [customer_id],
    )
    others = [row for row in held if (row[0], row[1]) != (identifier_type, identifier_value)]
    if not others:
        raise OverrideError(
            f"customer {customer_id} holds no identifier but {identifier_type}:"
            f"{identifier_value}: there is nothing to split it from"
        )
    rank = {name: index for index, name in enumerate(priority)}
    anchor_type, anchor_value, _ = min(
        others, key=lambda row: (row[2], rank.get(row[0], len(rank)), row[0], row[1])
    )
    override = Override(
        "never_link",
        identifier_type,
        identifier_value,
        anchor_type,
        anchor_value,
        created_by,
        reason,
    )
    write_override(warehouse, override)
    return Unmerge(customer_id, (identifier_type, identifier_value), (anchor_type, anchor_value),
                   override)  # fmt: skip
