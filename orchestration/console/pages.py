"""The questions the console's pages answer, as SQL over the marts (the same on both adapters).

Each function takes a ``Reader`` (reader.py) and a ``Masker`` (access.py) and returns plain data
for a template: personal values are masked here, before any page sees them, for a viewer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from orchestration.activation.config import SyncConfigError, SyncSpec, load_syncs
from orchestration.activation.destinations import registry
from orchestration.activation.personal import PersonalData
from orchestration.console.access import Masker
from orchestration.console.reader import AUDIENCE_SCHEMA, Reader
from orchestration.dbt_project import project_dir
from orchestration.identity.explain import (
    ExplainError,
    Explanation,
    explain_identifier,
    find_identifier,
)
from orchestration.privacy import table_pii_columns
from orchestration.warehouse import quote_identifier

TIMELINE_PAGE_SIZE = 50
SAMPLE_MEMBERS = 20
#: A sync whose platform-reported match rate fell by this much since its previous report is
#: flagged on the sync health page (points of percentage).
MATCH_RATE_ALERT_POINTS = 10.0
GOLDEN_FIELDS = ("email", "phone", "first_name", "last_name", "company")
PERSONAL_IDENTIFIER_TYPES = frozenset({"email", "phone"})
MEMBERSHIP_HISTORY = "audience_membership_history"


class NotFound(LookupError):
    """What was asked for is not there; the message can be shown to the user."""


# ---------------------------------------------------------------------------------------------
# Search


@dataclass(frozen=True)
class Found:
    customer_id: str | None
    #: Set when the identifier exists but is blocked from linking people.
    blocked_reason: str | None = None


def find_customer(reader: Reader, text: str) -> Found:
    """The customer an identifier names: an order id, ``type:value`` or a bare value typed as
    a person would (an email in any case, a phone in any format), normalised as staging does.
    NotFound says why not, without echoing stored values."""
    text = text.strip()
    if not text:
        raise NotFound("type an email, phone, user id, CRM id or order id")
    mark = reader.placeholder
    order_id = text.removeprefix("order:").strip()
    orders = reader.query(
        f"select customer_id from marts.orders where order_id = {mark}", [order_id]
    )
    if orders and orders[0][0] is not None:
        return Found(orders[0][0])
    try:
        identifier_type, value = find_identifier(reader, text)  # type: ignore[arg-type]
    except ExplainError as exc:
        message = str(exc)
        if "several" in message:
            raise NotFound(
                "this matches several identifiers: name one as type:value, e.g. email:..."
            ) from None
        raise NotFound("no customer has this identifier") from None
    blocked = reader.query(
        "select blocked_reason from identity.identity_blocked_identifiers "
        f"where identifier_type = {mark} and identifier_value = {mark}",
        [identifier_type, value],
    )
    if blocked:
        return Found(None, blocked_reason=blocked[0][0])
    rows = reader.query(
        "select customer_id from identity.identity_customer_map "
        f"where identifier_type = {mark} and identifier_value = {mark}",
        [identifier_type, value],
    )
    if not rows:
        raise NotFound("no customer has this identifier")
    return Found(rows[0][0])


# ---------------------------------------------------------------------------------------------
# Profile


@dataclass
class Profile:
    customer_id: str
    erased_at: datetime | None = None
    golden: list[tuple[str, Any, str | None]] = field(default_factory=list)
    traits: dict[str, Any] = field(default_factory=dict)
    explanation: Explanation | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    timeline_total: int = 0
    page: int = 1
    pages: int = 1
    consents: list[dict[str, Any]] = field(default_factory=list)
    clv: dict[str, Any] | None = None
    churn: dict[str, Any] | None = None
    memberships: list[tuple[str, Any, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def profile(reader: Reader, customer_id: str, masked: Masker, page: int = 1) -> Profile:
    """Everything the console shows of one customer; NotFound if there is no such customer."""
    mark = reader.placeholder
    result = Profile(customer_id)
    erased = reader.query(
        f"select requested_at from marts.customer_erasures where customer_id = {mark}",
        [customer_id],
    )
    if erased:
        result.erased_at = erased[0][0]
        return result
    columns = [
        "customer_id",
        *GOLDEN_FIELDS,
        *(f"{name}_source" for name in GOLDEN_FIELDS),
        "orders_count",
        "completed_orders_count",
        "lifetime_revenue",
        "average_order_value",
        "page_views_count",
        "support_tickets_count",
        "channels",
        "top_categories",
        "identifiers_count",
        "has_consent_email_marketing",
        "has_consent_advertising",
        "has_consent_analytics",
        "first_seen_at",
        "last_seen_at",
        "first_order_at",
        "last_order_at",
    ]
    present = _columns(reader, "marts", "customers")
    columns = [c for c in columns if c in present]
    rows = reader.query(
        f"select {', '.join(columns)} from marts.customers where customer_id = {mark}",
        [customer_id],
    )
    if not rows:
        raise NotFound("no such customer (merged into another, or not built yet)")
    record = dict(zip(columns, rows[0], strict=True))
    personal = table_pii_columns("customers", columns)
    result.golden = [
        (
            name,
            masked(record[name]) if name in personal else record[name],
            record.get(f"{name}_source"),
        )
        for name in GOLDEN_FIELDS
    ]
    result.traits = {
        name: value
        for name, value in record.items()
        if name != "customer_id" and name not in GOLDEN_FIELDS and not name.endswith("_source")
    }
    first = reader.query(
        "select identifier_type, identifier_value from identity.identity_customer_map "
        f"where customer_id = {mark} order by 1, 2 limit 1",
        [customer_id],
    )
    if first:
        found = explain_identifier(reader, first[0][0], first[0][1])  # type: ignore[arg-type]
        result.explanation = _masked_explanation(found, masked)
    _timeline(reader, result, page, masked)
    result.consents = _consents(reader, customer_id, masked)
    result.clv = _customer_row(
        reader,
        "marts",
        "customer_clv",
        "discounted_clv, expected_purchases, p_alive, frequency, monetary_value, horizon, "
        "time_unit, scored_at",
        customer_id,
    )
    result.churn = _customer_row(
        reader,
        "marts",
        "customer_churn_scores",
        "risk_tier, churn_probability, p_alive, model_version, scored_at",
        customer_id,
    )
    if reader.relation_exists(AUDIENCE_SCHEMA, MEMBERSHIP_HISTORY):
        result.memberships = reader.query(
            f"select audience, entered_at, exited_at from {AUDIENCE_SCHEMA}.{MEMBERSHIP_HISTORY} "
            f"where customer_id = {mark} order by entered_at desc, audience",
            [customer_id],
        )
    result.deliveries = _deliveries(reader, customer_id, masked)
    return result


def _columns(reader: Reader, schema: str, table: str) -> set[str]:
    mark = reader.placeholder
    rows = reader.query(
        "select column_name from information_schema.columns "
        f"where table_schema = {mark} and table_name = {mark}",
        [schema, table],
    )
    return {row[0] for row in rows}


def _customer_row(
    reader: Reader, schema: str, table: str, columns: str, customer_id: str
) -> dict[str, Any] | None:
    """The customer's one row of ``schema.table`` (None without a row, or without the table)."""
    if not reader.relation_exists(schema, table):
        return None
    rows = reader.records(
        f"select {columns} from {schema}.{table} where customer_id = {reader.placeholder}",
        [customer_id],
    )
    return rows[0] if rows else None


