"""Fuzzy match suggestions in the warehouse: the opt-in step after the customer marts.

Reads every customer's golden record (marts.customers, erased customers left out), scores pairs
with ``orchestration.identity.fuzzy.suggest_matches`` and replaces table
``identity.identity_match_suggestions``. By default that is all: suggestions are for a person to
review (and to turn into ``always_link`` rows of seed identity_overrides). With var
``tessera_identity_fuzzy_auto_apply`` set to a probability, the pairs at or above it are written
as ``always_link`` overrides to the tool table, linking each customer's strongest identifier, and
the next identity run merges them. A pair whose customers a ``never_link`` override keeps apart
is never suggested.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from orchestration.identity.fuzzy import SUGGEST_MIN_PROBABILITY, suggest_matches
from orchestration.identity.overrides import TOOL_TABLE, Override, write_overrides
from orchestration.project import ProjectConfig
from orchestration.warehouse import Warehouse

SUGGESTIONS_TABLE = "identity_match_suggestions"
APPLIED_BY = "tessera fuzzy matching"


@dataclass(frozen=True)
class MatchingRun:
    customers: int
    suggestions: int
    auto_applied: int
    threshold: float | None
    seconds: float

    def describe(self) -> str:
        applied = (
            f"{self.auto_applied:,} at or above {self.threshold:g} written as always_link "
            "overrides (applied by the next identity run)"
            if self.threshold is not None
            else "none applied (var tessera_identity_fuzzy_auto_apply is not set)"
        )
        return (
            f"fuzzy matching: {self.customers:,} customers, {self.suggestions:,} suggested pairs "
            f"in identity.{SUGGESTIONS_TABLE}; {applied}; {self.seconds:.1f} s"
        )


def customer_records(warehouse: Warehouse) -> pa.Table:
    rows = warehouse.query(
        """
        select customers.customer_id, customers.first_name, customers.last_name,
            customers.email, customers.phone
        from marts.customers as customers
        left join marts.customer_erasures as erasures
            on customers.customer_id = erasures.customer_id
        where erasures.customer_id is null
        order by customers.customer_id
        """
    )
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 5
    names = ("customer_id", "first_name", "last_name", "email", "phone")
    return pa.table({name: pa.array(list(values), pa.string()) for name, values in
                     zip(names, columns, strict=True)})  # fmt: skip


def _never_linked(warehouse: Warehouse) -> set[tuple[str, str]]:
    if not warehouse.relation_exists("identity", "identity_override_requests"):
        return set()
    pairs = warehouse.query(
        """
        select one.customer_id, other.customer_id
        from identity.identity_override_requests as overrides
        inner join identity.identity_customer_map as one
            on overrides.identifier_type = one.identifier_type
            and overrides.identifier_value = one.identifier_value
        inner join identity.identity_customer_map as other
            on overrides.other_identifier_type = other.identifier_type
            and overrides.other_identifier_value = other.identifier_value
        where overrides.action = 'never_link' and overrides.refused_reason is null
        """
    )
    return {tuple(sorted(pair)) for pair in pairs}  # type: ignore[misc]


def _strongest_identifiers(
    warehouse: Warehouse, customers: set[str], priority: list[str]
) -> dict[str, tuple[str, str]]:
    """Each customer's identifier of the strongest type (then the smallest value)."""
    if not customers:
        return {}
    rank = {name: index for index, name in enumerate(priority)}
    marks = ", ".join([warehouse.placeholder] * len(customers))
    best: dict[str, tuple[int, str, str]] = {}
    for customer_id, identifier_type, identifier_value in warehouse.query(
        "select customer_id, identifier_type, identifier_value "
        f"from identity.identity_customer_map where customer_id in ({marks})",
        sorted(customers),
    ):
        key = (rank.get(identifier_type, len(rank)), identifier_type, identifier_value)
        if customer_id not in best or key < best[customer_id]:
            best[customer_id] = key
    return {customer_id: (t, v) for customer_id, (_, t, v) in best.items()}


def _already_written(warehouse: Warehouse) -> set[tuple[str, str, str, str]]:
    schema, table = TOOL_TABLE.split(".")
    if not warehouse.relation_exists(schema, table):
        return set()
    rows = warehouse.query(
        "select identifier_type, identifier_value, other_identifier_type, "
        f"other_identifier_value from {TOOL_TABLE} where action = 'always_link'"
    )
    return {tuple(row) for row in rows}  # type: ignore[misc]


def run_matching(
    warehouse: Warehouse,
    config: ProjectConfig,
    progress: Callable[[str], None] | None = None,
) -> MatchingRun:
    """Score the customers, replace identity.identity_match_suggestions and, when var
    tessera_identity_fuzzy_auto_apply is set, write the pairs at or above it as overrides."""
    started = time.perf_counter()
    threshold = config.get("tessera_identity_fuzzy_auto_apply")
    records = customer_records(warehouse)
    if progress:
        progress(f"fuzzy matching: scoring {records.num_rows:,} customers")
    found = suggest_matches(records, min_probability=SUGGEST_MIN_PROBABILITY)
    never = _never_linked(warehouse)
    rows = [
        row
        for row in found.to_pylist()
        if (row["customer_id_l"], row["customer_id_r"]) not in never
    ]
    applied = [
        row for row in rows if threshold is not None and row["match_probability"] >= threshold
    ]
    strongest = _strongest_identifiers(
        warehouse,
        {c for row in applied for c in (row["customer_id_l"], row["customer_id_r"])},
        config["tessera_identity_type_priority"],
    )
    written = _already_written(warehouse)
    overrides = []
    for row in applied:
        left, right = strongest.get(row["customer_id_l"]), strongest.get(row["customer_id_r"])
        if left is None or right is None:
            continue
        left, right = sorted([left, right])
        if (*left, *right) in written:
            continue
        overrides.append(
            Override(
                "always_link",
                left[0],
                left[1],
                right[0],
                right[1],
                APPLIED_BY,
                f"match probability {row['match_probability']:.4f}: {row['comparisons']}",
            )
        )
    write_overrides(warehouse, overrides)
    suggested_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    table = pa.table(
        {
            "customer_id_l": pa.array([r["customer_id_l"] for r in rows], pa.string()),
            "customer_id_r": pa.array([r["customer_id_r"] for r in rows], pa.string()),
            "match_probability": pa.array([r["match_probability"] for r in rows], pa.float64()),
            "match_weight": pa.array([r["match_weight"] for r in rows], pa.float64()),
            "comparisons": pa.array([r["comparisons"] for r in rows], pa.string()),
            "auto_applied": pa.array(
                [threshold is not None and r["match_probability"] >= threshold for r in rows],
                pa.bool_(),
            ),
            "suggested_at": pa.array([suggested_at] * len(rows), pa.timestamp("us")),
        }
    )
    warehouse.write_tables("identity", {SUGGESTIONS_TABLE: table})
    return MatchingRun(
        customers=records.num_rows,
        suggestions=len(rows),
        auto_applied=sum(1 for row in rows if row in applied),
        threshold=threshold,
        seconds=time.perf_counter() - started,
    )
