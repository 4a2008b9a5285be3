"""Deterministic, adversarial generator of Tessera's source tables.

Random structure (who has which identifiers, how many devices, events and orders, which rows are
broken) is drawn with numpy; the rows are rendered to text by DuckDB, which formats tens of
millions of strings in parallel far faster than Python can. The result is one in-memory DuckDB
database holding schema ``raw`` (the source contract) and schema ``truth`` (what really happened:
the true person behind every identifier, the defects injected per table). Sinks in
``orchestration.warehouse`` copy it to the user's warehouse.

Everything depends only on ``(customers, seed)``: the clock is fixed at ``END``, never ``now()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

END = datetime(2026, 10, 31, tzinfo=UTC)
END_EPOCH = int(END.timestamp())
DAY = 86_400
HISTORY_DAYS = 730

SOURCE_TABLES = (
    "identifies",
    "tracks",
    "pages",
    "orders",
    "crm_contacts",
    "support_tickets",
    "consents",
    "deletion_requests",
    "order_items",
)

# Person kinds: browse the site or app, buy online without browsing tracked, buy in store with only
# a phone, exist only in the CRM.
WEB, SHOP, POS, CRM = 0, 1, 2, 3
KIND_NAMES = ("web", "shop", "pos", "crm")
KIND_SHARE = (0.80, 0.08, 0.06, 0.06)

FIRST_NAMES = (
    "Ana", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "Will", "Xenia", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ivanova", "Jones",
    "Kim", "Lopez", "Martin", "Nguyen", "Okafor", "Patel", "Quist", "Rossi", "Smith", "Tanaka",
    "Urban", "Vogel", "Walsh", "Xu", "Young", "Zimmer",
)  # fmt: skip
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "acme.io")
US_AREA_CODES = (212, 305, 312, 415, 503, 617, 702, 713, 808, 917)
PATHS = ("/", "/products", "/products/{p}", "/cart", "/checkout", "/blog", "/account", "/search")
REFERRERS = ("https://www.google.com/", "https://www.facebook.com/", "https://t.co/", "")
UTM_SOURCES = ("google", "facebook", "newsletter", "instagram")
UTM_MEDIUMS = ("cpc", "social", "email", "organic")
UTM_CAMPAIGNS = ("spring_sale", "black_friday", "welcome", "retargeting")
TRACK_EVENTS = (
    "Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Products Searched",
    "Newsletter Subscribed",
)  # fmt: skip
CONSENT_PURPOSES = ("email_marketing", "advertising", "analytics")
PRODUCT_CATEGORIES = ("apparel", "shoes", "accessories", "home", "beauty", "outdoor")
LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "opportunity", "customer")

# Identifiers typed by many different people: what identity resolution must never merge on.
JUNK_EMAIL = "test@test.com"
JUNK_PHONE = "0000000000"
JUNK_PHONE_E164 = "+10000000000"
JUNK_ANONYMOUS_ID = "anonymous"
SHARED_INBOX = "info@acme-corp.example"

# Share of rows broken on purpose, and of rows delivered twice (at-least-once delivery).
DEFECT_RATE = 0.01
DUPLICATE_RATE = 0.002


@dataclass(frozen=True)
class TableSpec:
    """A raw table's contract columns, and the defects the generator may inject into it."""

    columns: tuple[str, ...]
    defects: tuple[str, ...]
    has_id: bool = True


SPECS: dict[str, TableSpec] = {
    "identifies": TableSpec(
        (
            "id",
            "anonymous_id",
            "user_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "timestamp",
            "_loaded_at",
        ),
        ("missing_id", "no_identifier", "malformed_email", "unparseable_timestamp"),
    ),
    "tracks": TableSpec(
        (
            "id",
            "anonymous_id",
            "user_id",
            "event",
            "properties",
            "context_device_id",
            "timestamp",
            "_loaded_at",
        ),
        ("missing_id", "no_identifier", "missing_event", "unparseable_timestamp"),
    ),
    "pages": TableSpec(
        (
            "id",
            "anonymous_id",
            "user_id",
            "url",
            "path",
            "referrer",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "timestamp",
            "_loaded_at",
        ),
        ("missing_id", "no_identifier", "unparseable_timestamp"),
    ),
    "orders": TableSpec(
        (
            "order_id",
            "customer_ref",
            "email",
            "phone",
            "ordered_at",
            "total_amount",
            "currency",
            "status",
            "channel",
        ),
        (
            "missing_id",
            "no_identifier",
            "malformed_email",
            "malformed_phone",
            "unparseable_timestamp",
            "negative_amount",
        ),
    ),
    "crm_contacts": TableSpec(
        (
            "contact_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "company",
            "lifecycle_stage",
            "created_at",
            "updated_at",
        ),
        ("missing_id", "no_identifier", "malformed_email", "unparseable_timestamp"),
    ),
    "support_tickets": TableSpec(
        (
            "ticket_id",
            "requester_email",
            "created_at",
            "status",
            "channel",
            "satisfaction_score",
        ),
        ("missing_id", "no_identifier", "malformed_email", "unparseable_timestamp"),
    ),
    "consents": TableSpec(
        (
            "subject_type",
            "subject_value",
            "purpose",
            "granted",
            "recorded_at",
            "source",
        ),
        ("no_identifier", "unparseable_timestamp"),
        has_id=False,
    ),
    "deletion_requests": TableSpec(
        ("subject_type", "subject_value", "requested_at"),
        ("no_identifier", "unparseable_timestamp"),
        has_id=False,
    ),
    "order_items": TableSpec(
        ("order_id", "product_id", "sku", "name", "category", "price", "quantity"),
        ("missing_id", "missing_product", "invalid_quantity", "negative_price"),
    ),
}

