"""`tessera identity report`: what the identity layer looks like, in numbers.

Largest customers (identifiers held, by type), identifiers per customer as a histogram, blocked
identifiers by reason and merges and splits per run. The same figures are the metadata of the
identity_health check in Dagster (orchestration/quality/identity_health.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestration.warehouse import Warehouse

# Upper bounds of the histogram's buckets of identifiers per customer; the last is open.
HISTOGRAM_BOUNDS = (1, 2, 3, 5, 10, 20, 50, 100)
RUNS_SHOWN = 10
LARGEST_SHOWN = 10

#: SQL: the kind of a blocked_reason of identity_blocked_identifiers.
BLOCKED_KIND_SQL = """case
    when blocked_reason like 'override:%' then 'ignored by an override'
    when blocked_reason like 'blocklist:%' then 'blocklist seed'
    when blocked_reason = 'blocklist pattern' then 'blocklist pattern'
    when blocked_reason like 'shared: joins%' then 'shared by separate people'
    when blocked_reason like 'shared: linked to%' then 'shared by many devices'
    else 'other'
end"""


def bucket_label(index: int) -> str:
    low = 1 if index == 0 else HISTOGRAM_BOUNDS[index - 1] + 1
    if index == len(HISTOGRAM_BOUNDS):
        return f"{low}+"
    high = HISTOGRAM_BOUNDS[index]
    return str(low) if low == high else f"{low}-{high}"


@dataclass
class IdentityReport:
    schema: str
    customers: int = 0
    identifiers: int = 0
    largest: list[tuple[str, int, str]] = field(default_factory=list)
    histogram: list[tuple[str, int]] = field(default_factory=list)
    blocked: list[tuple[str, str, int]] = field(default_factory=list)
    runs: list[tuple[Any, int, int, int]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """The figures as plain values for Dagster metadata (markdown tables and counts)."""
        return {
            "identifiers_per_customer": _markdown(("identifiers", "customers"), self.histogram),
            "blocked_identifiers_by_reason": _markdown(
                ("kind", "identifier type", "identifiers"), self.blocked
            ),
            "largest_customers": _markdown(("customer_id", "identifiers", "by type"), self.largest),
            "merges_and_splits_per_run": _markdown(
                ("run", "merges", "splits", "unassigned"), self.runs
            ),
        }


def _markdown(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def identity_report(warehouse: Warehouse, schema: str = "identity") -> IdentityReport:
    """The report over the identity models in ``schema`` (``identity``, or a plan's scratch
    schema)."""
    report = IdentityReport(schema)
    if not warehouse.relation_exists(schema, "identity_customer_map"):
        return report
    sizes = f"""
        select customer_id, count(*) as identifiers
        from {schema}.identity_customer_map group by customer_id
    """
    report.customers, report.identifiers = (
        int(value or 0)
        for value in warehouse.query(f"select count(*), sum(identifiers) from ({sizes}) as s")[0]
    )
    bucket = (
        "case "
        + " ".join(
            f"when identifiers <= {bound} then {index}"
            for index, bound in enumerate(HISTOGRAM_BOUNDS)
        )
        + f" else {len(HISTOGRAM_BOUNDS)} end"
    )
    counts = dict(warehouse.query(f"select {bucket}, count(*) from ({sizes}) as s group by 1"))
    report.histogram = [
        (bucket_label(index), int(counts.get(index, 0)))
        for index in range(len(HISTOGRAM_BOUNDS) + 1)
    ]
    largest = warehouse.query(
        f"{sizes} order by identifiers desc, customer_id limit {LARGEST_SHOWN}"
    )
    if largest:
        marks = ", ".join([warehouse.placeholder] * len(largest))
        by_type: dict[str, list[str]] = {}
        for customer_id, identifier_type, n in warehouse.query(
            f"select customer_id, identifier_type, count(*) from {schema}.identity_customer_map "
            f"where customer_id in ({marks}) group by 1, 2 order by 1, 3 desc, 2",
            [row[0] for row in largest],
        ):
            by_type.setdefault(customer_id, []).append(f"{identifier_type} {n}")
        report.largest = [
            (customer_id, int(n), ", ".join(by_type.get(customer_id, [])))
            for customer_id, n in largest
        ]
    if warehouse.relation_exists(schema, "identity_blocked_identifiers"):
        report.blocked = [
            (kind, identifier_type, int(n))
            for kind, identifier_type, n in warehouse.query(
                f"select {BLOCKED_KIND_SQL} as kind, identifier_type, count(*) "
                f"from {schema}.identity_blocked_identifiers group by 1, 2 order by 1, 2"
            )
        ]
    if warehouse.relation_exists(schema, "identity_merge_log"):
        report.runs = [
            (logged_at, int(merges), int(splits), int(unassigned))
            for logged_at, merges, splits, unassigned in warehouse.query(
                "select logged_at, "
                "count(distinct case when event_type = 'merge' then previous_customer_id end), "
                "count(distinct case when event_type = 'split' then previous_customer_id end), "
                "count(distinct case when event_type = 'unassigned' "
                "then previous_customer_id end) "
                f"from {schema}.identity_merge_log group by logged_at "
                f"order by logged_at desc limit {RUNS_SHOWN}"
            )
        ]
    return report


def format_identity_report(report: IdentityReport) -> str:
    if not report.customers:
        return f"no identity models in schema {report.schema} yet: run `tessera run` first"
    width = max(len(label) for label, _ in report.histogram)
    top = max(n for _, n in report.histogram) or 1
    lines = [
        f"identity ({report.schema}): {report.customers:,} customers, "
        f"{report.identifiers:,} linkable identifiers",
        "",
        "identifiers per customer:",
    ]
    for label, n in report.histogram:
        bar = "#" * max(1 if n else 0, round(40 * n / top))
        lines.append(f"  {label:>{width}}  {n:>9,}  {bar}")
    lines += ["", f"largest customers (top {LARGEST_SHOWN}):"]
    lines += [f"  {cid}  {n:>5}  {types}" for cid, n, types in report.largest]
    lines += ["", "blocked identifiers by reason:"]
    lines += [f"  {kind:<28}{kind_type:<20}{n:>9,}" for kind, kind_type, n in report.blocked]
    if not report.blocked:
        lines.append("  none")
    lines += ["", f"merges and splits per run (latest {RUNS_SHOWN}):"]
    lines += [
        f"  {str(at)[:19]}  merges {m:>7,}  splits {s:>7,}  unassigned {u:>7,}"
        for at, m, s, u in report.runs
    ]
    if not report.runs:
        lines.append("  none yet (the first run assigns ids; later runs log what moved)")
    return "\n".join(lines)
