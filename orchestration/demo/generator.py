"""Deterministic, adversarial generator of Tessera's source tables.

Random structure (who has which identifiers, how many devices, events and orders, which rows are
broken) is drawn with numpy; the rows are rendered to text by DuckDB, which formats tens of
millions of strings in parallel far faster than Python can. The result is one in-memory DuckDB
database holding schema ``raw`` (the source contract) and schema ``truth`` (what really happened:
the true person behind every identifier, the defects injected per table). Sinks in
``orchestration.warehouse`` copy it to the user's warehouse.

Buyers follow the BG/NBD story, so that CLV models have something to find: each buys at a rate of
their own and, after each repeat purchase, may stop for good; after that their devices fall
almost silent. A few people break identity's limits on purpose: family computers that several
account holders log in on, and shop logins shared on many devices.

What people buy and view has structure for recommendations to find: each prefers a category or
two, a few products sell most of each category, and each product has a partner bought with it
or next (truth.products). Support tickets follow orders, so that recent orders and past tickets
predict the next one.

Everything depends only on ``(customers, seed)``: the clock is fixed at ``END``, never ``now()``.
``generate_increment`` appends what happens after ``END`` to a generated schema, for incremental
runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

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

TRUTH_TABLES = ("persons", "identifiers", "defects", "shared_identifiers", "products")

# An epoch that never comes: no dropout, no identify.
NEVER = np.iinfo(np.int64).max

# BG/NBD purchases: a buyer's purchase rate per day ~ Gamma(shape r, rate alpha days), the
# probability of stopping after each repeat purchase ~ Beta(a, b). Measured on generate(50_000,
# seed=7): 2.3 orders per buyer, a quarter of the buyers stop within the history, 55% have not
# ordered in the last 180 days; a BG/NBD fit on the completed orders of the buyers a shop knows
# (guests' orders unseen) finds r 0.56, alpha 22 weeks, a 1.1, b 3.3.
PURCHASE_RATE_SHAPE = 0.7
PURCHASE_RATE_DAYS = 130.0
DROPOUT_A = 0.9
DROPOUT_B = 3.0
# Share of a device's events after its person stopped buying that still happen.
EVENTS_KEPT_AFTER_DROPOUT = 0.1

# Designed identity breakers, as shares of web people: family computers (one browser, two or
# three people logging in with their own accounts) and shop logins shared on many devices.
FAMILY_COMPUTER_SHARE = 0.002
SHARED_LOGIN_SHARE = 0.0005
# Devices per shared login (more than the 20 anonymous ids one identifier may link before it
# counts as shared) and people using it besides its owner, both inclusive ranges.
SHARED_LOGIN_DEVICES = (21, 28)
SHARED_LOGIN_USERS = (3, 6)

# Independent random streams by name, beside the builder's one stream per table.
STREAMS = {
    "purchases": 1,
    "shared_logins": 2,
    "family_computers": 3,
    "increment": 4,
    "catalogue": 5,
    "affinities": 6,
    "baskets": 7,
    "product_views": 8,
    "tickets": 9,
    "increment_products": 10,
}

# Support tickets follow orders, so that recent orders and past tickets predict the next one.
# After each order, a person with an email opens a ticket 2 to 28 days later (once it has
# arrived) with a propensity of their own ~ Beta(a, b), higher for the ticket-prone (8% of people
# with an email, whose other tickets come after any of their orders, or at any time if they
# never buy) and after a refunded or cancelled order; a share of tickets lead to a follow-up a
# week or so later. Measured on generate(20_000, seed=42) with the features of
# orchestration/predictive/propensity.py in a logistic regression, cutoff 30 days before END,
# 5-fold: AUC 0.85 against 0.79 for the days since the last ticket alone, top-decile lift 6.1
# against 4.5, on ~480 positives. With tickets 1 to 14 days after their order the AUCs were
# within 0.02: the ticket answering a recent order had mostly come before the cutoff, and the
# last ticket's date told as much.
TICKET_PROPENSITY_A = 4.0
TICKET_PROPENSITY_B = 10.0
TICKET_PRONE_BOOST = 0.2
TICKET_FAILED_ORDER_BOOST = 0.3
TICKET_DELAY_DAYS = (2, 28)
TICKET_FOLLOW_UP = 0.1
TICKET_FOLLOW_UP_DAYS = 7.0

# Products p-1 to p-499; a product's category is PRODUCT_CATEGORIES[product % 6].
PRODUCT_COUNT = 499
# Planted product affinities, for recommendations to find. Each person prefers a category (half
# of them a second one too); most of what they buy and view comes from those, and within a
# category a few products sell far more than the rest (Zipf). Each product has a partner in its
# category, often bought with it or as the first product of the buyer's next order; views run
# ahead of purchases. Measured on generate(20_000, seed=42), the last 30 days before END held
# out: an item-to-item co-occurrence recommender (co-bought and co-viewed counts, seeds weighted
# by recency, bought products left out) hits 29% of the 856 buyers in its top 5, the 5 best
# sellers 17%. With views drawn by popularity like purchases, co-viewed best sellers swamped the
# co-occurrence counts and the two were level.
PREFERRED_CATEGORY_SHARE = 0.6
SECOND_CATEGORY_PEOPLE = 0.5
SECOND_CATEGORY_SHARE = 0.35
CATEGORY_POPULARITY = (0.24, 0.2, 0.17, 0.15, 0.13, 0.11)
POPULARITY_EXPONENT = 1.0
PARTNER_IN_ORDER = 0.5
PARTNER_NEXT_ORDER = 0.4
# Share of a person's product views and adds that are of their next order's products (bought
# within VIEW_LEAD_DAYS after).
VIEWS_OF_NEXT_ORDER = 0.4
VIEW_LEAD_DAYS = 30


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
        self.seed = seed
        self.seeds = np.random.SeedSequence(seed)
        self.defect_rate = defect_rate
        self.junk_share = 1.0 if junk else 0.0
        self.defect_counts: list[tuple[str, str, int]] = []
        # People who take part in a designed identity breaker (a family computer, a shared
        # login), and each device's logged-in event rows: filled as the tables are drawn.
        self.shared_people = np.zeros(0, dtype=bool)
        self.logged_in_rows = np.zeros(0)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seeds.spawn(1)[0])

    def stream(self, name: str, *key: int) -> np.random.Generator:
        """A random stream of its own, whatever the tables drawn before it."""
        return np.random.default_rng(np.random.SeedSequence((self.seed, STREAMS[name], *key)))

    def register(self, name: str, columns: dict[str, np.ndarray]) -> None:
        self.con.register(f"{name}_arrow", pa.table(columns))
        self.con.execute(f"create or replace temp table {name} as select * from {name}_arrow")
        self.con.unregister(f"{name}_arrow")

    def with_defects(
        self,
        table: str,
        columns: dict[str, np.ndarray],
        rng: np.random.Generator,
        intact: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Mark ~1% of rows broken (one defect each) and append ~0.2% exact duplicates.

        Duplicates copy only intact rows, so every injected defect maps to exactly one rejection
        reason and the truth.defects table states the rejected row count per reason exactly.
        Rows at positions ``intact`` are never broken.
        """
        spec = SPECS[table]
        n = len(next(iter(columns.values())))
        broken = rng.random(n) < self.defect_rate
        if intact is not None:
            broken[intact] = False
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