TRUTH_TABLES = ("persons", "identifiers", "defects")


@dataclass
class GeneratedData:
    """The generated warehouse: an in-memory DuckDB holding schemas ``raw`` and ``truth``."""

    con: duckdb.DuckDBPyConnection
    customers: int
    seed: int
    row_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _sql_list(values: tuple[str, ...]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"[{quoted}]"


def _pick(values: tuple[str, ...], index_sql: str) -> str:
    """SQL for the element of a constant list at a 0-based index column."""
    return f"{_sql_list(values)}[{index_sql} + 1]"


def _timestamp_sql(epoch: str, offset_col: str) -> str:
    """ISO-8601 text for an epoch-seconds column: UTC with ``Z``, or local time with ``+02:00``."""
    utc = f"make_timestamp(({epoch})::bigint * 1000000)"
    return f"""case when {offset_col}
        then strftime({utc} + interval 2 hour, '%Y-%m-%dT%H:%M:%S') || '+02:00'
        else strftime({utc}, '%Y-%m-%dT%H:%M:%S') || 'Z' end"""


# How long after an event the loader wrote it to the warehouse.
LOAD_DELAY_SECONDS = 40 * 60


def _loaded_at_sql(epoch: str) -> str:
    """The load timestamp of an event row (column ``_loaded_at``), a fixed delay after the event.
    A TIMESTAMP (UTC), not text: an EL tool writes its own load time typed, and never broken."""
    return f"make_timestamp((({epoch}) + {LOAD_DELAY_SECONDS})::bigint * 1000000)"


BAD_TIMESTAMPS = ("not a date", "2025-13-45 10:00:00", "31/12/2025 25:61", "yesterday")
BAD_EMAIL_SQL = {
    0: "replace({e}, '@', '.')",
    1: "split_part({e}, '.', 1) || '@' || split_part(split_part({e}, '@', 2), '.', 1)",
    2: "replace({e}, '.', ' ')",
}


def _email_sql(canonical: str, variant: str) -> str:
    """A canonical email as a person types it: mostly as is, else cased or padded."""
    return f"""case {variant}
        when 1 then upper({canonical}[1]) || {canonical}[2:]
        when 2 then upper({canonical})
        when 3 then '  ' || {canonical} || ' '
        else {canonical} end"""


def _bad_email_sql(canonical: str, variant: str) -> str:
    cases = " ".join(
        f"when {k} then {tmpl.format(e=canonical)}" for k, tmpl in BAD_EMAIL_SQL.items()
    )
    return f"case ({variant} % 3) {cases} end"


def _phone_sql(country: str, nsn: str, variant: str) -> str:
    """A phone number in one of the national or international formats people write."""
    n = f"(({nsn})::varchar)"
    us = f"""case {variant}
        when 1 then '(' || {n}[1:3] || ') ' || {n}[4:6] || '-' || {n}[7:]
        when 2 then {n}[1:3] || '-' || {n}[4:6] || '-' || {n}[7:]
        when 3 then '+1 ' || {n}[1:3] || ' ' || {n}[4:6] || ' ' || {n}[7:]
        when 4 then '1' || {n}
        when 5 then {n}
        else '+1' || {n} end"""
    uk = f"""case {variant} % 3
        when 1 then '+44 ' || {n}[1:4] || ' ' || {n}[5:]
        when 2 then '0044 ' || {n}[1:4] || ' ' || {n}[5:]
        else '+44' || {n} end"""
    return f"case when {country} = 'GB' then {uk} else {us} end"


class _Builder:
    """Draws one table's skeleton (numeric columns) and registers it with the DuckDB session."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        seed: int,
        defect_rate: float,
        junk: bool,
        schema: str = "raw",
    ) -> None:
        self.con = con
        self.schema = schema
        self.seeds = np.random.SeedSequence(seed)
        self.defect_rate = defect_rate
        self.junk_share = 1.0 if junk else 0.0
        self.defect_counts: list[tuple[str, str, int]] = []

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seeds.spawn(1)[0])

    def register(self, name: str, columns: dict[str, np.ndarray]) -> None:
        self.con.register(f"{name}_arrow", pa.table(columns))
        self.con.execute(f"create or replace temp table {name} as select * from {name}_arrow")
        self.con.unregister(f"{name}_arrow")

    def with_defects(
        self, table: str, columns: dict[str, np.ndarray], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Mark ~1% of rows broken (one defect each) and append ~0.2% exact duplicates.

        Duplicates copy only intact rows, so every injected defect maps to exactly one rejection
        reason and the truth.defects table states the rejected row count per reason exactly.
        """
        spec = SPECS[table]
        n = len(next(iter(columns.values())))
        broken = rng.random(n) < self.defect_rate
        defect = np.zeros(n, dtype=np.int8)
        defect[broken] = rng.integers(1, len(spec.defects) + 1, int(broken.sum()))
        columns["defect"] = defect
        columns["variant"] = rng.integers(0, 12, n).astype(np.int8)
        columns["rid"] = np.arange(n, dtype=np.int64)
        for k, reason in enumerate(spec.defects, start=1):
            self.defect_counts.append((table, reason, int((defect == k).sum())))
        if spec.has_id:
            intact = np.flatnonzero(defect == 0)
            share = DUPLICATE_RATE if self.defect_rate > 0 else 0.0
            dup = np.sort(rng.choice(intact, int(len(intact) * share), replace=False))
            columns = {k: np.concatenate([v, v[dup]]) for k, v in columns.items()}
            self.defect_counts.append((table, "duplicate_id", len(dup)))
        return columns


def _defect(table: str, name: str) -> int:
    return SPECS[table].defects.index(name) + 1


def _people(b: _Builder, n: int) -> dict[str, np.ndarray]:
    rng = b.rng()
    kind = rng.choice(4, n, p=KIND_SHARE).astype(np.int8)
    pid = np.arange(n, dtype=np.int64)
    email_share = np.array([0.85, 1.0, 0.0, 0.95])[kind]
    phone_share = np.array([0.45, 0.5, 1.0, 0.6])[kind]
    has_email = rng.random(n) < email_share
    # A CRM-only contact always carries an email or a phone: CRMs refuse contacts with neither.
    has_phone = (rng.random(n) < phone_share) | ((kind == CRM) & ~has_email)
    foreign = has_phone & (rng.random(n) < 0.1)
    # (pid * prime) mod 10^k is a bijection on [0, 10^k): numbers are unique for up to 10M people.
    us_nsn = np.array(US_AREA_CODES)[pid % len(US_AREA_CODES)] * 10**7 + pid * 1_000_003 % 10**7
    uk_nsn = 7_700_000_000 + pid * 1_000_003 % 10**8
    people = {
        "person_id": pid,
        "kind": kind,
        "first_idx": rng.integers(0, len(FIRST_NAMES), n).astype(np.int8),
        "last_idx": rng.integers(0, len(LAST_NAMES), n).astype(np.int8),
        "domain_idx": rng.choice(len(EMAIL_DOMAINS), n, p=(0.4, 0.15, 0.15, 0.15, 0.05, 0.1)),
        "has_email": has_email,
        "has_phone": has_phone,
        "phone_country": np.where(foreign, "GB", "US"),
        "phone_nsn": np.where(foreign, uk_nsn, us_nsn),
        "has_account": (kind == WEB) & (rng.random(n) < 0.55),
        "first_seen": END_EPOCH
        - HISTORY_DAYS * DAY
        + rng.integers(0, (HISTORY_DAYS - 30) * DAY, n),
        "spend": rng.gamma(6.0, 15.0, n),
    }
    b.register("people_skeleton", people)
    b.con.execute(f"""
        create or replace temp table people as
        select
            person_id,
            kind,
            {_pick(FIRST_NAMES, "first_idx")} as first_name,
            {_pick(LAST_NAMES, "last_idx")} as last_name,
            case when has_email then lower({_pick(FIRST_NAMES, "first_idx")}) || '.'
                || lower({_pick(LAST_NAMES, "last_idx")}) || person_id::varchar || '@'
                || {_pick(EMAIL_DOMAINS, "domain_idx")} end as email,
            case when has_phone then phone_country end as phone_country,
            case when has_phone then phone_nsn end as phone_nsn,
            case when has_phone then
                case when phone_country = 'GB' then '+44' else '+1' end || phone_nsn::varchar
            end as phone_e164,
            case when has_account then 'user_' || (100000 + person_id)::varchar end as user_id,
            case when kind in ({WEB}, {SHOP}) and has_email
                then 'cus_' || (300000 + person_id)::varchar end as shop_customer_ref,
            first_seen,
            spend
        from people_skeleton
    """)
    return people


def _devices(b: _Builder, people: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rng = b.rng()
    web = np.flatnonzero(people["kind"] == WEB)
    # Only people who log in can be followed across devices; the others browse on one.
    per_person = np.where(
        people["has_account"][web], 1 + np.minimum(rng.poisson(0.6, len(web)), 3), 1
    )
    person = np.repeat(web, per_person)
    m = len(person)
    first_of_person = np.r_[True, person[1:] != person[:-1]]
    first_seen = people["first_seen"][person] + np.where(
        first_of_person, 0, rng.integers(0, 200 * DAY, m)
    )
    first_seen = np.minimum(first_seen, END_EPOCH - DAY)
    span = np.minimum(rng.exponential(90 * DAY, m).astype(np.int64) + DAY, END_EPOCH - first_seen)
    has_account = people["has_account"][person]
    # Account holders browse anonymously on each device until they log in there; people with an
    # email but no account identify once, through a newsletter form.
    logs_in = has_account
    newsletter = first_of_person & ~has_account & people["has_email"][person]
    identify_at = first_seen + (rng.random(m) * span * 0.5).astype(np.int64)
    devices = {
        "device_id": np.arange(m, dtype=np.int64),
        "person_id": person,
        "is_app": rng.random(m) < 0.3,
        "first_seen": first_seen,
        "span": span,
        "logs_in": logs_in,
        "newsletter": newsletter,
        "identify_at": np.where(logs_in | newsletter, identify_at, np.iinfo(np.int64).max),
        "activity": rng.lognormal(0.0, 0.6, m),
        "junk_anonymous_id": rng.random(m) < 0.001 * b.junk_share,
    }
    b.register("devices_skeleton", devices)
    b.con.execute(f"""
        create or replace temp table devices as
        select
            device_id,
            person_id,
            is_app,
            logs_in,
            identify_at,
            -- Segment-style anonymous ids look like UUIDs; derive them so they are stable per seed.
            case when junk_anonymous_id then '{JUNK_ANONYMOUS_ID}'
                else regexp_replace(md5('anon-' || device_id::varchar),
                    '^(.{{8}})(.{{4}})(.{{4}})(.{{4}})(.{{12}})$', '\\1-\\2-\\3-\\4-\\5')
            end as anonymous_id,
            case when is_app then upper(md5('device-' || device_id::varchar)[1:16]) end
                as context_device_id
        from devices_skeleton
    """)
    return devices


def _events_per_device(
    rng: np.random.Generator, devices: dict[str, np.ndarray], mean: float
) -> dict[str, np.ndarray]:
    per_device = rng.geometric(1.0 / (1.0 + mean * devices["activity"]))
    device = np.repeat(devices["device_id"], per_device)
    n = len(device)
    ts = devices["first_seen"][device] + (rng.random(n) * devices["span"][device]).astype(np.int64)
    return {
        "device_id": device,
        "ts": ts,
        "logged_in": devices["logs_in"][device] & (ts >= devices["identify_at"][device]),
        "tz_offset": rng.random(n) < 0.05,
    }


def _render_pages(b: _Builder, devices: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    sk = _events_per_device(rng, devices, 9.0)
    n = len(sk["ts"])
    sk["path_idx"] = rng.choice(len(PATHS), n, p=(0.15, 0.15, 0.35, 0.1, 0.05, 0.08, 0.07, 0.05))
    sk["product"] = rng.integers(1, 500, n)
    sk["ref_idx"] = rng.integers(0, len(REFERRERS), n)
    sk["utm_idx"] = np.where(rng.random(n) < 0.25, rng.integers(0, len(UTM_SOURCES), n), -1)
    b.register("pages_skeleton", b.with_defects("pages", sk, rng))
    path = f"replace({_pick(PATHS, 'path_idx')}, '{{p}}', 'p-' || product::varchar)"
    d = lambda name: _defect("pages", name)  # noqa: E731
    b.con.execute(f"""
        create or replace table {b.schema}.pages as
        select
            case when s.defect <> {d("missing_id")}
                then 'pg_' || lpad(s.rid::varchar, 10, '0') end as id,
            case when s.defect <> {d("no_identifier")} then dev.anonymous_id end as anonymous_id,
            case when s.logged_in and s.defect <> {d("no_identifier")} then p.user_id end
                as user_id,
            'https://shop.example.com' || {path} as url,
            {path} as path,
            nullif({_pick(REFERRERS, "ref_idx")}, '') as referrer,
            case when utm_idx >= 0 then {_pick(UTM_SOURCES, "utm_idx")} end as utm_source,
            case when utm_idx >= 0 then {_pick(UTM_MEDIUMS, "utm_idx")} end as utm_medium,
            case when utm_idx >= 0 then {_pick(UTM_CAMPAIGNS, "utm_idx")} end as utm_campaign,
            case when s.defect = {d("unparseable_timestamp")}
                then {_pick(BAD_TIMESTAMPS, "s.variant % 4")}
                else {_timestamp_sql("s.ts", "s.tz_offset")} end as timestamp,
            {_loaded_at_sql("s.ts")} as _loaded_at
        from pages_skeleton as s
        inner join devices as dev on s.device_id = dev.device_id
        inner join people as p on dev.person_id = p.person_id
        order by s.ts, s.rid
    """)


def _render_tracks(b: _Builder, devices: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    sk = _events_per_device(rng, devices, 6.0)
    n = len(sk["ts"])
    sk["event_idx"] = rng.choice(len(TRACK_EVENTS), n, p=(0.45, 0.2, 0.1, 0.05, 0.15, 0.05))
    sk["product"] = rng.integers(1, 500, n)
    sk["price"] = np.round(rng.gamma(3.0, 12.0, n), 2)
    b.register("tracks_skeleton", b.with_defects("tracks", sk, rng))
    d = lambda name: _defect("tracks", name)  # noqa: E731
    b.con.execute(f"""
        create or replace table {b.schema}.tracks as
        select
            case when s.defect <> {d("missing_id")}
                then 'tr_' || lpad(s.rid::varchar, 10, '0') end as id,
            case when s.defect <> {d("no_identifier")} then dev.anonymous_id end as anonymous_id,
            case when s.logged_in and s.defect <> {d("no_identifier")} then p.user_id end
                as user_id,
            case when s.defect <> {d("missing_event")} then {_pick(TRACK_EVENTS, "event_idx")}
                end as event,
            case when event_idx in (0, 1)
                then '{{"product_id": "p-' || product::varchar || '", "price": '
                    || price::varchar || '}}'
                else '{{}}' end as properties,
            case when s.defect <> {d("no_identifier")} then dev.context_device_id end
                as context_device_id,
            case when s.defect = {d("unparseable_timestamp")}
                then {_pick(BAD_TIMESTAMPS, "s.variant % 4")}
                else {_timestamp_sql("s.ts", "s.tz_offset")} end as timestamp,
            {_loaded_at_sql("s.ts")} as _loaded_at
        from tracks_skeleton as s
        inner join devices as dev on s.device_id = dev.device_id
        inner join people as p on dev.person_id = p.person_id
        order by s.ts, s.rid
    """)


def _render_identifies(b: _Builder, devices: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    first = np.flatnonzero(devices["logs_in"] | devices["newsletter"])
    # A third of logged-in devices send a second identify later (a profile update).
    again = first[devices["logs_in"][first] & (rng.random(len(first)) < 0.3)]
    device = np.concatenate([first, again])
    n = len(device)
    later = np.r_[np.zeros(len(first)), rng.random(len(again))]
    remaining = (
        devices["first_seen"][device] + devices["span"][device] - devices["identify_at"][device]
    )
    sk = {
        "device_id": device,
        "ts": devices["identify_at"][device] + (later * np.maximum(remaining, 0)).astype(np.int64),
        "with_phone": rng.random(n) < 0.5,
        "junk_email": rng.random(n) < 0.004 * b.junk_share,
        "tz_offset": rng.random(n) < 0.05,
    }
    b.register("identifies_skeleton", b.with_defects("identifies", sk, rng))
    d = lambda name: _defect("identifies", name)  # noqa: E731
    email = f"case when s.junk_email then '{JUNK_EMAIL}' else p.email end"
    b.con.execute(f"""
        create or replace table {b.schema}.identifies as
        select
            case when s.defect <> {d("missing_id")}
                then 'idf_' || lpad(s.rid::varchar, 10, '0') end as id,
            case when s.defect <> {d("no_identifier")} then dev.anonymous_id end as anonymous_id,
            case when dev.logs_in and s.defect <> {d("no_identifier")} then p.user_id end
                as user_id,
            case
                when s.defect = {d("no_identifier")} then null
                when s.defect = {d("malformed_email")}
                    then {_bad_email_sql("coalesce(p.email, 'x.y@z.com')", "s.variant")}
                else {_email_sql(email, "s.variant")}
            end as email,
            case when s.with_phone and s.defect <> {d("no_identifier")}
                then {_phone_sql("p.phone_country", "p.phone_nsn", "s.variant % 6")} end as phone,
            p.first_name,
            p.last_name,
            case when s.defect = {d("unparseable_timestamp")}
                then {_pick(BAD_TIMESTAMPS, "s.variant % 4")}
                else {_timestamp_sql("s.ts", "s.tz_offset")} end as timestamp,
            {_loaded_at_sql("s.ts")} as _loaded_at
        from identifies_skeleton as s
        inner join devices as dev on s.device_id = dev.device_id
        inner join people as p on dev.person_id = p.person_id
        order by s.ts, s.rid
    """)


def _render_orders(b: _Builder, people: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    kind = people["kind"]
    buys = (
        ((kind == WEB) & people["has_email"] & (rng.random(len(kind)) < 0.5))
        | (kind == SHOP)
        | (kind == POS)
    )
    buyers = np.flatnonzero(buys)
    per_buyer = rng.geometric(0.45, len(buyers))
    person = np.repeat(buyers, per_buyer)
    n = len(person)
    first_seen = people["first_seen"][person]
    sk = {
        "person_id": person,
        "ts": first_seen + (rng.random(n) * (END_EPOCH - first_seen)).astype(np.int64),
        "amount": np.round(rng.gamma(4.0, people["spend"][person] / 4.0), 2),
        "guest": rng.random(n) < 0.3,
        "with_phone": rng.random(n) < 0.4,
        "junk": rng.random(n) < 0.004 * b.junk_share,
        "status_idx": rng.choice(3, n, p=(0.9, 0.05, 0.05)),
        "currency_idx": rng.choice(3, n, p=(0.95, 0.03, 0.02)),
        "app": rng.random(n) < 0.3,
        "tz_offset": rng.random(n) < 0.05,
    }
    b.register("orders_skeleton", b.with_defects("orders", sk, rng))
    d = lambda name: _defect("orders", name)  # noqa: E731
    pos = f"p.kind = {POS}"
    email = f"case when s.junk and not {pos} then '{JUNK_EMAIL}' else p.email end"
    phone_raw = _phone_sql("p.phone_country", "p.phone_nsn", "s.variant % 6")
    b.con.execute(f"""
        create or replace table {b.schema}.orders as
        select
            case when s.defect <> {d("missing_id")}
                then 'ord_' || lpad(s.rid::varchar, 9, '0') end as order_id,
            case when not ({pos}) and not s.guest and s.defect <> {d("no_identifier")}
                then p.shop_customer_ref end as customer_ref,
            case
                when s.defect = {d("no_identifier")} then null
                when s.defect = {d("malformed_email")}
                    then {_bad_email_sql("coalesce(p.email, 'x.y@z.com')", "s.variant")}
                when {pos} then null
                else {_email_sql(email, "s.variant")}
            end as email,
            case
                when s.defect = {d("no_identifier")} then null
                when s.defect = {d("malformed_phone")} then 'ext. ' || (s.rid % 1000)::varchar
                when {pos} and s.junk then '{JUNK_PHONE}'
                when ({pos} or s.with_phone) and p.phone_nsn is not null then {phone_raw}
            end as phone,
            case when s.defect = {d("unparseable_timestamp")}
                then {_pick(BAD_TIMESTAMPS, "s.variant % 4")}
                else {_timestamp_sql("s.ts", "s.tz_offset")} end as ordered_at,
            case when s.defect = {d("negative_amount")} then -s.amount - 1 else s.amount end
                as total_amount,
            {_pick(("USD", "EUR", "GBP"), "s.currency_idx")} as currency,
            {_pick(("completed", "refunded", "cancelled"), "s.status_idx")} as status,
            case when {pos} then 'pos' when s.app then 'app' else 'web' end as channel
        from orders_skeleton as s
        inner join people as p on s.person_id = p.person_id
        order by s.ts, s.rid
    """)


def _render_order_items(b: _Builder) -> None:
    """One to four products per order the shop stages (broken orders get none), each once."""
    rng = b.rng()
    orders = b.con.execute(
        "select distinct rid from orders_skeleton where defect = 0 order by rid"
    ).fetchnumpy()["rid"]
    per_order = np.minimum(rng.geometric(0.55, len(orders)), 4)
    n = int(per_order.sum())
    # Distinct products within an order: consecutive offsets from a random first product.
    line = np.arange(n) - np.repeat(np.cumsum(per_order) - per_order, per_order)
    first = np.repeat(rng.integers(1, 500, len(orders)), per_order)
    sk = {
        "order_rid": np.repeat(orders, per_order),
        "product": (first + line * 37) % 499 + 1,
        "price": np.round(rng.gamma(3.0, 12.0, n), 2),
        "quantity": np.minimum(rng.geometric(0.7, n), 5),
    }
    b.register("order_items_skeleton", b.with_defects("order_items", sk, rng))
    d = lambda name: _defect("order_items", name)  # noqa: E731
    b.con.execute(f"""
        create or replace table {b.schema}.order_items as
        select
            case when s.defect <> {d("missing_id")}
                then 'ord_' || lpad(s.order_rid::varchar, 9, '0') end as order_id,
            case when s.defect <> {d("missing_product")}
                then 'p-' || s.product::varchar end as product_id,
            case when s.defect <> {d("missing_product")}
                then 'SKU-' || lpad(s.product::varchar, 5, '0') end as sku,
            'Product ' || s.product::varchar as name,
            {_pick(PRODUCT_CATEGORIES, "s.product % 6")} as category,
            case when s.defect = {d("negative_price")} then -s.price - 1 else s.price end
                as price,
            case when s.defect = {d("invalid_quantity")}
                then {_pick(("0", "two", "-1", "1.5"), "s.variant % 4")}
                else s.quantity::varchar end as quantity
        from order_items_skeleton as s
        order by s.order_rid, s.rid
    """)


def _render_crm_contacts(b: _Builder, people: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    kind = people["kind"]
    in_crm = (kind == CRM) | ((kind != POS) & people["has_email"] & (rng.random(len(kind)) < 0.25))
    person = np.flatnonzero(in_crm)
    n = len(person)
    created = people["first_seen"][person] + rng.integers(0, 30 * DAY, n)
    created = np.minimum(created, END_EPOCH - DAY)
    sk = {
        "person_id": person,
        "created": created,
        "updated": created + (rng.random(n) * (END_EPOCH - created)).astype(np.int64),
        "stage_idx": rng.integers(0, len(LIFECYCLE_STAGES), n),
        # A shared company inbox typed as the contact email by many different people.
        "shared_inbox": rng.random(n) < min(0.01, 40 / max(n, 1)) * b.junk_share,
        "tz_offset": rng.random(n) < 0.05,
    }
    b.register("crm_skeleton", b.with_defects("crm_contacts", sk, rng))
    d = lambda name: _defect("crm_contacts", name)  # noqa: E731
    email = f"case when s.shared_inbox then '{SHARED_INBOX}' else p.email end"
    b.con.execute(f"""
        create or replace table {b.schema}.crm_contacts as
        select
            case when s.defect <> {d("missing_id")}
                then 'crm_' || (500000 + s.rid)::varchar end as contact_id,
            case
                when s.defect = {d("no_identifier")} then null
                when s.defect = {d("malformed_email")}
                    then {_bad_email_sql("coalesce(p.email, 'x.y@z.com')", "s.variant")}
                else {_email_sql(email, "s.variant")}
            end as email,
            case when s.defect <> {d("no_identifier")} and p.phone_nsn is not null
                then {_phone_sql("p.phone_country", "p.phone_nsn", "s.variant % 6")} end as phone,
            p.first_name,
            p.last_name,
            case when s.person_id % 3 = 0 then 'Acme Corp' end as company,
            {_pick(LIFECYCLE_STAGES, "s.stage_idx")} as lifecycle_stage,
            case when s.defect = {d("unparseable_timestamp")}
                then {_pick(BAD_TIMESTAMPS, "s.variant % 4")}
                else {_timestamp_sql("s.created", "s.tz_offset")} end as created_at,
            {_timestamp_sql("s.updated", "s.tz_offset")} as updated_at
        from crm_skeleton as s
        inner join people as p on s.person_id = p.person_id
        order by s.rid
    """)


def _render_support_tickets(b: _Builder, people: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    with_email = np.flatnonzero(people["has_email"] & (rng.random(len(people["kind"])) < 0.08))
    person = np.repeat(with_email, 1 + rng.poisson(0.5, len(with_email)))
    n = len(person)
    first_seen = people["first_seen"][person]
    sk = {
        "person_id": person,
        "ts": first_seen + (rng.random(n) * (END_EPOCH - first_seen)).astype(np.int64),
        "status_idx": rng.integers(0, 3, n),
        "channel_idx": rng.integers(0, 3, n),
        "score": np.where(rng.random(n) < 0.6, rng.integers(1, 6, n), -1),
        "tz_offset": rng.random(n) < 0.05,
    }
    b.register("tickets_skeleton", b.with_defects("support_tickets", sk, rng))
    d = lambda name: _defect("support_tickets", name)  # noqa: E731
    b.con.execute(f"""
        create or replace table {b.schema}.support_tickets as
        select
            case when s.defect <> {d("missing_id")}
                then 'tkt_' || (700000 + s.rid)::varchar end as ticket_id,
            case
                when s.defect = {d("no_identifier")} then null
                when s.defect = {d("malformed_email")} then {_bad_email_sql("p.email", "s.variant")}
                else {_email_sql("p.email", "s.variant")}
            end as requester_email,
            case when s.defect = {d("unparseable_timestamp")}
                then {_pick(BAD_TIMESTAMPS, "s.variant % 4")}
                else {_timestamp_sql("s.ts", "s.tz_offset")} end as created_at,
            {_pick(("open", "pending", "solved"), "s.status_idx")} as status,
            {_pick(("email", "chat", "phone"), "s.channel_idx")} as channel,
            case when s.score > 0 then s.score::integer end as satisfaction_score
        from tickets_skeleton as s
        inner join people as p on s.person_id = p.person_id
        order by s.ts, s.rid
    """)


def _render_consents(b: _Builder, people: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    n_people = len(people["kind"])
    persons, purposes = [], []
    for k, share in enumerate((0.6, 0.4, 0.7)):
        granted = np.flatnonzero(people["has_email"] & (rng.random(n_people) < share))
        persons.append(granted)
        purposes.append(np.full(len(granted), k))
    person = np.concatenate(persons)
    purpose = np.concatenate(purposes)
    granted_at = people["first_seen"][person] + rng.integers(0, 3 * DAY, len(person))
    # 15% of grants are revoked later: a second row with granted = false.
    revoked = rng.random(len(person)) < 0.15
    revoked_at = granted_at + (rng.random(len(person)) * (END_EPOCH - granted_at)).astype(np.int64)
    sk = {
        "person_id": np.concatenate([person, person[revoked]]),
        "purpose_idx": np.concatenate([purpose, purpose[revoked]]),
        "granted": np.r_[np.ones(len(person), bool), np.zeros(int(revoked.sum()), bool)],
        "ts": np.concatenate([granted_at, revoked_at[revoked]]),
        "source_idx": rng.integers(0, 3, len(person) + int(revoked.sum())),
    }
    order = np.lexsort((sk["person_id"], sk["ts"]))
    sk = {k: v[order] for k, v in sk.items()}
    sk["tz_offset"] = np.zeros(len(order), bool)
    b.register("consents_skeleton", b.with_defects("consents", sk, rng))
    d = lambda name: _defect("consents", name)  # noqa: E731
    b.con.execute(f"""
        create or replace table {b.schema}.consents as
        select
            'email' as subject_type,
            case when s.defect <> {d("no_identifier")}
                then {_email_sql("p.email", "s.variant")} end as subject_value,
            {_pick(CONSENT_PURPOSES, "s.purpose_idx")} as purpose,
            s.granted,
            case when s.defect = {d("unparseable_timestamp")}
                then {_pick(BAD_TIMESTAMPS, "s.variant % 4")}
                else {_timestamp_sql("s.ts", "s.tz_offset")} end as recorded_at,
            {_pick(("signup_form", "preference_center", "crm_import"), "s.source_idx")} as source
        from consents_skeleton as s
        inner join people as p on s.person_id = p.person_id
        order by s.rid
    """)


def _render_deletion_requests(b: _Builder, people: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    n_people = len(people["kind"])
    person = np.flatnonzero(people["has_email"] & (rng.random(n_people) < 0.005))
    n = len(person)
    sk = {
        "person_id": person,
        "ts": END_EPOCH - rng.integers(DAY, 60 * DAY, n),
        "tz_offset": np.zeros(n, bool),
    }
    b.register("deletions_skeleton", b.with_defects("deletion_requests", sk, rng))
    d = lambda name: _defect("deletion_requests", name)  # noqa: E731
    b.con.execute(f"""
        create or replace table {b.schema}.deletion_requests as
        select
            'email' as subject_type,
            case when s.defect <> {d("no_identifier")}
                then {_email_sql("p.email", "s.variant")} end as subject_value,
            case when s.defect = {d("unparseable_timestamp")}
                then {_pick(BAD_TIMESTAMPS, "s.variant % 4")}
                else {_timestamp_sql("s.ts", "s.tz_offset")} end as requested_at
        from deletions_skeleton as s
        inner join people as p on s.person_id = p.person_id
        order by s.rid
    """)


def _truth(b: _Builder) -> None:
    """The true person behind every identifier, in the normalised form staging produces."""
    con = b.con
    con.execute(f"""
        create or replace table truth.persons as
        select person_id, {_pick(KIND_NAMES, "kind")} as kind from people order by person_id
    """)
    con.execute(f"""
        create or replace table truth.identifiers as
        with identifiers as (
            select 'anonymous_id' as identifier_type, anonymous_id as identifier_value, person_id
            from devices
            union all
            select 'device_id', context_device_id, person_id from devices
            union all
            select 'user_id', user_id, person_id from people
            union all
            select 'email', email, person_id from people
            union all
            select 'phone', phone_e164, person_id from people
            union all
            select 'shop_customer_ref', shop_customer_ref, person_id from people
            union all
            select 'crm_contact_id', 'crm_' || (500000 + rid)::varchar, person_id
            from crm_skeleton where defect = 0
            union all
            select 'email', '{SHARED_INBOX}', person_id
            from crm_skeleton where defect = 0 and shared_inbox
            union all
            select 'email', '{JUNK_EMAIL}', dev.person_id
            from identifies_skeleton as s
            inner join devices as dev on s.device_id = dev.device_id
            where s.defect = 0 and s.junk_email
            union all
            select
                case when p.kind = {POS} then 'phone' else 'email' end,
                case when p.kind = {POS} then '{JUNK_PHONE_E164}' else '{JUNK_EMAIL}' end,
                p.person_id
            from orders_skeleton as s
            inner join people as p on s.person_id = p.person_id
            where s.defect = 0 and s.junk
        )
        select distinct identifier_type, identifier_value, person_id
        from identifiers
        where identifier_value is not null
        order by identifier_type, identifier_value, person_id
    """)
    con.execute("create or replace table truth.defects (table_name text, reason text, rows bigint)")
    con.executemany("insert into truth.defects values (?, ?, ?)", b.defect_counts)


def generate(
    customers: int,
    seed: int = 42,
    con: duckdb.DuckDBPyConnection | None = None,
    progress: Callable[[str], None] | None = None,
    defect_rate: float = DEFECT_RATE,
    junk: bool = True,
    schema: str = "raw",
) -> GeneratedData:
    """Generate ``customers`` people's source data into schemas ``schema`` (the project's
    ``tessera_raw_schema``, default ``raw``) and ``truth``.

    ``con`` is the DuckDB database to write to (a new in-memory one by default); existing tables
    of the same names are replaced, so generating twice gives the same warehouse. Tests of
    identity resolution turn off the adversarial parts: ``defect_rate=0`` (no broken or duplicate
    rows) and ``junk=False`` (no identifier shared by different people), leaving data whose true
    clustering is fully supported by evidence.
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    started = time.perf_counter()
    con = con or duckdb.connect(":memory:")
    con.execute("set enable_progress_bar = false")
    con.execute(f'create schema if not exists "{schema}"; create schema if not exists truth')
    if not 0 <= defect_rate < 0.5:
        raise ValueError(f"defect_rate must be in [0, 0.5), got {defect_rate}")
    b = _Builder(con, seed, defect_rate, junk, schema)
    say = progress or (lambda _msg: None)

    people = _people(b, customers)
    devices = _devices(b, people)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("pages", lambda: _render_pages(b, devices)),
        ("tracks", lambda: _render_tracks(b, devices)),
        ("identifies", lambda: _render_identifies(b, devices)),
        ("orders", lambda: _render_orders(b, people)),
        ("crm_contacts", lambda: _render_crm_contacts(b, people)),
        ("support_tickets", lambda: _render_support_tickets(b, people)),
        ("consents", lambda: _render_consents(b, people)),
        ("deletion_requests", lambda: _render_deletion_requests(b, people)),
        ("order_items", lambda: _render_order_items(b)),
    ]
    data = GeneratedData(con=con, customers=customers, seed=seed)
    for table, step in steps:
        t0 = time.perf_counter()
        step()
        rows = con.execute(f'select count(*) from "{schema}".{table}').fetchall()[0][0]
        data.row_counts[table] = rows
        say(f"generated {schema}.{table}: {rows:,} rows in {time.perf_counter() - t0:.1f}s")
    _truth(b)
    data.seconds = time.perf_counter() - started
    return data
