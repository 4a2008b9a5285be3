"""What a run did, read back from the warehouse: rows per source, staged, rejected by reason;
customers stitched, identifiers blocked, links cut; consent coverage and pending deletions."""

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
    "order_items": ("stg_shop__order_items", "stg_shop__order_items_rejected"),
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
        "select case when blocked_reason like 'shared:%' then 'shared' "
        "when blocked_reason like 'override:%' then 'ignored by override' else 'blocklist' end, "
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


@dataclass(frozen=True)
class PrivacyReport:
    """Consent coverage of the customers mart and where deletion requests stand."""

    customers: int
    # Purpose -> customers whose latest consent for it is a grant.
    consented: dict[str, int]
    deletion_requests: int
    erased_customers: int
    # Requests that arrived after the last build: the next run erases their subjects.
    received_since_build: int
    # Erased customers still in the customers mart (0 after a build).
    still_in_marts: int
    # Sync -> erased customers the destination still holds (the next sync removes them).
    still_in_destinations: dict[str, int]

    @property
    def pending(self) -> int:
        return (
            self.received_since_build
            + self.still_in_marts
            + sum(self.still_in_destinations.values())
        )


def privacy_report(warehouse: Warehouse, raw_schema: str = RAW_SCHEMA) -> PrivacyReport:
    """Consent coverage and pending deletions; what has not been built yet counts as zero."""
    customers = _count(warehouse, "marts", "customers")
    mark = warehouse.placeholder
    columns = warehouse.query(
        "select column_name from information_schema.columns "
        f"where table_schema = {mark} and table_name = {mark} order by column_name",
        ["marts", "customers"],
    )
    purposes = [
        name.removeprefix("has_consent_") for (name,) in columns if name.startswith("has_consent_")
    ]
    consented = {}
    for purpose in purposes:
        rows = warehouse.query(f"select count(*) from marts.customers where has_consent_{purpose}")
        consented[purpose] = int(rows[0][0])

    staged, rejected = STAGING_MODELS["deletion_requests"]
    requests = _count(warehouse, STAGING_SCHEMA, staged)
    seen = requests + _count(warehouse, STAGING_SCHEMA, rejected)
    received_since_build = max(_count(warehouse, raw_schema, "deletion_requests") - seen, 0)
    erased = _count(warehouse, "marts", "customer_erasures")
    still_in_marts = 0
    if erased and customers:
        still_in_marts = int(
            warehouse.query(
                "select count(*) from marts.customers "
                "where customer_id in (select customer_id from marts.customer_erasures)"
            )[0][0]
        )
    still_in_destinations: dict[str, int] = {}
    if erased and warehouse.relation_exists("activation", "sync_state"):
        rows = warehouse.query(
            "select sync_name, count(distinct customer_id) from activation.sync_state "
            "where customer_id in (select customer_id from marts.customer_erasures) "
            "group by sync_name order by sync_name"
        )
        still_in_destinations = {name: int(n) for name, n in rows}
    return PrivacyReport(
        customers=customers,
        consented=consented,
        deletion_requests=requests,
        erased_customers=erased,
        received_since_build=received_since_build,
        still_in_marts=still_in_marts,
        still_in_destinations=still_in_destinations,
    )


def format_privacy_report(report: PrivacyReport) -> str:
    lines = [f"consent coverage of {report.customers:,} customers"]
    for purpose, n in report.consented.items():
        share = n / report.customers if report.customers else 0.0
        lines.append(f"  {purpose:<24}{n:>10,}  {share:>6.1%}")
    lines += [
        f"deletion requests: {report.deletion_requests:,} valid, "
        f"{report.erased_customers:,} customers erased from the marts",
        f"pending deletions: {report.pending:,}",
        f"  received since the last build (erased by the next run): "
        f"{report.received_since_build:,}",
        f"  erased customers still in marts.customers: {report.still_in_marts:,}",
    ]
    if report.still_in_destinations:
        for sync, n in report.still_in_destinations.items():
            lines.append(f"  still held by sync {sync} (removed by its next run): {n:,}")
    else:
        lines.append("  still held by a destination: 0")
    return "\n".join(lines)


def evaluation_summary(warehouse: Warehouse) -> str:
    """Every model of marts.model_evaluations beside its baseline, or nothing before it has been
    built."""
    from orchestration.predictive.evaluations import format_table, from_frame

    if not warehouse.relation_exists("marts", "model_evaluations"):
        return ""
    table = warehouse.query_frame("select * from marts.model_evaluations order by model, metric")
    return "models against their baselines (marts.model_evaluations):\n" + format_table(
        from_frame(table)
    )


# Attribution models of marts.attribution_credits and their columns in the journey report.
ATTRIBUTION_MODELS = {
    "first_touch": "first",
    "last_touch": "last",
    "linear": "linear",
    "position_based": "position",
    "time_decay": "decay",
    "markov": "markov",
}


def journey_summary(warehouse: Warehouse) -> str:
    """Revenue each channel earns under every attribution model, and each funnel's steps over all
    weeks and channels; nothing before the journey marts have been built."""
    if not warehouse.relation_exists("marts", "attribution_credits"):
        return ""
    rows = warehouse.query(
        "select channel, model, sum(revenue_credit) from marts.attribution_credits "
        "group by channel, model"
    )
    (conversions,) = warehouse.query("select count(*) from marts.attribution_conversions")[0]
    revenue: dict[str, dict[str, float]] = {}
    for channel, model, amount in rows:
        revenue.setdefault(channel, {})[model] = float(amount or 0)
    channels = sorted(revenue, key=lambda c: -revenue[c].get("markov", 0.0))
    width = max([len("channel"), *map(len, channels)]) + 2
    lines = [
        f"revenue by channel and attribution model (marts.attribution_credits, "
        f"{int(conversions):,} conversions):",
        f"{'channel':<{width}}" + "".join(f"{name:>12}" for name in ATTRIBUTION_MODELS.values()),
    ]
    lines.extend(
        f"{channel:<{width}}"
        + "".join(f"{revenue[channel].get(model, 0.0):>12,.0f}" for model in ATTRIBUTION_MODELS)
        for channel in channels
    )
    if warehouse.relation_exists("marts", "funnel_steps"):
        steps = warehouse.query(
            "select funnel, step_number, step_name, sum(entrants), sum(conversions) "
            "from marts.funnel_steps group by funnel, step_number, step_name "
            "order by funnel, step_number"
        )
        for funnel in dict.fromkeys(step[0] for step in steps):
            lines.append(f"funnel {funnel} (marts.funnel_steps, every week and channel):")
            lines.append(f"{'step':<28}{'entrants':>12}{'conversions':>13}{'rate':>9}")
            for name, number, step, entrants, converted in steps:
                if name != funnel:
                    continue
                rate = f"{int(converted) / int(entrants):.1%}" if entrants else "-"
                lines.append(
                    f"{f'{number} {step}':<28}{int(entrants):>12,}{int(converted):>13,}{rate:>9}"
                )
    return "\n".join(lines)