def _person_columns(
    rng: np.random.Generator, pid: np.ndarray, kind: np.ndarray
) -> dict[str, np.ndarray]:
    """Each person's identifiers and traits, drawn given their ids and kinds."""
    n = len(pid)
    email_share = np.array([0.85, 1.0, 0.0, 0.95])[kind]
    phone_share = np.array([0.45, 0.5, 1.0, 0.6])[kind]
    has_email = rng.random(n) < email_share
    # A CRM-only contact always carries an email or a phone: CRMs refuse contacts with neither.
    has_phone = (rng.random(n) < phone_share) | ((kind == CRM) & ~has_email)
    foreign = has_phone & (rng.random(n) < 0.1)
    # (pid * prime) mod 10^k is a bijection on [0, 10^k): numbers are unique for up to 10M people.
    us_nsn = np.array(US_AREA_CODES)[pid % len(US_AREA_CODES)] * 10**7 + pid * 1_000_003 % 10**7
    uk_nsn = 7_700_000_000 + pid * 1_000_003 % 10**8
    return {
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


def _register_people(b: _Builder, people: dict[str, np.ndarray], name: str) -> None:
    """Render people's identifiers as text into temp table ``name``."""
    b.register(f"{name}_skeleton", people)
    b.con.execute(f"""
        create or replace temp table {name} as
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
        from {name}_skeleton
    """)


def _people(b: _Builder, n: int) -> dict[str, np.ndarray]:
    rng = b.rng()
    kind = rng.choice(4, n, p=KIND_SHARE).astype(np.int8)
    people = _person_columns(rng, np.arange(n, dtype=np.int64), kind)
    _register_people(b, people, "people")
    b.shared_people = np.zeros(n, dtype=bool)
    return people


def _purchase_process(
    rng: np.random.Generator, first: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD purchases of buyers whose first purchase is at epoch ``first``, up to ``END``.

    Each buyer purchases at a rate drawn from a Gamma and, after each repeat purchase, stops for
    good with a probability drawn from a Beta. Returns per buyer the rate (per day), the dropout
    probability and the dropout epoch (``NEVER`` if still active at ``END``), and the repeat
    purchases as (buyer index, epoch), in time order per buyer.
    """
    m = len(first)
    horizon = END_EPOCH - first
    rate = rng.gamma(PURCHASE_RATE_SHAPE, 1.0 / PURCHASE_RATE_DAYS, m)
    dropout_p = rng.beta(DROPOUT_A, DROPOUT_B, m)
    # The purchase after which a buyer stops, and how many the history would hold if they never
    # stopped: the repeats seen are the first min(both) arrivals of a Poisson process.
    last_repeat = rng.geometric(dropout_p)
    possible = rng.poisson(rate * horizon / DAY)
    repeats = np.minimum(possible, last_repeat)
    # The first k of N sorted uniforms on (0, 1) are S_i / S_{N+1}, S the running sums of N + 1
    # standard exponentials, and S_{N+1} = S_k + Gamma(N + 1 - k): k draws instead of N.
    buyer = np.repeat(np.arange(m), repeats)
    running = np.r_[0.0, np.cumsum(rng.exponential(1.0, int(repeats.sum())))]
    ends = np.cumsum(repeats)
    before = running[ends - repeats]
    total = running[ends] - before + rng.gamma(possible + 1 - repeats)
    share = (running[1:] - before[buyer]) / total[buyer]
    repeat_ts = first[buyer] + (share * horizon[buyer]).astype(np.int64)
    dropout = np.full(m, NEVER, dtype=np.int64)
    stopped = last_repeat <= possible
    dropout[stopped] = repeat_ts[ends[stopped] - 1]
    return rate, dropout_p, dropout, buyer, repeat_ts


def _purchases(b: _Builder, people: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Who buys, when, and when they stop for good (``dropout``: epoch, ``NEVER`` if not yet)."""
    rng = b.stream("purchases")
    kind = people["kind"]
    n = len(kind)
    buys = (
        ((kind == WEB) & people["has_email"] & (rng.random(n) < 0.5))
        | (kind == SHOP)
        | (kind == POS)
    )
    buyers = np.flatnonzero(buys)
    m = len(buyers)
    first = people["first_seen"][buyers] + rng.exponential(10 * DAY, m).astype(np.int64)
    first = np.minimum(first, END_EPOCH - 3600)
    rate, dropout_p, dropout, buyer, repeat_ts = _purchase_process(rng, first)
    person = np.concatenate([buyers, buyers[buyer]])
    ts = np.concatenate([first, repeat_ts])
    order = np.lexsort((ts, person))
    dropout_of_person = np.full(n, NEVER, dtype=np.int64)
    dropout_of_person[buyers] = dropout
    purchases = {
        "order_person": person[order],
        "order_ts": ts[order],
        "dropout": dropout_of_person,
    }
    b.register(
        "purchases_skeleton",
        {"person_id": buyers, "rate": rate, "dropout_p": dropout_p, "dropout": dropout},
    )
    return purchases


@dataclass(frozen=True)
class _Catalogue:
    """The shop's products: each one's partner, and how popular each is within its category."""

    # Indexed by product number (0 unused).
    partner: np.ndarray
    # Product numbers grouped by category (in category order), most popular first, and aligned
    # with them the category plus the cumulative popularity share within it: a product of
    # category c is drawn by searching c + u, u uniform on [0, 1).
    by_category: np.ndarray
    cdf: np.ndarray
    # Where each category starts in ``by_category``, and how many products it has.
    start: np.ndarray
    size: np.ndarray

    def draw(self, rng: np.random.Generator, category: np.ndarray, popular: bool) -> np.ndarray:
        """One product of each given category: the popular ones likelier, or any alike."""
        u = rng.random(len(category))
        if popular:
            at = np.searchsorted(self.cdf, category + u, side="right")
        else:
            at = self.start[category] + (u * self.size[category]).astype(np.int64)
        return self.by_category[np.minimum(at, PRODUCT_COUNT - 1)]


def _catalogue(b: _Builder) -> _Catalogue:
    rng = b.stream("catalogue")
    k = len(PRODUCT_CATEGORIES)
    products = np.arange(1, PRODUCT_COUNT + 1)
    category = products % k
    # Popularity rank and partner cycle: each a random order of the products within a category.
    by_category = products[np.lexsort((rng.random(PRODUCT_COUNT), category))]
    sorted_category = by_category % k
    start = np.searchsorted(sorted_category, np.arange(k))
    size = np.diff(np.r_[start, PRODUCT_COUNT])
    rank = np.arange(PRODUCT_COUNT) - start[sorted_category]
    weight = 1.0 / (rank + 1.0) ** POPULARITY_EXPONENT
    cumulative = np.cumsum(weight)
    before = (cumulative - weight)[start]
    total = np.add.reduceat(weight, start)
    within = (cumulative - before[sorted_category]) / total[sorted_category]
    cycle = products[np.lexsort((rng.random(PRODUCT_COUNT), category))]
    nxt = np.where(
        rank + 1 < size[sorted_category], np.arange(1, PRODUCT_COUNT + 1), start[sorted_category]
    )
    partner = np.zeros(PRODUCT_COUNT + 1, dtype=np.int64)
    partner[cycle] = cycle[nxt]
    cdf = sorted_category + np.minimum(within, 1.0)
    return _Catalogue(partner, by_category, cdf, start, size)


def _preferences(rng: np.random.Generator, n: int) -> np.ndarray:
    """Each of ``n`` people's preferred category and second one (the same if none): shape 2 x n."""
    k = len(PRODUCT_CATEGORIES)
    first = rng.choice(k, n, p=CATEGORY_POPULARITY)
    second = (first + rng.integers(1, k, n)) % k
    return np.stack([first, np.where(rng.random(n) < SECOND_CATEGORY_PEOPLE, second, first)])


def _draw_products(
    rng: np.random.Generator,
    catalogue: _Catalogue,
    preferences: np.ndarray,
    person: np.ndarray,
    popular: bool = True,
) -> np.ndarray:
    """A product for each of ``person``: mostly from their preferred categories; the popular
    ones likelier, or (``popular=False``) any of a category alike."""
    n = len(person)
    preferred = np.where(
        rng.random(n) < SECOND_CATEGORY_SHARE, preferences[1][person], preferences[0][person]
    )
    anywhere = rng.integers(0, len(PRODUCT_CATEGORIES), n)
    category = np.where(rng.random(n) < PREFERRED_CATEGORY_SHARE, preferred, anywhere)
    return catalogue.draw(rng, category, popular)


# Products an order can hold at most.
BASKET_SIZE = 4


def _baskets(
    rng: np.random.Generator,
    catalogue: _Catalogue,
    preferences: np.ndarray,
    order_person: np.ndarray,
    previous_first: np.ndarray | None = None,
) -> np.ndarray:
    """The products of orders, distinct per order (shape orders x BASKET_SIZE; an order holds
    its first few), given their buyers ``order_person`` in order of person, then time.

    An order's first product is often the partner of the first in the buyer's order before it
    (the row before, or ``previous_first``: one from an earlier batch, 0 if none); its second is
    often its first one's partner.
    """
    n = len(order_person)
    products = _draw_products(
        rng, catalogue, preferences, np.repeat(order_person, BASKET_SIZE)
    ).reshape(n, BASKET_SIZE)
    previous_first = np.zeros(n, dtype=np.int64) if previous_first is None else previous_first
    follows = rng.random(n) < PARTNER_NEXT_ORDER
    same_buyer = np.r_[False, order_person[1:] == order_person[:-1]]
    start = np.where(
        follows & ~same_buyer & (previous_first > 0),
        catalogue.partner[previous_first],
        products[:, 0],
    )
    # A run of orders each following the one before: partner applied once per step.
    row = np.arange(n)
    root = np.maximum.accumulate(np.where(follows & same_buyer, 0, row))
    steps = row - root
    first = start[root]
    for step in range(1, int(steps.max(initial=0)) + 1):
        rows = np.flatnonzero(steps >= step)
        first[rows] = catalogue.partner[first[rows]]
    products[:, 0] = first
    with_partner = rng.random(n) < PARTNER_IN_ORDER
    products[with_partner, 1] = catalogue.partner[first[with_partner]]
    # A product drawn twice for one order gives way to its partner: a category's cycle is far
    # longer than an order, so a few rounds make them distinct.
    for line in range(1, BASKET_SIZE):
        while True:
            taken = (products[:, :line] == products[:, line : line + 1]).any(axis=1)
            if not taken.any():
                break
            products[taken, line] = catalogue.partner[products[taken, line]]
    return products


@dataclass(frozen=True)
class _Shop:
    """What people buy and look at: the catalogue, each person's preferred categories, and the
    products of each generated order (rows of the purchases)."""

    catalogue: _Catalogue
    preferences: np.ndarray
    baskets: np.ndarray


def _shop(b: _Builder, people: dict[str, np.ndarray], purchases: dict[str, np.ndarray]) -> _Shop:
    catalogue = _catalogue(b)
    preferences = _preferences(b.stream("affinities"), len(people["kind"]))
    baskets = _baskets(b.stream("baskets"), catalogue, preferences, purchases["order_person"])
    return _Shop(catalogue, preferences, baskets)


def _last_first_products(
    purchases: dict[str, np.ndarray], shop: _Shop, person: np.ndarray
) -> np.ndarray:
    """The first product of each person's last generated order (0 if they have none)."""
    order_person = purchases["order_person"]
    last = np.searchsorted(order_person, person, side="right") - 1
    found = last >= 0
    found[found] = order_person[last[found]] == person[found]
    first = np.zeros(len(person), dtype=np.int64)
    first[found] = shop.baskets[last[found], 0]
    return first


def _viewed_products(
    rng: np.random.Generator,
    shop: _Shop,
    purchases: dict[str, np.ndarray],
    person: np.ndarray,
    ts: np.ndarray,
) -> np.ndarray:
    """The products people view or add to their cart at epochs ``ts``: mostly of their preferred
    categories, often one they buy in their next order (within VIEW_LEAD_DAYS)."""
    product = _draw_products(rng, shop.catalogue, shop.preferences, person, popular=False)
    order_person, order_ts = purchases["order_person"], purchases["order_ts"]
    if not len(order_person):
        return product
    # Orders are sorted by person, then time: so are these keys (epochs stay below 2^32).
    order_key = (order_person.astype(np.int64) << 32) | order_ts
    nxt = np.minimum(
        np.searchsorted(order_key, (person.astype(np.int64) << 32) | ts), len(order_key) - 1
    )
    ahead = (
        (order_person[nxt] == person)
        & (order_ts[nxt] >= ts)
        & (order_ts[nxt] - ts < VIEW_LEAD_DAYS * DAY)
        & (rng.random(len(person)) < VIEWS_OF_NEXT_ORDER)
    )
    # The order's first product, or its second (which a one-product order leaves unbought).
    line = (rng.random(len(person)) < 0.3).astype(np.int64)
    return np.where(ahead, shop.baskets[nxt, line], product)


def _designed_count(b: _Builder, share: float, people: dict[str, np.ndarray]) -> int:
    """How many of a designed identity breaker to plant: a share of web people, at least one
    once there are a few hundred, none without junk (clean data has nothing shared)."""
    web = int(np.count_nonzero(people["kind"] == WEB))
    if b.junk_share == 0 or web < 200:
        return 0
    return max(1, round(share * web))


def _shared_logins(
    b: _Builder, people: dict[str, np.ndarray], first_device: int
) -> dict[str, np.ndarray]:
    """Devices on which several people use one account: an office's or a club's shop login.

    Each login's owner (a web account holder with an email) shares it with a few other web
    people, who log in with it on devices of their own, more than identity's shared-identifier
    threshold allows (21+ browsers): the account's user_id, email and phone end up linked to so
    many devices that Tessera must treat them as shared rather than merge everyone who used them.
    The devices belong to the people using them; the account stays its owner's.
    """
    rng = b.stream("shared_logins")
    count = _designed_count(b, SHARED_LOGIN_SHARE, people)
    owner_pool = np.flatnonzero(people["has_account"] & people["has_email"])
    count = min(count, len(owner_pool))
    owners = np.sort(rng.choice(owner_pool, count, replace=False))
    devices_per = rng.integers(SHARED_LOGIN_DEVICES[0], SHARED_LOGIN_DEVICES[1] + 1, count)
    users_per = rng.integers(SHARED_LOGIN_USERS[0], SHARED_LOGIN_USERS[1] + 1, count)
    web = np.flatnonzero(people["kind"] == WEB)
    user_pool = np.setdiff1d(web, owners)
    users = rng.choice(user_pool, int(users_per.sum()), replace=False)
    login = np.repeat(np.arange(count), devices_per)
    m = len(login)
    nth = np.arange(m) - np.repeat(np.cumsum(devices_per) - devices_per, devices_per)
    user_start = np.cumsum(users_per) - users_per
    person = users[user_start[login] + nth % users_per[login]]
    first_seen = np.minimum(
        people["first_seen"][owners][login] + rng.integers(0, 200 * DAY, m), END_EPOCH - DAY
    )
    span = np.minimum(rng.exponential(90 * DAY, m).astype(np.int64) + DAY, END_EPOCH - first_seen)
    b.register(
        "shared_logins",
        {
            "account_id": np.concatenate([owners, np.repeat(owners, users_per)]),
            "person_id": np.concatenate([owners, users]),
            "is_owner": np.r_[np.ones(count, bool), np.zeros(len(users), bool)],
        },
    )
    b.shared_people[owners] = True
    b.shared_people[person] = True
    return {
        "device_id": np.arange(first_device, first_device + m, dtype=np.int64),
        "person_id": person,
        "account_id": owners[login],
        "is_app": rng.random(m) < 0.3,
        "first_seen": first_seen,
        "span": span,
        "logs_in": np.ones(m, bool),
        "newsletter": np.zeros(m, bool),
        "identify_at": first_seen + (rng.random(m) * span * 0.5).astype(np.int64),
        "activity": rng.lognormal(0.0, 0.6, m),
        "junk_anonymous_id": np.zeros(m, bool),
    }


def _devices(
    b: _Builder, people: dict[str, np.ndarray], purchases: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
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
        # Whose login and traits the device sends: its own user's, but for a shared login's.
        "account_id": person,
        "is_app": rng.random(m) < 0.3,
        "first_seen": first_seen,
        "span": span,
        "logs_in": logs_in,
        "newsletter": newsletter,
        "identify_at": np.where(logs_in | newsletter, identify_at, NEVER),
        "activity": rng.lognormal(0.0, 0.6, m),
        "junk_anonymous_id": rng.random(m) < 0.001 * b.junk_share,
    }
    team = _shared_logins(b, people, m)
    devices = {k: np.concatenate([v, team[k]]) for k, v in devices.items()}
    devices["dropout"] = purchases["dropout"][devices["person_id"]]
    b.logged_in_rows = np.zeros(len(devices["device_id"]))
    b.register("devices_skeleton", devices)
    b.con.execute(f"""
        create or replace temp table devices as
        select
            device_id,
            person_id,
            account_id,
            is_app,
            logs_in,
            identify_at,
            -- Segment-style anonymous ids look like UUIDs; derive them so they are stable per seed.
            case when junk_anonymous_id then '{JUNK_ANONYMOUS_ID}'
                else {_uuid_sql("'anon-' || device_id::varchar")}
            end as anonymous_id,
            case when is_app then upper(md5('device-' || device_id::varchar)[1:16]) end
                as context_device_id
        from devices_skeleton
    """)
    return devices


def _uuid_sql(key: str) -> str:
    """A UUID-shaped anonymous id derived from a text key."""
    return (
        f"regexp_replace(md5({key}), "
        "'^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\\1-\\2-\\3-\\4-\\5')"
    )


def _events_per_device(
    rng: np.random.Generator, devices: dict[str, np.ndarray], mean: float
) -> dict[str, np.ndarray]:
    per_device = rng.geometric(1.0 / (1.0 + mean * devices["activity"]))
    device = np.repeat(devices["device_id"], per_device)
    n = len(device)
    ts = devices["first_seen"][device] + (rng.random(n) * devices["span"][device]).astype(np.int64)
    # Someone who stopped buying mostly stops visiting too: a few of their later visits remain.
    kept = (ts <= devices["dropout"][device]) | (rng.random(n) < EVENTS_KEPT_AFTER_DROPOUT)
    device, ts = device[kept], ts[kept]
    n = len(ts)
    return {
        "device_id": device,
        "ts": ts,
        "logged_in": devices["logs_in"][device] & (ts >= devices["identify_at"][device]),
        "tz_offset": rng.random(n) < 0.05,
    }


def _count_logged_in(b: _Builder, sk: dict[str, np.ndarray]) -> None:
    """Add a table's logged-in rows per device: the evidence identity ranks user_ids by."""
    b.logged_in_rows += np.bincount(
        sk["device_id"][sk["logged_in"]], minlength=len(b.logged_in_rows)
    )


def _page_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "path_idx": rng.choice(len(PATHS), n, p=(0.15, 0.15, 0.35, 0.1, 0.05, 0.08, 0.07, 0.05)),
        "product": rng.integers(1, 500, n),
        "ref_idx": rng.integers(0, len(REFERRERS), n),
        "utm_idx": np.where(rng.random(n) < 0.25, rng.integers(0, len(UTM_SOURCES), n), -1),
    }


def _pages_select(skeleton: str, devices: str, people: str, loaded_at: str) -> str:
    path = f"replace({_pick(PATHS, 'path_idx')}, '{{p}}', 'p-' || product::varchar)"
    d = lambda name: _defect("pages", name)  # noqa: E731
    return f"""
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
            {loaded_at} as _loaded_at
        from {skeleton} as s
        inner join {devices} as dev on s.device_id = dev.device_id
        inner join {people} as p on dev.account_id = p.person_id
        order by s.ts, s.rid
    """


def _render_pages(b: _Builder, devices: dict[str, np.ndarray]) -> None:
    rng = b.rng()
    sk = _events_per_device(rng, devices, 9.0)
    _count_logged_in(b, sk)
    sk |= _page_columns(rng, len(sk["ts"]))
    b.register("pages_skeleton", b.with_defects("pages", sk, rng))
    select = _pages_select("pages_skeleton", "devices", "people", _loaded_at_sql("s.ts"))
    b.con.execute(f"create or replace table {b.schema}.pages as {select}")


def _track_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "event_idx": rng.choice(len(TRACK_EVENTS), n, p=(0.45, 0.2, 0.1, 0.05, 0.15, 0.05)),
        "product": rng.integers(1, 500, n),
        "price": np.round(rng.gamma(3.0, 12.0, n), 2),
    }


