"""Identity health: is stitching producing people, or has it started gluing them together?

Three numbers on identity_customer_map after each build:

- the largest cluster (identifiers held by one customer): a value far above what one person has
  means junk or shared identifiers got through the blocklist and the limits. Above var
  ``tessera_max_identifiers_per_customer`` the check fails with severity ERROR, and being a
  blocking check it stops assets downstream of identity_customer_map in the same run (syncs);
- mean identifiers per customer;
- the merge rate of the latest identity run: customers merged into another one (identity_merge_log)
  out of the customers there were before that run. A sudden jump means a new source or identifier
  type is linking people who are not the same.
"""

from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from orchestration.identity.report import identity_report
from orchestration.resources import RunSettings, WarehouseResource
from orchestration.warehouse import Warehouse


@dataclass(frozen=True)
class IdentityRelations:
    """``schema.table`` of the identity models the check reads."""

    customer_map: str
    registry: str
    merge_log: str


@dataclass(frozen=True)
class IdentityHealth:
    customers: int
    identifiers: int
    largest_cluster: int
    mean_identifiers_per_customer: float
    latest_run_at: datetime | None
    customers_before_latest_run: int
    merges_in_latest_run: int
    splits_in_latest_run: int

    @property
    def merge_rate(self) -> float:
        if self.customers_before_latest_run == 0:
            return 0.0
        return self.merges_in_latest_run / self.customers_before_latest_run


def measure_identity_health(warehouse: Warehouse, relations: IdentityRelations) -> IdentityHealth:
    customers, identifiers, largest, mean = warehouse.query(
        "select count(*), coalesce(sum(identifiers), 0), coalesce(max(identifiers), 0), "
        "coalesce(avg(identifiers), 0) "
        f"from (select customer_id, count(*) as identifiers from {relations.customer_map} "
        "group by customer_id) as clusters"
    )[0]
    (latest_run_at,) = warehouse.query(f"select max(assigned_at) from {relations.registry}")[0]
    before, merges, splits = 0, 0, 0
    if latest_run_at is not None:
        mark = warehouse.placeholder
        (before,) = warehouse.query(
            "select count(distinct customer_id) from ("
            "select customer_id, row_number() over ("
            "partition by identifier_type, identifier_value order by assigned_at desc"
            f") as recency from {relations.registry} where assigned_at < {mark}"
            ") as previous where recency = 1 and customer_id is not null",
            [latest_run_at],
        )[0]
        events = dict(
            warehouse.query(
                "select event_type, count(distinct previous_customer_id) "
                f"from {relations.merge_log} where logged_at = {mark} group by event_type",
                [latest_run_at],
            )
        )
        merges, splits = events.get("merge", 0), events.get("split", 0)
    return IdentityHealth(
        customers=int(customers),
        identifiers=int(identifiers),
        largest_cluster=int(largest),
        mean_identifiers_per_customer=float(mean),
        latest_run_at=latest_run_at,
        customers_before_latest_run=int(before),
        merges_in_latest_run=int(merges),
        splits_in_latest_run=int(splits),
    )


def identity_health_result(
    health: IdentityHealth, max_identifiers: int, report: dict[str, str] | None = None
) -> dg.AssetCheckResult:
    """The check's result; ``report`` adds the identity report's tables (markdown) to it."""
    too_large = health.largest_cluster > max_identifiers
    return dg.AssetCheckResult(
        passed=not too_large,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"largest customer holds {health.largest_cluster} identifiers, above the limit "
            f"{max_identifiers} (var tessera_max_identifiers_per_customer)"
            if too_large
            else None
        ),
        metadata={
            "customers": health.customers,
            "identifiers": health.identifiers,
            "largest_cluster": health.largest_cluster,
            "max_identifiers_per_customer": max_identifiers,
            "mean_identifiers_per_customer": round(health.mean_identifiers_per_customer, 3),
            "latest_identity_run_at": str(health.latest_run_at),
            "customers_before_latest_run": health.customers_before_latest_run,
            "merges_in_latest_run": health.merges_in_latest_run,
            "splits_in_latest_run": health.splits_in_latest_run,
            "merge_rate": round(health.merge_rate, 6),
            **{name: dg.MetadataValue.md(text) for name, text in (report or {}).items()},
        },
    )


def build_identity_health_check(
    asset_key: dg.AssetKey, relations: IdentityRelations
) -> dg.AssetChecksDefinition:
    """The check, with the limit of the run's configuration (``--vars`` included), the same
    value dbt's identity limits used."""

    @dg.asset_check(
        asset=asset_key,
        name="identity_health",
        blocking=True,
        description=(
            "Largest cluster, mean identifiers per customer and merge rate of the latest run; "
            "fails (ERROR) when one customer holds more identifiers than "
            "var tessera_max_identifiers_per_customer."
        ),
    )
    def identity_health(warehouse: WarehouseResource, settings: RunSettings) -> dg.AssetCheckResult:
        connection = warehouse.get()
        health = measure_identity_health(connection, relations)
        schema = relations.customer_map.split(".")[0]
        report = identity_report(connection, schema).metadata()
        return identity_health_result(
            health, settings.config().max_identifiers_per_customer, report
        )

    return identity_health