def _masked_explanation(found: Explanation, masked: Masker) -> Explanation:
    def value(identifier_type: str, identifier_value: Any) -> Any:
        personal = identifier_type in PERSONAL_IDENTIFIER_TYPES
        return masked(identifier_value) if personal else identifier_value

    found.identifiers = [(t, value(t, v), *rest) for t, v, *rest in found.identifiers]
    found.links = [
        (ta, value(ta, va), tb, value(tb, vb), *rest) for ta, va, tb, vb, *rest in found.links
    ]
    found.cut_links = [
        (ta, value(ta, va), tb, value(tb, vb), *rest) for ta, va, tb, vb, *rest in found.cut_links
    ]
    found.overrides = [
        (action, ta, value(ta, va), tb, value(tb, vb), *rest)
        for action, ta, va, tb, vb, *rest in found.overrides
    ]
    return found


def _timeline(reader: Reader, result: Profile, page: int, masked: Masker) -> None:
    mark = reader.placeholder
    total = reader.query(
        f"select count(*) from marts.customer_events where customer_id = {mark}",
        [result.customer_id],
    )[0][0]
    result.timeline_total = int(total)
    result.pages = max(1, -(-result.timeline_total // TIMELINE_PAGE_SIZE))
    result.page = min(max(1, page), result.pages)
    columns = [
        "occurred_at",
        "event_type",
        "event_name",
        "source_table",
        "page_path",
        "referrer",
        "utm_source",
        "channel",
        "event_status",
        "revenue",
        "currency",
    ]
    personal = table_pii_columns("customer_events", columns)
    rows = reader.query(
        f"select {', '.join(columns)} from marts.customer_events "
        f"where customer_id = {mark} order by occurred_at desc, event_id "
        f"limit {TIMELINE_PAGE_SIZE} offset {(result.page - 1) * TIMELINE_PAGE_SIZE}",
        [result.customer_id],
    )
    result.timeline = [
        {c: masked(v) if c in personal else v for c, v in zip(columns, row, strict=True)}
        for row in rows
    ]


def _consents(reader: Reader, customer_id: str, masked: Masker) -> list[dict[str, Any]]:
    """Every consent record of the customer's identifiers, newest first; ``current`` marks the
    one that decides each purpose (as customers does: the latest, a revocation on a tie)."""
    if not reader.relation_exists("staging", "stg_privacy__consents"):
        return []
    mark = reader.placeholder
    records = reader.records(
        "select consents.purpose, consents.is_granted, consents.recorded_at, "
        "consents.consent_source, consents.subject_type, consents.subject_value "
        "from staging.stg_privacy__consents as consents "
        "inner join identity.identity_customer_map as map "
        "on consents.subject_type = map.identifier_type "
        "and consents.subject_value = map.identifier_value "
        f"where map.customer_id = {mark} "
        "order by consents.purpose, consents.recorded_at desc, consents.is_granted, "
        "consents.consent_record_id",
        [customer_id],
    )
    seen: set[str] = set()
    for record in records:
        record["current"] = record["purpose"] not in seen
        seen.add(record["purpose"])
        record["subject_value"] = masked(record["subject_value"])
    return records


@cache
def _sync_specs() -> dict[str, tuple[SyncSpec, PersonalData]]:
    destinations = registry()
    try:
        specs = load_syncs(project_dir(), destinations)
    except SyncConfigError:
        return {}
    return {
        spec.name: (spec, PersonalData.of(spec, destinations.get(spec.destination)))
        for spec in specs
    }


def _deliveries(reader: Reader, customer_id: str, masked: Masker) -> list[dict[str, Any]]:
    """What each sync last sent for this customer, masked as the sync logs mask it."""
    if not reader.relation_exists("activation", "sync_state"):
        return []
    mark = reader.placeholder
    rows = reader.records(
        "select sync_name, status, last_sent_at, sent_fields, last_error "
        f"from activation.sync_state where customer_id = {mark} order by sync_name",
        [customer_id],
    )
    specs = _sync_specs()
    for row in rows:
        fields = json.loads(row["sent_fields"]) if row["sent_fields"] else {}
        spec = specs.get(row["sync_name"])
        personal = spec[1] if spec else None
        row["destination"] = spec[0].destination if spec else "(no longer declared)"
        row["fields"] = {
            name: masked(value) if personal is None or personal.is_plain(name) else value
            for name, value in sorted(fields.items())
        }
    return rows


# ---------------------------------------------------------------------------------------------
# Audiences


def audience_names(reader: Reader) -> list[str]:
    """The audience tables: every table of schema audiences with a customer_id column, except
    the membership history."""
    mark = reader.placeholder
    rows = reader.query(
        "select distinct table_name from information_schema.columns "
        f"where table_schema = {mark} and column_name = 'customer_id' and table_name <> {mark} "
        "order by 1",
        [AUDIENCE_SCHEMA, MEMBERSHIP_HISTORY],
    )
    return [row[0] for row in rows]


def _audience(reader: Reader, name: str) -> str:
    if name not in audience_names(reader):
        raise NotFound("no such audience")
    return f"{AUDIENCE_SCHEMA}.{quote_identifier(name)}"


@dataclass
class AudienceSummary:
    name: str
    size: int
    entered_7d: int
    exited_7d: int


def audience_summaries(reader: Reader) -> list[AudienceSummary]:
    names = audience_names(reader)
    if not names:
        return []
    sizes = reader.query(
        " union all ".join(
            f"select '{name}', count(*) from {AUDIENCE_SCHEMA}.{quote_identifier(name)}"
            for name in names
        )
    )
    moves: dict[str, tuple[int, int]] = {}
    if reader.relation_exists(AUDIENCE_SCHEMA, MEMBERSHIP_HISTORY):
        latest = reader.query(
            f"select max(entered_at) from {AUDIENCE_SCHEMA}.{MEMBERSHIP_HISTORY}"
        )[0][0]
        if latest is not None:
            since = latest - timedelta(days=7)
            mark = reader.placeholder
            for audience, entered, exited in reader.query(
                "select audience, "
                f"sum(case when entered_at > {mark} then 1 else 0 end), "
                f"sum(case when exited_at > {mark} then 1 else 0 end) "
                f"from {AUDIENCE_SCHEMA}.{MEMBERSHIP_HISTORY} group by audience",
                [since, since],
            ):
                moves[audience] = (int(entered or 0), int(exited or 0))
    return [
        AudienceSummary(name, int(size), *moves.get(history_name(name), (0, 0)))
        for name, size in sizes
    ]


@dataclass
class AudiencePreview:
    name: str
    size: int
    history: list[tuple[date, int]]
    risk_tiers: list[tuple[str, int]]
    channels: list[tuple[str, int]]
    consents: list[tuple[str, int]]
    reachable_email: int
    reachable_phone: int
    reachable_any: int
    reachable_with_consent: int
    sample: list[dict[str, Any]]


def history_name(table: str) -> str:
    """An audience as audience_membership_history names it: its model without audience_."""
    return table.removeprefix("audience_")


def audience_preview(reader: Reader, name: str, masked: Masker) -> AudiencePreview:
    """One audience: size now and per day, breakdowns, reach on ad platforms, a sample."""
    table = _audience(reader, name)
    members = f"select distinct customer_id from {table}"
    size = int(reader.query(f"select count(*) from ({members}) as members")[0][0])
    history: list[tuple[date, int]] = []
    if reader.relation_exists(AUDIENCE_SCHEMA, MEMBERSHIP_HISTORY):
        history = _size_history(reader, history_name(name))
    risk_tiers: list[tuple[str, int]] = []
    if reader.relation_exists("marts", "customer_churn_scores"):
        risk_tiers = [
            (tier or "unscored", int(n))
            for tier, n in reader.query(
                "select scores.risk_tier, count(*) "
                f"from ({members}) as members left join marts.customer_churn_scores as scores "
                "on members.customer_id = scores.customer_id group by 1 order by 2 desc, 1"
            )
        ]
    joined = (
        f"from ({members}) as members left join marts.customers as customers "
        "on members.customer_id = customers.customer_id"
    )
    channels = [
        (channel or "none", int(n))
        for channel, n in reader.query(
            f"select customers.channels, count(*) {joined} group by 1 order by 2 desc, 1 limit 10"
        )
    ]
    purposes = sorted(
        c for c in _columns(reader, "marts", "customers") if c.startswith("has_consent_")
    )
    consent_row = (
        reader.query(
            "select "
            + ", ".join(f"sum(case when customers.{p} then 1 else 0 end)" for p in purposes)
            + f" {joined}"
        )[0]
        if purposes
        else ()
    )
    consents = [
        (purpose.removeprefix("has_consent_"), int(n or 0))
        for purpose, n in zip(purposes, consent_row, strict=True)
    ]
    advertising = (
        "customers.has_consent_advertising" if "has_consent_advertising" in purposes else "true"
    )
    email, phone, either, consented = reader.query(
        "select "
        "sum(case when customers.email is not null then 1 else 0 end), "
        "sum(case when customers.phone is not null then 1 else 0 end), "
        "sum(case when customers.email is not null or customers.phone is not null "
        "then 1 else 0 end), "
        "sum(case when (customers.email is not null or customers.phone is not null) "
        f"and {advertising} then 1 else 0 end) {joined}"
    )[0]
    sample_columns = ["customer_id", "email", "first_name", "last_name", "lifetime_revenue"]
    personal = table_pii_columns("customers", sample_columns)
    selected = ", ".join(f"customers.{c}" for c in sample_columns[1:])
    sample = [
        {c: masked(v) if c in personal else v for c, v in zip(sample_columns, row, strict=True)}
        for row in reader.query(
            f"select members.customer_id, {selected} {joined} "
            f"order by members.customer_id limit {SAMPLE_MEMBERS}"
        )
    ]
    return AudiencePreview(
        name=name,
        size=size,
        history=history,
        risk_tiers=risk_tiers,
        channels=channels,
        consents=consents,
        reachable_email=int(email or 0),
        reachable_phone=int(phone or 0),
        reachable_any=int(either or 0),
        reachable_with_consent=int(consented or 0),
        sample=sample,
    )


def _size_history(reader: Reader, audience: str) -> list[tuple[date, int]]:
    """Members per day, from the membership history: +1 on the day a member entered, -1 on the
    day they left, summed up to each day."""
    mark = reader.placeholder
    rows = reader.query(
        "select day, sum(delta) from ("
        "select cast(entered_at as date) as day, count(*) as delta "
        f"from {AUDIENCE_SCHEMA}.{MEMBERSHIP_HISTORY} where audience = {mark} group by 1 "
        "union all "
        "select cast(exited_at as date) as day, -count(*) as delta "
        f"from {AUDIENCE_SCHEMA}.{MEMBERSHIP_HISTORY} "
        f"where audience = {mark} and exited_at is not null group by 1"
        ") as moves group by day order by day",
        [audience, audience],
    )
    history, running = [], 0
    for day, delta in rows:
        running += int(delta)
        history.append((day, running))
    return history


@dataclass
class Overlap:
    first: str
    second: str
    first_size: int
    second_size: int
    both: int

    @property
    def either(self) -> int:
        return self.first_size + self.second_size - self.both

    @property
    def jaccard(self) -> float:
        return self.both / self.either if self.either else 0.0


def overlap(reader: Reader, first: str, second: str) -> Overlap:
    """How many customers two audiences share."""
    a, b = _audience(reader, first), _audience(reader, second)
    sizes = reader.query(
        f"select (select count(distinct customer_id) from {a}), "
        f"(select count(distinct customer_id) from {b}), "
        f"(select count(*) from (select customer_id from {a} intersect "
        f"select customer_id from {b}) as shared)"
    )[0]
    return Overlap(first, second, *(int(n) for n in sizes))


# ---------------------------------------------------------------------------------------------
# Sync health


@dataclass
class SyncHealth:
    name: str
    destination: str
    runs: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    reports: list[dict[str, Any]]
    alert: str | None


def match_rate(report: Mapping[str, Any]) -> float | None:
    """The share of sent members a platform matched or took, as a fraction: the middle of
    Google's match-rate range, else Meta's (received - invalid) / received."""
    low, high = report.get("match_rate_low"), report.get("match_rate_high")
    if low is not None and high is not None:
        return (float(low) + float(high)) / 2
    received = report.get("received")
    if received:
        return (int(received) - int(report.get("invalid") or 0)) / int(received)
    return None


def match_alert(reports: Sequence[Mapping[str, Any]]) -> str | None:
    """A warning when the newest report's match rate is MATCH_RATE_ALERT_POINTS or more below
    the one before it (``reports`` newest first)."""
    rates = [(r, match_rate(r)) for r in reports]
    rates = [(r, rate) for r, rate in rates if rate is not None]
    if len(rates) < 2:
        return None
    (_, newest), (_, previous) = rates[0], rates[1]
    drop = (previous - newest) * 100
    if drop >= MATCH_RATE_ALERT_POINTS - 1e-9:
        return (
            f"match rate fell {drop:.0f} points: {previous * 100:.0f}% to {newest * 100:.0f}% "
            "since the previous run"
        )
    return None


def sync_health(reader: Reader, masked: Masker, runs_per_sync: int = 10) -> list[SyncHealth]:
    """Per sync: its last runs, the rows it failed or parked, the platform's match figures."""
    if not reader.relation_exists("activation", "sync_runs"):
        return []
    runs = reader.records(
        "select run_id, sync_name, destination, mode, status, dry_run, started_at, "
        "finished_at, source_rows, planned_adds, planned_changes, planned_removes, "
        "succeeded, failed, retries, rate_limited, parked, error from ("
        "select *, row_number() over (partition by sync_name order by started_at desc) as n "
        f"from activation.sync_runs) as ranked where n <= {int(runs_per_sync)} "
        "order by sync_name, started_at desc",
    )
    failed: list[dict[str, Any]] = []
    if reader.relation_exists("activation", "sync_failed_rows"):
        failed = reader.records(
            "select sync_name, record_key, operation, error, attempts, parked, last_failed_at "
            "from activation.sync_failed_rows order by sync_name, parked desc, "
            "last_failed_at desc",
        )
    reports: list[dict[str, Any]] = []
    if reader.relation_exists("activation", "sync_platform_reports"):
        reports = reader.records(
            "select run_id, sync_name, destination, reported_at, received, invalid, "
            "match_rate_low, match_rate_high, detail from activation.sync_platform_reports "
            "order by sync_name, reported_at desc",
        )
    specs = _sync_specs()
    result = []
    for name in sorted({run["sync_name"] for run in runs}):
        spec = specs.get(name)
        key_personal = spec is None or spec[1].key
        its_failed = [dict(row) for row in failed if row["sync_name"] == name][:50]
        for row in its_failed:
            if key_personal:
                row["record_key"] = masked(row["record_key"])
        its_reports = [r for r in reports if r["sync_name"] == name][:runs_per_sync]
        for report in its_reports:
            report["rate"] = match_rate(report)
        its_runs = [run for run in runs if run["sync_name"] == name]
        result.append(
            SyncHealth(
                name=name,
                destination=its_runs[0]["destination"],
                runs=its_runs,
                failed=its_failed,
                reports=its_reports,
                alert=match_alert(its_reports),
            )
        )
    return result