def _tracks_select(skeleton: str, devices: str, people: str, loaded_at: str) -> str:
    d = lambda name: _defect("tracks", name)  # noqa: E731
    return f"""
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
            {loaded_at} as _loaded_at
        from {skeleton} as s
        inner join {devices} as dev on s.device_id = dev.device_id
        inner join {people} as p on dev.account_id = p.person_id
        order by s.ts, s.rid
    """


def _render_tracks(
    b: _Builder, devices: dict[str, np.ndarray], shop: _Shop, purchases: dict[str, np.ndarray]
) -> None:
    rng = b.rng()
    sk = _events_per_device(rng, devices, 6.0)
    _count_logged_in(b, sk)
    # The product events' products are drawn again from a stream of their own, so that the
    # other columns' draws (and the rows broken on purpose) stay what they were.
    sk |= _track_columns(rng, len(sk["ts"]))
    viewed = np.flatnonzero(sk["event_idx"] < 2)
    sk["product"][viewed] = _viewed_products(
        b.stream("product_views"),
        shop,
        purchases,
        devices["person_id"][sk["device_id"][viewed]],
        sk["ts"][viewed],
    )
    b.register("tracks_skeleton", b.with_defects("tracks", sk, rng))
    select = _tracks_select("tracks_skeleton", "devices", "people", _loaded_at_sql("s.ts"))
    b.con.execute(f"create or replace table {b.schema}.tracks as {select}")


