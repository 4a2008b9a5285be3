"""What a run did, read back from the warehouse: rows per source, staged, rejected by reason;
customers stitched, identifiers blocked, links cut."""

from __future__ import annotations

from dataclasses import dataclass

from orchestration.warehouse import Warehouse

RAW_SCHEMA = "raw"
STAGING_SCHEMA = "staging"

# Raw table -> (staged model, rejected model).
STAGING_MODELS: dict[str, tuple[str, str]] = {
    "identifies": ("stg_segment__identifies", "stg_segment__identifies_rejected"),
    "tracks": ("stg_segment__tracks", "stg_segment__tracks_rejected"),
    "pages": ("stg_segment__pages", "stg_segment__pages_rejected"),
    "orders": ("stg_shop__orders", "stg_shop__orders_rejected"),
    "crm_contacts": ("stg_crm__contacts", "stg_crm__contacts_rejected"),
    "support_tickets": ("stg_support__tickets", "stg_support__tickets_rejected"),
    "consents": ("stg_privacy__consents", "stg_privacy__consents_rejected"),
    "deletion_requests": (
        "stg_privacy__deletion_requests",
        "stg_privacy__deletion_requests_rejected",
    ),
}


@dataclass(frozen=True)
class SourceSummary:
    table: str
    raw_rows: int
    staged_rows: int
    rejected: dict[str, int]

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())


def staging_summary(warehouse: Warehouse, raw_schema: str = RAW_SCHEMA) -> list[SourceSummary]:
    """One line per source table; a table missing from the warehouse counts as empty."""
    summaries = []
    for table, (staged, rejected) in STAGING_MODELS.items():
        raw_rows = _count(warehouse, raw_schema, table)
        staged_rows = _count(warehouse, STAGING_SCHEMA, staged)
        reasons: dict[str, int] = {}
        if warehouse.relation_exists(STAGING_SCHEMA, rejected):
            rows = warehouse.query(
                f"select rejection_reason, count(*) from {STAGING_SCHEMA}.{rejected} "
                "group by rejection_reason order by rejection_reason"
            )
            reasons = {reason: int(n) for reason, n in rows}
        summaries.append(SourceSummary(table, raw_rows, staged_rows, reasons))
    return summaries


def format_staging_summary(summaries: list[SourceSummary]) -> str:
    lines = [f"{'source':<20}{'raw':>14}{'staged':>14}{'rejected':>12}  rejected by reason"]
    for s in summaries:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in s.rejected.items()) or "-"
        lines.append(
            f"{s.table:<20}{s.raw_rows:>14,}{s.staged_rows:>14,}{s.rejected_rows:>12,}  {reasons}"
        )
    return "\n".join(lines)


def identity_summary(warehouse: Warehouse) -> str:
    """One paragraph on the identity layer, or nothing before it has been built."""
    if not warehouse.relation_exists("identity", "identity_customer_map"):
        return ""
    customers, identifiers = warehouse.query(
        "select count(distinct customer_id), count(*) from identity.identity_customer_map"
    )[0]
    blocked = warehouse.query(
        "select case when blocked_reason like 'shared:%' then 'shared' else 'blocklist' end, "
        "count(*) from identity.identity_blocked_identifiers group by 1 order by 1"
    )
    cut = _count(warehouse, "identity", "identity_violations")
    events = dict(
        warehouse.query(
            "select event_type, count(*) from identity.identity_merge_log group by event_type"
        )
    )
    blocked_text = ", ".join(f"{n:,} {kind}" for kind, n in blocked) or "none"
    return (
        f"identity: {int(customers):,} customers from {int(identifiers):,} linkable identifiers; "
        f"blocked identifiers: {blocked_text}; links cut by identity limits: {cut:,}; "
        f"merge log: {events.get('merge', 0):,} merges, {events.get('split', 0):,} splits"
    )


def _count(warehouse: Warehouse, schema: str, table: str) -> int:
    if not warehouse.relation_exists(schema, table):
        return 0
    return int(warehouse.query(f"select count(*) from {schema}.{table}")[0][0])