def _family_computers(
    b: _Builder,
    devices: dict[str, np.ndarray],
    people: dict[str, np.ndarray],
    sk: dict[str, np.ndarray],
    n_first: int,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Browsers at home that other members of the family log in on, with their own accounts.

    A host (an account holder who logs in on the browser a lot) lends it to one or two people
    with accounts of their own, who each identify on it once with their own user_id and email.
    With one guest the browser joins two user_ids, past identity's limit of one per customer:
    the link to the guest must be cut, and the browser stays with its host, whose user_id has
    more evidence (the host is picked among the most logged-in people, the guest among the
    least). With two guests the browser is linked to three user_ids and is a shared identifier
    to block. Returns the guests' identify rows (the columns of ``sk``) and the positions in
    ``sk`` of each host's first identify on the browser (among the first ``n_first`` rows, one
    per device in device order), which must stay intact.
    """
    rng = b.stream("family_computers")
    n_people = len(people["kind"])
    count = _designed_count(b, FAMILY_COMPUTER_SHARE, people)
    # A user_id's evidence as identity counts it: its logged-in page views, tracks, identifies.
    evidence = np.bincount(devices["account_id"], weights=b.logged_in_rows, minlength=n_people)
    evidence += np.bincount(sk["account_id"][sk["logs_in"]], minlength=n_people)
    account = people["has_account"] & people["has_email"] & ~b.shared_people
    person = devices["person_id"]
    browser = (
        ~devices["is_app"]
        & devices["logs_in"]
        & (devices["account_id"] == person)
        & ~devices["junk_anonymous_id"]
        & account[person]
    )
    hosts = np.zeros(0, dtype=np.int64)
    guests = np.zeros((2, 0), dtype=np.int64)
    if count and account.any():
        busy = evidence >= np.quantile(evidence[account], 0.9)
        candidates = np.flatnonzero(browser & busy[person])
        candidates = candidates[np.unique(person[candidates], return_index=True)[1]]
        quiet = account & (evidence <= np.median(evidence[account]))
        quiet[person[candidates]] = False
        pool = np.flatnonzero(quiet)
        count = min(count, len(candidates), len(pool) // 2)
        hosts = np.sort(rng.choice(candidates, count, replace=False))
        guests = rng.choice(pool, 2 * count, replace=False).reshape(2, count)
        # Keep only pairs where the host's evidence clearly exceeds the guest's (+1: the
        # guest's identify on the browser), whatever the ~1% of rows broken on purpose.
        clear = evidence[person[hosts]] >= 2 * (evidence[guests[0]] + 1) + 5
        hosts, guests = hosts[clear], guests[:, clear]
    two_guests = rng.random(len(hosts)) < 1 / 3
    browser_of = np.concatenate([hosts, hosts[two_guests]])
    guest = np.concatenate([guests[0], guests[1][two_guests]])
    g = len(guest)
    host_person = person[hosts]
    b.register(
        "family_computers",
        {
            "device_id": np.concatenate([hosts, browser_of]),
            "person_id": np.concatenate([host_person, guest]),
            "is_owner": np.r_[np.ones(len(hosts), bool), np.zeros(g, bool)],
        },
    )
    b.shared_people[host_person] = True
    b.shared_people[guest] = True
    rows = {
        "device_id": browser_of,
        "account_id": guest,
        "logs_in": np.ones(g, bool),
        "ts": devices["first_seen"][browser_of]
        + (rng.random(g) * devices["span"][browser_of]).astype(np.int64),
        "with_phone": rng.random(g) < 0.5,
        "junk_email": np.zeros(g, bool),
        "tz_offset": rng.random(g) < 0.05,
    }
    host_rows = np.searchsorted(sk["device_id"][:n_first], hosts)
    return rows, host_rows


def _identifies_select(skeleton: str, devices: str, people: str, loaded_at: str) -> str:
    d = lambda name: _defect("identifies", name)  # noqa: E731
    email = f"case when s.junk_email then '{JUNK_EMAIL}' else p.email end"
    return f"""
        select
            case when s.defect <> {d("missing_id")}
                then 'idf_' || lpad(s.rid::varchar, 10, '0') end as id,
            case when s.defect <> {d("no_identifier")} then dev.anonymous_id end as anonymous_id,
            case when s.logs_in and s.defect <> {d("no_identifier")} then p.user_id end
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
            {loaded_at} as _loaded_at
        from {skeleton} as s
        inner join {devices} as dev on s.device_id = dev.device_id
        inner join {people} as p on s.account_id = p.person_id
        order by s.ts, s.rid
    """


def _render_identifies(
    b: _Builder, devices: dict[str, np.ndarray], people: dict[str, np.ndarray]
) -> None:
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
    # A shared login's identifies send the account's traits, its phone included, every time.
    team = devices["account_id"][device] != devices["person_id"][device]
    sk = {
        "device_id": device,
        "account_id": devices["account_id"][device],
        "logs_in": devices["logs_in"][device],
        "ts": devices["identify_at"][device] + (later * np.maximum(remaining, 0)).astype(np.int64),
        "with_phone": (rng.random(n) < 0.5) | team,
        "junk_email": (rng.random(n) < 0.004 * b.junk_share) & ~team,
        "tz_offset": rng.random(n) < 0.05,
    }
    guests, host_rows = _family_computers(b, devices, people, sk, len(first))
    sk = {k: np.concatenate([v, guests[k]]) for k, v in sk.items()}
    # What makes a designed identity breaker break a limit (or be blocked as shared) must not be
    # lost to a broken row: each shared-login device's first identify, the family computers'.
    intact = np.concatenate(
        [np.flatnonzero(team[: len(first)]), host_rows, n + np.arange(len(guests["ts"]))]
    )
    b.register("identifies_skeleton", b.with_defects("identifies", sk, rng, intact))
    select = _identifies_select("identifies_skeleton", "devices", "people", _loaded_at_sql("s.ts"))
    b.con.execute(f"create or replace table {b.schema}.identifies as {select}")


def _order_columns(
    rng: np.random.Generator, spend: np.ndarray, junk_share: float
) -> dict[str, np.ndarray]:
    """An order's amount, channel and contact details, given its buyer's typical spend."""
    n = len(spend)
    return {
        "amount": np.round(rng.gamma(4.0, spend / 4.0), 2),
        "guest": rng.random(n) < 0.3,
        "with_phone": rng.random(n) < 0.4,
        "junk": rng.random(n) < 0.004 * junk_share,
        "status_idx": rng.choice(3, n, p=(0.9, 0.05, 0.05)),
        "currency_idx": rng.choice(3, n, p=(0.95, 0.03, 0.02)),
        "app": rng.random(n) < 0.3,
        "tz_offset": rng.random(n) < 0.05,
    }


def _orders_select(skeleton: str, people: str) -> str:
    d = lambda name: _defect("orders", name)  # noqa: E731
    pos = f"p.kind = {POS}"
    email = f"case when s.junk and not {pos} then '{JUNK_EMAIL}' else p.email end"
    phone_raw = _phone_sql("p.phone_country", "p.phone_nsn", "s.variant % 6")
    return f"""
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
        from {skeleton} as s
        inner join {people} as p on s.person_id = p.person_id
        order by s.ts, s.rid
    """


def _render_orders(
    b: _Builder, people: dict[str, np.ndarray], purchases: dict[str, np.ndarray]
) -> None:
    rng = b.rng()
    person = purchases["order_person"]
    sk = {"person_id": person, "ts": purchases["order_ts"]}
    sk |= _order_columns(rng, people["spend"][person], b.junk_share)
    b.register("orders_skeleton", b.with_defects("orders", sk, rng))
    b.con.execute(
        f"create or replace table {b.schema}.orders as "
        f"{_orders_select('orders_skeleton', 'people')}"
    )


def _order_items_columns(
    rng: np.random.Generator, orders: np.ndarray, baskets: np.ndarray
) -> dict[str, np.ndarray]:
    """One to four products per order (row ids ``orders``), each once: the first of the order's
    row in ``baskets``."""
    per_order = np.minimum(rng.geometric(0.55, len(orders)), BASKET_SIZE)
    n = int(per_order.sum())
    line = np.arange(n) - np.repeat(np.cumsum(per_order) - per_order, per_order)
    return {
        "order_rid": np.repeat(orders, per_order),
        "product": baskets[np.repeat(np.arange(len(orders)), per_order), line],
        "price": np.round(rng.gamma(3.0, 12.0, n), 2),
        "quantity": np.minimum(rng.geometric(0.7, n), 5),
    }


def _order_items_select(skeleton: str) -> str:
    d = lambda name: _defect("order_items", name)  # noqa: E731
    return f"""
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
        from {skeleton} as s
        order by s.order_rid, s.rid
    """


def _render_order_items(b: _Builder, shop: _Shop) -> None:
    """The products of each order the shop stages (broken orders get none)."""
    rng = b.rng()
    orders = b.con.execute(
        "select distinct rid from orders_skeleton where defect = 0 order by rid"
    ).fetchnumpy()["rid"]
    sk = _order_items_columns(rng, orders, shop.baskets[orders])
    b.register("order_items_skeleton", b.with_defects("order_items", sk, rng))
    b.con.execute(
        f"create or replace table {b.schema}.order_items as "
        f"{_order_items_select('order_items_skeleton')}"
    )


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


def _ticket_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "status_idx": rng.integers(0, 3, n),
        "channel_idx": rng.integers(0, 3, n),
        "score": np.where(rng.random(n) < 0.6, rng.integers(1, 6, n), -1),
        "tz_offset": rng.random(n) < 0.05,
    }


def _ticket_delay(rng: np.random.Generator, n: int) -> np.ndarray:
    low, high = TICKET_DELAY_DAYS
    return (DAY * (low + rng.random(n) * (high - low))).astype(np.int64)


def _tickets_after_orders(
    rng: np.random.Generator,
    people: dict[str, np.ndarray],
    purchases: dict[str, np.ndarray],
    order_status: np.ndarray,
    order_intact: np.ndarray,
    prone: np.ndarray,
    person: np.ndarray,
    anytime: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When the tickets of the ticket-prone ``person`` (drawn at epochs ``anytime``) come, and
    the tickets orders lead to, with their follow-ups: returns the epochs of the first, and the
    people and epochs of the others (before ``END``).

    Only orders whose row arrives intact, with the buyer's own email, lead to tickets: a ticket
    must not be the one trace of a buyer's email, else identity would find people (and the
    demo's identity numbers would move) for the tickets' sake.
    """
    order_person, order_ts = purchases["order_person"], purchases["order_ts"]
    n_people = len(people["kind"])
    # A ticket-prone buyer's tickets come after one of their orders (any, orders being sorted by
    # person); people who never buy ask at any time.
    orders_of = np.bincount(order_person, minlength=n_people)
    first_order = np.cumsum(orders_of) - orders_of
    buyer = np.flatnonzero(orders_of[person] > 0)
    of_buyer = person[buyer]
    pick = first_order[of_buyer] + (rng.random(len(buyer)) * orders_of[of_buyer]).astype(np.int64)
    after = order_ts[pick] + _ticket_delay(rng, len(buyer))
    ts = anytime.copy()
    ts[buyer] = np.where(after < END_EPOCH, after, anytime[buyer])
    propensity = rng.beta(TICKET_PROPENSITY_A, TICKET_PROPENSITY_B, n_people)
    propensity += TICKET_PRONE_BOOST * prone
    chance = propensity[order_person] + TICKET_FAILED_ORDER_BOOST * (order_status != 0)
    opens = (
        people["has_email"][order_person] & order_intact & (rng.random(len(order_person)) < chance)
    )
    opened_by = order_person[opens]
    opened_at = order_ts[opens] + _ticket_delay(rng, len(opened_by))
    everyone = np.concatenate([person, opened_by])
    again = rng.random(len(everyone)) < TICKET_FOLLOW_UP
    follow_up_at = np.concatenate([ts, opened_at])[again] + (
        DAY + rng.exponential(TICKET_FOLLOW_UP_DAYS * DAY, int(again.sum()))
    ).astype(np.int64)
    extra_person = np.concatenate([opened_by, everyone[again]])
    extra_ts = np.concatenate([opened_at, follow_up_at])
    before_end = extra_ts < END_EPOCH
    return ts, extra_person[before_end], extra_ts[before_end]


def _render_support_tickets(
    b: _Builder, people: dict[str, np.ndarray], purchases: dict[str, np.ndarray]
) -> None:
    rng = b.rng()
    prone = people["has_email"] & (rng.random(len(people["kind"])) < 0.08)
    with_email = np.flatnonzero(prone)
    person = np.repeat(with_email, 1 + rng.poisson(0.5, len(with_email)))
    n = len(person)
    first_seen = people["first_seen"][person]
    anytime = first_seen + (rng.random(n) * (END_EPOCH - first_seen)).astype(np.int64)
    orders = b.con.execute(
        "select status_idx, defect = 0 and not junk as intact "
        "from (select distinct rid, status_idx, defect, junk from orders_skeleton) order by rid"
    ).fetchnumpy()
    tickets = b.stream("tickets")
    ts, extra_person, extra_ts = _tickets_after_orders(
        tickets,
        people,
        purchases,
        np.asarray(orders["status_idx"]),
        np.asarray(orders["intact"], dtype=bool),
        prone,
        person,
        anytime,
    )
    first, extra = _ticket_columns(rng, n), _ticket_columns(tickets, len(extra_ts))
    sk = {"person_id": np.concatenate([person, extra_person]), "ts": np.concatenate([ts, extra_ts])}
    sk |= {k: np.concatenate([v, extra[k]]) for k, v in first.items()}
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
    # People in a designed identity breaker never ask for erasure: which of their rows must go
    # when several people's data share one identifier is a question of its own.
    asks = people["has_email"] & (rng.random(n_people) < 0.005) & ~b.shared_people
    person = np.flatnonzero(asks)
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


def _truth(b: _Builder, shop: _Shop) -> None:
    """The true person behind every identifier, in the normalised form staging produces; the
    products' planted popularity and partners."""
    con = b.con
    # A buyer's purchase rate (per day) and dropout probability, and when they stopped buying
    # (their last order; null if they had not by END).
    con.execute(f"""
        create or replace table truth.persons as
        select
            people.person_id,
            {_pick(KIND_NAMES, "people.kind")} as kind,
            case when purchases.dropout < {NEVER}
                then make_timestamp(purchases.dropout * 1000000) end as dropout_at,
            purchases.rate as purchases_per_day,
            purchases.dropout_p as dropout_probability
        from people
        left join purchases_skeleton as purchases on people.person_id = purchases.person_id
        order by people.person_id
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
    # Every person who used an identifier shared by design, beside truth.identifiers, which
    # gives each of them to its owner alone (the host of a family computer, a login's owner).
    con.execute("""
        create or replace table truth.shared_identifiers as
        with uses as (
            select
                'anonymous_id' as identifier_type,
                dev.anonymous_id as identifier_value,
                family.person_id,
                'family_computer' as shared_as,
                family.is_owner
            from family_computers as family
            inner join devices as dev on family.device_id = dev.device_id
            union all
            select 'user_id', p.user_id, login.person_id, 'shared_login', login.is_owner
            from shared_logins as login inner join people as p on login.account_id = p.person_id
            union all
            select 'email', p.email, login.person_id, 'shared_login', login.is_owner
            from shared_logins as login inner join people as p on login.account_id = p.person_id
            union all
            select 'phone', p.phone_e164, login.person_id, 'shared_login', login.is_owner
            from shared_logins as login inner join people as p on login.account_id = p.person_id
        )
        select distinct identifier_type, identifier_value, person_id::bigint as person_id,
            shared_as, is_owner
        from uses
        where identifier_value is not null
        order by identifier_type, identifier_value, person_id
    """)
    # Each product's category, its popularity rank within it (1: the best seller) and the
    # partner bought with it or next: what a recommender should find.
    catalogue = shop.catalogue
    by_category = catalogue.by_category
    b.register(
        "products_skeleton",
        {
            "product": by_category,
            "rank": np.arange(PRODUCT_COUNT)
            - catalogue.start[by_category % len(PRODUCT_CATEGORIES)],
            "partner": catalogue.partner[by_category],
        },
    )
    con.execute(f"""
        create or replace table truth.products as
        select
            'p-' || product::varchar as product_id,
            {_pick(PRODUCT_CATEGORIES, "product % 6")} as category,
            (rank + 1)::integer as popularity_rank,
            'p-' || partner::varchar as partner_product_id
        from products_skeleton
        order by product
    """)


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
    rows) and ``junk=False`` (no identifier shared by different people: no junk values, family
    computers or shared logins), leaving data whose true clustering is fully supported by
    evidence.
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    started = time.perf_counter()
    con = con or duckdb.connect(":memory:")
    con.execute("set enable_progress_bar = false")
    # Rows are rendered in the order numpy drew them: a connection that lets DuckDB reorder
    # inserts (Tessera's own, orchestration/warehouse.py) would pair them differently.
    con.execute("set preserve_insertion_order = true")
    con.execute(f'create schema if not exists "{schema}"; create schema if not exists truth')
    if not 0 <= defect_rate < 0.5:
        raise ValueError(f"defect_rate must be in [0, 0.5), got {defect_rate}")
    b = _Builder(con, seed, defect_rate, junk, schema)
    say = progress or (lambda _msg: None)

    people = _people(b, customers)
    purchases = _purchases(b, people)
    shop = _shop(b, people, purchases)
    devices = _devices(b, people, purchases)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("pages", lambda: _render_pages(b, devices)),
        ("tracks", lambda: _render_tracks(b, devices, shop, purchases)),
        ("identifies", lambda: _render_identifies(b, devices, people)),
        ("orders", lambda: _render_orders(b, people, purchases)),
        ("crm_contacts", lambda: _render_crm_contacts(b, people)),
        ("support_tickets", lambda: _render_support_tickets(b, people, purchases)),
        ("consents", lambda: _render_consents(b, people)),
        ("deletion_requests", lambda: _render_deletion_requests(b, people)),
        ("order_items", lambda: _render_order_items(b, shop)),
    ]
    data = GeneratedData(con=con, customers=customers, seed=seed)
    for table, step in steps:
        t0 = time.perf_counter()
        step()
        rows = con.execute(f'select count(*) from "{schema}".{table}').fetchall()[0][0]
        data.row_counts[table] = rows
        say(f"generated {schema}.{table}: {rows:,} rows in {time.perf_counter() - t0:.1f}s")
    _truth(b, shop)
    data.seconds = time.perf_counter() - started
    return data


# Tables an increment appends to, and the columns it checks for the text contract.
INCREMENT_TABLES = ("identifies", "tracks", "pages", "orders", "order_items")
_TEXT_TIMESTAMPS = {"identifies": "timestamp", "tracks": "timestamp", "pages": "timestamp",
                    "orders": "ordered_at"}  # fmt: skip
# How an increment's identifies divide: a share from new devices of existing account holders
# (each linking the device to its user), a share from new people; the rest are profile updates
# on existing devices. A quarter of its page views and tracks come from the new devices.
INCREMENT_LINKED_SHARE = 0.15
INCREMENT_NEW_PEOPLE_SHARE = 0.3
INCREMENT_NEW_DEVICE_EVENTS = 0.25
# Share of new people who buy in the increment they arrive in.
INCREMENT_NEW_BUYER_SHARE = 0.3


def _check_tessera_shape(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    for table in INCREMENT_TABLES:
        columns = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
        )
        timestamp = _TEXT_TIMESTAMPS.get(table)
        if list(columns) != list(SPECS[table].columns) or (
            timestamp and columns[timestamp] != "VARCHAR"
        ):
            raise ValueError(
                f"{schema}.{table} is not in the tessera shape the generator writes (the "
                "contract's columns, timestamps as text): an increment appends to that shape "
                "only, so generate with shape 'tessera' and apply another shape afterwards"
            )


def _last_row_number(value: str | None) -> int:
    """The row number in the largest generated key of a table (``pg_0000000123``), -1 if none."""
    return int(value.rsplit("_", 1)[1]) if value else -1


def _loaded_rows(con: duckdb.DuckDBPyConnection, schema: str) -> tuple[dict, dict]:
    """Rows per table an increment adds to, and the largest row number in each table's keys
    (-1 if none; ``persons``: the largest person id)."""
    keys = {"pages": "id", "tracks": "id", "identifies": "id", "orders": "order_id"}
    selects = [
        f"(select count(*) from {schema}.{table}), (select max({key}) from {schema}.{table})"
        for table, key in keys.items()
    ]
    found = con.execute(
        f"select {', '.join(selects)}, (select max(person_id) from truth.persons)"
    ).fetchone()
    rows = {table: int(found[2 * i]) for i, table in enumerate(keys)}
    last = {table: _last_row_number(found[2 * i + 1]) for i, table in enumerate(keys)}
    last["persons"] = int(found[-1])
    return rows, last


def _window(rng: np.random.Generator, start: np.ndarray | int, end: int, n: int) -> np.ndarray:
    """``n`` epochs drawn uniformly from [start, end)."""
    return start + (rng.random(n) * (end - start)).astype(np.int64)


def _intact(rng: np.random.Generator, columns: dict[str, np.ndarray], first_rid: int) -> dict:
    """An increment's rows are all intact and delivered once: defect 0, fresh row numbers."""
    n = len(next(iter(columns.values())))
    columns["defect"] = np.zeros(n, dtype=np.int8)
    columns["variant"] = rng.integers(0, 12, n).astype(np.int8)
    columns["rid"] = np.arange(first_rid, first_rid + n, dtype=np.int64)
    return columns


def _weighted_sample(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct indices drawn with probability proportional to ``weights`` (> 0 only):
    the ``k`` first of exponential races with those rates (Efraimidis and Spirakis)."""
    candidates = np.flatnonzero(weights > 0)
    k = min(k, len(candidates))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    arrival = rng.exponential(1.0, len(candidates)) / weights[candidates]
    return np.sort(candidates[np.argpartition(arrival, k - 1)[:k]])


def generate_increment(
    con: duckdb.DuckDBPyConnection,
    customers: int,
    seed: int = 42,
    increment_seed: int = 1,
    fraction: float = 0.01,
    loaded_at: datetime | None = None,
    schema: str = "raw",
) -> dict[str, int]:
    """Append what happened between ``END`` and ``loaded_at`` (default: a day later) to the
    tables ``generate(customers, seed, schema=schema)`` wrote on ``con``; return the rows
    appended per table.

    About ``fraction`` of the rows of identifies, tracks, pages and orders are added (orders with
    their order_items), every event after ``END`` and with ``_loaded_at = loaded_at``. Existing
    people who have not stopped buying come back on their devices (logged in where they have an
    account), log in on new devices (an identify linking the new anonymous id to their user_id),
    and buy, the likelier the higher their purchase rate, stopping for good after a purchase with
    their dropout probability (truth.persons.dropout_at is set then). New people arrive with new
    devices, accounts, emails and phones, and some buy. What they view and buy keeps to the
    generated people's preferred categories (new people get their own) and a returning buyer's
    order often holds the partner of their last generated order's first product. truth.persons
    and truth.identifiers gain the new people and identifiers.

    The rows are intact (no defects, no redeliveries), so truth.defects still holds. Keys never
    collide: row numbers continue after the largest in each table and new people's ids after
    the largest in truth.persons, so increments can follow each other; the people coming back
    are the generated ones, not those an earlier increment added. Everything depends only on
    ``(customers, seed, increment_seed, fraction, loaded_at)`` and the tables' contents.

    Only the ``tessera`` shape (orchestration/demo/shapes.py: the contract as text) can be
    appended to; reshape after the increment for another shape.
    """
    loaded_at = loaded_at or END + timedelta(days=1)
    if loaded_at.tzinfo is None:
        loaded_at = loaded_at.replace(tzinfo=UTC)
    if loaded_at <= END:
        raise ValueError(f"loaded_at must be after the generator's clock {END}, got {loaded_at}")
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5], got {fraction}")
    _check_tessera_shape(con, schema)
    con.execute("set preserve_insertion_order = true")
    con.execute("begin transaction")
    try:
        appended = _append_increment(
            con, customers, seed, increment_seed, fraction, loaded_at, schema
        )
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    return appended


def _append_increment(
    con: duckdb.DuckDBPyConnection,
    customers: int,
    seed: int,
    increment_seed: int,
    fraction: float,
    loaded_at: datetime,
    schema: str,
) -> dict[str, int]:
    b = _Builder(con, seed, 0.0, junk=False, schema=schema)
    people = _people(b, customers)
    # The people drawn again must be the ones generated: the same kinds, and (on a sample) the
    # same emails, which a draw for another number of customers would not give.
    same_kind, other_email = con.execute(
        f"""
        select
            (select count(*) from truth.persons as truth
             inner join people as p on truth.person_id = p.person_id
             where truth.kind = {_pick(KIND_NAMES, "p.kind")}),
            (select count(*) from people as p
             where p.person_id % 101 = 0 and p.email is not null and not exists (
                select 1 from truth.identifiers as ids
                where ids.identifier_type = 'email' and ids.identifier_value = p.email
                    and ids.person_id = p.person_id
             ))
        """
    ).fetchone()
    if same_kind != customers or other_email:
        raise ValueError(
            f"truth.persons does not hold the people of generate({customers}, seed={seed}): "
            "an increment needs the customers and seed the tables were generated with"
        )
    rng = b.stream("increment", increment_seed)
    start = END_EPOCH + 1
    since_epoch = loaded_at - datetime(1970, 1, 1, tzinfo=UTC)
    end = int(since_epoch.total_seconds())
    loaded_sql = f"make_timestamp({since_epoch // timedelta(microseconds=1)}::bigint)"
    s = f'"{schema}"'
    rows, last = _loaded_rows(con, s)
    target = {table: round(fraction * n) for table, n in rows.items()}

    # Who can come back: the generated people who have not stopped buying, but for those in a
    # designed identity breaker (their shared identifiers stay as designed).
    state = con.execute(f"""
        select
            truth.dropout_at is null
                and truth.person_id not in (select person_id from truth.shared_identifiers)
                as returns,
            coalesce(truth.purchases_per_day, 0) as rate,
            coalesce(truth.dropout_probability, 0) as dropout_p
        from truth.persons as truth
        where truth.person_id < {customers}
        order by truth.person_id
    """).fetchnumpy()
    returns = np.asarray(state["returns"], dtype=bool)
    con.execute(f"""
        create or replace temp table increment_pool as
        select
            (row_number() over (order by ids.person_id, ids.identifier_value) - 1)::bigint
                as device_id,
            ids.person_id,
            ids.person_id as account_id,
            ids.identifier_value as anonymous_id,
            null::varchar as context_device_id,
            p.user_id is not null as has_account
        from truth.identifiers as ids
        inner join truth.persons as truth on ids.person_id = truth.person_id
        inner join people as p on ids.person_id = p.person_id
        where ids.identifier_type = 'anonymous_id'
            and ids.identifier_value <> '{JUNK_ANONYMOUS_ID}'
            and truth.dropout_at is null
            and ids.person_id not in (select person_id from truth.shared_identifiers)
    """)
    pool = con.execute(
        "select person_id, has_account from increment_pool order by device_id"
    ).fetchnumpy()
    pool_person = np.asarray(pool["person_id"], dtype=np.int64)
    pool_account = np.asarray(pool["has_account"], dtype=bool)
    n_pool = len(pool_person)

    # New devices: existing account holders logging in on one more, and new people's.
    linked_pool = np.flatnonzero(people["has_account"] & returns)
    n_linked = min(round(INCREMENT_LINKED_SHARE * target["identifies"]), len(linked_pool))
    n_new = round(INCREMENT_NEW_PEOPLE_SHARE * target["identifies"])
    if n_linked + n_new > target["pages"]:
        n_linked = n_linked * target["pages"] // (n_linked + n_new)
        n_new = target["pages"] - n_linked
    linked = np.sort(rng.choice(linked_pool, n_linked, replace=False))
    new_pid = np.arange(last["persons"] + 1, last["persons"] + 1 + n_new, dtype=np.int64)
    new_people = _person_columns(rng, new_pid, np.full(n_new, WEB, dtype=np.int8))
    new_people["first_seen"] = _window(rng, start, start + (end - start) // 2, n_new)
    # What people view and buy follows the generated affinities (new people get their own), and
    # a returning buyer's order follows their last generated one.
    products_rng = b.stream("increment_products", increment_seed)
    purchases = _purchases(b, people)
    shop = _shop(b, people, purchases)
    preferences = np.concatenate([shop.preferences, _preferences(products_rng, n_new)], axis=1)
    _register_people(b, new_people, "increment_people")
    con.execute("""
        create or replace temp view increment_everyone as
        select * from people union all select * from increment_people
    """)
    d = n_linked + n_new
    device_person = np.concatenate([linked, new_pid])
    device_seen = np.concatenate(
        [_window(rng, start, start + (end - start) // 2, n_linked), new_people["first_seen"]]
    )
    logs_in = np.r_[np.ones(n_linked, bool), new_people["has_account"]]
    newsletter = np.r_[
        np.zeros(n_linked, bool), ~new_people["has_account"] & new_people["has_email"]
    ]
    identify_at = np.where(
        logs_in | newsletter, _window(rng, device_seen, (device_seen + end) // 2, d), NEVER
    )
    # Keys of new anonymous ids: numbers above the largest page row number so far; every new
    # device has a page view in this increment, so the next increment's keys start above these.
    key = last["pages"] + 1 + np.arange(d, dtype=np.int64)
    b.register(
        "increment_devices_skeleton",
        {
            "device_id": n_pool + np.arange(d, dtype=np.int64),
            "person_id": device_person,
            "key": key,
            "is_app": rng.random(d) < 0.3,
        },
    )
    con.execute(f"""
        create or replace temp table increment_new_devices as
        select
            device_id,
            person_id,
            person_id as account_id,
            {_uuid_sql("'anon-new-' || key::varchar")} as anonymous_id,
            case when is_app then upper(md5('device-new-' || key::varchar)[1:16]) end
                as context_device_id
        from increment_devices_skeleton
    """)
    con.execute("""
        create or replace temp view increment_devices as
        select device_id, person_id, account_id, anonymous_id, context_device_id
        from increment_pool
        union all
        select device_id, person_id, account_id, anonymous_id, context_device_id
        from increment_new_devices
    """)

    def events(total: int, on_new_devices: int) -> dict[str, np.ndarray]:
        """``total`` rows: ``on_new_devices`` of them on the new devices (the first one at each
        device's first visit, as far as they go), the rest on existing devices, logged in where
        their person has an account."""
        k = 0 if not d else total if not n_pool else min(total, on_new_devices)
        device = np.r_[np.arange(min(d, k)), rng.integers(0, max(d, 1), max(k - d, 0))]
        new_ts = np.where(
            np.arange(k) < d, device_seen[device], _window(rng, device_seen[device], end, k)
        )
        on_pool = rng.integers(0, max(n_pool, 1), total - k)
        return {
            "device_id": np.concatenate([on_pool, n_pool + device]),
            "ts": np.concatenate([_window(rng, start, end, total - k), new_ts]),
            "logged_in": np.concatenate(
                [pool_account[on_pool], logs_in[device] & (new_ts >= identify_at[device])]
            ),
            "tz_offset": rng.random(total) < 0.05,
        }

    pages = events(target["pages"], max(d, round(INCREMENT_NEW_DEVICE_EVENTS * target["pages"])))
    pages |= _page_columns(rng, len(pages["ts"]))
    b.register("increment_pages", _intact(rng, pages, last["pages"] + 1))
    tracks = events(target["tracks"], round(INCREMENT_NEW_DEVICE_EVENTS * target["tracks"]))
    tracks |= _track_columns(rng, len(tracks["ts"]))
    # Each device's person as an index of ``preferences``: new people after the generated ones.
    device_index = np.concatenate([pool_person, linked, customers + np.arange(n_new)])
    viewed = np.flatnonzero(tracks["event_idx"] < 2)
    tracks["product"][viewed] = _draw_products(
        products_rng,
        shop.catalogue,
        preferences,
        device_index[tracks["device_id"][viewed]],
        popular=False,
    )
    b.register("increment_tracks", _intact(rng, tracks, last["tracks"] + 1))

    identifying = np.flatnonzero(logs_in | newsletter)
    updates = np.flatnonzero(pool_account)
    n_updates = max(target["identifies"] - len(identifying), 0) if len(updates) else 0
    updated = updates[rng.integers(0, max(len(updates), 1), n_updates)]
    n_identify = len(identifying) + n_updates
    identifies = {
        "device_id": np.concatenate([n_pool + identifying, updated]),
        "account_id": np.concatenate([device_person[identifying], pool_person[updated]]),
        "logs_in": np.r_[logs_in[identifying], np.ones(n_updates, bool)],
        "ts": np.concatenate([identify_at[identifying], _window(rng, start, end, n_updates)]),
        "with_phone": rng.random(n_identify) < 0.5,
        "junk_email": np.zeros(n_identify, bool),
        "tz_offset": rng.random(n_identify) < 0.05,
    }
    b.register("increment_identifies", _intact(rng, identifies, last["identifies"] + 1))

    # Orders: new people who buy, and existing buyers in the order their purchase rate races
    # them to the shop; a buyer stops for good after a purchase with their dropout probability.
    new_buyers = np.flatnonzero(
        new_people["has_email"] & (rng.random(n_new) < INCREMENT_NEW_BUYER_SHARE)
    )[: target["orders"]]
    rate = np.where(returns, state["rate"], 0.0)
    returning = _weighted_sample(rng, rate, target["orders"] - len(new_buyers))
    returning_ts = _window(rng, start, end, len(returning))
    stops = rng.random(len(returning)) < state["dropout_p"][returning]
    order_person = np.concatenate([returning, new_pid[new_buyers]])
    new_order_ts = _window(rng, new_people["first_seen"][new_buyers], end, len(new_buyers))
    spend = np.concatenate([people["spend"][returning], new_people["spend"][new_buyers]])
    orders = {"person_id": order_person, "ts": np.concatenate([returning_ts, new_order_ts])}
    orders |= _order_columns(rng, spend, 0.0)
    b.register("increment_orders", _intact(rng, orders, last["orders"] + 1))
    previous_first = np.concatenate(
        [_last_first_products(purchases, shop, returning), np.zeros(len(new_buyers), np.int64)]
    )
    baskets = _baskets(
        products_rng,
        shop.catalogue,
        preferences,
        np.concatenate([returning, customers + new_buyers]),
        previous_first,
    )
    items = _order_items_columns(rng, orders["rid"], baskets)
    b.register("increment_order_items", _intact(rng, items, 0))

    for table, skeleton, select in (
        ("pages", "increment_pages", _pages_select),
        ("tracks", "increment_tracks", _tracks_select),
        ("identifies", "increment_identifies", _identifies_select),
    ):
        query = select(skeleton, "increment_devices", "increment_everyone", loaded_sql)
        con.execute(f"insert into {s}.{table} {query}")
    con.execute(
        f"insert into {s}.orders {_orders_select('increment_orders', 'increment_everyone')}"
    )
    con.execute(f"insert into {s}.order_items {_order_items_select('increment_order_items')}")

    buys = np.zeros(n_new, bool)
    buys[new_buyers] = True
    _add_increment_truth(b, rng, new_pid, buys, returning[stops], returning_ts[stops])
    return {
        "identifies": n_identify,
        "tracks": len(tracks["ts"]),
        "pages": len(pages["ts"]),
        "orders": len(order_person),
        "order_items": len(items["rid"]),
    }


def _add_increment_truth(
    b: _Builder,
    rng: np.random.Generator,
    new_pid: np.ndarray,
    buys: np.ndarray,
    dropped: np.ndarray,
    dropped_at: np.ndarray,
) -> None:
    """Add an increment's new people (``buys``: who bought) and their identifiers to the truth,
    and the dropouts of returning buyers who stopped (epochs ``dropped_at``)."""
    b.register(
        "increment_truth_persons",
        {
            "person_id": new_pid,
            "rate": np.where(
                buys, rng.gamma(PURCHASE_RATE_SHAPE, 1.0 / PURCHASE_RATE_DAYS, len(new_pid)), np.nan
            ),
            "dropout_p": np.where(buys, rng.beta(DROPOUT_A, DROPOUT_B, len(new_pid)), np.nan),
        },
    )
    b.con.execute("""
        insert into truth.persons
        select person_id, 'web', null, nullif(rate, 'nan'::double), nullif(dropout_p, 'nan'::double)
        from increment_truth_persons
        order by person_id
    """)
    b.register("increment_dropouts", {"person_id": dropped, "ts": dropped_at})
    b.con.execute("""
        update truth.persons
        set dropout_at = make_timestamp(dropouts.ts * 1000000)
        from increment_dropouts as dropouts
        where persons.person_id = dropouts.person_id
    """)
    b.con.execute("""
        insert into truth.identifiers
        with identifiers as (
            select 'anonymous_id' as identifier_type, anonymous_id as identifier_value, person_id
            from increment_new_devices
            union all
            select 'device_id', context_device_id, person_id from increment_new_devices
            union all
            select 'user_id', user_id, person_id from increment_people
            union all
            select 'email', email, person_id from increment_people
            union all
            select 'phone', phone_e164, person_id from increment_people
            union all
            select 'shop_customer_ref', shop_customer_ref, person_id from increment_people
        )
        select * from identifiers
        where identifier_value is not null
        order by identifier_type, identifier_value
    """)
